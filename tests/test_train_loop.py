"""The shared Trainer: loss falls, best weights restored, exact resume, corrupt checkpoint errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from semid.errors import CheckpointError
from semid.train.loop import TrainConfig, Trainer


def _problem():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 8, generator=g)
    w = torch.randn(8, 1, generator=g)
    y = x @ w + 0.01 * torch.randn(256, 1, generator=g)

    def batches(epoch, rng):
        order = rng.permutation(len(x))
        return [{"x": x[order[i : i + 32]], "y": y[order[i : i + 32]]} for i in range(0, len(x), 32)]

    def loss_fn(model, b):
        return nn.functional.mse_loss(model(b["x"]), b["y"])

    def make():
        torch.manual_seed(1)
        # Dropout makes the test sensitive to torch RNG handling across resume.
        return nn.Sequential(nn.Linear(8, 16), nn.Dropout(0.1), nn.ReLU(), nn.Linear(16, 1))

    return make, batches, loss_fn


CFG = TrainConfig(epochs=6, lr=1e-2, warmup_steps=2, patience=0, device="cpu", progress=False)


def test_loss_falls():
    make, batches, loss_fn = _problem()
    res = Trainer(CFG).fit(make(), batches, loss_fn)
    losses = [h["train_loss"] for h in res.history]
    assert losses[-1] < 0.3 * losses[0]


def test_exact_resume_matches_uninterrupted(tmp_path):
    make, batches, loss_fn = _problem()
    full = make()
    Trainer(CFG, tmp_path / "a").fit(full, batches, loss_fn)

    # Interrupt after 3 epochs by raising from the batch builder, then resume in a fresh process-like object.

    def interrupted(epoch, rng):
        if epoch == 3:
            raise KeyboardInterrupt
        return batches(epoch, rng)

    with pytest.raises(KeyboardInterrupt):
        Trainer(CFG, tmp_path / "b").fit(make(), interrupted, loss_fn, steps_per_epoch=8)
    resumed = make()
    Trainer(CFG, tmp_path / "b", resume=True).fit(resumed, batches, loss_fn, steps_per_epoch=8)
    for (n, a), (_, b) in zip(full.state_dict().items(), resumed.state_dict().items(), strict=False):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=f"param {n} differs after resume")


def test_early_stopping_restores_best():
    make, batches, loss_fn = _problem()
    scores = iter([0.1, 0.5, 0.4, 0.3, 0.2, 0.1])
    snapshots = []

    def validate(model):
        snapshots.append({k: v.clone() for k, v in model.state_dict().items()})
        return {"NDCG@10": next(scores)}

    model = make()
    res = Trainer(TrainConfig(**{**CFG.__dict__, "patience": 2})).fit(model, batches, loss_fn, validate)
    assert res.best_epoch == 1 and res.stopped_early and res.epochs_run == 4
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, snapshots[1][k])


def test_corrupt_checkpoint_is_named(tmp_path):
    make, batches, loss_fn = _problem()
    Trainer(TrainConfig(**{**CFG.__dict__, "epochs": 1}), tmp_path).fit(make(), batches, loss_fn)
    (tmp_path / "ckpt" / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="ckpt"):
        Trainer(CFG, tmp_path, resume=True).fit(make(), batches, loss_fn)


def test_nan_loss_raises_clear_error():
    make, batches, _ = _problem()
    with pytest.raises(FloatingPointError, match="lr"):
        Trainer(CFG).fit(make(), batches, lambda m, b: m(b["x"]).sum() * float("nan"))


def test_fresh_run_refuses_to_overwrite_a_checkpoint(tmp_path):
    from semid.errors import ConfigError

    make, batches, loss_fn = _problem()
    cfg = TrainConfig(epochs=2, lr=1e-2, warmup_steps=2, patience=0, device="cpu", progress=False)
    Trainer(cfg, tmp_path).fit(make(), batches, loss_fn)
    log = (tmp_path / "train_log.jsonl").read_text()
    with pytest.raises(ConfigError, match="already holds a checkpoint"):
        Trainer(cfg, tmp_path).fit(make(), batches, loss_fn)
    assert (tmp_path / "train_log.jsonl").read_text() == log  # nothing appended or replaced
    Trainer(cfg, tmp_path, resume=True).fit(make(), batches, loss_fn)  # continuing is allowed
