"""Typed run configs: tagged tokenizer / model sections, overrides that reach their field or are refused,
seeds propagated to every nested seed, legacy config.json upgraded on read, and the `semid config` CLI."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from semid.cli.main import app
from semid.config import find_all, from_dict, to_dict
from semid.errors import ConfigError
from semid.io import read_json
from semid.pipeline.config import RunConfig, model_kind, tokenizer_kind
from semid.pipeline.overrides import applies, load_config_file, upgrade_legacy
from semid.pipeline.presets import PRESETS, resolve
from semid.pipeline.runner import build_tokenizer, run, stored_config

runner = CliRunner()
N_ITEMS = 24
FAST = {"train.epochs": 1, "train.batch_size": 32, "train.warmup_steps": 2, "train.device": "cpu",
        "train.progress": False, "data.max_history": 20}


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    """40 users walking the item ring (an Amazon-format folder), encoder cache under tmp_path."""
    monkeypatch.setenv("SEMID_CACHE", str(tmp_path / "cache"))
    d = tmp_path / "Tiny"
    d.mkdir()
    rng = np.random.default_rng(0)
    inter = {str(u): [(int(s) + t) % N_ITEMS for t in range(int(n))]
             for u, (s, n) in enumerate(zip(rng.integers(N_ITEMS, size=40), rng.integers(5, 9, size=40), strict=True))}
    (d / "Tiny.inter.json").write_text(json.dumps(inter))
    (d / "Tiny.index_lemb.json").write_text(json.dumps({str(i): [f"<a_{i // 6}>", f"<b_{i % 6}>"]
                                                        for i in range(N_ITEMS)}))
    return d


def all_seeds(obj, path=""):
    """Every field named seed in a dataclass tree, found independently of semid.config's walker."""
    out = {}
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        if f.name == "seed":
            out[path + f.name] = v
        elif dataclasses.is_dataclass(v):
            out.update(all_seeds(v, f"{path}{f.name}."))
    return out


# ---- overrides reach the field they name ----


def test_rq_preset_overrides_reach_their_fields():
    """The old runner copied a whitelist into the preset's config (n_levels, modality, diversity, alpha lost)."""
    cfg = resolve("movielens-tiger", {"rqvae.n_levels": "4", "rqvae.modality": "genre", "rqvae.diversity": "0.01",
                                      "rqvae.alpha": "0.5"})
    tok, tasks = build_tokenizer(cfg)
    c = tok.config
    assert (c.n_levels, c.modality, c.diversity, c.alpha) == (4, "genre", 0.01, 0.5)
    assert c.epochs == 100 and c.collision_digit  # the preset's own budget and TIGER's structure stay
    assert tasks == ("uni_text",) and cfg.model.tasks == ("uni_text",)
    mr = resolve("movielens-musicrec", {"musicrec.alpha": "0"})
    assert build_tokenizer(mr)[0].config.alpha == 0.0
    # a tokenizer preset given last on top of a run preset resolves to its complete config
    letter = resolve("quickstart", {"tokenizer_preset": "letter", "rqvae.n_levels": 2})
    assert tokenizer_kind(letter) == "rqvae" and letter.tokenizer.alpha == 1e-2 and letter.tokenizer.n_levels == 2
    assert letter.tokenizer.diversity == pytest.approx(1e-4)


def test_override_of_another_section_is_refused_naming_the_valid_fields():
    with pytest.raises(ConfigError, match=r"tokenizer is fusid, not rqvae.*pq") as e:
        resolve("quickstart", {"rqvae.x": 1})
    assert "--tokenizer=rqvae" in str(e.value)
    with pytest.raises(ConfigError, match=r"RQVAEConfig has no field 'nlevels'.*n_levels"):
        resolve("movielens-tiger", {"rqvae.nlevels": 4})
    with pytest.raises(ConfigError, match="model is gpt2, not t5"):
        resolve("quickstart", {"t5.max_history": 3})
    with pytest.raises(ConfigError, match="unknown tokenizer 'bogus'"):
        resolve(None, {"tokenizer": "bogus"})
    with pytest.raises(ConfigError, match="the tokenizer is none"):
        resolve("movielens-popular", {"precomputed": "lemb"})
    # the key order of a layer never matters: selections first, then fields
    a = resolve(None, {"rqvae.n_levels": 2, "tokenizer": "rqvae", "model": "t5", "t5.beam": 4})
    assert a.tokenizer.n_levels == 2 and a.model.beam == 4 and model_kind(a) == "t5"


def test_selecting_the_same_kind_keeps_its_settings_and_another_kind_starts_from_defaults():
    cfg = resolve("quickstart", {"tokenizer": "fusid", "model": "gpt2"})
    assert cfg.tokenizer.pq.K == 256 and cfg.model.max_history == 20  # preset values kept
    t5 = resolve("quickstart", {"model": "t5"})
    assert model_kind(t5) == "t5" and t5.model == type(t5.model)()


def test_every_preset_is_a_complete_typed_config_and_round_trips():
    for name in PRESETS:
        cfg = resolve(name)
        d = to_dict(cfg)
        assert from_dict(RunConfig, d) == cfg, name
        stored = stored_config(cfg)
        assert stored["tokenizer"] is None or stored["tokenizer"]["kind"] == tokenizer_kind(cfg)
        for legacy in ("fusid", "rqvae", "musicrec", "gpt2", "t5", "sasrec", "musicrec_gen", "tokenizer_preset"):
            assert legacy not in stored, (name, legacy)


def test_quickstart_runs_its_five_minute_recipe_and_other_movielens_presets_keep_theirs():
    """The quickstart's speed settings reach their fields; presets measured with the full recipe keep it."""
    q = resolve("quickstart")
    assert (q.tokenizer.fusion.hidden, q.tokenizer.pairs_per_epoch, q.tokenizer.pq.resolve) == (1024, 25_000,
                                                                                                "reassign")
    assert q.model.dropout == 0.0 and q.train.epochs == 8 and q.tokenizer.pq.n_sub == 4
    for name in ("movielens-fusid-t5", "movielens-cf-ids-gpt2"):
        c = resolve(name)
        assert c.model.dropout == 0.1, name
        if tokenizer_kind(c) == "fusid":
            assert (c.tokenizer.fusion.hidden, c.tokenizer.pq.resolve) == (2048, "digit"), name


def test_tiger_config_json_records_what_ran_and_nothing_else(tiny, tmp_path):
    ov = {**FAST, "data.dataset": str(tiny), "tokenizer_preset": "tiger", "rqvae.modality": "lemb",
          "rqvae.n_levels": 2, "rqvae.n_codes": 6, "rqvae.epochs": 2, "rqvae.hidden": "16", "rqvae.latent_dim": 8,
          "model": "popular", "name": "tiger"}
    run(resolve(None, ov), tmp_path / "r")
    saved = read_json(tmp_path / "r" / "config.json")
    assert saved["tokenizer"]["kind"] == "rqvae" and saved["tokenizer"]["n_levels"] == 2
    assert saved["tokenizer"]["modality"] == "lemb"
    assert set(saved) == {"name", "seed", "data", "features", "tokenizer", "model", "device", "eval_batch_size",
                          "eval_valid", "baseline_popular"}
    assert "fusid" not in json.dumps(saved)
    assert np.load(tmp_path / "r" / "tokenizer" / "ids" / "codes.npy").shape == (N_ITEMS, 3)  # 2 + digit


# ---- seeds ----


def test_seed_reaches_every_nested_seed():
    cfg = resolve("quickstart", {"seed": 7})
    seeds = all_seeds(cfg)
    for path in ("tokenizer.pq.kmeans.seed", "tokenizer.features.item2vec.seed", "tokenizer.features.multihot.seed",
                 "tokenizer.training.seed", "train.seed", "cf_sasrec.train.seed"):
        assert seeds[path] == 7, path
    assert set(seeds.values()) == {7} and len(seeds) >= 7
    assert dict(find_all(cfg, "seed")) == seeds
    for name in ("movielens-letter", "movielens-musicrec", "yes-item2vec-knn"):
        assert set(all_seeds(resolve(name, {"seed": 3})).values()) == {3}, name
    # a nested seed named explicitly wins, whatever the key order
    mixed = resolve("quickstart", {"fusid.pq.kmeans.seed": 1, "seed": 7})
    assert mixed.tokenizer.pq.kmeans.seed == 1 and mixed.tokenizer.training.seed == 7


def test_seed_changes_fusid_kmeans_and_item2vec(tiny, tmp_path):
    """With the run seed reaching k-means and item2vec, two seeds give different FusID codebooks."""
    ov = {**FAST, "data.dataset": str(tiny), "tokenizer": "fusid", "model": "popular", "fusid.pq.n_sub": 2,
          "fusid.pq.K": 4, "fusid.fusion.d_sub": 4, "fusid.fusion.hidden": 16, "fusid.training.epochs": 1,
          "fusid.training.progress": False, "fusid.pairs_per_epoch": 32}
    for s in (0, 1):
        run(resolve(None, {**ov, "seed": s}), tmp_path / f"s{s}")
    c0, c1 = (np.load(tmp_path / f"s{s}" / "tokenizer" / "pq_centroids.npy") for s in (0, 1))
    assert not np.allclose(c0, c1)
    assert read_json(tmp_path / "s1" / "config.json")["tokenizer"]["pq"]["kmeans"]["seed"] == 1


# ---- config files and legacy layouts ----


def test_config_file_round_trip_and_partial_file_propagates_seed(tmp_path):
    cfg = resolve("movielens-letter", {"seed": 4, "rqvae.n_levels": 2})
    p = tmp_path / "c.json"
    p.write_text(json.dumps(stored_config(cfg)))
    again = load_config_file(p)
    assert stored_config(again) == stored_config(cfg)
    p.write_text(json.dumps({"seed": 5, "tokenizer": {"kind": "fusid", "pq": {"K": 8}}}))
    part = load_config_file(p)
    assert part.tokenizer.pq.K == 8 and part.tokenizer.pq.kmeans.seed == 5 and part.train.seed == 5
    p.write_text(json.dumps({"tokenizer": {"kind": "fusid", "pqq": {}}}))
    with pytest.raises(ConfigError, match=r"c.json.*pqq"):
        load_config_file(p)


LEGACY_TIGER = {
    "name": "tiger", "seed": 3, "features": ["text=text:title,tags"], "tokenizer": "fusid",
    "tokenizer_preset": "tiger", "precomputed": "", "model": "musicrec_gen", "sasrec_cf_dim": 32,
    "sasrec_cf_epochs": 20, "device": "auto", "eval_batch_size": 256, "eval_valid": True,
    "data": {"dataset": "movielens", "train_tail": 30},
    "train": {"epochs": 6, "seed": 3, "device": "auto"},
    "sasrec": {"hidden": 64, "max_len": 50},
    "fusid": {"pairs_per_epoch": 0},
    "rqvae": {"epochs": 100, "seed": 3, "n_levels": 4, "alpha": 0.5, "modality": "ignored"},
    "musicrec": {"epochs": 100, "seed": 3, "text_modality": "text", "image_modality": "genre"},
    "gpt2": {"n_layer": 2}, "t5": {"beam": 20},
    "musicrec_gen": {"tasks": ["uni_text", "uni_image"], "t5": {"max_history": 10}},
}


def test_legacy_config_is_upgraded_to_what_the_old_runner_built():
    cfg = from_dict(RunConfig, upgrade_legacy(json.loads(json.dumps(LEGACY_TIGER))))
    c = cfg.tokenizer
    assert tokenizer_kind(cfg) == "rqvae" and model_kind(cfg) == "musicrec_gen"
    # the old runner: the preset's structure (3 levels, alpha 0, modality = musicrec.text_modality) plus the
    # run's budget fields (epochs, seed) copied from the rqvae section; tasks from the preset
    assert (c.n_levels, c.alpha, c.modality, c.epochs, c.seed) == (3, 0.0, "text", 100, 3)
    assert cfg.model.tasks == ("uni_text",) and cfg.model.t5.max_history == 10
    assert cfg.cf_sasrec.sasrec.hidden == 32 and cfg.cf_sasrec.train.epochs == 20 and cfg.cf_sasrec.train.seed == 3
    legacy_pop = {"tokenizer": "none", "model": "popular", "gpt2": {}}
    assert from_dict(RunConfig, upgrade_legacy(legacy_pop)).tokenizer is None
    old_gpt2 = upgrade_legacy({"tokenizer": "precomputed", "precomputed": "lemb", "model": "gpt2", "gpt2": {}})
    assert old_gpt2["tokenizer"] == {"kind": "precomputed", "source": "lemb"}
    assert old_gpt2["model"]["objective"] == "next"  # saved before the field existed


def test_legacy_run_directory_loads_and_rescores(tiny, tmp_path):
    from semid.eval.evaluator import evaluate
    from semid.pipeline.restore import load_run

    cfg = resolve(None, {**FAST, "data.dataset": str(tiny), "tokenizer": "precomputed", "precomputed": "lemb",
                         "model": "gpt2", "gpt2.n_embd": 16, "gpt2.n_layer": 1, "gpt2.n_head": 2, "gpt2.beam": 4,
                         "gpt2.valid_beam": 4, "name": "ids+gpt2"})
    out = run(cfg, tmp_path / "r")
    new = read_json(tmp_path / "r" / "config.json")
    legacy = {k: v for k, v in new.items() if k not in ("tokenizer", "model", "cf_sasrec")}
    legacy.update(tokenizer="precomputed", precomputed="lemb", tokenizer_preset="", model="gpt2",
                  gpt2={k: v for k, v in new["model"].items() if k != "kind"}, fusid={}, rqvae={}, t5={},
                  sasrec_cf_dim=32, sasrec_cf_epochs=30)
    (tmp_path / "r" / "config.json").write_text(json.dumps(legacy))
    (tmp_path / "r" / "manifest.json").unlink(missing_ok=True)  # runs of the old layout predate the manifest
    loaded = load_run(tmp_path / "r")
    assert loaded.config.model == cfg.model and loaded.config.tokenizer == cfg.tokenizer
    again = evaluate(loaded.model, loaded.split.test, progress=False)
    assert again["NDCG@10"] == pytest.approx(out["test"]["NDCG@10"], abs=1e-9)


def _bench_presets():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_presets.py"
    spec = importlib.util.spec_from_file_location("bench_presets", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


def test_bench_presets_budgets_resolve_for_every_suite_preset():
    bench = _bench_presets()
    for budget in bench.BUDGETS:
        for suite in bench.SUITES.values():
            for name in suite:
                cfg = resolve(name, bench._budget(budget, name))
                assert all(applies(cfg, k) for k in bench._budget(budget, name))
    cpu = resolve("movielens-tiger", bench._budget("cpu", "movielens-tiger"))
    assert cpu.tokenizer.epochs == 100 and cpu.model.t5.max_history == 10
    assert bench._budget("cpu", "movielens-popular") == {}  # counts only: no trainer for a budget to set


def test_bench_presets_suites_hold_the_baseline_and_musicrec_comparisons():
    """The baselines (MostPopular + SASRec per shared dataset) and the MQL4GRec SASRec / TIGER / LETTER /
    MusicRec comparison are bench_presets suites over the library's presets, not scripts of their own."""
    bench = _bench_presets()
    kinds = [(resolve(n).data.dataset, model_kind(resolve(n))) for n in bench.SUITES["baselines"]]
    assert [k for _, k in kinds] == ["popular", "sasrec"] * 4
    assert len({d for d, _ in kinds}) == 4 and kinds[0][0] == "movielens"
    cfgs = [resolve(n) for n in bench.SUITES["musicrec"]]
    assert [(model_kind(c), tokenizer_kind(c)) for c in cfgs] == [
        ("sasrec", "none"), ("musicrec_gen", "rqvae"), ("musicrec_gen", "rqvae"), ("musicrec_gen", "musicrec")]
    assert len({c.data.dataset for c in cfgs}) == 1


def test_bench_presets_dry_run_resolves_and_runs_nothing(tmp_path, capsys):
    bench = _bench_presets()
    out = tmp_path / "o"
    plan = bench.main(["--suite", "musicrec", "--dry-run", "--out", str(out), "--set", "sasrec.dropout=0.3"])
    assert list(plan) == bench.SUITES["musicrec"] and not out.exists()
    assert plan["mql4grec-sasrec"]["overrides"]["sasrec.dropout"] == "0.3"
    assert "sasrec.dropout" not in plan["mql4grec-tiger"]["overrides"]  # a --set key goes to the kinds it names
    assert plan["mql4grec-tiger"]["overrides"]["rqvae.epochs"] == 100 and plan["mql4grec-tiger"]["state"] == "new"
    assert "semid run --preset mql4grec-musicrec " in capsys.readouterr().out
    with pytest.raises(SystemExit, match="t5.d_model"):  # taken by no preset of the run: refused, not dropped
        bench.main(["--suite", "baselines", "--dry-run", "--out", str(out), "--set", "t5.d_model=64"])


def test_bench_presets_ratios_use_baselines_of_the_same_dataset():
    bench = _bench_presets()
    res = {n: {"test": {"NDCG@10": v}} for n, v in (("pop", 0.01), ("sas", 0.04), ("gen", 0.02), ("other", 0.03))}
    meta = {"pop": ("a", "popular"), "sas": ("a", "sasrec"), "gen": ("a", "t5"), "other": ("b", "gpt2")}
    r = bench.same_run_ratios(res, meta)
    assert r["gen"] == pytest.approx({"sasrec": 0.5, "popular": 2.0})
    assert r["sas"] == pytest.approx({"sasrec": 1.0, "popular": 4.0}) and r["other"] == {}


# ---- CLI: config show / fields, one-line errors ----


def _out(args):
    res = runner.invoke(app, args)
    return res.exit_code, res.output


def test_config_show_prints_the_resolved_config_with_the_seed_everywhere():
    code, out = _out(["config", "show", "--preset", "quickstart", "--seed=7"])
    assert code == 0, out
    d = json.loads(out)
    assert d == stored_config(resolve("quickstart", {"seed": 7}))
    seeds = [v for k, v in _walk(d) if k == "seed"]
    assert len(seeds) >= 6 and set(seeds) == {7}  # quickstart has no z_cf SASRec, so no cf_sasrec section
    code, out = _out(["config", "show", "movielens-tiger", "--rqvae.n_levels=4"])
    assert code == 0 and json.loads(out)["tokenizer"]["n_levels"] == 4


def _walk(d):
    for k, v in d.items():
        yield k, v
        if isinstance(v, dict):
            yield from _walk(v)


def test_config_show_of_a_config_file(tmp_path):
    p = tmp_path / "c.json"
    p.write_text(json.dumps(stored_config(resolve("movielens-musicrec"))))
    code, out = _out(["config", "show", str(p), "--musicrec.alpha=0"])
    assert code == 0, out
    assert json.loads(out)["tokenizer"]["alpha"] == 0.0


def test_config_fields_lists_type_default_and_doc():
    code, out = _out(["config", "fields", "rqvae"])
    assert code == 0, out
    line = next(ln for ln in out.splitlines() if "rqvae.n_levels" in ln)
    assert "int" in line and "3" in line and "RQ levels before TIGER" in line
    code, out = _out(["config", "fields", "data"])
    assert "data.train_tail" in out and "last N train items" in out  # doc from the comment block above it
    code, out = _out(["config", "fields"])
    assert code == 0 and "fusid.pq.kmeans.seed" in out and "gpt2.n_layer" in out and "cf_sasrec.train.epochs" in out
    code, out = _out(["config", "fields", "tokenizer"])
    assert code == 0 and "rqvae.n_levels" in out and "fusid.pq.K" in out and "gpt2.n_layer" not in out
    code, out = _out(["config", "fields", "nope"])
    assert code == 2 and out.strip().startswith("error:") and "rqvae" in out


def test_every_config_field_has_a_doc():
    from semid.config import describe
    from semid.pipeline.config import MODEL_KINDS, TOKENIZER_KINDS

    configs = [RunConfig(), *(c() for c in {**TOKENIZER_KINDS, **MODEL_KINDS}.values() if c is not None)]
    undocumented = [r.path for c in configs for r in describe(c) if not r.doc]
    assert undocumented == []


@pytest.mark.parametrize("args, needle", [
    (["evaluate", "--bogus"], "No such option"),
    (["config", "show", "nope"], "neither a preset"),  # a ConfigError no command catches
    (["run", "--preset", "quickstart", "--rqvae.n_levels=4"], "tokenizer is fusid"),
    (["data", "stats"], "Missing argument"),
])
def test_cli_errors_are_one_line_and_exit_2(args, needle):
    code, out = _out(args)
    assert code == 2, out
    assert needle in out and "Traceback" not in out and "╭" not in out
    assert len([ln for ln in out.strip().splitlines() if ln.startswith("error:")]) == 1


def test_debug_flag_shows_the_traceback():
    res = runner.invoke(app, ["--debug", "config", "show", "nope"])
    assert res.exit_code != 0
    text = res.output + "".join(__import__("traceback").format_exception(res.exception)) if res.exception else res.output
    assert "Traceback" in text or isinstance(res.exception, ConfigError)


def test_run_help_points_at_the_config_fields():
    code, out = _out(["run", "--help"])
    assert code == 0 and "semid config fields" in " ".join(out.split())


# ---- semid tokenize: presets, overrides, z_cf through the run's feature path ----

RQ_SMALL = ["--rqvae.epochs=2", "--rqvae.n_codes=6", "--rqvae.hidden=16", "--rqvae.latent_dim=8",
            "--rqvae.batch_size=32", "--rqvae.diversity_groups=2"]


def test_tokenize_tiger_override_sets_the_code_levels(tiny, tmp_path):
    code, out = _out(["tokenize", "--tokenizer", "tiger", "--dataset", str(tiny), "--out", str(tmp_path / "t"),
                      "--features=[\"cooc=item2vec:dim=16\"]", "--rqvae.modality=cooc", "--rqvae.n_levels=4",
                      *RQ_SMALL])
    assert code == 0, out
    report = read_json(tmp_path / "t" / "ids" / "report.json")
    assert report["n_levels"] == 4 and report["n_levels_final"] == 5  # 4 RQ levels + TIGER's collision digit
    rec = read_json(tmp_path / "t" / "run_config.json")
    assert rec["tokenizer"]["kind"] == "rqvae" and rec["tokenizer"]["n_levels"] == 4 and "model" not in rec


@pytest.mark.parametrize("tok", ["letter", "musicrec"])
def test_tokenize_letter_and_musicrec_train_z_cf_on_the_train_split(tiny, tmp_path, tok):
    """Failed before with "feature 'sasrec' needs a SASRec trainer": tokenize now builds features as run does."""
    feats = '["cooc=item2vec:dim=16", "basket=item2vec:window=50,dim=16", "cf=sasrec"]'
    if tok == "letter":
        extra = ["--rqvae.modality=cooc", *RQ_SMALL]
    else:
        extra = ["--musicrec.text_modality=cooc", "--musicrec.image_modality=basket", "--musicrec.epochs=2",
                 "--musicrec.n_codes=6", "--musicrec.hidden=16", "--musicrec.latent_dim=8", "--musicrec.batch_size=32"]
    code, out = _out(["tokenize", "--tokenizer", tok, "--dataset", str(tiny), "--out", str(tmp_path / "t"),
                      f"--features={feats}", "--sasrec_cf_epochs=1", "--cf_sasrec.train.progress=false", *extra])
    assert code == 0, out
    codes = np.load(tmp_path / "t" / "ids" / "codes.npy")
    assert codes.shape[0] == N_ITEMS and len({tuple(r) for r in codes}) == N_ITEMS
    assert read_json(tmp_path / "t" / "features.json")["cf"]["kind"] == "sasrec"
    rec = read_json(tmp_path / "t" / "run_config.json")
    assert rec["cf_sasrec"]["train"]["epochs"] == 1 and rec["tokenizer"]["alpha"] > 0
    assert (tmp_path / "t" / "cf_sasrec").is_dir()  # the z_cf SASRec's own run files


def test_tokenize_names_a_missing_modality(tiny, tmp_path):
    code, out = _out(["tokenize", "--tokenizer", "letter", "--dataset", str(tiny), "--out", str(tmp_path / "t"),
                      *RQ_SMALL])
    assert code == 2 and "needs catalog modalities" in out and "'text'" in out and "--features" in out


def test_tokenize_uses_the_matching_builtin_preset():
    from semid.cli.main import _tokenize_config
    from semid.encoders.feature_spec import coerce_features

    cfg, note = _tokenize_config("letter", None, None, None, ["--rqvae.n_levels=4"])
    assert "movielens-letter" in note and cfg.features == coerce_features(PRESETS["movielens-letter"].overrides["features"])
    assert cfg.tokenizer.n_levels == 4 and cfg.tokenizer.epochs == 100 and cfg.tokenizer.alpha == 1e-2
    cfg, note = _tokenize_config("rqvae", "movielens", None, None, [])
    assert note == "" and cfg.features == () and tokenizer_kind(cfg) == "rqvae"


def test_bench_presets_seeds_get_their_own_runs_and_a_t_interval(tmp_path):
    bench = _bench_presets()
    plan = bench.main(["--presets", "mql4grec-popular,mql4grec-sasrec", "--seeds", "0,1,2", "--dry-run",
                       "--out", str(tmp_path)])
    # MostPopular is deterministic: one run; SASRec: one run per seed, the seed in its overrides and directory
    assert list(plan) == ["mql4grec-popular seed 0"] + [f"mql4grec-sasrec seed {s}" for s in (0, 1, 2)]
    assert plan["mql4grec-sasrec seed 2"]["overrides"]["seed"] == 2
    assert plan["mql4grec-sasrec seed 2"]["run_dir"].endswith("mql4grec-sasrec/seed2")
    runs = [{"test": {k: v for k in bench.METRICS}, "total_seconds": 10.0} for v in (0.1, 0.2, 0.3)]
    sm = bench.seed_summary(runs)
    # mean 0.2, sd 0.1, t_{0.975, 2} = 4.3027: half-width 4.3027 * 0.1 / sqrt(3)
    assert sm["NDCG@10"].mean == pytest.approx(0.2) and sm["NDCG@10"].half_width == pytest.approx(0.248418, abs=1e-5)
    assert bench._cell(sm["HR@10"]) == "0.2000 ± 0.2484" and sm["total_seconds"].mean == 10.0


def test_bench_presets_learning_curve_reads_the_trainer_log(tmp_path, capsys):
    bench = _bench_presets()
    assert bench.learning_curve(tmp_path) == []  # no trainer (MostPopular): no curve
    (tmp_path / "model").mkdir()
    rows = [{"epoch": e, "train_loss": 3.0 - e, "lr": 1e-3, "seconds": 5.0,
             "valid": {"NDCG@10": 0.01 * e, "HR@10": 0.02 * e, "n_eval_users": 100}} for e in range(2)]
    (tmp_path / "model" / "train_log.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    assert bench.learning_curve(tmp_path) == rows
    bench._print_curve("x", rows)
    out = capsys.readouterr().out
    assert "x epoch 1: train loss 2.0000  valid NDCG@10 0.0100 HR@10 0.0200 (100 users)" in out
    bench._print_curve("g", [{"epoch": 0, "train_loss": 1.0, "valid": {"NDCG@10": 0.1, "Recall@10": 0.3}}])
    assert "valid NDCG@10 0.1000 HR@10 0.3000" in capsys.readouterr().out  # a generator logs Recall@10
