"""Thread policy: how many intra-op threads torch uses and how idle OpenMP threads wait.

Why: torch's OpenMP threads busy-wait (spin) between parallel regions by default. On a machine whose
cores are shared with another process, a spinning thread holds a core the other process needs and a
descheduled thread stalls every barrier of its team, so N threads can run many times slower than one.
With ``OMP_WAIT_POLICY=PASSIVE`` idle threads sleep instead. OpenMP reads the variable once, when the
runtime loads (``import torch``), so it is set here before torch is imported: the ``semid`` command does
it at entry; library users who import torch themselves set it in the environment
(``OMP_WAIT_POLICY=PASSIVE python ...``) or call ``apply_wait_policy()`` first thing. A value the user set
is never overridden.

Thread count, first that is set: ``--threads N`` on the command line (or ``set_threads(N)`` from Python),
the ``SEMID_THREADS`` environment variable, ``OMP_NUM_THREADS``; else the policy below. An explicit count
is used by every path, small-op ones included.

Whole-matrix paths (model, fusion and RQ-VAE training steps, k-means seeding and Lloyd passes) run under
``whole_matrix()``: between steps they call the ``rebalance()`` it yields, which re-reads the load at most
once a second and sets ``clamp(cores - others, 1, threads at entry)`` (``others`` as below). Why: these ops
split well over free cores, but a team whose thread shares its core with another process waits for it
at every barrier; measured with one competing single-thread process on 2 cores, a GPT-2 epoch took
9.75 s on 2 threads and 8.53 s on 1 (idle: 6.19 s on 2). On an idle machine they keep every core. Some
kernels' float reduction order depends on the count, so a run under load can differ from an idle one in
the last bits (and hence in its IDs and metrics); ``--threads N`` pins the count on every path for a
bitwise-repeatable run, and ``summary.json`` records the counts the steps ran at.

Independent tasks -- the sub-space fits of a product quantizer, the batches of one ``recommend`` call on
CPU, the service's decode workers -- run side by side in worker threads of one intra-op thread each
(``independent_tasks``, ``pin_this_thread``) rather than one after another on a team: with no barrier between them
each worker runs whenever a core is free, so a competing process costs them a share of the cores, not a
stall per op; their results do not depend on the worker count or the load.

Small-op paths -- constrained beam decoding (``semid.decoding.beam_search``, hence ``recommend``,
evaluation and the service's decode worker) -- run under ``small_ops()``, which picks the count at the
moment they start (re-checked at most once a second): ``clamp(cores - others, 1, 2)`` where ``others`` is
the number of threads of *other* processes runnable right now (``/proc/loadavg``'s running count, minus
this process's own running threads, the minimum of three samples 0.5 ms apart so a momentary blip does not
count). Why: a decode step is a few dozen tiny ops (a (B*W, C) x (C, C) matmul, a top-k over beam x S),
each a parallel region with a barrier; measured with one competing single-thread process on 2 cores,
1 thread decoded in 1.27 s where 2 (passive) threads took 1.95 s, because each barrier waits for the
thread that shares its core with the competitor. On a free core a second thread can only help, and beyond
two threads these ops have too little work to split. The 1-minute load average is not used: it lags by
a minute and counts this process's own training threads. Where the running count cannot be read
(non-Linux), the count is ``min(2, cores)``. Each run's ``summary.json`` records (``environment``) the
source of the count, the wait policy and how many small-op calls ran at each thread count.
"""

from __future__ import annotations

import contextlib
import glob
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, MutableMapping

ENV_THREADS = "SEMID_THREADS"  # intra-op thread count when --threads is not given
ENV_WAIT = "OMP_WAIT_POLICY"  # OpenMP idle-thread policy; semid sets PASSIVE unless the user set it
DEFAULT_WAIT = "PASSIVE"

SMALL_OP_CAP = 2  # small-op paths never use more intra-op threads than this (too little work per op)
RECHECK_S = 1.0  # small_ops() re-reads the machine's load at most this often

_state: dict[str, object] = {}  # what apply() decided, for runtime_record()
_small: dict[str, object] = {"checked": -1e9, "n": None, "used": {}}  # small_ops() cache and tally
_whole: dict[str, object] = {"used": {}, "tasks": {}}  # whole_matrix() / independent_tasks() tallies
_tally_lock = threading.Lock()  # rebalance() and small_ops() run in worker threads too
_pin = threading.local()  # depth > 0: this thread is a pinned worker (pinned())


def _pinned_here() -> bool:
    return getattr(_pin, "depth", 0) > 0


def _count(table: dict, key) -> None:
    """table[key] += 1 (the tallies runtime_record() reports; worker threads update them too)."""
    with _tally_lock:
        table[key] = table.get(key, 0) + 1


def _in_order(fn: Callable, items: list) -> list:
    return [fn(item) for item in items]


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


def _read_running() -> int | None:
    """Runnable threads system-wide now (``/proc/loadavg`` field 4, "running/total"); None off Linux."""
    try:
        with open("/proc/loadavg") as f:
            return int(f.read().split()[3].split("/")[0])
    except (OSError, ValueError, IndexError):
        return None


def _read_own_running() -> int:
    """Threads of this process in state R (running or runnable), this one included."""
    n = 0
    for path in glob.glob("/proc/self/task/*/stat"):
        try:
            with open(path) as f:
                n += f.read().rsplit(")", 1)[1].split()[0] == "R"
        except (OSError, IndexError):
            continue
    return max(n, 1)


def other_runnable(
    read_running: Callable[[], int | None] = _read_running,
    read_own: Callable[[], int] = _read_own_running,
    samples: int = 3,
    gap_s: float = 0.0005,
) -> int | None:
    """Threads of other processes runnable now: min over ``samples`` of (running - own running); None if
    the running count cannot be read. The minimum keeps only work that is there in every sample."""
    seen = []
    for i in range(samples):
        total = read_running()
        if total is None:
            return None
        seen.append(max(0, total - read_own()))
        if i + 1 < samples and gap_s > 0:
            time.sleep(gap_s)
    return min(seen)


def choose_small_op_threads(cores: int, others: int | None, cap: int = SMALL_OP_CAP) -> int:
    """The small-op thread count: one per core no other process is running on, between 1 and ``cap``
    (``min(cap, cores)`` when ``others`` is unknown)."""
    return choose_whole_matrix_threads(cores, others, min(cap, cores))


def explicit_threads(environ: MutableMapping[str, str] | None = None) -> tuple[int | None, str]:
    """(count, source) of a thread count the user chose (``--threads`` / ``set_threads``, ``SEMID_THREADS``,
    ``OMP_NUM_THREADS``), else (None, "auto")."""
    if _state.get("threads_source") == "--threads" and _state.get("threads"):
        return int(_state["threads"]), "--threads"
    n, source = resolve_threads(None, environ)
    if n is not None:
        return n, source
    env = os.environ if environ is None else environ
    raw = env.get("OMP_NUM_THREADS", "").strip()
    if raw.isdigit() and int(raw) > 0:
        return int(raw), "OMP_NUM_THREADS"
    return None, "auto"


def small_op_threads(
    *,
    now: float | None = None,
    cores: int | None = None,
    others: Callable[[], int | None] = other_runnable,
    environ: MutableMapping[str, str] | None = None,
) -> tuple[int, str]:
    """(thread count, source) for a small-op path starting now; see the module docstring."""
    n, source = explicit_threads(environ)
    if n is not None:
        return n, source
    now = time.monotonic() if now is None else now
    if _small["n"] is None or now - float(_small["checked"]) >= RECHECK_S:
        _small["n"] = choose_small_op_threads(available_cores() if cores is None else cores, others())
        _small["checked"] = now
    return int(_small["n"]), "auto"


def recheck_load() -> None:
    """Make the next ``small_ops()`` read the machine's load again (benchmarks switching load phases)."""
    _small["n"] = None


@contextlib.contextmanager
def small_ops() -> Iterator[int]:
    """Run the block at the small-op thread count (``small_op_threads``), then restore the previous count."""
    import torch

    if _pinned_here():  # a pinned worker keeps the count it was given
        n = torch.get_num_threads()
        _count(_small["used"], n)  # type: ignore[arg-type]
        yield n
        return
    n, source = small_op_threads()
    prev = torch.get_num_threads()
    if n != prev:
        torch.set_num_threads(n)
    _count(_small["used"], n)  # type: ignore[arg-type]
    _small["source"] = source
    try:
        yield n
    finally:
        if n != prev:
            torch.set_num_threads(prev)


def choose_whole_matrix_threads(cores: int, others: int | None, cap: int) -> int:
    """The whole-matrix thread count: one per core no other process is running on, between 1 and ``cap``
    (``cap`` when ``others`` is unknown)."""
    free = cap if others is None else cores - others
    return max(1, min(cap, free))


@contextlib.contextmanager
def whole_matrix(
    *,
    cores: int | None = None,
    others: Callable[[], int | None] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[Callable[[], int]]:
    """Yield ``rebalance()``, to call between the block's steps: with no explicit count (``--threads``,
    ``SEMID_THREADS``, ``OMP_NUM_THREADS``) it sets torch's thread count to one per free core, at most the
    count at entry of the outermost such block, re-reading the load at most every ``RECHECK_S``; it returns
    the count in effect. The count at entry is restored on exit."""
    import torch

    used: dict = _whole["used"]  # type: ignore[assignment]
    if _pinned_here():  # a pinned worker keeps the count it was given

        def tally() -> int:
            n = torch.get_num_threads()
            _count(used, n)
            return n

        yield tally
        return
    prev = torch.get_num_threads()
    # Nested blocks (k-means inside a training step) keep the outermost block's ceiling, not the count
    # the outer block happened to pick.
    caps: list = _whole.setdefault("caps", [])  # type: ignore[assignment]
    cap = caps[0] if caps else prev
    caps.append(cap)
    explicit = explicit_threads()[0] is not None
    n_cores = available_cores() if cores is None else cores
    read_others = other_runnable if others is None else others
    checked = [-1e9]

    def rebalance() -> int:
        if not explicit:
            now = clock()
            if now - checked[0] >= RECHECK_S:
                checked[0] = now
                want = choose_whole_matrix_threads(n_cores, read_others(), cap)
                if want != torch.get_num_threads():
                    torch.set_num_threads(want)
        n = torch.get_num_threads()
        _count(used, n)
        return n

    try:
        yield rebalance
    finally:
        caps.pop()
        if torch.get_num_threads() != prev:
            torch.set_num_threads(prev)


def task_plan(n_tasks: int, budget: int) -> tuple[int, int]:
    """(workers, intra-op threads per worker) for ``n_tasks`` independent tasks on ``budget`` threads:
    as many workers as tasks fit, the rest of the budget split evenly inside each worker."""
    workers = max(1, min(n_tasks, budget))
    return workers, max(1, budget // workers)


@contextlib.contextmanager
def independent_tasks(n_tasks: int, *, small_ops: bool = False) -> Iterator[Callable[[Callable, list], list]]:
    """Yield ``run(fn, items) -> [fn(item) for item in items]`` for whole-matrix tasks that share nothing
    (the sub-space fits of a product quantizer, the batches of a beam search), run ``task_plan(n_tasks,
    budget)`` at a time in worker threads, where the budget is the explicit count if there is one, else
    torch's count at entry (``small_ops=True``: ``min(SMALL_OP_CAP, cores)``). Inside another pool's
    worker (``pinned``) the tasks run one after another in the calling thread.

    Why: one team of T intra-op threads waits at every barrier for the thread that shares its core with
    another process, so ``whole_matrix()`` drops to one thread per free core, and a stage then runs at its
    one-core speed. Independent tasks have no barrier between them: with one competitor on 2 cores, two
    one-thread workers get about 4/3 of the cores instead of 1, and on an idle machine they avoid each
    op's fork-join cost. Results do not depend on the worker count or on the load: each task runs at the
    same per-worker thread count whatever else runs. Torch ops release the GIL, so threads suffice: two
    one-thread beam-search workers decoded 1.4-1.6x the users/s of one two-thread search on 2 idle cores
    (benchmarks/RESULTS.md)."""
    import torch

    if _pinned_here():
        yield _in_order
        return
    prev = torch.get_num_threads()
    explicit = explicit_threads()[0]
    caps: list = _whole.setdefault("caps", [])  # type: ignore[assignment]
    if explicit is not None:
        budget = explicit
    elif small_ops:
        budget = min(SMALL_OP_CAP, available_cores())
    else:
        budget = caps[0] if caps else prev
    workers, per_worker = task_plan(n_tasks, budget)
    _count(_whole["tasks"], f"{workers}x{per_worker}")  # type: ignore[arg-type]
    if workers == 1:
        yield _in_order
        return
    from concurrent.futures import ThreadPoolExecutor

    try:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="semid-task",
                                initializer=pin_this_thread, initargs=(per_worker,)) as pool:
            yield lambda fn, items: list(pool.map(fn, items))
    finally:
        torch.set_num_threads(prev)  # this thread's count; also what threads started later begin with


def pin_this_thread(n: int) -> None:
    """Make the calling (worker) thread run at exactly ``n`` intra-op threads for the rest of its life: its
    ``whole_matrix()`` and ``small_ops()`` blocks keep that count instead of following the load. torch's
    OpenMP count is per thread (the calling thread's ICV; new threads start from the last count set), so
    this does not change the count of the thread that started the worker.

    torch reads a thread's count lazily, at its first parallel op, from the last count any thread set: a
    worker that pinned itself and then waited (a service's decoders before their first request) would take
    the count its starter restored meanwhile, and its GEMMs would fork two-thread teams on a core budget of
    one. ``get_num_threads()`` runs that lazy read now, while the count just set is the last one."""
    import torch

    torch.set_num_threads(n)
    if torch.get_num_threads() != n:  # another thread set a count between the two calls: set it again
        torch.set_num_threads(n)
    _pin.depth = getattr(_pin, "depth", 0) + 1


@contextlib.contextmanager
def pinned(n: int) -> Iterator[int]:
    """Run the block in this thread at exactly ``n`` intra-op threads, as a pinned worker does
    (``pin_this_thread``); the thread's count at entry comes back on exit."""
    import torch

    prev = torch.get_num_threads()
    pin_this_thread(n)
    try:
        yield n
    finally:
        _pin.depth -= 1
        torch.set_num_threads(prev)


def set_threads(n: int | None) -> int:
    """From Python: use ``n`` intra-op threads on every path (like ``--threads``); None returns to the
    policy (torch's default for whole-matrix paths, ``small_ops()`` for decoding). Returns the count."""
    import torch

    if n is None:
        _state["threads_source"], _state["threads"] = "torch default", None
        torch.set_num_threads(_state.setdefault("default_threads", torch.get_num_threads()))
        return torch.get_num_threads()
    return apply(n)


def apply(cli_threads: int | None = None) -> int:
    """Wait policy (if torch is not imported yet), then ``torch.set_num_threads``; returns the count."""
    apply_wait_policy()
    n, source = resolve_threads(cli_threads)
    import torch

    _state.setdefault("default_threads", torch.get_num_threads())  # torch's own count, before any change
    if n is not None and torch.get_num_threads() != n:
        torch.set_num_threads(n)
    _state["threads_source"], _state["threads"] = source, n
    return torch.get_num_threads()


def runtime_record() -> dict:
    """Thread settings in effect, for summary.json: count, its source, the OpenMP wait policy."""
    import torch

    return {
        "torch_threads": torch.get_num_threads(),
        "threads_source": _state.get("threads_source", "torch default"),
        "omp_wait_policy": os.environ.get(ENV_WAIT, "(unset: OpenMP default, spinning)"),
        "omp_wait_policy_before_torch": _state.get("wait_policy_before_torch", None),
        # decoding: the count's source ("auto" = clamp(cores - other runnable threads, 1, 2)) and how many
        # small-op calls (beam searches, service batches) ran at each thread count
        "small_op_threads": _small.get("source", explicit_threads()[1]),
        "small_op_threads_used": {str(k): v for k, v in sorted(_small["used"].items())},
        # training steps, k-means passes: how many ran at each thread count (whole_matrix())
        "whole_matrix_threads_used": {str(k): v for k, v in sorted(_whole["used"].items())},
        # independent tasks (product-quantizer sub-spaces, recommend batches): calls per "workers x threads each"
        "independent_tasks": dict(sorted(_whole["tasks"].items())),
    }
