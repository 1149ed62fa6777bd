"""Atomic artifact writes and run directories: nothing is half-written or silently overwritten.

A run directory carries a marker file (``RUN_MARKER``) written when it is created; ``--overwrite`` only
ever deletes a directory that has it (or, for runs made before the marker, a semid ``config.json``), and
never the current directory, one of its parents, or the home directory. Every path is resolved before it
is checked, so ``nonexistent/../run`` is ``run``. ``write_state_tree`` stores nested optimizer / scheduler
state as safetensors + JSON, so resuming never unpickles anything.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from semid.errors import SemidError

_WRITE_FIXES = {
    errno.ENOSPC: "the disk is full: free space (or choose another --run-dir), then rerun with --resume",
    errno.EDQUOT: "the disk quota is exceeded: free space (or choose another --run-dir), then rerun with --resume",
    errno.EROFS: "the file system is read-only: choose a writable --run-dir (or remount), then rerun with --resume",
    errno.EACCES: "permission denied: make the folder writable or choose another --run-dir, then rerun with --resume",
    errno.EPERM: "permission denied: make the folder writable or choose another --run-dir, then rerun with --resume",
}


def write_error(path: str | Path, e: OSError) -> SemidError | None:
    """A SemidError naming ``path`` and the fix for the OSErrors a full / read-only / locked disk raises, else None."""
    fix = _WRITE_FIXES.get(e.errno)
    if fix is None:
        return None
    return SemidError(f"cannot write {path}: {e.strerror or e}; {fix} (files already written are intact)")


def atomic_write(path: str | Path, writer: Callable[[Path], None]) -> Path:
    """Call ``writer(tmp_path)`` then rename onto ``path``: readers see the old file or the new one, never half.

    A full disk, a read-only file system or a permission error raises SemidError naming the path and the fix;
    the old file, if any, is left untouched.
    """
    path = Path(path)
    tmp_path = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        tmp_path = Path(tmp)
        writer(tmp_path)
        os.replace(tmp_path, path)
    except BaseException as e:
        if tmp_path is not None:
            try:
                tmp_path.unlink(missing_ok=True)
            except OSError:
                pass  # a read-only file system cannot drop the temp file either; the old file is intact
        mapped = write_error(path, e) if isinstance(e, OSError) else None
        if mapped is not None:
            raise mapped from e
        raise
    return path


def _default(o: Any):
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def write_json(path: str | Path, obj: Any) -> Path:
    text = json.dumps(obj, indent=2, sort_keys=False, default=_default)
    return atomic_write(path, lambda p: p.write_text(text + "\n"))


def read_json(path: str | Path) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise SemidError(f"{path}: file not found") from None
    except json.JSONDecodeError as e:
        raise SemidError(f"{path}: not valid JSON ({e})") from None


def save_npy(path: str | Path, arr: np.ndarray) -> Path:
    def w(p: Path) -> None:
        with open(p, "wb") as f:
            np.save(f, arr)

    return atomic_write(path, w)



RUN_MARKER = ".semid-run"  # JSON {"semid": version}; present in every directory make_run_dir created


def _is_semid_config(path: Path) -> bool:
    """A ``config.json`` a semid run (RunConfig) or tokenizer directory wrote: the marker of pre-marker runs."""
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(raw, dict) and ({"data", "model"} <= raw.keys() or {"tokenizer", "config"} <= raw.keys())


def is_run_dir(path: str | Path) -> bool:
    """True when ``path`` holds a run marker, or a semid ``config.json`` / ``run_config.json`` (older runs)."""
    p = Path(path)
    return (p / RUN_MARKER).is_file() or _is_semid_config(p / "config.json") or _is_semid_config(p / "run_config.json")


def _protected(path: Path) -> str | None:
    """Why ``path`` (resolved) must never be deleted, or None."""
    cwd, home = Path.cwd().resolve(), Path.home().resolve()
    if path == cwd or path in cwd.parents:
        return "it is the current directory or one of its parents"
    if path == home or path in home.parents:
        return "it is the home directory or one of its parents"
    return None


def safe_run_name(name: str) -> str:
    """A run name usable as one path component: anything but letters, digits and ``._+-`` becomes ``_``,
    and leading dots are dropped, so ``"../../x"`` stays inside the folder it is joined to."""
    clean = re.sub(r"[^A-Za-z0-9._+-]", "_", str(name)).lstrip(".")
    return clean or "run"


def make_run_dir(path: str | Path, *, overwrite: bool = False, resume: bool = False) -> Path:
    """Create (or reopen, when resuming) a run directory and return its resolved path.

    An existing non-empty directory is an error unless ``resume`` (it must then be a semid run) or
    ``overwrite`` (it must be a semid run, and never the current directory, a parent of it, or home).
    Resuming drops the previous manifest: the run is about to change and writes a new one when it ends.
    """
    given = path
    path = Path(path).expanduser().resolve()
    if path.exists() and not path.is_dir():
        raise SemidError(f"run directory {given} ({path}) is a file, not a directory; choose another --run-dir")
    non_empty = path.is_dir() and any(path.iterdir())
    if overwrite and not resume:
        why = _protected(path)
        if why:
            raise SemidError(f"--overwrite refused for {given} ({path}): {why}; choose a dedicated --run-dir")
    if non_empty:
        if not (overwrite or resume):
            raise SemidError(
                f"run directory {given} ({path}) already exists and is not empty; pass --resume to continue it, "
                "--overwrite to replace it, or choose another --run-dir"
            )
        if not is_run_dir(path):
            flag = "--resume" if resume else "--overwrite"
            raise SemidError(
                f"{flag} refused for {given} ({path}): it is not a semid run directory (no {RUN_MARKER} or semid "
                "config.json in it), so nothing was deleted; choose an empty or new --run-dir"
            )
        if overwrite and not resume:
            shutil.rmtree(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        mapped = write_error(path, e)
        if mapped is None:
            raise
        raise mapped from e
    if resume:
        (path / "manifest.json").unlink(missing_ok=True)
    if not (path / RUN_MARKER).exists():
        from semid import __version__

        write_json(path / RUN_MARKER, {"semid": __version__})
    return path


# ---------------------------------------------------------------------------------------------- state trees


def _encode_tree(obj: Any, tensors: dict) -> Any:
    import torch

    if torch.is_tensor(obj):
        name = f"t{len(tensors)}"
        tensors[name] = obj.detach().cpu().contiguous().clone()
        return {"__tensor__": name}
    if isinstance(obj, dict):
        if all(isinstance(k, str) and not k.startswith("__") for k in obj):
            return {k: _encode_tree(v, tensors) for k, v in obj.items()}
        return {"__items__": [[_encode_tree(k, tensors), _encode_tree(v, tensors)] for k, v in obj.items()]}
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode_tree(v, tensors) for v in obj]}
    if isinstance(obj, list):
        return [_encode_tree(v, tensors) for v in obj]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot store a {type(obj).__name__} in a state tree (tensors, dicts, lists, numbers, str)")


def _decode_tree(obj: Any, tensors: dict) -> Any:
    if isinstance(obj, list):
        return [_decode_tree(v, tensors) for v in obj]
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        if "__tuple__" in obj:
            return tuple(_decode_tree(v, tensors) for v in obj["__tuple__"])
        if "__items__" in obj:
            return {_decode_tree(k, tensors): _decode_tree(v, tensors) for k, v in obj["__items__"]}
        return {k: _decode_tree(v, tensors) for k, v in obj.items()}
    return obj


def write_state_tree(path: str | Path, tree: Any) -> None:
    """Nested dicts / lists / tuples of tensors and plain values (e.g. an optimizer's ``state_dict``) as
    ``<path>.safetensors`` (the tensors) + ``<path>.json`` (the structure); read back without unpickling."""
    from safetensors.torch import save_file

    path = Path(path)
    tensors: dict = {}
    skeleton = _encode_tree(tree, tensors)
    atomic_write(path.with_name(path.name + ".safetensors"), lambda p: save_file(tensors, str(p)))
    write_json(path.with_name(path.name + ".json"), skeleton)


def read_state_tree(path: str | Path, *, device: str = "cpu") -> Any:
    """Inverse of ``write_state_tree``; tensors land on ``device``."""
    from safetensors.torch import load_file

    path = Path(path)
    tensors = load_file(str(path.with_name(path.name + ".safetensors")), device=str(device))
    return _decode_tree(read_json(path.with_name(path.name + ".json")), tensors)
