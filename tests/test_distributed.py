"""Two CPU processes (gloo) train SASRec through semid.train.loop like one process with the same global batch.

Each rank takes a disjoint slice of every global batch and the gradients are averaged, so the 2-process
loss trajectory equals the 1-process one up to float reduction order (stated tolerance: 1e-4 relative);
rank 0 alone writes the checkpoint and log; the sharded + gathered evaluation equals the 1-process
evaluation of the same weights exactly; resuming at the same world size replays the uninterrupted run and
a different world size is refused.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from semid.data.split import leave_one_out
from semid.data.types import Interactions
from semid.errors import CheckpointError
from semid.eval.evaluator import evaluate
from semid.models.sasrec import SASRec, SASRecConfig
from semid.train import distributed
from semid.train.loop import TrainConfig, Trainer

N_ITEMS, EPOCHS = 40, 3
MODEL = SASRecConfig(hidden=16, n_layers=1, max_len=8, dropout=0.0, loss="ce")  # no dropout: same RNG-free math
TRAIN = TrainConfig(epochs=EPOCHS, batch_size=30, lr=5e-3, warmup_steps=2, patience=0, progress=False, device="cpu")
LOSS_RTOL = 1e-4


def _data():
    rng = np.random.default_rng(0)
    seqs = []
    # Drifting walks over the catalog (learnable next-item structure), all of one length: every training
    # row then has the same number of target tokens, so the per-rank token means average to the global one.
    for _ in range(90):
        start, n = rng.integers(N_ITEMS), 9
        seqs.append(((start + np.cumsum(rng.integers(1, 3, n))) % N_ITEMS).tolist())
    return leave_one_out(Interactions.from_lists(seqs))


def _catalog():
    from types import SimpleNamespace

    return SimpleNamespace(n_items=N_ITEMS)


def _fit(run_dir: Path, train_cfg: TrainConfig = TRAIN) -> SASRec:
    split = _data()
    return SASRec(config=MODEL, train=train_cfg, run_dir=run_dir).fit(split.train, _catalog(), split.valid)


class _Stop(Exception):
    pass


def _worker(rank: int, port: int, out: str) -> None:
    torch.set_num_threads(1)
    distributed.init_local(rank, 2, port)
    out = Path(out)
    saves = []
    orig = Trainer._save
    Trainer._save = lambda self, *a: (saves.append(1), orig(self, *a))[1]
    m = _fit(out / "two")
    test = evaluate(m, _data().test, progress=False)
    # Resume at the same world size: stop both ranks during epoch 3, then resume.
    steps, calls, loss = m.result_.history[0]["steps"], [], SASRec._loss

    def stopping(self, net, batch):
        calls.append(1)
        if len(calls) > 2 * steps:
            raise _Stop
        return loss(self, net, batch)

    SASRec._loss = stopping
    with pytest.raises(_Stop):
        _fit(out / "resumed")
    SASRec._loss = loss
    r = _fit(out / "resumed", TrainConfig(**{**TRAIN.__dict__, "resume": True}))
    result = {"history": [h["train_loss"] for h in m.result_.history], "test": test, "saves": len(saves),
              "resumed": [h["train_loss"] for h in r.result_.history]}
    if rank == 0:
        torch.save(m.net_.state_dict(), out / "two_weights.pt")
    (out / f"rank{rank}.json").write_text(json.dumps(result))
    distributed.shutdown()


@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
    return _fit(tmp_path_factory.mktemp("one") / "run")


@pytest.fixture(scope="module")
def two_process(tmp_path_factory, one_process, free_port):
    # fork (after the 1-process fit has imported torch's optimizer stack) saves each worker the ~10 s import
    out = tmp_path_factory.mktemp("dist")
    torch.multiprocessing.start_processes(_worker, args=(free_port(), str(out)), nprocs=2, join=True,
                                          start_method="fork")
    return out, [json.loads((out / f"rank{r}.json").read_text()) for r in range(2)]


def test_loss_trajectory_matches_one_process(two_process, one_process):
    out, ranks = two_process
    one = one_process
    ref = [h["train_loss"] for h in one.result_.history]
    assert ref[-1] < ref[0]  # it learns
    for r in ranks:  # every rank logs the global loss
        np.testing.assert_allclose(r["history"], ref, rtol=LOSS_RTOL)
    w2 = torch.load(out / "two_weights.pt", weights_only=True)
    for k, v in one.net_.state_dict().items():
        torch.testing.assert_close(w2[k], v, rtol=1e-2, atol=1e-3)  # Adam: ~eps-sized grads


def test_rank0_alone_writes_checkpoints_and_logs(two_process):
    out, ranks = two_process
    assert [r["saves"] for r in ranks] == [EPOCHS + 2 + 1, 0]  # two + resumed (2 epochs, then 1 more)
    log = (out / "two" / "train_log.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in log] == list(range(EPOCHS))  # once each, not per rank
    state = json.loads((out / "two" / "ckpt" / "state.json").read_text())
    assert state["world_size"] == 2


def test_sharded_evaluation_equals_one_process_evaluation_of_same_weights(two_process, one_process):
    out, ranks = two_process
    assert ranks[0]["test"] == ranks[1]["test"]
    split = _data()
    m = copy.deepcopy(one_process)
    m.net_.load_state_dict(torch.load(out / "two_weights.pt", weights_only=True))
    assert evaluate(m, split.test, progress=False) == ranks[0]["test"]


def test_resume_same_world_size_replays_and_other_world_size_is_refused(two_process):
    out, ranks = two_process
    for r in ranks:
        np.testing.assert_allclose(r["resumed"], r["history"], rtol=1e-6)
    with pytest.raises(CheckpointError, match="2 process"):
        _fit(out / "two", TrainConfig(**{**TRAIN.__dict__, "resume": True, "epochs": EPOCHS + 1}))


def test_shard_batch_single_process_is_identity():
    b = {"input": torch.zeros(5, 3), "target": torch.zeros(5, 3)}
    part, w = distributed.shard_batch(b)
    assert part is b and w == 1.0
    assert distributed.shard_range(7) == (0, 7)


def test_without_nproc_strips_the_launcher_option():
    from semid.cli.main import _without_nproc

    assert _without_nproc(["run", "--nproc", "2", "--preset", "x", "--nproc=3", "--train.epochs=1"]) == [
        "run", "--preset", "x", "--train.epochs=1"]
