"""The shared Trainer: loss falls, best weights restored, exact resume, corrupt checkpoint errors."""

from __future__ import annotations

import json

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
    # Interrupted after 3 epochs by raising from the batch builder, then resumed in a fresh process-like object.
    full, make, batches, loss_fn = _interrupted_run(tmp_path)
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


def _interrupted_run(tmp_path):
    """Train CFG but stop after 3 epochs (3 checkpoints written); returns the uninterrupted final weights."""
    make, batches, loss_fn = _problem()
    full = make()
    Trainer(CFG, tmp_path / "full").fit(full, batches, loss_fn)

    def interrupted(epoch, rng):
        if epoch == 3:
            raise KeyboardInterrupt
        return batches(epoch, rng)

    with pytest.raises(KeyboardInterrupt):
        Trainer(CFG, tmp_path / "b").fit(make(), interrupted, loss_fn, steps_per_epoch=8)
    return full, make, batches, loss_fn


def test_checkpoint_holds_no_pickle(tmp_path):
    _interrupted_run(tmp_path)
    names = {p.name for p in (tmp_path / "b" / "ckpt").iterdir()}
    assert {"optim.json", "optim.safetensors", "state.json", "model.safetensors"} <= names
    assert not any(n.endswith(".pt") for n in names)


def test_crafted_pickle_checkpoint_does_not_run_code(tmp_path):
    """An old-format ckpt/optim.pt whose unpickling would create a file: resume refuses it, nothing runs."""
    import os
    import pickle

    _, make, batches, loss_fn = _interrupted_run(tmp_path)
    ckpt = tmp_path / "b" / "ckpt"
    (ckpt / "optim.json").unlink()
    (ckpt / "optim.safetensors").unlink()
    pwned = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {pwned}",))

    torch.save({"optimizer": Payload()}, ckpt / "optim.pt")
    assert pickle.dumps(Payload())  # the payload is a real code-running pickle
    with pytest.raises(CheckpointError, match="unsafe"):
        Trainer(CFG, tmp_path / "b", resume=True).fit(make(), batches, loss_fn, steps_per_epoch=8)
    assert not pwned.exists()


@pytest.mark.parametrize("left", ["tmp_and_old", "old_only"])
def test_checkpoint_lost_between_renames_is_recovered(tmp_path, left):
    """A crash between the two renames of the checkpoint swap leaves no ckpt/: resume must find the copy
    beside it, not silently start from scratch (which would log epochs 0.. again in the same run)."""
    import shutil

    full, make, batches, loss_fn = _interrupted_run(tmp_path)
    ckpt = tmp_path / "b" / "ckpt"
    if left == "tmp_and_old":  # the newer copy is ckpt.tmp (epoch 2), the previous one ckpt.old
        shutil.copytree(ckpt, ckpt.with_name("ckpt.tmp"))
        ckpt.rename(ckpt.with_name("ckpt.old"))
    else:
        ckpt.rename(ckpt.with_name("ckpt.old"))
    resumed, seen = make(), []

    def counted(epoch, rng):
        seen.append(epoch)
        return batches(epoch, rng)

    res = Trainer(CFG, tmp_path / "b", resume=True).fit(resumed, counted, loss_fn, steps_per_epoch=8)
    assert seen == [3, 4, 5]  # continued after epoch 2, did not start over
    assert [h["epoch"] for h in res.history] == list(range(6))
    logged = [json.loads(line)["epoch"] for line in (tmp_path / "b" / "train_log.jsonl").read_text().splitlines()]
    assert logged == list(range(6))
    for (n, a), (_, b) in zip(full.state_dict().items(), resumed.state_dict().items(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=f"param {n} differs after recovery")


def test_lost_checkpoint_with_a_training_log_is_an_error(tmp_path):
    import shutil

    _, make, batches, loss_fn = _interrupted_run(tmp_path)
    shutil.rmtree(tmp_path / "b" / "ckpt")
    with pytest.raises(CheckpointError, match="no checkpoint"):
        Trainer(CFG, tmp_path / "b", resume=True).fit(make(), batches, loss_fn, steps_per_epoch=8)


def test_epoch_hook_edits_the_model_logs_figures_and_resumes_exactly(tmp_path):
    """``on_epoch_end`` runs after every epoch before the checkpoint: its in-place change (here a random
    jolt, like dead-code re-seeding) is saved, its figures land in the log, and a resumed run replays it."""
    make, batches, loss_fn = _problem()
    calls = []

    def hook(model, epoch):
        calls.append(epoch)
        with torch.no_grad():
            model[0].weight.add_(0.01 * torch.randn_like(model[0].weight))  # draws from the epoch's torch RNG
        return {"jolt": epoch}

    full = make()
    res = Trainer(CFG, tmp_path / "a").fit(full, batches, loss_fn, on_epoch_end=hook)
    assert calls == list(range(CFG.epochs)) and [h["jolt"] for h in res.history] == calls

    def interrupted(epoch, rng):
        if epoch == 3:
            raise KeyboardInterrupt
        return batches(epoch, rng)

    with pytest.raises(KeyboardInterrupt):
        Trainer(CFG, tmp_path / "b").fit(make(), interrupted, loss_fn, steps_per_epoch=8, on_epoch_end=hook)
    resumed = make()
    Trainer(CFG, tmp_path / "b", resume=True).fit(resumed, batches, loss_fn, on_epoch_end=hook)
    for a, b in zip(full.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b)
