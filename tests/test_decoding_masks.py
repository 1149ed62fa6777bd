"""Item masks inside constrained decoding vs the brute-force oracle / pruned-trie reference with the same
masks; masks on full-ranking models (SASRec, MostPopular); PrefixIndex.alive and add_items."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from semid.data.types import Catalog, Interactions
from semid.decoding import (
    PrefixIndex,
    beam_search,
    build_trie,
    item_mask,
    masked_topk,
    oracle_topk,
    reference_beam_search,
)
from semid.errors import DataError
from semid.models.gpt2rec import GPT2Rec, GPT2RecConfig, GPT2Step, gpt2_next_logp, gpt2_sequence_logp
from semid.models.popular import MostPopular
from semid.models.t5rec import T5Rec, T5RecConfig, T5Step, t5_sequence_logp

torch.set_num_threads(1)
SIZES = [3, 4, 5]
N = 25
HISTS = [np.array([4]), np.array([1, 2, 3]), np.array([7, 8, 9, 10, 11, 12, 13, 14]), np.array([], np.int64)]


def _codes(seed=0):
    rng = np.random.default_rng(seed)
    grid = np.array(np.meshgrid(*[np.arange(s) for s in SIZES], indexing="ij")).reshape(len(SIZES), -1).T
    return grid[rng.choice(len(grid), N, replace=False)]


_GPT2 = {}


def _gpt2():
    if "rec" not in _GPT2:  # one tiny model shared by the property test's examples
        torch.manual_seed(0)
        cfg = GPT2RecConfig(n_layer=1, n_embd=32, n_head=4, max_history=6)
        _GPT2["rec"] = GPT2Rec(codes=_codes(), codebook_sizes=SIZES, config=cfg).init_model()
    return _GPT2["rec"]


def _t5():
    torch.manual_seed(0)
    cfg = T5RecConfig(num_layers=1, num_decoder_layers=1, d_model=32, d_ff=64, num_heads=4, d_kv=8, max_history=6)
    return T5Rec(codes=_codes(), codebook_sizes=SIZES, config=cfg).init_model()


def _masked_vs_oracle(rec, Step, context, seq_logp, mask, k):
    batch = rec.encode_histories(HISTS)
    res = beam_search(Step(rec.model_), batch, rec.index_, beam=N, k=k, item_mask=torch.from_numpy(mask))
    for b, h in enumerate(HISTS):
        ctx = context(h)
        oi, os_ = oracle_topk(lambda c, ctx=ctx: seq_logp(rec.model_, ctx, c), rec.item_tokens_, k, keep=mask[b])
        got = res.items[b].numpy()
        assert got[: len(oi)].tolist() == oi.tolist()
        assert (got[len(oi) :] == -1).all() and torch.isinf(res.scores[b, len(oi) :]).all()
        np.testing.assert_allclose(res.scores[b, : len(oi)].numpy(), os_, atol=1e-4)


def test_item_mask_combines_exclusions_and_allow_lists():
    avail = np.ones(5, bool)
    avail[4] = False
    m = item_mask(5, 2, exclude=[np.array([0, 1]), np.array([], np.int64)], allowed=avail)
    assert m.tolist() == [[False, False, True, True, False], [True, True, True, True, False]]
    assert item_mask(5, 2) is None
    with pytest.raises(DataError, match="outside"):
        item_mask(5, 1, exclude=[np.array([5])])
    with pytest.raises(DataError, match="shape"):
        item_mask(5, 2, allowed=np.ones(4, bool))


@pytest.mark.parametrize("kind", ["gpt2", "t5"])
def test_exclude_seen_allow_and_deny_match_the_oracle(kind):
    if kind == "gpt2":
        rec, Step, ctx, sl = _gpt2(), GPT2Step, _gpt2().context, gpt2_sequence_logp
    else:
        rec = _t5()
        Step, ctx, sl = T5Step, rec.source, t5_sequence_logp
    deny = np.array([0, 5, 6])
    allow = np.zeros(N, bool)
    allow[[1, 2, 3, 4, 9, 10, 20, 21]] = True  # row 1's allow-list; its history 1, 2, 3 is also excluded
    rows = np.ones((len(HISTS), N), bool)
    rows[1] = allow
    mask = item_mask(N, len(HISTS), exclude=[np.concatenate([h, deny]) for h in HISTS], allowed=rows)
    _masked_vs_oracle(rec, Step, ctx, sl, mask, k=10)


def test_k_valid_items_come_back_when_the_top_ones_are_filtered():
    rec = _gpt2()
    free, _ = rec.recommend(HISTS, k=5, beam=5)
    # deny each row's unfiltered top 5: a post-filter would return nothing; masks in the trie return 5 others
    items, scores = rec.recommend(HISTS, k=5, beam=5, exclude=[r for r in free])
    assert (items >= 0).all() and np.isfinite(scores).all()
    for r in range(len(HISTS)):
        assert not set(items[r].tolist()) & set(free[r].tolist())
    # all items masked for one row -> that row is all padding, the others unaffected
    allowed = np.ones((len(HISTS), N), bool)
    allowed[2] = False
    items, scores = rec.recommend(HISTS, k=5, beam=5, allowed=allowed)
    assert (items[2] == -1).all() and np.isneginf(scores[2]).all()
    assert items[0].tolist() == free[0].tolist()
    # the unmasked call is unchanged by the new keyword (evaluator, benchmarks)
    again, _ = rec.recommend(HISTS, k=5, beam=5, exclude=None)
    assert again.tolist() == free.tolist()


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    mask=st.lists(st.lists(st.booleans(), min_size=N, max_size=N), min_size=len(HISTS), max_size=len(HISTS)),
    beam=st.integers(1, 6),
)
def test_masked_beam_equals_reference_on_the_pruned_trie(mask, beam):
    """Property: masking leaves in the fast search == reference beam search over a trie of allowed items only."""
    rec = _gpt2()
    mask = np.asarray(mask, bool)
    res = beam_search(GPT2Step(rec.model_), rec.encode_histories(HISTS), rec.index_, beam=beam, k=beam,
                      item_mask=torch.from_numpy(mask))
    for b, h in enumerate(HISTS):
        ctx = rec.context(h)
        trie = build_trie(rec.item_tokens_, keep=mask[b])
        ri, rs = reference_beam_search(lambda p, ctx=ctx: gpt2_next_logp(rec.model_, ctx, p), trie, 3,
                                       beam=beam, k=beam)
        got = res.items[b].tolist()
        assert got[: len(ri)] == ri and all(i == -1 for i in got[len(ri) :])
        assert all(mask[b, i] for i in ri)
        np.testing.assert_allclose(res.scores[b, : len(ri)].numpy(), rs, atol=1e-4)


def test_alive_marks_prefixes_with_an_allowed_leaf():
    tok = np.array([[0, 0], [0, 1], [1, 0]])
    idx = PrefixIndex.from_codes(tok)
    alive = idx.alive(torch.tensor([[False, False, True], [True, False, False]]))
    assert alive[0].tolist() == [[True], [True]]
    assert alive[1].tolist() == [[False, True], [True, False]]  # prefix (0,) dead for row 0
    a = idx.allowed_alive(0, torch.tensor([0, 0]), alive[1], torch.tensor([0, 1]))
    assert a.tolist() == [[False, True], [True, False]]
    # CSR and dense layouts agree
    csr = PrefixIndex.from_codes(tok, dense_limit=0)
    assert csr.allowed_alive(1, torch.tensor([0, 1]), alive[2], torch.tensor([1, 1])).tolist() == [
        [True, False], [False, False]]


def test_add_items_patches_the_index_in_place_and_refuses_taken_codes():
    idx = PrefixIndex.from_codes(np.array([[0, 0], [0, 1]]))
    same = idx
    idx.add_items(np.array([[1, 1]]))
    assert same.n_items == 3 and same.next_tokens([1]) == [1]
    assert idx.items(idx.child(1, *[torch.tensor([x]) for x in (idx.child(0, torch.tensor([0]),
                                                                          torch.tensor([1]))[0], [1])])[0]
                     ).item() == 2
    with pytest.raises(DataError, match="share a code"):
        idx.add_items(np.array([[0, 1]]))
    assert idx.n_items == 3  # unchanged after the refusal


def test_full_ranking_models_apply_the_same_masks():
    train = Interactions.from_lists([[1, 2, 4], [1, 2], [0, 1, 2, 4]])
    pop = MostPopular().fit(train, Catalog(item_ids=[f"i{i}" for i in range(5)]))
    items, scores = pop.recommend([np.array([1]), np.array([], np.int64)], k=3, exclude=[np.array([1]), np.array([2])])
    assert items.tolist() == [[2, 4, 0], [1, 4, 0]]
    allowed = np.array([True, False, True, False, False])
    items, scores = pop.recommend([np.array([1])], k=3, allowed=allowed)
    assert items.tolist() == [[2, 0, -1]] and np.isneginf(scores[0, 2])
    s = torch.tensor([[0.1, 0.9, 0.5], [0.3, 0.2, 0.1]])
    it, sc = masked_topk(s, np.array([[True, False, True], [False, False, False]]), 2)
    assert it.tolist() == [[2, 0], [-1, -1]] and np.isneginf(sc[1]).all()


def test_sasrec_masks_its_full_ranking():
    from semid.models.sasrec import SASRec, SASRecConfig
    from semid.train.loop import TrainConfig

    train = Interactions.from_lists([[0, 1, 2, 3], [1, 2, 3, 4], [2, 3, 4, 0]])
    tc = TrainConfig(epochs=1, batch_size=4, progress=False, device="cpu")
    m = SASRec(config=SASRecConfig(hidden=16, n_layers=1, max_len=8), train=tc).fit(
        train, Catalog(item_ids=[str(i) for i in range(5)]))
    hist = [np.array([0, 1])]
    free, _ = m.recommend(hist, k=5)
    got, _ = m.recommend(hist, k=5, exclude=[free[0, :2]])
    assert got[0, :3].tolist() == free[0, 2:].tolist() and (got[0, 3:] == -1).all()


def test_recommend_masked_post_filters_models_without_the_keyword():
    class Plain:  # a full-ranking model whose recommend has no allowed= keyword
        def recommend(self, histories, k):
            order = np.arange(6)[::-1][:k]
            return np.tile(order, (len(histories), 1)), np.tile(order.astype(np.float32), (len(histories), 1))

    from semid.decoding.masks import recommend_masked

    mask = np.ones((2, 6), bool)
    mask[0, [5, 4, 2]] = False
    items, scores = recommend_masked(Plain(), [np.array([0]), np.array([1])], 3, mask)
    assert items.tolist() == [[3, 1, 0], [5, 4, 3]] and scores[0].tolist() == [3, 1, 0]
