"""Co-occurrence pair mining for FusID's contrastive loss (TRAIN sequences only).

Positives: unordered item pairs that occur within ``window`` positions of each other in the same
train sequence at least ``min_count`` times and with PMI >= ``min_pmi``. Negatives: for each
positive anchor, items drawn by popularity^0.75 (word2vec's smoothing) that never co-occur with it
in train (resampled a few times, then dropped).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from semid.data.types import Interactions


@dataclass(frozen=True)
class PairConfig:
    """How positive pairs are mined and negatives sampled."""

    window: int = 5  # max distance between two co-occurring items in a sequence
    min_count: int = 2  # a positive pair co-occurs at least this many times
    min_pmi: float = 0.0  # and has at least this pointwise mutual information
    max_pairs: int = 200_000  # keep at most this many positives (highest count first)
    negatives_per_positive: int = 1  # sampled negatives per positive pair


@dataclass
class CoocPairs:
    """Mined positives and the sorted keys of every co-occurring pair (for negative rejection)."""

    positives: np.ndarray  # int64 [P, 2], a < b
    counts: np.ndarray  # int64 [P]
    cooc_keys: np.ndarray  # int64 sorted a * n_items + b for every pair with count >= 1
    item_counts: np.ndarray  # int64 [n_items] occurrences in train
    n_items: int


def cooccurrence_counts(train: Interactions, n_items: int, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Unordered pair keys (a * n_items + b, a < b) and their counts within ``window`` positions."""
    items = train.items
    seq = np.repeat(np.arange(train.n_users), train.lengths())
    keys = []
    for w in range(1, window + 1):
        ok = seq[w:] == seq[:-w]
        a, b = items[:-w][ok], items[w:][ok]
        lo, hi = np.minimum(a, b), np.maximum(a, b)
        keep = lo != hi
        keys.append(lo[keep] * n_items + hi[keep])
    allk = np.concatenate(keys) if keys else np.zeros(0, np.int64)
    return np.unique(allk, return_counts=True)


def mine_pairs(train: Interactions, n_items: int, config: PairConfig = PairConfig()) -> CoocPairs:
    keys, counts = cooccurrence_counts(train, n_items, config.window)
    item_counts = np.bincount(train.items, minlength=n_items).astype(np.int64)
    a, b = keys // n_items, keys % n_items
    total = max(counts.sum(), 1)
    # PMI from pair counts vs item frequencies (item marginals from occurrence counts).
    n_occ = max(item_counts.sum(), 1)
    pmi = np.log(counts / total) - np.log(item_counts[a] / n_occ) - np.log(item_counts[b] / n_occ)
    keep = (counts >= config.min_count) & (pmi >= config.min_pmi)
    order = np.argsort(-counts[keep], kind="stable")[: config.max_pairs]
    pos = np.stack([a[keep][order], b[keep][order]], axis=1)
    return CoocPairs(
        positives=pos, counts=counts[keep][order], cooc_keys=keys, item_counts=item_counts, n_items=n_items
    )


def sample_negatives(pairs: CoocPairs, anchors: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """For each anchor draw k items that never co-occur with it in train: int64 [M, 2] (anchor, neg)."""
    if k <= 0 or len(anchors) == 0:
        return np.zeros((0, 2), np.int64)
    p = pairs.item_counts.astype(np.float64) ** 0.75
    p = p / p.sum() if p.sum() > 0 else np.full(pairs.n_items, 1.0 / pairs.n_items)
    cdf = np.cumsum(p)
    anc = np.repeat(np.asarray(anchors, np.int64), k)
    neg = np.minimum(np.searchsorted(cdf, rng.random(len(anc)) * cdf[-1]), pairs.n_items - 1)
    for _ in range(3):
        lo, hi = np.minimum(anc, neg), np.maximum(anc, neg)
        key = lo * pairs.n_items + hi
        pos = np.searchsorted(pairs.cooc_keys, key)
        hit = (pos < len(pairs.cooc_keys)) & (
            pairs.cooc_keys[np.minimum(pos, len(pairs.cooc_keys) - 1)] == key
        )
        bad = hit | (anc == neg)
        if not bad.any():
            break
        neg[bad] = np.minimum(np.searchsorted(cdf, rng.random(int(bad.sum())) * cdf[-1]), pairs.n_items - 1)
    lo, hi = np.minimum(anc, neg), np.maximum(anc, neg)
    key = lo * pairs.n_items + hi
    pos = np.searchsorted(pairs.cooc_keys, key)
    hit = (pos < len(pairs.cooc_keys)) & (pairs.cooc_keys[np.minimum(pos, len(pairs.cooc_keys) - 1)] == key)
    ok = ~hit & (anc != neg)
    return np.stack([anc[ok], neg[ok]], axis=1)
