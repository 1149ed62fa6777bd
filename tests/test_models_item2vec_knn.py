"""Item2vec nearest neighbours of the last song: ranking rules, parity with the loop reference, pipeline use."""

from __future__ import annotations

import numpy as np
import pytest

from semid.data.types import Catalog, EvalSet, Interactions
from semid.errors import ConfigError
from semid.eval import evaluate
from semid.models.item2vec_knn import Item2VecKNN, Item2VecKNNConfig
from semid.models.popular import MostPopular
from semid.models.protocol import Recommender

FAST = Item2VecKNNConfig(dim=16, epochs=20, sample=0.0)  # tiny vocabulary: no frequent-item downsampling


def _clustered(n_playlists=200, seed=0):
    """Items 0-9 and 10-19 form two 'genres'; playlists stay within one; items 20-21 are never played."""
    rng = np.random.default_rng(seed)
    seqs = []
    for p in range(n_playlists):
        base = 0 if p % 2 == 0 else 10
        seqs.append(base + rng.integers(0, 10, rng.integers(3, 8)))
    return Interactions.from_lists(seqs), Catalog(item_ids=np.arange(22).astype(str))


def test_is_a_recommender_and_beats_popularity_on_clustered_playlists():
    train, cat = _clustered()
    m = Item2VecKNN(config=FAST).fit(train, cat)
    assert isinstance(m, Recommender)
    rng = np.random.default_rng(1)
    hist = [np.array([int(rng.integers(0, 10))]) if i % 2 == 0 else np.array([10 + int(rng.integers(0, 10))])
            for i in range(40)]
    tgt = [np.array([h[0] // 10 * 10 + int(rng.integers(0, 10))]) for h in hist]
    es = EvalSet(Interactions.from_lists(hist), Interactions.from_lists(tgt))
    knn = evaluate(m, es, ks=(5, 10), progress=False)
    pop = evaluate(MostPopular().fit(train, cat), es, ks=(5, 10), progress=False)
    assert knn["HR@10"] > 0.8 > pop["HR@10"] + 0.2
    items, _ = m.recommend(hist[:2], k=9)
    # the 9 neighbours of a genre-0 song are the other genre-0 songs, the query song ranks last
    assert set(items[0].tolist()) == set(range(10)) - {int(hist[0][0])}


def test_ranking_bands_query_last_cold_items_by_popularity():
    train, cat = _clustered()
    m = Item2VecKNN(config=FAST).fit(train, cat)
    items, scores = m.recommend([np.array([3])], k=22)
    row = items[0].tolist()
    assert sorted(row) == list(range(22))  # every item once
    assert row[-1] == 3  # the query song itself is last
    assert set(row[-3:-1]) == {20, 21}  # never-played items after every embedded one
    assert np.all(np.diff(scores[0]) <= 0)
    # k beyond the catalog pads with -1 / -inf
    items, scores = m.recommend([np.array([3])], k=25)
    assert (items[0, 22:] == -1).all() and np.isneginf(scores[0, 22:]).all()
    # a history of cold items only (or empty) falls back to train popularity
    pop_items, _ = MostPopular().fit(train, cat).recommend([np.array([20])], k=22)
    for h in (np.array([20, 21]), np.zeros(0, np.int64)):
        assert m.recommend([h], k=22)[0][0].tolist() == pop_items[0].tolist()


@pytest.mark.parametrize("context,exclude", [(1, True), (2, True), (3, False)])
def test_vectorised_matches_reference(context, exclude):
    train, cat = _clustered(seed=2)
    m = Item2VecKNN(config=Item2VecKNNConfig(dim=16, epochs=3, context=context, exclude_query=exclude))
    m.fit(train, cat)
    rng = np.random.default_rng(3)
    hist = [rng.integers(0, 22, rng.integers(0, 6)) for _ in range(25)] + [np.array([21, 20]), np.zeros(0, np.int64)]
    fast_i, fast_s = m.recommend(hist, k=12)
    ref_i, ref_s = m.recommend_reference(hist, k=12)
    assert np.array_equal(fast_i, ref_i)
    np.testing.assert_allclose(fast_s, ref_s, rtol=1e-5, atol=1e-6)


def test_seeded_fit_is_deterministic_and_uses_train_only():
    train, cat = _clustered()
    a = Item2VecKNN(config=FAST).fit(train, cat)
    b = Item2VecKNN(config=FAST).fit(train, cat)
    assert np.array_equal(a.embeddings_, b.embeddings_)
    assert not a.mask_[20:].any() and a.mask_[:20].all()  # only items of the train sequences are embedded
    with pytest.raises(ConfigError, match="context"):
        Item2VecKNN(config=Item2VecKNNConfig(context=0))
    with pytest.raises(RuntimeError, match="before fit"):
        Item2VecKNN().recommend([np.array([1])], k=3)


def test_pipeline_model_and_yes_presets(fixtures, tmp_path):
    from semid.pipeline.config import model_kind
    from semid.pipeline.presets import PRESETS, resolve
    from semid.pipeline.runner import run

    cfg = resolve("yes-item2vec-knn", {"data.dataset": str(fixtures / "yes"), "data.holdout_frac": "1.0",
                                       "item2vec_knn.epochs": "2", "item2vec_knn.dim": "8"})
    assert model_kind(cfg) == "item2vec_knn" and cfg.data.split == "continuation" and cfg.data.min_history == 1
    out = run(cfg, tmp_path / "knn")
    assert out["test"]["n_eval_users"] + out["valid"]["n_eval_users"] == 5
    assert {"MRR", "Recall@1", "Recall@10", "Recall@20", "HR@10", "NDCG@10"} <= set(out["test"])
    from semid.pipeline.restore import load_run

    loaded = load_run(tmp_path / "knn")
    again = evaluate(loaded.model, loaded.split.test, progress=False, n_items=6)
    assert again["MRR"] == pytest.approx(out["test"]["MRR"])  # seeded refit reproduces the run
    names = ["yes-fusid-gpt2", "yes-popular", "yes-sasrec", "yes-item2vec-knn", "yes-tiger", "yes-letter",
             "yes-fusid-gpt2-alpha0", "yes-fusid-gpt2-no-contrastive", "yes-fusid-gpt2-no-meta",
             "yes-fusid-gpt2-no-tags", "yes-fusid-gpt2-no-cooc"]
    for name in names:
        c = resolve(name)
        assert c.data.dataset == "../shared/data/yes-playlists" and c.data.split == "continuation", name
    assert resolve("yes-fusid-gpt2-alpha0").tokenizer.loss.alpha == 0.0
    assert not resolve("yes-fusid-gpt2-no-contrastive").tokenizer.loss.contrastive
    assert resolve("yes-fusid-gpt2-no-tags").tokenizer.modalities == ("cooc", "meta")
    fus = resolve("yes-fusid-gpt2")
    from semid.encoders.feature_spec import coerce_features

    assert fus.tokenizer.pq.K == 64 and fus.tokenizer.pq.n_sub == 4
    assert fus.tokenizer.loss.alpha == 10.0  # the IDs the RESULTS rows were measured with
    assert resolve("yes-fusid-gpt2-no-tags").tokenizer.loss.alpha == 10.0  # ablations change one thing
    assert fus.features == coerce_features(("meta=text:title,artist",))  # typed feature specs
    assert all(n in PRESETS for n in names)


def test_save_load_recommends_identically(tmp_path):
    train, cat = _clustered()
    m = Item2VecKNN(config=FAST).fit(train, cat)
    m.save(tmp_path / "m")
    back = Item2VecKNN.load(tmp_path / "m")
    assert back.config == m.config
    hs = [np.array([3]), np.array([], np.int64), np.array([12, 15])]
    for a, b in zip(m.recommend(hs, 8), back.recommend(hs, 8), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_masks_match_the_brute_force_reference(seed):
    """exclude= / allowed= as every recommender: masked items never come back, k valid items whenever k
    are allowed, -1 / -inf padding after; equal to the loop reference that skips masked items."""
    from semid.decoding.masks import recommend_masked

    train, cat = _clustered(seed=seed)
    m = Item2VecKNN(config=Item2VecKNNConfig(dim=16, epochs=3)).fit(train, cat)
    rng = np.random.default_rng(seed + 10)
    hist = [rng.integers(0, 22, rng.integers(0, 6)) for _ in range(20)]
    exclude = [np.concatenate([h, rng.integers(0, 22, 3)]) for h in hist]
    allowed = rng.random((20, 22)) < np.linspace(0.05, 1.0, 20)[:, None]  # some rows with < k allowed items
    k = 8
    for kw in ({"exclude": exclude}, {"allowed": allowed[3]}, {"allowed": allowed},
               {"exclude": exclude, "allowed": allowed}):
        fast_i, fast_s = m.recommend(hist, k, **kw)
        ref_i, ref_s = m.recommend_reference(hist, k, **kw)
        assert np.array_equal(fast_i, ref_i), kw.keys()
        np.testing.assert_allclose(fast_s, ref_s, rtol=1e-5, atol=1e-6)
        ok = np.ones((20, 22), bool) if "allowed" not in kw else np.broadcast_to(kw["allowed"], (20, 22)).copy()
        for r, ex in enumerate(kw.get("exclude", [[]] * 20)):
            ok[r, np.asarray(ex, np.int64)] = False
        for r in range(20):
            got = fast_i[r][fast_i[r] >= 0]
            assert ok[r, got].all() and len(set(got.tolist())) == len(got)
            assert len(got) == min(k, int(ok[r].sum()))  # k valid items whenever k exist
            assert (fast_i[r, len(got):] == -1).all() and np.isneginf(fast_s[r, len(got):]).all()
            # the allowed items in order of the unmasked full ranking (brute force)
            full_i, _ = m.recommend([hist[r]], 22)
            assert got.tolist() == [i for i in full_i[0].tolist() if ok[r, i]][:k]
    # the service's dispatcher now hands the mask to the model itself
    both = m.recommend(hist, k, allowed=allowed)
    via = recommend_masked(m, hist, k, allowed)
    assert np.array_equal(both[0], via[0])
