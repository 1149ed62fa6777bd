"""MusicRec multi-task generation: the merge rule, task validation, and a tiny model that learns."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from semid.data.types import EvalSet, Interactions
from semid.errors import ConfigError
from semid.models.musicrec_gen import MusicRecGenConfig, MusicRecGenerator, merge_ranked
from semid.models.protocol import Recommender
from semid.models.t5rec import T5RecConfig
from semid.train.loop import TrainConfig

torch.set_num_threads(1)  # 2 shared cores: keep tiny fits single-threaded

TINY = T5RecConfig(
    num_layers=1, num_decoder_layers=1, d_model=32, d_ff=64, num_heads=2, d_kv=16, beam=6, valid_users=10
)


def test_merge_sums_probabilities_with_floors():
    ln = np.log
    text = (np.array([[3, 1, 2, -1]]), np.array([[ln(0.5), ln(0.3), ln(0.1), -np.inf]]))
    image = (np.array([[1, 4, 3, 5]]), np.array([[ln(0.4), ln(0.3), ln(0.2), ln(0.05)]]))
    items, scores = merge_ranked([text, image], k=6)
    # 1: .3+.4=.7; 3: .5+.2=.7 (tie -> smaller id first); 4: .1(text floor)+.3; 2: .1+.05(image floor);
    # 5: .1 + .05
    assert items.tolist() == [[1, 3, 4, 2, 5, -1]]
    np.testing.assert_allclose(scores[0, :5], [0.7, 0.7, 0.4, 0.15, 0.15], rtol=1e-5)
    assert scores[0, 5] == -np.inf
    one, _ = merge_ranked([text], k=2)  # a single list keeps its own order
    assert one.tolist() == [[3, 1]]


def test_tasks_must_match_spaces():
    text = np.arange(8)[:, None]
    with pytest.raises(ConfigError, match="needs ID spaces"):
        MusicRecGenerator(spaces={"text": text}, config=MusicRecGenConfig(tasks=("uni_text", "t2i")))
    with pytest.raises(ConfigError, match="unknown"):
        MusicRecGenerator(spaces={"text": text}, config=MusicRecGenConfig(tasks=("bogus",)))


def test_tiny_multitask_model_learns_and_recommends():
    n = 24
    text = np.stack([np.arange(n) // 6, np.arange(n) % 6], 1)
    image = np.stack([np.arange(n) % 4, np.arange(n) // 4], 1)
    seqs = [(np.arange(5) + s) % n for s in range(48)]  # next item = previous + 1
    train = Interactions.from_lists([s[:-1] for s in seqs])
    valid = EvalSet(
        Interactions.from_lists([s[:-2] for s in seqs]), Interactions.from_lists([s[-2:-1] for s in seqs])
    )
    gen = MusicRecGenerator(
        spaces={"text": text, "image": image},
        config=MusicRecGenConfig(t5=TINY),
        train=TrainConfig(epochs=4, batch_size=64, lr=5e-3, warmup_steps=2, progress=False, patience=0),
    )
    assert isinstance(gen, Recommender)
    gen.fit(train, None, valid)
    losses = [h["train_loss"] for h in gen.result_.history]
    assert losses[-1] < losses[0]
    items, scores = gen.recommend([s[:-1] for s in seqs[:5]], k=8)
    assert items.shape == (5, 8) and scores.dtype == np.float32
    for row, sc in zip(items, scores, strict=True):
        got = row[row >= 0]
        assert len(got) == len(set(got.tolist())) and (got < n).all() and len(got) >= 6
        assert (np.diff(sc[np.isfinite(sc)]) <= 1e-7).all()


def test_save_load_recommends_identically(tmp_path):
    n = 12
    text = np.stack([np.arange(n) // 4, np.arange(n) % 4], 1)
    image = np.stack([np.arange(n) % 3, np.arange(n) // 3], 1)
    train = Interactions.from_lists([(np.arange(4) + s) % n for s in range(12)])
    gen = MusicRecGenerator(
        spaces={"text": text, "image": image}, config=MusicRecGenConfig(t5=TINY),
        train=TrainConfig(epochs=1, batch_size=64, warmup_steps=1, progress=False, patience=0, device="cpu"),
    ).fit(train)
    gen.save(tmp_path / "m")
    back = MusicRecGenerator.load(tmp_path / "m")
    assert back.config == gen.config and sorted(back.spaces) == ["image", "text"]
    hs = [np.array([1, 2]), np.array([5])]
    for a, b in zip(gen.recommend(hs, 6), back.recommend(hs, 6), strict=True):
        np.testing.assert_array_equal(a, b)
