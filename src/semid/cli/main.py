"""The ``semid`` command line: data stats, tokenize, train/run a pipeline, evaluate a run, list presets.

Any config field can be set with a dotted override after the options, e.g.
``semid run --preset quickstart --train.epochs=3 --fusid.pq.K=512``; ``semid config fields`` lists them
all and ``semid config show`` prints the config a command line resolves to. Errors print one line and exit
with code 2; ``--debug`` anywhere on the command line shows the traceback instead.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from semid.cli.config_cmd import config_app, resolve_cli
from semid.cli.errors import SemidGroup, debugging
from semid.errors import SemidError
from semid.tokenizers.ids import conflict_summary

app = typer.Typer(cls=SemidGroup, add_completion=False, no_args_is_help=True, help=__doc__)
data_app = typer.Typer(no_args_is_help=True, help="Inspect datasets.")
app.add_typer(data_app, name="data")
app.add_typer(config_app, name="config")
console = Console()
EXTRA = {"allow_extra_args": True, "ignore_unknown_options": True}


@app.callback()
def _main(
    debug: bool = typer.Option(False, "--debug", help="show the traceback of an error (anywhere on the line)"),
    threads: int | None = typer.Option(
        None, "--threads", help="intra-op threads on every path (default: $SEMID_THREADS, else all available "
        "cores, and 1-2 for decoding by how many cores other processes use: semid.threads)"
    ),
):
    """semid: semantic-ID generative recommendation."""
    from semid import threads as thread_policy

    # Before any command imports torch: OpenMP reads OMP_WAIT_POLICY once, at load (semid.threads).
    thread_policy.apply_wait_policy()
    try:
        thread_policy.apply(threads)
    except SemidError as e:
        _fail(e)


def _fail(e: Exception) -> None:
    if debugging():
        raise e
    console.print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
    raise typer.Exit(code=2)


def _config(preset: str | None, config: Path | None, extra: list[str], **direct):
    """The RunConfig of a preset and/or config file plus the command line's dotted overrides."""
    return resolve_cli(None, preset, config, extra, **direct)


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


@data_app.command("check")
def data_check(
    dataset: str = typer.Argument(..., help="built-in name (movielens) or a dataset path"),
    time_format: str = typer.Option("", help="strptime format of text timestamps (as --data.time_format)"),
    duplicates: str = typer.Option("error", help="error | first | last (as --data.duplicates)"),
    as_json: bool = typer.Option(False, "--json", help="print the report as JSON"),
):
    """Report every problem in a dataset at once (counts, first examples, fixes); exit 1 if any is fatal."""
    from semid.data.check import check_dataset, render_report, summary_line

    try:
        report = check_dataset(dataset, time_format=time_format, duplicates=duplicates)
    except SemidError as e:
        _fail(e)
    if as_json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        if report.findings:
            console.print(render_report(report))
        console.print(summary_line(report))
    if report.fatal:
        raise typer.Exit(code=1)


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
    nproc: int = typer.Option(1, help="train on N local processes (torchrun, DistributedDataParallel-style)"),
):
    """Run a whole pipeline (features -> tokenizer -> model -> full-ranking test metrics).

    Set any config field after the options (--train.lr=3e-4, --model=t5, --tokenizer_preset=tiger,
    --rqvae.n_levels=4, --seed=3); `semid config fields [SECTION]` lists every field with its type, default
    and doc, and `semid config show` prints the config these arguments resolve to.
    """
    from semid.pipeline.runner import run as run_pipeline
    from semid.pipeline.runner import summarize
    from semid.train import distributed

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        if nproc != 1:  # relaunch this command line without --nproc on nproc processes (torchrun)
            return distributed.launch(nproc, _without_nproc(sys.argv[1:]))
        distributed.init_from_env()  # under torchrun: join the process group (gloo on CPU, nccl on CUDA)
        cfg = _config(preset, config, ctx.args, **{"data.dataset": dataset})
        from semid.io import safe_run_name

        out_dir = run_dir or Path("runs") / safe_run_name(preset or cfg.name)  # a name never leaves runs/
        res = run_pipeline(cfg, out_dir, resume=resume, overwrite=overwrite, console=console)
    except SemidError as e:
        _fail(e)
    if not distributed.is_main():
        return
    rows = summarize({cfg.name: res})
    refs = ()
    if preset:
        from semid.pipeline.presets import PRESETS

        refs = getattr(PRESETS.get(preset), "references", ())
        for ref in refs:
            rows.append([ref.label, "—", f"{ref.hr10:.4f}", "—", f"{ref.ndcg10:.4f}", "—", "—"])
    console.print(_metrics_table(f"test metrics (full ranking) - {cfg.data.dataset}", rows))
    for ref in refs:  # stored figures: same split, not measured by this run
        console.print(f"{ref.label}: {ref.source}; same split, not this run", highlight=False)
    console.print(f"artifacts in [bold]{out_dir}[/]")


def _without_nproc(argv: list[str]) -> list[str]:
    """``argv`` without its ``--nproc N`` / ``--nproc=N`` option (what each torchrun worker runs)."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--nproc":
            skip = True
        elif not a.startswith("--nproc="):
            out.append(a)
    return out


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
        verbose=False, nproc=1)


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
    api_key: str = typer.Option(None, help="required by every endpoint but /health (default: $SEMID_API_KEY); "
                                "mandatory when --host is not loopback"),
    max_batch: int = typer.Option(32, help="requests decoded together in one batched beam search"),
    max_wait_ms: float = typer.Option(5.0, help="how long a batch waits for more requests"),
    max_gap_ms: float | None = typer.Option(None, help="stop waiting for more requests once none has arrived for this "
                                     "long (default: wait the full --max-wait-ms)"),
    decode_workers: int = typer.Option(0, help="decode threads, each at one intra-op thread; 0 = one per core, "
                                       "at most 2"),
    max_body_bytes: int = typer.Option(1 << 20, help="larger request bodies get 413"),
    body_timeout: float = typer.Option(10.0, help="seconds to receive request headers (then closed) and a body "
                                       "(then 408): slow uploads"),
    request_timeout: float = typer.Option(30.0, help="seconds to answer a request (then 503)"),
    max_connections: int = typer.Option(256, help="open connections beyond this get 503 (uvicorn)"),
    access_log: bool = typer.Option(True, help="JSON-lines access log on stderr"),
):
    """Serve recommendations from a finished run over HTTP (POST /recommend, /items, /metrics)."""
    try:
        import uvicorn  # noqa: F401
    except ImportError:
        _fail(SemidError("semid serve needs uvicorn: pip install 'semid[serve]'"))
    from semid.serve.app import create_app
    from semid.serve.limits import check_bind
    from semid.serve.settings import ServeConfig, resolve_api_key

    try:
        key = resolve_api_key(api_key)
        check_bind(host, key)
        cfg = ServeConfig(max_batch=max_batch, max_wait_ms=max_wait_ms, max_gap_ms=max_gap_ms,
                          decode_workers=decode_workers,
                          max_body_bytes=max_body_bytes,
                          body_timeout_s=body_timeout, request_timeout_s=request_timeout, api_key=key)
        app_ = create_app(run_dir, device=device, config=cfg)
    except SemidError as e:
        _fail(e)
    from semid.serve.server import serve_forever

    serve_forever(app_, host=host, port=port, config=cfg, max_connections=max_connections, access_log=access_log)


def _tokenize_config(tokenizer: str | None, dataset: str, preset: str | None, codes: str | None, extra: list[str]):
    """(RunConfig, note) for `semid tokenize`: ``--preset``, else the built-in ``<dataset>-<tokenizer>`` run
    preset when there is one (its features, modality names and tokenizer budget), else the defaults."""
    from semid.pipeline.presets import PRESETS

    note = ""
    if preset is None:
        dataset = dataset or "movielens"
        guess = f"{dataset}-{(tokenizer or '').replace('musicrec_wo', 'musicrec-wo')}"
        if tokenizer is not None and guess in PRESETS:
            preset, tokenizer, note = guess, None, f"settings of preset {guess} (see `semid config show {guess}`)"
    direct = {"data.dataset": dataset, "precomputed": codes}
    if tokenizer is not None or preset is None:
        direct["tokenizer"] = tokenizer or "fusid"
    return _config(preset, None, extra, **direct), note


def tokenize_record(cfg) -> dict:
    """What `semid tokenize` ran, as JSON: the data, features, tokenizer and (when used) z_cf SASRec."""
    from semid.pipeline.runner import stored_config, uses_cf_sasrec

    d = stored_config(cfg)
    keys = ("name", "seed", "data", "features", "tokenizer", "device") + (("cf_sasrec",) if uses_cf_sasrec(cfg) else ())
    return {k: d[k] for k in keys}


def tokenize_into(cfg, out: Path, *, resume: bool = False, overwrite: bool = False, console=None):
    """Fit ``cfg``'s tokenizer on its dataset's train split and write what `semid tokenize` writes into
    ``out``: (fitted tokenizer, dataset, out). Under torchrun, ranks other than 0 compute the same into a
    scratch directory (``distributed.follow``; ``resume`` and ``console`` are its call's, unused), and
    data-parallel tokenizers fit over the ranks, as in `semid run`."""
    from semid.io import make_run_dir, write_json
    from semid.pipeline.runner import (
        build_features,
        build_tokenizer,
        check_modalities,
        fit_tokenizer,
        prepare_data,
    )
    from semid.train import distributed

    if distributed.follows():  # torchrun rank > 0: same computation, rank 0 alone writes out
        return distributed.follow(tokenize_into, cfg)
    tok, _ = build_tokenizer(cfg)
    if tok is None:
        raise SemidError("--tokenizer none has nothing to fit")
    out = make_run_dir(out, overwrite=overwrite)
    write_json(out / "run_config.json", tokenize_record(cfg))
    ds, split = prepare_data(cfg)
    write_json(out / "features.json", build_features(cfg, ds, split, out))
    check_modalities(cfg, ds.catalog)
    fit_tokenizer(tok, ds.catalog, split.train)  # codes checked equal on every rank before --out holds any
    tok.save(out)
    return tok, ds, out


@app.command(context_settings=EXTRA)
def tokenize(
    ctx: typer.Context,
    tokenizer: str = typer.Option(None, help="a kind (fusid | rqvae | musicrec | precomputed | ...) or a tokenizer "
                                  "preset (tiger | letter | musicrec | musicrec_wo_*); default fusid"),
    dataset: str = typer.Option(None, help="built-in name or dataset path (default: the preset's, else movielens)"),
    out: Path = typer.Option(..., help="output directory (ids/codes.npy, ids/report.json, ...)"),
    preset: str = typer.Option(None, help="start from this run preset's data, features and tokenizer "
                               "(default: <dataset>-<tokenizer> when it exists, e.g. movielens-letter)"),
    codes: str = typer.Option(None, help="precomputed: catalog code name or code file"),
    overwrite: bool = typer.Option(False, help="replace an existing --out"),
    nproc: int = typer.Option(1, help="fit on N local processes (torchrun): data-parallel tokenizers split the "
                              "items over them; the first alone writes --out"),
):
    """Fit an item tokenizer on a dataset's train split and write its IDs and report.

    Features (text, multi-hot, item2vec, SASRec z_cf) are built as in `semid run`: collaborative ones on
    the train split only. Any config field can follow (--rqvae.n_levels=4, --features='["cf=sasrec"]').
    """
    from semid.train import distributed

    try:
        if nproc != 1:  # relaunch this command line without --nproc on nproc processes (torchrun)
            return distributed.launch(nproc, _without_nproc(sys.argv[1:]))
        distributed.init_from_env()  # under torchrun: join the process group (gloo on CPU, nccl on CUDA)
        cfg, note = _tokenize_config(tokenizer, dataset, preset, codes, ctx.args)
        if note and distributed.is_main():
            console.print(f"using the {note}")
        tok, ds, out = tokenize_into(cfg, out, overwrite=overwrite)
    except SemidError as e:
        _fail(e)
    if not distributed.is_main():
        return
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
def compare(
    run_dirs: list[Path] = typer.Argument(..., help="two or more run directories on the same split; the first is A"),
    split: str = typer.Option("test", help="valid | test"),
    metric: list[str] = typer.Option(["HR@10", "NDCG@10", "MRR"], help="metrics to compare (repeatable)"),
    n_boot: int = typer.Option(10_000, help="bootstrap resamples of the users"),
    seed: int = typer.Option(0, help="bootstrap seed"),
):
    """Paired per-user differences (each run vs the first): mean, 95% CI and p-value by t-test and bootstrap."""
    from semid.eval.compare import COLUMNS, compare_runs, format_rows, load_per_user

    try:
        results = compare_runs([load_per_user(d, split) for d in run_dirs], tuple(metric), n_boot=n_boot, seed=seed)
    except SemidError as e:
        _fail(e)
    for name_a, name_b, diffs in results:
        t = Table(title=f"A = {name_a}, B = {name_b} ({split}, {diffs[0].n} paired users)")
        for c in COLUMNS:
            t.add_column(c, justify="left" if c == "metric" else "right")
        for row in format_rows(diffs):
            t.add_row(*row)
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
