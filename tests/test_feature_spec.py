"""The typed feature spec and its one builder: parity with the three former feature paths, legacy strings as
sugar, the config tree (show / fields / config.json / seeds), and bad input named clearly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from feature_fixture import fake_sasrec, fake_text_encode, tiny_catalog, tiny_train
from hypothesis import given, settings
from hypothesis import strategies as st

from semid.config import from_dict, to_dict
from semid.encoders.cooc import Item2VecConfig
from semid.encoders.feature_spec import (
    CodesFeature,
    Item2VecFeature,
    MultiHotFeature,
    PrecomputedFeature,
    SASRecFeature,
    TextFeature,
    coerce_features,
    parse_legacy,
)
from semid.encoders.features import (
    FeaturesConfig,
    FieldSpec,
    attach_features,
    build_features,
    build_fusid_features,
)
from semid.errors import ConfigError, DataError
from semid.pipeline.config import RunConfig
from semid.pipeline.presets import resolve
from semid.tokenizers.modality import modality_features

OLD = Path(__file__).resolve().parent / "fixtures" / "features" / "old_paths.npz"
RUN_SPECS = ("text=text:title,tags", "genre=multihot:genres", "cooc=item2vec", "basket=item2vec:window=50,dim=16",
             "t=codes:lemb,decay=0.5", "cf=sasrec")


@pytest.fixture
def fake_text(monkeypatch, tmp_path):
    from semid.encoders.text import TextEncoder

    monkeypatch.setattr(TextEncoder, "encode", fake_text_encode)
    monkeypatch.setenv("SEMID_CACHE", str(tmp_path / "cache"))


def _same(a, b):
    assert a.shape == b.shape and a.dtype == b.dtype
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


# ---- parity with the former paths (outputs frozen from them in fixtures/features/old_paths.npz) ----


def test_run_features_match_the_string_spec_path(fake_text):
    """pipeline.features.attach_features (string specs, seed 3) gave these arrays; the typed builder gives them."""
    old = np.load(OLD)
    cat, train = tiny_catalog(), tiny_train()
    summary = attach_features(coerce_features(RUN_SPECS, seed=3), cat, train, dataset="tiny", sasrec_fn=fake_sasrec)
    assert list(summary) == [s.split("=")[0] for s in RUN_SPECS]
    for name in summary:
        _same(cat.embeddings[name], old[f"run/{name}/emb"])
        np.testing.assert_array_equal(cat.masks[name], old[f"run/{name}/mask"])
    assert summary["basket"]["dim"] == 16 and summary["cf"]["coverage"] == pytest.approx(0.9)  # item 9 unseen


@pytest.mark.parametrize("tag,cfg", [
    ("auto_text", FeaturesConfig(cache=False, dataset="tiny")),
    ("auto_multihot", FeaturesConfig(cache=False, auto_set_encoder="multihot", dataset="tiny", code_level_decay=0.5)),
    ("explicit", FeaturesConfig(cache=False, fields=(FieldSpec(field="genres", encoder="multihot", modality="g"),
                                                      FieldSpec(field="title")), cooc=False)),
])
def test_fusid_features_match_its_former_builder(fake_text, tag, cfg):
    """FusID's FeaturesConfig (auto / explicit fields, cooc, catalog embeddings and codes) expands to specs whose
    arrays, names and order equal the former encoders.features.build_features output."""
    old = np.load(OLD)
    feats = build_fusid_features(tiny_catalog(), tiny_train(), cfg)
    assert list(feats) == old[f"fusid/{tag}/names"].tolist()
    for name, (emb, mask) in feats.items():
        _same(emb, old[f"fusid/{tag}/{name}/emb"])
        np.testing.assert_array_equal(mask, old[f"fusid/{tag}/{name}/mask"])


def test_tokenizer_modality_inputs_match_their_former_reader():
    old = np.load(OLD)
    cat = tiny_catalog()
    _same(modality_features(cat, "lemb", 0.5), old["modality/lemb_0.5"])
    _same(modality_features(cat, "img"), old["modality/img"])


def test_modality_selection_reads_the_feature_built_under_that_name(fake_text):
    """An RQ-VAE / MusicRec modality field names a feature spec: the tokenizer input is that spec's array."""
    cat, train = tiny_catalog(), tiny_train()
    specs = coerce_features('["genre=multihot:genres", "cooc=item2vec"]')
    built = build_features(specs, cat, train, cache=False)
    attach_features(specs, cat, train, cache=False)
    for name in ("genre", "cooc"):
        _same(modality_features(cat, name), built[name][0])
    with pytest.raises(ConfigError, match=r"'nope'.*'cooc', 'genre', 'img'.*--features"):
        modality_features(cat, "nope")


def test_shipped_presets_resolve_and_their_features_are_typed(fake_text):
    tiger = resolve("movielens-tiger")
    assert tiger.features == (TextFeature(name="text", fields=("title", "tags")),)
    assert resolve("quickstart").features == ()
    mr = resolve("lcrec-instruments-musicrec", {"seed": 4})
    assert [type(f) for f in mr.features] == [Item2VecFeature, Item2VecFeature, SASRecFeature]
    assert [f.encoder.window for f in mr.features[:2]] == [5, 50] and {f.encoder.seed for f in mr.features[:2]} == {4}


# ---- legacy strings -> typed specs ----


def test_legacy_strings_parse_to_the_typed_specs():
    assert parse_legacy("text=text:title,tags") == TextFeature(name="text", fields=("title", "tags"))
    assert parse_legacy("genre=multihot:genres") == MultiHotFeature(name="genre", field="genres")
    assert parse_legacy("cf=sasrec") == SASRecFeature(name="cf")
    assert parse_legacy("b=item2vec:window=50,dim=16", seed=2) == Item2VecFeature(
        name="b", encoder=Item2VecConfig(window=50, dim=16, seed=2))
    assert parse_legacy("t=codes:lemb,decay=0.5") == CodesFeature(name="t", source="lemb", decay=0.5)
    assert parse_legacy("p=precomputed:x.npy,dim=4") == PrecomputedFeature(name="p", source="x.npy", dim=4)
    assert parse_legacy("item2vec") == Item2VecFeature(name="cooc") and parse_legacy("sasrec").name == "cf"
    # one CLI string holding several specs: a comma starts a new spec only before name=<kind>
    assert [f.name for f in coerce_features("text=text:title,tags,b=item2vec:window=50,dim=16,cf=sasrec")] == [
        "text", "b", "cf"]
    assert coerce_features('[{"kind": "multihot", "field": "genres"}, "cf=sasrec"]') == (
        MultiHotFeature(name="genres", field="genres"), SASRecFeature())
    # the library API takes the strings too (item2vec seeded with the run seed, as the string path did)
    cfg = RunConfig(seed=5, features=("cooc=item2vec",))
    assert cfg.features == (Item2VecFeature(name="cooc", encoder=Item2VecConfig(seed=5)),)


def test_typed_features_round_trip_through_json_and_seed_overrides():
    cfg = resolve(None, {"features": '["text=text:title", "cooc=item2vec:window=3"]', "seed": 7})
    d = to_dict(cfg)
    assert d["features"][0] == {"kind": "text", "name": "text", "fields": ["title"], "encoder": to_dict(
        TextFeature().encoder)}
    assert d["features"][1]["kind"] == "item2vec" and d["features"][1]["encoder"]["seed"] == 7
    assert from_dict(RunConfig, json.loads(json.dumps(d))) == cfg
    # a later --seed layer reaches the specs; a features layer after a seeded config takes that seed
    assert resolve(None, {"features": ("cooc=item2vec",)}).features[0].encoder.seed == 0
    assert resolve("lcrec-instruments-tiger", {"seed": 3}).features[0].encoder.seed == 3
    base = resolve(None, {"seed": 9})
    assert resolve(None, {"features": ("cooc=item2vec",)}, base).features[0].encoder.seed == 9


def test_legacy_config_json_with_string_features_upgrades_with_its_seed(tmp_path):
    from semid.pipeline.overrides import from_json_dict, load_config_file

    raw = {"seed": 3, "features": ["cooc=item2vec", "cf=sasrec"], "tokenizer": {"kind": "none"},
           "model": {"kind": "popular"}}
    cfg = from_json_dict(raw)
    assert cfg.features == (Item2VecFeature(encoder=Item2VecConfig(seed=3)), SASRecFeature())
    (tmp_path / "c.json").write_text(json.dumps(raw))
    assert load_config_file(tmp_path / "c.json").features == cfg.features


def test_config_show_and_fields_list_the_features():
    from typer.testing import CliRunner

    from semid.cli.main import app

    runner = CliRunner()
    r = runner.invoke(app, ["config", "show", "--preset", "movielens-tiger"])
    assert r.exit_code == 0, r.output
    feats = json.loads(r.output)["features"]
    assert feats == [{"kind": "text", "name": "text", "fields": ["title", "tags"],
                      "encoder": to_dict(TextFeature().encoder)}]
    r = runner.invoke(app, ["config", "show", "--preset", "quickstart", "--features=[\"cf=sasrec\"]"])
    assert r.exit_code == 0 and json.loads(r.output)["features"] == [{"kind": "sasrec", "name": "cf"}]
    assert "cf_sasrec" in json.loads(r.output)  # the z_cf SASRec section is recorded when a sasrec feature runs
    r = runner.invoke(app, ["config", "fields", "features"], terminal_width=200)
    assert r.exit_code == 0
    for kind in ("text", "multihot", "item2vec", "sasrec", "codes", "precomputed"):
        assert f"feature.{kind}" in r.output
    assert "features[].fields" in r.output and "features[].encoder.window" in r.output
    from semid.config import describe

    row = next(r for r in describe(resolve("movielens-tiger")) if r.path == "features")
    assert row.type.startswith("tuple[text | multihot | image | audio | item2vec | sasrec | codes | precomputed")
    assert row.default == [{"kind": "text", **to_dict(TextFeature(name="text", fields=("title", "tags")))}]


# ---- bad input ----


@pytest.mark.parametrize("bad,msg", [
    ("x=foo:bar", r"'x=foo:bar'.*unknown kind 'foo'.*'text', 'multihot'"),
    ("text", r"'text' must look like name=kind.*valid kinds"),
    ("genres", r"'genres' must look like name=kind.*valid kinds"),
    ("t=text", r"text needs at least one catalog field"),
    ("g=multihot:a,b", r"exactly one catalog field"),
    ("c=sasrec:3", r"takes no arguments"),
    ("t=codes:lemb,decay=2", r"decay must be in \(0, 1\]"),
    ('[{"kind": "nope"}]', r"unknown feature 'nope'; valid: \['text', 'multihot'"),
    ('[{"kind": "text", "field": "x"}]', r"unknown field\(s\) \['field'\] for TextFeature"),
    ('["a=item2vec", "a=sasrec"]', r"two features are named 'a'"),
])
def test_bad_specs_are_config_errors_naming_the_spec_and_the_valid_kinds(bad, msg):
    with pytest.raises(ConfigError, match=msg):
        coerce_features(bad)
    with pytest.raises(ConfigError, match=msg):  # the same error through the override layer (--features=...)
        resolve(None, {"features": bad if bad.startswith("[") else [bad]})


def test_a_field_missing_from_the_catalog_is_named_with_the_available_ones(fake_text):
    cat = tiny_catalog()
    with pytest.raises(ConfigError, match=r"'meta' \(text\): catalog field\(s\) \['artist'\].*\['genres', 'tags', "
                       r"'title'\]"):
        build_features(coerce_features("meta=text:title,artist"), cat, tiny_train(), cache=False)
    with pytest.raises(ConfigError, match=r"\(multihot\) names no catalog field"):
        build_features((MultiHotFeature(name="g"),), cat, cache=False)
    with pytest.raises(ConfigError, match=r"'nope' is not a catalog code tuple; available: \['lemb'\]"):
        build_features((CodesFeature(source="nope"),), cat, cache=False)
    with pytest.raises(ConfigError, match="z_cf SASRec trainer"):
        build_features((SASRecFeature(),), cat, tiny_train(), cache=False)
    with pytest.raises(ConfigError, match="is not a feature config"):
        build_features(("cf=sasrec",), cat, cache=False)


def test_precomputed_file_is_checked_for_shape_and_missing_rows(tmp_path):
    cat = tiny_catalog()
    good = np.arange(40, dtype=np.float64).reshape(10, 4)
    good[3] = np.nan  # an item without this embedding
    np.save(tmp_path / "good.npy", good)
    emb, mask = build_features((PrecomputedFeature(source=str(tmp_path / "good.npy"), dim=4),), cat)["good"]
    assert emb.dtype == np.float32 and mask.tolist() == [i != 3 for i in range(10)] and not emb[3].any()
    np.testing.assert_array_equal(emb[0], [0, 1, 2, 3])
    np.save(tmp_path / "short.npy", np.zeros((9, 4), np.float32))
    with pytest.raises(DataError, match=r"short\.npy: feature 'short' expects shape \(10, d\).*got \(9, 4\)"):
        build_features((PrecomputedFeature(source=str(tmp_path / "short.npy")),), cat)
    with pytest.raises(DataError, match=r"good\.npy: feature 'good' expects shape \(10, 8\).*got \(10, 4\)"):
        build_features((PrecomputedFeature(source=str(tmp_path / "good.npy"), dim=8),), cat)
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}] * 10, dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match=r"obj\.npy"):  # never unpickled
        build_features((PrecomputedFeature(source=str(tmp_path / "obj.npy")),), cat)
    with pytest.raises(ConfigError, match=r"neither a catalog embedding \['img'\] nor an existing \.npy file"):
        build_features((PrecomputedFeature(source=str(tmp_path / "absent.npy")),), cat)
    # a catalog embedding passes through with its mask
    emb, mask = build_features((PrecomputedFeature(source="img"),), cat)["img"]
    assert mask.tolist() == [True] * 9 + [False] and emb.shape == (10, 3)


def test_run_configs_recorded_with_string_features_upgrade_to_the_presets_typed_config():
    """A config.json written before the typed specs (features as strings) upgrades to exactly what the preset
    resolves to now, so such runs reload and `--resume` accepts them (runner compares the upgraded form)."""
    from semid.config import differences
    from semid.encoders.feature_spec import upgrade_features
    from semid.pipeline.presets import PRESETS
    from semid.pipeline.runner import stored_config

    n = 0
    for name, p in PRESETS.items():
        if not p.overrides.get("features"):
            continue
        new = stored_config(resolve(name, {"seed": 2}))
        old = {**new, "features": list(p.overrides["features"])}
        assert differences(upgrade_features(old), new) == [], name
        n += 1
    assert n >= 10


_name = st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True)
_legacy = st.one_of(
    st.builds(lambda n, fs: f"{n}=text:{','.join(fs)}", _name, st.lists(_name, min_size=1, max_size=3)),
    st.builds(lambda n, f: f"{n}=multihot:{f}", _name, _name),
    st.builds(lambda n, w, d: f"{n}=item2vec:window={w},dim={d}", _name, st.integers(1, 99), st.integers(1, 99)),
    st.builds(lambda n, d: f"{n}=codes:lemb,decay={d}", _name, st.sampled_from([0.25, 0.5, 1.0])),
    st.builds(lambda n: f"{n}=sasrec", _name),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(_legacy, min_size=1, max_size=4, unique_by=lambda s: s.split("=")[0]))
def test_one_comma_joined_string_parses_like_the_list(specs):
    """`--features=a=text:x,y,b=item2vec:window=5,dim=8` splits only where a new name=<kind> starts."""
    assert coerce_features(",".join(specs)) == coerce_features(specs) == tuple(parse_legacy(s) for s in specs)


def test_fusid_refuses_a_run_feature_that_shadows_one_of_its_modalities(fake_text):
    """A run feature named like a FusID modality ('cooc') used to replace FusID's own item2vec silently."""
    cat, train = tiny_catalog(), tiny_train()
    attach_features(coerce_features("cooc=item2vec:window=50"), cat, train, cache=False)
    with pytest.raises(ConfigError, match=r"two features are named 'cooc'.*rename the run feature"):
        build_fusid_features(cat, train, FeaturesConfig(cache=False))
    assert "cooc" in build_fusid_features(cat, train, FeaturesConfig(cache=False, cooc=False))
