"""Fast constrained beam search vs the exhaustive oracle and the dict-trie reference, GPT-2 and T5."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from semid.decoding import PrefixIndex, beam_search, build_trie, oracle_topk, reference_beam_search
from semid.models.gpt2rec import GPT2Rec, GPT2RecConfig, GPT2Step, gpt2_next_logp, gpt2_sequence_logp
from semid.models.t5rec import T5Rec, T5RecConfig, T5Step, t5_next_logp, t5_sequence_logp

torch.set_num_threads(1)  # tiny models: one thread is fastest on the shared 2-core machine
SIZES = [3, 4, 5]
N_ITEMS = 25


def _codes(n=N_ITEMS, seed=0):
    rng = np.random.default_rng(seed)
    grid = np.array(np.meshgrid(*[np.arange(s) for s in SIZES], indexing="ij")).reshape(len(SIZES), -1).T
    return grid[rng.choice(len(grid), n, replace=False)]


def _gpt2(codes, objective="sequence"):
    torch.manual_seed(0)
    cfg = GPT2RecConfig(n_layer=2, n_embd=32, n_head=4, max_history=6, objective=objective)
    rec = GPT2Rec(codes=codes, codebook_sizes=SIZES, config=cfg).init_model()
    ctx = rec.context
    return rec, GPT2Step, ctx, gpt2_next_logp, gpt2_sequence_logp


def _t5(codes):
    torch.manual_seed(0)
    cfg = T5RecConfig(
        num_layers=1, num_decoder_layers=2, d_model=32, d_ff=64, num_heads=4, d_kv=8, max_history=6
    )
    rec = T5Rec(codes=codes, codebook_sizes=SIZES, config=cfg).init_model()
    return rec, T5Step, rec.source, t5_next_logp, t5_sequence_logp


MODELS = {"gpt2": _gpt2, "gpt2-next": lambda c: _gpt2(c, "next"), "t5": _t5}  # gpt2-next: <sep> prompt
HISTS = [np.array([4]), np.array([1, 2, 3]), np.array([7, 8, 9, 10, 11, 12, 13, 14]), np.array([], np.int64)]


def _check_valid(items, scores, n_items):
    for row_i, row_s in zip(items.tolist(), scores.tolist(), strict=True):
        real = [i for i in row_i if i >= 0]
        assert len(real) == len(set(real)), "duplicate item"
        assert all(0 <= i < n_items for i in real)
        assert all(np.isfinite(s) for i, s in zip(row_i, row_s, strict=True) if i >= 0)
        assert all(s == -np.inf for i, s in zip(row_i, row_s, strict=True) if i < 0)
        assert row_s == sorted(row_s, reverse=True)


@pytest.mark.parametrize("kind", MODELS)
def test_fast_equals_oracle_when_beam_covers_catalog(kind):
    rec, Step, context, _, seq_logp = MODELS[kind](_codes())
    batch = rec.encode_histories(HISTS)
    res = beam_search(Step(rec.model_), batch, rec.index_, beam=N_ITEMS, k=10)
    _check_valid(res.items.numpy(), res.scores.numpy(), N_ITEMS)
    for b, h in enumerate(HISTS):
        ctx = context(h)
        oi, os_ = oracle_topk(lambda c, ctx=ctx: seq_logp(rec.model_, ctx, c), rec.item_tokens_, 10)
        assert res.items[b].tolist() == oi.tolist()
        np.testing.assert_allclose(res.scores[b].numpy(), os_, atol=1e-4)
        assert (rec.item_tokens_[res.items[b].numpy()] == res.tokens[b].numpy()).all()


@pytest.mark.parametrize("kind", MODELS)
@pytest.mark.parametrize("beam", [2, 5])
def test_fast_equals_reference_for_small_beams(kind, beam):
    rec, Step, context, next_logp, _ = MODELS[kind](_codes())
    trie = build_trie(rec.item_tokens_)
    res = beam_search(Step(rec.model_), rec.encode_histories(HISTS), rec.index_, beam=beam, k=beam)
    for b, h in enumerate(HISTS):
        ctx = context(h)
        ri, rs = reference_beam_search(
            lambda p, ctx=ctx: next_logp(rec.model_, ctx, p), trie, 3, beam=beam, k=beam
        )
        assert res.items[b].tolist() == ri
        np.testing.assert_allclose(res.scores[b].numpy(), rs, atol=1e-4)


@pytest.mark.parametrize("kind", MODELS)
def test_left_padding_does_not_change_results(kind):
    rec, Step, *_ = MODELS[kind](_codes())
    together = beam_search(Step(rec.model_), rec.encode_histories(HISTS), rec.index_, beam=6, k=6)
    for b, h in enumerate(HISTS):
        alone = beam_search(Step(rec.model_), rec.encode_histories([h]), rec.index_, beam=6, k=6)
        assert alone.items[0].tolist() == together.items[b].tolist()
        np.testing.assert_allclose(alone.scores[0].numpy(), together.scores[b].numpy(), atol=1e-4)


@pytest.mark.parametrize("kind", MODELS)
def test_beam_wider_than_catalog_pads_and_never_invents_items(kind):
    codes = np.array([[0, 0, 0], [0, 1, 2], [2, 3, 4]])
    rec, Step, *_ = MODELS[kind](codes)
    hists = [np.array([0]), np.array([2, 1, 0, 2]), np.array([], np.int64)]
    res = beam_search(Step(rec.model_), rec.encode_histories(hists), rec.index_, beam=20, k=10)
    _check_valid(res.items.numpy(), res.scores.numpy(), 3)
    assert (np.sort(res.items[:, :3].numpy(), axis=1) == [0, 1, 2]).all()
    assert (res.items[:, 3:] == -1).all() and torch.isinf(res.scores[:, 3:]).all()


def test_csr_mask_path_gives_same_results():
    rec, Step, *_ = _gpt2(_codes())
    csr = PrefixIndex.from_codes(rec.item_tokens_, dense_limit=0)
    batch = rec.encode_histories(HISTS)
    a = beam_search(Step(rec.model_), batch, rec.index_, beam=7, k=7)
    b = beam_search(Step(rec.model_), batch, csr, beam=7, k=7, timings={})
    assert torch.equal(a.items, b.items)


def test_recommend_matches_protocol_padding():
    rec, *_ = _gpt2(_codes())
    items, scores = rec.recommend(HISTS, k=30, beam=30)
    assert items.shape == (4, 30) and items.dtype == np.int64 and scores.dtype == np.float32
    _check_valid(items, scores, N_ITEMS)
    assert ((items >= 0).sum(axis=1) == N_ITEMS).all()


@pytest.mark.gpu
def test_cuda_bf16_beam_search_returns_valid_items():
    rec, Step, *_ = _t5(_codes())
    rec.model_.cuda()
    items, scores = rec.recommend(HISTS, k=10)
    _check_valid(items, scores, N_ITEMS)
