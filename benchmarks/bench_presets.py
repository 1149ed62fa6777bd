"""Run `semid run` presets under one budget and print one table beside the published rows.

Each method is a named preset (``semid presets``) run through the same pipeline the CLI uses, so the
figures are what a user gets from ``semid run --preset <name> <budget overrides>``: test metrics from the
checkpoint chosen on validation NDCG@10, full ranking, constrained beam 20. Results are cached per run
directory (``metrics.json``), so an interrupted sweep continues where it stopped.

    # MusicRec Table 2 setting (amazon-mql4grec/Instruments), CPU budget:
    python benchmarks/bench_presets.py --suite mql4grec --budget cpu
    # MovieLens (built-in): quickstart, FusID + T5, TIGER, LETTER, MusicRec, SASRec, MostPopular; and
    # MusicRec's Table-3 ablations (presets already CPU-sized, so their own settings):
    python benchmarks/bench_presets.py --suite movielens --budget preset
    python benchmarks/bench_presets.py --suite movielens-ablations --budget preset
    # LC-Rec Instruments and Games (no item text: item2vec views stand in; presets CPU-sized):
    python benchmarks/bench_presets.py --suite lcrec --budget preset
    # any presets, any extra overrides:
    python benchmarks/bench_presets.py --presets mql4grec-tiger,mql4grec-musicrec --set train.epochs=2
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from semid.config import differences, parse_overrides
from semid.pipeline.overrides import applies
from semid.pipeline.presets import resolve
from semid.pipeline.runner import run, stored_config

# MusicRec Table 2 (Instruments, MQL4GRec preprocessing): HR@5, HR@10, NDCG@5, NDCG@10.
PUBLISHED = {
    "mql4grec": [
        ("SASRec (published)", (0.0946, 0.1233, 0.0654, 0.0746)),
        ("TIGER (published)", (0.1007, 0.1221, 0.0882, 0.0950)),
        ("LETTER (published)", (0.1045, 0.1271, 0.0913, 0.0986)),
        ("MQL4GRec (published)", (0.1071, 0.1287, 0.0927, 0.0995)),
        ("MusicRec (published)", (0.1257, 0.1472, 0.0993, 0.1071)),
    ],
    "movielens": [],
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
    from semid.pipeline.presets import PRESETS

    known = dict(BUDGETS[name])
    if PRESETS[preset].overrides.get("model") in ("popular", "sasrec"):
        # baselines are cheap: all train data and SASRec's own schedule (30 epochs, patience 5)
        known = {k: v for k, v in known.items() if not k.startswith(("train.", "data.train_tail"))}
        known.update({"train.epochs": 30, "train.patience": 5})
    elif PRESETS[preset].overrides.get("gpt2.objective") == "sequence":
        # all-position GPT-2 presets are already CPU-sized (one forward trains every target of a window);
        # the budget's next-item shortcuts (tail 20, history 10, 256 rows per step) would only hurt them
        known = {k: v for k, v in known.items() if not k.startswith(("train.", "data.train_tail", "gpt2."))}
    # a budget names every model's and tokenizer's section; each preset takes those of the kinds it selects
    cfg = resolve(preset)
    return {k: v for k, v in known.items() if applies(cfg, k)}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", choices=sorted(SUITES), default="mql4grec")
    ap.add_argument("--presets", default="", help="comma list (default: the whole suite)")
    ap.add_argument("--budget", choices=sorted(BUDGETS), default="cpu")
    ap.add_argument("--set", nargs="*", default=[], help="extra overrides, e.g. train.epochs=2")
    ap.add_argument("--data", default="", help="dataset path override (default: the preset's)")
    ap.add_argument("--out", default="runs/bench_presets")
    ap.add_argument("--results", default="", help="write all metrics as JSON here")
    args = ap.parse_args(argv)

    names = [p for p in args.presets.split(",") if p] or SUITES[args.suite]
    extra = parse_overrides([f"--{s}" if not s.startswith("--") else s for s in args.set])
    results = {}
    for name in names:
        ov = {**_budget(args.budget, name), **extra}
        if args.data:
            ov["data.dataset"] = args.data
        cfg = resolve(name, ov)
        run_dir = Path(args.out) / args.budget / name
        t0 = time.perf_counter()
        if (run_dir / "summary.json").is_file():
            # A finished run is reused only when it was made by this very config (budget, --set, data).
            saved = json.loads((run_dir / "config.json").read_text())
            diff = differences(saved, stored_config(cfg))
            if diff:
                raise SystemExit(f"{run_dir} holds a finished run of another config ({'; '.join(diff[:5])}); "
                                 "pass another --out or remove that directory")
            res = json.loads((run_dir / "summary.json").read_text())
        else:
            res = run(cfg, run_dir, resume=run_dir.exists())  # an interrupted run continues
        res["wall_s"] = time.perf_counter() - t0
        results[name] = res
        m = res["test"]
        print(f"{name:34s} " + " ".join(f"{k}={m[k]:.4f}" for k in METRICS)
              + f"  users={int(m['n_eval_users'])}  total={res.get('total_seconds', 0):.0f}s", flush=True)
    print()
    print("| method | HR@5 | HR@10 | NDCG@5 | NDCG@10 | MRR |")
    print("|---|---|---|---|---|---|")
    for label, vals in PUBLISHED.get(args.suite, []):
        print(f"| {label} | " + " | ".join(f"{v:.4f}" for v in vals) + " | — |")
    for name, res in results.items():
        m = res["test"]
        print(f"| {name} (ours, {args.budget}) | " + " | ".join(f"{m[k]:.4f}" for k in METRICS) + " |")
    if args.results:
        Path(args.results).write_text(json.dumps(results, indent=1, default=float))


if __name__ == "__main__":
    main()
