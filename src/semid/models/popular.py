"""MostPopular: rank items by how often they occur in the training sequences (the floor every model must beat)."""

from __future__ import annotations

import numpy as np

from semid.data.types import Catalog, EvalSet, Interactions
from semid.errors import DataError
from semid.models.protocol import pad_topk


class MostPopular:
    """Recommend the k most frequent training items; ties broken by the smaller item index.

    ``exclude_history`` (default False) drops items the user already interacted with. It is off by
    default to follow the LC-Rec / LETTER / MusicRec leave-one-out convention, which ranks the full
    catalog without filtering; in Amazon 5-core data a target rarely repeats a history item, but when
    it does, filtering would make it unreachable.
    """

    name = "MostPopular"

    def __init__(self, *, exclude_history: bool = False) -> None:
        self.exclude_history = exclude_history

    def fit(self, train: Interactions, catalog: Catalog, valid: EvalSet | None = None) -> MostPopular:
        n = catalog.n_items
        items = train.items
        if len(items) and (items.min() < 0 or items.max() >= n):
            raise DataError(f"train interactions reference item ids outside [0, {n}) of the catalog")
        self.n_items_ = n
        self.counts_ = np.bincount(items, minlength=n).astype(np.int64)  # [N]
        # Stable sort on -count keeps the smaller index first among equal counts.
        self.order_ = np.argsort(-self.counts_, kind="stable")  # [N]
        return self

    def recommend(self, histories: list[np.ndarray], k: int) -> tuple[np.ndarray, np.ndarray]:
        if not hasattr(self, "order_"):
            raise RuntimeError("MostPopular.recommend called before fit")
        k_eff = min(k, self.n_items_)
        if not self.exclude_history:
            top = self.order_[:k_eff]
            items = [top] * len(histories)
        else:
            items = []
            for h in histories:
                cand = self.order_[: k_eff + len(h)]
                items.append(cand[~np.isin(cand, h)][:k_eff])
        scores = [self.counts_[it].astype(np.float32) for it in items]
        return pad_topk(items, scores, k)
