"""Multi-hot set encoder: vocabulary, min count, projections, missing rows."""

from __future__ import annotations

import numpy as np

from semid.encoders.multihot import MultiHotConfig, MultiHotEncoder


def test_multihot_vocab_min_count_and_mask():
    vals = [["Comedy", "Drama"], ["comedy"], None, ["Rare"], []]
    emb, mask = MultiHotEncoder(config=MultiHotConfig(min_count=2)).encode(vals)
    assert emb.shape == (5, 1) and mask.tolist() == [True, True, False, False, False]
    emb, mask = MultiHotEncoder().encode(vals)
    assert emb.shape == (5, 3) and emb[0].sum() == 2 and mask.tolist() == [True, True, False, True, False]


def test_projections_fixed_and_shaped():
    vals = [["a", "b"], ["b", "c"], ["c", "d"], ["a"], None]
    r1, _ = MultiHotEncoder(config=MultiHotConfig(dim=3, seed=1)).encode(vals)
    r2, _ = MultiHotEncoder(config=MultiHotConfig(dim=3, seed=1)).encode(vals)
    np.testing.assert_array_equal(r1, r2)
    svd, mask = MultiHotEncoder(config=MultiHotConfig(dim=2, projection="svd")).encode(vals)
    assert svd.shape == (5, 2) and (svd[4] == 0).all() and mask[:4].all()
