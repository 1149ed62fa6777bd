"""The one tokenizer protocol: fit / encode / decode / save / load (+ transform where items can be new).

Every item tokenizer (FusID, MusicRec, TIGER/LETTER RQ-VAE, RQ-KMeans, precomputed, random)
maps item indices to fixed-length code tuples, so any tokenizer feeds any generative model.
Tokenizers that compute codes from item features (FusID, RQ-VAE, RQ-KMeans) also implement
``InductiveTokenizer.transform``, which codes items the tokenizer was not fitted on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from semid.data.types import Catalog, Interactions


@runtime_checkable
class Tokenizer(Protocol):
    """Item -> code tuple.

    After ``fit``:
      codes_:          int64 [n_items, L]  unique per item (collisions resolved by the tokenizer)
      codebook_sizes_: list[int] of length L, the vocabulary size of each position
    """

    name: str
    codes_: np.ndarray
    codebook_sizes_: list[int]

    def fit(self, catalog: Catalog, train: Interactions | None = None) -> Tokenizer: ...

    def encode(self, items: np.ndarray) -> np.ndarray:
        """int item indices [N] -> int64 codes [N, L]."""
        ...

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """int64 codes [N, L] -> item indices [N] (-1 where a tuple names no item)."""
        ...

    def save(self, path: str | Path) -> None: ...

    @classmethod
    def load(cls, path: str | Path) -> Tokenizer: ...


@runtime_checkable
class InductiveTokenizer(Tokenizer, Protocol):
    """A Tokenizer that can code items it was not fitted on (FusID, RQ-VAE, RQ-KMeans)."""

    def transform(self, catalog: Catalog, train: Interactions | None = None) -> np.ndarray:
        """Raw codes int64 [N, L_raw] of every item of ``catalog``, before collision resolution.

        ``catalog`` must be built like the fitted one (same modality keys and feature widths; its items
        may be new); ``train`` is only read by tokenizers whose features use interactions. For the fitted
        catalog the result equals ``codes_raw_``. The codes are not made unique: a caller adding items to
        a live catalog resolves the new tuples against ``codes_`` itself (``L_raw`` excludes any
        disambiguating digit). Does not change the tokenizer.
        """
        ...
