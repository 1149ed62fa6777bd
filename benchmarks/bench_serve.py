"""Load test of `semid serve`: served throughput and latency vs offline batched decoding, same run, same beam.

Trains a tiny GPT-2 (seconds) on the built-in MovieLens with random unique codes (L levels of K codes:
decoding cost depends on the shapes, not on what the codes mean), starts `semid serve` on 127.0.0.1 in a
subprocess, and drives 1 / 8 / 32 / 64 concurrent keep-alive clients (one asyncio process, a minimal
HTTP/1.1 client so the load generator costs little CPU) for ``--seconds`` each, with real histories from
the test split. Prints req/s, p50 / p90 / p99, errors, the server's RSS (start / end of each level, peak),
and the ratio of served req/s to offline ``recommend`` users/s at the same beam and batch size, measured
in this run right before and right after each level (their mean; a shared machine's load swings), with the issue's targets at 32 clients (served / offline >= 0.7, p99 <= 3 x p50, zero errors).
``--duration S`` adds a memory-flatness phase: ``--flat-clients`` (32) clients for S seconds while the
server's RSS is sampled every second; prints start / end / peak RSS, the least-squares slope (MiB/min) over
the whole phase and over its second half, and whether the second half grew by less than
max(5 MiB, 2% of its start) ("flat"). Every socket goes to 127.0.0.1; every loop is bounded by time or count.

    python benchmarks/bench_serve.py --seconds 10                       # levels 1 / 8 / 32 / 64
    python benchmarks/bench_serve.py --levels 32 --seconds 20 --duration 120   # + 2-minute memory run
    python benchmarks/bench_serve.py --threads 1                        # server and offline at 1 thread

``--threads auto`` (default) is what ``semid serve`` does by itself (``semid.threads``: decode batches
pick 1-2 threads by the cores other processes use); a number pins both the server and offline decoding.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __name__ == "__main__":  # offline decoding waits like `semid serve`: policy set before torch loads
    from semid.threads import apply_wait_policy

    apply_wait_policy()

import numpy as np  # noqa: E402

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def cpu_s(pid: int) -> float:
    """User + system CPU seconds a process has used, from /proc (all its threads)."""
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> tuple[float, float]:
    """(current RSS, peak RSS) of a process in MiB, from /proc."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        fields[k] = v.strip()
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def train_run(run_dir: Path, args) -> None:
    """A finished semid run: MovieLens, random unique codes [n_items, L] in [0, K), a small GPT-2."""
    from semid.data.registry import load_dataset
    from semid.io import save_npy
    from semid.pipeline.presets import resolve
    from semid.pipeline.runner import run

    n = load_dataset("movielens").catalog.n_items
    rng = np.random.default_rng(0)
    codes = np.unique(rng.integers(0, args.K, size=(int(n * 1.3) + 64, args.L)), axis=0)
    if len(codes) < n:
        raise SystemExit(f"K={args.K}, L={args.L} give only {len(codes)} unique codes for {n} items")
    codes_path = save_npy(run_dir.parent / "codes.npy", codes[rng.permutation(len(codes))[:n]])
    cfg = resolve(None, {"data.dataset": "movielens", "data.train_tail": 50, "tokenizer": "precomputed",
                         "precomputed.source": str(codes_path), "model": "gpt2", "name": "bench-serve",
                         "gpt2.n_layer": args.n_layer, "gpt2.n_embd": args.n_embd, "gpt2.beam": args.beam,
                         "gpt2.valid_beam": 5,
                         "gpt2.valid_users": 64, "gpt2.max_history": 20, "train.epochs": 1,
                         "train.batch_size": 64, "train.progress": False, "train.device": "cpu",
                         "eval_valid": False})
    run(cfg, run_dir)


async def request(reader, writer, body: bytes) -> tuple[int, bytes]:
    """One POST /recommend on a keep-alive connection -> (status, body)."""
    writer.write(b"POST /recommend HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                 b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length = next(int(x.split(":", 1)[1]) for x in lines[1:] if x.lower().startswith("content-length:"))
    return status, await reader.readexactly(length)


async def drive(port: int, bodies: list[bytes], clients: int, seconds: float, k: int, rss_pid: int | None = None
                ) -> dict:
    """``clients`` connections, each sending requests back to back until ``seconds`` pass; with ``rss_pid``
    that process's RSS is sampled once a second (``rss``: [(seconds since start, MiB)])."""
    lat: list[float] = []
    errors = 0
    t_start = time.perf_counter()
    t_end = t_start + seconds
    samples: list[tuple[float, float]] = []

    async def sampler() -> None:
        while time.perf_counter() < t_end:
            samples.append((time.perf_counter() - t_start, rss_mb(rss_pid)[0]))
            await asyncio.sleep(1.0)
        samples.append((time.perf_counter() - t_start, rss_mb(rss_pid)[0]))

    async def client(c: int) -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(HOST, port)
        i = c
        try:
            while time.perf_counter() < t_end:
                t0 = time.perf_counter()
                try:
                    status, out = await asyncio.wait_for(request(reader, writer, bodies[i % len(bodies)]), 60)
                    ok = status == 200 and len(json.loads(out)["items"]) == k
                except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError):
                    ok = False
                    writer.close()
                    reader, writer = await asyncio.open_connection(HOST, port)
                lat.append(time.perf_counter() - t0)
                errors += not ok
                i += clients
        finally:
            writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(client(c) for c in range(clients)), *([sampler()] if rss_pid is not None else []))
    wall = time.perf_counter() - t0
    q = np.percentile(np.asarray(lat) * 1e3, [50, 90, 99]) if lat else [float("nan")] * 3
    return {"clients": clients, "requests": len(lat), "rps": len(lat) / wall, "p50": q[0], "p90": q[1],
            "p99": q[2], "errors": errors, "rss": samples}


def memory_report(samples: list[tuple[float, float]]) -> str:
    """Start / end / peak RSS and slopes of a sampled run; "flat" when the second half grew by less than
    max(5 MiB, 2% of its start)."""
    t, m = np.array(samples).T
    slope = np.polyfit(t, m, 1)[0] * 60 if len(t) > 2 else float("nan")
    half = t >= t[-1] / 2
    slope2 = np.polyfit(t[half], m[half], 1)[0] * 60 if half.sum() > 2 else float("nan")
    grow2 = slope2 / 60 * (t[half][-1] - t[half][0])
    flat = grow2 < max(5.0, 0.02 * m[half][0])
    return (f"RSS start {m[0]:.0f} MiB, end {m[-1]:.0f}, peak {m.max():.0f} ({len(m)} samples over {t[-1]:.0f} s); "
            f"slope {slope:+.2f} MiB/min overall, {slope2:+.2f} MiB/min over the second half "
            f"({grow2:+.1f} MiB) -> TARGET memory flat: {'met' if flat else 'MISSED'}")


class Offline:
    """Offline batched decoding of the test histories (exclude_seen masks, like the server), same beam: one
    ``recommend`` call per ``PER_CALL`` batches of ``batch`` histories, as ``semid run`` evaluates (its batches
    are decoded side by side on CPU, one per worker)."""

    PER_CALL = 8

    def __init__(self, run_dir: Path, hists: list[np.ndarray], beam: int, k: int, batch: int, threads: str):
        import dataclasses

        from semid.pipeline.restore import load_run
        from semid.threads import set_threads

        set_threads(None if threads == "auto" else int(threads))
        self.model = load_run(run_dir).model
        self.model.config = dataclasses.replace(self.model.config, eval_batch_size=batch)
        self.hists, self.beam, self.k, self.batch = hists, beam, k, batch
        self.cpu_ms: list[float] = []
        self.users_per_s(0.0)  # warm-up: one batch

    def users_per_s(self, seconds: float) -> float:
        """Batches of ``batch`` histories back to back for ``seconds`` (at least one batch)."""
        n, s, t0, size = 0, 0, time.perf_counter(), self.batch * self.PER_CALL
        c0 = time.process_time()
        while n == 0 or time.perf_counter() - t0 < seconds:
            h = self.hists[s : s + size] or self.hists[:size]
            self.model.recommend(h, self.k, beam=self.beam, exclude=h)
            n, s = n + len(h), (s + size) % len(self.hists)
        self.cpu_ms.append((time.process_time() - c0) * 1e3 / n)  # CPU per user, all threads
        return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=10.0, help="duration of each concurrency level")
    ap.add_argument("--levels", default="1,8,32,64")
    ap.add_argument("--K", type=int, default=16, help="codes per level")
    ap.add_argument("--L", type=int, default=4, help="code levels")
    ap.add_argument("--beam", type=int, default=10)
    ap.add_argument("--n-layer", type=int, default=2, help="GPT-2 layers of the served model")
    ap.add_argument("--n-embd", type=int, default=64, help="GPT-2 width of the served model")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--max-batch", type=int, default=32)
    ap.add_argument("--max-wait-ms", type=float, default=5.0)
    ap.add_argument("--max-gap-ms", type=float, default=None, help="the server's --max-gap-ms (default: none)")
    ap.add_argument("--decode-workers", type=int, default=0,
                    help="the server's decode threads (`semid serve --decode-workers`; 0 = its default)")
    ap.add_argument("--threads", default="auto", help="auto (semid's policy, what `semid serve` does) or a torch "
                    "thread count for the server and offline decoding alike")
    ap.add_argument("--duration", type=float, default=0.0, help="seconds of the memory-flatness phase (0: none)")
    ap.add_argument("--flat-clients", type=int, default=32, help="concurrent clients of the memory phase")
    ap.add_argument("--run-dir", type=Path, default=None, help="reuse a run trained by an earlier call")
    args = ap.parse_args()
    levels = [int(x) for x in args.levels.split(",") if x.strip()]
    if args.threads != "auto" and not args.threads.isdigit():
        raise SystemExit(f"--threads={args.threads!r}: use auto or a positive integer")

    tmp = Path(tempfile.mkdtemp(prefix="bench_serve_"))
    run_dir = args.run_dir or tmp / "run"
    if not (run_dir / "metrics.json").is_file():  # a finished run writes its metrics last
        t0 = time.perf_counter()
        train_run(run_dir, args)
        print(f"trained the tiny run in {time.perf_counter() - t0:.1f} s -> {run_dir}")

    from semid.pipeline.restore import load_run

    loaded = load_run(run_dir)
    test = loaded.split.test
    ids = loaded.dataset.catalog.item_ids
    hists = [test.histories.seq(u) for u in range(len(test))]
    bodies = [json.dumps({"history": ids[h].tolist(), "k": args.k}).encode() for h in hists]
    del loaded
    beam = max(args.beam, args.k)
    offline = Offline(run_dir, hists, beam, args.k, args.max_batch, args.threads)
    off_before = offline.users_per_s(args.seconds)
    offline_runs = [off_before]
    print(f"offline batched recommend before serving: {off_before:.1f} users/s "
          f"(load average {os.getloadavg()[0]:.1f})", flush=True)

    port = free_port()
    env = {**os.environ, "SEMID_NO_PROGRESS": "1"}
    for var in ("SEMID_API_KEY", "OMP_NUM_THREADS", "SEMID_THREADS"):
        env.pop(var, None)
    if args.threads != "auto":
        env["SEMID_THREADS"] = args.threads
    cmd = [sys.executable, "-m", "semid.cli.main", "serve", str(run_dir), "--host", HOST, "--port", str(port),
           "--max-batch", str(args.max_batch), "--max-wait-ms", str(args.max_wait_ms), "--no-access-log",
           "--decode-workers", str(args.decode_workers)]
    if args.max_gap_ms is not None:
        cmd += ["--max-gap-ms", str(args.max_gap_ms)]
    server = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.perf_counter() + 120
        while True:  # bounded wait for the port
            if server.poll() is not None:
                raise SystemExit(f"server exited: {server.stderr.read().decode()[-2000:]}")
            try:
                socket.create_connection((HOST, port), timeout=1).close()
                break
            except OSError:
                if time.perf_counter() > deadline:
                    raise SystemExit("server did not start within 120 s") from None
                time.sleep(0.5)
        asyncio.run(drive(port, bodies[:64], 4, 2.0, args.k))  # warm-up
        rows = []
        for c in levels:
            rss0, _ = rss_mb(server.pid)
            cpu0 = (cpu_s(server.pid), cpu_s(os.getpid()))
            res = asyncio.run(drive(port, bodies, c, args.seconds, args.k))
            res["rss0"], (res["rss1"], res["peak"]) = rss0, rss_mb(server.pid)
            # CPU per request of the server (HTTP + decode) and of this process (the clients): where the
            # cores went; served req/s can be at most cores / (their sum)
            n_req = max(res["requests"], 1)
            res["cpu_ms"] = tuple((cpu_s(p) - c0) * 1e3 / n_req for p, c0 in zip((server.pid, os.getpid()), cpu0,
                                                                                  strict=True))
            rows.append(res)
            res["load"] = os.getloadavg()[0]
            # offline again right after each level (server idle): a level's ratio uses the offline figures
            # measured just before and just after it, so a load swing on a shared machine hits both sides
            res["off"] = (offline_runs[-1], offline.users_per_s(args.seconds))
            offline_runs.append(res["off"][1])
            print(f"clients {c:3d}: {res['rps']:7.1f} req/s  p50 {res['p50']:7.1f} ms  p90 {res['p90']:7.1f} ms  "
                  f"p99 {res['p99']:7.1f} ms  errors {res['errors']}/{res['requests']}  "
                  f"RSS {res['rss0']:.0f} -> {res['rss1']:.0f} MiB (peak {res['peak']:.0f})  load {res['load']:.1f}  "
                  f"CPU ms/request server {res['cpu_ms'][0]:.2f} clients {res['cpu_ms'][1]:.2f}",
                  flush=True)
        flat = None
        if args.duration > 0:
            flat = asyncio.run(drive(port, bodies, args.flat_clients, args.duration, args.k, rss_pid=server.pid))
            flat["off"] = (offline_runs[-1], offline.users_per_s(args.seconds))
            offline_runs.append(flat["off"][1])
            print(f"memory phase, {args.flat_clients} clients for {args.duration:g} s: {flat['rps']:.1f} req/s, "
                  f"p50 {flat['p50']:.1f} ms, p99 {flat['p99']:.1f} ms, errors {flat['errors']}/{flat['requests']}",
                  flush=True)
            print(memory_report(flat["rss"]), flush=True)
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
    print(f"offline batched recommend ({Offline.PER_CALL} batches of {args.max_batch} per call, beam {beam}, "
          f"{args.threads} threads), users/s "
          f"before the first level and after each: {', '.join(f'{x:.1f}' for x in offline_runs)} (load average "
          f"{os.getloadavg()[0]:.1f}); a level's ratio uses the mean of the two around it; CPU "
          f"{np.median(offline.cpu_ms[1:]):.2f} ms/user (median)")
    for r in rows + ([flat] if flat is not None else []):
        r["ratio"] = r["rps"] / (sum(r["off"]) / 2)
        print(f"clients {r['clients']:3d}{' (memory phase)' if r is flat else ''}: served / offline = "
              f"{r['ratio']:.2f}   p99 / p50 = {r['p99'] / r['p50']:.1f}")
    at32 = [r for r in rows if r["clients"] == 32] + ([flat] if flat is not None and args.flat_clients == 32 else [])
    for r in at32[:1]:
        ratio, tail = r["ratio"], r["p99"] / r["p50"]
        print(f"TARGET served / offline at 32 clients: {ratio:.2f} (>= 0.7: {'met' if ratio >= 0.7 else 'MISSED'}); "
              f"p99 / p50 {tail:.1f} (<= 3: {'met' if tail <= 3 else 'MISSED'}); "
              f"errors {r['errors']} (0: {'met' if r['errors'] == 0 else 'MISSED'})")
    print(f"model: GPT-2 {args.n_layer}x{args.n_embd}, L={args.L}, K={args.K}, {len(ids)} items, beam {args.beam}, k {args.k}; "
          f"max_batch {args.max_batch}, max_wait {args.max_wait_ms} ms, max_gap {'off' if args.max_gap_ms is None else f'{args.max_gap_ms} ms'}, decode workers "
          f"{args.decode_workers or 'default'}; {args.seconds:g} s per level")


if __name__ == "__main__":
    main()
