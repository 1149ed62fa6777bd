"""Training of the quantising autoencoders (TIGER / LETTER's RQ-VAE, MusicRec's model) through the one
``semid.train.loop.Trainer``: batches of item indices, per-term loss means per epoch, and dead-code re-seeding
in the Trainer's epoch hook.

The objective is an ``nn.Module`` whose ``forward(idx)`` (idx: (B,) int64 item indices) returns a dict of
scalar loss terms with the total under ``"loss"``; it keeps the item features as non-persistent buffers, so
the Trainer's ``model.to(device)`` moves data and weights together.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from semid.train.loop import TrainConfig, Trainer


def autoencoder_train_config(c) -> TrainConfig:
    """The TrainConfig of a tokenizer config ``c`` (RQVAEConfig / MusicRecConfig share these fields).
    No early stopping (there is no validation) and no checkpoints (a tokenizer fit has no run directory)."""
    return TrainConfig(
        epochs=c.epochs, batch_size=c.batch_size, lr=c.lr, weight_decay=c.weight_decay,
        warmup_steps=c.warmup_steps, min_lr_ratio=c.min_lr_ratio, grad_clip=c.grad_clip, patience=0,
        seed=c.seed, device=c.device, bf16=c.bf16, compile=c.compile,
    )


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
    on the Trainer's device.
    """
    sums: dict[str, float] = {}
    n_steps = [0]
    history: list[dict[str, float]] = []
    n_reseeded = [0]
    bs = cfg.batch_size

    def batches(epoch: int, rng: np.random.Generator):
        if on_epoch_start is not None:
            on_epoch_start(epoch)
        perm = torch.from_numpy(rng.permutation(n_items))
        for s in range(0, n_items, bs):
            yield {"idx": perm[s : s + bs]}

    def loss_fn(model: nn.Module, batch: dict) -> torch.Tensor:
        out = model(batch["idx"])
        for k, v in out.items():
            sums[k] = sums.get(k, 0.0) + float(v.detach())
        n_steps[0] += 1
        return out["loss"]

    def epoch_end(model: nn.Module, epoch: int) -> dict:
        terms = {k: v / max(1, n_steps[0]) for k, v in sums.items()}
        history.append(terms)
        sums.clear()
        n_steps[0] = 0
        figures = {"terms": terms}
        if reseed_every and (epoch + 1) % reseed_every == 0 and epoch + 1 < cfg.epochs:
            n = int(sum(reseed()))
            n_reseeded[0] += n
            figures["n_reseeded"] = n
        return figures

    Trainer(cfg).fit(objective, batches, loss_fn, steps_per_epoch=-(-n_items // bs), on_epoch_end=epoch_end)
    objective.eval()
    return history, n_reseeded[0]
