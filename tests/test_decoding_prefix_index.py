"""PrefixIndex: dense and CSR mask paths agree with a brute-force scan; child/item lookups; bad input;
in-place add / remove equal a rebuild from scratch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from semid.decoding import PrefixIndex
from semid.errors import DataError


def _codes(n=40, sizes=(4, 5, 6), seed=0, offset=10):
    rng = np.random.default_rng(seed)
    grid = np.array(np.meshgrid(*[np.arange(s) for s in sizes], indexing="ij")).reshape(len(sizes), -1).T
    codes = grid[rng.choice(len(grid), n, replace=False)]
    pos_off = offset + np.concatenate([[0], np.cumsum(sizes)[:-1]])
    return codes + pos_off  # global token ids


def _brute_allowed(tok, prefix_tokens, level):
    rows = tok[(tok[:, :level] == np.asarray(prefix_tokens)).all(axis=1)]
    return set(rows[:, level].tolist())


@pytest.mark.parametrize("dense_limit", [0, 1 << 24])
def test_walk_matches_brute_force(dense_limit):
    tok = _codes()
    idx = PrefixIndex.from_codes(tok, dense_limit=dense_limit)
    assert (idx.dense[0] is None) == (dense_limit == 0)
    # walk every item's code: at each level the mask equals the brute-force set and the child is valid
    prefix = torch.zeros(len(tok), dtype=torch.long)
    for lvl in range(tok.shape[1]):
        mask = idx.allowed(lvl, prefix)
        for i in range(len(tok)):
            got = set((torch.nonzero(mask[i]).flatten() + idx.lo[lvl]).tolist())
            assert got == _brute_allowed(tok, tok[i, :lvl], lvl)
            assert got == set(idx.next_tokens(tok[i, :lvl].tolist()))
        prefix, ok = idx.child(lvl, prefix, torch.as_tensor(tok[:, lvl] - idx.lo[lvl]))
        assert bool(ok.all())
    assert idx.items(prefix).tolist() == list(range(len(tok)))


def test_child_rejects_missing_codes():
    tok = np.array([[0, 5], [1, 6]])
    idx = PrefixIndex.from_codes(tok)
    p, ok = idx.child(0, torch.tensor([0, 0]), torch.tensor([0, 1]))
    assert ok.tolist() == [True, True]
    _, ok = idx.child(1, p, torch.tensor([1, 1]))  # (0, 6) is not an item, (1, 6) is
    assert ok.tolist() == [False, True]
    assert idx.next_tokens([0]) == [5] and idx.next_tokens([0, 6]) == [] and idx.next_tokens([3]) == []


def test_duplicate_codes_are_an_error():
    with pytest.raises(DataError, match="share a code"):
        PrefixIndex.from_codes(np.array([[0, 1], [0, 1], [1, 1]]))
    with pytest.raises(DataError, match="negative"):
        PrefixIndex.from_codes(np.array([[0, -1]]))


def test_memory_and_device_copy():
    idx = PrefixIndex.from_codes(_codes())
    assert idx.nbytes() > 0 and idx.n_items == 40
    assert idx.to("cpu") is idx


def _same_index(a: PrefixIndex, b: PrefixIndex) -> None:
    """Every array the searches read is equal (keys, CSR pointers, parents, leaves, dense masks, layout)."""
    assert (a.lo, a.sizes, a.n_prefix, a.n_items, a.n_leaves) == (b.lo, b.sizes, b.n_prefix, b.n_items, b.n_leaves)
    for name in ("_keys_np", "_ptr_np", "_parent_np"):
        for x, y in zip(getattr(a, name), getattr(b, name), strict=True):
            np.testing.assert_array_equal(x, y, err_msg=name)
    np.testing.assert_array_equal(a._leaf_np, b._leaf_np)
    for lvl in range(a.L):
        assert torch.equal(a.keys[lvl], b.keys[lvl]) and torch.equal(a.ptr[lvl], b.ptr[lvl])
        assert (a.dense[lvl] is None) == (b.dense[lvl] is None)
        if a.dense[lvl] is not None:
            assert torch.equal(a.dense[lvl], b.dense[lvl])
    assert torch.equal(a.leaf_item, b.leaf_item)


SIZES = (3, 4, 3)
GRID = np.array(np.meshgrid(*[np.arange(s) for s in SIZES], indexing="ij")).reshape(3, -1).T  # (36, 3)
LO = [5, 8, 12]  # global token offset of each level


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), dense_limit=st.sampled_from([0, 1 << 24]))
def test_patched_index_equals_index_rebuilt_from_scratch(data, dense_limit):
    """Random add / delete sequences: the index patched in place equals from_codes on the live codes,
    and decoding walks reach exactly the live items."""
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    perm = rng.permutation(len(GRID))
    n0 = data.draw(st.integers(1, 8))
    idx = PrefixIndex.from_codes(GRID[perm[:n0]] + LO, lo=LO, sizes=SIZES, dense_limit=dense_limit)
    free = list(perm[n0:])  # code tuples never used so far
    live = {i: perm[i] for i in range(n0)}  # item index -> grid row
    for _ in range(data.draw(st.integers(1, 8))):
        if data.draw(st.booleans()) and free:  # add 1..4 new items with fresh codes
            m = min(len(free), data.draw(st.integers(1, 4)))
            rows, free = free[:m], free[m:]
            start = idx.n_items
            idx.add_items(GRID[rows] + LO)
            live.update({start + j: r for j, r in enumerate(rows)})
        elif len(live) > 1:  # remove 1..len-1 live items
            m = data.draw(st.integers(1, len(live) - 1))
            gone = rng.choice(sorted(live), m, replace=False)
            idx.remove_items(gone)
            for g in gone.tolist():
                free.append(live.pop(g))  # a removed code may be taken by a later item
        ids = np.array(sorted(live))
        ref = PrefixIndex.from_codes(GRID[[live[i] for i in ids]] + LO, items=ids, n_items=idx.n_items,
                                     lo=LO, sizes=SIZES, dense_limit=dense_limit)
        _same_index(idx, ref)
        _same_index(idx, idx.rebuilt())
        tok = GRID[[live[i] for i in ids]] + LO
        leaf, ok = idx._leaf_of(tok)
        assert ok.all() and idx.items(torch.as_tensor(leaf)).tolist() == ids.tolist()
    assert idx.rebuilds == 0


def test_patch_errors_leave_the_index_unchanged_and_out_of_layout_tokens_rebuild():
    idx = PrefixIndex.from_codes(np.array([[0, 5], [1, 6]]))
    before = idx.rebuilt()
    with pytest.raises(DataError, match="with a live item"):
        idx.add_items(np.array([[2, 5], [1, 6]]))
    with pytest.raises(DataError, match="share a code"):
        idx.add_items(np.array([[0, 6], [0, 6]]))
    with pytest.raises(DataError, match="already used"):
        idx.add_items(np.array([[0, 6]]), items=np.array([1]))
    with pytest.raises(DataError, match="not in the index"):
        idx.remove_items(np.array([7]))
    with pytest.raises(DataError, match="every item"):
        idx.remove_items(np.array([0, 1]))
    _same_index(idx, before)
    idx.add_items(np.array([[3, 9]]))  # outside the layout [0, 2) x [5, 7): re-laid out, same object
    assert idx.rebuilds == 1 and idx.sizes == [4, 5] and idx.n_items == 3
    assert idx.next_tokens([3]) == [9]
    idx.remove_items(np.array([0]))
    assert idx.next_tokens([0]) == [] and idx.n_leaves == 2 and idx.n_items == 3
    with pytest.raises(DataError, match="outside the layout"):
        PrefixIndex.from_codes(np.array([[0, 9]]), lo=[0, 5], sizes=[2, 2])
