"""How much do 4 x 256 code tuples lose against the continuous embedding they were cut from?

MQL4GRec ships its text and image modalities only as 4-level residual code tuples (``index_*.json``),
so every semid tokenizer on that split sees one-hot code features instead of continuous embeddings.
This measures the loss where both exist: MiniLM title embeddings of the built-in MovieLens (384-d)
are re-quantized with residual k-means into 4 x 256 codes (MQL4GRec's shape), and each item
representation is scored by
  - nn-overlap@10: share of an item's 10 nearest neighbours (cosine, continuous space) that are also
    among its 10 nearest in the representation (ties broken by index);
  - cooc-recall@10: for train co-occurring pairs (window 5), share whose partner is among the anchor's
    10 nearest neighbours in the representation (a content-only retrieval proxy).
Representations: continuous; code one-hots (decay 1: plain concatenation); code one-hots with level l
scaled by 0.5**l (coarse levels dominate, mirroring the residual structure); a random-code control.

    python benchmarks/bench_lossy_codes.py            # ~1 CPU-minute once titles are cached
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from semid.data import leave_one_out, load_dataset
from semid.data.codes import codes_to_onehot
from semid.encoders.features import FeaturesConfig, FieldSpec, build_fusid_features
from semid.quantize.kmeans import KMeans, KMeansConfig
from semid.tokenizers.fusid_pairs import cooccurrence_counts


def residual_kmeans(x: np.ndarray, levels: int, K: int, seed: int = 0) -> np.ndarray:
    """float [N, D] -> int64 [N, levels]: k-means on the residual left by the previous levels."""
    r = x.astype(np.float32).copy()
    codes = np.zeros((len(x), levels), dtype=np.int64)
    for lvl in range(levels):
        km = KMeans(K, config=KMeansConfig(n_iter=25, seed=seed + lvl)).fit(r)
        codes[:, lvl] = km.predict(r)
        r -= km.centroids_[codes[:, lvl]]
    return codes


def topk_neighbours(x: np.ndarray, k: int, chunk: int = 2048) -> np.ndarray:
    """Cosine top-k neighbours (self excluded) int64 [N, k]; ties -> lower index (stable sort)."""
    t = torch.from_numpy(x.astype(np.float32))
    t = t / t.norm(dim=1, keepdim=True).clamp_min(1e-12)
    out = []
    for s in range(0, len(t), chunk):
        sim = t[s : s + chunk] @ t.T  # (c, N)
        sim[torch.arange(sim.shape[0]), torch.arange(s, s + sim.shape[0])] = -np.inf
        # stable descending sort so equal similarities (frequent with one-hots) rank by item index
        idx = torch.sort(-sim, dim=1, stable=True).indices[:, :k]
        out.append(idx.numpy())
    return np.concatenate(out)


def nn_overlap(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean([len(np.intersect1d(x, y)) / a.shape[1] for x, y in zip(a, b, strict=True)]))


def cooc_recall(nbrs: np.ndarray, keys: np.ndarray, n_items: int) -> float:
    a, b = keys // n_items, keys % n_items
    return float(((nbrs[a] == b[:, None]).any(axis=1)).mean())


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--levels", type=int, default=4)
    ap.add_argument("--K", type=int, default=256)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    ds = load_dataset("movielens")
    split = leave_one_out(ds.interactions, max_history=50)
    feats = build_fusid_features(ds.catalog, None, FeaturesConfig(fields=(FieldSpec(field="title", encoder="text"),),
                                                                  cooc=False, use_codes=False))
    x, mask = feats["title"]
    n = ds.catalog.n_items
    keys, _ = cooccurrence_counts(split.train, n, 5)
    codes = residual_kmeans(x, args.levels, args.K)
    uniq = len(np.unique(codes, axis=0)) / n
    sizes = [args.K] * args.levels
    rng = np.random.default_rng(0)
    reps = {
        "continuous MiniLM (384-d)": x,
        f"codes {args.levels}x{args.K} one-hot (decay 1)": codes_to_onehot(codes, sizes),
        f"codes {args.levels}x{args.K} one-hot (decay 0.5)": codes_to_onehot(
            codes, sizes, weights=[0.5**lvl for lvl in range(args.levels)]),
        "random codes (control)": codes_to_onehot(rng.integers(0, args.K, size=codes.shape), sizes),
    }
    base = topk_neighbours(x, args.k)
    print(f"MovieLens titles: {n} items, title coverage {mask.mean():.3f}, {len(keys)} train co-occurring pairs; "
          f"residual k-means {args.levels}x{args.K}: unique tuples {uniq:.4f}")
    print(f"{'representation':36s} {'nn-overlap@' + str(args.k):>14s} {'cooc-recall@' + str(args.k):>15s}")
    for name, rep in reps.items():
        nb = base if rep is x else topk_neighbours(rep, args.k)
        print(f"{name:36s} {nn_overlap(base, nb):14.4f} {cooc_recall(nb, keys, n):15.4f}", flush=True)
    print(f"total {time.perf_counter() - t0:.0f}s")


if __name__ == "__main__":
    main()
