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


# ---------------------------------------------------------------- every train target is used once


def _unique_item_train(lengths):
    """Sequences whose every occurrence is a distinct item, so a target token names its (user, position)."""
    seqs, nxt = [], 0
    for m in lengths:
        seqs.append(list(range(nxt, nxt + m)))
        nxt += m
    return Interactions.from_lists(seqs), Catalog(item_ids=[str(i) for i in range(nxt)])


def _captured_epoch(monkeypatch, model, train, cat):
    """Run fit() with a Trainer that records one epoch of batches instead of training."""
    import semid.models.sasrec as sasrec_mod
    from semid.train.loop import TrainResult

    seen = []

    class _Recorder:
        def __init__(self, *a, **k):
            pass

        def fit(self, net, batches, loss_fn, validate=None, **kw):
            for b in batches(0, np.random.default_rng(0)):
                seen.append((b["input"].numpy(), b["target"].numpy()))
                assert torch.isfinite(loss_fn(net, b))
            return TrainResult()

    monkeypatch.setattr(sasrec_mod, "Trainer", _Recorder)
    model.fit(train, cat)
    return seen


@pytest.mark.parametrize("stride", [0, 1, 3, 8])
def test_every_train_target_is_used_exactly_once(monkeypatch, stride):
    """Regression: SASRec used to train on each user's last max_len + 1 items only (a quarter of
    MovieLens's train targets). Every position >= 1 of every train sequence must be a target once,
    after a context that is exactly the items before it, at least max_len - stride + 1 of them."""
    L = 8
    lengths = [1, 2, 5, 8, 9, 10, 17, 30, 41]
    train, cat = _unique_item_train(lengths)
    cfg = SASRecConfig(hidden=8, n_layers=1, max_len=L, stride=stride)
    tc = TrainConfig(epochs=1, batch_size=3, device="cpu", progress=False)
    seen = _captured_epoch(monkeypatch, SASRec(config=cfg, train=tc), train, cat)
    s_eff = stride or L // 2
    starts = {int(it): int(train.offsets[u]) for u in range(train.n_users) for it in train.seq(u)}
    targets = sorted(int(t) - 1 for _, tgt in seen for t in tgt[tgt > 0])
    expected = [int(i) for u in range(train.n_users) for i in train.seq(u)[1:]]
    assert len(targets) == sum(m - 1 for m in lengths)
    assert targets == expected  # each target exactly once
    for inp, tgt in seen:
        for r, c in zip(*np.nonzero(tgt), strict=True):
            item = int(tgt[r, c]) - 1
            ctx = inp[r, : c + 1]
            ctx = ctx[ctx > 0] - 1
            assert ctx.tolist() == list(range(item - len(ctx), item))  # the items right before it
            assert min(item - starts[item], L - s_eff + 1) <= len(ctx) <= L


def test_stride_one_gives_every_target_its_full_history(monkeypatch):
    """stride=1 is RecBole's one-example-per-prefix: each target sees min(t, max_len) items."""
    L = 4
    train, cat = _unique_item_train([3, 7])
    cfg = SASRecConfig(hidden=8, n_layers=1, max_len=L, stride=1)
    tc = TrainConfig(epochs=1, batch_size=4, device="cpu", progress=False)
    seen = _captured_epoch(monkeypatch, SASRec(config=cfg, train=tc), train, cat)
    pairs = set()
    for inp, tgt in seen:
        for r, c in zip(*np.nonzero(tgt), strict=True):
            ctx = inp[r, : c + 1]
            pairs.add((tuple((ctx[ctx > 0] - 1).tolist()), int(tgt[r, c]) - 1))
    want = {((0,), 1), ((0, 1), 2)}
    want |= {(tuple(range(max(3, 3 + t - L), 3 + t)), 3 + t) for t in range(1, 7)}
    assert pairs == want


def test_bad_stride_is_a_config_error():
    from semid.errors import ConfigError

    train, cat = _unique_item_train([5])
    with pytest.raises(ConfigError, match="stride"):
        SASRec(config=SASRecConfig(max_len=4, stride=5), train=TrainConfig(progress=False)).fit(train, cat)


def test_no_sequence_to_learn_from_is_a_data_error():
    from semid.errors import DataError

    train, cat = _unique_item_train([1, 1])
    with pytest.raises(DataError, match="2 or more items"):
        SASRec(train=TrainConfig(progress=False)).fit(train, cat)
