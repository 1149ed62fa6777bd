"""Two processes whose parts of a batch use different parameters still take the 1-process step.

Each row of the toy batch picks one of two heads of the same shape; rank 0's rows all pick head A and
rank 1's rows head B, so each rank's backward leaves one head without a gradient. Reducing the gradients
that exist on each rank as one flat buffer added rank 0's head-A gradient to rank 1's head-B one (same
sizes, silently wrong weights); DistributedDataParallel's unused-parameter search reduces zeros for the
head a rank did not touch, so the weights match the 1-process run over the same global batches.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from semid.train import distributed
from semid.train.loop import TrainConfig, Trainer

CFG = TrainConfig(epochs=2, batch_size=8, lr=1e-2, warmup_steps=1, patience=0, progress=False, device="cpu",
                  grad_clip=0.0)


class _TwoHeads(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Linear(4, 4)
        self.heads = nn.ModuleList([nn.Linear(4, 1), nn.Linear(4, 1)])


def _loss(model: _TwoHeads, batch: dict) -> torch.Tensor:
    h = torch.tanh(model.body(batch["x"]))  # (B, 4)
    out = torch.zeros(len(h))
    for k, head in enumerate(model.heads):
        rows = batch["head"] == k
        if rows.any():  # a head no row picks stays out of the graph
            out[rows] = head(h[rows]).squeeze(-1)
    return ((out - batch["y"]) ** 2).mean()


def _batches(epoch: int, rng: np.random.Generator):
    g = torch.Generator().manual_seed(epoch)
    for _ in range(3):
        x = torch.randn(8, 4, generator=g)
        # rows 0-3 (rank 0's slice) use head 0, rows 4-7 (rank 1's) head 1
        yield {"x": x, "y": x.sum(1), "head": torch.tensor([0] * 4 + [1] * 4)}


def _fit() -> dict:
    model = _TwoHeads()
    Trainer(CFG).fit(model, _batches, _loss, steps_per_epoch=3)
    return {k: v.tolist() for k, v in model.state_dict().items()}


def _worker(rank: int, port: int, out: str) -> None:
    torch.set_num_threads(1)
    distributed.init_local(rank, 2, port)
    (Path(out) / f"rank{rank}.json").write_text(json.dumps(_fit()))
    distributed.shutdown()


def test_ranks_touching_different_parameters_take_the_one_process_step(tmp_path, free_port):
    torch.multiprocessing.start_processes(_worker, args=(free_port(), str(tmp_path)), nprocs=2, join=True,
                                          start_method="fork")
    one = _fit()
    for r in range(2):
        two = json.loads((tmp_path / f"rank{r}.json").read_text())
        for k, v in one.items():
            np.testing.assert_allclose(two[k], v, rtol=1e-5, atol=1e-6, err_msg=f"rank {r}: {k}")
