"""Thread policy: how many intra-op threads torch uses and how idle OpenMP threads wait.

Why: torch's OpenMP threads busy-wait (spin) between parallel regions by default. On a machine whose
cores are shared with another process, a spinning thread holds a core the other process needs and a
descheduled thread stalls every barrier of its team, so N threads can run many times slower than one.
With ``OMP_WAIT_POLICY=PASSIVE`` idle threads sleep instead, and N threads stay at least as fast as one.
OpenMP reads the variable once, when the runtime loads (``import torch``), so it is set here before
torch is imported: the ``semid`` command does it at entry; library users who import torch themselves
set it in the environment (``OMP_WAIT_POLICY=PASSIVE python ...``) or call ``apply_wait_policy()``
first thing. A value the user set is never overridden.

Thread count, first that is set: ``--threads N`` on the command line, the ``SEMID_THREADS`` environment
variable, else torch's own default (``OMP_NUM_THREADS`` if set, else the physical cores). With the
passive wait policy that default holds up under contention for every stage measured by
``benchmarks/bench_contention.py``, so no path lowers it. What was chosen is recorded in each run's
``summary.json`` (``environment``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import MutableMapping

ENV_THREADS = "SEMID_THREADS"  # intra-op thread count when --threads is not given
ENV_WAIT = "OMP_WAIT_POLICY"  # OpenMP idle-thread policy; semid sets PASSIVE unless the user set it
DEFAULT_WAIT = "PASSIVE"

_state: dict[str, object] = {}  # what apply() decided, for runtime_record()


def available_cores() -> int:
    """Cores this process may run on (CPU affinity where the OS exposes it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS / Windows
        return os.cpu_count() or 1


def apply_wait_policy(environ: MutableMapping[str, str] | None = None) -> str:
    """Set ``OMP_WAIT_POLICY=PASSIVE`` unless already set; returns the policy now in the environment.

    Effective only before torch (or another OpenMP library) is first imported in this process.
    """
    env = os.environ if environ is None else environ
    if not env.get(ENV_WAIT):
        env[ENV_WAIT] = DEFAULT_WAIT
        _state["wait_policy_source"] = "semid default"
    else:
        _state.setdefault("wait_policy_source", "user")
    if environ is None:
        _state["wait_policy_before_torch"] = "torch" not in sys.modules
    return env[ENV_WAIT]


def resolve_threads(
    cli_threads: int | None = None, environ: MutableMapping[str, str] | None = None
) -> tuple[int | None, str]:
    """(thread count, where it came from): ``--threads`` > ``SEMID_THREADS`` > None (torch's default).

    Raises ConfigError naming the option or variable when the value is not a positive integer.
    """
    from semid.errors import ConfigError

    env = os.environ if environ is None else environ
    if cli_threads is not None:
        if cli_threads < 1:
            raise ConfigError(f"--threads={cli_threads}: use a positive thread count")
        return int(cli_threads), "--threads"
    raw = env.get(ENV_THREADS, "").strip()
    if raw:
        try:
            n = int(raw)
        except ValueError:
            n = 0
        if n < 1:
            raise ConfigError(f"{ENV_THREADS}={raw!r}: use a positive integer thread count, or unset it")
        return n, ENV_THREADS
    return None, "torch default"


def apply(cli_threads: int | None = None) -> int:
    """Wait policy (if torch is not imported yet), then ``torch.set_num_threads``; returns the count."""
    apply_wait_policy()
    n, source = resolve_threads(cli_threads)
    import torch

    if n is not None and torch.get_num_threads() != n:
        torch.set_num_threads(n)
    _state["threads_source"] = source
    return torch.get_num_threads()


def runtime_record() -> dict:
    """Thread settings in effect, for summary.json: count, its source, the OpenMP wait policy."""
    import torch

    return {
        "torch_threads": torch.get_num_threads(),
        "threads_source": _state.get("threads_source", "torch default"),
        "omp_wait_policy": os.environ.get(ENV_WAIT, "(unset: OpenMP default, spinning)"),
        "omp_wait_policy_before_torch": _state.get("wait_policy_before_torch", None),
    }
