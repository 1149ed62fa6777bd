"""Exhaustive ranking for tiny catalogs: score every item's full code by teacher forcing and sort.

With ``beam >= n_items`` the constrained beam search explores every prefix, so it must return exactly
this ranking; the tests use it as ground truth.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def oracle_topk(
    sequence_logp: Callable[[np.ndarray], np.ndarray], tokens: np.ndarray, k: int, keep: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``sequence_logp(tokens [n, L]) -> [n]`` summed log-probs; returns (items [k'], scores [k']) best first.

    ``keep`` (optional bool [n]): rank only these items (an item mask); k' = min(k, number kept).
    """
    scores = np.asarray(sequence_logp(np.asarray(tokens, dtype=np.int64)), dtype=np.float64)
    cand = np.arange(len(scores)) if keep is None else np.flatnonzero(np.asarray(keep, dtype=bool))
    order = cand[np.argsort(-scores[cand], kind="stable")][:k]
    return order.astype(np.int64), scores[order]
