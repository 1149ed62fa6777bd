"""In-training validation sharded across ranks: each rank scores 1/N of the validation users and the
per-user metric sums and counts are all-reduced, so every rank gets the full-validation means.

``Trainer.fit`` takes any ``validate(model) -> dict`` callable; a ``ShardedValidation`` is one whose
work splits over the ranks of a torch.distributed run (``semid.train.distributed``). One process, or a
rank whose slice is empty (fewer users than ranks), computes the same result, and every rank joins the
same two collectives whatever its slice's size, so uneven slices cannot deadlock. The means differ from
a single process's only by float64 summation order (relative 1e-15).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from torch import nn

from semid.eval.metrics import per_row_metrics
from semid.train import distributed


def reduce_means(part: dict[str, np.ndarray]) -> dict[str, float]:
    """Means over every rank's users of per-user values ``part`` (metric -> float64 [B_r]; NaN = not counted).

    A metric no user counts has mean 0.0 (as ``semid.eval.metrics.ndcg_recall_at``).
    """
    names = distributed.union_keys(part)
    stats = np.zeros(2 * len(names))  # [sums..., counts...]
    for i, name in enumerate(names):
        v = np.asarray(part.get(name, ()), dtype=np.float64)
        ok = ~np.isnan(v)
        stats[i], stats[len(names) + i] = v[ok].sum(), ok.sum()
    stats = distributed.all_reduce_sum(stats)
    sums, counts = stats[: len(names)], stats[len(names) :]
    return {n: float(s / c) if c else 0.0 for n, s, c in zip(names, sums, counts, strict=True)}


@dataclass(frozen=True)
class ShardedValidation:
    """``validate(model)`` for ``Trainer.fit`` over ``n_rows`` validation users, sharded over the ranks.

    ``rows(model, lo, hi)`` returns metric name -> float64 [hi - lo] per-user values of users lo..hi-1
    (NaN marks a user that does not count, e.g. one without a target); it must not call collectives.
    """

    n_rows: int  # validation users
    rows: Callable[[nn.Module, int, int], dict[str, np.ndarray]]  # per-user values of users [lo, hi)

    def __call__(self, model: nn.Module) -> dict[str, float]:
        lo, hi = distributed.shard_range(self.n_rows)
        return reduce_means(self.rows(model, lo, hi) if hi > lo else {})


def ndcg_recall_rows(topk: np.ndarray, targets: Sequence[np.ndarray], k: int) -> dict[str, np.ndarray]:
    """Per-user NDCG@k and Recall@k of ranked ``topk`` (B, >=k) against ``targets`` (B arrays of item ids).

    The per-user terms of ``semid.eval.metrics.ndcg_recall_at``; a user without targets is NaN (skipped).
    """
    topk = np.asarray(topk, dtype=np.int64)
    lens = np.asarray([len(t) for t in targets], dtype=np.int64)
    out = {f"NDCG@{k}": np.full(len(lens), np.nan), f"Recall@{k}": np.full(len(lens), np.nan)}
    keep = lens > 0
    if keep.any():
        offsets = np.concatenate([[0], np.cumsum(lens[keep])])
        items = np.concatenate([np.asarray(t, dtype=np.int64) for t in targets if len(t)])
        rows = per_row_metrics(topk[keep, :k], (offsets, items), (k,))
        # k = 1: NDCG@1 = HR@1; one target per user: Recall@k = HR@k (as ndcg_recall_at)
        out[f"NDCG@{k}"][keep] = rows.get(f"NDCG@{k}", rows[f"HR@{k}"])
        out[f"Recall@{k}"][keep] = rows.get(f"Recall@{k}", rows[f"HR@{k}"])
    return out


def topk_validation(
    recommend: Callable[[nn.Module, list[np.ndarray], int], np.ndarray],
    histories: Sequence[np.ndarray],
    targets: Sequence[np.ndarray],
    k: int = 10,
) -> ShardedValidation:
    """Sharded NDCG@k / Recall@k validation: ``recommend(model, histories, k) -> items int [B, k]``.

    Each rank ranks only its slice of ``histories``; the result equals
    ``ndcg_recall_at(recommend(model, histories, k), targets, k)`` computed by one process.
    """
    histories, targets = list(histories), list(targets)
    if len(histories) != len(targets):
        raise ValueError(f"{len(histories)} validation histories but {len(targets)} target lists")

    def rows(model: nn.Module, lo: int, hi: int) -> dict[str, np.ndarray]:
        return ndcg_recall_rows(recommend(model, histories[lo:hi], k), targets[lo:hi], k)

    return ShardedValidation(n_rows=len(histories), rows=rows)


__all__ = ["ShardedValidation", "reduce_means", "ndcg_recall_rows", "topk_validation"]
