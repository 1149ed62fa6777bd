"""min_length and k-core: invariants, stability, determinism, catalog re-indexing."""

from __future__ import annotations

import numpy as np

from semid.data import Catalog, Dataset, Interactions, k_core, load_dataset, min_length


def _ds(seed=0, n_users=60, n_items=40):
    rng = np.random.default_rng(seed)
    seqs = [rng.zipf(1.6, size=rng.integers(1, 12)) % n_items for _ in range(n_users)]
    cat = Catalog(
        item_ids=[f"i{j}" for j in range(n_items)],
        fields={"t": [f"title {j}" for j in range(n_items)]},
        codes={"c": np.arange(n_items)[:, None].repeat(2, 1)},
        code_sizes={"c": [n_items, n_items]},
    )
    return Dataset("toy", cat, Interactions.from_lists(seqs, user_ids=[f"u{u}" for u in range(n_users)]))


def test_min_length():
    ds = _ds()
    out = min_length(ds, 5)
    assert (out.interactions.lengths() >= 5).all()
    assert out.interactions.n_users == int((ds.interactions.lengths() >= 5).sum())
    assert out.catalog is ds.catalog


def test_k_core_invariants_and_reindex():
    ds = _ds()
    for k in (2, 3):
        out = k_core(ds, k)
        inter = out.interactions
        assert (inter.lengths() >= k).all()
        counts = np.bincount(inter.items, minlength=out.catalog.n_items)
        assert (counts >= k).all()  # every kept item has >= k interactions, and none is unused
        assert k_core(out, k).interactions.n_interactions == inter.n_interactions  # stable
        # items map back to the same external ids and content
        old = ds.catalog.index_of()
        for u, uid in enumerate(inter.user_ids.tolist()):
            orig = ds.interactions.seq(int(uid[1:]))
            kept_ids = out.catalog.item_ids[inter.seq(u)].tolist()
            assert kept_ids == [
                x for x in ds.catalog.item_ids[orig].tolist() if x in set(out.catalog.item_ids.tolist())
            ]
        for j, iid in enumerate(out.catalog.item_ids.tolist()):
            assert out.catalog.fields["t"][j] == ds.catalog.fields["t"][old[iid]]
            assert out.catalog.codes["c"][j, 0] == old[iid]
    a, b = k_core(ds, 3), k_core(ds, 3)
    np.testing.assert_array_equal(a.interactions.items, b.interactions.items)


def test_k_core_movielens_is_already_20_core_for_users():
    ds = load_dataset("movielens")
    out = k_core(ds, 5)
    assert out.interactions.n_users <= 610 and (np.bincount(out.interactions.items) >= 5).all()
