"""Playlist continuation on the Cornell / Yes.com radio playlists: FusID + GPT-2 against its baselines.

Every row is a ``yes-*`` run preset (``semid run --preset <name>`` runs the same thing); each is run for
every seed (the seed also draws the held-out playlists), and the table prints mean ± 95% CI (Student t
over seeds), the ratio to SASRec measured in the same invocation, the tokenizer's ID quality (raw
conflict rate, conflicts among distinct inputs, lowest codebook utilisation) and, for songs without
tags, their IDs' conflict rate and their own Recall@10 beside tagged songs (``semid.eval.by_group``).

    python benchmarks/bench_playlists.py                       # main rows, 3 seeds, preset budgets
    python benchmarks/bench_playlists.py --rows all            # + TIGER, LETTER and every FusID ablation
    python benchmarks/bench_playlists.py --seeds 0 --budget cpu-small   # one seed, a few CPU minutes a row
    python benchmarks/bench_playlists.py --rows yes-sasrec,yes-fusid-gpt2-alpha0 \
        --set yes-fusid-gpt2-alpha0:train.epochs=12 --reuse            # one row's budget; keep finished runs

Nothing is selected on test: GPT-2 / SASRec keep their best validation epoch.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "yes-playlists"

MAIN_ROWS = ("yes-popular", "yes-item2vec-knn", "yes-sasrec", "yes-fusid-gpt2", "yes-fusid-gpt2-alpha0")
ALL_ROWS = MAIN_ROWS + ("yes-fusid-gpt2-no-contrastive", "yes-fusid-gpt2-no-meta", "yes-fusid-gpt2-no-tags",
                        "yes-fusid-gpt2-no-cooc", "yes-tiger", "yes-letter")
METRICS = ("MRR", "Recall@1", "Recall@5", "Recall@10", "Recall@20", "HR@10", "NDCG@10")
# Budgets: dotted overrides per preset-name prefix, applied after the preset. "preset" = as shipped.
BUDGETS = {
    "preset": {},
    # A few CPU minutes a row on 2 shared cores: fewer epochs, no full validation pass at the end
    # (the trainers still choose their epoch on sampled validation playlists).
    "cpu-small": {
        "yes-sasrec": {"train.epochs": 10, "train.patience": 3},
        "yes-fusid-gpt2": {"train.epochs": 4, "model.valid_users": 256, "model.valid_beam": 10,
                           "fusid.training.epochs": 5, "fusid.fusion.hidden": 512},
        "yes-tiger": {"train.epochs": 2, "rqvae.epochs": 30},
        "yes-letter": {"train.epochs": 2, "rqvae.epochs": 30, "sasrec_cf_epochs": 5},
        "": {"eval_valid": False},
    },
}
# Student t 97.5% quantiles by degrees of freedom (two-sided 95% CI of a mean).
_T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}


def mean_ci(values: list[float]) -> tuple[float, float | None]:
    """(mean, half-width of the 95% CI) of per-seed values; None half-width for a single seed."""
    v = np.asarray(values, dtype=np.float64)
    if len(v) < 2:
        return float(v.mean()), None
    t = _T975.get(len(v) - 1, 1.96)
    return float(v.mean()), float(t * v.std(ddof=1) / math.sqrt(len(v)))


def budget_overrides(budget: str, preset: str) -> dict:
    out: dict = {}
    for prefix, ov in BUDGETS[budget].items():
        if preset.startswith(prefix):
            out.update(ov)
    return out


def set_overrides(items: list[str], preset: str) -> dict:
    """``--set`` items for one row: ``key=value`` applies to every row, ``PRESET:key=value`` to that row only
    (split at the first ``=``, so values may hold ``:`` and ``=``)."""
    out: dict = {}
    for kv in items:
        only, key, v = split_set(kv)
        if not only or only == preset:
            out[key] = v
    return out


def split_set(kv: str) -> tuple[str, str, str]:
    """One ``--set`` item as (row or "", key, value)."""
    if "=" not in kv:
        raise SystemExit(f"--set {kv!r}: expected key=value or PRESET:key=value")
    k, v = kv.split("=", 1)
    only, _, key = k.rpartition(":")
    if key in ("seed", "data.dataset"):
        raise SystemExit(f"--set {kv!r}: {key} is set by --seeds / --dataset (each row x seed has its own run)")
    return only, key, v


def finished_run(cfg, run_dir: Path, threads: int) -> dict | None:
    """The stored results (summary.json) of a finished run of exactly ``cfg`` in ``run_dir``, else None: the run
    wrote its manifest (its last step), its saved resolved config equals ``cfg``'s, and it ran with the same semid
    version and torch thread count (the count changes float reduction order, hence IDs and figures), so a reused
    row is the run this invocation would make. A change to the dataset's files under the same path goes unseen."""
    import semid
    from semid.config import differences
    from semid.encoders.feature_spec import upgrade_features
    from semid.io import read_json
    from semid.pipeline.runner import stored_config

    summary, conf = run_dir / "summary.json", run_dir / "config.json"
    if not (summary.is_file() and conf.is_file() and (run_dir / "manifest.json").is_file()):
        return None
    if differences(upgrade_features(read_json(conf)), stored_config(cfg)):
        return None
    out = read_json(summary)
    env = out.get("environment", {})
    if env.get("semid") != semid.__version__ or env.get("torch_threads") != threads:
        return None
    return out


def run_one(preset: str, seed: int, args) -> dict:
    """One preset x seed: the pipeline run (or, with ``--reuse``, a finished run of the same resolved config),
    then the untagged-song analysis on its test split."""
    from semid.eval.by_group import group_report, rank_topk
    from semid.pipeline.presets import resolve
    from semid.pipeline.restore import load_run
    from semid.pipeline.runner import run

    ov = {"data.dataset": str(args.dataset), "seed": seed, "train.progress": False,
          **budget_overrides(args.budget, preset), **set_overrides(args.set, preset)}
    cfg = resolve(preset, ov)
    run_dir = Path(args.run_root) / f"{preset}-s{seed}"
    t0 = time.perf_counter()
    out = finished_run(cfg, run_dir, args.threads) if args.reuse else None
    reused = out is not None
    if out is None:
        out = run(cfg, run_dir, overwrite=True)
    seconds = out.get("total_seconds", float("nan")) if reused else time.perf_counter() - t0
    row = {"preset": preset, "seed": seed, "seconds": seconds, "reused": reused, "run_dir": str(run_dir),
           "test": {k: out["test"][k] for k in (*METRICS, "n_eval_users")}}
    rep = out.get("tokenizer")
    if rep:
        row["ids"] = {"conflict_rate": rep["conflict_rate"],
                      "conflict_rate_distinct_inputs": rep.get("conflict_rate_distinct_inputs"),
                      "min_utilization": float(min(rep["codebook_utilization"]))}
    if args.groups != "none":
        loaded = load_run(run_dir)
        tags = loaded.dataset.catalog.fields.get("tags")
        if tags is not None:
            untagged = np.array([t is None for t in tags])
            topk = None
            if args.groups == "all" or loaded.tokenizer is None:  # one more test pass (a beam search if generative)
                topk = rank_topk(loaded.model, loaded.split.test, k=10, batch_size=cfg.eval_batch_size,
                                 n_items=loaded.dataset.catalog.n_items)
            codes = getattr(loaded.tokenizer, "codes_raw_", None)
            row["untagged"] = group_report(untagged, codes_raw=codes, topk=topk, evalset=loaded.split.test, k=10)
    return row


def fmt(mean: float, ci: float | None) -> str:
    return f"{mean:.4f}" if ci is None else f"{mean:.4f} ± {ci:.4f}"


def table(rows: list[dict]) -> str:
    by: dict[str, list[dict]] = {}
    for r in rows:
        by.setdefault(r["preset"], []).append(r)
    sas = {m: np.mean([r["test"][m] for r in by["yes-sasrec"]]) for m in METRICS} if "yes-sasrec" in by else None
    head = ["row", "seeds", *METRICS, "MRR / SASRec", "R@10 / SASRec", "conflicts raw", "conflicts distinct",
            "min util", "untagged conflicts", "untagged R@10", "tagged R@10", "s / run"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for preset, rs in by.items():
        cells = [preset, str(len(rs))]
        cells += [fmt(*mean_ci([r["test"][m] for r in rs])) for m in METRICS]
        for m in ("MRR", "Recall@10"):
            mine = np.mean([r["test"][m] for r in rs])
            cells.append(f"{mine / sas[m]:.2f}" if sas and sas[m] else "—")
        ids = [r["ids"] for r in rs if "ids" in r]
        for key in ("conflict_rate", "conflict_rate_distinct_inputs", "min_utilization"):
            vals = [i[key] for i in ids if i.get(key) is not None]
            cells.append(fmt(*mean_ci(vals)) if vals else "—")
        ut = [r["untagged"] for r in rs if "untagged" in r]
        for key in ("conflict_rate_in", "recall@10_in", "recall@10_out"):
            vals = [u[key] for u in ut if u.get(key) is not None]
            cells.append(fmt(*mean_ci(vals)) if vals else "—")
        cells.append(f"{np.mean([r['seconds'] for r in rs]):.0f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def seed_level_t(diffs: list[float]) -> tuple[float, float, float]:
    """(mean, 95% CI half-width, two-sided p) of a one-sample t-test over per-seed mean differences."""
    from semid.eval.compare import paired_t

    m, _, high, p = paired_t(np.zeros(len(diffs)), diffs)  # a one-sample test is a paired test against 0
    return m, high - m, p


def paired_vs_sasrec(rows: list[dict], metrics=("MRR", "Recall@10")) -> str:
    """Each row against SASRec on the same seed's split: per-user paired differences (``semid compare``'s paired
    t-test) per seed, pooled over seeds, and a seed-level t-test over the per-seed mean differences.

    The pooled test treats every seed's users as independent and ignores training variance between seeds: it
    answers "these trained models on these users". The seed-level test (n seeds, n - 1 degrees of freedom)
    answers "this method vs SASRec under retraining", with far less power at 3 seeds."""
    from semid.errors import SemidError
    from semid.eval.compare import compare_runs, load_per_user, paired_t

    sas = {r["seed"]: r for r in rows if r["preset"] == "yes-sasrec"}
    lines = ["| row - SASRec | seeds | " + " | ".join(f"{m}: pooled diff [95% CI], p; seed-level p; per seed"
                                                   for m in metrics) + " |",
             "|---|---|" + "---|" * len(metrics)]
    for preset in dict.fromkeys(r["preset"] for r in rows if r["preset"] != "yes-sasrec"):
        pairs = [(sas[r["seed"]], r) for r in rows if r["preset"] == preset and r["seed"] in sas]
        if not pairs:
            continue
        try:
            users = [(load_per_user(a["run_dir"]), load_per_user(b["run_dir"])) for a, b in pairs]
            # compare_runs refuses pairs evaluated on other users or histories; its bootstrap is not printed
            per = [compare_runs([a, b], metrics, n_boot=1)[0][2] for a, b in users]
        except SemidError as e:
            lines.append(f"| {preset} | {len(pairs)} | not paired: {e} |")
            continue
        cells = []
        for j, m in enumerate(metrics):
            a = np.concatenate([x.metrics[m] for x, _ in users])
            b = np.concatenate([y.metrics[m] for _, y in users])
            d, lo, hi, p = paired_t(a, b)
            seed_diffs = [q[j].diff for q in per]
            if len(seed_diffs) > 1:
                sm, half, sp = seed_level_t(seed_diffs)
                seed_level = f"seed-level {sm:+.4f} ± {half:.4f}, p {sp:.2g}"
            else:
                seed_level = "seed-level: one seed"
            seeds = ", ".join(f"s{x['seed']} {q[j].diff:+.4f} (p {q[j].t_p:.2g})"
                              for (x, _), q in zip(pairs, per, strict=True))
            cells.append(f"{d:+.4f} [{lo:+.4f}, {hi:+.4f}], p {p:.2g}; {seed_level}; {seeds}")
        lines.append(f"| {preset} | {len(pairs)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", type=Path, default=DATA, help="a folder in the yes-playlists layout")
    ap.add_argument("--rows", default="main", help="main | all | comma-separated preset names")
    ap.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (each draws its own held-out set)")
    ap.add_argument("--budget", choices=sorted(BUDGETS), default="preset")
    ap.add_argument("--set", action="append", default=[],
                    help="extra dotted override, k=v for every row or PRESET:k=v for one row")
    ap.add_argument("--reuse", action="store_true",
                    help="keep a row's finished run when its saved config equals the one to run (else rerun)")
    ap.add_argument("--run-root", default=str(REPO / "runs" / "bench_playlists"))
    # One thread: on a shared, oversubscribed CPU two OpenMP threads per process ran FusID's fusion steps ~6x
    # slower than one (threads spin waiting for a core).
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--groups", choices=("all", "ids-only", "none"), default="all",
                    help="untagged-song analysis: all = ID conflicts + Recall@10 (one more test pass per row); "
                         "ids-only = Recall@10 only for rows without semantic IDs (no second beam search)")
    ap.add_argument("--out", default="", help="also write every row as JSON here")
    args = ap.parse_args(argv)
    if not args.dataset.is_dir():
        sys.exit(f"{args.dataset}: not found; pass --dataset <folder with train.txt, song_hash.txt, tags.txt>")
    import torch

    torch.set_num_threads(args.threads)
    os.environ.setdefault("SEMID_NO_PROGRESS", "1")
    presets = {"main": MAIN_ROWS, "all": ALL_ROWS}.get(args.rows) or tuple(args.rows.split(","))
    if "yes-sasrec" not in presets:
        print("note: yes-sasrec is not among the rows, so no ratio to SASRec is printed", flush=True)
    seeds = [int(s) for s in args.seeds.split(",")]
    unknown = sorted({split_set(kv)[0] for kv in args.set} - {""} - set(presets))
    if unknown:
        sys.exit(f"--set names rows that are not among --rows: {', '.join(unknown)} (rows: {', '.join(presets)})")
    rows = []
    for seed in seeds:
        for preset in presets:
            r = run_one(preset, seed, args)
            rows.append(r)
            print(f"{preset} seed {seed}: " + "  ".join(f"{m}={r['test'][m]:.4f}" for m in METRICS)
                  + (f"  ids={r['ids']}" if "ids" in r else "") + (f"  untagged={r['untagged']}" if "untagged" in r
                                                                    else "")
                  + f"  ({r['seconds']:.0f}s{', reused' if r['reused'] else ''})", flush=True)
            if args.out:
                Path(args.out).write_text(json.dumps(rows, indent=1))
    print()
    print(f"yes-playlists continuation, test split, full ranking over {args.dataset.name}; seeds {seeds}; "
          f"budget {args.budget}; {args.threads} torch threads")
    print(table(rows))
    if any(r["preset"] == "yes-sasrec" for r in rows) and len({r["preset"] for r in rows}) > 1:
        print()
        print("paired per-user differences against SASRec on the same split (pooled: every seed's users)")
        print(paired_vs_sasrec(rows))


if __name__ == "__main__":
    main()
