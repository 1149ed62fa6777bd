"""Item-content encoders: each turns one catalog field into float32 [N, D] features plus a mask [N].

Text (sentence-transformers), multi-hot sets, item2vec co-occurrence, image (open-clip) and audio
(librosa) encoders share the ``Encoder`` interface below; ``features.build_features`` runs them per
typed feature spec (``feature_spec.py``) through the disk cache in ``cache.py``. Heavy dependencies are
imported lazily.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Encoder(Protocol):
    """values (one entry per item, None where missing) -> (float32 [N, D], bool [N] present mask)."""

    name: str

    def config_dict(self) -> dict: ...

    def encode(self, values: Sequence) -> tuple[np.ndarray, np.ndarray]: ...


def config_hash(obj) -> str:
    """Short stable hash of a config dataclass / dict (cache keys)."""
    if dataclasses.is_dataclass(obj):
        obj = dataclasses.asdict(obj)
    return hashlib.sha1(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:12]


def is_missing(v) -> bool:
    """None, empty string and empty list/tuple count as missing."""
    return (
        v is None or (isinstance(v, str) and not v.strip()) or (isinstance(v, (list, tuple)) and len(v) == 0)
    )


__all__ = ["Encoder", "config_hash", "is_missing"]
