"""Run `semid run` presets under one budget and print one table beside the published rows.

Each method is a named preset (``semid presets``) run through the same pipeline the CLI uses, so the
figures are what a user gets from ``semid run --preset <name> <budget overrides>``: data from
``semid.data.load_dataset``, test metrics from the checkpoint chosen on validation NDCG@10, full ranking,
constrained beam 20, the tokenizer's ID report (conflict rate, final ID length) printed per row. The table
gives each row's NDCG@10 over the SASRec and MostPopular rows on the same dataset measured in the same
invocation (when the run includes them). Results are cached per run directory (``summary.json``), so an
interrupted sweep continues where it stopped.

Suites (``--suite``; ``--presets a,b`` runs any presets instead):
    mql4grec             MusicRec Table 2 on amazon-mql4grec/Instruments: every method and the Table-3 ablations
    musicrec             SASRec, TIGER, LETTER, MusicRec on amazon-mql4grec/Instruments (Table 2's RQ-VAE rows)
    mql4grec-ablations   MusicRec and its six Table-3 ablations on amazon-mql4grec/Instruments
    movielens            built-in MovieLens: MostPopular, SASRec, quickstart, FusID + T5, TIGER, LETTER, MusicRec
    movielens-ablations  MusicRec and its six Table-3 ablations on built-in MovieLens
    lcrec                LC-Rec Instruments and Games (no item text: item2vec views stand in)
    baselines            MostPopular and SASRec on built-in MovieLens, LC-Rec Instruments / Games, MQL4GRec Instruments
    id-sources           one GPT-2 generator over five ID sources on amazon-mql4grec/Instruments (random control,
                         text codes, image codes, collaborative RQ-KMeans over SASRec, FusID), SASRec beside them

Budgets (``--budget``; overrides on top of each preset, only the keys of the kinds it selects):
    cpu     2-core CPU: generators 4 epochs (patience 2), 256 rows a step, each user's last 20 train targets,
            10-item histories, 256 sampled valid users, MusicRec 20 targets per user per task, tokenizers
            100 epochs, FusID 40k pairs an epoch; all-position GPT-2 presets keep their own trainer and
            histories; MostPopular / SASRec: all train data, 30 epochs, patience 5.
            A generative preset takes tens of minutes on MQL4GRec / LC-Rec (RESULTS.md gives each row's seconds).
    preset  each preset's own settings (the movielens-* and lcrec-* presets are already CPU-sized).
    paper   the presets unchanged as well, named for runs at the papers' scale (GPU).

    # MusicRec Table 2 setting (amazon-mql4grec/Instruments), CPU budget:
    python benchmarks/bench_presets.py --suite mql4grec --budget cpu
    # TIGER / LETTER / MusicRec with SASRec measured in the same run:
    python benchmarks/bench_presets.py --suite musicrec --budget cpu
    # MostPopular and SASRec on every shared dataset (all train data, 30 epochs, patience 5):
    python benchmarks/bench_presets.py --suite baselines --budget cpu
    # MovieLens (built-in) and MusicRec's Table-3 ablations there (presets already CPU-sized):
    python benchmarks/bench_presets.py --suite movielens --budget preset
    python benchmarks/bench_presets.py --suite movielens-ablations --budget preset
    # LC-Rec Instruments and Games:
    python benchmarks/bench_presets.py --suite lcrec --budget preset
    # any presets, any extra overrides (a --set key goes to every preset whose kinds it names; one that no
    # preset of the run takes is refused):
    python benchmarks/bench_presets.py --presets mql4grec-tiger,mql4grec-musicrec --set train.epochs=2
    # one GPT-2 over five ID sources with SASRec beside it, 3 seeds (mean ± 95% t-interval), learning curves:
    python benchmarks/bench_presets.py --suite id-sources --budget preset --seeds 0,1,2 --curves \
        --set train.epochs=8 train.patience=0   # puts mql4grec-fusid-gpt2 on the id-source presets' schedule
    # smoke check (seconds, no data read, nothing trained or written): each preset's resolved overrides,
    # data path and run directory, as the equivalent `semid run` command line:
    python benchmarks/bench_presets.py --suite baselines --dry-run
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from semid.config import differences, parse_overrides
from semid.data.registry import BUILTIN
from semid.eval.compare import MeanCI, mean_ci
from semid.pipeline.config import model_kind, tokenizer_kind
from semid.pipeline.overrides import SELECTIONS, applies
from semid.pipeline.presets import PRESETS, resolve
from semid.pipeline.runner import UNTRAINED_MODELS, run, stored_config
from semid.plots import read_train_log
from semid.tokenizers.ids import conflict_summary

# MusicRec Table 2 (Instruments, MQL4GRec preprocessing): HR@5, HR@10, NDCG@5, NDCG@10.
_TABLE2 = {
    "SASRec": (0.0946, 0.1233, 0.0654, 0.0746),
    "TIGER": (0.1007, 0.1221, 0.0882, 0.0950),
    "LETTER": (0.1045, 0.1271, 0.0913, 0.0986),
    "MQL4GRec": (0.1071, 0.1287, 0.0927, 0.0995),
    "MusicRec": (0.1257, 0.1472, 0.0993, 0.1071),
}


def _published(*methods: str, where: str = "") -> list[tuple[str, tuple[float, ...]]]:
    return [(f"{m} (published{where})", _TABLE2[m]) for m in methods]


PUBLISHED = {
    "mql4grec": _published(*_TABLE2),
    "musicrec": _published("SASRec", "TIGER", "LETTER", "MusicRec"),
    "mql4grec-ablations": _published("MusicRec"),
    "baselines": _published("SASRec", where=", MQL4GRec Instruments"),
}
SUITES = {
    "mql4grec": [
        "mql4grec-popular", "mql4grec-sasrec", "mql4grec-text-ids-t5", "mql4grec-image-ids-t5",
        "mql4grec-tiger", "mql4grec-letter", "mql4grec-musicrec", "mql4grec-fusid-gpt2", "mql4grec-fusid-t5",
        *(f"mql4grec-musicrec-{a}" for a in ("wo_isem", "wo_tsem", "wo_align", "wo_rel", "wo_mmg", "wo_mma")),
    ],
    "movielens": ["movielens-popular", "movielens-sasrec", "quickstart", "movielens-fusid-t5",
                  "movielens-tiger", "movielens-letter", "movielens-musicrec"],
    # LC-Rec/LETTER splits (item2vec stands in for the missing item text; see the presets' comments)
    "lcrec": [f"lcrec-{d}-{m}" for d in ("instruments", "games")
              for m in ("popular", "sasrec", "fusid-gpt2", "fusid-t5", "tiger", "letter", "musicrec")],
    "movielens-ablations": [
        "movielens-musicrec",
        *(f"movielens-musicrec-{a}" for a in ("wo_isem", "wo_tsem", "wo_align", "wo_rel", "wo_mmg", "wo_mma")),
    ],
    "musicrec": ["mql4grec-sasrec", "mql4grec-tiger", "mql4grec-letter", "mql4grec-musicrec"],
    "mql4grec-ablations": [
        "mql4grec-musicrec",
        *(f"mql4grec-musicrec-{a}" for a in ("wo_isem", "wo_tsem", "wo_align", "wo_rel", "wo_mmg", "wo_mma")),
    ],
    "id-sources": ["mql4grec-popular", "mql4grec-sasrec",
                   *(f"mql4grec-{s}-ids-gpt2" for s in ("random", "text", "image", "cf")), "mql4grec-fusid-gpt2"],
    "baselines": [f"{d}-{m}" for d in ("movielens", "lcrec-instruments", "lcrec-games", "mql4grec")
                  for m in ("popular", "sasrec")],
}
# CPU budget (2 cores): fewer epochs, bounded train examples, smaller generators. Stated in RESULTS.md.
BUDGETS = {
    "paper": {},
    "preset": {},  # each preset's own settings (the movielens-* presets are already CPU-sized)
    "cpu": {
        "train.epochs": 4, "train.patience": 2, "train.batch_size": 256, "train.lr": 2e-3,
        "train.warmup_steps": 100, "data.train_tail": 20,
        "gpt2.max_history": 10, "t5.max_history": 10, "gpt2.valid_users": 256, "t5.valid_users": 256,
        "musicrec_gen.t5.valid_users": 256, "musicrec_gen.t5.max_history": 10,
        "musicrec_gen.max_targets_per_user": 20,
        "fusid.pairs_per_epoch": 40_000,
        "rqvae.epochs": 100, "musicrec.epochs": 100,
    },
}
METRICS = ("HR@5", "HR@10", "NDCG@5", "NDCG@10", "MRR")


def _budget(name: str, preset: str) -> dict:
    """The budget's overrides for one preset (an unknown key fails in ``resolve``, naming it)."""
    known = dict(BUDGETS[name])
    if PRESETS[preset].overrides.get("model") in UNTRAINED_MODELS:
        known = {}  # fitted without the trainer: a budget has nothing to set
    elif PRESETS[preset].overrides.get("model") == "sasrec":
        # a cheap baseline: all train data and SASRec's own schedule (30 epochs, patience 5)
        known = {k: v for k, v in known.items() if not k.startswith(("train.", "data.train_tail"))}
        known.update({"train.epochs": 30, "train.patience": 5})
    elif PRESETS[preset].overrides.get("gpt2.objective") == "sequence":
        # all-position GPT-2 presets are already CPU-sized (one forward trains every target of a window);
        # the budget's next-item shortcuts (tail 20, history 10, 256 rows per step) would only hurt them
        known = {k: v for k, v in known.items() if not k.startswith(("train.", "data.train_tail", "gpt2."))}
    # a budget names every model's and tokenizer's section; each preset takes those of the kinds it selects
    cfg = resolve(preset)
    return {k: v for k, v in known.items() if applies(cfg, k)}


def split_extra(extra: dict, names: list[str]) -> dict[str, dict]:
    """Each preset's share of the ``--set`` overrides: the keys that address a field of its config (``t5.*``
    goes to T5 presets only; after a ``model=`` / ``tokenizer=`` selection in ``--set``, to the kind selected). A
    key that no preset of the run takes is refused, naming it."""
    selections = {k: v for k, v in extra.items() if k in SELECTIONS}
    cfgs = {name: resolve(name, selections) for name in names}
    per = {name: {k: v for k, v in extra.items() if applies(cfg, k)} for name, cfg in cfgs.items()}
    unused = sorted(set(extra) - {k for ov in per.values() for k in ov})
    if unused:
        raise SystemExit(f"--set {', '.join(unused)}: no preset of this run has such a field "
                         "(`semid config fields` lists them)")
    return per


def same_run_ratios(results: dict[str, dict], meta: dict[str, tuple[str, str]]) -> dict[str, dict[str, float]]:
    """NDCG@10 of each run over the first SASRec and MostPopular runs on the same dataset in ``results``
    (baselines measured in the same invocation); ``meta`` maps a run to (dataset, model kind). A ratio whose
    baseline is absent (or scored 0) is left out."""
    base: dict[tuple[str, str], float] = {}
    for name, (dataset, kind) in meta.items():
        if kind in ("sasrec", "popular") and name in results:
            base.setdefault((dataset, kind), results[name]["test"]["NDCG@10"])
    return {name: {kind: res["test"]["NDCG@10"] / b for kind in ("sasrec", "popular")
                   if (b := base.get((meta[name][0], kind)))}
            for name, res in results.items()}


def _cli_value(v) -> str:
    return v if isinstance(v, str) else json.dumps(v)


def learning_curve(run_dir: Path) -> list[dict]:
    """Per-epoch rows of a run's trainer log (``model/train_log.jsonl``): epoch, train loss, validation
    metrics, seconds; [] for models fitted without the trainer."""
    log = Path(run_dir) / "model" / "train_log.jsonl"
    return read_train_log(log) if log.is_file() else []


def _print_curve(name: str, rows: list[dict]) -> None:
    for r in rows:
        v = r.get("valid") or {}
        n = v.get("n_eval_users")
        hr = v.get("HR@10", v.get("Recall@10", float("nan")))  # generators log Recall@10 (= HR@10, one target)
        print(f"    {name} epoch {r['epoch']}: train loss {r['train_loss']:.4f}  valid NDCG@10 "
              f"{v.get('NDCG@10', float('nan')):.4f} HR@10 {hr:.4f}"
              + (f" ({int(n)} users)" if n else "") + f"  lr {r.get('lr', float('nan')):.2e}  "
              f"{r.get('seconds', 0):.0f}s", flush=True)


def seed_summary(runs: list[dict]) -> dict[str, MeanCI]:
    """Mean ± 95% CI over a preset's seeds of each test metric and of its total seconds."""
    out = {k: mean_ci([r["test"][k] for r in runs]) for k in METRICS}
    out["total_seconds"] = mean_ci([r.get("total_seconds", 0.0) for r in runs])
    return out


def _cell(ci: MeanCI) -> str:
    return f"{ci.mean:.4f}" if ci.n < 2 else f"{ci.mean:.4f} ± {ci.half_width:.4f}"


def main(argv: list[str] | None = None) -> dict[str, dict]:
    """Run (or with ``--dry-run`` only resolve) the presets; returns {preset: result} (with several seeds,
    {preset: [result per seed]}; dry run: the plan)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", choices=sorted(SUITES), default="mql4grec")
    ap.add_argument("--presets", default="", help="comma list (default: the whole suite)")
    ap.add_argument("--budget", choices=sorted(BUDGETS), default="cpu")
    ap.add_argument("--set", nargs="*", default=[], help="extra overrides, e.g. train.epochs=2")
    ap.add_argument("--seeds", default="", help="comma list of run seeds (e.g. 0,1,2): the table gives mean ± "
                    "95%% CI over them; default: each preset's own seed, one run")
    ap.add_argument("--curves", action="store_true",
                    help="print each run's learning curve (train loss, validation metrics per epoch)")
    ap.add_argument("--data", default="", help="dataset path override (default: the preset's)")
    ap.add_argument("--out", default="runs/bench_presets")
    ap.add_argument("--results", default="", help="write all metrics as JSON here")
    ap.add_argument("--dry-run", action="store_true",
                    help="print each preset's overrides, data and run directory; read no data, run nothing")
    args = ap.parse_args(argv)

    names = [p for p in args.presets.split(",") if p] or SUITES[args.suite]
    seeds = [int(x) for x in args.seeds.split(",") if x.strip()]
    extra = split_extra(parse_overrides([f"--{s}" if not s.startswith("--") else s for s in args.set]), names)
    results: dict[str, list[dict]] = {}
    meta, plan = {}, {}
    for name in names:
        # MostPopular is a count: one run stands for every seed
        deterministic = PRESETS[name].overrides.get("model") == "popular"
        for seed in (seeds[:1] if deterministic else seeds) or [None]:
            ov = {**_budget(args.budget, name), **extra[name], **({} if seed is None else {"seed": seed})}
            if args.data:
                ov["data.dataset"] = args.data
            cfg = resolve(name, ov)
            run_dir = Path(args.out) / args.budget / name
            if seed is not None:
                run_dir = run_dir / f"seed{seed}"
            label = name if seed is None else f"{name} seed {seed}"
            meta[name] = (cfg.data.dataset, model_kind(cfg))
            if args.dry_run:
                found = cfg.data.dataset in BUILTIN or Path(cfg.data.dataset).exists()
                state = ("finished" if (run_dir / "summary.json").is_file()
                         else "resume" if run_dir.exists() else "new")
                plan[label] = {"overrides": ov, "run_dir": str(run_dir), "state": state, "data_found": found}
                print(f"{label:34s} {model_kind(cfg)} / {tokenizer_kind(cfg)}  data {cfg.data.dataset}"
                      f"{'' if found else ' (NOT FOUND)'}  {state} {run_dir}\n    semid run --preset {name} "
                      + "".join(f"--{k}={_cli_value(v)} " for k, v in ov.items()) + f"--run-dir {run_dir}")
                continue
            t0 = time.perf_counter()
            if (run_dir / "summary.json").is_file():
                # A finished run is reused only when it was made by this very config (budget, --set, seed, data).
                saved = json.loads((run_dir / "config.json").read_text())
                diff = differences(saved, stored_config(cfg))
                if diff:
                    raise SystemExit(f"{run_dir} holds a finished run of another config ({'; '.join(diff[:5])}); "
                                     "pass another --out or remove that directory")
                res = json.loads((run_dir / "summary.json").read_text())
            else:
                res = run(cfg, run_dir, resume=run_dir.exists())  # an interrupted run continues
            res["wall_s"] = time.perf_counter() - t0
            results.setdefault(name, []).append(res)
            m = res["test"]
            ids = f"  ids: {conflict_summary(res['tokenizer'])}" if res.get("tokenizer") else ""
            print(f"{label:34s} " + " ".join(f"{k}={m[k]:.4f}" for k in METRICS)
                  + f"  users={int(m['n_eval_users'])}  total={res.get('total_seconds', 0):.0f}s{ids}", flush=True)
            if args.curves:
                _print_curve(label, learning_curve(run_dir))
    if args.dry_run:
        return plan
    summaries = {name: seed_summary(runs) for name, runs in results.items()}
    ratios = same_run_ratios({n: {"test": {"NDCG@10": s["NDCG@10"].mean}} for n, s in summaries.items()}, meta)
    n_seeds = f"mean ± 95% CI over {len(seeds)} seeds" if len(seeds) > 1 else "one run"
    print(f"\n{n_seeds}; ratios are of mean NDCG@10 to SASRec / MostPopular run here on the same split")
    print("| method | HR@5 | HR@10 | NDCG@5 | NDCG@10 | MRR | NDCG@10 / SASRec | NDCG@10 / MostPopular | total s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for label, vals in PUBLISHED.get(args.suite, []) if not args.presets else []:
        print(f"| {label} | " + " | ".join(f"{v:.4f}" for v in vals) + " | — | — | — | — |")
    for name, sm in summaries.items():
        r = ratios[name]
        cells = [_cell(sm[k]) for k in METRICS] + [f"{r[k]:.2f}" if k in r else "—" for k in ("sasrec", "popular")]
        print(f"| {name} (ours, {args.budget}) | " + " | ".join(cells) + f" | {sm['total_seconds'].mean:.0f} |")
    if args.results:
        Path(args.results).write_text(json.dumps(results, indent=1, default=float))
    if not seeds:
        return {name: runs[0] for name, runs in results.items()}
    return results


if __name__ == "__main__":
    main()
