"""FusID end to end on a tiny hand-made catalog: unique IDs, report, ablations, save/load, cold items."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from semid.data.types import Catalog, Interactions
from semid.errors import ConfigError
from semid.tokenizers.fusid import FusID, small_config
from semid.tokenizers.fusid_losses import FusIDLossConfig
from semid.tokenizers.protocol import Tokenizer

GENRES = ["comedy", "drama", "action", "horror", "romance"]


def _data(n=48, seed=0):
    rng = np.random.default_rng(seed)
    genres = [[GENRES[i % 5], GENRES[(i * 3 + 1) % 5]] for i in range(n)]
    genres[5] = None  # an item without genres
    emb = rng.normal(size=(n, 6)).astype(np.float32)
    emb[1] = emb[0]  # items 0 and 1: identical features everywhere below
    genres[1] = genres[0]
    mask = np.ones(n, bool)
    mask[7] = False
    cat = Catalog(
        item_ids=[f"i{i}" for i in range(n)],
        fields={"genres": genres},
        embeddings={"content": emb},
        masks={"content": mask},
    )
    seqs = [rng.choice(np.arange(2, n), size=8, replace=False).tolist() for _ in range(60)]
    return cat, Interactions.from_lists(seqs)


def _cfg(**kw):
    from semid.encoders.features import FeaturesConfig

    cfg = small_config(**kw)
    return dataclasses.replace(cfg, features=FeaturesConfig(cache=False, auto_set_encoder="multihot"))


def test_fit_unique_codes_report_and_protocol():
    cat, train = _data()
    tok = FusID(config=_cfg()).fit(cat, train)
    assert isinstance(tok, Tokenizer)
    assert tok.modalities_ == ["genres", "cooc", "content"]
    codes = tok.codes_
    assert codes.dtype == np.int64 and len(codes) == cat.n_items
    assert len({tuple(r) for r in codes.tolist()}) == cat.n_items  # unique after resolution
    # items 0 and 1 have identical features (neither is in train): same raw code, told apart by the digit
    assert (tok.codes_raw_[0] == tok.codes_raw_[1]).all()
    assert codes.shape[1] == 4 and codes[0, -1] != codes[1, -1]
    rep = tok.report_
    assert rep["conflict_rate"] > 0 and rep["conflict_rate_final"] == 0.0
    # the forced part of that conflict: items 0 and 1 are the only ones with identical inputs
    assert rep["n_duplicate_input_items"] == 2
    assert rep["conflict_rate_distinct_inputs"] <= rep["conflict_rate"] - 2 / cat.n_items + 1e-12
    assert len(rep["codebook_utilization"]) == 3
    assert np.array_equal(tok.decode(tok.encode(np.arange(cat.n_items))), np.arange(cat.n_items))
    assert len(tok.loss_log_) == 3 and {"cont", "cov", "var", "total"} <= set(tok.loss_log_[0])
    # what the fusion net trained on: pairs_per_epoch above the mined positives is capped at their count
    plan = rep["fusion_training"]
    assert plan["positives_mined"] > 0 and plan["pairs_per_epoch"] <= plan["positives_mined"]
    big = FusID(config=dataclasses.replace(_cfg(), pairs_per_epoch=10**9)).fit(cat, train).report_["fusion_training"]
    assert big["pairs_per_epoch"] == big["positives_mined"] == plan["positives_mined"]


def test_save_load_round_trip(tmp_path):
    cat, train = _data()
    tok = FusID(config=_cfg()).fit(cat, train)
    tok.save(tmp_path / "fusid")
    for f in ["ids/codes.npy", "ids/report.json", "config.json", "state.safetensors", "pq_centroids.npy"]:
        assert (tmp_path / "fusid" / f).exists(), f
    back = FusID.load(tmp_path / "fusid")
    np.testing.assert_array_equal(back.codes_, tok.codes_)
    assert back.config == tok.config
    np.testing.assert_array_equal(back.transform(cat, train), tok.codes_raw_)  # weights + centroids restored


def test_ablations_and_dropped_modality_still_give_ids():
    cat, train = _data()
    for cfg in [
        _cfg(loss=FusIDLossConfig(alpha=0.0)),
        _cfg(loss=FusIDLossConfig(contrastive=False)),
        _cfg(modalities=("genres", "content")),  # drop co-occurrence
    ]:
        tok = FusID(config=cfg).fit(cat, train)
        assert len({tuple(r) for r in tok.codes_.tolist()}) == cat.n_items
    with pytest.raises(ConfigError, match="available"):
        FusID(config=_cfg(modalities=("lyrics",))).fit(cat, train)


def test_items_missing_a_modality_get_ids():
    cat, train = _data()
    tok = FusID(config=_cfg()).fit(cat, train)
    assert tok.coverage_["content"] < 1 and tok.coverage_["genres"] < 1 and tok.coverage_["cooc"] < 1
    for i in (5, 7, 0):  # no genres / no content embedding / never in train
        assert (tok.encode(np.array([i])) >= 0).all()


def test_fit_is_reproducible_whatever_the_global_rng_state():
    """Same config and seed -> same codes, even when something consumed the global torch RNG in between."""
    cat, train = _data()
    a = FusID(config=_cfg()).fit(cat, train)
    torch.rand(1000)  # e.g. a text encoder initialising weights before loading them
    b = FusID(config=_cfg()).fit(cat, train)
    np.testing.assert_array_equal(a.codes_raw_, b.codes_raw_)
    np.testing.assert_array_equal(a.embeddings_, b.embeddings_)


def test_reassign_keeps_n_positions_and_reports_the_raw_rate():
    from semid.quantize.pq import PQConfig

    cat, train = _data()
    digit = FusID(config=_cfg()).fit(cat, train)
    base = _cfg()
    tok = FusID(config=dataclasses.replace(base, pq=dataclasses.replace(base.pq, resolve="reassign"))).fit(cat, train)
    np.testing.assert_array_equal(tok.codes_raw_, digit.codes_raw_)  # same net and centroids
    assert tok.codes_.shape == (cat.n_items, 3) and len({tuple(r) for r in tok.codes_.tolist()}) == cat.n_items
    rep = tok.report_
    assert rep["conflict_rate"] == digit.report_["conflict_rate"] > 0  # the raw PQ rate, not the resolved one
    assert rep["n_levels_final"] == 3 and rep["conflict_rate_final"] == 0.0 and rep["n_items_reassigned"] > 0
    assert tok.codes_[0].tolist() != tok.codes_[1].tolist()  # identical inputs, different IDs, no digit
    with pytest.raises(ConfigError, match="resolve"):
        FusID(config=dataclasses.replace(base, pq=PQConfig(n_sub=3, K=8, resolve="nope"))).fit(cat, train)


def test_embed_fills_one_output_array():
    # The fused embeddings are N x n x d float32 (the largest array of a fit at millions of items): embed
    # writes them into one array instead of keeping every batch and their concatenation (and a copy of it).
    import tracemalloc

    from semid.tokenizers.fusion import FusionConfig, FusionNet

    base = small_config()
    cfg = dataclasses.replace(base, pq=dataclasses.replace(base.pq, n_sub=2), fusion=FusionConfig(d_sub=32, hidden=16))
    tok = FusID(config=cfg)
    tok.fusion_ = FusionNet(in_dims=[8], n_sub=2, config=cfg.fusion)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50_000, 8)).astype(np.float32)
    present = np.ones((50_000, 1), dtype=bool)
    tracemalloc.start()
    try:
        z = tok.embed(x, present, batch_size=4096)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert z.shape == (50_000, 2, 32) and z.dtype == np.float32
    assert peak < 1.3 * z.nbytes, (peak, z.nbytes)
    with torch.no_grad():
        ref = tok.fusion_.eval()(torch.from_numpy(x[:100]), torch.from_numpy(present[:100])).numpy()
    np.testing.assert_allclose(z[:100], ref, rtol=1e-5, atol=1e-6)
