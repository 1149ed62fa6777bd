"""Sparse first fusion layer vs the dense reference, on the README's quickstart tokenizer (MovieLens).

Fits the quickstart preset's FusID twice in one process, same seed and data: once with every input block
dense (``fusion.sparse_below=0``: plain ``F.linear``, the reference) and once with the default routing
(multi-hot tags through ``sparse_linear.block_sparse_linear``). Prints fusion-training seconds and their
ratio, the raw conflict rate of each, and how close the two fused embeddings end up; plus a first-layer
micro-benchmark (forward + backward of one 2,048-wide layer on a batch of the real inputs).

    python benchmarks/bench_sparse_fc1.py --threads 1
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np
import torch
import torch.nn.functional as F

from semid.pipeline.presets import resolve
from semid.pipeline.runner import prepare_data
from semid.tokenizers.fusid import FusID
from semid.tokenizers.sparse_linear import block_columns, block_sparse_linear, input_density


def fit(cfg, ds, split, sparse: bool) -> tuple[FusID, float]:
    fc = cfg.tokenizer  # quickstart's FusIDConfig
    if not sparse:
        fc = dataclasses.replace(fc, fusion=dataclasses.replace(fc.fusion, sparse_below=0.0))
    tok = FusID(config=fc)
    tok.fit(ds.catalog, split.train)
    return tok, tok.report_["seconds"]["train"]


def micro(tok: FusID, x: np.ndarray, present: np.ndarray, repeats: int) -> tuple[float, float]:
    """Seconds per forward+backward of fc1 on 2,048 real fused inputs: dense F.linear vs block-sparse."""
    net = tok.fusion_.train()
    inp = net.fuse_inputs(torch.from_numpy(x[:2048]), torch.from_numpy(present[:2048]))
    w = net.fc1.weight.detach().clone().requires_grad_(True)
    b = net.fc1.bias.detach().clone().requires_grad_(True)
    cols = block_columns(tok.in_dims_, tuple(tok.sparse_blocks_))
    times = {}
    for name, f in (("dense", lambda: F.linear(inp, w, b)), ("sparse", lambda: block_sparse_linear(inp, w, b, cols))):
        f().square().sum().backward()  # warm-up
        t0 = time.perf_counter()
        for _ in range(repeats):
            w.grad = b.grad = None
            f().square().sum().backward()
        times[name] = (time.perf_counter() - t0) / repeats
    return times["dense"], times["sparse"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0 = torch default)")
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--epochs", type=int, default=0, help="fusion epochs (0 = the preset's 10)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    ov = {"fusid.training.progress": False, **({"fusid.training.epochs": args.epochs} if args.epochs else {})}
    cfg = resolve("quickstart", ov)
    ds, split = prepare_data(cfg)
    dense, t_dense = fit(cfg, ds, split, sparse=False)
    sparse, t_sparse = fit(cfg, ds, split, sparse=True)
    x, present = sparse.inputs(ds.catalog, split.train)
    dens = input_density(x, sparse.in_dims_)
    print(f"modalities {sparse.modalities_} in_dims {sparse.in_dims_} density {[round(d, 4) for d in dens]}")
    print(f"sparse blocks: {sparse.report_['sparse_modalities']}")
    # k-means labels are arbitrary, so compare the fused vectors, not the code numbers
    a = dense.embeddings_.reshape(len(x), -1)
    b = sparse.embeddings_.reshape(len(x), -1)
    cos = float(np.mean(np.sum(a * b, 1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))))
    print(f"fusion training s: dense {t_dense:.1f}  sparse {t_sparse:.1f}  ratio x{t_dense / t_sparse:.2f}")
    print(f"raw conflict: dense {dense.report_['conflict_rate']:.4f}  sparse {sparse.report_['conflict_rate']:.4f}"
          f"  mean cosine(dense, sparse) of the fused vectors: {cos:.4f}")
    d, s = micro(sparse, x, present, args.repeats)
    print(f"fc1 forward+backward, batch 2048: dense {d * 1e3:.1f} ms  sparse {s * 1e3:.1f} ms  ratio x{d / s:.2f}")


if __name__ == "__main__":
    main()
