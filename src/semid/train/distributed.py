"""Multi-process data-parallel training on torch.distributed: process group, ranks, batch sharding, gathers.

Every rank runs the same program on the same data and sees the same global batches; ``shard_batch``
gives each rank a disjoint contiguous slice of every global batch, so the optimisation is the one a
single process would do with that global batch. The loss runs inside ``DistributedDataParallel``
(``data_parallel``), whose reducer averages the gradients over the ranks in buckets while backward is
still running. semid's losses call model methods besides ``forward`` (``SASRecNet.item_table``, the
GPT-2 / T5 heads), so DDP wraps a module whose ``forward`` is the loss function; a parameter a batch does
not touch (an unused task head) is found by DDP's unused-parameter search. Rank 0 alone writes checkpoints,
logs and metrics; the other ranks write nothing in the run directory. Batch builders that must shard a batch
themselves (FusID's pair batches) mark it ``rank_part``; validation shards its users through
``semid.train.validation``.

Start it with ``torchrun --nproc_per_node=N -m semid run ...`` or ``semid run --nproc N`` (which calls
torchrun); gloo on CPU, nccl on CUDA (one GPU per local rank). Multi-node: torchrun's rendezvous flags,
e.g. ``torchrun --nnodes=2 --node_rank=0 --rdzv_backend=c10d --rdzv_endpoint=HOST:29500
--nproc_per_node=8 -m semid run ...`` on each node. Without torchrun's environment everything here is a
no-op for one process.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import logging
import os
import threading
import warnings
from collections.abc import Iterator

import numpy as np
import torch

from semid.errors import CheckpointError, SemidError

log = logging.getLogger(__name__)
_local = threading.local()  # ``local()`` scopes: code that must run alone on every rank


def _group_ready() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def active() -> bool:
    """Whether collectives run here: a process group of more than one rank, outside ``local()``."""
    return _group_ready() and torch.distributed.get_world_size() > 1 and not getattr(_local, "alone", False)


def world_size() -> int:
    return torch.distributed.get_world_size() if active() else 1


def rank() -> int:
    return torch.distributed.get_rank() if _group_ready() else 0


def is_main() -> bool:
    """Rank 0 (or the only process): the one that writes files and prints."""
    return rank() == 0


@contextlib.contextmanager
def local(enabled: bool = True) -> Iterator[None]:
    """Run a block as if alone: no collectives (each rank computes the same thing itself, e.g. a tokenizer fit).

    ``enabled=False`` leaves the collectives on (for a caller that fits data-parallel code the same way).
    """
    prev = getattr(_local, "alone", False)
    _local.alone = enabled or prev
    try:
        yield
    finally:
        _local.alone = prev


def init_from_env() -> bool:
    """Join the process group torchrun describes (WORLD_SIZE > 1); True when distributed.

    gloo on CPU, nccl when CUDA is available (each process on GPU ``LOCAL_RANK``). Ranks other than 0
    get no progress bars and log warnings only.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    if not _group_ready():
        cuda = torch.cuda.is_available()
        if cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        torch.distributed.init_process_group(backend="nccl" if cuda else "gloo")
    if not is_main():
        os.environ["SEMID_NO_PROGRESS"] = "1"
        logging.getLogger("semid").setLevel(logging.WARNING)
    return True


def init_local(rank: int, world: int, port: int) -> bool:
    """Join a process group of ``world`` processes on this machine (127.0.0.1:``port``) as ``rank``: what
    torchrun's environment gives ``init_from_env``, for processes started by ``torch.multiprocessing``."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    return init_from_env()


def shutdown() -> None:
    if _group_ready():
        _backward_groups.clear()
        torch.distributed.destroy_process_group()


_backward_groups: list = []  # [the process group of collectives run inside backward], made on first use


def backward_group():
    """A second process group over the same ranks, for collectives a loss runs inside its backward.

    DistributedDataParallel all-reduces gradient buckets on the default group as backward reaches them; a
    collective of the loss's own backward (``semid.tokenizers.training``'s row gather) goes through this
    group, so the two streams never interleave in an order that could differ between ranks. Collective
    itself: every rank makes its first call at the same point (a forward, before any backward).
    """
    if not _backward_groups:
        _backward_groups.append(torch.distributed.new_group(backend=torch.distributed.get_backend()))
    return _backward_groups[0]


def barrier() -> None:
    if active():
        torch.distributed.barrier()


def _device() -> torch.device:
    if torch.distributed.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


# ---------------------------------------------------------------------- sharding
def shard_range(n: int) -> tuple[int, int]:
    """This rank's contiguous slice [lo, hi) of n rows (all of them in one process)."""
    w, r = world_size(), (rank() if active() else 0)
    return r * n // w, (r + 1) * n // w


RANK_PART = "rank_part"  # batch key: the batch builder already gave this rank its own part (``rank_part``)


def rank_part(batch: dict) -> dict:
    """Mark ``batch`` as this rank's part of a global batch, built by the caller (``shard_batch`` keeps it whole).

    For batches ``shard_batch`` cannot split by rows, e.g. FusID's pair batches, whose ``x`` rows are the
    unique items that the ``pairs`` rows index: the builder shards the pairs and embeds only their items.
    The loss of each rank's part has weight 1 (the average of per-rank means, as DistributedDataParallel).
    """
    return {**batch, RANK_PART: True}


def shard_batch(batch: dict) -> tuple[dict, float]:
    """(this rank's rows of a global batch, loss weight).

    A batch shards when every tensor in it has the same leading size B (rows); rank r takes rows
    ``shard_range(B)``. The weight ``B_r * world / B`` makes the all-reduced average of the weighted
    per-rank mean losses equal the global batch's mean loss when the loss averages over rows. A
    batch whose tensors disagree on the leading size (FusID's pair batches index a table of items) is
    not split: every rank computes it whole with weight 1, which is correct but gains no speed (unless its
    builder shards it itself: ``rank_part``). A rank whose slice would be empty (B < world) computes the
    whole batch with weight 0.
    """
    if not active() or batch.get(RANK_PART):
        return batch, 1.0
    sizes = {v.shape[0] for v in batch.values() if torch.is_tensor(v) and v.ndim > 0}
    if len(sizes) != 1:
        return batch, 1.0
    (b,) = sizes
    lo, hi = shard_range(b)
    if hi == lo:
        return batch, 0.0
    part = {k: (v[lo:hi] if torch.is_tensor(v) and v.ndim > 0 else v) for k, v in batch.items()}
    return part, (hi - lo) * world_size() / b


class _LossStep(torch.nn.Module):
    """``loss_fn(model, batch)`` as a module's ``forward``, the one call DistributedDataParallel intercepts."""

    def __init__(self, model: torch.nn.Module, loss_fn) -> None:
        super().__init__()
        self.model = model
        self.loss_fn = loss_fn

    def forward(self, batch: dict) -> torch.Tensor:
        return self.loss_fn(self.model, batch)


def data_parallel(model: torch.nn.Module, loss_fn):
    """batch -> this rank's loss (scalar), whose ``backward`` leaves ``model``'s gradients averaged over the ranks.

    In a process group the loss runs inside ``DistributedDataParallel``: gradient buckets are all-reduced
    while backward still runs. ``find_unused_parameters``: a batch may leave a parameter untouched on one
    rank or on all (a task head, a codebook no row picks); DDP then reduces zeros for it (or, unused
    everywhere, leaves its gradient alone). Buffers are not broadcast at every forward: ``sync_buffers``
    takes rank 0's once an epoch. Alone (one process, or inside ``local()``): ``loss_fn(model, batch)``.
    """
    if not active() or not any(p.requires_grad for p in model.parameters()):
        return lambda batch: loss_fn(model, batch)
    from torch.nn.parallel import DistributedDataParallel

    dev = _device()
    options = inspect.signature(DistributedDataParallel.__init__).parameters
    # ``sync_start`` already gave every rank rank 0's weights; buffers follow rank 0 once an epoch.
    kw = {"forward_sync_buffers": False} if "forward_sync_buffers" in options else {"broadcast_buffers": False}
    if "init_sync" in options:
        kw["init_sync"] = False
    # DDP warns once when a step used every parameter; the search is still needed for the steps that do not.
    warnings.filterwarnings("ignore", message=r"find_unused_parameters=True was specified")
    return DistributedDataParallel(_LossStep(model, loss_fn), device_ids=[dev.index] if dev.type == "cuda" else None,
                                   find_unused_parameters=True, **kw)


def mean_over_ranks(values) -> np.ndarray:
    """Element-wise float64 mean of per-rank ``values`` over the ranks (the values in one process)."""
    return all_reduce_sum(values) / world_size()


def sync_buffers(model: torch.nn.Module) -> None:
    """Every rank takes rank 0's persistent buffers (BatchNorm running statistics, ...).

    Gradients are averaged but buffers a forward pass updates from this rank's rows drift apart between
    ranks; the Trainer calls this after each epoch's steps, so validation, checkpoints and the final
    model are the same on every rank (rank 0's buffers, as DistributedDataParallel's buffer broadcast
    leaves them). Non-persistent buffers (constants such as a tokenizer's item features) are skipped.
    """
    if not active():
        return
    persistent = set(model.state_dict().keys())
    for name, buf in model.named_buffers():
        if name in persistent:
            torch.distributed.broadcast(buf, src=0)


# ---------------------------------------------------------------------- gathers / broadcasts
def all_reduce_sum(values: np.ndarray) -> np.ndarray:
    """Element-wise float64 sum of ``values`` over the ranks, on every rank (one all-reduce)."""
    values = np.ascontiguousarray(values, dtype=np.float64)
    if not active():
        return values
    t = torch.from_numpy(values.copy()).to(_device())
    torch.distributed.all_reduce(t)
    return t.cpu().numpy()


def union_keys(keys) -> list[str]:
    """Sorted union of every rank's ``keys`` (a rank with nothing to report still joins the collective)."""
    if not active():
        return sorted(keys)
    parts: list = [None] * world_size()
    torch.distributed.all_gather_object(parts, sorted(keys))
    return sorted(set().union(*parts))


def main_only(fn):
    """``fn()`` computed on rank 0 alone and broadcast to every rank (e.g. a k-means fit the others need).

    The other ranks wait in the broadcast (torch.distributed's timeout, 30 min by default, bounds it).
    """
    if not active():
        return fn()
    return broadcast_object(fn() if is_main() else None)


def broadcast_object(obj, src: int = 0):
    """``obj`` of rank ``src`` on every rank (pickled over the process group; never read from disk)."""
    if not active():
        return obj
    box = [obj]
    torch.distributed.broadcast_object_list(box, src=src)
    return box[0]


def gather_rows(part: np.ndarray) -> np.ndarray:
    """Concatenate every rank's ``part`` (rows ``shard_range`` of one array) in rank order, on every rank."""
    if not active():
        return part
    parts: list = [None] * world_size()
    torch.distributed.all_gather_object(parts, part)
    return np.concatenate(parts, axis=0)


def check_same(array: np.ndarray | None, what: str) -> None:
    """Fail clearly when ranks computed different ``array`` (e.g. tokenizer codes fitted on every rank)."""
    if not active() or array is None:
        return
    digest = hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()
    digests: list = [None] * world_size()
    torch.distributed.all_gather_object(digests, digest)
    if len(set(digests)) > 1:
        raise SemidError(
            f"{what} differ between ranks ({len(set(digests))} versions): the computation is not deterministic "
            "across processes; run with the same torch thread count per process (torchrun sets OMP_NUM_THREADS)"
        )


def sync_start(model: torch.nn.Module, opt, sched, start: tuple, *, saved_world: int | None, ckpt) -> tuple:
    """Every rank starts where rank 0 does: its weights, optimizer and scheduler state and loop state
    ``start`` (what rank 0 read from the checkpoint, or its fresh init).

    ``saved_world``: world size recorded in the checkpoint rank 0 resumed (None when not resuming); a
    different world size is refused on every rank, since the per-rank slices (and dropout streams) of a
    step would differ from the interrupted run's.
    """
    now = world_size()
    err = None
    if saved_world is not None and saved_world != now:
        err = (f"{ckpt} was written by a run on {saved_world} process(es); this run has {now}. Resume with the "
               f"same world size (torchrun --nproc_per_node / semid run --nproc {saved_world}) or start a new run")
    if not active():
        if err:
            raise CheckpointError(err)
        return start
    payload = None
    if is_main():
        payload = {"err": err, "start": start, "model": {k: v.cpu() for k, v in model.state_dict().items()},
                   "opt": opt.state_dict(), "sched": sched.state_dict()}
    payload = broadcast_object(payload)
    if payload["err"]:
        raise CheckpointError(payload["err"])
    if not is_main():
        model.load_state_dict(payload["model"])
        opt.load_state_dict(payload["opt"])
        sched.load_state_dict(payload["sched"])
    return payload["start"]


# ---------------------------------------------------------------------- pipeline followers
def follows() -> bool:
    """Whether this process is a rank other than 0 entering ``semid.pipeline.runner.run`` (not yet inside ``follow``)."""
    return active() and not is_main() and not getattr(_local, "following", False)


def follow(run_fn, cfg, **kw):
    """Run the pipeline ``run_fn(cfg, run_dir, **kw)`` on a rank other than 0: every step is computed (and
    every collective joined) as on rank 0, but into a scratch directory deleted afterwards, so only
    rank 0 writes the run directory. The trainers take their resume point from rank 0 (``sync_start``)."""
    import tempfile
    from pathlib import Path

    kw.pop("resume", None)
    kw.pop("overwrite", None)
    with tempfile.TemporaryDirectory(prefix=f"semid-rank{rank()}-") as tmp:
        _local.following = True
        try:
            return run_fn(cfg, Path(tmp) / "run", resume=False, overwrite=False, console=None)
        finally:
            _local.following = False


# ---------------------------------------------------------------------- launching
def launch(nproc: int, args: list[str]) -> None:
    """Run ``python -m semid <args>`` on ``nproc`` local processes through torchrun (torch.distributed.run).

    Returns when every worker has finished; a failing worker raises (torchrun stops the others).
    """
    from torch.distributed import run as torchrun

    if nproc < 1:
        raise SemidError(f"--nproc={nproc}: use 1 (one process) or more")
    parser = torchrun.get_args_parser()
    ns = parser.parse_args(["--standalone", f"--nproc_per_node={nproc}", "-m", "semid", *args])
    try:
        torchrun.run(ns)
    except Exception as e:  # ChildFailedError: the worker printed its own error
        raise SemidError(f"a worker of the {nproc}-process run failed (its error is printed above): "
                         f"{type(e).__name__}") from None


__all__ = ["active", "world_size", "rank", "is_main", "local", "init_from_env", "shutdown", "barrier",
           "shard_range", "RANK_PART", "rank_part", "shard_batch", "data_parallel", "mean_over_ranks",
           "backward_group", "sync_buffers", "all_reduce_sum",
           "union_keys", "main_only", "broadcast_object", "gather_rows", "check_same", "sync_start", "follows",
           "follow", "launch"]
