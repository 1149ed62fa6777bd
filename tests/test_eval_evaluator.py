"""Evaluator on a fake recommender whose rank of the target is known, output validation, metrics.json."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from semid.data.types import EvalSet, Interactions
from semid.errors import DataError
from semid.eval import evaluate, write_metrics


class RankOracle:
    """Puts each user's target at a chosen 1-based rank (0 = absent) among items 100..; knows the targets."""

    name = "oracle"
    n_items_ = 1000

    def __init__(self, targets, ranks):
        self.by_hist = {}
        self.targets, self.ranks = targets, ranks
        self.calls = []

    def recommend(self, histories, k):
        self.calls.append((len(histories), k))
        out = np.tile(np.arange(100, 100 + k), (len(histories), 1))
        for r, h in enumerate(histories):
            u = int(h[0])  # history = [user index, ...] in these tests
            if self.ranks[u] > 0:
                out[r, self.ranks[u] - 1] = self.targets[u]
        return out, np.zeros(out.shape, np.float32)


def _evalset(n):
    hist = Interactions.from_lists([[u, 500 + u] for u in range(n)])
    targets = Interactions.from_lists([[u + 1] for u in range(n)])
    return hist, targets


def test_known_ranks_give_known_metrics():
    ranks = [1, 3, 11, 0, 20]
    hist, tgt = _evalset(5)
    rec = RankOracle([u + 1 for u in range(5)], ranks)
    m = evaluate(rec, EvalSet(hist, tgt), batch_size=2, progress=False)
    assert rec.calls == [(2, 20), (2, 20), (1, 20)]
    assert m["n_eval_users"] == 5
    assert m["HR@1"] == pytest.approx(1 / 5)
    assert m["HR@5"] == pytest.approx(2 / 5)
    assert m["HR@10"] == pytest.approx(2 / 5)
    assert m["HR@20"] == pytest.approx(4 / 5)
    assert m["NDCG@10"] == pytest.approx((1 + 1 / math.log2(4)) / 5)
    assert m["MRR"] == pytest.approx((1 + 1 / 3 + 1 / 11 + 0 + 1 / 20) / 5)
    for key in ("HR@5", "HR@10", "NDCG@5", "NDCG@10", "MRR", "HR@1", "HR@20", "NDCG@20"):
        assert key in m


class Broken:
    name = "broken"
    n_items_ = 50

    def __init__(self, mode):
        self.mode = mode

    def recommend(self, histories, k):
        items = np.tile(np.arange(k), (len(histories), 1))
        if self.mode == "shape":
            items = items[:, :-1]
        elif self.mode == "dup":
            items[0, 3] = items[0, 1]
        elif self.mode == "invalid":
            items[0, 0] = 50
        return items, np.zeros(items.shape, np.float32)


@pytest.mark.parametrize(
    "mode,match", [("shape", "shape"), ("dup", "twice"), ("invalid", "invalid item id 50")]
)
def test_bad_recommender_output_is_a_clear_error(mode, match):
    hist, tgt = _evalset(3)
    with pytest.raises(DataError, match=match):
        evaluate(Broken(mode), EvalSet(hist, tgt), progress=False)


def test_empty_history_is_evaluated():
    class Fixed:
        name = "fixed"

        def recommend(self, histories, k):
            assert any(len(h) == 0 for h in histories)
            return np.tile(np.arange(k), (len(histories), 1)), np.zeros((len(histories), k), np.float32)

    hist = Interactions.from_lists([[], [3]])
    m = evaluate(Fixed(), EvalSet(hist, Interactions.from_lists([[0], [1]])), progress=False)
    assert m["n_eval_users"] == 2 and m["n_empty_history"] == 1 and m["HR@1"] == 0.5


def test_exclude_history_drops_seen_items():
    class Fixed:
        name = "fixed"

        def recommend(self, histories, k):
            return np.tile(np.arange(k), (len(histories), 1)), np.zeros((len(histories), k), np.float32)

    hist = Interactions.from_lists([[0, 1]])
    es = EvalSet(hist, Interactions.from_lists([[2]]))
    assert evaluate(Fixed(), es, ks=(1,), progress=False)["HR@1"] == 0.0
    assert evaluate(Fixed(), es, ks=(1,), exclude_history=True, progress=False)["HR@1"] == 1.0


def test_multi_target_reports_recall():
    class Fixed:
        name = "fixed"

        def recommend(self, histories, k):
            return np.tile(np.arange(k), (len(histories), 1)), np.zeros((len(histories), k), np.float32)

    es = EvalSet(Interactions.from_lists([[9]]), Interactions.from_lists([[0, 30]]))
    m = evaluate(Fixed(), es, progress=False)
    assert m["Recall@20"] == 0.5 and m["HR@1"] == 1.0


def test_write_metrics(tmp_path):
    path = write_metrics(tmp_path / "run", {"HR@10": 0.5}, split="test", dataset="toy", model="MostPopular")
    data = json.loads(path.read_text())
    assert data == {"split": "test", "dataset": "toy", "model": "MostPopular", "HR@10": 0.5}
    assert path.name == "metrics.json"
