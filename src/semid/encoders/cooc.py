"""Item2vec co-occurrence embeddings: skip-gram with negative sampling over TRAIN sequences only.

Why gensim rather than a PyTorch skip-gram: gensim's Word2Vec is an optimised C implementation of
exactly SGNS (Mikolov et al. 2013; item2vec, Barkan & Koenigstein 2016), runs ~10-50x faster than a
Python-batched torch loop on CPU for these corpus sizes, and with a fixed ``seed`` and ``workers=1``
it is deterministic (its weight init uses a seeded numpy generator). Items that never occur in the
train sequences get a zero row and mask False, so test-only (cold) items never leak into features.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from semid.data.types import Interactions


@dataclass(frozen=True)
class Item2VecConfig:
    """gensim Word2Vec settings for item2vec."""

    dim: int = 64  # embedding size
    window: int = 5  # context window within a sequence
    negative: int = 5  # negative samples per positive
    epochs: int = 5  # passes over the train sequences
    min_count: int = 1  # items seen fewer times in train get no embedding (mask False)
    sample: float = 1e-3  # frequent-item downsampling threshold
    seed: int = 0  # makes the run deterministic (with workers=1)
    workers: int = 1  # threads; >1 is faster but not deterministic


class Item2VecEncoder:
    """``Item2VecEncoder(config=...).fit_transform(train, n_items) -> (float32 [N, dim], mask [N])``."""

    name = "item2vec"

    def __init__(self, *, config: Item2VecConfig = Item2VecConfig()):
        self.config = config

    def config_dict(self) -> dict:
        import dataclasses

        return dataclasses.asdict(self.config)

    def fit_transform(self, train: Interactions, n_items: int) -> tuple[np.ndarray, np.ndarray]:
        try:
            from gensim.models import Word2Vec
        except ImportError:
            raise ImportError("Item2VecEncoder needs gensim: pip install 'semid[cooc]'") from None
        cfg = self.config
        sentences = [[str(i) for i in s.tolist()] for s in train.to_lists() if len(s) > 0]
        out = np.zeros((n_items, cfg.dim), dtype=np.float32)
        mask = np.zeros(n_items, dtype=bool)
        if not sentences:
            return out, mask
        model = Word2Vec(
            sentences=sentences,
            vector_size=cfg.dim,
            window=cfg.window,
            min_count=cfg.min_count,
            sg=1,  # skip-gram (item2vec)
            hs=0,
            negative=cfg.negative,
            sample=cfg.sample,
            epochs=cfg.epochs,
            seed=cfg.seed,
            workers=cfg.workers,
        )
        keys = model.wv.index_to_key
        idx = np.asarray([int(k) for k in keys], dtype=np.int64)
        ok = (idx >= 0) & (idx < n_items)
        out[idx[ok]] = model.wv.vectors[ok]
        mask[idx[ok]] = True
        return out, mask

    def encode(self, values) -> tuple[np.ndarray, np.ndarray]:
        raise TypeError("Item2VecEncoder learns from sequences: call fit_transform(train, n_items)")
