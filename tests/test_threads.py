"""Thread policy: wait policy set unless the user chose one, thread-count precedence, CLI entry, record."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from semid import threads
from semid.errors import ConfigError


def test_wait_policy_passive_unless_user_set():
    env: dict[str, str] = {}
    assert threads.apply_wait_policy(env) == "PASSIVE" and env["OMP_WAIT_POLICY"] == "PASSIVE"
    env = {"OMP_WAIT_POLICY": "ACTIVE"}
    assert threads.apply_wait_policy(env) == "ACTIVE" and env["OMP_WAIT_POLICY"] == "ACTIVE"


def test_thread_count_precedence_and_bad_values():
    assert threads.resolve_threads(3, {"SEMID_THREADS": "1"}) == (3, "--threads")
    assert threads.resolve_threads(None, {"SEMID_THREADS": " 2 "}) == (2, "SEMID_THREADS")
    assert threads.resolve_threads(None, {}) == (None, "torch default")
    with pytest.raises(ConfigError, match="SEMID_THREADS='two'"):
        threads.resolve_threads(None, {"SEMID_THREADS": "two"})
    with pytest.raises(ConfigError, match="SEMID_THREADS='0'"):
        threads.resolve_threads(None, {"SEMID_THREADS": "0"})
    with pytest.raises(ConfigError, match="--threads=0"):
        threads.resolve_threads(0, {})
    assert threads.available_cores() >= 1


def _cli(args: list[str], env_extra: dict[str, str]) -> subprocess.CompletedProcess:
    # A fresh interpreter: the policy must be in place before torch loads, which a test process is past.
    code = (
        "import sys, json\n"
        "from semid.cli.main import app\n"
        "try:\n"
        f"    app({args!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        "import os, torch\n"
        "from semid.threads import runtime_record\n"
        "print(json.dumps(runtime_record()))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "SEMID_THREADS")}
    env.update(env_extra)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)


def test_cli_entry_sets_policy_before_torch_and_threads_override():
    out = _cli(["--threads", "1", "presets"], {})
    assert out.returncode == 0, out.stderr
    rec = json.loads(out.stdout.strip().splitlines()[-1])
    assert rec["torch_threads"] == 1 and rec["threads_source"] == "--threads"
    assert rec["omp_wait_policy"] == "PASSIVE" and rec["omp_wait_policy_before_torch"] is True
    out = _cli(["presets"], {"SEMID_THREADS": "1", "OMP_WAIT_POLICY": "ACTIVE"})
    rec = json.loads(out.stdout.strip().splitlines()[-1])
    assert rec["torch_threads"] == 1 and rec["threads_source"] == "SEMID_THREADS"
    assert rec["omp_wait_policy"] == "ACTIVE"  # the user's choice is kept


def test_cli_bad_thread_env_is_a_one_line_error():
    out = _cli(["presets"], {"SEMID_THREADS": "lots"})
    assert "SEMID_THREADS='lots'" in out.stdout + out.stderr


def test_runtime_environment_records_thread_policy():
    from semid.pipeline.runner import runtime_environment

    env = runtime_environment()
    assert {"torch_threads", "threads_source", "omp_wait_policy"} <= set(env)
