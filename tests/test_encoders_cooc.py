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


def test_item2vec_same_across_interpreters_with_different_hash_seeds():
    """Same vectors from two interpreters with different PYTHONHASHSEED (gensim 4 seeds init from `seed`, not str hash)."""
    pytest.importorskip("gensim")
    import os
    import subprocess
    import sys

    code = (
        "import numpy as np, sys\n"
        "from semid.data.types import Interactions\n"
        "from semid.encoders.cooc import Item2VecConfig, Item2VecEncoder\n"
        "t = Interactions.from_lists([[0, 1, 2, 0, 1, 2], [3, 4, 3, 4], [0, 1, 2]] * 5)\n"
        "e, _ = Item2VecEncoder(config=Item2VecConfig(dim=8, epochs=2)).fit_transform(t, 6)\n"
        "sys.stdout.write(e.tobytes().hex())\n"
    )
    outs = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "OMP_NUM_THREADS": "1"}
        outs.append(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                                   check=True).stdout)
    assert outs[0] == outs[1] and len(outs[0]) > 0
