"""Plain data types every semid component consumes: an item Catalog and CSR Interactions.

Models never see a dataframe: sequences are CSR (offsets + item indices), item features are
numpy arrays aligned to the catalog's item index 0..n_items-1.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from semid.data.validate import describe_duplicates, find_duplicates
from semid.errors import DataError


@dataclass
class Catalog:
    """Items and their content.

    item_ids:   str [N]   external ids (ASIN, movieId, track URI, ...); row i is item index i.
    fields:     raw per-item content by field name, each a list of length N whose entries are
                a str (text), a list[str] (a set: genres, tags, categories) or None (missing).
    embeddings: precomputed features by modality name, float32 [N, D] (rows of missing items are 0).
    masks:      bool [N] per embedding modality: True where the item has that modality.
    codes:      precomputed discrete code tuples by name, int64 [N, L] (-1 rows where missing),
                e.g. MQL4GRec's text/image indices; ``code_sizes[name]`` is the per-level codebook size.
    """

    item_ids: np.ndarray
    fields: dict[str, list] = field(default_factory=dict)
    embeddings: dict[str, np.ndarray] = field(default_factory=dict)
    masks: dict[str, np.ndarray] = field(default_factory=dict)
    codes: dict[str, np.ndarray] = field(default_factory=dict)
    code_sizes: dict[str, list[int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.item_ids = np.asarray(self.item_ids).astype(str)
        n = len(self.item_ids)
        if len(set(self.item_ids.tolist())) != n:
            dups = describe_duplicates(find_duplicates(self.item_ids.tolist()), "item ids")
            raise DataError(f"Catalog.item_ids has {dups}; every item needs one unique id")
        for name, values in self.fields.items():
            if len(values) != n:
                raise DataError(f"Catalog field {name!r} has {len(values)} rows, expected {n} (one per item)")
        for name, emb in list(self.embeddings.items()):
            emb = np.asarray(emb, dtype=np.float32)
            if emb.ndim != 2 or emb.shape[0] != n:
                raise DataError(f"embedding {name!r} has shape {emb.shape}, expected ({n}, D)")
            mask = self.masks.get(name)
            mask = np.ones(n, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
            bad = ~np.isfinite(emb).all(axis=1) & mask
            if bad.any():
                raise DataError(
                    f"embedding {name!r} has NaN/inf in {int(bad.sum())} rows (first item "
                    f"{str(self.item_ids[np.flatnonzero(bad)[0]])!r}); fix the file or mark those rows missing"
                )
            emb[~mask] = 0.0
            self.embeddings[name] = emb
            self.masks[name] = mask
        for name, c in list(self.codes.items()):
            c = np.asarray(c, dtype=np.int64)
            if c.ndim != 2 or c.shape[0] != n:
                raise DataError(f"codes {name!r} have shape {c.shape}, expected ({n}, L)")
            self.codes[name] = c

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def index_of(self) -> dict[str, int]:
        """External id -> item index."""
        return {iid: i for i, iid in enumerate(self.item_ids.tolist())}

    def field_coverage(self) -> dict[str, float]:
        """Fraction of items that have each field / embedding / code modality."""
        cov: dict[str, float] = {}
        n = max(self.n_items, 1)
        for name, vals in self.fields.items():
            cov[name] = sum(v is not None and v != "" and v != [] for v in vals) / n
        for name, m in self.masks.items():
            cov[f"emb:{name}"] = float(m.mean()) if len(m) else 0.0
        for name, c in self.codes.items():
            cov[f"codes:{name}"] = float((c >= 0).all(axis=1).mean()) if len(c) else 0.0
        return cov

    def subset(self, keep: np.ndarray) -> Catalog:
        """Catalog restricted to item indices ``keep`` (int [M]), re-indexed 0..M-1 in that order."""
        keep = np.asarray(keep, dtype=np.int64)
        return Catalog(
            item_ids=self.item_ids[keep],
            fields={k: [v[i] for i in keep] for k, v in self.fields.items()},
            embeddings={k: v[keep] for k, v in self.embeddings.items()},
            masks={k: v[keep] for k, v in self.masks.items()},
            codes={k: v[keep] for k, v in self.codes.items()},
            code_sizes=dict(self.code_sizes),
        )


@dataclass
class Interactions:
    """Chronological item sequences, CSR-style.

    offsets:  int64 [U + 1]  sequence u is items[offsets[u]:offsets[u+1]]
    items:    int64 [nnz]    item indices into the Catalog
    user_ids: str [U]        external user / playlist ids
    """

    offsets: np.ndarray
    items: np.ndarray
    user_ids: np.ndarray

    def __post_init__(self) -> None:
        self.offsets = np.asarray(self.offsets, dtype=np.int64)
        self.items = np.asarray(self.items, dtype=np.int64)
        self.user_ids = np.asarray(self.user_ids).astype(str)
        if self.offsets.ndim != 1 or len(self.offsets) != len(self.user_ids) + 1:
            raise DataError(
                f"offsets has {len(self.offsets)} entries for {len(self.user_ids)} users; need U+1"
            )
        if self.offsets[0] != 0 or self.offsets[-1] != len(self.items) or (np.diff(self.offsets) < 0).any():
            raise DataError("offsets must start at 0, be non-decreasing and end at len(items)")

    @classmethod
    def from_lists(cls, seqs: list, user_ids=None) -> Interactions:
        lens = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs))
        offsets = np.zeros(len(seqs) + 1, dtype=np.int64)
        np.cumsum(lens, out=offsets[1:])
        items = (
            np.concatenate([np.asarray(s, dtype=np.int64) for s in seqs])
            if len(seqs)
            else np.zeros(0, np.int64)
        )
        if user_ids is None:
            user_ids = np.arange(len(seqs)).astype(str)
        return cls(offsets=offsets, items=items, user_ids=np.asarray(user_ids))

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_interactions(self) -> int:
        return len(self.items)

    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def seq(self, u: int) -> np.ndarray:
        return self.items[self.offsets[u] : self.offsets[u + 1]]

    def to_lists(self) -> list[np.ndarray]:
        return [self.seq(u) for u in range(self.n_users)]


@dataclass
class Dataset:
    """A named catalog plus its users' sequences."""

    name: str
    catalog: Catalog
    interactions: Interactions

    def __post_init__(self) -> None:
        n = self.catalog.n_items
        if len(self.interactions.items) and (
            self.interactions.items.min() < 0 or self.interactions.items.max() >= n
        ):
            raise DataError(f"dataset {self.name!r}: interactions reference item indices outside [0, {n})")


@dataclass
class EvalSet:
    """Evaluation queries: a history per user and one or more held-out targets.

    histories: CSR Interactions (chronological, may be empty only if the caller allows it)
    targets:   CSR Interactions, same users; one item for next-item, several for continuation.
    """

    histories: Interactions
    targets: Interactions

    def __len__(self) -> int:
        return self.histories.n_users


@dataclass
class Split:
    """train: the sequences models fit on; valid/test: EvalSets. ``name`` says which protocol."""

    name: str
    train: Interactions
    valid: EvalSet
    test: EvalSet
