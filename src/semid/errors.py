"""Exception types raised at semid's boundaries (data loading, config, checkpoints)."""


class SemidError(Exception):
    """Base class for every error semid raises on purpose."""


class DataError(SemidError, ValueError):
    """Input data is missing, malformed or inconsistent. The message names the file and the fix."""


class ConfigError(SemidError, ValueError):
    """A config field or CLI override is unknown or has the wrong type."""


class CheckpointError(SemidError, RuntimeError):
    """A checkpoint or artifact directory is missing, corrupt or incompatible."""
