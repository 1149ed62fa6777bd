"""How a RunConfig is built from layers of dotted overrides: presets, config files, the command line.

A layer is a ``{"section.field": value}`` dict (a run preset's ``overrides``, the CLI's ``--k=v``, a
config file flattened). It is applied in a fixed order, so the order of its keys never matters:

1. selections: ``model=<kind>``, then ``tokenizer=<kind or tokenizer preset>``, then
   ``tokenizer_preset=<name>``. Selecting another kind replaces the section with that kind's defaults
   (a tokenizer preset with its complete config, and its generation tasks on a ``musicrec_gen`` model);
   selecting the kind already there keeps its settings.
2. ``features=[...]`` (typed specs, JSON objects or ``name=kind[:args]`` strings, whose item2vec takes the
   run seed); then ``seed=<n>`` sets every field named ``seed`` in the tree (found by walking it, the
   feature specs included); ``device=<d>`` other than ``auto`` sets every field named ``device``.
3. every other key (each config object rebuilt once with all its new values). ``<kind>.<field>`` addresses the tokenizer or model section while it holds
   that kind (``rqvae.n_levels``, ``fusid.pq.K``, ``gpt2.n_layer``, ``musicrec_gen.t5.beam``) and is
   refused, naming the section's fields, when it holds another; ``tokenizer.<field>`` / ``model.<field>``
   always address the selected one. A nested seed set here wins over step 2.

Legacy run directories (one section per component plus string ``tokenizer`` / ``model`` fields) are
rewritten to this layout by ``upgrade_legacy``, reproducing what the old runner actually built.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from semid.config import (
    KIND,
    _hints,
    _strip,
    _tagged,
    from_dict,
    replace_everywhere,
    set_path,
    set_paths,
    to_dict,
)
from semid.encoders.feature_spec import coerce_features, upgrade_features
from semid.errors import ConfigError
from semid.pipeline.config import (
    MODEL_KINDS,
    TOKENIZER_KINDS,
    RunConfig,
    model_kind,
    tokenizer_kind,
)

SELECTIONS = ("model", "tokenizer", "tokenizer_preset")
# Top-level names kept from the one-section-per-component layout.
ALIASES = {
    "sasrec_cf_dim": "cf_sasrec.sasrec.hidden",
    "sasrec_cf_epochs": "cf_sasrec.train.epochs",
    "precomputed": "precomputed.source",
}


def apply(cfg: RunConfig, layer: dict[str, Any]) -> RunConfig:
    """``cfg`` with one layer of dotted overrides applied (order: see the module docstring)."""
    rest = dict(layer)
    for key in SELECTIONS:
        if key in rest:
            cfg = select(cfg, key, rest.pop(key))
    if "features" in rest:
        cfg = dataclasses.replace(cfg, features=coerce_features(rest.pop("features"), seed=cfg.seed))
    if "seed" in rest:
        cfg = set_path(cfg, "seed", rest.pop("seed"))
        cfg = replace_everywhere(cfg, "seed", cfg.seed)
    if "device" in rest:
        cfg = set_path(cfg, "device", rest.pop("device"))
        if cfg.device != "auto":
            cfg = replace_everywhere(cfg, "device", cfg.device)
    return set_paths(cfg, [(target(cfg, key), value, key) for key, value in rest.items()])


def select(cfg: RunConfig, key: str, value: Any) -> RunConfig:
    """Apply one selection key: ``model``, ``tokenizer`` or ``tokenizer_preset``."""
    from semid.tokenizers.presets import PRESET_NAMES

    if key == "tokenizer_preset" or (key == "tokenizer" and isinstance(value, str) and value in PRESET_NAMES
                                     and value not in TOKENIZER_KINDS):
        return with_tokenizer_preset(cfg, value)
    return set_path(cfg, key, value)


def with_tokenizer_preset(cfg: RunConfig, name: str) -> RunConfig:
    """The tokenizer section replaced by preset ``name``'s complete config ('' keeps it); on a
    ``musicrec_gen`` model the preset's generation tasks replace the model's."""
    from semid.tokenizers.presets import preset

    if not name:
        return cfg
    p = preset(name)
    cfg = dataclasses.replace(cfg, tokenizer=p.tokenizer.config)
    if model_kind(cfg) == "musicrec_gen":
        cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, tasks=tuple(p.tasks)))
    return cfg


def target(cfg: RunConfig, key: str) -> str:
    """The RunConfig path an override key addresses (``rqvae.n_levels`` -> ``tokenizer.n_levels``), or a
    ConfigError when it names a section the run does not hold."""
    key = ALIASES.get(key, key)
    head, _, rest = key.partition(".")
    for kinds, section, current in ((TOKENIZER_KINDS, "tokenizer", tokenizer_kind(cfg)),
                                    (MODEL_KINDS, "model", model_kind(cfg))):
        if head not in kinds or head == "none":
            continue
        if head != current:
            obj = getattr(cfg, section)
            fields = sorted(f.name for f in dataclasses.fields(obj)) if obj is not None else []
            alt = f"; the {current} fields are {fields}" if fields else ""
            hint = " or --tokenizer_preset=tiger|letter|musicrec..." if section == "tokenizer" else ""
            raise ConfigError(f"override {key!r}: the {section} is {current}, not {head}; select it with "
                              f"--{section}={head}{hint} first{alt}")
        if not rest:
            raise ConfigError(f"override {key!r}: name a field, e.g. --{head}.<field>=<value>")
        return f"{section}.{rest}"
    return key


def applies(cfg: RunConfig, key: str) -> bool:
    """Whether ``key`` addresses a field of ``cfg`` (False for another kind's section, e.g. ``t5.*`` on GPT-2)."""
    try:
        target(cfg, key)
    except ConfigError:
        return False
    return True


# ---- config files ----


def flatten(cls: type, data: dict, prefix: str = "") -> dict[str, Any]:
    """A (possibly partial) JSON config -> one layer: nested sections become dotted leaf keys, a tagged
    section becomes its selection (``tokenizer=rqvae``) plus its fields, so a file is applied like an override
    layer (``seed`` reaches the nested seeds the file does not set)."""
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix or cls.__name__}: expected a mapping, got {type(data).__name__}")
    hints = _hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    out: dict[str, Any] = {}
    for k, v in data.items():
        path = f"{prefix}{k}"
        if k not in names:
            raise ConfigError(f"unknown field {path!r} for {cls.__name__}; valid: {sorted(names)}")
        tu, tp = _tagged(hints[k]), _strip(hints[k])
        if tu is not None and isinstance(v, dict):
            if KIND not in v:
                raise ConfigError(f"{path}: needs a {KIND!r} key; valid kinds: {list(tu.kinds)}")
            out[path] = v[KIND]
            sub = tu.cls(v[KIND], path)
            rest = {a: b for a, b in v.items() if a != KIND}
            if sub is None and rest:
                raise ConfigError(f"{path}: kind 'none' takes no fields, got {sorted(rest)}")
            if sub is not None:
                out.update(flatten(sub, rest, path + "."))
        elif isinstance(v, dict) and dataclasses.is_dataclass(tp):
            out.update(flatten(tp, v, path + "."))
        else:
            out[path] = v
    return out


def load_config_file(path: str | Path) -> RunConfig:
    """A RunConfig JSON (a run's config.json, legacy layouts upgraded, or a hand-written partial one)."""
    import json

    path = Path(path).expanduser().resolve()
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {path} not found") from None
    except json.JSONDecodeError as e:
        raise ConfigError(f"config file {path} is not valid JSON: {e}") from None
    try:
        layer = flatten(RunConfig, upgrade_legacy(raw))
        seeded = {k: v for k, v in layer.items() if k in (*SELECTIONS, "seed", "device")}
        # selections, the run seed and device first, then every field as written (so explicit nested seeds stay)
        return apply(apply(RunConfig(), seeded), {k: v for k, v in layer.items() if k not in seeded})
    except ConfigError as e:
        raise ConfigError(f"config file {path}: {e}") from None


# ---- legacy layout ----

_LEGACY_SECTIONS = ("fusid", "rqvae", "musicrec", "sasrec", "gpt2", "t5", "musicrec_gen")
# The old runner started a tokenizer preset's config from the preset, then copied these fields from the
# run's rqvae / musicrec section into it (the preset fixed the structure, the run the budget).
_LEGACY_PRESET_KEEP = ("epochs", "batch_size", "lr", "weight_decay", "seed", "hidden", "latent_dim", "n_codes",
                       "tau", "reseed_every", "code_level_decay", "diversity_groups", "diversity_tau")


def is_legacy(raw: dict) -> bool:
    return isinstance(raw.get("tokenizer"), str) or isinstance(raw.get("model"), str) or any(
        k in raw for k in ("tokenizer_preset", "precomputed", "sasrec_cf_dim", "sasrec_cf_epochs", *_LEGACY_SECTIONS))


def upgrade_legacy(raw: dict) -> dict:
    """A config.json of the one-section-per-component layout -> the tagged-union layout, holding exactly the
    tokenizer, model and z_cf SASRec the old runner built from it. Other dicts are returned unchanged."""
    if isinstance(raw, dict):
        raw = upgrade_features(raw)  # string feature specs -> typed ones, item2vec seeded with the run seed
    if not isinstance(raw, dict) or not is_legacy(raw):
        return _fill_new_layout(raw)
    from semid.models.musicrec_gen import MusicRecGenConfig
    from semid.tokenizers.musicrec import MusicRecConfig
    from semid.tokenizers.presets import preset
    from semid.tokenizers.rqvae import RQVAEConfig

    raw = dict(raw)
    sections = {k: raw.pop(k) for k in _LEGACY_SECTIONS if k in raw}
    tok = raw.pop("tokenizer", "fusid")
    tok_preset = raw.pop("tokenizer_preset", "")
    source = raw.pop("precomputed", "")
    model = raw.pop("model", "gpt2")
    cf_dim, cf_epochs = raw.pop("sasrec_cf_dim", 32), raw.pop("sasrec_cf_epochs", 30)
    tasks = None
    if tok_preset:
        mr = {**to_dict(MusicRecConfig()), **sections.get("musicrec", {})}
        p = preset(tok_preset, text=mr["text_modality"], image=mr["image_modality"], cf=mr["cf_embedding"])
        built = to_dict(p.tokenizer.config)
        kind = "rqvae" if isinstance(p.tokenizer.config, RQVAEConfig) else "musicrec"
        base = {**to_dict(type(p.tokenizer.config)()), **sections.get(kind, {})}
        built.update({k: base[k] for k in _LEGACY_PRESET_KEEP if k in built and k in base})
        tok_section, tasks = {KIND: kind, **built}, list(p.tasks)
    elif tok == "none":
        tok_section = None
    elif tok == "precomputed":
        tok_section = {KIND: "precomputed", "source": source}
    else:
        tok_section = {KIND: tok, **sections.get(tok, {})}
    model_section = {KIND: model, **({} if model == "popular" else sections.get(model, {}))}
    if model == "gpt2" and "objective" not in model_section:
        model_section["objective"] = "next"  # runs saved before the field existed trained (and prompt) "next"
    if model == "musicrec_gen" and tasks is not None:
        model_section["tasks"] = tasks
    elif model == "musicrec_gen":
        model_section.setdefault("tasks", list(MusicRecGenConfig().tasks))
    train = raw.get("train", {})
    raw.update(tokenizer=tok_section, model=model_section, cf_sasrec={
        "sasrec": {**sections.get("sasrec", {}), "hidden": cf_dim},
        # the old z_cf SASRec: TrainConfig defaults with its own epochs, the run's seed / device / bf16 / progress
        "train": {"epochs": cf_epochs, **{k: train[k] for k in ("seed", "device", "bf16", "progress") if k in train}},
    })
    return raw


def _fill_new_layout(raw: Any) -> Any:
    model = raw.get("model") if isinstance(raw, dict) else None
    if isinstance(model, dict) and model.get(KIND) == "gpt2" and "objective" not in model:
        return {**raw, "model": {**model, "objective": "next"}}
    return raw


def from_json_dict(raw: dict) -> RunConfig:
    """Exactly the config a stored dict describes (legacy layouts upgraded), for reloading a run."""
    return from_dict(RunConfig, upgrade_legacy(raw))
