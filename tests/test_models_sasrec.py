"""SASRec on a tiny deterministic pattern (item i is followed by i+1): loss falls, pattern recommended."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from semid.data.types import Catalog, EvalSet, Interactions
from semid.errors import CheckpointError
from semid.eval import evaluate
from semid.models.protocol import Recommender
from semid.models.sasrec import SASRec, SASRecConfig
from semid.train.loop import TrainConfig

N_ITEMS = 20


def _data(seed=0):
    rng = np.random.default_rng(seed)
    seqs = []
    for _ in range(120):
        start, n = int(rng.integers(0, N_ITEMS)), int(rng.integers(4, 9))
        seqs.append([(start + j) % N_ITEMS for j in range(n)])
    train = Interactions.from_lists([s[:-1] for s in seqs])
    hist = Interactions.from_lists([s[:-1] for s in seqs[:40]])
    valid = EvalSet(hist, Interactions.from_lists([[s[-1]] for s in seqs[:40]]))
    return train, valid, Catalog(item_ids=[str(i) for i in range(N_ITEMS)])


@pytest.fixture(scope="module")
def fitted():
    torch.set_num_threads(1)
    train, valid, cat = _data()
    cfg = SASRecConfig(hidden=32, n_layers=1, max_len=10, dropout=0.1)
    tc = TrainConfig(
        epochs=15, batch_size=32, lr=5e-3, warmup_steps=5, patience=0, device="cpu", progress=False
    )
    return SASRec(config=cfg, train=tc).fit(train, cat, valid), valid


def test_loss_falls_and_pattern_is_learned(fitted):
    model, valid = fitted
    hist = model.result_.history
    assert hist[-1]["train_loss"] < 0.5 * hist[0]["train_loss"]
    m = evaluate(model, valid, ks=(1, 5), progress=False)
    assert m["HR@1"] > 0.9
    items, _ = model.recommend([np.array([3, 4, 5])], k=1)
    assert items[0, 0] == 6
    assert isinstance(model, Recommender)


def test_save_load_round_trip(fitted, tmp_path):
    model, _ = fitted
    model.save(tmp_path / "m")
    loaded = SASRec.load(tmp_path / "m")
    hs = [np.array([1, 2]), np.array([7]), np.array([], dtype=np.int64)]
    torch.testing.assert_close(model.score(hs), loaded.score(hs), rtol=0, atol=0)
    emb = loaded.item_embeddings()
    assert emb.shape == (N_ITEMS, 32) and emb.dtype == np.float32
    path = loaded.export_embeddings(tmp_path / "emb.npy")
    np.testing.assert_array_equal(np.load(path), emb)


def test_empty_history_and_short_k(fitted):
    model, _ = fitted
    items, scores = model.recommend([np.array([], dtype=np.int64), np.arange(15) % N_ITEMS], k=25)
    assert items.shape == (2, 25) and (items[:, :N_ITEMS] >= 0).all() and (items[:, N_ITEMS:] == -1).all()
    assert np.isneginf(scores[:, N_ITEMS:]).all()


def test_bad_checkpoints_name_the_file(fitted, tmp_path):
    model, _ = fitted
    with pytest.raises(CheckpointError, match="config.json"):
        SASRec.load(tmp_path / "nothing")
    d = model.save(tmp_path / "m")
    (d / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="model.safetensors"):
        SASRec.load(d)


def test_bce_loss_runs():
    train, _, cat = _data(1)
    tc = TrainConfig(epochs=1, batch_size=64, device="cpu", progress=False)
    m = SASRec(config=SASRecConfig(hidden=16, n_layers=1, max_len=8, loss="bce"), train=tc).fit(train, cat)
    assert np.isfinite(m.result_.history[0]["train_loss"])
