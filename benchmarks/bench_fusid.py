"""FusID ID quality on MovieLens (title, genres, tags, co-occurrence) and amazon-lcrec Instruments/Games.

Prints one table: conflict rate of the raw PQ codes, codebook utilisation per position, entropy, a
retrieval proxy (recall of each item's train co-occurring neighbours among the items sharing its first
code, with the same figure for a random code assignment as baseline), and training time; plus a
k-means backend comparison (torch vs faiss, same data). Train = leave-one-out train split.

    python benchmarks/bench_fusid.py                # everything (~10 min on 2 CPU cores)
    python benchmarks/bench_fusid.py --datasets instruments --variants default --compare-kmeans

Budget settings (to stay near 10 CPU-minutes on 2 shared cores): fusion hidden 1024 instead of the paper's
2048, 2 epochs of 4096 sampled positive pairs each, k-means 20 iterations, MovieLens titles left out
(``--ml-title`` adds them: ~9.7k MiniLM encodings, minutes on 2 shared cores); raise them with the flags.
    python benchmarks/bench_fusid.py --datasets instruments --variants default
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from pathlib import Path

import numpy as np
import torch

from semid.data.split import leave_one_out
from semid.encoders.features import FeaturesConfig, FieldSpec
from semid.quantize.kmeans import KMeans, KMeansConfig, default_init_trials
from semid.quantize.pq import PQConfig
from semid.tokenizers.fusid import FusID, FusIDConfig, _default_training
from semid.tokenizers.fusid_losses import FusIDLossConfig
from semid.tokenizers.fusid_pairs import PairConfig, cooccurrence_counts
from semid.tokenizers.fusion import FusionConfig

SHARED = Path(os.environ.get("SEMID_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def load(name: str):
    from semid.data.amazon import load_amazon_lcrec
    from semid.data.movielens import load_movielens

    if name == "movielens":
        return load_movielens(SHARED / "movielens-latest-small", name="movielens")
    folder = {"instruments": "Instruments", "games": "Games"}[name]
    return load_amazon_lcrec(SHARED / "amazon-lcrec" / folder, name=folder)


def base_config(name: str, epochs: int, pairs_per_epoch: int, hidden: int, title: bool) -> FusIDConfig:
    if name == "movielens":
        fields = (
            *((FieldSpec(field="title", encoder="text"),) if title else ()),
            FieldSpec(field="genres", encoder="multihot"),
            FieldSpec(field="tags", encoder="text"),  # rendered "tags: a, b, ..."
        )
        feats = FeaturesConfig(fields=fields, dataset=name)
    else:  # no item text offline: co-occurrence only
        feats = FeaturesConfig(fields=(), dataset=name, use_codes=False)
    training = dataclasses.replace(_default_training(), epochs=epochs, batch_size=512, warmup_steps=10)
    return FusIDConfig(
        features=feats,
        fusion=FusionConfig(hidden=hidden),
        pq=PQConfig(n_sub=5, K=1024, kmeans=KMeansConfig(n_iter=20)),
        training=training,
        pairs=PairConfig(window=5, min_count=2),
        pairs_per_epoch=pairs_per_epoch,
    )


def variants(cfg: FusIDConfig, modalities: list[str]) -> dict[str, FusIDConfig]:
    out = {
        "default (n=5,K=1024)": cfg,
        "K=256": dataclasses.replace(cfg, pq=dataclasses.replace(cfg.pq, K=256)),
        "alpha=0": dataclasses.replace(cfg, loss=FusIDLossConfig(alpha=0.0)),
        "no contrastive": dataclasses.replace(cfg, loss=FusIDLossConfig(contrastive=False)),
    }
    if len(modalities) > 1:
        for m in modalities:
            out[f"drop {m}"] = dataclasses.replace(cfg, modalities=tuple(x for x in modalities if x != m))
    return out


def first_code_recall(codes: np.ndarray, keys: np.ndarray, n_items: int) -> float:
    """Mean over train co-occurring pairs (window 5) of [both items share the first code]."""
    a, b = keys // n_items, keys % n_items
    return float((codes[a, 0] == codes[b, 0]).mean()) if len(a) else float("nan")


def cold_start(tok: FusID, catalog, train) -> dict[str, tuple[float, float, float]]:
    """Remove one modality from EVERY item at inference (zeros + presence flag off), re-encode.

    Returns per modality: (share of items that still get an ID, share keeping the same first code,
    share keeping the same full raw code). Items whose only modality was removed have no input left.
    """
    x, present = tok.inputs(catalog, train)  # (N, sum D_m), (N, M)
    base = tok.pq_.encode(tok.embed(x, present))
    offs = np.cumsum([0, *tok.in_dims_])
    out = {}
    for j, m in enumerate(tok.modalities_):
        x2, p2 = x.copy(), present.copy()
        x2[:, offs[j] : offs[j + 1]] = 0.0
        p2[:, j] = False
        ok = p2.any(axis=1)
        codes = tok.pq_.encode(tok.embed(x2, p2))
        assert ((codes >= 0) & (codes < tok.config.pq.K)).all()
        out[m] = (
            float(ok.mean()),
            float((codes[ok, 0] == base[ok, 0]).mean()),
            float((codes[ok] == base[ok]).all(axis=1).mean()),
        )
    return out


def kmeans_backends(x: np.ndarray, k: int) -> dict:
    res = {}
    for backend in ("torch", "faiss"):
        t = time.perf_counter()
        km = KMeans(k, config=KMeansConfig(backend=backend, n_iter=20)).fit(x)
        res[backend] = (time.perf_counter() - t, km.inertia_)
    return res


def clustered(n: int, d: int, n_clusters: int, spread: float, seed: int) -> np.ndarray:
    """Synthetic embeddings float32 [n, d]: a Gaussian mixture with a 1/sqrt(i) spectrum, standardised.

    ``spread`` is the centre scale relative to the within-cluster noise (3 = well-separated clusters,
    1 = overlapping, closer to the near-Gaussian FusID fusion outputs).
    """
    rng = np.random.default_rng(seed)
    scales = 1.0 / np.sqrt(1.0 + np.arange(d))
    centres = rng.normal(size=(n_clusters, d)) * scales * spread
    x = centres[rng.integers(n_clusters, size=n)] + rng.normal(size=(n, d)) * scales
    return ((x - x.mean(0)) / x.std(0)).astype(np.float32)


def _fit_semid(x: np.ndarray, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    km = KMeans(k, config=KMeansConfig(seed=seed)).fit(x)  # k-means' default config: what FusID's PQ uses
    return km.centroids_, km.labels_


def _fit_faiss(x: np.ndarray, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    km = KMeans(k, config=KMeansConfig(seed=seed, backend="faiss")).fit(x)  # same n_iter, all points
    return km.centroids_, km.labels_


def _fit_sklearn(x: np.ndarray, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.cluster import KMeans as SKKMeans
    from threadpoolctl import threadpool_limits

    with threadpool_limits(torch.get_num_threads()):  # same thread count as the others
        km = SKKMeans(k, random_state=seed).fit(x)  # its defaults: greedy k-means++, lloyd to tol 1e-4
    return km.cluster_centers_.astype(np.float32), km.labels_


def _semid_with(**fields):
    def fit(x: np.ndarray, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        km = KMeans(k, config=KMeansConfig(seed=seed, **fields)).fit(x)
        return km.centroids_, km.labels_

    return fit


def _semid_sklearn_trials(x: np.ndarray, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    # scikit-learn's 2 + ln K k-means++ candidates per step also when seeding on all points (the earlier default)
    km = KMeans(k, config=KMeansConfig(seed=seed, init_trials=default_init_trials(k))).fit(x)
    return km.centroids_, km.labels_


def _semid_seed_all(x: np.ndarray, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    # k-means++ on every point with 2 x (2 + ln K) candidates, then the default coarse phase and refinement
    cfg = KMeansConfig(seed=seed, init_sample=-(-len(x) // k), init_trials=2 * default_init_trials(k))
    km = KMeans(k, config=cfg).fit(x)
    return km.centroids_, km.labels_


def _semid_rq(x: np.ndarray, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    # the RQ-KMeans tokenizer's default level config (seeding on every point, tol 1e-6)
    import dataclasses

    from semid.tokenizers.rqkmeans import RQKMeansConfig

    km = KMeans(k, config=dataclasses.replace(RQKMeansConfig().kmeans(0), seed=seed)).fit(x)
    return km.centroids_, km.labels_


KMEANS_BACKENDS = {
    "semid": _fit_semid, "faiss": _fit_faiss, "scikit-learn": _fit_sklearn,
    # the full fit on all points (the default below fit_min points, or with fit_sample=0)
    "semid-full": _semid_with(fit_sample=0),
    # run to convergence like scikit-learn (which iterates up to 300 passes)
    "semid-converged": _semid_with(n_iter=300, tol=1e-6),
    "semid-sklearn-trials": _semid_sklearn_trials,
    "semid-seed-all": _semid_seed_all,
    "semid-rq": _semid_rq,
}


def pq_case(fit, x: np.ndarray, n_sub: int, k: int) -> float:
    """Product quantisation: k-means per sub-space of x [N, n_sub * d]; returns the MSE per element."""
    err = 0.0
    for j, blk in enumerate(np.split(x, n_sub, axis=1)):
        blk = np.ascontiguousarray(blk)
        c, lab = fit(blk, k, j)
        err += float(((blk - c[lab]).astype(np.float64) ** 2).sum())
    return err / x[:, : blk.shape[1] * n_sub].size


def residual_case(fit, x: np.ndarray, levels: int, k: int) -> float:
    """Residual k-means: level l clusters what levels < l left; returns the final MSE per element."""
    r = x.copy()
    for lvl in range(levels):
        c, lab = fit(r, k, lvl)
        r -= c[lab]
    return float((r.astype(np.float64) ** 2).mean())


def compare_kmeans(args) -> list[dict]:
    """Each case, each installed backend, interleaved and repeated; ratios are per repeat, then median."""
    import importlib.util

    backends = [b for b, mod in (("semid", None), ("faiss", "faiss"), ("scikit-learn", "sklearn"),
                                 ("semid-full", None), ("semid-converged", None), ("semid-sklearn-trials", None),
                                 ("semid-seed-all", None), ("semid-rq", None))
                if mod is None or importlib.util.find_spec(mod) is not None]
    if args.kmeans_backends:
        wanted = [b.strip() for b in args.kmeans_backends.split(",") if b.strip()]
        unknown = sorted(set(wanted) - set(KMEANS_BACKENDS))
        if unknown:
            raise SystemExit(f"--kmeans-backends: unknown {unknown}; known: {sorted(KMEANS_BACKENDS)}")
        backends = [b for b in backends if b in wanted]
    if "faiss" in backends:
        import faiss

        faiss.omp_set_num_threads(args.threads)
    n = args.kmeans_n
    cases = {
        f"PQ {args.kmeans_subspaces} of 5 x K=1024 on {n} x 640": (
            clustered(n, 640, 4096, 1.0, 0)[:, : 128 * args.kmeans_subspaces],
            lambda f, x: pq_case(f, x, args.kmeans_subspaces, 1024), ("semid", "faiss", "semid-full")),
        f"residual 3 x K=256 on {n} x 128 clustered": (
            clustered(n, 128, 1000, 3.0, 1), lambda f, x: residual_case(f, x, 3, 256),
            ("semid", "faiss", "scikit-learn", "semid-converged", "semid-sklearn-trials", "semid-seed-all",
             "semid-rq")),
    }
    load = os.getloadavg()[0]
    print(f"k-means comparison, threads={args.threads}, load average at start {load:.1f} on "
          f"{os.cpu_count()} cores; backends {', '.join(backends)}; {args.kmeans_repeats} interleaved repeats")
    out = []
    wanted_cases = args.kmeans_cases.split(",")
    cases = {k: v for k, v in cases.items() if k.split(" ")[0].lower() in wanted_cases}
    for name, (x, run, wanted) in cases.items():
        # scikit-learn iterates to convergence (up to 300 passes): too slow at K=1024 on CPU, so the PQ
        # case (the FusID comparison) is semid vs faiss and the residual case is all three.
        names = [b for b in backends if b in wanted]
        times: dict[str, list[float]] = {b: [] for b in names}
        mse: dict[str, float] = {}
        for rep in range(args.kmeans_repeats):
            order = names if rep % 2 == 0 else names[::-1]  # interleave against drifting load
            for b in order:
                t = time.perf_counter()
                mse[b] = run(KMEANS_BACKENDS[b], x)
                times[b].append(time.perf_counter() - t)
        base = times["semid"]
        row = {"case": name, "load": load}
        cells = []
        for b in names:
            ratio = float(np.median([s / o for s, o in zip(base, times[b], strict=True)]))
            row[b] = {"seconds": times[b], "mse": mse[b], "semid_time_ratio": ratio}
            cells.append(f"{b} {np.median(times[b]):7.2f}s mse {mse[b]:.4f}"
                         + ("" if b == "semid" else f" (semid/{b} time x{ratio:.2f})"))
        print(f"  {name}: " + " | ".join(cells), flush=True)
        out.append(row)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--datasets", default="instruments,movielens,games")
    ap.add_argument("--variants", default="all")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--pairs-per-epoch", type=int, default=4096)
    ap.add_argument("--hidden", type=int, default=1024, help="fusion hidden width (paper: 2048)")
    ap.add_argument(
        "--games-variants", default="default,K=256", help="Games is the largest set: fewer variants"
    )
    ap.add_argument(
        "--ml-title", action="store_true", help="MovieLens: also MiniLM-encode the 9.7k titles (slow on CPU)"
    )
    ap.add_argument("--compare-kmeans", action="store_true",
                    help="time semid vs faiss vs scikit-learn k-means on synthetic PQ / residual cases "
                         "(and torch vs faiss on each dataset's first PQ sub-space); --datasets '' for only those")
    ap.add_argument("--kmeans-n", type=int, default=100_000, help="points in the synthetic k-means cases")
    ap.add_argument("--kmeans-subspaces", type=int, default=5, help="PQ case: how many of the 5 sub-spaces")
    ap.add_argument("--kmeans-repeats", type=int, default=2, help="interleaved repeats per backend")
    ap.add_argument("--kmeans-cases", default="pq,residual", help="which synthetic k-means cases to run")
    ap.add_argument("--kmeans-backends", default="", help="comma-separated subset of the backends (default: all "
                    "installed)")
    ap.add_argument("--results", default="")
    ap.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", 2)))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    rows = []
    header = f"{'dataset':12s} {'variant':22s} {'conflict':>8s} {'util/pos':>30s} {'ent(bits)':>10s} {'rec@c1':>7s} {'rand':>6s} {'train_s':>7s} {'total_s':>7s}"
    if args.compare_kmeans:
        rows.extend(compare_kmeans(args))
    print(header)
    for ds_name in filter(None, args.datasets.split(",")):
        ds = load(ds_name)
        split = leave_one_out(ds.interactions)
        cfg = base_config(ds_name, args.epochs, args.pairs_per_epoch, args.hidden, args.ml_title)
        keys, _ = cooccurrence_counts(split.train, ds.catalog.n_items, 5)
        mods = (
            (["title"] if args.ml_title else []) + ["genres", "tags", "cooc"]
            if ds_name == "movielens"
            else ["cooc"]
        )
        for vname, vcfg in variants(cfg, mods).items():
            wanted = args.games_variants if ds_name == "games" else args.variants
            if wanted != "all" and vname.split(" ")[0] not in wanted.split(","):
                continue
            tok = FusID(config=vcfg).fit(ds.catalog, split.train)
            rep = tok.report_
            rng = np.random.default_rng(0)
            rand = rng.integers(vcfg.pq.K, size=(ds.catalog.n_items, 1))
            row = {
                "dataset": ds_name,
                "variant": vname,
                "conflict": rep["conflict_rate"],
                "util": rep["codebook_utilization"],
                "entropy": float(np.mean(rep["entropy_bits"])),
                "recall": first_code_recall(tok.codes_raw_, keys, ds.catalog.n_items),
                "rand": first_code_recall(rand, keys, ds.catalog.n_items),
                "train_s": rep["seconds"]["train"],
                "total_s": rep["seconds"]["total"],
                "final_loss": tok.loss_log_[-1],
                "K": vcfg.pq.K,
            }
            rows.append(row)
            util = ",".join(f"{u:.2f}" for u in row["util"])
            print(
                f"{ds_name:12s} {vname:22s} {row['conflict']:8.4f} {util:>30s} {row['entropy']:10.2f} "
                f"{row['recall']:7.4f} {row['rand']:6.4f} {row['train_s']:7.1f} {row['total_s']:7.1f}",
                flush=True,
            )
            if vname.startswith("default") and len(tok.modalities_) > 1:
                cs = cold_start(tok, ds.catalog, split.train)
                row["cold_start"] = cs
                for m, (has_id, same1, same_all) in cs.items():
                    print(f"  without {m:8s}: items with input {has_id:.3f}, same first code {same1:.3f}, "
                          f"same full code {same_all:.3f}", flush=True)
            if vname.startswith("default") and args.compare_kmeans:
                z = tok.embeddings_[:, 0]  # first sub-space, the PQ problem at n=5,K=1024
                kb = kmeans_backends(np.ascontiguousarray(z), vcfg.pq.K)
                print(
                    f"  k-means K={vcfg.pq.K} on {z.shape}: torch {kb['torch'][0]:.2f}s inertia "
                    f"{kb['torch'][1]:.1f} | faiss {kb['faiss'][0]:.2f}s inertia {kb['faiss'][1]:.1f} | "
                    f"speed ratio torch/faiss {kb['torch'][0] / kb['faiss'][0]:.1f}x",
                    flush=True,
                )
                row["kmeans"] = kb
    if args.results:
        import json

        Path(args.results).write_text(json.dumps(rows, indent=1, default=float))


if __name__ == "__main__":
    main()
