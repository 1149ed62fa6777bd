"""benchmarks/gpu_check.py: the CPU smoke version of the GPU-readiness check runs its paths end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _gpu_check():
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import gpu_check
    finally:
        sys.path.pop(0)
    return gpu_check


def test_gpu_check_smoke_on_cpu(tmp_path, monkeypatch):
    """One model case through the real pipeline, in process, at the smallest sizes; the JSON records it."""
    monkeypatch.setenv("SEMID_NO_PROGRESS", "1")
    out = tmp_path / "gc.json"
    code = _gpu_check().main(["--device", "cpu", "--quick", "--only", "sasrec", "--no-decode", "--json", str(out)])
    report = json.loads(out.read_text())
    assert code == 0 and report["ok"] and report["device"] == "cpu" and "pytest_gpu" not in report
    (run,) = report["runs"]
    assert run["case"] == "sasrec" and run["ok"] and 0.0 <= run["metrics"]["HR@10"] <= 1.0


@pytest.mark.slow
def test_gpu_check_with_bench_decode_on_cpu(tmp_path):
    """The script as the GPU machine runs it (subprocess, bench_decode included), CPU-sized."""
    out = tmp_path / "gc.json"
    cmd = [sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--device", "cpu", "--quick",
           "--only", "sasrec", "--decode-users", "4", "--json", str(out)]
    env = {**os.environ, "SEMID_NO_PROGRESS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    try:
        p = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=180, env=env)
    except subprocess.TimeoutExpired:
        pytest.skip("gpu_check --quick took over 180 s on this (loaded) machine")
    assert p.returncode == 0, p.stdout + p.stderr
    dec = json.loads(out.read_text())["bench_decode"]
    assert dec["ok"] and dec["users_per_s"]["ours, lean step"] > 0 and "HF generate + prefix" in dec["users_per_s"]


def test_gpu_check_refuses_cuda_without_a_gpu_and_unknown_cases():
    gpu_check = _gpu_check()
    import torch

    if not torch.cuda.is_available():
        assert gpu_check.main(["--device", "cuda"]) == 2
    assert gpu_check.main(["--device", "cpu", "--quick", "--only", "nope"]) == 2
