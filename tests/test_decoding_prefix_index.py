"""PrefixIndex: dense and CSR mask paths agree with a brute-force scan; child/item lookups; bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

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
