"""Conflict-free PQ codes by reassignment: unique, minimal moves, search parity with the exhaustive reference."""

from __future__ import annotations

import numpy as np

from semid.quantize.kmeans import KMeansConfig
from semid.quantize.pq import ProductQuantizer
from semid.quantize.unique import reassign_conflicts


def _setup(n_items=60, n=3, d=4, K=6, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n_items, n, d)).astype(np.float32)
    x[1] = x[0]  # identical inputs: nearest-centroid PQ cannot separate them
    x[2] = x[0]
    pq = ProductQuantizer(n, K, kmeans=KMeansConfig(backend="torch", n_iter=10)).fit(x)
    return x, pq, pq.encode(x)


def _err(x, cents, codes):
    """Squared quantization error per item: (N,)."""
    return sum(((x[:, j] - cents[j][codes[:, j]]) ** 2).sum(1) for j in range(x.shape[1]))


def test_reassign_gives_unique_codes_with_minimal_changes():
    x, pq, raw = _setup()
    assert len({tuple(r) for r in raw.tolist()}) < len(raw)  # 60 items in 6^3 tuples: conflicts exist
    codes, moved = reassign_conflicts(x, pq.centroids_, raw)
    assert codes.shape == raw.shape and len({tuple(r) for r in codes.tolist()}) == len(codes)
    assert ((codes != raw).any(1) == moved).all()
    # only conflicting items move; each group keeps one member (the closest one) on its nearest tuple
    _, inv, cnt = np.unique(raw, axis=0, return_inverse=True, return_counts=True)
    inv = inv.ravel()
    assert not moved[cnt[inv] == 1].any()
    for g in np.flatnonzero(cnt > 1):
        members = np.flatnonzero(inv == g)
        assert (~moved[members]).sum() == 1
        err = _err(x[members], pq.centroids_, raw[members])
        assert not moved[members[np.lexsort((members, err))[0]]]
    # moved items change one position (two only if every one-position move was taken)
    assert ((codes[moved] != raw[moved]).sum(1) <= 2).all() and ((codes[moved] != raw[moved]).sum(1) >= 1).all()
    # items 0..2 had identical inputs and now have three different codes
    assert len({tuple(codes[i]) for i in range(3)}) == 3


def test_moved_item_takes_the_cheapest_free_single_change():
    x, pq, raw = _setup(n_items=20, K=8, seed=3)
    codes, moved = reassign_conflicts(x, pq.centroids_, raw)
    i = int(np.flatnonzero(moved)[0])
    d = [((x[i, j][None] - pq.centroids_[j]) ** 2).sum(1) for j in range(3)]  # per position (K,)
    others = {tuple(r) for k, r in enumerate(codes.tolist()) if k != i}
    best = min(
        (d[j][k] - d[j][raw[i, j]], j, k) for j in range(3) for k in range(8)
        if k != raw[i, j] and tuple(np.where(np.arange(3) == j, k, raw[i])) not in others
    )
    # every tuple free at the end was free when item i moved, so its pick must cost exactly the brute-force best
    assert (codes[i] != raw[i]).sum() == 1
    pick_cost = sum(d[j][codes[i, j]] - d[j][raw[i, j]] for j in range(3))
    assert np.isclose(pick_cost, best[0])


def test_two_position_move_when_every_single_move_is_taken():
    # K=2, n=3: 8 tuples. Items 0, 1 share (0,0,0); the three one-position neighbours are all taken.
    cents = np.array([[[0.0], [1.0]]] * 3, dtype=np.float32)  # (n=3, K=2, d=1): code k sits at value k
    codes = np.array([[0, 0, 0], [0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]])
    x = cents[np.arange(3), codes].reshape(5, 3, 1).copy()
    x[1, 2, 0] = 0.4  # item 1 leans towards code 1 at positions 2 then 1
    x[1, 1, 0] = 0.3
    new, moved = reassign_conflicts(x, cents, codes)
    assert moved.tolist() == [False, True, False, False, False]
    assert new[1].tolist() == [0, 1, 1]  # cheapest free pair: positions 1 and 2
    assert len({tuple(r) for r in new.tolist()}) == 5


def test_no_conflict_is_a_no_op():
    x, pq, raw = _setup(n_items=5, K=8)
    codes, moved = reassign_conflicts(x[3:], pq.centroids_, raw[3:])
    np.testing.assert_array_equal(codes, raw[3:])
    assert not moved.any()
