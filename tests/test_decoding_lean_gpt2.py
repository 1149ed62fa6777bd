"""LeanGPT2Step (shared prompt cache, hand-written block) vs HF GPT2Step, the oracle and the reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from semid.decoding import beam_search, build_trie, oracle_topk, reference_beam_search
from semid.decoding.lean_gpt2 import LeanGPT2Step
from semid.errors import ConfigError
from semid.models.gpt2rec import GPT2Rec, GPT2RecConfig, GPT2Step, gpt2_next_logp, gpt2_sequence_logp

torch.set_num_threads(1)
SIZES = [3, 4, 5]
N = 25
HISTS = [np.array([4]), np.array([1, 2, 3]), np.array([7, 8, 9, 10, 11, 12, 13, 14]), np.array([], np.int64)]


def _rec(objective="sequence", n_layer=2):
    rng = np.random.default_rng(0)
    grid = np.array(np.meshgrid(*[np.arange(s) for s in SIZES], indexing="ij")).reshape(len(SIZES), -1).T
    torch.manual_seed(0)
    cfg = GPT2RecConfig(n_layer=n_layer, n_embd=32, n_head=4, max_history=6, objective=objective)
    return GPT2Rec(codes=grid[rng.choice(len(grid), N, replace=False)], codebook_sizes=SIZES,
                   config=cfg).init_model()


@pytest.mark.parametrize("objective", ["sequence", "next"])
def test_lean_step_equals_the_oracle_when_beam_covers_catalog(objective):
    rec = _rec(objective)
    res = beam_search(LeanGPT2Step(rec.model_, 2), rec.encode_histories(HISTS), rec.index_, beam=N, k=10)
    for b, h in enumerate(HISTS):
        ctx = rec.context(h)
        oi, os_ = oracle_topk(lambda c, ctx=ctx: gpt2_sequence_logp(rec.model_, ctx, c), rec.item_tokens_, 10)
        assert res.items[b].tolist() == oi.tolist()
        np.testing.assert_allclose(res.scores[b].numpy(), os_, atol=1e-4)


@pytest.mark.parametrize("beam", [1, 3, 6])
def test_lean_step_equals_reference_and_hf_step(beam):
    rec = _rec(n_layer=3)
    batch = rec.encode_histories(HISTS)
    lean = beam_search(LeanGPT2Step(rec.model_, 2), batch, rec.index_, beam=beam, k=beam)
    hf = beam_search(GPT2Step(rec.model_), batch, rec.index_, beam=beam, k=beam)
    assert torch.equal(lean.items, hf.items)
    torch.testing.assert_close(lean.scores, hf.scores, atol=1e-5, rtol=0)
    trie = build_trie(rec.item_tokens_)
    for b, h in enumerate(HISTS):
        ctx = rec.context(h)
        ri, rs = reference_beam_search(lambda p, ctx=ctx: gpt2_next_logp(rec.model_, ctx, p), trie, 3,
                                       beam=beam, k=beam)
        assert lean.items[b].tolist() == ri


def test_lean_step_with_masks_and_alone_vs_batched():
    rec = _rec()
    mask = torch.from_numpy(np.random.default_rng(3).random((len(HISTS), N)) < 0.5)
    batch = rec.encode_histories(HISTS)
    lean = beam_search(LeanGPT2Step(rec.model_, 2), batch, rec.index_, beam=5, k=5, item_mask=mask)
    hf = beam_search(GPT2Step(rec.model_), batch, rec.index_, beam=5, k=5, item_mask=mask)
    assert torch.equal(lean.items, hf.items)
    for b, h in enumerate(HISTS):  # left padding changes nothing
        alone = beam_search(LeanGPT2Step(rec.model_, 2), rec.encode_histories([h]), rec.index_, beam=5, k=5,
                            item_mask=mask[b : b + 1])
        assert alone.items[0].tolist() == lean.items[b].tolist()


def test_recommend_uses_the_lean_step_and_refuses_unsupported_blocks():
    rec = _rec()
    assert isinstance(rec._stepper(rec.model_), LeanGPT2Step)
    rec.model_.config.scale_attn_by_inverse_layer_idx = True
    with pytest.raises(ConfigError, match="standard GPT-2"):
        LeanGPT2Step(rec.model_, 2)
    assert isinstance(rec._stepper(rec.model_), GPT2Step)  # falls back to the HF step
