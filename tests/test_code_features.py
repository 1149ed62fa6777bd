"""Code tuples as a modality: tuple -> weighted one-hot feature -> same tuple, in both feature paths."""

import numpy as np
import pytest

from semid.data.codes import onehot_to_codes
from semid.data.types import Catalog, Interactions
from semid.encoders.feature_spec import coerce_features
from semid.encoders.features import FeaturesConfig, attach_features, build_fusid_features
from semid.errors import ConfigError


def _catalog():
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 4, size=(6, 3))
    codes[2] = -1  # an item without a tuple: zero row, mask False
    cat = Catalog(item_ids=np.array([f"i{i}" for i in range(6)]))
    cat.codes["lemb"] = codes
    cat.code_sizes["lemb"] = [4, 4, 4]
    return cat, codes


@pytest.mark.parametrize("decay", [1.0, 0.5])
def test_codes_feature_round_trips_and_weights_levels(decay):
    cat, codes = _catalog()
    cfg = FeaturesConfig(cooc=False, cache=False, code_level_decay=decay)
    emb, mask = build_fusid_features(cat, None, cfg)["codes:lemb"]
    assert emb.shape == (6, 12) and mask.tolist() == [True, True, False, True, True, True]
    np.testing.assert_array_equal(onehot_to_codes(emb, [4, 4, 4]), codes)
    # level l's nonzero equals decay**l (row 0 has all three levels present)
    np.testing.assert_allclose(emb[0][emb[0] > 0], [1.0, decay, decay**2])
    assert not emb[2].any()


def test_pipeline_spec_decay_and_bad_specs():
    cat, codes = _catalog()
    train = Interactions.from_lists([[0, 1, 3]])
    attach_features(coerce_features("t=codes:lemb,decay=0.25"), cat, train, dataset="x", cache=False)
    emb = cat.embeddings["t"]
    np.testing.assert_allclose(emb[1][emb[1] > 0], [1.0, 0.25, 0.0625])
    np.testing.assert_array_equal(onehot_to_codes(emb, [4, 4, 4]), codes)
    for bad in ("t=codes:nope", "t=codes:lemb,decay=2", "t=codes:lemb,scale=1"):
        with pytest.raises(ConfigError):
            attach_features(coerce_features((bad,)), cat, train, dataset="x", cache=False)
    with pytest.raises(ConfigError, match="code_level_decay"):
        build_fusid_features(cat, None, FeaturesConfig(cooc=False, cache=False, code_level_decay=0.0))


def test_rqvae_and_musicrec_inputs_take_the_same_weighted_codes():
    from semid.tokenizers.modality import modality_features

    cat, codes = _catalog()
    plain, half = modality_features(cat, "lemb"), modality_features(cat, "lemb", 0.5)
    np.testing.assert_array_equal(onehot_to_codes(plain, [4, 4, 4]), codes)
    np.testing.assert_allclose(half[0][half[0] > 0], [1.0, 0.5, 0.25])
    with pytest.raises(ConfigError, match="code_level_decay"):
        modality_features(cat, "lemb", 1.5)
