"""Nothing trains or evaluates on zero examples and exits cleanly; a full or read-only disk is a clear
error that loses nothing, after which resuming finishes exactly as an uninterrupted run."""

from __future__ import annotations

import errno

import numpy as np
import pytest
import torch
from torch import nn

import semid.io
from semid.data.types import Catalog, EvalSet, Interactions
from semid.errors import ConfigError, DataError, SemidError
from semid.eval.evaluator import evaluate
from semid.io import atomic_write, write_json
from semid.models.popular import MostPopular
from semid.train.loop import TrainConfig, Trainer


# ----------------------------------------------------------------------------- zero examples
def test_evaluate_on_zero_users_raises():
    train = Interactions.from_lists([[0, 1], [1, 2]])
    model = MostPopular().fit(train, Catalog(item_ids=np.array(["a", "b", "c"])))
    empty = EvalSet(histories=Interactions.from_lists([]), targets=Interactions.from_lists([]))
    # before: {"HR@10": 0.0, ..., "n_eval_users": 0} and exit code 0
    with pytest.raises(DataError, match="the evaluation set has no users"):
        evaluate(model, empty, progress=False)


def _tiny():
    torch.manual_seed(0)
    x = torch.randn(64, 4)
    y = x.sum(1, keepdim=True)

    def batches(epoch, rng):
        order = rng.permutation(len(x))
        return [{"x": x[order[i : i + 16]], "y": y[order[i : i + 16]]} for i in range(0, len(x), 16)]

    def loss_fn(model, b):
        return nn.functional.mse_loss(model(b["x"]), b["y"])

    def make():
        torch.manual_seed(1)
        return nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.1), nn.ReLU(), nn.Linear(8, 1))

    return make, batches, loss_fn


CFG = TrainConfig(epochs=4, lr=1e-2, warmup_steps=2, patience=0, device="cpu", progress=False)


def test_trainer_refuses_zero_epochs_and_zero_batches():
    make, batches, loss_fn = _tiny()
    with pytest.raises(ConfigError, match="train.epochs=0: training needs at least 1 epoch"):
        Trainer(TrainConfig(**{**CFG.__dict__, "epochs": 0})).fit(make(), batches, loss_fn)
    with pytest.raises(DataError, match="no training batches"):
        Trainer(CFG).fit(make(), lambda e, rng: [], loss_fn)
    with pytest.raises(DataError, match="epoch 0 had no training batches"):  # a generator has no len()
        Trainer(CFG).fit(make(), lambda e, rng: iter(()), loss_fn)


def test_pipeline_refuses_a_split_without_test_users(tmp_path):
    from semid.pipeline.config import DataConfig, RunConfig
    from semid.pipeline.runner import prepare_data

    p = tmp_path / "short.csv"
    p.write_text("user,item\nu,a\nu,b\nv,b\nv,c\n")  # 2 items per user: leave-one-out has no test users
    cfg = RunConfig(data=DataConfig(dataset=str(p)))
    with pytest.raises(DataError, match="split has no valid users"):
        prepare_data(cfg)


# ----------------------------------------------------------------------------- full / read-only disk
@pytest.mark.parametrize(
    "code, fix",
    [(errno.ENOSPC, "the disk is full"), (errno.EROFS, "the file system is read-only"),
     (errno.EACCES, "permission denied")],
)
def test_atomic_write_maps_disk_errors_and_keeps_the_old_file(tmp_path, code, fix):
    target = tmp_path / "run" / "metrics.json"
    write_json(target, {"v": 1})

    def failing(p):
        p.write_text("half")
        raise OSError(code, "simulated")

    with pytest.raises(SemidError, match=rf"cannot write {target}: simulated; {fix}.*--resume"):
        atomic_write(target, failing)
    assert semid.io.read_json(target) == {"v": 1}
    assert [p.name for p in target.parent.iterdir()] == ["metrics.json"]  # no temp file left behind


def test_read_only_folder_at_temp_file_creation(tmp_path, monkeypatch):
    def ro(*a, **kw):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(semid.io.tempfile, "mkstemp", ro)
    with pytest.raises(SemidError, match="Read-only file system; the file system is read-only"):
        write_json(tmp_path / "x.json", {})


def test_other_os_errors_pass_through(tmp_path):
    def boom(p):
        raise OSError(errno.EIO, "I/O error")

    with pytest.raises(OSError, match="I/O error") as info:
        atomic_write(tmp_path / "x", boom)
    assert not isinstance(info.value, SemidError)


@pytest.mark.parametrize("failing_epoch", [0, 2])
def test_disk_full_mid_training_then_resume_is_identical(tmp_path, monkeypatch, failing_epoch):
    # failing_epoch 0: the very first checkpoint cannot be written (no epoch is whole yet); resume must still
    # finish identically rather than refuse a log line whose checkpoint was never written.
    make, batches, loss_fn = _tiny()
    full = make()
    ref = Trainer(CFG, tmp_path / "a").fit(full, batches, loss_fn)

    import semid.train.loop

    real = semid.io.atomic_write
    logged = {"epochs": 0}

    def flaky(path, writer):  # the disk fills up while `failing_epoch`'s checkpoint is written
        if path.name == "train_log.jsonl":  # one line per epoch, written after that epoch's checkpoint
            logged["epochs"] += 1
        elif "ckpt" in str(path) and logged["epochs"] == failing_epoch:
            def nospace(p):
                raise OSError(errno.ENOSPC, "No space left on device")

            return real(path, nospace)
        return real(path, writer)

    monkeypatch.setattr(semid.io, "atomic_write", flaky)
    monkeypatch.setattr(semid.train.loop, "atomic_write", flaky, raising=False)
    with pytest.raises(SemidError, match="No space left on device; the disk is full"):
        Trainer(CFG, tmp_path / "b").fit(make(), batches, loss_fn)
    monkeypatch.undo()
    resumed = make()
    res = Trainer(CFG, tmp_path / "b", resume=True).fit(resumed, batches, loss_fn)
    assert [h["train_loss"] for h in res.history] == pytest.approx([h["train_loss"] for h in ref.history])
    for (n, a), (_, b) in zip(full.state_dict().items(), resumed.state_dict().items(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=f"param {n} differs after resume")


def test_cli_run_without_test_users_fails_instead_of_reporting_zeros(tmp_path):
    from typer.testing import CliRunner

    from semid.cli.main import app

    p = tmp_path / "short.csv"
    p.write_text("user,item\nu,a\nu,b\nv,b\nv,c\n")
    result = CliRunner().invoke(app, ["run", "--dataset", str(p), "--run-dir", str(tmp_path / "run"),
                                      "--model=popular", "--tokenizer=none"])
    assert result.exit_code == 2, result.output
    assert "split has no valid users" in result.output
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_run_dir_on_a_read_only_file_system(tmp_path, monkeypatch):
    from pathlib import Path

    from semid.io import make_run_dir

    def ro(self, *a, **kw):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(Path, "mkdir", ro)
    with pytest.raises(SemidError, match=r"cannot write .*run: Read-only file system; .*writable --run-dir"):
        make_run_dir(tmp_path / "run")
