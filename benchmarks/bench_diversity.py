"""LETTER's diversity regulariser, tokenizer only: how the weight changes code usage.

Fits the TIGER RQ-VAE (3 x 256, no alignment, so only the diversity term differs) on one modality for each
diversity weight and prints per-level utilisation, entropy (bits; max 8), the raw conflict rate (before the
collision digit) and the final reconstruction loss. Weight 0 is the baseline in the same process.

    python benchmarks/bench_diversity.py --preset movielens-tiger --weights 0,1e-4,1e-2,1
    python benchmarks/bench_diversity.py --preset mql4grec-tiger --weights 0,1e-4,1e-2,1
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import torch

from semid.encoders.features import attach_features
from semid.pipeline.presets import resolve
from semid.pipeline.runner import build_tokenizer, prepare_data


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="movielens-tiger", help="a tiger preset: its data, modality and epochs")
    ap.add_argument("--weights", default="0,1e-4,1e-2,1")
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    cfg = resolve(args.preset, {"rqvae.epochs": args.epochs, "seed": args.seed})
    ds, split = prepare_data(cfg)
    attach_features(cfg.features, ds.catalog, split.train, dataset=ds.name)
    base, _ = build_tokenizer(cfg)
    print(f"{args.preset}: {ds.catalog.n_items} items, modality {base.config.modality!r}, {args.epochs} epochs")
    print("| diversity | util per level | entropy bits per level | raw conflict | recon | L_div (last epoch) | s |")
    print("|---|---|---|---|---|---|---|")
    for w in (float(x) for x in args.weights.split(",")):
        tok = type(base)(config=dataclasses.replace(base.config, diversity=w))
        t0 = time.perf_counter()
        tok.fit(ds.catalog, split.train)
        r, last = tok.report_, tok.history_[-1]
        util = " / ".join(f"{u:.3f}" for u in r["codebook_utilization"][:3])
        ent = " / ".join(f"{e:.2f}" for e in r["entropy_bits"][:3])
        div = f"{last['diversity']:.3f}" if "diversity" in last else "—"
        print(f"| {w:g} | {util} | {ent} | {r['conflict_rate']:.4f} | {last['recon']:.4f} | {div} | "
              f"{time.perf_counter() - t0:.0f} |")


if __name__ == "__main__":
    main()
