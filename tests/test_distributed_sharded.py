"""Two CPU processes (gloo): in-training validation sharded over the ranks, and FusID trained data-parallel.

Sharded validation: each rank ranks its slice of an odd number of users (uneven slices, and a 1-user set
where one rank's slice is empty); the all-reduced means equal one process's metric on the same weights
(float64 summation order: rtol 1e-12) and both ranks keep the same history and stop at the same epoch.
FusID: each rank trains the fusion net on its part of every pair batch; weights, BatchNorm statistics and
codes come out identical on both ranks, the codes are conflict-free and the loss falls.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from semid.eval.metrics import ndcg_recall_at
from semid.train import distributed
from semid.train.loop import TrainConfig, Trainer
from semid.train.validation import ShardedValidation, ndcg_recall_rows, reduce_means, topk_validation

N_ITEMS, N_VALID, EPOCHS = 30, 45, 12  # 45 users: slices of 22 and 23
TRAIN = TrainConfig(epochs=EPOCHS, batch_size=40, lr=0.3, warmup_steps=1, patience=1, progress=False,
                    device="cpu", metric="NDCG@10", seed=3)


class Bigram(nn.Module):
    """Next-item scores from the last item alone: logits (B, N_ITEMS) = table[last]."""

    def __init__(self):
        super().__init__()
        self.table = nn.Embedding(N_ITEMS, N_ITEMS)

    def forward(self, last: torch.Tensor) -> torch.Tensor:
        return self.table(last)


def _walks(n: int, seed: int) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    return [((rng.integers(N_ITEMS) + np.cumsum(rng.integers(1, 4, 6))) % N_ITEMS).tolist() for _ in range(n)]


def _recommend(model: nn.Module, histories: list[np.ndarray], k: int) -> np.ndarray:
    last = torch.as_tensor([int(h[-1]) for h in histories], dtype=torch.long)
    return torch.topk(model(last), k, dim=1).indices.numpy()


def _validation(n: int = N_VALID) -> ShardedValidation:
    walks = _walks(n, seed=1)
    targets = [np.asarray(w[-1:]) for w in walks]
    if n > 4:
        targets[4] = np.zeros(0, np.int64)  # a user without a target does not count
    return topk_validation(_recommend, [np.asarray(w[:-1]) for w in walks], targets, k=10)


def _fit_bigram():
    pairs = np.asarray([(w[i], w[i + 1]) for w in _walks(120, seed=0) for i in range(len(w) - 1)])
    x, y = torch.from_numpy(pairs[:, 0]), torch.from_numpy(pairs[:, 1])

    def batches(epoch, rng):
        order = torch.from_numpy(rng.permutation(len(x)))
        for s in range(0, len(x), TRAIN.batch_size):
            idx = order[s : s + TRAIN.batch_size]
            yield {"last": x[idx], "next": y[idx]}

    torch.manual_seed(0)
    model = Bigram()
    res = Trainer(TRAIN).fit(model, batches, lambda m, b: nn.functional.cross_entropy(m(b["last"]), b["next"]),
                             _validation(), steps_per_epoch=-(-len(x) // TRAIN.batch_size))
    return model, res


def _fusid():
    from test_tokenizers_fusid import _cfg, _data

    from semid.tokenizers.fusid import FusID

    cat, train = _data()
    cfg = _cfg()
    return FusID(config=dataclasses.replace(cfg, training=dataclasses.replace(cfg.training, epochs=3))).fit(cat, train)


def _digest(state: dict) -> str:
    h = hashlib.sha256()
    for k in sorted(state):
        h.update(k.encode() + state[k].detach().cpu().numpy().tobytes())
    return h.hexdigest()


def _worker(rank: int, port: int, out: str) -> None:
    torch.set_num_threads(1)
    distributed.init_local(rank, 2, port)
    out = Path(out)
    model, res = _fit_bigram()
    model.eval()
    with torch.no_grad():
        final = _validation()(model)
        tiny = _validation(1)(model)  # rank 1's slice is empty: it still joins the reduction
    tok = _fusid()
    result = {"history": [h["valid"] for h in res.history], "epochs_run": res.epochs_run,
              "stopped_early": res.stopped_early, "best_epoch": res.best_epoch, "final": final, "tiny": tiny,
              "codes": tok.codes_.tolist(), "fusion": _digest(tok.fusion_.state_dict()),
              "loss_log": [e["total"] for e in tok.loss_log_], "conflict_rate_final": tok.report_["conflict_rate_final"]}
    if rank == 0:
        torch.save(model.state_dict(), out / "bigram.pt")
    (out / f"rank{rank}.json").write_text(json.dumps(result))
    distributed.shutdown()


@pytest.fixture(scope="module")
def two_process(tmp_path_factory, free_port):
    out = tmp_path_factory.mktemp("sharded")
    torch.multiprocessing.start_processes(_worker, args=(free_port(), str(out)), nprocs=2, join=True,
                                          start_method="fork")
    return out, [json.loads((out / f"rank{r}.json").read_text()) for r in range(2)]


def test_sharded_validation_equals_one_process_metric_on_same_weights(two_process):
    out, ranks = two_process
    model = Bigram()
    model.load_state_dict(torch.load(out / "bigram.pt", weights_only=True))
    model.eval()
    with torch.no_grad():
        one, tiny = _validation()(model), _validation(1)(model)
    for r in ranks:
        assert r["final"].keys() == one.keys() == {"NDCG@10", "Recall@10"}
        for name, v in one.items():
            np.testing.assert_allclose(r["final"][name], v, rtol=1e-12)
            np.testing.assert_allclose(r["tiny"][name], tiny[name], rtol=1e-12)
    assert 0 < one["NDCG@10"] < 1


def test_ranks_share_validation_history_and_stop_at_the_same_epoch(two_process):
    _, (r0, r1) = two_process
    assert r0["history"] == r1["history"]  # the same floats: every rank got the all-reduced means
    assert (r0["epochs_run"], r0["best_epoch"], r0["stopped_early"]) == (
        r1["epochs_run"], r1["best_epoch"], r1["stopped_early"])
    assert r0["stopped_early"] and r0["epochs_run"] < EPOCHS  # early stopping fired, on both ranks together


def test_fusid_data_parallel_gives_identical_conflict_free_codes(two_process):
    _, (r0, r1) = two_process
    assert r0["fusion"] == r1["fusion"]  # weights and BatchNorm running statistics identical on both ranks
    assert r0["codes"] == r1["codes"]
    assert len({tuple(c) for c in r0["codes"]}) == len(r0["codes"]) and r0["conflict_rate_final"] == 0.0
    for r in (r0, r1):
        assert r["loss_log"][-1] < r["loss_log"][0]  # each rank's part of the batches: the loss falls
    assert r0["loss_log"] != r1["loss_log"]  # the ranks trained on different parts of every batch


# ------------------------------------------------------------------ one process: reference parity
def test_topk_validation_equals_ndcg_recall_at_in_one_process():
    torch.manual_seed(0)
    model = Bigram().eval()
    val = _validation()
    walks = _walks(N_VALID, seed=1)
    hists = [np.asarray(w[:-1]) for w in walks]
    targets = [w[-1:] for w in walks]
    targets[4] = []
    from semid.data.types import Interactions

    with torch.no_grad():
        ref = ndcg_recall_at(_recommend(model, hists, 10), Interactions.from_lists(targets), 10)
        got = val(model)
    assert got.keys() == ref.keys()
    for k in ref:
        np.testing.assert_allclose(got[k], ref[k], rtol=1e-12)


def test_reduce_means_skips_nan_and_empty_metrics():
    assert reduce_means({"a": np.array([1.0, np.nan, 3.0]), "b": np.array([np.nan])}) == {"a": 2.0, "b": 0.0}
    assert reduce_means({}) == {}
    rows = ndcg_recall_rows(np.array([[1, 2], [3, 4]]), [np.array([2]), np.zeros(0, np.int64)], 2)
    assert rows["Recall@2"][0] == 1.0 and np.isnan(rows["Recall@2"][1])
    np.testing.assert_allclose(rows["NDCG@2"][0], 1 / np.log2(3))
