"""TIGER / LETTER RQ-VAE tokenizer and the preset table."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from semid.data.types import Catalog
from semid.errors import ConfigError
from semid.tokenizers.modality import modality_features
from semid.tokenizers.presets import PRESET_NAMES, preset
from semid.tokenizers.rqvae import RQVAEConfig, RQVAETokenizer

torch.set_num_threads(1)  # 2 shared cores: keep tiny fits single-threaded

TINY = dict(hidden=(32,), latent_dim=8, n_codes=16, epochs=25, batch_size=64)


def _catalog(n=200, seed=0):
    rng = np.random.default_rng(seed)
    return Catalog(
        item_ids=np.arange(n).astype(str),
        embeddings={
            "text": rng.normal(size=(n, 24)).astype(np.float32),
            "cf": rng.normal(size=(n, 8)).astype(np.float32),
        },
        codes={"img": rng.integers(0, 4, size=(n, 2))},
        code_sizes={"img": [4, 4]},
    )


def test_tiger_fits_unique_codes_with_collision_digit(tmp_path):
    cat = _catalog()
    tok = RQVAETokenizer(config=RQVAEConfig(**TINY)).fit(cat)
    assert tok.history_[-1]["recon"] < tok.history_[0]["recon"]
    assert tok.codes_.shape == (200, 4)  # 3 levels + TIGER's digit
    assert len({tuple(r) for r in tok.codes_.tolist()}) == 200
    assert np.array_equal(tok.decode(tok.encode(np.arange(200))), np.arange(200))
    for key in (
        "conflict_rate",
        "codebook_utilization",
        "n_items",
        "n_levels",
        "codebook_size",
        "entropy_bits",
    ):
        assert key in tok.report_
    tok.save(tmp_path / "tok")
    back = RQVAETokenizer.load(tmp_path / "tok")
    assert np.array_equal(back.codes_, tok.codes_) and back.config == tok.config
    assert back.model is not None


def test_letter_needs_cf_and_trains_alignment():
    cat = _catalog()
    tok = RQVAETokenizer(config=RQVAEConfig(alpha=0.1, **TINY)).fit(cat)
    assert "align" in tok.history_[-1]
    with pytest.raises(ConfigError, match="cf"):
        RQVAETokenizer(config=RQVAEConfig(alpha=0.1, cf_embedding="missing", **TINY)).fit(cat)


def test_code_modality_becomes_onehot():
    feats = modality_features(_catalog(), "img")
    assert feats.shape == (200, 8) and np.allclose(feats.sum(1), 2.0)
    with pytest.raises(ConfigError, match="nope"):
        modality_features(_catalog(), "nope")


def test_presets_build():
    for name in PRESET_NAMES:
        p = preset(name, epochs=1)
        assert p.name == name and p.tasks
    assert preset("tiger").tokenizer.config.n_levels == 3 and preset("tiger").tokenizer.config.alpha == 0
    assert preset("letter").tokenizer.config.alpha == 1e-2
    assert preset("musicrec_wo_align").tokenizer.config.alpha == 0
    assert preset("musicrec_wo_rel").tokenizer.config.beta == 0
    assert "mm_text" not in preset("musicrec_wo_mmg").tasks and "t2i" not in preset("musicrec_wo_mma").tasks
    assert preset("musicrec_wo_tsem").tasks == ("uni_image",)
    with pytest.raises(ConfigError, match="valid"):
        preset("bogus")


def test_letter_diversity_regulariser_trains_and_is_validated():
    cat = _catalog()
    tok = RQVAETokenizer(config=RQVAEConfig(alpha=0.1, diversity=1e-2, diversity_groups=4, **TINY)).fit(cat)
    div = [h["diversity"] for h in tok.history_]
    assert all(np.isfinite(div)) and div[0] > 0
    assert len({tuple(r) for r in tok.codes_.tolist()}) == 200
    assert "diversity" not in RQVAETokenizer(config=RQVAEConfig(**TINY)).fit(cat).history_[-1]
    assert preset("letter").tokenizer.config.diversity == pytest.approx(1e-4)  # LETTER's weight
    assert preset("tiger").tokenizer.config.diversity == 0.0
    with pytest.raises(ConfigError, match="diversity"):
        RQVAEConfig(diversity=-1.0)
    with pytest.raises(ConfigError, match="diversity_groups"):
        RQVAEConfig(diversity=1e-4, diversity_groups=1)


def test_transform_codes_fitted_and_unseen_items(tmp_path):
    """transform(fitted catalog) == codes_raw_ (before the collision digit), also after save/load."""
    from semid.tokenizers.protocol import InductiveTokenizer

    cat = _catalog()
    tok = RQVAETokenizer(config=RQVAEConfig(**{**TINY, "epochs": 3})).fit(cat)
    assert isinstance(tok, InductiveTokenizer)
    raw = tok.transform(cat)
    assert raw.dtype == np.int64 and raw.shape == (200, 3)
    np.testing.assert_array_equal(raw, tok.codes_raw_)
    tok.save(tmp_path / "tok")
    back = RQVAETokenizer.load(tmp_path / "tok")
    np.testing.assert_array_equal(back.transform(cat), tok.codes_raw_)
    new = _catalog(n=30, seed=5)
    np.testing.assert_array_equal(back.transform(new), tok.transform(new))
    wrong = Catalog(item_ids=np.arange(4).astype(str), embeddings={"text": np.zeros((4, 7), np.float32)})
    with pytest.raises(ConfigError, match="width"):
        back.transform(wrong)


def test_same_seed_same_codes_and_the_shared_trainer_runs_it():
    """Trained by semid.train.loop (no private loop left); seeded end to end: batch order, init, dead-code
    re-seeding and LETTER's diversity positives all follow ``seed``."""
    from semid.tokenizers import rqvae

    assert not hasattr(rqvae, "train_loop")
    cat = _catalog()
    cfg = RQVAEConfig(alpha=0.1, diversity=0.01, diversity_groups=4, reseed_every=2, device="cpu",
                      grad_clip=1.0, warmup_steps=3, min_lr_ratio=0.1, **{**TINY, "epochs": 6})
    a = RQVAETokenizer(config=cfg).fit(cat)
    b = RQVAETokenizer(config=cfg).fit(cat)
    assert np.array_equal(a.codes_, b.codes_) and a.history_ == b.history_
    assert len(a.history_) == 6 and {"recon", "rq", "align", "diversity", "loss"} <= set(a.history_[-1])
    c = RQVAETokenizer(config=dataclasses.replace(cfg, seed=1)).fit(cat)
    assert not np.array_equal(a.codes_raw_, c.codes_raw_)
    assert np.array_equal(a.transform(cat), a.codes_raw_)  # fitted codes are the CPU encoder's


def test_train_config_reaches_the_trainer():
    from semid.tokenizers.training import autoencoder_train_config

    t = autoencoder_train_config(RQVAEConfig(epochs=3, lr=5e-4, grad_clip=0.5, warmup_steps=7, device="cpu",
                                             bf16=True, seed=9))
    assert (t.epochs, t.lr, t.grad_clip, t.warmup_steps, t.device, t.bf16, t.seed, t.patience) == (
        3, 5e-4, 0.5, 7, "cpu", True, 9, 0)
