"""item2vec: train-only, deterministic, unseen items masked out."""

from __future__ import annotations

import numpy as np
import pytest

from semid.data.types import Interactions
from semid.encoders.cooc import Item2VecConfig, Item2VecEncoder


def test_item2vec_deterministic_and_masks_unseen():
    pytest.importorskip("gensim")
    train = Interactions.from_lists([[0, 1, 2, 0, 1, 2], [3, 4, 3, 4], [0, 1, 2]] * 5)
    cfg = Item2VecConfig(dim=8, epochs=3)
    a, mask = Item2VecEncoder(config=cfg).fit_transform(train, 6)
    b, _ = Item2VecEncoder(config=cfg).fit_transform(train, 6)
    np.testing.assert_array_equal(a, b)
    assert mask.tolist() == [True] * 5 + [False] and (a[5] == 0).all()
