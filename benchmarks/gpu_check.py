"""Is semid GPU-ready? One script, under 8 minutes on one GPU:

1. the CUDA-marked tests (``pytest -m gpu``);
2. every model (gpt2, t5, musicrec_gen, sasrec, gru4rec) and tokenizer (fusid, rqvae, musicrec, rqkmeans)
   through the real pipeline (``semid.pipeline.runner.run``: features, tokenizer fit, model training, beam
   search evaluation) on a tiny built-in synthetic dataset, with bf16 on, then once more with
   ``torch.compile`` (CUDA only: the Trainer compiles only there);
3. ``benchmarks/bench_decode.py`` at batch 256: semid's constrained beam search against transformers'
   ``generate`` (same weights, top-k checked identical first).

Every step is timed and its outcome (ok / the error's last line) recorded; the figures go to
``$OUT/gpu_check.json`` when ``OUT`` is set (else ``--json``). ``--device cpu --quick`` is the CPU smoke
version (no pytest, no compile, the smallest sizes) that ``tests/test_gpu_check.py`` runs.

    python benchmarks/gpu_check.py --device cuda                 # on the GPU machine
    python benchmarks/gpu_check.py --device cpu --quick --only sasrec --decode-users 8
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

# Tiny synthetic Amazon-format dataset: users walk the item ring, two code-tuple modalities per item
# ("lemb" as text, "vemb" as image), so no text encoder or download is needed on an offline GPU machine.


def write_tiny_dataset(folder: Path, *, n_items: int, n_users: int, seed: int = 0) -> Path:
    d = folder / "Tiny"
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    inter = {str(u): [(int(s) + t) % n_items for t in range(int(n))]
             for u, (s, n) in enumerate(zip(rng.integers(n_items, size=n_users), rng.integers(5, 12, size=n_users),
                                            strict=True))}
    (d / "Tiny.inter.json").write_text(json.dumps(inter))
    (d / "Tiny.index_lemb.json").write_text(json.dumps({str(i): [f"<a_{i // 8}>", f"<b_{i % 8}>"]
                                                        for i in range(n_items)}))
    (d / "Tiny.index_vemb.json").write_text(json.dumps({str(i): [f"<c_{i % 5}>", f"<d_{(i // 5) % 7}>"]
                                                        for i in range(n_items)}))
    return d


_GEN = {"gpt2": {"gpt2.n_embd": 32, "gpt2.n_layer": 1, "gpt2.beam": 8, "gpt2.valid_beam": 4},
        "t5": {"t5.d_model": 32, "t5.d_ff": 64, "t5.num_layers": 1, "t5.num_decoder_layers": 1, "t5.beam": 8,
               "t5.valid_beam": 4},
        "musicrec_gen": {"musicrec_gen.max_targets_per_user": 3, "musicrec_gen.t5.d_model": 32,
                         "musicrec_gen.t5.d_ff": 64, "musicrec_gen.t5.num_layers": 1,
                         "musicrec_gen.t5.num_decoder_layers": 1, "musicrec_gen.t5.valid_users": 8, "musicrec_gen.t5.beam": 4,
                         "musicrec_gen.t5.valid_beam": 4}}
_RQ = {"n_codes": 8, "epochs": 3, "batch_size": 64, "hidden": "16", "latent_dim": 8}

# name -> (overrides, the tokenizer's section holding bf16 / compile fields, or None: RQ-KMeans has no gradient
# steps, and "none" no tokenizer)
CASES: dict[str, tuple[dict, str | None]] = {
    "fusid+gpt2": ({"tokenizer": "fusid", "fusid.pq.n_sub": 3, "fusid.pq.K": 8, "fusid.fusion.d_sub": 8,
                    "fusid.fusion.hidden": 32, "fusid.training.epochs": 2, "fusid.training.progress": False,
                    "fusid.pairs_per_epoch": 64, "model": "gpt2", **_GEN["gpt2"]}, "fusid.training"),
    "rqkmeans+t5": ({"tokenizer": "rqkmeans", "rqkmeans.modality": "lemb", "rqkmeans.n_codes": [4, 4],
                     "model": "t5", **_GEN["t5"]}, None),
    "rqvae(tiger)+musicrec_gen": ({"tokenizer_preset": "tiger", "rqvae.modality": "lemb", "model": "musicrec_gen",
                                   **{f"rqvae.{k}": v for k, v in _RQ.items()}, **_GEN["musicrec_gen"]}, "rqvae"),
    "musicrec+musicrec_gen": ({"tokenizer_preset": "musicrec", "musicrec.text_modality": "lemb",
                               "musicrec.image_modality": "vemb", "musicrec.alpha": 0.0, "musicrec.beta": 0.0,
                               "model": "musicrec_gen", **{f"musicrec.{k}": v for k, v in _RQ.items()},
                               **_GEN["musicrec_gen"]}, "musicrec"),
    "sasrec": ({"tokenizer": "none", "model": "sasrec", "sasrec.hidden": 16, "sasrec.n_layers": 1}, None),
    "gru4rec": ({"tokenizer": "none", "model": "gru4rec"}, None),
}


def run_case(name: str, dataset: Path, out_dir: Path, *, device: str, compile_: bool, epochs: int) -> dict:
    """One pipeline run of case ``name``; returns its figures (seconds, metrics or the error)."""
    import torch

    from semid.pipeline.presets import resolve
    from semid.pipeline.runner import run

    overrides, tok_section = CASES[name]
    ov = {"data.dataset": str(dataset), "data.max_history": 20, "device": device, "seed": 0, "name": "gpu-check",
          "train.epochs": epochs, "train.batch_size": 32, "train.warmup_steps": 2, "train.progress": False,
          "train.bf16": True, "train.compile": compile_, **overrides}
    if tok_section is not None:
        ov |= {f"{tok_section}.bf16": True, f"{tok_section}.compile": compile_}
    rec: dict = {"case": name, "device": device, "bf16": True, "compile": compile_}
    t0 = time.perf_counter()
    try:
        if device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        res = run(resolve(None, ov), out_dir / f"{name}{'-compile' if compile_ else ''}".replace("(", "_").replace(")", ""))
        rec["ok"] = True
        rec["metrics"] = {k: v for k, v in (res.get("test") or res.get("metrics") or {}).items()
                          if isinstance(v, int | float)} if isinstance(res, dict) else {}
        if device.startswith("cuda"):
            rec["peak_gpu_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    except Exception as e:  # record and go on: the report should show every broken path at once
        rec["ok"] = False
        rec["error"] = f"{type(e).__name__}: {e}"
        rec["traceback_tail"] = traceback.format_exc().strip().splitlines()[-6:]
    rec["seconds"] = round(time.perf_counter() - t0, 2)
    return rec


def run_gpu_tests(timeout: int) -> dict:
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider", "tests"],
                       cwd=REPO, capture_output=True, text=True, timeout=timeout)
    tail = (p.stdout + p.stderr).strip().splitlines()
    return {"ok": p.returncode in (0, 5), "returncode": p.returncode, "summary": tail[-1] if tail else "",
            "seconds": round(time.perf_counter() - t0, 2)}


def run_bench_decode(device: str, *, users: int, batch: int, items: int, timeout: int) -> dict:
    t0 = time.perf_counter()
    cmd = [sys.executable, str(REPO / "benchmarks" / "bench_decode.py"), "--device", device, "--users", str(users),
           "--batch", str(batch), "--items", str(items), "--check", str(min(8, users)), "--repeats", "1"]
    p = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    lines = (p.stdout + p.stderr).strip().splitlines()
    users_s = {}
    for ln in lines:
        if ":" in ln and "users/s" in ln:
            label, rest = ln.split(":", 1)
            users_s[label.strip()] = float(rest.split("users/s")[0])
    return {"ok": p.returncode == 0, "command": " ".join(cmd[1:]), "users_per_s": users_s,
            "output": lines[-12:], "seconds": round(time.perf_counter() - t0, 2)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda", help="cuda (the check) | cpu (smoke run of the same paths)")
    ap.add_argument("--quick", action="store_true", help="smallest sizes; no pytest, no torch.compile run")
    ap.add_argument("--only", default="", help="comma-separated case names (default: all of " + ", ".join(CASES) + ")")
    ap.add_argument("--decode-users", type=int, default=None, help="bench_decode users (default 256; --quick 8)")
    ap.add_argument("--no-decode", action="store_true", help="skip bench_decode")
    ap.add_argument("--json", default=None, help="where to write the figures (default $OUT/gpu_check.json)")
    args = ap.parse_args(argv)
    os.environ.setdefault("SEMID_NO_PROGRESS", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("gpu_check: --device cuda but torch.cuda.is_available() is False; use --device cpu --quick to smoke-test")
        return 2
    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(CASES)
    unknown = sorted(set(names) - set(CASES))
    if unknown:
        print(f"gpu_check: unknown case(s) {unknown}; valid: {list(CASES)}")
        return 2
    report: dict = {"device": args.device, "quick": args.quick, "torch": torch.__version__,
                    "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
                    "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
    t_all = time.perf_counter()
    if not args.quick:
        report["pytest_gpu"] = run_gpu_tests(timeout=150)
        print("pytest -m gpu:", report["pytest_gpu"]["summary"], flush=True)
    old_cache = os.environ.get("SEMID_CACHE")
    with tempfile.TemporaryDirectory(prefix="semid-gpu-check-") as tmp:
        tmp = Path(tmp)
        os.environ["SEMID_CACHE"] = str(tmp / "cache")  # encoder / item2vec caches stay inside the check
        n_items, n_users = (24, 40) if args.quick else (120, 200)
        data = write_tiny_dataset(tmp, n_items=n_items, n_users=n_users)
        report["dataset"] = {"items": n_items, "users": n_users}
        runs = []
        for name in names:
            for compile_ in (False,) if (args.quick or not args.device.startswith("cuda")) else (False, True):
                rec = run_case(name, data, tmp / "runs", device=args.device, compile_=compile_, epochs=1 if args.quick else 2)
                runs.append(rec)
                print(f"{name:28s} compile={compile_!s:5s} {'ok' if rec['ok'] else 'FAILED'} {rec['seconds']:7.1f}s "
                      f"{rec.get('error', '')}", flush=True)
        report["runs"] = runs
    if old_cache is None:  # main() also runs in process (tests): leave the caller's environment as it was
        os.environ.pop("SEMID_CACHE", None)
    else:
        os.environ["SEMID_CACHE"] = old_cache
    if not args.no_decode:
        users = args.decode_users or (8 if args.quick else 256)
        batch = min(256, users)
        report["bench_decode"] = run_bench_decode(args.device, users=users, batch=batch,
                                                  items=200 if args.quick else 5000, timeout=240)
        print("bench_decode:", report["bench_decode"]["users_per_s"] or report["bench_decode"]["output"][-3:],
              flush=True)
    report["seconds"] = round(time.perf_counter() - t_all, 1)
    report["ok"] = all(r["ok"] for r in report["runs"]) and all(
        report[k]["ok"] for k in ("pytest_gpu", "bench_decode") if k in report)
    dest = args.json or (str(Path(os.environ["OUT"]) / "gpu_check.json") if os.environ.get("OUT") else None)
    if dest:
        Path(dest).parent.mkdir(parents=True, exist_ok=True)
        Path(dest).write_text(json.dumps(report, indent=2))
        print("figures ->", dest)
    print(f"gpu_check: {'ALL OK' if report['ok'] else 'FAILURES'} in {report['seconds']} s")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
