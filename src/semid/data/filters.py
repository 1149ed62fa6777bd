"""Deterministic dataset filters: drop short sequences (``min_length``) and the iterative k-core
(``k_core``) that every Amazon / MovieLens benchmark applies before splitting."""

from __future__ import annotations

import numpy as np

from semid.data.types import Dataset, Interactions


def _keep_users(inter: Interactions, keep: np.ndarray) -> Interactions:
    seqs = [inter.seq(u) for u in np.flatnonzero(keep)]
    return Interactions.from_lists(seqs, user_ids=inter.user_ids[keep])


def min_length(ds: Dataset, n: int) -> Dataset:
    """Keep the users with at least ``n`` interactions; the catalog is unchanged."""
    keep = ds.interactions.lengths() >= n
    return Dataset(name=ds.name, catalog=ds.catalog, interactions=_keep_users(ds.interactions, keep))


def k_core(ds: Dataset, k: int) -> Dataset:
    """Iterative k-core: repeatedly drop users with < k interactions and items with < k interactions
    (counted with repeats) until both hold. Surviving items keep their relative order and are
    re-indexed 0..M-1 (``Catalog.subset``); users keep their order; sequences keep their order.
    """
    inter = ds.interactions
    n_items = ds.catalog.n_items
    user_of = np.repeat(np.arange(inter.n_users), inter.lengths())
    alive = np.ones(len(inter.items), dtype=bool)  # per interaction
    while True:
        ucount = np.bincount(user_of[alive], minlength=inter.n_users)
        icount = np.bincount(inter.items[alive], minlength=n_items)
        bad = alive & ((ucount[user_of] < k) | (icount[inter.items] < k))
        if not bad.any():
            break
        alive &= ~bad
    keep_items = np.flatnonzero(np.bincount(inter.items[alive], minlength=n_items) > 0)
    remap = np.full(n_items, -1, dtype=np.int64)
    remap[keep_items] = np.arange(len(keep_items))
    keep_users = np.bincount(user_of[alive], minlength=inter.n_users) > 0
    seqs = [
        remap[inter.seq(u)[alive[inter.offsets[u] : inter.offsets[u + 1]]]]
        for u in np.flatnonzero(keep_users)
    ]
    new = Interactions.from_lists(seqs, user_ids=inter.user_ids[keep_users])
    return Dataset(name=ds.name, catalog=ds.catalog.subset(keep_items), interactions=new)
