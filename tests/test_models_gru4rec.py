"""GRU4Rec on a tiny deterministic pattern (item i is followed by i+1): loss falls, beats MostPopular."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from semid.data.types import Catalog, EvalSet, Interactions
from semid.errors import CheckpointError, ConfigError
from semid.eval import evaluate
from semid.models.gru4rec import GRU4Rec, GRU4RecConfig
from semid.models.popular import MostPopular
from semid.models.protocol import Recommender
from semid.train.loop import TrainConfig

N_ITEMS = 20


def _data(seed=0):
    rng = np.random.default_rng(seed)
    seqs = []
    for _ in range(120):
        start, n = int(rng.integers(0, N_ITEMS)), int(rng.integers(4, 9))
        seqs.append([(start + j) % N_ITEMS for j in range(n)])
    # a popularity skew so MostPopular is not uniform: item 0 appears in many extra short sequences
    seqs += [[0, 0, 0]] * 10
    train = Interactions.from_lists([s[:-1] for s in seqs[:120]] + seqs[120:])
    hist = Interactions.from_lists([s[:-1] for s in seqs[:40]])
    valid = EvalSet(hist, Interactions.from_lists([[s[-1]] for s in seqs[:40]]))
    return train, valid, Catalog(item_ids=[str(i) for i in range(N_ITEMS)])


@pytest.fixture(scope="module")
def fitted():
    train, valid, cat = _data()
    cfg = GRU4RecConfig(embedding=32, hidden=32, max_len=10, dropout=0.0)
    tc = TrainConfig(epochs=10, batch_size=32, lr=1e-2, warmup_steps=5, patience=0, device="cpu", progress=False)
    return GRU4Rec(config=cfg, train=tc).fit(train, cat, valid), train, valid, cat


def test_loss_falls_and_beats_most_popular(fitted):
    model, train, valid, cat = fitted
    hist = model.result_.history
    assert hist[-1]["train_loss"] < 0.5 * hist[0]["train_loss"]
    assert "valid" in hist[-1] and hist[-1]["valid"]["NDCG@10"] > 0  # validation ran every epoch
    m = evaluate(model, valid, ks=(1, 5, 10), progress=False)
    pop = evaluate(MostPopular().fit(train, cat), valid, ks=(1, 5, 10), progress=False)
    assert m["HR@1"] > 0.9 and m["NDCG@10"] > pop["NDCG@10"] + 0.5
    items, _ = model.recommend([np.array([3, 4, 5])], k=1)
    assert items[0, 0] == 6
    assert isinstance(model, Recommender)


def test_recommend_shape_and_unique_items(fitted):
    model = fitted[0]
    hs = [np.array([], dtype=np.int64), np.array([1]), np.arange(15) % N_ITEMS]
    items, scores = model.recommend(hs, k=25)
    assert items.shape == scores.shape == (3, 25) and items.dtype == np.int64
    assert (items[:, :N_ITEMS] >= 0).all() and (items[:, N_ITEMS:] == -1).all()
    assert np.isneginf(scores[:, N_ITEMS:]).all()
    for row in items:
        assert len(set(row[row >= 0].tolist())) == N_ITEMS  # every item once, none twice
    assert (np.diff(scores[:, :N_ITEMS], axis=1) <= 0).all()  # best first


def test_padding_never_changes_a_prediction(fitted):
    """Reference: each history scored alone (no padding) equals the same history inside a padded batch."""
    model = fitted[0]
    hs = [np.array([4]), np.array([1, 2, 3, 4, 5, 6]), np.array([], dtype=np.int64), np.array([9, 8, 7])]
    batch = model.score(hs)
    for r, h in enumerate(hs):
        torch.testing.assert_close(batch[r], model.score([h])[0], rtol=1e-5, atol=1e-5)


def test_save_load_round_trip_and_bad_checkpoints(fitted, tmp_path):
    model = fitted[0]
    d = model.save(tmp_path / "m")
    loaded = GRU4Rec.load(d)
    hs = [np.array([1, 2]), np.array([7])]
    torch.testing.assert_close(model.score(hs), loaded.score(hs), rtol=0, atol=0)
    assert loaded.item_embeddings().shape == (N_ITEMS, 32)
    with pytest.raises(CheckpointError, match="config.json"):
        GRU4Rec.load(tmp_path / "nothing")
    (d / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="model.safetensors"):
        GRU4Rec.load(d)


def test_bad_config_is_a_config_error():
    with pytest.raises(ConfigError, match="stride"):
        GRU4Rec(config=GRU4RecConfig(max_len=4, stride=9))


def test_recommend_masks_excluded_items(fitted):
    model = fitted[0]
    items, _ = model.recommend([np.array([3, 4, 5])], k=3, exclude=[np.array([6])])
    assert 6 not in items[0] and (items[0] >= 0).all()
