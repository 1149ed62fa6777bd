"""MostPopular: exact top-k with index tie-break, optional history exclusion, empty history."""

from __future__ import annotations

import numpy as np

from semid.data.types import Catalog, EvalSet, Interactions
from semid.eval import evaluate
from semid.models.popular import MostPopular
from semid.models.protocol import Recommender


def _fit(**kw):
    # counts: item0=1, item1=3, item2=3, item3=0, item4=2
    train = Interactions.from_lists([[1, 2, 4], [1, 2], [0, 1, 2, 4]])
    return MostPopular(**kw).fit(train, Catalog(item_ids=[f"i{i}" for i in range(5)]))


def test_exact_output_and_tie_break():
    m = _fit()
    assert isinstance(m, Recommender)
    items, scores = m.recommend([np.array([1]), np.array([], dtype=np.int64)], k=4)
    np.testing.assert_array_equal(
        items, [[1, 2, 4, 0], [1, 2, 4, 0]]
    )  # 1 and 2 tie at 3: smaller index first
    np.testing.assert_array_equal(scores[0], [3, 3, 2, 1])


def test_k_larger_than_catalog_pads():
    items, scores = _fit().recommend([np.array([0])], k=7)
    np.testing.assert_array_equal(items, [[1, 2, 4, 0, 3, -1, -1]])
    assert np.isneginf(scores[0, 5:]).all()


def test_exclude_history():
    items, _ = _fit(exclude_history=True).recommend([np.array([1, 4])], k=3)
    np.testing.assert_array_equal(items, [[2, 0, 3]])


def test_evaluates_with_empty_history():
    m = _fit()
    es = EvalSet(Interactions.from_lists([[], [0]]), Interactions.from_lists([[1], [2]]))
    out = evaluate(m, es, ks=(1, 2), progress=False)
    assert out["HR@1"] == 0.5 and out["HR@2"] == 1.0


def test_save_load_recommends_identically(tmp_path):
    import pytest

    from semid.errors import CheckpointError

    m = _fit(exclude_history=True)
    m.save(tmp_path / "m")
    back = MostPopular.load(tmp_path / "m")
    hs = [np.array([1]), np.array([], np.int64), np.array([2, 4])]
    for a, b in zip(m.recommend(hs, 4), back.recommend(hs, 4), strict=True):
        np.testing.assert_array_equal(a, b)
    assert back.exclude_history and isinstance(back, Recommender)
    with pytest.raises(CheckpointError, match="config.json: missing"):
        MostPopular.load(tmp_path / "nothing")
    (tmp_path / "m" / "counts.npy").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="counts.npy"):
        MostPopular.load(tmp_path / "m")
