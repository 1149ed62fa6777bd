"""Multi-hot encoder for set-valued fields (genres, tags, categories), optionally projected to d dims.

The vocabulary is built from the catalog being encoded (terms seen in at least ``min_count`` items,
sorted by descending count then name, so it is deterministic). With ``dim > 0`` the [N, V] multi-hot
matrix is projected to d dims by a fixed Gaussian random matrix (seeded; Johnson-Lindenstrauss) or by
a truncated SVD of the multi-hot matrix itself (``projection="svd"``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from semid.encoders import is_missing


@dataclass(frozen=True)
class MultiHotConfig:
    """Vocabulary and projection of a set-valued field."""

    min_count: int = 1  # keep terms appearing in at least this many items
    max_terms: int = 0  # keep at most this many most frequent terms (0 = all)
    lowercase: bool = True  # case-fold terms before counting
    dim: int = 0  # project to this many dims (0 = raw multi-hot, one column per term)
    projection: str = "random"  # random | svd (used when dim > 0)
    seed: int = 0  # seeds the random projection


def _terms(v, lowercase: bool) -> list[str]:
    if is_missing(v):
        return []
    items = [v] if isinstance(v, str) else list(v)
    out = [str(t).strip() for t in items if str(t).strip()]
    return [t.lower() for t in out] if lowercase else out


class MultiHotEncoder:
    """``MultiHotEncoder(config=...).encode([["a", "b"], None, ...]) -> (float32 [N, D], mask [N])``."""

    name = "multihot"

    def __init__(self, *, config: MultiHotConfig = MultiHotConfig()):
        self.config = config

    def config_dict(self) -> dict:
        import dataclasses

        return dataclasses.asdict(self.config)

    def fit_vocabulary(self, values: Sequence) -> list[str]:
        cfg = self.config
        counts = Counter(t for v in values for t in set(_terms(v, cfg.lowercase)))
        vocab = sorted((t for t, c in counts.items() if c >= cfg.min_count), key=lambda t: (-counts[t], t))
        return vocab[: cfg.max_terms] if cfg.max_terms > 0 else vocab

    def encode(self, values: Sequence) -> tuple[np.ndarray, np.ndarray]:
        cfg = self.config
        self.vocab_ = self.fit_vocabulary(values)
        index = {t: j for j, t in enumerate(self.vocab_)}
        x = np.zeros((len(values), max(len(self.vocab_), 1)), dtype=np.float32)  # (N, V)
        for i, v in enumerate(values):
            for t in _terms(v, cfg.lowercase):
                j = index.get(t)
                if j is not None:
                    x[i, j] = 1.0
        mask = x.any(axis=1)  # an item whose terms were all dropped by min_count counts as missing
        if cfg.dim > 0:
            x = self._project(x, mask)
        x[~mask] = 0.0
        return x.astype(np.float32), mask

    def _project(self, x: np.ndarray, mask: np.ndarray) -> np.ndarray:
        cfg = self.config
        if cfg.projection == "random":
            rng = np.random.default_rng(cfg.seed)
            proj = rng.normal(size=(x.shape[1], cfg.dim)).astype(np.float32) / np.sqrt(cfg.dim)
            return x @ proj
        if cfg.projection == "svd":
            # Right singular vectors of the present rows: the best rank-d linear summary of the sets.
            _, s, vt = np.linalg.svd(x[mask].astype(np.float64), full_matrices=False)
            k = min(cfg.dim, vt.shape[0])
            out = np.zeros((len(x), cfg.dim), dtype=np.float32)
            out[:, :k] = (x @ vt[:k].T).astype(np.float32)
            return out
        raise ValueError(f"MultiHotConfig.projection must be 'random' or 'svd', got {cfg.projection!r}")
