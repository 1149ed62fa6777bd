"""Training of the quantising autoencoders (TIGER / LETTER's RQ-VAE, MusicRec's model) through the one
``semid.train.loop.Trainer``: batches of item indices, per-term loss means per epoch, and dead-code re-seeding
in the Trainer's epoch hook; data-parallel over the ranks of a torch.distributed process group.

The objective is an ``nn.Module`` whose ``forward(idx, part=None)`` (idx: (B,) int64 item indices) returns a
dict of scalar loss terms with the total under ``"loss"``; it keeps the item features as non-persistent
buffers, so the Trainer's ``model.to(device)`` moves data and weights together. Its ``prime(idx)`` runs the
network alone on items ``idx`` (the vector-quantiser layers' k-means initialisation on a first batch).

Data-parallel (a process group is active): every rank draws the same global batch of item indices and
forwards its contiguous part [lo, hi) with a ``BatchPart``; the objective returns each term as this rank's
share (own-row mean x ``share``), so the average over ranks that DistributedDataParallel takes is the global batch's
term and the gradients are the 1-process ones up to float summation order. What must stay identical on every
rank is kept identical here (``_QuantizerSync``): the codebooks' k-means initialisation is computed on rank 0
from the whole first batch (the same points as one process) and broadcast; the usage counts that decide
dead-code re-seeding are summed over the ranks and the re-seeding draws from the last global batch's
residuals gathered in rank order, so every rank makes the 1-process decision and copies the same rows.
The networks have no BatchNorm; weights stay identical because every rank applies the same all-reduced step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from semid.quantize.vq import VectorQuantizer
from semid.train import distributed
from semid.train.loop import TrainConfig, Trainer


def autoencoder_train_config(c) -> TrainConfig:
    """The TrainConfig of a tokenizer config ``c`` (RQVAEConfig / MusicRecConfig share these fields).
    No early stopping (there is no validation) and no checkpoints (a tokenizer fit has no run directory)."""
    return TrainConfig(
        epochs=c.epochs, batch_size=c.batch_size, lr=c.lr, weight_decay=c.weight_decay,
        warmup_steps=c.warmup_steps, min_lr_ratio=c.min_lr_ratio, grad_clip=c.grad_clip, patience=0,
        seed=c.seed, device=c.device, bf16=c.bf16, compile=c.compile,
    )


# ---------------------------------------------------------------------- data-parallel parts of a batch
class _GatherRows(torch.autograd.Function):
    """Differentiable all-gather of every rank's rows ``shard_range(size)`` into the (size, ...) batch.

    Backward: the gradient of the gathered batch is summed over the ranks (each rank's loss touches every
    row) and each rank keeps its own rows, so after DistributedDataParallel's average the parameters get the
    gradient of the average of the ranks' losses, as for a loss on the whole batch in one process.
    """

    @staticmethod
    def forward(ctx, rows: torch.Tensor, size: int) -> torch.Tensor:
        w, r = distributed.world_size(), distributed.rank()
        bounds = [s * size // w for s in range(w + 1)]  # shard_range of every rank
        width = max(b - a for a, b in zip(bounds, bounds[1:], strict=False))
        pad = rows.new_zeros((width, *rows.shape[1:]))  # all_gather needs one shape: parts differ by <= 1 row
        pad[: len(rows)] = rows
        parts = [torch.empty_like(pad) for _ in range(w)]
        ctx.group = distributed.backward_group()  # apart from DDP's bucket all-reduces
        torch.distributed.all_gather(parts, pad, group=ctx.group)
        ctx.own = (bounds[r], bounds[r + 1])
        return torch.cat([p[: b - a] for p, a, b in zip(parts, bounds, bounds[1:], strict=False)])

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        grad = grad.contiguous().clone()
        torch.distributed.all_reduce(grad, group=ctx.group)
        lo, hi = ctx.own
        return grad[lo:hi], None


@dataclass(frozen=True)
class BatchPart:
    """This rank's rows [lo, hi) of the global batch ``batch`` (B,) of item indices (data-parallel training).

    A loss term that is a mean over the batch's rows is returned as ``own-row mean * share``; the average of
    the shares over the ranks is the global mean. Terms whose rows interact (in-batch InfoNCE negatives, the
    relation matrix) read the global batch's fixed data through ``batch`` and its trained rows through
    ``gather``.
    """

    batch: torch.Tensor  # (B,) int64, the same on every rank
    lo: int
    hi: int
    world: int

    @property
    def rows(self) -> slice:
        return slice(self.lo, self.hi)

    @property
    def share(self) -> float:
        """(hi - lo) * world / B: this rank's rows as a fraction of an even split."""
        return (self.hi - self.lo) * self.world / len(self.batch)

    def gather(self, rows: torch.Tensor) -> torch.Tensor:
        """(hi - lo, ...) this rank's rows -> (B, ...) every rank's, in batch order; differentiable."""
        return _GatherRows.apply(rows, len(self.batch))

    def count_share(self, own: torch.Tensor) -> torch.Tensor:
        """own (T,) counts of this rank's rows that enter T row-mean terms -> (T,) float64 weights
        own * world / total (0 where the total is 0): a term averaged over an unknown subset of the rows
        (LETTER's diversity keeps rows that have a positive) then averages over ranks to its global mean."""
        own64 = own.detach().cpu().numpy().astype(np.float64)
        total = distributed.all_reduce_sum(own64)
        return torch.from_numpy(np.divide(own64 * self.world, total, out=np.zeros_like(own64), where=total > 0))


def _parts(full: torch.Tensor, world: int):
    """The batch this rank feeds the Trainer for the global batch ``full``: its part (marked ``rank_part``, so
    the Trainer keeps it whole) or, when the batch has fewer rows than ranks, the whole batch on every rank."""
    if len(full) < world:  # each rank computes it whole with weight 1; only rank 0 counts its code usage
        return distributed.rank_part({"idx": full})
    lo, hi = distributed.shard_range(len(full))
    return distributed.rank_part({"idx": full[lo:hi], "batch": full})


class _QuantizerSync:
    """Keeps the VQ layers' training state the same on every rank (data-parallel training).

    ``usage`` (a persistent buffer: the Trainer's ``sync_buffers`` overwrites it with rank 0's at every epoch
    end) is re-derived at each epoch end as its value at the epoch start plus the sum over ranks of each
    rank's own counts of the epoch, which is what one process counts over the same batches.
    """

    def __init__(self, objective: nn.Module):
        self.vqs = [m for m in objective.modules() if isinstance(m, VectorQuantizer)]
        self.start: list[torch.Tensor] = []
        self.own: list[torch.Tensor] = []

    def epoch_start(self) -> None:
        self.start = [vq.usage.clone() for vq in self.vqs]
        self.own = [torch.zeros_like(u) for u in self.start]

    @torch.no_grad()
    def init_codebooks(self, objective: nn.Module, idx: torch.Tensor) -> None:
        """k-means initialisation of every level on rank 0 from the whole first batch ``idx``, broadcast: the
        same points one process initialises from (a rank's part alone would give each rank other codebooks)."""
        if all(bool(vq.initialized) for vq in self.vqs):
            return
        if distributed.is_main():
            objective.prime(idx)  # training mode: every level initialises in order, as in the first forward
            for vq, u in zip(self.vqs, self.start, strict=True):
                vq.usage.copy_(u)  # the priming pass is not a training step: no usage counted
        for vq in self.vqs:
            torch.distributed.broadcast(vq.codebook.data, src=0)
            vq.initialized.fill_(True)

    def after_forward(self, counted: bool) -> None:
        """Record this rank's counts of the step; ``counted=False`` (a batch every rank computed whole, on
        ranks but 0) takes the step's counts and last inputs back, so the batch counts once."""
        for i, vq in enumerate(self.vqs):
            if not counted:
                vq.usage.copy_(self.start[i] + self.own[i])
                vq._last_inputs = vq._last_inputs[:0]  # noqa: SLF001 - the re-seeding pool; see gather_last_inputs
            self.own[i] = vq.usage - self.start[i]

    def merge_usage(self) -> None:
        """usage = epoch-start usage + the epoch's counts of every rank (float64 all-reduce: exact below 2**53)."""
        if not self.vqs:
            return
        total = distributed.all_reduce_sum(torch.cat(self.own).cpu().numpy())
        offset = 0
        for vq, u in zip(self.vqs, self.start, strict=True):
            n = len(u)
            vq.usage.copy_(u + torch.from_numpy(total[offset : offset + n]).round().long().to(u.device))
            offset += n

    def gather_last_inputs(self) -> None:
        """Each level's re-seeding pool becomes the last global batch's residuals (every rank's rows in rank
        order, what one process keeps), so ``reseed_dead_codes`` draws the same rows on every rank."""
        for vq in self.vqs:
            mine = vq._last_inputs  # noqa: SLF001 - VectorQuantizer keeps the last training batch's inputs here
            if mine is None:
                continue
            rows = distributed.gather_rows(mine.detach().float().cpu().numpy())
            vq._last_inputs = torch.from_numpy(rows).to(mine.device)  # noqa: SLF001


def _check_inputs_same(objective: nn.Module) -> None:
    """Every rank must train on the same item features (non-persistent buffers: x, z_cf)."""
    persistent = set(objective.state_dict())
    for name, buf in objective.named_buffers():
        if name not in persistent:
            distributed.check_same(buf.detach().cpu().numpy(), f"tokenizer input {name!r}")


# ---------------------------------------------------------------------- the training loop
def train_autoencoder(
    objective: nn.Module,
    n_items: int,
    cfg: TrainConfig,
    *,
    reseed_every: int,
    reseed: Callable[[], list[int]],
    on_epoch_start: Callable[[int], None] | None = None,
) -> tuple[list[dict[str, float]], int]:
    """Mini-batches of shuffled item indices (order from the Trainer's per-epoch RNG) through ``Trainer.fit``.

    ``reseed()`` re-seeds unused codes (returns the count per level); it runs at the end of every
    ``reseed_every``-th epoch but the last. ``on_epoch_start(epoch)`` runs before each epoch's first step.
    Returns (per-epoch mean of every loss term, total codes re-seeded). The objective is left in eval mode
    on the Trainer's device. Data-parallel when a process group is active (module docstring); the history
    is then the global batches' terms (averaged over the ranks), the same on every rank.
    """
    sums: dict[str, float] = {}
    n_steps = [0]
    history: list[dict[str, float]] = []
    n_reseeded = [0]
    bs = cfg.batch_size
    world = distributed.world_size()
    sync = _QuantizerSync(objective) if distributed.active() else None
    if sync is not None:
        _check_inputs_same(objective)

    def batches(epoch: int, rng: np.random.Generator):
        if on_epoch_start is not None:
            on_epoch_start(epoch)
        if sync is not None:
            sync.epoch_start()
        perm = torch.from_numpy(rng.permutation(n_items))
        for s in range(0, n_items, bs):
            yield {"idx": perm[s : s + bs]} if sync is None else _parts(perm[s : s + bs], world)

    def loss_fn(model: nn.Module, batch: dict) -> torch.Tensor:
        if sync is None:
            out = model(batch["idx"])
        else:
            full = batch.get("batch")
            sync.init_codebooks(model, batch["idx"] if full is None else full)
            part = None
            if full is not None:
                lo, hi = distributed.shard_range(len(full))
                part = BatchPart(batch=full, lo=lo, hi=hi, world=world)
            out = model(batch["idx"], part)
            sync.after_forward(counted=part is not None or distributed.is_main())
        for k, v in out.items():
            sums[k] = sums.get(k, 0.0) + float(v.detach())
        n_steps[0] += 1
        return out["loss"]

    def epoch_end(model: nn.Module, epoch: int) -> dict:
        keys = list(sums)  # the objective's order, the same on every rank
        values = [sums[k] for k in keys]
        if sync is not None:  # each rank summed its shares: their average is the global batches' terms
            values = distributed.mean_over_ranks(values).tolist()
            sync.merge_usage()
        terms = {k: v / max(1, n_steps[0]) for k, v in zip(keys, values, strict=True)}
        history.append(terms)
        sums.clear()
        n_steps[0] = 0
        figures = {"terms": terms}
        if reseed_every and (epoch + 1) % reseed_every == 0 and epoch + 1 < cfg.epochs:
            if sync is not None:
                sync.gather_last_inputs()
            n = int(sum(reseed()))
            n_reseeded[0] += n
            figures["n_reseeded"] = n
        return figures

    Trainer(cfg).fit(objective, batches, loss_fn, steps_per_epoch=-(-n_items // bs), on_epoch_end=epoch_end)
    objective.eval()
    return history, n_reseeded[0]


__all__ = ["BatchPart", "autoencoder_train_config", "train_autoencoder"]
