"""``semid config``: print the resolved config of a preset / config file, and list every config field.

    semid config show quickstart --seed=7          # the complete RunConfig as JSON (what config.json records)
    semid config show runs/x/config.json --train.lr=3e-4
    semid config fields rqvae                      # every RQ-VAE field: path, type, default, doc
    semid config fields features                   # every feature kind (text, multihot, item2vec, ...)
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from semid.errors import ConfigError

config_app = typer.Typer(no_args_is_help=True, help="Show resolved run configs and list every config field.")
EXTRA = {"allow_extra_args": True, "ignore_unknown_options": True}


def resolve_cli(source: str | None, preset: str | None, config: Path | None, extra: list[str], **direct):
    """RunConfig from a preset name or a config file (positional ``source`` is either), then the dotted
    ``extra`` overrides and the ``direct`` ones (None values skipped) as one more layer."""
    from semid.config import parse_overrides
    from semid.pipeline.overrides import load_config_file
    from semid.pipeline.presets import PRESETS, resolve

    if source is not None:
        if source in PRESETS:
            preset = preset or source
        elif source.endswith(".json") or Path(source).is_file():
            config = config or Path(source)
        else:
            raise ConfigError(f"{source!r} is neither a preset (see `semid presets`) nor a config file")
    base = load_config_file(config) if config is not None else None
    ov = parse_overrides(extra)
    ov.update({k: v for k, v in direct.items() if v is not None})
    return resolve(preset, ov, base)


@config_app.command("show", context_settings=EXTRA)
def show(
    ctx: typer.Context,
    source: str = typer.Argument(None, help="a preset name or a config JSON (e.g. a run's config.json)"),
    preset: str = typer.Option(None, help="named preset (see `semid presets`)"),
    config: Path = typer.Option(None, help="RunConfig JSON"),
    full: bool = typer.Option(False, help="every section, also those this run would not use"),
):
    """Print the resolved RunConfig as JSON: exactly what `semid run` with the same arguments records."""
    from semid.config import to_dict
    from semid.pipeline.runner import stored_config

    extra = list(ctx.args)
    if source is not None and source.startswith("-"):  # an override, not a preset or file
        source, extra = None, [source, *extra]
    cfg = resolve_cli(source, preset, config, extra)
    typer.echo(json.dumps(to_dict(cfg) if full else stored_config(cfg), indent=2))


def _sections():
    """{section name: (config instance listed, override prefix)} for `semid config fields`."""
    from semid.encoders.feature_spec import FEATURE_KINDS
    from semid.pipeline.config import MODEL_KINDS, TOKENIZER_KINDS, CFSASRecConfig, DataConfig
    from semid.train.loop import TrainConfig

    out = {"run": (None, ""), "data": (DataConfig(), "data."), "train": (TrainConfig(), "train."),
           "cf_sasrec": (CFSASRecConfig(), "cf_sasrec.")}
    for kinds in (TOKENIZER_KINDS, MODEL_KINDS):
        for kind, cls in kinds.items():
            if cls is not None:
                out[kind] = (cls(), f"{kind}.")
    for kind, cls in FEATURE_KINDS.items():  # items of the run's `features` list: {"kind": ..., fields}
        out[f"feature.{kind}"] = (cls(), "features[].")
    return out


@config_app.command("fields")
def fields(
    section: str = typer.Argument(None, help="run | data | train | cf_sasrec | tokenizer | model | features | one "
                                  "tokenizer or model kind (fusid, rqvae, musicrec, gpt2, t5, ...) or feature.<kind> "
                                  "(feature.text, feature.item2vec, ...); default: all"),
):
    """List every config field with its type, default and one-line doc (set any with --<path>=<value>)."""
    from semid.config import describe
    from semid.encoders.feature_spec import FEATURE_KINDS
    from semid.pipeline.config import MODEL_KINDS, TOKENIZER_KINDS, RunConfig

    sections = _sections()
    groups = {"tokenizer": [k for k, c in TOKENIZER_KINDS.items() if c is not None], "model": list(MODEL_KINDS),
              "features": [f"feature.{k}" for k in FEATURE_KINDS]}
    if section is not None and section not in sections and section not in groups:
        raise ConfigError(f"unknown config section {section!r}; valid: {[*sections, *groups]}")
    console = Console(width=200)
    for name in groups.get(section, [section]) if section else list(sections):
        cfg, prefix = sections[name]
        if cfg is None:  # the run's own scalars (the sections are listed under their own names)
            rows = [r for r in describe(RunConfig()) if "." not in r.path and r.default != "(section)"
                    and r.path not in ("tokenizer", "model")]
            rows += [r for r in describe(RunConfig()) if r.path in ("tokenizer", "model")]
        else:
            rows = describe(cfg, prefix)
        t = Table(title=name, show_lines=False)
        for col in ("field", "type", "default", "doc"):
            t.add_column(col, overflow="fold")
        for r in rows:
            t.add_row(r.path, r.type, json.dumps(r.default) if r.default != "(section)" else "(section)", r.doc)
        console.print(t)
