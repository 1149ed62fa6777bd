"""MostPopular and SASRec on the shared datasets: leave-one-out, history capped at 50, full ranking.

Test metrics come from the best-validation-NDCG@10 weights (the Trainer restores them); nothing is
selected on test. Prints both models and SASRec / MostPopular ratios measured in the same process,
and with --write-results appends one Markdown row per model to benchmarks/RESULTS.md.

    python benchmarks/bench_baselines.py --dataset mql4grec-instruments --epochs 30 --write-results
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from semid.data.types import Catalog, Dataset, EvalSet, Interactions, Split
from semid.eval import evaluate
from semid.models.popular import MostPopular
from semid.models.sasrec import SASRec, SASRecConfig
from semid.train.loop import TrainConfig

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
RESULTS = REPO / "benchmarks" / "RESULTS.md"

DATASETS = {
    "movielens": ("movielens latest-small (built-in)", DATA / "movielens-latest-small"),
    "lcrec-instruments": ("amazon-lcrec/Instruments", DATA / "amazon-lcrec" / "Instruments"),
    "lcrec-games": ("amazon-lcrec/Games", DATA / "amazon-lcrec" / "Games"),
    "mql4grec-instruments": ("amazon-mql4grec/Instruments", DATA / "amazon-mql4grec" / "Instruments"),
}

# Published full-ranking SASRec figures on the same preprocessing: (HR@5, HR@10, NDCG@5, NDCG@10), source.
PUBLISHED = {
    "mql4grec-instruments": ((0.0946, 0.1233, 0.0654, 0.0746), "MusicRec Table 2"),
}


def load(key: str) -> Dataset:
    """The data layer's loaders (built-in MovieLens copy); fall back to reading inter.json directly."""
    _, path = DATASETS[key]
    try:
        from semid.data import load_dataset

        return load_dataset("movielens" if key == "movielens" else path)
    except ImportError:
        if key == "movielens":
            raise
    (inter,) = path.glob("*.inter.json")
    raw = json.loads(inter.read_text())
    seqs = [raw[u] for u in sorted(raw, key=int)]
    n = max(max(s) for s in seqs if s) + 1
    return Dataset(key, Catalog(item_ids=np.arange(n).astype(str)), Interactions.from_lists(seqs))


def leave_one_out(inter: Interactions, max_history: int = 50) -> Split:
    """Last item = test target, second-to-last = valid target, the rest = train; histories capped."""
    try:
        from semid.data import leave_one_out as loo  # the data layer's version, when it exists

        return loo(inter, max_history=max_history)
    except ImportError:
        pass
    seqs = [s for s in inter.to_lists() if len(s) >= 3]
    train = Interactions.from_lists([s[:-2] for s in seqs])
    valid = EvalSet(
        Interactions.from_lists([s[:-2][-max_history:] for s in seqs]),
        Interactions.from_lists([s[-2:-1] for s in seqs]),
    )
    test = EvalSet(
        Interactions.from_lists([s[:-1][-max_history:] for s in seqs]),
        Interactions.from_lists([s[-1:] for s in seqs]),
    )
    return Split("leave_one_out", train, valid, test)


def fmt(m: dict) -> str:
    return "  ".join(f"{k}={m[k]:.4f}" for k in ("HR@5", "HR@10", "NDCG@5", "NDCG@10", "MRR"))


def row(method: str, key: str, m: dict, published: str, command: str) -> str:
    cells = [method, DATASETS[key][0], "test (LOO, hist<=50)"] + [
        f"{m[k]:.4f}" for k in ("HR@5", "HR@10", "NDCG@5", "NDCG@10", "MRR")
    ]
    cells += [published, f"`{command}`", "CPU (2 cores)", "2026-11-23"]
    return "| " + " | ".join(cells) + " |"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", choices=sorted(DATASETS), required=True)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--heads", type=int, default=1)
    ap.add_argument("--dropout", type=float, default=0.3)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--weight-decay", type=float, default=0.0)
    ap.add_argument("--patience", type=int, default=5)
    ap.add_argument("--warmup-steps", type=int, default=None, help="default: min(100, one epoch of steps)")
    ap.add_argument("--loss", choices=("ce", "bce"), default="ce")
    ap.add_argument("--max-len", type=int, default=50)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--run-dir", default=None, help="optional Trainer run dir (logs, checkpoints)")
    ap.add_argument("--export-embeddings", default=None, help="write SASRec item embeddings (.npy) here")
    ap.add_argument("--write-results", action="store_true", help="append rows to benchmarks/RESULTS.md")
    args = ap.parse_args(argv)
    torch.set_num_threads(min(2, args.threads))
    command = "python benchmarks/bench_baselines.py " + " ".join(argv if argv is not None else sys.argv[1:])
    command = command.replace(" --write-results", "")

    t0 = time.perf_counter()
    ds = load(args.dataset)
    split = leave_one_out(ds.interactions, max_history=50)
    print(
        f"{args.dataset}: {ds.catalog.n_items} items, {split.train.n_users} train users, "
        f"{split.train.n_interactions} train interactions, {len(split.test)} test users "
        f"(load+split {time.perf_counter() - t0:.1f}s)",
        flush=True,
    )

    pop = MostPopular().fit(split.train, ds.catalog, split.valid)
    pop_valid = evaluate(pop, split.valid, progress=False)
    pop_test = evaluate(pop, split.test, progress=False)
    print(f"MostPopular valid  {fmt(pop_valid)}\nMostPopular test   {fmt(pop_test)}", flush=True)

    cfg = SASRecConfig(
        hidden=args.hidden,
        n_layers=args.layers,
        n_heads=args.heads,
        max_len=args.max_len,
        dropout=args.dropout,
        loss=args.loss,
    )
    steps_per_epoch = -(-sum(len(s) >= 2 for s in split.train.to_lists()) // args.batch_size)
    warmup = args.warmup_steps if args.warmup_steps is not None else min(100, steps_per_epoch)
    tc = TrainConfig(
        warmup_steps=warmup,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        weight_decay=args.weight_decay,
        patience=args.patience,
        seed=args.seed,
        device="cpu",
        progress=False,
    )
    t1 = time.perf_counter()
    sas = SASRec(config=cfg, train=tc, run_dir=args.run_dir).fit(split.train, ds.catalog, split.valid)
    train_s = time.perf_counter() - t1
    for e in sas.result_.history:
        v = e.get("valid", {})
        print(
            f"  epoch {e['epoch'] + 1:3d} loss {e['train_loss']:.4f} {e['seconds']:.1f}s "
            f"valid NDCG@10 {v.get('NDCG@10', float('nan')):.4f} HR@10 {v.get('HR@10', float('nan')):.4f}",
            flush=True,
        )
    sas_valid = evaluate(sas, split.valid, progress=False)
    sas_test = evaluate(sas, split.test, progress=False)
    res = sas.result_
    print(
        f"SASRec best epoch {res.best_epoch + 1}/{res.epochs_run} (stopped early: {res.stopped_early}), "
        f"train {train_s:.0f}s"
    )
    print(f"SASRec valid       {fmt(sas_valid)}\nSASRec test        {fmt(sas_test)}")
    ratios = {k: sas_test[k] / pop_test[k] if pop_test[k] else float("inf") for k in ("HR@10", "NDCG@10")}
    print("SASRec / MostPopular (test): " + "  ".join(f"{k} x{v:.2f}" for k, v in ratios.items()))
    pub = PUBLISHED.get(args.dataset)
    if pub:
        vals, src = pub
        ours = [sas_test[k] for k in ("HR@5", "HR@10", "NDCG@5", "NDCG@10")]
        print(
            f"ours / published ({src}): " + "  ".join(f"{o / p:.2f}" for o, p in zip(ours, vals, strict=True))
        )
    if args.export_embeddings:
        sas.export_embeddings(args.export_embeddings)
    if args.write_results:
        pub_cell = "—"
        if pub:
            pub_cell = (
                "SASRec " + " / ".join(f"{v:.4f}" for v in pub[0]) + f" (HR@5/HR@10/N@5/N@10, {pub[1]})"
            )
        desc = (
            f"SASRec (h={args.hidden}, L={args.layers}, drop={args.dropout}, {args.loss}, "
            f"best ep {res.best_epoch + 1}/{res.epochs_run})"
        )
        lines = [
            row("MostPopular", args.dataset, pop_test, "—", command),
            row(desc, args.dataset, sas_test, pub_cell, command),
        ]
        with open(RESULTS, "a") as f:  # append-only: several engineers add rows
            f.write("\n".join(lines) + "\n")
        print(f"appended 2 rows to {RESULTS}")
    print(
        f"total {time.perf_counter() - t0:.0f}s on {platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} threads"
    )


if __name__ == "__main__":
    main()
