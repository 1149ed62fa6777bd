"""The one recommender protocol every model implements, so one evaluator serves all."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from semid.data.types import Catalog, EvalSet, Interactions


@runtime_checkable
class Recommender(Protocol):
    """fit on train sequences, recommend top-k items for histories.

    ``recommend`` returns ``(items int64 [B, k], scores float32 [B, k])`` sorted best first.
    Rows with fewer than k candidates are padded with item -1 and score -inf.
    Implementations must never return the same item twice in one row.
    """

    name: str

    def fit(self, train: Interactions, catalog: Catalog, valid: EvalSet | None = None) -> Recommender: ...

    def recommend(self, histories: list[np.ndarray], k: int) -> tuple[np.ndarray, np.ndarray]: ...


def pad_topk(items: list[np.ndarray], scores: list[np.ndarray], k: int) -> tuple[np.ndarray, np.ndarray]:
    """Stack ragged per-row results into ([B, k] int64 padded -1, [B, k] float32 padded -inf)."""
    out_i = np.full((len(items), k), -1, dtype=np.int64)
    out_s = np.full((len(items), k), -np.inf, dtype=np.float32)
    for r, (it, sc) in enumerate(zip(items, scores, strict=False)):
        m = min(k, len(it))
        out_i[r, :m] = it[:m]
        out_s[r, :m] = sc[:m]
    return out_i, out_s
