"""Embedding cache: a hit skips the encoder; keys change with config and item ids; features dict."""

from __future__ import annotations

import numpy as np

from semid.data.types import Catalog, Interactions
from semid.encoders.cache import EmbeddingCache
from semid.encoders.features import FeaturesConfig, FieldSpec, build_fusid_features


def test_cache_hit_skips_encoder(tmp_path):
    cache = EmbeddingCache(tmp_path)
    calls = []

    def compute():
        calls.append(1)
        return np.ones((3, 2), np.float32), np.array([True, False, True])

    ids = np.array(["a", "b", "c"])
    e1, m1 = cache.get_or_compute("ds", "title", "text", {"model": "x"}, ids, compute)
    e2, m2 = cache.get_or_compute("ds", "title", "text", {"model": "x"}, ids, compute)
    assert len(calls) == 1 and cache.hits == 1
    np.testing.assert_array_equal(e1, e2)
    np.testing.assert_array_equal(m1, m2)
    cache.get_or_compute("ds", "title", "text", {"model": "y"}, ids, compute)  # other config
    cache.get_or_compute("ds", "title", "text", {"model": "x"}, ids[::-1], compute)  # other item order
    assert len(calls) == 3
    assert not list(tmp_path.glob("*.tmp"))


def test_build_features_modalities_and_cache(tmp_path):
    cat = Catalog(
        item_ids=["a", "b", "c", "d"],
        fields={"genres": [["x"], ["x", "y"], None, ["y"]]},
        embeddings={"img": np.eye(4, 3, dtype=np.float32)},
        codes={"text": np.array([[0, 1], [1, 0], [-1, -1], [1, 1]])},
        code_sizes={"text": [2, 2]},
    )
    train = Interactions.from_lists([[0, 1, 3], [1, 0]])
    cfg = FeaturesConfig(
        fields=(FieldSpec(field="genres", encoder="multihot"),), cache_dir=str(tmp_path), dataset="toy"
    )
    feats = build_fusid_features(cat, train, cfg)
    assert list(feats) == ["genres", "cooc", "img", "codes:text"]
    assert feats["genres"][1].tolist() == [True, True, False, True]
    assert feats["cooc"][1].tolist() == [True, True, False, True]  # item c never in train
    assert feats["codes:text"][0].shape == (4, 4) and feats["codes:text"][1].tolist() == [
        True,
        True,
        False,
        True,
    ]
    n_files = len(list(tmp_path.rglob("*.npy")))
    again = build_fusid_features(cat, train, cfg)
    assert len(list(tmp_path.rglob("*.npy"))) == n_files
    np.testing.assert_array_equal(again["cooc"][0], feats["cooc"][0])
