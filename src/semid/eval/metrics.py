"""Full-ranking top-K metrics (HR, NDCG, MRR, Recall), vectorised over users with NumPy.

Every metric is computed from a boolean *hit matrix* ``hits[b, j] = topk[b, j] is a target of row b``
(shape ``[B, K]``), so single-target next-item evaluation and multi-target continuation share one code
path. ``semid.eval.reference`` holds the plain-Python loop version these functions are tested against.

Definitions (rank r is 1-based inside the returned top-K list; T_b is the set of targets of row b):
  HR@k     = 1 if any target is in the top k, else 0
  Recall@k = |top-k ∩ T_b| / |T_b|                      (equals HR@k when |T_b| = 1)
  NDCG@k   = DCG@k / IDCG@k, DCG@k = sum_{r <= k, hit} 1 / log2(r + 1),
             IDCG@k = sum_{r=1}^{min(|T_b|, k)} 1 / log2(r + 1)  (equals 1 / log2(rank + 1) for one target)
  MRR      = 1 / (rank of the first hit) within the top-K list, 0 when no target is there: this is
             MRR@K with K = the list length the evaluator asked for (max(ks), 20 by default).
Rows with an empty target set are an error: they have no defined recall.
"""

from __future__ import annotations

import numpy as np

from semid.errors import DataError

DEFAULT_KS = (1, 5, 10, 20)


def _as_csr(targets) -> tuple[np.ndarray, np.ndarray]:
    """targets -> (offsets int64 [B+1], items int64 [nnz]). Accepts int [B], (offsets, items) or Interactions."""
    if hasattr(targets, "offsets") and hasattr(targets, "items"):
        return np.asarray(targets.offsets, np.int64), np.asarray(targets.items, np.int64)
    if isinstance(targets, tuple) and len(targets) == 2:
        return np.asarray(targets[0], np.int64), np.asarray(targets[1], np.int64)
    t = np.asarray(targets, dtype=np.int64)
    if t.ndim != 1:
        raise DataError(f"targets must be int [B] or CSR (offsets, items); got shape {t.shape}")
    return np.arange(len(t) + 1, dtype=np.int64), t


def hit_matrix(topk: np.ndarray, targets) -> tuple[np.ndarray, np.ndarray]:
    """(hits bool [B, K], n_targets int64 [B]); padding (-1) never hits; duplicate targets count once."""
    topk = np.asarray(topk, dtype=np.int64)
    if topk.ndim != 2:
        raise DataError(f"topk must be int [B, K]; got shape {topk.shape}")
    offsets, items = _as_csr(targets)
    b = topk.shape[0]
    if len(offsets) != b + 1:
        raise DataError(f"topk has {b} rows but targets describe {len(offsets) - 1}")
    lens = np.diff(offsets)
    if (lens == 0).any():
        raise DataError(
            f"{int((lens == 0).sum())} evaluation rows have no target; drop them before evaluating"
        )
    if (lens == 1).all():  # fast path: one target per row
        return (topk == items[:, None]) & (topk >= 0), np.ones(b, dtype=np.int64)
    # Encode (row, item) pairs as one int64 key so membership is a single np.isin over the whole batch.
    width = int(max(items.max(initial=0), topk.max(initial=0))) + 2
    rows = np.repeat(np.arange(b, dtype=np.int64), lens)
    tkeys = np.unique(rows * width + items)
    n_targets = np.bincount(tkeys // width, minlength=b).astype(np.int64)
    keys = np.arange(b, dtype=np.int64)[:, None] * width + topk
    hits = np.isin(keys, tkeys) & (topk >= 0)
    return hits, n_targets


def _discounts(k: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(2, k + 2, dtype=np.float64))  # [k]: 1/log2(r+1), r = 1..k


def per_row_metrics(topk: np.ndarray, targets, ks=DEFAULT_KS) -> dict[str, np.ndarray]:
    """Per-row float64 [B] metric values. Recall@k is included only when some row has several targets."""
    hits, n_t = hit_matrix(topk, targets)
    big_k = hits.shape[1]
    if max(ks) > big_k:
        raise DataError(f"asked for metrics @{max(ks)} but the ranked lists only have {big_k} items")
    disc = _discounts(big_k)
    cum_hits = np.cumsum(hits, axis=1)  # [B, K]
    cum_dcg = np.cumsum(hits * disc, axis=1)  # [B, K]
    cum_idcg = np.cumsum(disc)  # [K]
    multi = bool((n_t > 1).any())
    out: dict[str, np.ndarray] = {}
    for k in ks:
        out[f"HR@{k}"] = (cum_hits[:, k - 1] > 0).astype(np.float64)
    for k in ks:
        if k > 1:
            idcg = cum_idcg[np.minimum(n_t, k) - 1]
            out[f"NDCG@{k}"] = cum_dcg[:, k - 1] / idcg
    if multi:
        for k in ks:
            out[f"Recall@{k}"] = cum_hits[:, k - 1] / n_t
    first = np.where(hits.any(axis=1), hits.argmax(axis=1) + 1, 0)  # 1-based rank of first hit, 0 = miss
    out["MRR"] = np.where(first > 0, 1.0 / np.maximum(first, 1), 0.0)
    return out


def compute_metrics(topk: np.ndarray, targets, ks=DEFAULT_KS) -> dict[str, float]:
    """Mean of every metric in ``per_row_metrics`` over rows (plain floats)."""
    rows = per_row_metrics(topk, targets, ks)
    return {name: float(v.mean()) if len(v) else 0.0 for name, v in rows.items()}


def ndcg_recall_at(topk: np.ndarray, targets, k: int) -> dict[str, float]:
    """Mean NDCG@k and Recall@k (the definitions above) of ranked ``topk`` (B, >=k), e.g. for validation.

    Unlike ``compute_metrics``, rows with no target are skipped rather than an error, and Recall@k is
    reported also when every row has one target (then it equals HR@k).
    """
    topk = np.asarray(topk, dtype=np.int64)
    offsets, items = _as_csr(targets)
    lens = np.diff(offsets)
    keep = lens > 0
    if not keep.any():
        return {f"NDCG@{k}": 0.0, f"Recall@{k}": 0.0}
    kept = np.concatenate([[0], np.cumsum(lens[keep])])
    row_of = np.repeat(np.arange(len(lens)), lens)
    rows = per_row_metrics(topk[keep, :k], (kept, items[keep[row_of]]), (k,))
    # k = 1: NDCG@1 = HR@1 (IDCG@1 = 1); one target per row: Recall@k = HR@k.
    ndcg = rows.get(f"NDCG@{k}", rows[f"HR@{k}"])
    recall = rows.get(f"Recall@{k}", rows[f"HR@{k}"])
    return {f"NDCG@{k}": float(ndcg.mean()), f"Recall@{k}": float(recall.mean())}
