"""How tokenizer costs grow with the catalog: 100k, 1M, 3M items, FusID PQ (n=5, K=1024), RQ-KMeans, RQ-VAE.

Catalog: clustered synthetic embeddings with a stated spectrum, D=80: 4,096 cluster centres drawn from
N(0, diag(j^-1)), j = 1..D (a power-law spectrum like text-encoder embeddings), each item = a centre
(Zipf-distributed cluster sizes, exponent 1) + N(0, 0.25 * diag(j^-1)) noise, float32. Every input is
distinct, so every shared code tuple is a real conflict.

Per (method, size), in a fresh subprocess (so peak RSS is its own): fit time (k-means on at most
``--fit-sample`` items: the mini-batch regime that keeps memory bounded at millions; RQ-VAE trains
``--rqvae-epochs`` epochs on at most ``--fit-sample`` items), encode throughput over the whole catalog,
peak RSS (resource.ru_maxrss), raw conflict rate (items whose raw tuple another item shares),
codebook utilisation per level, prefix index build time and memory (``PrefixIndex.nbytes``) over the
unique IDs (raw tuple + disambiguation digit).

Method ``fusid`` is the whole FusID tokenizer (``semid.tokenizers.fusid.FusID``: fusion net + PQ n=5 x K=1024,
raw tuples, fitted on every item as FusID fits on its train items) with the catalog as its one modality and
co-occurrence pairs mined from synthetic sessions (``sessions``: 0.4 N sessions of 10 consecutive items on a
random cycle through one cluster's items), so its raw conflict rate is the one FusID's <= 0.1% target is about;
``fusid_pq`` quantises the raw feature blocks with no fusion net. The fusion net trains ``--fusion-epochs`` epochs
of ``--fusion-pairs`` positives (drawn from at most ``--fusion-max-pairs`` mined) in steps of ``--fusion-batch``
(hidden ``--fusion-hidden``, alpha ``--fusid-alpha``).

Methods ``features_parquet`` / ``features_npy`` measure the bounded-memory item-feature path instead:
the catalog written as a parquet list<float> column (row groups of 65,536) or a float32 ``.npy``, read
back by ``semid.data.tables.read_embedding_file`` + ``attach_embedding`` (what ``load_table(embeddings=)``
runs) in a fresh process; peak RSS growth over the process's size after imports vs the result's size.

    python benchmarks/bench_scale.py --sizes 100000                   # what fits a loaded 2-core machine
    python benchmarks/bench_scale.py --sizes 100000 1000000 3000000   # the full table
    python benchmarks/bench_scale.py --sizes 1000000 --methods features_parquet features_npy
    python benchmarks/bench_scale.py --sizes 100000 1000000 --methods fusid --fusid-alpha 10
    python benchmarks/bench_scale.py --sizes 10000000 --methods interactions_parquet interactions_parquet_unsorted

Method ``interactions_parquet`` measures the bounded-memory interaction path: N interactions (N / 100 users,
N / 200 items, time-ordered) written as parquet, read by ``semid.data.stream.stream_interactions`` in a fresh
process; peak RSS growth vs the result's size (offsets + items + user ids + item ids).
``interactions_parquet_unsorted`` is the same file with its timestamps shuffled (rows out of time order).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

D, N_CENTRES = 80, 4096
EXTRA: dict = {}  # per-method details the worker adds to its row (fusid: the fit's stage seconds)


def _cluster_of(n: int, rng: np.random.Generator | None = None, seed: int = 0) -> np.ndarray:
    """int64 [n] each item's cluster, Zipf-sized (exponent 1); ``catalog`` draws it right after its centres."""
    if rng is None:
        rng = np.random.default_rng(seed)
        rng.standard_normal((N_CENTRES, D))  # the centres' draw, so the stream matches catalog()'s
    p = 1.0 / np.arange(1, N_CENTRES + 1)
    return rng.choice(N_CENTRES, size=n, p=p / p.sum())


def catalog(n: int, seed: int = 0) -> np.ndarray:
    """float32 [n, D] clustered embeddings (see the module docstring), generated in blocks."""
    rng = np.random.default_rng(seed)
    scale = (1.0 / np.arange(1, D + 1)) ** 0.5
    centres = (rng.standard_normal((N_CENTRES, D)) * scale).astype(np.float32)
    which = _cluster_of(n, rng)
    x = np.empty((n, D), dtype=np.float32)
    for a in range(0, n, 1 << 18):
        b = min(n, a + (1 << 18))
        x[a:b] = centres[which[a:b]] + (0.5 * rng.standard_normal((b - a, D)) * scale).astype(np.float32)
    return x


def conflict_rate(codes: np.ndarray) -> float:
    """Fraction of items whose raw code tuple at least one other item shares."""
    _, inv, counts = np.unique(codes, axis=0, return_inverse=True, return_counts=True)
    return float((counts[inv.reshape(-1)] > 1).mean())


def with_digit(codes: np.ndarray) -> np.ndarray:
    """Raw tuples + a disambiguation digit (rank among the items sharing the tuple): unique IDs."""
    _, inv = np.unique(codes, axis=0, return_inverse=True)
    inv = inv.reshape(-1)
    order = np.argsort(inv, kind="stable")
    s = inv[order]
    start = np.r_[0, np.flatnonzero(s[1:] != s[:-1]) + 1]
    rank = np.empty(len(s), dtype=np.int64)
    rank[order] = np.arange(len(s)) - np.repeat(start, np.diff(np.r_[start, len(s)]))
    return np.concatenate([codes, rank[:, None]], axis=1)


def _fit_encode(method: str, x: np.ndarray, args) -> tuple[np.ndarray, list[int], float, float]:
    """(raw codes [N, L], codebook sizes, fit seconds, encode seconds)."""
    from semid.quantize.kmeans import KMeans, KMeansConfig

    rng = np.random.default_rng(1)
    sample = x[np.sort(rng.choice(len(x), min(len(x), args.fit_sample), replace=False))]
    km = KMeansConfig(n_iter=args.kmeans_iter, seed=0)
    if method == "fusid_pq":
        from semid.quantize.pq import ProductQuantizer

        t = time.perf_counter()
        pq = ProductQuantizer(5, 1024, kmeans=km).fit(sample)
        fit_s = time.perf_counter() - t
        t = time.perf_counter()
        codes = np.concatenate([pq.encode(x[a : a + 65536]) for a in range(0, len(x), 65536)])
        return codes, [1024] * 5, fit_s, time.perf_counter() - t
    if method == "rqkmeans":
        sizes = [256, 256, 256]
        t = time.perf_counter()
        r, cents = sample.copy(), []
        for lvl, k in enumerate(sizes):
            m = KMeans(k, config=KMeansConfig(n_iter=args.kmeans_iter, seed=97 * lvl)).fit(r)
            cents.append(m)
            r -= np.asarray(m.centroids_, dtype=np.float32)[m.predict(r)]
        fit_s = time.perf_counter() - t
        t = time.perf_counter()
        out = []
        for a in range(0, len(x), 65536):
            r = x[a : a + 65536].copy()
            cols = []
            for m in cents:
                c = m.predict(r)
                cols.append(c)
                r -= np.asarray(m.centroids_, dtype=np.float32)[c]
            out.append(np.stack(cols, axis=1))
        return np.concatenate(out), sizes, fit_s, time.perf_counter() - t
    if method == "rqvae":
        from semid.data.types import Catalog
        from semid.tokenizers.rqvae import RQVAEConfig, RQVAETokenizer

        cfg = RQVAEConfig(epochs=args.rqvae_epochs, batch_size=1024, device="cpu", collision_digit=False)
        cat = Catalog(item_ids=np.arange(len(sample)).astype(str), embeddings={"text": sample})
        t = time.perf_counter()
        tok = RQVAETokenizer(config=cfg).fit(cat)
        fit_s = time.perf_counter() - t
        t = time.perf_counter()
        out = []
        for a in range(0, len(x), 65536):
            part = x[a : a + 65536]
            out.append(tok.transform(Catalog(item_ids=np.arange(len(part)).astype(str), embeddings={"text": part})))
        return np.concatenate(out)[:, : cfg.n_levels], [cfg.n_codes] * cfg.n_levels, fit_s, time.perf_counter() - t
    if method == "fusid":
        return _fusid(x, args)
    raise SystemExit(f"unknown method {method!r}")


def sessions(n: int, n_sessions: int, length: int = 10, seed: int = 2) -> np.ndarray:
    """int64 [n_sessions, length] synthetic sessions whose co-occurrence follows the clusters: each cluster's
    items lie on one random cycle, a session is ``length`` consecutive items of one cycle from a random start
    (cluster drawn by size), so neighbours on a cycle co-occur in ~``n_sessions * length / n`` sessions."""
    rng = np.random.default_rng(seed)
    which = _cluster_of(n)
    order = np.lexsort((rng.random(n), which))  # items grouped by cluster, random order inside
    starts = np.r_[0, np.flatnonzero(np.diff(which[order])) + 1]
    sizes = np.diff(np.r_[starts, n])
    c = rng.choice(len(starts), size=n_sessions, p=sizes / n)  # cluster of each session
    off = (rng.integers(0, 1 << 62, n_sessions) % sizes[c])[:, None] + np.arange(length)
    return order[starts[c][:, None] + off % sizes[c][:, None]]


def _fusid(x: np.ndarray, args) -> tuple[np.ndarray, list[int], float, float]:
    """The whole FusID tokenizer (fusion net + PQ n=5 x K=1024) fitted on every item, the catalog's
    features as its one modality and co-occurrence pairs mined from ``sessions``; encode = embed + PQ."""
    from semid.data.types import Catalog, Interactions
    from semid.encoders.features import FeaturesConfig
    from semid.tokenizers.fusid import FusID, FusIDConfig
    from semid.tokenizers.fusid_losses import FusIDLossConfig
    from semid.tokenizers.fusid_pairs import PairConfig
    from semid.tokenizers.fusion import FusionConfig
    from semid.train.loop import TrainConfig

    n = len(x)
    s = sessions(n, n_sessions=max(1, 4 * n // 10))
    train = Interactions(np.arange(0, s.size + 1, s.shape[1]), s.reshape(-1), np.arange(len(s)).astype(str))
    cat = Catalog(item_ids=np.arange(n).astype(str), embeddings={"feat": x})
    cfg = FusIDConfig(
        features=FeaturesConfig(cooc=False, cache=False),
        fusion=FusionConfig(hidden=args.fusion_hidden),
        loss=FusIDLossConfig(alpha=args.fusid_alpha),
        training=TrainConfig(epochs=args.fusion_epochs, batch_size=args.fusion_batch, lr=1e-3, warmup_steps=50,
                             patience=0, device="cpu", bf16=False),
        pairs_per_epoch=args.fusion_pairs,
        pairs=PairConfig(max_pairs=args.fusion_max_pairs),
    )
    t = time.perf_counter()
    tok = FusID(config=cfg).fit(cat, train)
    fit_s = time.perf_counter() - t
    fitted, tok.embeddings_ = tok.codes_raw_, None  # the fit's [N, n, d] copy: not kept while encoding again
    t = time.perf_counter()
    xin, present = tok.inputs(cat)
    codes = np.concatenate([tok.pq_.encode(tok.embed(xin[a : a + 65536], present[a : a + 65536]))
                            for a in range(0, n, 65536)])
    enc_s = time.perf_counter() - t
    if not np.array_equal(codes, fitted):
        raise SystemExit("FusID encode differs from its fit's codes")
    EXTRA.update(fusid_seconds={k: round(v, 1) for k, v in tok.report_["seconds"].items()},
                 fusid_loss_last=tok.loss_log_[-1] if tok.loss_log_ else {}, sessions=len(s),
                 alpha=args.fusid_alpha, fusion_pairs=args.fusion_pairs, fusion_batch=args.fusion_batch,
                 fusion_epochs=args.fusion_epochs, fusion_training=tok.report_["fusion_training"])
    return codes, [1024] * 5, fit_s, enc_s


def write_features(fmt: str, n: int, path: str) -> None:
    """The catalog as an embedding file: parquet (item id + list<float>, row groups of 65,536) or .npy."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    x = catalog(n)
    if fmt == "npy":
        np.save(path, x)
        Path(path).with_suffix(".ids.txt").write_text("".join(f"i{j}\n" for j in range(n)))
        return
    col = pa.ListArray.from_arrays(pa.array(np.arange(0, n * D + 1, D, dtype=np.int32)), pa.array(x.reshape(-1)))
    pq.write_table(pa.table({"item": [f"i{j}" for j in range(n)], "v": col}), path, row_group_size=1 << 16)


def _rss_bytes() -> int:
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _hwm_bytes() -> int:
    """This process's peak RSS (VmHWM)."""
    return [int(x.split()[1]) * 1024 for x in open("/proc/self/status") if x.startswith("VmHWM")][0]


def write_interactions(n: int, path: str, unsorted: bool = False) -> None:
    """n interactions as parquet (user str, item int64, timestamp int64; row groups of 65,536): n / 100 users,
    n / 200 items (MovieLens-20M's density), in time order, written in blocks (the file, not a table in memory).
    ``unsorted``: timestamps are a random permutation, so rows are out of time order within users and the
    reader takes its third pass (timestamps into their slots) and per-user sort."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(3)
    times = np.random.default_rng(4).permutation(n) if unsorted else np.arange(n)
    schema = pa.schema([("user", pa.string()), ("item", pa.int64()), ("timestamp", pa.int64())])
    with pq.ParquetWriter(path, schema) as w:
        for a in range(0, n, 1 << 20):
            b = min(n, a + (1 << 20))
            users = rng.integers(0, max(1, n // 100), b - a)
            w.write_table(pa.table({"user": pa.array(np.char.add("u", users.astype(str))),
                                    "item": pa.array(rng.integers(0, max(1, n // 200), b - a)),
                                    "timestamp": pa.array(times[a:b])}, schema=schema),
                          row_group_size=1 << 16)


def interactions_worker(method: str, n: int, path: str) -> dict:
    """``stream_interactions`` of ``path``: peak RSS growth over the size after imports vs the result's bytes."""
    import pyarrow.parquet  # noqa: F401  (code imported lazily by the reader, not data)

    import semid.data.tables  # noqa: F401
    import semid.progress  # noqa: F401
    from semid.data.stream import stream_interactions

    before = _rss_bytes()
    t = time.perf_counter()
    inter, cat = stream_interactions(path, progress=False)
    load_s = time.perf_counter() - t
    hwm = _hwm_bytes()
    size = inter.offsets.nbytes + inter.items.nbytes + inter.user_ids.nbytes + np.asarray(cat.item_ids).nbytes
    return {"method": method, "n_interactions": int(len(inter.items)), "n_users": inter.n_users,
            "load_s": round(load_s, 1), "result_mib": round(size / 2**20, 1),
            "peak_growth_mib": round((hwm - before) / 2**20, 1), "peak_over_result": round((hwm - before) / size, 2)}


def features_worker(n: int, path: str) -> dict:
    """Load ``path`` into a catalog of n items; peak RSS growth (VmHWM - RSS after imports) vs the result."""
    import pyarrow.parquet  # noqa: F401  (code imported lazily by the reader, not data)

    from semid.data import stream_features  # noqa: F401
    from semid.data.tables import attach_embedding, read_embedding_file
    from semid.data.types import Catalog

    cat = Catalog(item_ids=[f"i{j}" for j in range(n)])
    cat.index_of()
    before = _rss_bytes()
    t = time.perf_counter()
    ids, mat = read_embedding_file(path)
    attach_embedding(cat, "v", ids, mat, source=path)
    del ids, mat
    load_s = time.perf_counter() - t
    hwm = _hwm_bytes()
    size = cat.embeddings["v"].nbytes + cat.masks["v"].nbytes
    return {"method": f"features_{Path(path).suffix[1:]}", "n_items": n, "dim": D, "load_s": round(load_s, 1),
            "result_mib": round(size / 2**20, 1), "peak_growth_mib": round((hwm - before) / 2**20, 1),
            "peak_over_result": round((hwm - before) / size, 2)}


def worker(method: str, n: int, args) -> dict:
    from semid.decoding.prefix_index import PrefixIndex
    from semid.models.vocab import SemanticVocab

    x = catalog(n)
    codes, sizes, fit_s, enc_s = _fit_encode(method, x, args)
    rss_tok = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # GiB (ru_maxrss is KiB on Linux)
    uniq = with_digit(codes)
    t = time.perf_counter()
    vocab = SemanticVocab.for_items([*sizes, int(uniq[:, -1].max()) + 1])
    index = PrefixIndex.from_codes(vocab.item_tokens("item", uniq))
    index_s = time.perf_counter() - t
    return {"method": method, "n_items": n, "fit_s": round(fit_s, 1), "encode_items_per_s": round(n / enc_s),
            "peak_rss_gib": round(rss_tok, 2),
            "raw_conflict_rate": conflict_rate(codes),
            "utilisation": [round(len(np.unique(codes[:, j])) / sizes[j], 3) for j in range(codes.shape[1])],
            "max_digit": int(uniq[:, -1].max()), "index_build_s": round(index_s, 2),
            "index_mib": round(index.nbytes() / 2**20, 1),
            "peak_rss_with_index_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)} | EXTRA


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000])
    ap.add_argument("--methods", nargs="+", default=["fusid_pq", "rqkmeans", "rqvae"])
    ap.add_argument("--fit-sample", type=int, default=262_144, help="items k-means / RQ-VAE fit on")
    ap.add_argument("--kmeans-iter", type=int, default=10)
    ap.add_argument("--rqvae-epochs", type=int, default=3)
    ap.add_argument("--fusion-epochs", type=int, default=5, help="fusid: fusion-net epochs")
    ap.add_argument("--fusion-pairs", type=int, default=50_000, help="fusid: positive pairs per epoch")
    ap.add_argument("--fusion-hidden", type=int, default=1024, help="fusid: fusion-net hidden width")
    ap.add_argument("--fusion-batch", type=int, default=512, help="fusid: positive pairs per step")
    ap.add_argument("--fusion-max-pairs", type=int, default=200_000,
                    help="fusid: positives mined at most (highest count first; FusID's default)")
    ap.add_argument("--fusid-alpha", type=float, default=0.2, help="fusid: VICReg weight (the paper's 0.2)")
    ap.add_argument("--out", default="", help="also write the rows as JSON lines here")
    ap.add_argument("--worker", nargs=2, metavar=("METHOD", "N"), help=argparse.SUPPRESS)
    ap.add_argument("--path", default="", help=argparse.SUPPRESS)  # features_*: the embedding file
    args = ap.parse_args()
    if args.worker:
        m, n = args.worker[0], int(args.worker[1])
        if m.startswith("features_") and not Path(args.path).exists():
            write_features(m.removeprefix("features_"), n, args.path)
        elif m.startswith("interactions_parquet") and not Path(args.path).exists():
            write_interactions(n, args.path, unsorted=m.endswith("_unsorted"))
        elif m.startswith("interactions_parquet"):
            print(json.dumps(interactions_worker(m, n, args.path)))
        else:
            print(json.dumps(features_worker(n, args.path) if m.startswith("features_") else worker(m, n, args)))
        return
    rows = []
    tmp = tempfile.TemporaryDirectory(prefix="bench_scale-")
    for n in args.sizes:
        for m in args.methods:
            cmd = [sys.executable, __file__, "--worker", m, str(n), "--fit-sample", str(args.fit_sample),
                   "--kmeans-iter", str(args.kmeans_iter), "--rqvae-epochs", str(args.rqvae_epochs),
                   "--fusion-epochs", str(args.fusion_epochs), "--fusion-pairs", str(args.fusion_pairs),
                   "--fusion-hidden", str(args.fusion_hidden), "--fusion-batch", str(args.fusion_batch),
                   "--fusion-max-pairs", str(args.fusion_max_pairs), "--fusid-alpha", str(args.fusid_alpha)]
            if m.startswith(("features_", "interactions_parquet")):  # written in one process, read in another
                suffix = m.removeprefix("features_") if m.startswith("features_") else f"{m}.parquet"
                cmd += ["--path", str(Path(tmp.name) / f"emb_{n}.{suffix}")]
                subprocess.run(cmd, check=True)
            t = time.perf_counter()
            out = subprocess.run(cmd, capture_output=True, text=True)
            if out.returncode:
                print(f"{m} @ {n}: failed\n{out.stderr[-2000:]}", file=sys.stderr)
                continue
            row = json.loads(out.stdout.strip().splitlines()[-1])
            row["wall_s"] = round(time.perf_counter() - t, 1)
            rows.append(row)
            print(json.dumps(row), flush=True)
    tmp.cleanup()
    if args.out:
        with open(args.out, "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)


if __name__ == "__main__":
    main()
