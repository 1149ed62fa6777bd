"""GPT2Rec: vocabulary round trips, next-item examples and batches, loss on targets only, fit + recommend."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from semid.data.types import Catalog, EvalSet, Interactions
from semid.errors import ConfigError, DataError
from semid.models.code_batches import decoder_batch, seq2seq_batch, sequence_batch
from semid.models.gpt2rec import GPT2Rec, GPT2RecConfig, gpt2_loss, gpt2_sequence_logp, gpt2_sequence_loss
from semid.models.next_item_examples import NextItemExamples, SequenceWindows, history_matrix
from semid.models.protocol import Recommender
from semid.models.vocab import BOS, EOS, PAD, SEP, SemanticVocab
from semid.train.loop import TrainConfig

torch.set_num_threads(1)


# ---------------------------------------------------------------------------------------------- vocab
def test_vocab_layout_and_round_trip():
    v = SemanticVocab()
    assert (v.special("pad"), v.special("eos"), v.special("bos"), v.special("sep")) == (PAD, EOS, BOS, SEP)
    task = v.add_special("task:u2i")
    text = v.add_space("text", [4, 3])
    image = v.add_space("image", [2, 2])
    assert task == 4 and text.offset == 5 and image.offset == 12 and v.size == 16
    codes = np.array([[0, 0], [3, 2]])
    tok = v.item_tokens("text", codes)
    assert tok.tolist() == [[5, 9], [8, 11]]
    assert (v.item_codes("text", tok) == codes).all()
    assert (v.item_codes("image", tok) == -1).all()  # not that space's tokens
    assert v.decode_names([BOS, 5, 11, SEP]) == "<bos><text:a_0><text:b_2><sep>"
    v.set_namer("text", lambda s, p, c: f"<{'ab'[p]}.{c}>")
    assert v.token_name(11) == "<b.2>"
    assert SemanticVocab.from_dict(v.to_dict()).to_dict() == v.to_dict()
    with pytest.raises(DataError):
        v.item_tokens("text", np.array([[4, 0]]))
    with pytest.raises(ConfigError):
        v.space("audio")


# ---------------------------------------------------------------------------------------------- examples
def test_examples_cap_history_and_skip_first_position():
    train = Interactions.from_lists([[0, 1, 2, 3], [4], [5, 6]])
    ex = NextItemExamples(train, max_history=2)
    assert len(ex) == 3 + 0 + 1
    H, y = ex.take(np.arange(len(ex)))
    assert y.tolist() == [1, 2, 3, 6]
    assert H.tolist() == [[-1, 0], [0, 1], [1, 2], [-1, 5]]
    a = ex.batch_indices(2, np.random.default_rng([0, 3]))
    b = ex.batch_indices(2, np.random.default_rng([0, 3]))
    assert all((x == z).all() for x, z in zip(a, b, strict=True))  # deterministic by (seed, epoch)
    assert history_matrix([np.array([7, 8, 9]), np.array([], np.int64)], 2).tolist() == [[8, 9], [-1, -1]]


@pytest.mark.parametrize("max_history", [1, 2, 3, 7])
def test_sequence_windows_cover_the_same_pairs_as_next_item_examples(max_history):
    rng = np.random.default_rng(max_history)
    train = Interactions.from_lists([rng.integers(0, 50, n).tolist() for n in [0, 1, 2, 3, 5, 8, 13, 21]])
    win = SequenceWindows(train, max_history=max_history)
    W = win.take(np.arange(len(win)))  # (E, N + 1)
    pairs = []
    for row in W.tolist():
        real = [i for i in row if i >= 0]
        assert 2 <= len(real) <= max_history + 1
        pairs += [(tuple(real[max(0, t - max_history) : t]), real[t]) for t in range(1, len(real))]
    ex = NextItemExamples(train, max_history=max_history)
    H, y = ex.take(np.arange(len(ex)))
    want = [(tuple(i for i in h if i >= 0), t) for h, t in zip(H.tolist(), y.tolist(), strict=True)]
    assert win.n_targets() == len(ex)
    # Context inside a window can be shorter than in NextItemExamples (a window does not look back past
    # its first item) but the targets are the same multiset and each context is a suffix of the full one.
    assert sorted(t for _, t in pairs) == sorted(t for _, t in want)
    assert len(pairs) == len(want)


def test_sequence_batch_labels_mark_items_after_the_first():
    item_tokens = np.array([[10, 20], [11, 21], [12, 22]])
    W = np.array([[-1, 0, 1], [2, 1, 0]])
    b = sequence_batch(W, item_tokens)
    assert b["input_ids"].tolist() == [[PAD, PAD, BOS, 10, 20, 11, 21], [BOS, 12, 22, 11, 21, 10, 20]]
    assert b["labels"].tolist() == [[-100] * 5 + [11, 21], [-100] * 3 + [11, 21, 10, 20]]
    assert b["position_ids"][0].tolist() == [0, 0, 0, 1, 2, 3, 4]


def test_sequence_loss_is_the_mean_next_item_log_prob_over_all_targets():
    """One forward over a window == scoring each target after its own (unpadded) prefix."""
    rec = _rec().init_model()
    W = np.array([[-1, -1, 1, 2, 3], [4, 5, 6, 7, 8]])
    b = sequence_batch(W, rec.item_tokens_)
    lps = []
    for row in W.tolist():
        real = [i for i in row if i >= 0]
        for t in range(1, len(real)):
            ctx = rec.context(np.array(real[:t]))
            lps.append(gpt2_sequence_logp(rec.model_, ctx, rec.item_tokens_[[real[t]]])[0])
    # CE is per token: mean over all 2-token targets == -sum(log p(item)) / (2 * n_targets)
    want = -np.sum(lps) / (2 * len(lps))
    torch.testing.assert_close(gpt2_sequence_loss(rec.model_, b), torch.tensor(want, dtype=torch.float32),
                               atol=1e-5, rtol=1e-5)
    with pytest.raises(ConfigError, match="objective"):
        GPT2Rec(config=GPT2RecConfig(objective="last"))


def test_batches_left_pad_with_positions_from_first_token():
    item_tokens = np.array([[10, 20], [11, 21], [12, 22]])
    H = np.array([[-1, 0], [1, 2]])
    b = decoder_batch(H, item_tokens, targets=np.array([2, 0]))
    assert b["input_ids"].tolist() == [
        [PAD, PAD, BOS, 10, 20, SEP, 12, 22],
        [BOS, 11, 21, 12, 22, SEP, 10, 20],
    ]
    assert b["position_ids"][0].tolist() == [0, 0, 0, 1, 2, 3, 4, 5]
    assert b["attention_mask"][0].tolist() == [0, 0, 1, 1, 1, 1, 1, 1]
    assert b["target_ids"].tolist() == [[12, 22], [10, 20]]
    s = seq2seq_batch(H, item_tokens, targets=np.array([2, 0]))
    assert s["src_ids"].tolist() == [[PAD, PAD, BOS, 10, 20], [BOS, 11, 21, 12, 22]]
    assert s["tgt_ids"].tolist() == [[12, 22, EOS], [10, 20, EOS]]


def _rec(objective="sequence", **kw):
    codes = np.array([[i % 4, i // 4] for i in range(12)])
    cfg = GPT2RecConfig(n_layer=1, n_embd=32, n_head=4, max_history=4, valid_users=8, valid_beam=5, beam=12,
                        objective=objective)
    return GPT2Rec(codes=codes, codebook_sizes=[4, 3], config=cfg, **kw)


def test_loss_is_on_target_tokens_only():
    torch.manual_seed(0)
    rec = _rec().init_model()
    b = decoder_batch(
        history_matrix([np.array([1, 2]), np.array([3])], 4), rec.item_tokens_, np.array([5, 6])
    )
    loss = gpt2_loss(rec.model_, b)
    logits = rec.model_(
        input_ids=b["input_ids"], attention_mask=b["attention_mask"], position_ids=b["position_ids"]
    ).logits
    lp = torch.log_softmax(logits[:, -3:-1], -1).gather(2, b["target_ids"][:, :, None])
    torch.testing.assert_close(loss, -lp.mean(), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("objective", ["sequence", "next"])
def test_fit_and_recommend_end_to_end(tmp_path, objective):
    # two deterministic "next item = item + 1" chains: the model should learn them quickly
    seqs = [[(s + j) % 12 for j in range(6)] for s in range(12)] * 2
    train = Interactions.from_lists(seqs)
    catalog = Catalog(item_ids=np.arange(12).astype(str))
    valid = EvalSet(
        histories=Interactions.from_lists([[s, (s + 1) % 12] for s in range(8)]),
        targets=Interactions.from_lists([[(s + 2) % 12] for s in range(8)]),
    )
    train_cfg = TrainConfig(
        epochs=6, batch_size=32, lr=3e-3, warmup_steps=2, progress=False, device="cpu", patience=0
    )
    rec = _rec(objective, train=train_cfg, run_dir=tmp_path / "run")
    assert isinstance(rec, Recommender)
    rec.fit(train, catalog, valid)
    hist = rec.train_result_.history
    assert hist[-1]["train_loss"] < hist[0]["train_loss"]
    assert "NDCG@10" in hist[-1]["valid"]
    assert (tmp_path / "run" / "ckpt" / "model.safetensors").exists()
    items, scores = rec.recommend([np.array([3, 4]), np.array([], np.int64)], k=5)
    assert items.shape == (2, 5) and (items >= 0).all() and len(set(items[0].tolist())) == 5
    assert np.isfinite(scores).all()


def test_needs_codes_or_tokenizer():
    with pytest.raises(ConfigError, match="tokenizer"):
        GPT2Rec().setup()
    with pytest.raises(ConfigError, match="fit"):
        _rec().recommend([np.array([1])], k=3)


def test_init_is_seeded_by_the_train_config():
    """Two fits with the same seed give the same weights, whatever consumed the global torch RNG before."""
    seqs = [[(s + j) % 12 for j in range(6)] for s in range(12)]
    train, catalog = Interactions.from_lists(seqs), Catalog(item_ids=np.arange(12).astype(str))
    cfg = TrainConfig(epochs=1, batch_size=32, warmup_steps=1, progress=False, device="cpu", patience=0)
    a = _rec(train=cfg).fit(train, catalog)
    torch.rand(1000)
    b = _rec(train=cfg).fit(train, catalog)
    for (name, x), (_, y) in zip(a.model_.state_dict().items(), b.model_.state_dict().items(), strict=True):
        torch.testing.assert_close(x, y, msg=f"{name} differs between two seeded fits")


def test_save_load_recommends_identically(tmp_path):
    from semid.errors import CheckpointError
    from semid.models.t5rec import T5Rec

    seqs = [[(s + j) % 12 for j in range(6)] for s in range(12)]
    train_cfg = TrainConfig(epochs=1, batch_size=32, warmup_steps=1, progress=False, device="cpu", patience=0)
    rec = _rec("next", train=train_cfg).fit(Interactions.from_lists(seqs), Catalog(item_ids=np.arange(12).astype(str)))
    rec.save(tmp_path / "m")
    back = GPT2Rec.load(tmp_path / "m")
    assert back.config == rec.config and back.tokenizer is None
    hs = [np.array([3, 4]), np.array([], np.int64), np.array([7])]
    for a, b in zip(rec.recommend(hs, 6), back.recommend(hs, 6), strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(CheckpointError, match="not 't5rec'"):
        T5Rec.load(tmp_path / "m")
    # The weights file alone can be swapped for another of the same network (e.g. ckpt/best.safetensors).
    with pytest.raises(CheckpointError, match="missing"):
        GPT2Rec.load(tmp_path / "m", weights=tmp_path / "m" / "nope.safetensors")


def test_batches_are_decoded_side_by_side_with_the_same_results(monkeypatch):
    """On CPU, recommend's batches (eval_batch_size each) run one per one-thread worker: each batch's
    result equals decoding it alone in this thread at one thread, and the rows come back in order."""
    import dataclasses

    from semid import threads

    monkeypatch.delenv("SEMID_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads, "available_cores", lambda: 2)
    monkeypatch.setattr(threads, "_whole", {"used": {}, "tasks": {}})
    monkeypatch.setattr(threads, "_state", {})  # no --threads left over from another test
    torch.manual_seed(0)
    rec = _rec().init_model()
    rec.config = dataclasses.replace(rec.config, eval_batch_size=3)
    rng = np.random.default_rng(0)
    hs = [rng.choice(12, int(rng.integers(0, 5)), replace=False) for _ in range(10)]
    side_i, side_s = rec.recommend(hs, 6, exclude=hs)
    assert threads.runtime_record()["independent_tasks"] == {"2x1": 1}  # 4 batches on 2 one-thread workers
    with threads.pinned(1):  # inside a worker: one batch after another, here
        for s in range(0, 10, 3):
            alone_i, alone_s = rec.recommend(hs[s : s + 3], 6, exclude=hs[s : s + 3])
            np.testing.assert_array_equal(side_i[s : s + 3], alone_i)
            np.testing.assert_array_equal(side_s[s : s + 3], alone_s)
    assert threads.runtime_record()["independent_tasks"] == {"2x1": 1}
