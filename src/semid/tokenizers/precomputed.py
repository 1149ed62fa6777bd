"""Use given code tuples as item identifiers (e.g. MQL4GRec's own text / image indices).

The source is a ``catalog.codes`` key (loaded with the dataset, e.g. "lemb" from
``Instruments.index_lemb.json``) or a code file path (.json / .npy / .parquet, see
``semid.data.codes.read_code_index``). Items without a tuple get a fresh tuple of their own on a
reserved extra code per level (documented fallback, counted in the report); shared tuples are made
unique with TIGER's extra digit, so this baseline runs inside any semid generator.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from semid.data.types import Catalog, Interactions
from semid.errors import DataError
from semid.tokenizers.base import BaseTokenizer


class PrecomputedTokenizer(BaseTokenizer):
    """``PrecomputedTokenizer(source="lemb").fit(catalog)``; codes_ int64 [n_items, L(+1)]."""

    name = "precomputed"

    def __init__(self, *, source: str):
        self.source = source

    def config_dict(self) -> dict:
        return {"source": self.source}

    def _init_from_config(self, config: dict) -> None:
        self.source = config.get("source", "")

    def fit(self, catalog: Catalog, train: Interactions | None = None) -> PrecomputedTokenizer:
        if self.source in catalog.codes:
            codes = np.asarray(catalog.codes[self.source], dtype=np.int64)
            sizes = list(catalog.code_sizes.get(self.source) or (codes.max(axis=0) + 1).tolist())
        elif Path(self.source).exists():
            from semid.data.codes import read_code_index

            codes, sizes = read_code_index(self.source, n_items=catalog.n_items)
        else:
            raise DataError(
                f"precomputed codes {self.source!r}: neither a catalog code set {sorted(catalog.codes)} nor a file"
            )
        if codes.shape[0] != catalog.n_items:
            raise DataError(f"precomputed codes {self.source!r} have {codes.shape[0]} rows for {catalog.n_items} items")
        codes = codes.copy()
        missing = (codes < 0).any(axis=1)
        self.n_missing_ = int(missing.sum())
        if self.n_missing_:
            # Fallback: a missing item's tuple is (K_0, K_1, ..., rank) on one reserved code per level plus
            # its rank among missing items in the last level, so it is unique and never collides with real ones.
            sizes = [s + 1 for s in sizes]
            codes[missing] = np.array(sizes) - 1
            codes[missing, -1] = np.arange(self.n_missing_) % sizes[-1]
        self._finalize(codes, sizes)
        self.report_["n_items_without_codes"] = self.n_missing_
        return self
