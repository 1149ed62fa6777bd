"""Disk cache for encoder outputs: (dataset, field, encoder name + config hash, item-ids hash) -> .npy.

An entry is two files, ``<key>.npy`` (float32 [N, D]) and ``<key>.mask.npy`` (bool [N]), each written
atomically (temp file + rename); the mask is written first, so a present embedding file means a
complete entry. A hit skips the encoder entirely. The default root is ``$SEMID_CACHE`` or
``~/.cache/semid/embeddings``.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np

from semid.encoders import config_hash
from semid.io import save_npy


def default_cache_dir() -> Path:
    return Path(os.environ.get("SEMID_CACHE", Path.home() / ".cache" / "semid")) / "embeddings"


def ids_hash(item_ids, extra: bytes = b"") -> str:
    """Hash of the item id list (order matters: row i is item i) plus optional extra bytes."""
    h = hashlib.sha1()
    for s in np.asarray(item_ids).astype(str).tolist():
        h.update(s.encode())
        h.update(b"\0")
    h.update(extra)
    return h.hexdigest()[:16]


def _safe(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", s)[:60]


class EmbeddingCache:
    """``cache.get_or_compute(dataset, field, encoder_name, encoder_config, item_ids, compute)``."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root else default_cache_dir()
        self.hits = 0
        self.misses = 0

    def key(
        self, dataset: str, field: str, encoder_name: str, encoder_config, item_ids, extra: bytes = b""
    ) -> str:
        return "__".join(
            [
                _safe(dataset),
                _safe(field),
                f"{_safe(encoder_name)}-{config_hash(encoder_config)}",
                ids_hash(item_ids, extra),
            ]
        )

    def load(self, key: str) -> tuple[np.ndarray, np.ndarray] | None:
        emb, mask = self.root / f"{key}.npy", self.root / f"{key}.mask.npy"
        if not (emb.exists() and mask.exists()):
            return None
        try:
            return np.load(emb).astype(np.float32, copy=False), np.load(mask).astype(bool, copy=False)
        except (OSError, ValueError):
            return None  # a corrupt entry is recomputed and overwritten

    def store(self, key: str, emb: np.ndarray, mask: np.ndarray) -> None:
        save_npy(self.root / f"{key}.mask.npy", np.asarray(mask, dtype=bool))
        save_npy(self.root / f"{key}.npy", np.asarray(emb, dtype=np.float32))

    def get_or_compute(
        self,
        dataset: str,
        field: str,
        encoder_name: str,
        encoder_config,
        item_ids,
        compute: Callable[[], tuple[np.ndarray, np.ndarray]],
        *,
        extra: bytes = b"",
    ) -> tuple[np.ndarray, np.ndarray]:
        """Return the cached (emb, mask) or run ``compute()`` and store it. ``extra`` adds e.g. a train hash."""
        key = self.key(dataset, field, encoder_name, encoder_config, item_ids, extra)
        hit = self.load(key)
        if hit is not None and len(hit[0]) == len(item_ids):
            self.hits += 1
            return hit
        self.misses += 1
        emb, mask = compute()
        self.store(key, emb, mask)
        return np.asarray(emb, dtype=np.float32), np.asarray(mask, dtype=bool)
