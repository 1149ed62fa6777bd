"""Atomic artifact writes and run directories: nothing is half-written or silently overwritten."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from semid.errors import SemidError


def atomic_write(path: str | Path, writer: Callable[[Path], None]) -> Path:
    """Call ``writer(tmp_path)`` then rename onto ``path``: readers see the old file or the new one, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        writer(tmp_path)
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
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


def make_run_dir(path: str | Path, *, overwrite: bool = False, resume: bool = False) -> Path:
    """Create a fresh run directory. An existing non-empty one is an error unless resuming or overwrite=True."""
    path = Path(path)
    if path.exists() and any(path.iterdir()) and not (overwrite or resume):
        raise SemidError(
            f"run directory {path} already exists and is not empty; pass --resume to continue it, "
            "--overwrite to replace it, or choose another --run-dir"
        )
    if path.exists() and overwrite and not resume:
        import shutil

        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    return path
