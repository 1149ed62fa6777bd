"""RQ-KMeans tokenizer: residual error falls per level, unique IDs, save/load and transform round-trips."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from semid.data.types import Catalog
from semid.errors import ConfigError
from semid.tokenizers.protocol import InductiveTokenizer, Tokenizer
from semid.tokenizers.rqkmeans import RQKMeansConfig, RQKMeansTokenizer

torch.set_num_threads(1)


def _catalog(n=300, d=16, seed=0, **extra):
    rng = np.random.default_rng(seed)
    return Catalog(item_ids=np.arange(n).astype(str),
                   embeddings={"text": rng.normal(size=(n, d)).astype(np.float32), **extra})


CFG = RQKMeansConfig(n_codes=(8, 8, 8), n_iter=20)


def test_residual_mse_falls_with_each_level_and_ids_are_unique():
    cat = _catalog()
    tok = RQKMeansTokenizer(config=CFG).fit(cat)
    assert isinstance(tok, Tokenizer) and isinstance(tok, InductiveTokenizer)
    mse = [tok.report_["input_mse"], *tok.report_["residual_mse"]]
    assert len(mse) == 4 and all(a > b for a, b in zip(mse, mse[1:], strict=False))
    # The residual is what the levels did not explain: x - sum of the chosen centroids.
    x = cat.embeddings["text"]
    rec = sum(c[tok.codes_raw_[:, lvl]] for lvl, c in enumerate(tok.centroids_))
    assert np.mean((x - rec) ** 2) == pytest.approx(tok.report_["residual_mse"][-1], rel=1e-5)
    assert tok.codes_raw_.shape == (300, 3) and tok.codes_raw_.max() < 8
    assert len({tuple(r) for r in tok.codes_.tolist()}) == 300
    assert np.array_equal(tok.decode(tok.encode(np.arange(300))), np.arange(300))
    assert tok.report_["n_levels_final"] == tok.codes_.shape[1]


def test_more_codes_per_level_lower_the_error():
    cat = _catalog()
    small = RQKMeansTokenizer(config=RQKMeansConfig(n_codes=(4, 4), n_iter=20)).fit(cat)
    big = RQKMeansTokenizer(config=RQKMeansConfig(n_codes=(16, 16), n_iter=20)).fit(cat)
    assert big.report_["residual_mse"][-1] < small.report_["residual_mse"][-1]


def test_codes_round_trip_through_save_load_and_transform(tmp_path):
    cat = _catalog()
    tok = RQKMeansTokenizer(config=CFG).fit(cat)
    tok.save(tmp_path / "tok")
    back = RQKMeansTokenizer.load(tmp_path / "tok")
    assert back.config == tok.config
    np.testing.assert_array_equal(back.codes_, tok.codes_)
    np.testing.assert_array_equal(back.codes_raw_, tok.codes_raw_)
    # transform of the fitted items reproduces their raw codes, before and after reloading
    np.testing.assert_array_equal(tok.transform(cat), tok.codes_raw_)
    np.testing.assert_array_equal(back.transform(cat), tok.codes_raw_)
    # unseen items: coded by the same centroids, deterministically
    new = _catalog(n=50, seed=7)
    codes = back.transform(new)
    assert codes.shape == (50, 3) and codes.dtype == np.int64
    np.testing.assert_array_equal(codes, tok.transform(new))


def test_same_seed_same_ids_and_clear_errors():
    cat = _catalog()
    a = RQKMeansTokenizer(config=CFG).fit(cat)
    b = RQKMeansTokenizer(config=CFG).fit(cat)
    np.testing.assert_array_equal(a.codes_, b.codes_)
    with pytest.raises(ConfigError, match="n_codes"):
        RQKMeansConfig(n_codes=())
    with pytest.raises(ConfigError, match="width"):
        a.transform(_catalog(n=10, d=5))
    with pytest.raises(ConfigError, match="modality"):
        RQKMeansTokenizer(config=RQKMeansConfig(modality="image")).fit(cat)


def test_normalize_quantises_directions_and_always_append_adds_a_digit():
    cat = _catalog()
    tok = RQKMeansTokenizer(config=RQKMeansConfig(n_codes=(8, 8), normalize=True, collision_digit=True)).fit(cat)
    assert tok.report_["input_mse"] == pytest.approx(1 / 16, rel=1e-5)  # unit rows of width 16
    assert tok.codes_.shape == (300, 3)
