"""The ``semid`` command line: data stats, tokenize, train/run a pipeline, evaluate a run, list presets.

Any config field can be set with a dotted override after the options, e.g.
``semid run --preset quickstart --train.epochs=3 --fusid.pq.K=512``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from semid.errors import SemidError
from semid.tokenizers.ids import conflict_summary

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
data_app = typer.Typer(no_args_is_help=True, help="Inspect datasets.")
app.add_typer(data_app, name="data")
console = Console()
EXTRA = {"allow_extra_args": True, "ignore_unknown_options": True}


def _fail(e: Exception) -> None:
    console.print(f"[bold red]error:[/] {e}")
    raise typer.Exit(code=2)


def _config(preset: str | None, config: Path | None, extra: list[str], **direct):
    from semid.config import from_dict, parse_overrides
    from semid.pipeline.config import RunConfig
    from semid.pipeline.presets import resolve

    base = None
    if config is not None:
        try:
            base = from_dict(RunConfig, json.loads(config.read_text()))
        except FileNotFoundError:
            raise SemidError(f"config file {config} not found") from None
        except json.JSONDecodeError as e:
            raise SemidError(f"config file {config} is not valid JSON: {e}") from None
    ov = parse_overrides(extra)
    ov.update({k: v for k, v in direct.items() if v is not None})
    return resolve(preset, ov, base)


def _metrics_table(title: str, rows: list[list[str]]) -> Table:
    t = Table(title=title)
    for c in ("model", "HR@5", "HR@10", "NDCG@5", "NDCG@10", "MRR", "users"):
        t.add_column(c, justify="left" if c == "model" else "right")
    for r in rows:
        t.add_row(*r)
    return t


@data_app.command("stats")
def data_stats(dataset: str = typer.Argument(..., help="built-in name (movielens) or a dataset path")):
    """Users, items, interactions, sequence lengths and modality coverage of a dataset."""
    from semid.data import dataset_stats, load_dataset, render_stats

    try:
        console.print(render_stats(dataset_stats(load_dataset(dataset))))
    except SemidError as e:
        _fail(e)


@app.command(context_settings=EXTRA)
def run(
    ctx: typer.Context,
    preset: str = typer.Option(None, help="named preset (see `semid presets`)"),
    config: Path = typer.Option(None, help="RunConfig JSON (e.g. a previous run's config.json)"),
    dataset: str = typer.Option(None, help="shortcut for --data.dataset"),
    run_dir: Path = typer.Option(None, help="output directory (default runs/<preset or name>)"),
    resume: bool = typer.Option(False, help="continue an interrupted run in --run-dir"),
    overwrite: bool = typer.Option(False, help="replace an existing --run-dir"),
    verbose: bool = typer.Option(False, "-v", help="log progress details"),
):
    """Run a whole pipeline (features -> tokenizer -> model -> full-ranking test metrics)."""
    from semid.pipeline.runner import run as run_pipeline
    from semid.pipeline.runner import summarize

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        cfg = _config(preset, config, ctx.args, **{"data.dataset": dataset})
        out_dir = run_dir or Path("runs") / (preset or cfg.name)
        res = run_pipeline(cfg, out_dir, resume=resume, overwrite=overwrite, console=console)
    except SemidError as e:
        _fail(e)
    console.print(_metrics_table(f"test metrics (full ranking) - {cfg.data.dataset}", summarize({cfg.name: res})))
    console.print(f"artifacts in [bold]{out_dir}[/]")


@app.command(context_settings=EXTRA)
def train(
    ctx: typer.Context,
    preset: str = typer.Option(None, help="named preset"),
    config: Path = typer.Option(None, help="RunConfig JSON"),
    dataset: str = typer.Option(None, help="shortcut for --data.dataset"),
    run_dir: Path = typer.Option(None, help="output directory"),
    resume: bool = typer.Option(False, help="continue an interrupted run"),
    overwrite: bool = typer.Option(False, help="replace an existing --run-dir"),
):
    """Train a pipeline's tokenizer and model (same as `run`; metrics are written too)."""
    run(ctx, preset=preset, config=config, dataset=dataset, run_dir=run_dir, resume=resume, overwrite=overwrite,
        verbose=False)


@app.command()
def evaluate(
    run_dir: Path = typer.Argument(..., help="a run directory"),
    split: str = typer.Option("test", help="valid | test"),
    device: str = typer.Option("cpu", help="cpu | cuda"),
    checkpoint: str = typer.Option(
        "final", help="final (a finished run's selected weights) | best (best-validation weights so far, "
        "also of a run still training or interrupted)"
    ),
):
    """Reload a run's tokenizer and selected weights and re-score them with full ranking."""
    from semid.eval.evaluator import evaluate as evaluate_model
    from semid.io import read_json
    from semid.pipeline.restore import load_run
    from semid.pipeline.runner import fmt_metrics_row

    if split not in ("valid", "test"):
        _fail(SemidError(f"--split must be valid or test, got {split!r}"))
    try:
        loaded = load_run(run_dir, device=device, checkpoint=checkpoint)
        es = loaded.split.test if split == "test" else loaded.split.valid
        m = evaluate_model(loaded.model, es, batch_size=loaded.config.eval_batch_size,
                           n_items=loaded.dataset.catalog.n_items)
        label = "re-scored" if checkpoint == "final" else "best checkpoint so far"
        rows = [[f"{loaded.config.name} ({split}, {label})", *fmt_metrics_row(m), str(m["n_eval_users"])]]
        stored = run_dir / ("metrics.json" if split == "test" else "metrics_valid.json")
        if stored.exists():
            s = read_json(stored)
            rows.append([f"{loaded.config.name} ({split}, stored)", *fmt_metrics_row(s), str(s["n_eval_users"])])
    except SemidError as e:
        _fail(e)
    console.print(_metrics_table(str(run_dir), rows))


@app.command()
def serve(
    run_dir: Path = typer.Argument(..., help="a finished run directory"),
    host: str = typer.Option("127.0.0.1", help="bind address"),
    port: int = typer.Option(8000, help="port"),
    device: str = typer.Option("cpu", help="cpu | cuda"),
):
    """Serve recommendations from a finished run over HTTP (POST /recommend)."""
    try:
        import uvicorn
    except ImportError:
        _fail(SemidError("semid serve needs uvicorn: pip install 'semid[serve]'"))
    from semid.serve.app import create_app

    try:
        app_ = create_app(run_dir, device=device)
    except SemidError as e:
        _fail(e)
    uvicorn.run(app_, host=host, port=port)


@app.command(context_settings=EXTRA)
def tokenize(
    ctx: typer.Context,
    tokenizer: str = typer.Option("fusid", help="fusid | rqvae | musicrec | precomputed | tiger | letter"),
    dataset: str = typer.Option("movielens", help="built-in name or dataset path"),
    out: Path = typer.Option(..., help="output directory (ids/codes.npy, ids/report.json, ...)"),
    codes: str = typer.Option(None, help="precomputed: catalog code name or code file"),
    overwrite: bool = typer.Option(False, help="replace an existing --out"),
):
    """Fit an item tokenizer on a dataset's train split and write its IDs and report."""
    from semid.io import make_run_dir, write_json
    from semid.pipeline.features import attach_features
    from semid.pipeline.runner import _reseed, build_tokenizer, prepare_data

    presets = {"tiger", "letter", "musicrec"}
    try:
        direct = {"data.dataset": dataset, "precomputed": codes}
        if tokenizer in presets or tokenizer.startswith("musicrec_"):
            direct["tokenizer_preset"] = tokenizer
        else:
            direct["tokenizer"] = tokenizer
        cfg = _reseed(_config(None, None, ctx.args, **direct))
        out = make_run_dir(out, overwrite=overwrite)
        from semid.config import to_dict

        write_json(out / "run_config.json", to_dict(cfg))
        ds, split = prepare_data(cfg)
        attach_features(ds.catalog, split.train, cfg.features, dataset=ds.name, seed=cfg.seed)
        tok, _ = build_tokenizer(cfg)
        if tok is None:
            raise SemidError("--tokenizer none has nothing to fit")
        tok.fit(ds.catalog, split.train)
        tok.save(out)
    except SemidError as e:
        _fail(e)
    r = tok.report_
    console.print(f"[bold]{tok.name}[/] on {ds.name}: {r['n_items']} items, {r['n_levels']} levels; "
                  f"{conflict_summary(r)}; utilisation {[round(u, 3) for u in r['codebook_utilization']]}")
    console.print(f"IDs in [bold]{out / 'ids' / 'codes.npy'}[/], report in {out / 'ids' / 'report.json'}")


@app.command()
def presets():
    """List the named run presets."""
    from semid.pipeline.presets import PRESETS

    t = Table(title="semid presets")
    t.add_column("name")
    t.add_column("what it runs")
    for name, p in PRESETS.items():
        t.add_row(name, p.description)
    console.print(t)


@app.command()
def plot(run_dir: Path = typer.Argument(..., help="a run directory written by `semid run`")):
    """Training curves and semantic-ID code usage of a run, as PNGs under <run_dir>/plots/."""
    from semid.plots import plot_run

    try:
        for path in plot_run(run_dir):
            console.print(f"wrote [bold]{path}[/]")
    except SemidError as e:
        _fail(e)


if __name__ == "__main__":
    app()
