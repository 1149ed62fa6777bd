"""T5Rec: presets, seq2seq loss ignores padding, fit + recommend, reuse with two code spaces (MusicRec)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from semid.data.types import Catalog, EvalSet, Interactions
from semid.decoding import PrefixIndex, oracle_topk
from semid.errors import ConfigError
from semid.models.protocol import Recommender
from semid.models.t5rec import (
    T5Rec,
    T5RecConfig,
    build_t5,
    seq2seq_loss,
    t5_decode,
    t5_preset,
    t5_sequence_logp,
)
from semid.models.vocab import BOS, PAD, SemanticVocab
from semid.train.loop import TrainConfig

torch.set_num_threads(1)
TINY = dict(num_layers=1, num_decoder_layers=1, d_model=32, d_ff=64, num_heads=4, d_kv=8)


def test_tiger_preset_matches_paper():
    cfg = t5_preset("tiger")
    assert (
        cfg.num_layers,
        cfg.num_decoder_layers,
        cfg.d_model,
        cfg.d_ff,
        cfg.num_heads,
        cfg.d_kv,
        cfg.dropout,
    ) == (
        4,
        4,
        128,
        1024,
        6,
        64,
        0.1,
    )
    assert t5_preset("tiger", d_model=64).d_model == 64
    with pytest.raises(ConfigError, match="preset"):
        t5_preset("t5-huge")


def test_seq2seq_loss_ignores_target_padding():
    torch.manual_seed(0)
    model = build_t5(20, T5RecConfig(**TINY)).eval()
    src = torch.tensor([[BOS, 5, 6]])
    batch = {"src_ids": src, "src_mask": torch.ones_like(src), "tgt_ids": torch.tensor([[7, 8]])}
    padded = dict(batch, tgt_ids=torch.tensor([[7, 8, PAD, PAD]]))
    torch.testing.assert_close(seq2seq_loss(model, batch), seq2seq_loss(model, padded))


def test_fit_and_recommend_end_to_end():
    codes = np.array([[i % 4, i // 4] for i in range(12)])
    seqs = [[(s + j) % 12 for j in range(6)] for s in range(12)] * 2
    valid = EvalSet(
        histories=Interactions.from_lists([[s, (s + 1) % 12] for s in range(8)]),
        targets=Interactions.from_lists([[(s + 2) % 12] for s in range(8)]),
    )
    cfg = T5RecConfig(**TINY, max_history=4, valid_users=8, valid_beam=5, beam=12)
    train_cfg = TrainConfig(
        epochs=6, batch_size=32, lr=3e-3, warmup_steps=2, progress=False, device="cpu", patience=0
    )
    rec = T5Rec(codes=codes, codebook_sizes=[4, 3], config=cfg, train=train_cfg)
    assert isinstance(rec, Recommender)
    rec.fit(Interactions.from_lists(seqs), Catalog(item_ids=np.arange(12).astype(str)), valid)
    hist = rec.train_result_.history
    assert hist[-1]["train_loss"] < hist[0]["train_loss"]
    items, scores = rec.recommend([np.array([3, 4]), np.array([1])], k=12)
    assert items.shape == (2, 12) and sorted(items[0].tolist()) == list(range(12))
    assert np.isfinite(scores).all()


def test_building_blocks_with_two_code_spaces_and_task_tokens():
    # MusicRec-style vocabulary: a task prefix, text and image code namespaces; decode image codes only
    v = SemanticVocab()
    task = v.add_special("task:text2image")
    v.add_space("text", [3, 3])
    v.add_space("image", [3, 4])
    rng = np.random.default_rng(0)
    text = v.item_tokens("text", np.stack([np.arange(9) // 3, np.arange(9) % 3], 1))
    image = v.item_tokens("image", rng.permutation(12)[:9, None] // np.array([[4, 1]]) % np.array([[3, 4]]))
    torch.manual_seed(0)
    model = build_t5(v.size, T5RecConfig(**TINY)).eval()
    index = PrefixIndex.from_codes(image)
    src = torch.as_tensor(np.concatenate([[task], text[2]]))[None]
    res = t5_decode(model, src, torch.ones_like(src), index, beam=9, k=9)
    oi, os_ = oracle_topk(lambda c: t5_sequence_logp(model, src[0].numpy(), c), image, 9)
    assert res.items[0].tolist() == oi.tolist()
    np.testing.assert_allclose(res.scores[0].numpy(), os_, atol=1e-4)
    assert (res.tokens[0] >= v.space("image").offset).all()


def test_save_load_recommends_identically(tmp_path):
    codes = np.array([[i % 4, i // 4] for i in range(12)])
    seqs = [[(s + j) % 12 for j in range(6)] for s in range(12)]
    cfg = T5RecConfig(**TINY, max_history=4, valid_users=8, valid_beam=5, beam=12)
    train_cfg = TrainConfig(epochs=1, batch_size=32, warmup_steps=1, progress=False, device="cpu", patience=0)
    rec = T5Rec(codes=codes, codebook_sizes=[4, 3], config=cfg, train=train_cfg)
    rec.fit(Interactions.from_lists(seqs), Catalog(item_ids=np.arange(12).astype(str)))
    rec.save(tmp_path / "m")
    back = T5Rec.load(tmp_path / "m")
    np.testing.assert_array_equal(back.codes_, codes)
    hs = [np.array([3, 4]), np.array([1])]
    for a, b in zip(rec.recommend(hs, 12), back.recommend(hs, 12), strict=True):
        np.testing.assert_array_equal(a, b)
