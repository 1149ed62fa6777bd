"""SHA-256 manifest of a finished run's artifacts, written when the run ends and checked before it is reused.

``<run_dir>/manifest.json`` lists every file of the run directory (relative path -> size and SHA-256).
``semid evaluate`` and ``semid serve`` (through ``semid.pipeline.restore.load_run``) check it first, so a
bit-flipped weight file or a reordered ``codes.npy`` is an error naming the file rather than a silently
different model. What is written after the run ended (``plots/``, ``serve/``) is neither listed nor
checked. Runs made before manifests existed load with a logged warning.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from semid.errors import CheckpointError
from semid.io import RUN_MARKER, read_json, write_json

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
_SKIP_DIRS = {"plots", "serve"}  # written after the run: `semid plot`, `semid serve`'s live catalog


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _artifacts(run_dir: Path) -> list[Path]:
    out = []
    for p in sorted(run_dir.rglob("*")):
        rel = p.relative_to(run_dir)
        if not p.is_file() or p.is_symlink() or rel.parts[0] in _SKIP_DIRS:
            continue
        if rel.as_posix() in (MANIFEST, RUN_MARKER) or p.name.endswith(".tmp"):
            continue
        out.append(p)
    return out


def write_manifest(run_dir: str | Path) -> Path:
    """Hash every artifact of ``run_dir`` into ``run_dir/manifest.json``; returns its path."""
    run_dir = Path(run_dir)
    files = {
        p.relative_to(run_dir).as_posix(): {"bytes": p.stat().st_size, "sha256": sha256_file(p)}
        for p in _artifacts(run_dir)
    }
    return write_json(run_dir / MANIFEST, {"algorithm": "sha256", "files": files})


def verify_manifest(run_dir: str | Path) -> bool:
    """Check every file listed in ``run_dir/manifest.json``. Returns False (and logs a warning) when the run
    has no manifest; raises CheckpointError naming the first missing or changed file."""
    run_dir = Path(run_dir)
    path = run_dir / MANIFEST
    if not path.is_file():
        log.warning(
            "%s has no %s (written by an older semid, or the run has not finished): its artifacts "
            "cannot be checked for corruption", run_dir, MANIFEST,
        )
        return False
    try:
        files = read_json(path)["files"]
    except Exception as e:
        raise CheckpointError(f"{path}: not a valid manifest ({e}); re-run the pipeline or delete it") from None
    for rel, entry in files.items():
        p = run_dir / rel
        if not p.is_file():
            raise CheckpointError(f"{p}: missing, but {path} lists it; the run directory is incomplete")
        if p.stat().st_size != entry["bytes"] or sha256_file(p) != entry["sha256"]:
            raise CheckpointError(
                f"{p}: SHA-256 does not match {path}; the file is corrupt or was modified after the run "
                "ended. Restore it or re-run the pipeline"
            )
    return True


__all__ = ["MANIFEST", "sha256_file", "verify_manifest", "write_manifest"]
