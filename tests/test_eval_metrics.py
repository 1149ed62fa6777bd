"""Metrics: vectorised vs loop reference on random rankings, plus a hand-computed example."""

from __future__ import annotations

import math

import numpy as np
import pytest

from semid.errors import DataError
from semid.eval.metrics import compute_metrics, hit_matrix
from semid.eval.reference import reference_metrics


def _random_rankings(rng, b=200, k=20, n_items=60):
    topk = np.stack([rng.permutation(n_items)[:k] for _ in range(b)])
    # Some rows padded with -1 at the tail (fewer than k candidates).
    for r in rng.choice(b, size=b // 10, replace=False):
        topk[r, rng.integers(1, k) :] = -1
    return topk


def test_single_target_parity_with_reference():
    rng = np.random.default_rng(0)
    topk = _random_rankings(rng)
    targets = rng.integers(0, 60, size=len(topk))
    fast = compute_metrics(topk, targets)
    ref = reference_metrics(topk, [[t] for t in targets])
    assert fast.keys() == ref.keys()
    for name in ref:
        assert fast[name] == pytest.approx(ref[name], abs=1e-12), name
    assert "Recall@10" not in fast


def test_multi_target_parity_with_reference():
    rng = np.random.default_rng(1)
    topk = _random_rankings(rng)
    lists = [list(rng.integers(0, 60, size=rng.integers(1, 8))) for _ in range(len(topk))]  # may repeat
    offsets = np.concatenate([[0], np.cumsum([len(t) for t in lists])])
    items = np.concatenate(lists)
    fast = compute_metrics(topk, (offsets, items))
    ref = reference_metrics(topk, lists)
    assert fast.keys() == ref.keys()
    for name in ref:
        assert fast[name] == pytest.approx(ref[name], abs=1e-12), name
    assert "Recall@20" in fast


def test_hand_computed_example():
    # Row 0: target 7 at rank 2.  Row 1: target 9 at rank 6.  Row 2: target 4 absent.
    topk = np.array(
        [
            [3, 7, 1, 0, 2, 5, 6, 8, 9, 4],
            [0, 1, 2, 3, 4, 9, 5, 6, 7, 8],
            [0, 1, 2, 3, 5, 6, 7, 8, 9, -1],
        ]
    )
    m = compute_metrics(topk, np.array([7, 9, 4]), ks=(1, 5, 10))
    assert m["HR@1"] == 0.0
    assert m["HR@5"] == pytest.approx(1 / 3)  # only row 0 within top 5
    assert m["HR@10"] == pytest.approx(2 / 3)
    # NDCG@5 = (1/log2(2+1) + 0 + 0) / 3 = 0.6309298 / 3 = 0.2103099
    assert m["NDCG@5"] == pytest.approx((1 / math.log2(3)) / 3)
    assert m["NDCG@5"] == pytest.approx(0.2103099, abs=1e-6)
    # NDCG@10 = (1/log2(3) + 1/log2(7) + 0) / 3 = (0.6309298 + 0.3562072) / 3 = 0.3290457
    assert m["NDCG@10"] == pytest.approx(0.3290457, abs=1e-6)
    # MRR@10 = (1/2 + 1/6 + 0) / 3 = 0.2222222
    assert m["MRR"] == pytest.approx(2 / 9)


def test_hand_computed_multi_target():
    # targets {1, 2, 3}; ranked [1, 9, 3, 8]: hits at ranks 1 and 3.
    m = compute_metrics(np.array([[1, 9, 3, 8]]), (np.array([0, 3]), np.array([1, 2, 3])), ks=(2, 4))
    assert m["Recall@2"] == pytest.approx(1 / 3)
    assert m["Recall@4"] == pytest.approx(2 / 3)
    # NDCG@4 = (1/log2 2 + 1/log2 4) / (1/log2 2 + 1/log2 3 + 1/log2 4) = 1.5 / 2.1309298 = 0.7039180
    assert m["NDCG@4"] == pytest.approx(0.7039180, abs=1e-6)
    assert m["HR@2"] == 1.0 and m["MRR"] == 1.0


def test_errors_name_the_problem():
    with pytest.raises(DataError, match="no target"):
        hit_matrix(np.zeros((2, 3), np.int64), (np.array([0, 1, 1]), np.array([4])))
    with pytest.raises(DataError, match="rows"):
        hit_matrix(np.zeros((2, 3), np.int64), np.array([1, 2, 3]))
    with pytest.raises(DataError, match="@20"):
        compute_metrics(np.zeros((2, 10), np.int64), np.array([1, 2]))


def test_validation_recall_is_the_evaluator_recall():
    """Regression: the generative models' validation Recall@k divided hits by min(|T|, k) while the evaluator
    divides by |T|; both were logged as Recall@10. Now there is one definition, hits / |T|."""
    from semid.data.types import Interactions
    from semid.eval.metrics import ndcg_recall_at
    from semid.models import seqdata

    assert seqdata.ndcg_recall_at is ndcg_recall_at  # the validator uses the evaluator's function
    topk = np.array([[0, 1, 2], [5, 6, 7], [9, 8, 4]])
    # row 0: 5 targets, 2 in the top 3; row 1: no target (skipped); row 2: one target at rank 2
    targets = Interactions.from_lists([[0, 2, 10, 11, 12], [], [8]])
    out = ndcg_recall_at(topk, targets, 3)
    assert out["Recall@3"] == pytest.approx((2 / 5 + 1.0) / 2)  # not (2/3 + 1) / 2
    d = [1 / math.log2(r + 1) for r in (1, 2, 3)]
    assert out["NDCG@3"] == pytest.approx(((d[0] + d[2]) / sum(d) + d[1]) / 2)
    kept = Interactions.from_lists([[0, 2, 10, 11, 12], [8]])
    full = compute_metrics(topk[[0, 2]], kept, ks=(3,))
    assert out["Recall@3"] == pytest.approx(full["Recall@3"]) and out["NDCG@3"] == pytest.approx(full["NDCG@3"])
    assert ndcg_recall_at(topk[[2]], Interactions.from_lists([[8]]), 1) == {"NDCG@1": 0.0, "Recall@1": 0.0}
