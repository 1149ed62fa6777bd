"""Slowdown of the main job's stages when another process shares the cores.

Runs each stage of the README's main job (FusID fusion training, FusID product quantisation, one
GPT-2 training epoch, constrained beam decoding) idle and then with a competing single-thread
CPU-bound process that this script starts and stops itself, interleaved and repeated, and prints
time(loaded) / time(idle) per stage. Target: every ratio <= 1.5 with one competitor.

    python benchmarks/bench_contention.py --quick            # ~2-4 minutes on 2 idle cores
    python benchmarks/bench_contention.py --threads 1        # compare with one intra-op thread
    python benchmarks/bench_contention.py --omp-wait-policy ACTIVE   # the spinning OpenMP default
    python benchmarks/bench_contention.py --decode-threads auto,1,2  # decode: default vs 1 vs 2 threads
    python benchmarks/bench_contention.py --main-job         # the README's main job, ~20 minutes

``--decode-threads`` times only decoding (``GPT2Rec.recommend``, the lean step, 192 users in batches of
32), at each setting idle and loaded, interleaved, and prints the two decode targets: default ("auto",
``semid.threads.small_ops``) >= 1-thread speed under contention, >= 1.5x it idle.

``--main-job`` runs the README's main job (``semid run --preset quickstart``, install excluded) as a
subprocess with semid's default thread policy, idle and then with the competitors (``--repeats`` pairs,
default 1), and prints the wall time, the run's own stage times (``summary.json``) and the thread counts
its steps ran at, with the ratio against the target <= 1.5.

The OpenMP wait policy must be fixed before torch loads, so it is applied (``semid.threads``) before
the first torch import below; ``--omp-wait-policy`` overrides it for this process.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller stages and one repeat (a few minutes)")
    ap.add_argument("--repeats", type=int, default=0, help="idle/loaded pairs per stage (0: 1 quick, 2 full)")
    ap.add_argument("--threads", type=int, default=None, help="intra-op threads (default: semid's policy)")
    ap.add_argument("--omp-wait-policy", default="", help="PASSIVE | ACTIVE (default: semid's, PASSIVE)")
    ap.add_argument("--stages", default="fusion,pq,gpt2,decode")
    ap.add_argument("--competitors", type=int, default=1, help="single-thread load processes")
    ap.add_argument("--decode-threads", default="", help="e.g. auto,1,2: decode-only comparison of settings")
    ap.add_argument("--main-job", action="store_true", help="time `semid run --preset quickstart` idle and loaded")
    ap.add_argument("--preset", default="quickstart", help="--main-job: the preset to run")
    ap.add_argument("--gomp-spincount", default="", help="GNU OpenMP spin iterations before an idle thread "
                    "sleeps (~100 per microsecond; PASSIVE alone means 0); set before torch loads")
    return ap.parse_args(argv)


ARGS = parse_args() if __name__ == "__main__" else None
if ARGS is not None and ARGS.omp_wait_policy:
    os.environ["OMP_WAIT_POLICY"] = ARGS.omp_wait_policy.upper()
if ARGS is not None and ARGS.gomp_spincount:
    os.environ["GOMP_SPINCOUNT"] = ARGS.gomp_spincount

from semid import threads as thread_policy  # noqa: E402

thread_policy.apply_wait_policy()  # before torch loads

import numpy as np  # noqa: E402

SPIN = "import time\nt = time.time()\nwhile time.time() - t < 900:\n    pass\n"  # bounded even if orphaned


class Competitors:
    """``with Competitors(n):`` runs n single-thread busy-loop processes for the block's duration."""

    def __init__(self, n: int):
        self.n = n
        self.procs: list[subprocess.Popen] = []

    def __enter__(self):
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        self.procs = [subprocess.Popen([sys.executable, "-c", SPIN], env=env) for _ in range(self.n)]
        time.sleep(0.3)  # let them reach the loop
        return self

    def __exit__(self, *exc):
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.procs = []


def stage_fusion(quick: bool):
    """FusID fusion-network training (item2vec co-occurrence input, amazon-lcrec Instruments), tiny PQ."""
    import dataclasses

    from semid.data.split import leave_one_out
    from semid.encoders.features import FeaturesConfig
    from semid.quantize.kmeans import KMeansConfig
    from semid.quantize.pq import PQConfig
    from semid.tokenizers.fusid import FusID, FusIDConfig, _default_training
    from semid.tokenizers.fusid_pairs import PairConfig
    from semid.tokenizers.fusion import FusionConfig

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from bench_fusid import load  # no item text offline: co-occurrence only, so no text encoder runs

    ds = load("instruments")
    split = leave_one_out(ds.interactions)
    training = dataclasses.replace(_default_training(), epochs=2 if quick else 3, batch_size=512,
                                   warmup_steps=10, progress=False)
    cfg = FusIDConfig(
        features=FeaturesConfig(fields=(), dataset="instruments", use_codes=False),
        fusion=FusionConfig(hidden=512 if quick else 1024),
        pq=PQConfig(n_sub=3, K=8, kmeans=KMeansConfig(n_iter=5)),
        training=training,
        pairs=PairConfig(window=5, min_count=2),
        pairs_per_epoch=4096 if quick else 8192,
    )
    FusID(config=cfg).fit(ds.catalog, split.train)  # warm the feature cache: timed runs are training

    def run() -> float:
        tok = FusID(config=cfg).fit(ds.catalog, split.train)
        return float(tok.report_["seconds"]["train"])

    return run


def stage_pq(quick: bool):
    """FusID's product quantiser (n=5 sub-spaces) on synthetic clustered 640-d embeddings."""
    from semid.quantize.pq import ProductQuantizer

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from bench_fusid import clustered

    n, k = (10_000, 256) if quick else (20_000, 1024)
    x = clustered(n, 640, 2048, 1.0, 0)

    def run() -> float:
        t = time.perf_counter()
        ProductQuantizer(5, k).fit(x)
        return time.perf_counter() - t

    return run


def _gpt2(n_items: int, seed: int = 0):
    from semid.models.gpt2rec import GPT2Rec, GPT2RecConfig
    from semid.train.loop import TrainConfig

    rng = np.random.default_rng(seed)
    codes = np.unique(rng.integers(0, 64, size=(n_items * 2, 3)), axis=0)[:n_items]
    codes = codes[rng.permutation(len(codes))]
    tcfg = TrainConfig(epochs=1, batch_size=64, lr=1e-3, warmup_steps=10, progress=False, device="cpu",
                       patience=0)
    cfg = GPT2RecConfig(n_layer=2, n_embd=128, n_head=4, max_history=20, dropout=0.1, beam=20)
    return GPT2Rec(codes=codes, codebook_sizes=[64] * 3, train=tcfg, config=cfg)


def stage_gpt2(quick: bool):
    """One GPT-2 (2 x 128, all-position objective) training epoch on MovieLens with random 3 x 64 codes."""
    from semid.data.registry import load_dataset
    from semid.data.split import leave_one_out
    from semid.data.types import Interactions

    ds = load_dataset("movielens")
    split = leave_one_out(ds.interactions, max_history=50)
    tail = 10 if quick else 40
    train = Interactions.from_lists([s[-tail:] for s in split.train.to_lists()])

    def run() -> float:
        rec = _gpt2(ds.catalog.n_items)
        t = time.perf_counter()
        rec.fit(train, ds.catalog, None)
        return time.perf_counter() - t

    return run


def _decoder():
    """A GPT-2 2 x 128 over 5,000 items whose ``recommend`` decodes batches of 32 (the default path: lean
    step, batches side by side on CPU)."""
    import dataclasses

    rec = _gpt2(5000).init_model()
    rec.config = dataclasses.replace(rec.config, eval_batch_size=32)
    return rec


def stage_decode(quick: bool):
    """Constrained beam search (beam 20, top-10) of a GPT-2 2 x 128 over 5,000 items, batches of 32."""
    rec = _decoder()
    rng = np.random.default_rng(1)
    users = 64 if quick else 192
    hists = [rng.integers(0, 5000, size=rng.integers(1, 21)) for _ in range(users)]

    def run() -> float:
        thread_policy.recheck_load()  # the small-op count follows this phase's load (semid.threads)
        t = time.perf_counter()
        rec.recommend(hists, 10, beam=20)
        return time.perf_counter() - t

    return run


def decode_settings(args: argparse.Namespace, repeats: int) -> None:
    """Decode users/s at each thread setting ("auto" = semid's small-op policy), idle and loaded."""
    settings = [x.strip() for x in args.decode_threads.split(",") if x.strip()]
    rec = _decoder()
    rng = np.random.default_rng(1)
    users = 64 if args.quick else 192
    hists = [rng.integers(0, 5000, size=rng.integers(1, 21)) for _ in range(users)]

    def run(setting: str) -> tuple[float, dict]:
        thread_policy.set_threads(None if setting == "auto" else int(setting))
        thread_policy.recheck_load()  # "auto" reads the load now, not a second ago
        thread_policy._small["used"] = {}
        t = time.perf_counter()
        rec.recommend(hists, 10, beam=20)
        return time.perf_counter() - t, dict(thread_policy._small["used"])

    for setting in settings:
        run(setting)  # warm-up
    times = {(st, ld): [] for st in settings for ld in (False, True)}
    chosen = {(st, ld): {} for st in settings for ld in (False, True)}
    for rep in range(repeats):
        for loaded in (False, True):
            with Competitors(args.competitors if loaded else 0):
                for st in settings[rep % len(settings):] + settings[: rep % len(settings)]:  # rotated order
                    t, used = run(st)
                    times[st, loaded].append(t)
                    for n, c in used.items():
                        chosen[st, loaded][n] = chosen[st, loaded].get(n, 0) + c
    print(f"{'decode':8s} {'idle u/s':>9s} {'loaded u/s':>11s}  threads used (idle | loaded)")
    speed = {key: users / float(np.median(v)) for key, v in times.items()}
    for st in settings:
        print(f"{st:8s} {speed[st, False]:9.1f} {speed[st, True]:11.1f}  {chosen[st, False]} | {chosen[st, True]}")
    if "auto" in settings and "1" in settings:
        r_load = speed["auto", True] / speed["1", True]
        r_idle = speed["auto", False] / speed["1", False]
        print(f"TARGET decode default vs 1 thread, loaded: x{r_load:.3f} (target >= 1.0)"
              f"{'' if r_load >= 1.0 else '  MISSED'}")
        print(f"TARGET decode default vs 1 thread, idle:   x{r_idle:.3f} (target >= 1.5)"
              f"{'' if r_idle >= 1.5 else '  MISSED'}")
    thread_policy.set_threads(args.threads)


STAGES = {"fusion": stage_fusion, "pq": stage_pq, "gpt2": stage_gpt2, "decode": stage_decode}


def main_job(args: argparse.Namespace, repeats: int) -> None:
    """The whole README job as a user runs it: a fresh ``semid`` process per run, idle then loaded."""
    import contextlib
    import json
    import tempfile
    from pathlib import Path

    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "SEMID_THREADS")}
    env["SEMID_NO_PROGRESS"] = "1"
    cmd = [sys.executable, "-m", "semid"] + ([] if args.threads is None else ["--threads", str(args.threads)])

    def run(out: Path) -> tuple[float, dict]:
        t0 = time.perf_counter()
        subprocess.run(cmd + ["run", "--preset", args.preset, "--run-dir", str(out)], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - t0
        return wall, json.loads((out / "summary.json").read_text())

    print(f"{'phase':7s} {'wall_s':>7s} {'tokenizer_s':>11s} {'train_s':>8s}  test NDCG@10  steps at each thread count",
          flush=True)
    ratios = []
    with tempfile.TemporaryDirectory(prefix="semid-contention-") as tmp:
        for r in range(repeats):
            walls = {}
            for phase in ("idle", "loaded"):
                with Competitors(args.competitors) if phase == "loaded" else contextlib.nullcontext():
                    walls[phase], summ = run(Path(tmp) / f"{phase}{r}")
                tok = summ.get("tokenizer_seconds", float("nan"))
                envr = summ.get("environment", {})
                print(f"{phase:7s} {walls[phase]:7.1f} {tok:11.1f} {summ.get('train_seconds', float('nan')):8.1f}  "
                      f"{summ.get('test', {}).get('NDCG@10', float('nan')):.4f}  "
                      f"train/k-means {envr.get('whole_matrix_threads_used')} decode {envr.get('small_op_threads_used')}",
                      flush=True)
            ratios.append(walls["loaded"] / walls["idle"])
    ratio = float(np.median(ratios))
    print(f"main job loaded / idle wall time {ratio:.2f} (target <= 1.5{'' if ratio <= 1.5 else ': MISSED'}); "
          f"load average at end {os.getloadavg()[0]:.1f}")


def main(args: argparse.Namespace) -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a killed run still stops its competitors
    n_threads = thread_policy.apply(args.threads)
    repeats = args.repeats or (1 if args.quick or args.main_job else 2)
    print(f"threads={n_threads} OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')} "
          f"GOMP_SPINCOUNT={os.environ.get('GOMP_SPINCOUNT', '(unset)')} cores={os.cpu_count()} "
          f"load average at start {os.getloadavg()[0]:.1f}; competitors={args.competitors} x 1 thread; "
          f"repeats={repeats}{' (quick)' if args.quick else ''}", flush=True)
    if args.decode_threads:
        decode_settings(args, repeats)
        return
    if args.main_job:
        main_job(args, repeats)
        return
    print(f"{'stage':8s} {'idle_s':>8s} {'loaded_s':>9s} {'ratio':>6s}  target <= 1.5", flush=True)
    worst = 0.0
    for name in args.stages.split(","):
        run = STAGES[name](args.quick)
        run()  # warm-up (allocator, caches, lazy imports), not timed
        idle, loaded = [], []
        for _ in range(repeats):
            idle.append(run())
            with Competitors(args.competitors):
                loaded.append(run())
        ratio = float(np.median(np.array(loaded) / np.array(idle)))
        worst = max(worst, ratio)
        print(f"{name:8s} {np.median(idle):8.2f} {np.median(loaded):9.2f} {ratio:6.2f}"
              f"{'' if ratio <= 1.5 else '  MISSED'}", flush=True)
    rec = thread_policy.runtime_record()
    print(f"worst ratio {worst:.2f}; load average at end {os.getloadavg()[0]:.1f}; decode small-op threads "
          f"used (count: batches): {rec['small_op_threads_used']}; training / k-means steps: "
          f"{rec['whole_matrix_threads_used']}")


if __name__ == "__main__":
    main(ARGS)
