"""Random unique IDs (the ID-source control): unique, seeded, within each level's codebook, reloadable."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from semid.data.types import Catalog
from semid.errors import ConfigError
from semid.tokenizers.random_ids import RandomIDsConfig, RandomIDsTokenizer


def _catalog(n: int) -> Catalog:
    return Catalog(item_ids=[f"i{k}" for k in range(n)])


@settings(max_examples=40, deadline=None)
@given(sizes=st.lists(st.integers(1, 6), min_size=1, max_size=4), seed=st.integers(0, 5), data=st.data())
def test_tuples_are_unique_in_range_and_seeded(sizes, seed, data):
    space = int(np.prod(sizes))
    n = data.draw(st.integers(1, space))
    tok = RandomIDsTokenizer(config=RandomIDsConfig(n_codes=tuple(sizes), seed=seed)).fit(_catalog(n))
    codes = tok.codes_
    assert codes.shape == (n, len(sizes))  # no extra digit: never needed
    assert len({tuple(r) for r in codes.tolist()}) == n
    assert (codes >= 0).all() and (codes < np.array(sizes)).all()
    assert tok.codebook_sizes_ == sizes and tok.report_["conflict_rate"] == 0.0
    again = RandomIDsTokenizer(config=RandomIDsConfig(n_codes=tuple(sizes), seed=seed)).fit(_catalog(n))
    np.testing.assert_array_equal(again.codes_, codes)
    assert tok.decode(tok.encode(np.arange(n))).tolist() == list(range(n))


def test_full_space_is_a_permutation_and_seeds_differ():
    a = RandomIDsTokenizer(config=RandomIDsConfig(n_codes=(4, 4), seed=0)).fit(_catalog(16)).codes_
    b = RandomIDsTokenizer(config=RandomIDsConfig(n_codes=(4, 4), seed=1)).fit(_catalog(16)).codes_
    assert sorted((a[:, 0] * 4 + a[:, 1]).tolist()) == list(range(16))
    assert not np.array_equal(a, b)


def test_too_small_a_space_is_refused():
    with pytest.raises(ConfigError, match="4 distinct tuples for 5 items"):
        RandomIDsTokenizer(config=RandomIDsConfig(n_codes=(2, 2))).fit(_catalog(5))
    with pytest.raises(ConfigError, match="K >= 1"):
        RandomIDsConfig(n_codes=(4, 0))


def test_save_load_round_trip(tmp_path):
    tok = RandomIDsTokenizer(config=RandomIDsConfig(n_codes=(8, 8), seed=3)).fit(_catalog(20))
    tok.save(tmp_path)
    back = RandomIDsTokenizer.load(tmp_path)
    assert back.config == tok.config
    np.testing.assert_array_equal(back.codes_, tok.codes_)
