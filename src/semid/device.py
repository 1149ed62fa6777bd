"""Pick the torch device from a user string ("auto", "cpu", "cuda", "cuda:1", "mps")."""

from __future__ import annotations

import torch

from semid.errors import ConfigError


def pick_device(name: str = "auto") -> torch.device:
    """ "auto" -> CUDA if available, else Apple MPS, else CPU. Explicit names are checked, not trusted."""
    name = (name or "auto").strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise ConfigError(
            f"device {name!r} is not a torch device; use auto, cpu, cuda, cuda:N or mps"
        ) from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(
                f"device {name!r} requested but CUDA is not available; use --device=cpu or auto"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(f"device {name!r}: only {torch.cuda.device_count()} CUDA device(s) visible")
    if dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ConfigError(f"device {name!r} requested but MPS is not available; use --device=cpu or auto")
    return dev
