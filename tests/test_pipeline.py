"""End-to-end pipeline on a tiny generated Amazon-format dataset: run, refuse overwrite, re-score, serve."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from semid.errors import SemidError
from semid.io import read_json
from semid.pipeline.presets import resolve
from semid.pipeline.runner import run

N_ITEMS = 24


@pytest.fixture
def tiny_amazon(tmp_path, ring_dataset):
    """40 users walking the item ring i, i+1, i+2, ... so the next item is learnable."""
    return ring_dataset(tmp_path, N_ITEMS)


FAST = {"train.epochs": 2, "train.batch_size": 32, "train.warmup_steps": 2, "train.device": "cpu",
        "train.progress": False, "data.max_history": 20}


def cfg_overrides(dataset):
    return {**FAST, "data.dataset": str(dataset), "tokenizer": "none", "model": "popular", "name": "popular"}


def test_popular_run_writes_metrics_and_config(tiny_amazon, tmp_path):
    cfg = resolve(None, cfg_overrides(tiny_amazon))
    out = run(cfg, tmp_path / "run")
    m = read_json(tmp_path / "run" / "metrics.json")
    for key in ("HR@5", "HR@10", "NDCG@5", "NDCG@10", "MRR", "n_eval_users", "split", "dataset", "model"):
        assert key in m
    assert m["n_eval_users"] == 40 and m["split"] == "test" and m["model"] == "popular"
    assert out["test"]["HR@10"] == m["HR@10"]
    saved = read_json(tmp_path / "run" / "config.json")
    assert saved["model"] == {"kind": "popular", "exclude_history": False} and saved["tokenizer"] is None
    assert "train" not in saved and "cf_sasrec" not in saved  # MostPopular uses neither
    with pytest.raises(SemidError, match="already exists"):
        run(cfg, tmp_path / "run")
    assert read_json(tmp_path / "run" / "metrics_valid.json")["split"] == "valid"
    out = run(resolve(None, {**cfg_overrides(tiny_amazon), "eval_valid": False}), tmp_path / "test_only")
    assert "valid" not in out and not (tmp_path / "test_only" / "metrics_valid.json").exists()
    assert read_json(tmp_path / "test_only" / "metrics.json")["HR@10"] == m["HR@10"]
    env = read_json(tmp_path / "run" / "summary.json")["environment"]
    assert env["torch_threads"] == torch.get_num_threads() and env["torch"] == torch.__version__


@pytest.mark.parametrize("objective", ["sequence", "next"])
def test_generative_run_rescore_and_serve(tiny_amazon, tmp_path, objective):
    from semid.pipeline.restore import load_run

    cfg = resolve(None, {**FAST, "data.dataset": str(tiny_amazon), "tokenizer": "precomputed",
                         "precomputed": "lemb", "model": "gpt2", "name": "ids+gpt2", "gpt2.beam": 8,
                         "gpt2.valid_beam": 4, "gpt2.n_embd": 32, "gpt2.n_layer": 1,
                         "gpt2.objective": objective})
    run_dir = tmp_path / "gen"
    out = run(cfg, run_dir)
    assert (run_dir / "tokenizer" / "ids" / "codes.npy").exists()
    assert (run_dir / "model" / "model.safetensors").exists() and (run_dir / "model" / "config.json").exists()
    assert (run_dir / "manifest.json").exists()
    loaded = load_run(run_dir)
    from semid.eval.evaluator import evaluate

    again = evaluate(loaded.model, loaded.split.test, progress=False)
    for k in ("HR@10", "NDCG@10", "MRR"):
        assert again[k] == pytest.approx(out["test"][k], abs=1e-9)

    # The best-validation checkpoint is what the finished run selected, so it scores the same.
    best = load_run(run_dir, checkpoint="best")
    assert evaluate(best.model, best.split.test, progress=False)["NDCG@10"] == pytest.approx(
        out["test"]["NDCG@10"], abs=1e-9)

    # Resuming a finished run replays nothing and gives the same metrics.
    resumed = run(cfg, run_dir, resume=True)
    assert resumed["test"]["NDCG@10"] == pytest.approx(out["test"]["NDCG@10"], abs=1e-9)

    if objective == "next":
        # A run saved before gpt2.objective existed trained with "next": it must load as such, not with
        # today's default (which would prompt without <sep> and silently change every recommendation).
        raw = read_json(run_dir / "config.json")
        del raw["model"]["objective"]
        (run_dir / "config.json").write_text(json.dumps(raw))
        (run_dir / "manifest.json").unlink()  # such old runs have no manifest either
        old = load_run(run_dir)
        assert old.config.model.objective == "next"
        again = evaluate(old.model, old.split.test, progress=False)
        assert again["NDCG@10"] == pytest.approx(out["test"]["NDCG@10"], abs=1e-9)

    import shutil

    from semid.errors import CheckpointError

    broken = tmp_path / "broken"
    shutil.copytree(run_dir, broken)
    (broken / "manifest.json").unlink(missing_ok=True)  # so the loaders' own checks are what fails below
    (broken / "model" / "ckpt" / "best.safetensors").unlink()
    with pytest.raises(CheckpointError, match="best.safetensors: missing"):
        load_run(broken, checkpoint="best")
    (broken / "model" / "model.safetensors").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_run(broken)

    pytest.importorskip("fastapi")
    pytest.importorskip("httpx")
    from fastapi.testclient import TestClient

    from semid.serve.app import create_app

    client = TestClient(create_app(run_dir))
    assert client.get("/health").json()["n_items"] == N_ITEMS
    r = client.post("/recommend", json={"history": ["3", "4", "5"], "k": 5}).json()
    assert len(r["items"]) == 5 and len(set(r["items"])) == 5 and all(len(c) == 2 for c in r["codes"])
    assert client.post("/recommend", json={"history": ["nope"], "k": 5}).status_code == 404
    assert client.get("/items/7").json()["code"] == [1, 1]


def test_resume_with_changed_config_is_refused(tiny_amazon, tmp_path):
    base = {**FAST, "data.dataset": str(tiny_amazon), "tokenizer": "none", "model": "popular"}
    run(resolve(None, base), tmp_path / "r")
    with pytest.raises(SemidError, match="different config") as err:
        run(resolve(None, {**base, "seed": 3}), tmp_path / "r", resume=True)
    assert "seed: 0 != 3" in str(err.value)  # the error names what changed


def test_stored_config_is_what_a_run_writes(tiny_amazon, tmp_path):
    """bench_presets reuses a finished run only when its config.json equals stored_config(cfg)."""
    import json

    from semid.pipeline.runner import stored_config

    cfg = resolve(None, {**FAST, "data.dataset": str(tiny_amazon), "tokenizer": "none", "model": "popular"})
    run(cfg, tmp_path / "r")
    saved = json.loads((tmp_path / "r" / "config.json").read_text())
    assert saved == stored_config(cfg)
    assert saved != stored_config(resolve(None, {**FAST, "data.dataset": str(tiny_amazon), "tokenizer": "none",
                                                 "model": "popular", "seed": 3}))


def test_every_preset_resolves():
    from semid.pipeline.presets import PRESETS

    for name in PRESETS:
        cfg = resolve(name)
        assert cfg.model and cfg.data.dataset


def test_rq_presets_get_every_modality_they_quantise_from_their_features():
    """TIGER / LETTER / MusicRec presets name modalities (and z_cf when aligned) that their own feature specs
    (or the MQL4GRec code files) provide, so a preset cannot fail late for a missing embedding."""
    from semid.pipeline.presets import PRESETS
    from semid.pipeline.runner import build_tokenizer

    n_checked = 0
    for name in PRESETS:
        cfg = resolve(name)
        if "tokenizer_preset" not in PRESETS[name].overrides:
            continue
        tok, tasks = build_tokenizer(cfg)
        c = tok.config
        needed = {getattr(c, f) for f in ("modality", "text_modality", "image_modality") if hasattr(c, f)}
        if c.alpha > 0 or c.beta > 0:
            needed.add(c.cf_embedding)
        have = {spec.name for spec in cfg.features}
        have |= {"lemb", "vitemb"} if name.startswith("mql4grec") else set()  # <D>.index_*.json code tuples
        assert needed <= have, (name, needed - have)
        assert tasks, name
        n_checked += 1
    assert n_checked >= 12  # mql4grec tiger/letter/musicrec + 6 ablations, movielens tiger/letter/musicrec
    assert build_tokenizer(resolve("movielens-letter"))[0].config.diversity == pytest.approx(1e-4)


def test_train_tail_bounds_only_the_model_data(tiny_amazon):
    from semid.data.types import Interactions
    from semid.pipeline.runner import model_train, prepare_data

    cfg = resolve(None, {**FAST, "data.dataset": str(tiny_amazon), "data.train_tail": 3})
    ds, split = prepare_data(cfg)
    tail = model_train(cfg, split.train)
    full = split.train.to_lists()
    assert tail.n_users == split.train.n_users and (tail.lengths() == np.minimum(split.train.lengths(), 3)).all()
    for a, b in zip(tail.to_lists(), full, strict=True):
        assert a.tolist() == b[-3:].tolist()  # the most recent items, order kept
    assert model_train(resolve(None, {**FAST, "data.dataset": str(tiny_amazon)}), split.train) is split.train
    with pytest.raises(SemidError, match="train_tail"):
        prepare_data(resolve(None, {**FAST, "data.dataset": str(tiny_amazon), "data.train_tail": -1}))
    assert isinstance(tail, Interactions)


def test_cf_sasrec_uses_its_own_epoch_budget():
    from semid.pipeline.runner import _sasrec

    cfg = resolve(None, {"train.epochs": 2, "sasrec_cf_epochs": 7, "seed": 5, "model": "sasrec"})
    cf = _sasrec(cfg, 32, None)
    assert cf.train_config.epochs == 7 and cf.train_config.seed == 5 and cf.config.hidden == 32
    assert _sasrec(cfg, None, None).train_config.epochs == 2


def test_fusid_run_is_reproducible_from_its_saved_config(tiny_amazon, tmp_path):
    """Same seed, config re-read from config.json, cold encoder cache -> bit-identical codes.npy and report."""
    from semid.config import from_dict
    from semid.pipeline.config import RunConfig

    ov = {**FAST, "data.dataset": str(tiny_amazon), "tokenizer": "fusid", "model": "popular", "name": "fusid",
          "fusid.pq.n_sub": 3, "fusid.pq.K": 8, "fusid.fusion.d_sub": 8, "fusid.fusion.hidden": 32,
          "fusid.training.epochs": 2, "fusid.training.progress": False, "fusid.pairs_per_epoch": 64,
          "fusid.features.cache_dir": str(tmp_path / "cache_a")}
    a = run(resolve(None, ov), tmp_path / "a")
    saved = read_json(tmp_path / "a" / "config.json")
    saved["tokenizer"]["features"]["cache_dir"] = str(tmp_path / "cache_b")  # cold cache: item2vec runs again
    run(from_dict(RunConfig, saved), tmp_path / "b")
    assert (tmp_path / "cache_b").exists()
    codes = [np.load(tmp_path / r / "tokenizer" / "ids" / "codes.npy") for r in ("a", "b")]
    np.testing.assert_array_equal(codes[0], codes[1])
    np.testing.assert_array_equal(*[np.load(tmp_path / r / "tokenizer" / "pq_centroids.npy") for r in ("a", "b")])
    reports = [read_json(tmp_path / r / "tokenizer" / "ids" / "report.json") for r in ("a", "b")]
    for r in reports:
        r.pop("seconds")
    assert reports[0] == reports[1] and reports[0]["n_items"] == N_ITEMS
    assert a["tokenizer"]["duplicate_input_rate"] == 0.0  # every item has its own lemb code tuple


@pytest.mark.parametrize("preset", ["lcrec-instruments-tiger", "lcrec-instruments-musicrec"])
def test_lcrec_rq_presets_run_end_to_end_on_cooccurrence_views(tiny_amazon, tmp_path, monkeypatch, preset):
    """The LC-Rec TIGER / MusicRec presets (item2vec windows 5 and 50 as modalities, SASRec z_cf) run through the
    runner on a dataset without item text, give unique IDs and valid top-k lists, on a tiny budget."""
    monkeypatch.setenv("SEMID_CACHE", str(tmp_path / "cache"))
    tok = "rqvae" if preset.endswith("tiger") else "musicrec"  # the section the preset's tokenizer is
    tiny = {**FAST, "data.dataset": str(tiny_amazon), "train.epochs": 1, f"{tok}.epochs": 3, f"{tok}.n_codes": 8,
            "sasrec_cf_epochs": 1, "musicrec_gen.t5.valid_users": 8, "musicrec_gen.t5.beam": 4,
            "musicrec_gen.t5.valid_beam": 4}
    out = run(resolve(preset, tiny), tmp_path / "r")
    m = read_json(tmp_path / "r" / "metrics.json")
    assert m["n_eval_users"] == 40 and 0.0 <= m["HR@10"] <= 1.0 and "valid" not in out  # eval_valid off
    report = read_json(tmp_path / "r" / "tokenizer" / "ids" / "report.json")
    assert report["conflict_rate_final"] == 0.0
    feats = read_json(tmp_path / "r" / "features.json")
    expected = {"cooc"} if preset.endswith("tiger") else {"cooc", "basket", "cf"}
    assert set(feats) == expected
    if "basket" in feats:
        assert feats["basket"]["spec"]["encoder"]["window"] == 50 and feats["basket"]["kind"] == "item2vec"


def test_item2vec_spec_options_are_checked(tiny_amazon, tmp_path, monkeypatch):
    from semid.encoders.feature_spec import coerce_features
    from semid.encoders.features import attach_features
    from semid.pipeline.runner import prepare_data

    monkeypatch.setenv("SEMID_CACHE", str(tmp_path / "cache"))
    ds, split = prepare_data(resolve(None, {**FAST, "data.dataset": str(tiny_amazon)}))
    summary = attach_features(coerce_features(("a=item2vec", "b=item2vec:window=50,dim=16")), ds.catalog, split.train,
                              dataset="t")
    assert summary["a"]["dim"] == 64 and summary["b"]["dim"] == 16
    assert not np.allclose(ds.catalog.embeddings["a"][:, :16], ds.catalog.embeddings["b"])
    for bad, msg in (("c=item2vec:win=3", "valid: \\['dim', 'window'\\]"), ("c=item2vec:window=x", "must be"),
                     ("c=item2vec:window=0", ">= 1"), ("c=item2vec:5", "window=<int>")):
        with pytest.raises(SemidError, match=msg):
            coerce_features((bad,))


def _sasrec_run(tiny_amazon, run_dir):
    cfg = resolve(None, {**FAST, "data.dataset": str(tiny_amazon), "tokenizer": "precomputed",
                         "precomputed": "lemb", "model": "sasrec", "name": "sasrec", "sasrec.hidden": 16,
                         "sasrec.n_layers": 1})
    return cfg, run(cfg, run_dir)


def test_manifest_catches_bit_flips_and_shuffled_codes(tiny_amazon, tmp_path, caplog):
    """A finished run's artifacts are hashed; evaluate / serve (load_run) refuse a changed file, naming it."""
    import shutil

    from semid.errors import CheckpointError
    from semid.eval.evaluator import evaluate
    from semid.pipeline.restore import load_run

    _, out = _sasrec_run(tiny_amazon, tmp_path / "r")
    listed = read_json(tmp_path / "r" / "manifest.json")["files"]
    assert {"config.json", "model/model.safetensors", "model/config.json", "tokenizer/ids/codes.npy"} <= set(listed)
    loaded = load_run(tmp_path / "r")
    assert evaluate(loaded.model, loaded.split.test, progress=False)["NDCG@10"] == pytest.approx(
        out["test"]["NDCG@10"], abs=1e-9)

    flipped = tmp_path / "flipped"
    shutil.copytree(tmp_path / "r", flipped)
    w = flipped / "model" / "model.safetensors"
    data = bytearray(w.read_bytes())
    data[-5] ^= 0x10  # one bit of one weight: still a valid safetensors file
    w.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"model\.safetensors: SHA-256 does not match"):
        load_run(flipped)

    shuffled = tmp_path / "shuffled"
    shutil.copytree(tmp_path / "r", shuffled)
    codes_path = shuffled / "tokenizer" / "ids" / "codes.npy"
    codes = np.load(codes_path)
    np.save(codes_path, codes[np.random.default_rng(0).permutation(len(codes))])
    with pytest.raises(CheckpointError, match=r"codes\.npy: SHA-256 does not match"):
        load_run(shuffled)

    # A run from before manifests loads, with a warning saying it could not be checked.
    (shuffled / "manifest.json").unlink()
    np.save(codes_path, codes)
    with caplog.at_level("WARNING"):
        load_run(shuffled)
    assert "no manifest.json" in caplog.text


def test_run_saved_before_recommender_save_still_loads(tiny_amazon, tmp_path, caplog):
    """Older runs hold only model/final.safetensors (no model/config.json, no manifest)."""
    from semid.eval.evaluator import evaluate
    from semid.pipeline.restore import load_run

    _, out = _sasrec_run(tiny_amazon, tmp_path / "r")
    m = tmp_path / "r" / "model"
    (m / "model.safetensors").rename(m / "final.safetensors")
    (m / "config.json").unlink()
    (tmp_path / "r" / "manifest.json").unlink()
    with caplog.at_level("WARNING"):
        loaded = load_run(tmp_path / "r")
    assert "before recommenders had save/load" in caplog.text
    assert evaluate(loaded.model, loaded.split.test, progress=False)["NDCG@10"] == pytest.approx(
        out["test"]["NDCG@10"], abs=1e-9)
    best = load_run(tmp_path / "r", checkpoint="best")
    assert evaluate(best.model, best.split.test, progress=False)["NDCG@10"] == pytest.approx(
        out["test"]["NDCG@10"], abs=1e-9)


def test_rqkmeans_tokenizer_runs_end_to_end_and_reloads(tiny_amazon, tmp_path):
    from semid.eval.evaluator import evaluate
    from semid.pipeline.restore import load_run
    from semid.tokenizers.rqkmeans import RQKMeansTokenizer

    cfg = resolve(None, {**FAST, "data.dataset": str(tiny_amazon), "tokenizer": "rqkmeans",
                         "rqkmeans.modality": "lemb", "rqkmeans.n_codes": [4, 4], "model": "gpt2",
                         "gpt2.n_embd": 32, "gpt2.n_layer": 1, "gpt2.beam": 8, "gpt2.valid_beam": 4})
    out = run(cfg, tmp_path / "r")
    mse = out["tokenizer"]["residual_mse"]
    assert len(mse) == 2 and mse[1] < mse[0] < out["tokenizer"]["input_mse"]
    loaded = load_run(tmp_path / "r")
    assert isinstance(loaded.tokenizer, RQKMeansTokenizer)
    np.testing.assert_array_equal(loaded.tokenizer.transform(loaded.dataset.catalog), loaded.tokenizer.codes_raw_)
    assert evaluate(loaded.model, loaded.split.test, progress=False)["NDCG@10"] == pytest.approx(
        out["test"]["NDCG@10"], abs=1e-9)


def test_baseline_popular_is_scored_on_the_same_test_users(tiny_amazon, tmp_path):
    from semid.pipeline.runner import summarize

    pop = run(resolve(None, cfg_overrides(tiny_amazon)), tmp_path / "pop")
    ov = {**FAST, "data.dataset": str(tiny_amazon), "tokenizer": "precomputed", "precomputed": "lemb",
          "model": "gpt2", "name": "gen", "gpt2.n_embd": 16, "gpt2.n_layer": 1, "gpt2.max_history": 5,
          "gpt2.beam": 4, "gpt2.valid_beam": 2, "baseline_popular": True}
    out = run(resolve(None, ov), tmp_path / "gen")
    stored = read_json(tmp_path / "gen" / "metrics_popular.json")
    assert stored["model"] == "popular" and stored["n_eval_users"] == out["test"]["n_eval_users"]
    for k in ("HR@10", "NDCG@10", "MRR"):
        assert stored[k] == pytest.approx(pop["test"][k])
    rows = summarize({"gen": out})
    assert [r[0] for r in rows] == ["gen", "MostPopular (same run)"] and rows[1][2] == f"{pop['test']['HR@10']:.4f}"
    assert "popular" not in pop  # a MostPopular run is not scored twice


def test_stored_reference_rows_name_their_source():
    from semid.pipeline.presets import PRESETS

    refs = [r for p in PRESETS.values() for r in p.references]
    assert refs and all(r.source and 0 < r.ndcg10 <= r.hr10 <= 1 for r in refs)


def test_random_ids_control_runs_end_to_end_and_reloads(tiny_amazon, tmp_path):
    from semid.eval.evaluator import evaluate
    from semid.pipeline.restore import load_run
    from semid.tokenizers.random_ids import RandomIDsTokenizer

    cfg = resolve(None, {**FAST, "data.dataset": str(tiny_amazon), "tokenizer": "random",
                         "random.n_codes": [4, 4, 4], "model": "gpt2", "seed": 7,
                         "gpt2.n_embd": 32, "gpt2.n_layer": 1, "gpt2.beam": 8, "gpt2.valid_beam": 4})
    assert cfg.tokenizer.seed == 7  # the run seed reaches the draw
    out = run(cfg, tmp_path / "r")
    assert out["tokenizer"]["conflict_rate"] == 0.0
    loaded = load_run(tmp_path / "r")
    assert isinstance(loaded.tokenizer, RandomIDsTokenizer)
    assert evaluate(loaded.model, loaded.split.test, progress=False)["NDCG@10"] == pytest.approx(
        out["test"]["NDCG@10"], abs=1e-9)
