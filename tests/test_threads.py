"""Thread policy: wait policy set unless the user chose one, thread-count precedence, CLI entry, record."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
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
    assert {"torch_threads", "threads_source", "omp_wait_policy", "small_op_threads", "small_op_threads_used"} <= set(env)


def test_small_op_policy_with_faked_load_and_cores():
    # one thread per core no other process runs on, between 1 and 2
    assert threads.choose_small_op_threads(2, 0) == 2
    assert threads.choose_small_op_threads(2, 1) == 1  # one competitor on a 2-core machine: 1 thread
    assert threads.choose_small_op_threads(2, 5) == 1
    assert threads.choose_small_op_threads(1, 0) == 1
    assert threads.choose_small_op_threads(16, 3) == 2  # never more than the cap
    assert threads.choose_small_op_threads(16, 15) == 1
    assert threads.choose_small_op_threads(8, None) == 2  # load unknown (non-Linux)
    # other_runnable: minimum over samples of (system running - own running): a blip does not count
    seq = iter([3, 6, 3])
    assert threads.other_runnable(lambda: next(seq), lambda: 2, gap_s=0) == 1
    assert threads.other_runnable(lambda: 1, lambda: 2, gap_s=0) == 0
    assert threads.other_runnable(lambda: None, lambda: 1, gap_s=0) is None
    assert threads.other_runnable() is None or threads.other_runnable() >= 0  # the real /proc reader works


def test_small_op_threads_explicit_override_wins_and_auto_rechecks(monkeypatch):
    monkeypatch.setattr(threads, "_state", {})
    monkeypatch.setattr(threads, "_small", {"checked": -1e9, "n": None, "used": {}})
    load = {"others": 1}
    kw = {"cores": 2, "others": lambda: load["others"], "environ": {}}
    assert threads.small_op_threads(now=100.0, **kw) == (1, "auto")
    load["others"] = 0
    assert threads.small_op_threads(now=100.5, **kw) == (1, "auto")  # cached within RECHECK_S
    assert threads.small_op_threads(now=101.5, **kw) == (2, "auto")  # re-read after it
    # explicit counts always win over the load: SEMID_THREADS, OMP_NUM_THREADS, --threads / set_threads
    load["others"] = 1
    assert threads.small_op_threads(now=200.0, **{**kw, "environ": {"SEMID_THREADS": "2"}}) == (2, "SEMID_THREADS")
    assert threads.small_op_threads(now=200.0, **{**kw, "environ": {"OMP_NUM_THREADS": "2"}}) == (2, "OMP_NUM_THREADS")
    monkeypatch.setattr(threads, "_state", {"threads_source": "--threads", "threads": 2})
    assert threads.small_op_threads(now=300.0, **kw) == (2, "--threads")


def test_small_ops_scope_sets_and_restores_torch_threads(monkeypatch):
    import torch

    monkeypatch.setattr(threads, "_state", {})
    monkeypatch.setattr(threads, "_small", {"checked": 1e18, "n": 1, "used": {}})  # "auto" decided 1
    monkeypatch.delenv("SEMID_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with threads.small_ops() as n:
            assert n == 1 and torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
        rec = threads.runtime_record()
        assert rec["small_op_threads"] == "auto" and rec["small_op_threads_used"] == {"1": 1}
    finally:
        torch.set_num_threads(before)


def test_beam_search_runs_at_the_small_op_count(monkeypatch):
    import torch

    from semid.decoding import PrefixIndex, beam_search

    seen = []

    class Step:  # uniform logits; records the thread count inside the search
        def start(self, batch):
            seen.append(torch.get_num_threads())
            return torch.zeros(len(batch["x"]), 8), None

        def advance(self, state, parent, tokens):
            seen.append(torch.get_num_threads())
            return torch.zeros(len(parent), 8), None

    monkeypatch.setattr(threads, "_state", {})
    monkeypatch.setattr(threads, "_small", {"checked": 1e18, "n": 1, "used": {}})
    monkeypatch.delenv("SEMID_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        idx = PrefixIndex.from_codes(np.array([[0, 4], [1, 5], [2, 6]]))
        res = beam_search(Step(), {"x": torch.zeros(2)}, idx, beam=3, k=3)
        assert sorted(res.items[0].tolist()) == [0, 1, 2]
        assert seen and set(seen) == {1} and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_whole_matrix_policy_table():
    assert threads.choose_whole_matrix_threads(2, 0, cap=2) == 2
    assert threads.choose_whole_matrix_threads(2, 1, cap=2) == 1  # one competitor on 2 cores: 1 thread
    assert threads.choose_whole_matrix_threads(2, 4, cap=2) == 1
    assert threads.choose_whole_matrix_threads(16, 3, cap=16) == 13  # no small-op cap: the free cores
    assert threads.choose_whole_matrix_threads(16, 0, cap=4) == 4  # never above the count at entry
    assert threads.choose_whole_matrix_threads(8, None, cap=8) == 8  # load unknown: keep the count


def _auto_threads(monkeypatch):
    monkeypatch.setattr(threads, "_state", {})
    monkeypatch.setattr(threads, "_whole", {"used": {}, "tasks": {}})
    monkeypatch.delenv("SEMID_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)


def test_whole_matrix_rebalances_with_the_load_and_restores(monkeypatch):
    import torch

    _auto_threads(monkeypatch)
    load, now = [1], [100.0]
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with threads.whole_matrix(cores=2, others=lambda: load[0], clock=lambda: now[0]) as rebalance:
            assert rebalance() == 1 and torch.get_num_threads() == 1  # a competitor: one thread
            load[0] = 0
            now[0] += threads.RECHECK_S / 2
            assert rebalance() == 1  # not re-read within RECHECK_S
            now[0] += threads.RECHECK_S
            assert rebalance() == 2  # the competitor left: both cores again
            with threads.whole_matrix(cores=2, others=lambda: 0, clock=lambda: now[0]) as inner:
                assert inner() == 2
            load[0] = 1
            now[0] += threads.RECHECK_S
            assert rebalance() == 1
            with threads.whole_matrix(cores=2, others=lambda: 0, clock=lambda: now[0]) as inner:
                assert inner() == 2  # a nested block's ceiling is the outermost entry count, not 1
            assert torch.get_num_threads() == 1  # the inner block restored the outer's count
        assert torch.get_num_threads() == 2  # and the outer block the count at entry
        assert threads.runtime_record()["whole_matrix_threads_used"] == {"1": 3, "2": 3}
        # an explicit count is never changed by the load
        monkeypatch.setattr(threads, "_state", {"threads_source": "--threads", "threads": 2})
        with threads.whole_matrix(cores=2, others=lambda: 1) as rebalance:
            assert rebalance() == 2
        monkeypatch.setattr(threads, "_state", {})
        monkeypatch.setenv("SEMID_THREADS", "2")
        with threads.whole_matrix(cores=2, others=lambda: 1) as rebalance:
            assert rebalance() == 2
    finally:
        torch.set_num_threads(before)


def test_training_and_kmeans_steps_run_at_one_thread_per_free_core(monkeypatch):
    """With another process busy on one of 2 cores, training steps and k-means passes drop to one thread
    (a team sharing a core with a competitor waits for it at every barrier); the count is restored after."""
    import torch
    from torch import nn

    from semid.quantize.kmeans import KMeans, KMeansConfig
    from semid.train.loop import TrainConfig, Trainer

    _auto_threads(monkeypatch)
    monkeypatch.setattr(threads, "other_runnable", lambda: 1)
    monkeypatch.setattr(threads, "available_cores", lambda: 2)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    seen = []

    def loss_fn(model, b):
        seen.append(torch.get_num_threads())
        return ((model(b["x"]) - b["x"]) ** 2).mean()

    try:
        x = torch.randn(64, 4, generator=torch.Generator().manual_seed(0))
        cfg = TrainConfig(epochs=2, batch_size=16, lr=1e-2, warmup_steps=0, progress=False, device="cpu")
        Trainer(cfg).fit(nn.Linear(4, 4), lambda e, rng: ({"x": x[i : i + 16]} for i in range(0, 64, 16)), loss_fn)
        assert seen == [1] * 8 and torch.get_num_threads() == 2
        KMeans(4, config=KMeansConfig(n_iter=3)).fit(x)
        assert torch.get_num_threads() == 2
        used = threads.runtime_record()["whole_matrix_threads_used"]
        assert set(used) == {"1"} and used["1"] > 8  # the k-means seeding steps and passes ran at 1 too
    finally:
        torch.set_num_threads(before)


def test_task_plan_table():
    assert threads.task_plan(5, 2) == (2, 1)  # 2 cores: two one-thread workers
    assert threads.task_plan(5, 1) == (1, 1)  # one thread: the tasks run one after another
    assert threads.task_plan(5, 16) == (5, 3)  # more threads than tasks: the rest inside each worker
    assert threads.task_plan(1, 8) == (1, 8)
    assert threads.task_plan(3, 0) == (1, 1)


def test_independent_tasks_run_side_by_side_pinned_and_restore(monkeypatch):
    """Two tasks that each wait for the other can only finish if they run at once; inside, the workers
    keep one intra-op thread each whatever the load says, and the count at entry comes back after."""
    import threading

    import torch

    _auto_threads(monkeypatch)
    monkeypatch.setattr(threads, "other_runnable", lambda: 0)
    monkeypatch.setattr(threads, "available_cores", lambda: 2)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    meet = threading.Barrier(2, timeout=10)

    def task(i):
        meet.wait()  # raises BrokenBarrierError if the two tasks ran one after another
        with threads.whole_matrix() as rebalance:
            n = rebalance()  # idle machine, but pinned: no change
        return i, n, torch.get_num_threads(), threading.get_ident()

    try:
        with threads.independent_tasks(2) as run:
            out = run(task, [0, 1])
        assert [o[0] for o in out] == [0, 1]  # results in input order
        assert [o[1:3] for o in out] == [(1, 1), (1, 1)]
        assert out[0][3] != out[1][3]
        assert torch.get_num_threads() == 2
        assert threads.runtime_record()["independent_tasks"] == {"2x1": 1}
        # an explicit single thread: the tasks run in order in this thread
        monkeypatch.setenv("SEMID_THREADS", "1")
        with threads.independent_tasks(2) as run:
            assert run(lambda i: threading.get_ident(), [0, 1]) == [threading.get_ident()] * 2
    finally:
        torch.set_num_threads(before)


def test_pinned_holds_the_count_on_every_path_and_restores(monkeypatch):
    """Inside pinned(1) neither small_ops() nor whole_matrix() follows the load (worker pools would fight
    over the process-wide count); after it the load-following policy is back."""
    import torch

    _auto_threads(monkeypatch)
    monkeypatch.setattr(threads, "other_runnable", lambda: 0)
    monkeypatch.setattr(threads, "available_cores", lambda: 2)
    # small_ops() sees an idle 2-core machine: a cached count of 2, not re-read during the test
    monkeypatch.setattr(threads, "_small", {"checked": time.monotonic() + 1e6, "n": 2, "used": {}})
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with threads.pinned(1):
            with threads.small_ops() as n:
                assert n == 1 and torch.get_num_threads() == 1  # idle machine, still 1
            with threads.whole_matrix() as rebalance:
                assert rebalance() == 1
        assert torch.get_num_threads() == 2
        with threads.small_ops() as n:
            assert n == 2
    finally:
        torch.set_num_threads(before)


def test_pinned_worker_keeps_its_count_when_its_starter_sets_another_before_its_first_op():
    """torch reads a new thread's count at its first parallel op from the last count any thread set: a
    worker that pinned itself, then waited while its starter restored 2 (the service's decoders), must still
    run at 1, or every GEMM of its decode forks a two-thread team."""
    import threading

    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    pinned, go, seen = threading.Event(), threading.Event(), []

    def worker():
        threads.pin_this_thread(1)
        pinned.set()
        go.wait(10)
        x = torch.randn(64, 64)
        torch.softmax(x @ x, dim=-1)  # parallel ops: where torch would read the count lazily
        seen.append(torch.get_num_threads())

    t = threading.Thread(target=worker)
    try:
        t.start()
        assert pinned.wait(10)
        torch.set_num_threads(2)  # the starter restores its own count
        go.set()
        t.join(10)
        assert seen == [1]
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
