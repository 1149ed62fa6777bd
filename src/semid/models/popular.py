"""MostPopular: rank items by how often they occur in the training sequences (the floor every model must beat)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from semid.data.types import Catalog, EvalSet, Interactions
from semid.decoding.masks import item_mask
from semid.errors import CheckpointError, DataError
from semid.models.protocol import MODEL_META, pad_topk, read_model_meta


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

    def recommend(self, histories: list[np.ndarray], k: int, *, exclude=None, allowed=None):
        """Top-k by train count; ``exclude`` / ``allowed`` as in ``semid.decoding.masks.item_mask``."""
        if not hasattr(self, "order_"):
            raise RuntimeError("MostPopular.recommend called before fit")
        k_eff = min(k, self.n_items_)
        mask = item_mask(self.n_items_, len(histories), exclude=exclude, allowed=allowed)
        if mask is not None:
            if self.exclude_history:
                mask &= item_mask(self.n_items_, len(histories), exclude=histories)
            items = [self.order_[mask[r, self.order_]][:k_eff] for r in range(len(histories))]
        elif not self.exclude_history:
            top = self.order_[:k_eff]
            items = [top] * len(histories)
        else:
            items = []
            for h in histories:
                cand = self.order_[: k_eff + len(h)]
                items.append(cand[~np.isin(cand, h)][:k_eff])
        scores = [self.counts_[it].astype(np.float32) for it in items]
        return pad_topk(items, scores, k)

    # ------------------------------------------------------------------ persistence
    def save(self, directory: str | Path) -> Path:
        """``<dir>/counts.npy`` (int64 [N] train counts) + ``<dir>/config.json``."""
        from semid.io import save_npy, write_json

        if not hasattr(self, "counts_"):
            raise RuntimeError("MostPopular.save called before fit")
        d = Path(directory)
        save_npy(d / "counts.npy", self.counts_)
        write_json(d / MODEL_META, {"model": self.name, "exclude_history": self.exclude_history})
        return d

    @classmethod
    def load(cls, directory: str | Path, *, device: str = "cpu", weights: str | Path | None = None) -> MostPopular:
        """Rebuild a saved MostPopular (``device`` and ``weights`` do not apply to counts)."""
        d = Path(directory)
        meta = read_model_meta(d, cls.name)
        try:
            counts = np.load(d / "counts.npy", allow_pickle=False)
        except (OSError, ValueError) as e:
            raise CheckpointError(f"{d / 'counts.npy'}: cannot read the train counts ({e})") from None
        if counts.ndim != 1 or counts.dtype.kind not in "iu" or (counts < 0).any():
            raise CheckpointError(f"{d / 'counts.npy'}: expected non-negative int counts [n_items]")
        obj = cls(exclude_history=bool(meta.get("exclude_history", False)))
        obj.n_items_ = len(counts)
        obj.counts_ = counts.astype(np.int64)
        obj.order_ = np.argsort(-obj.counts_, kind="stable")
        return obj
