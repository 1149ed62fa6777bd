"""Metrics and ID quality for a subset of items, e.g. songs without tags (a missing modality).

``group_report`` answers FusID's open question 1 on real data: do items that lack a modality get IDs
that collide more often, and are they retrieved as well as the others when they are the held-out
target? Recall here is per target occurrence: over every (evaluation row, target item) pair whose
item is in the group, the fraction found in that row's top k.
"""

from __future__ import annotations

import numpy as np

from semid.data.types import EvalSet
from semid.errors import DataError
from semid.eval.evaluator import validate_topk
from semid.tokenizers.ids import conflict_mask


def rank_topk(recommender, evalset: EvalSet, *, k: int, batch_size: int = 256,
              n_items: int | None = None) -> np.ndarray:
    """The recommender's top-k lists for every evaluation row, int64 [B, k] (-1 padded), as ``evaluate`` sees them."""
    hist = evalset.histories
    out = np.full((hist.n_users, k), -1, dtype=np.int64)
    who = getattr(recommender, "name", type(recommender).__name__)
    for start in range(0, hist.n_users, batch_size):
        stop = min(start + batch_size, hist.n_users)
        items, scores = recommender.recommend([hist.seq(u) for u in range(start, stop)], k=k)
        out[start:stop] = validate_topk(items, scores, n_rows=stop - start, k=k, n_items=n_items, who=who)
    return out


def target_hits(topk: np.ndarray, evalset: EvalSet, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(target items int64 [T], hit bool [T]) over every (row, distinct target item) pair: hit = in the row's top k."""
    topk = np.asarray(topk, dtype=np.int64)
    tg = evalset.targets
    if topk.shape[0] != tg.n_users:
        raise DataError(f"topk has {topk.shape[0]} rows, the evaluation set {tg.n_users}")
    if k > topk.shape[1]:
        raise DataError(f"asked for @{k} but the ranked lists have {topk.shape[1]} items")
    items, hits = [], []
    for r in range(tg.n_users):
        t = np.unique(tg.seq(r))  # a repeated target counts once, as in Recall@k
        items.append(t)
        hits.append(np.isin(t, topk[r, :k]))
    if not items:
        return np.zeros(0, np.int64), np.zeros(0, bool)
    return np.concatenate(items), np.concatenate(hits)


def group_report(group: np.ndarray, *, codes_raw: np.ndarray | None = None, topk: np.ndarray | None = None,
                 evalset: EvalSet | None = None, k: int = 10) -> dict:
    """ID conflicts and Recall@k inside ``group`` (bool [N]) and outside it.

    codes_raw: int64 [N, L] raw quantizer codes (before disambiguation); conflict rate = fraction of the
    items whose tuple another item (of either group) shares. topk [B, K] + evalset: per-occurrence
    Recall@k of target items in / out of the group (None when no target falls there).
    """
    group = np.asarray(group, dtype=bool)
    out: dict = {"n_in": int(group.sum()), "n_out": int((~group).sum())}
    if codes_raw is not None:
        codes_raw = np.asarray(codes_raw)
        if len(codes_raw) != len(group):
            raise DataError(f"codes_raw has {len(codes_raw)} rows for {len(group)} items")
        shared = conflict_mask(codes_raw)
        out["conflict_rate_in"] = float(shared[group].mean()) if group.any() else None
        out["conflict_rate_out"] = float(shared[~group].mean()) if (~group).any() else None
    if topk is not None:
        if evalset is None:
            raise DataError("group_report: topk needs its evalset")
        items, hits = target_hits(topk, evalset, k)
        inside = group[items]
        out["n_targets_in"] = int(inside.sum())
        out["n_targets_out"] = int((~inside).sum())
        out[f"recall@{k}_in"] = float(hits[inside].mean()) if inside.any() else None
        out[f"recall@{k}_out"] = float(hits[~inside].mean()) if (~inside).any() else None
    return out
