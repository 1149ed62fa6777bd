"""semid compare: paired t-test / bootstrap on a hand-computed example, refusals, mean ± CI over seeds."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from typer.testing import CliRunner

from semid.data.types import EvalSet, Interactions
from semid.errors import DataError, SemidError
from semid.eval.compare import (
    compare_runs,
    load_per_user,
    mean_ci,
    paired_bootstrap,
    paired_diff,
    paired_t,
    t_quantile,
    t_sf2,
)
from semid.eval.evaluator import evaluate

# Five users; B hits two users A misses, so d = b - a = [1, 0, 0, 0, 1].
A = np.array([0.0, 0.0, 1.0, 1.0, 0.0])
B = np.array([1.0, 0.0, 1.0, 1.0, 1.0])


def test_paired_t_on_a_hand_computed_example():
    # mean(d) = 0.4; sd(d) = sqrt((2 * 0.6^2 + 3 * 0.4^2) / 4) = sqrt(0.3); se = sqrt(0.3 / 5) = 0.244949
    # t = 0.4 / se = 1.632993; t_{0.975, 4} = 2.776445 (tables); CI = 0.4 -+ 2.776445 * se
    # two-sided p for t = 1.633 with 4 df: 0.17781 (tables)
    se = math.sqrt(0.3 / 5)
    m, lo, hi, p = paired_t(A, B)
    assert m == pytest.approx(0.4)
    assert lo == pytest.approx(0.4 - 2.776445 * se, abs=1e-5) and hi == pytest.approx(0.4 + 2.776445 * se, abs=1e-5)
    assert p == pytest.approx(0.177808, abs=1e-5)
    # order matters only for the sign
    m2, lo2, hi2, p2 = paired_t(B, A)
    assert (m2, lo2, hi2) == pytest.approx((-m, -hi, -lo)) and p2 == pytest.approx(p)


def test_student_t_values_from_tables():
    for df, q975 in ((1, 12.706205), (2, 4.302653), (4, 2.776445), (10, 2.228139), (30, 2.042272)):
        assert t_quantile(0.975, df) == pytest.approx(q975, abs=1e-5)
        assert t_sf2(q975, df) == pytest.approx(0.05, abs=1e-6)
    assert t_quantile(0.975, 100_000) == pytest.approx(1.959985, abs=1e-4)  # -> normal
    assert t_sf2(0.0, 5) == pytest.approx(1.0)


def test_student_t_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    for df in (1, 3, 7, 50, 609, 17_000):
        for t in (0.05, 0.7, 1.96, 3.3, 9.0):
            assert t_sf2(t, df) == pytest.approx(2 * stats.t.sf(t, df), rel=1e-9, abs=1e-300)
        for q in (0.9, 0.975, 0.995):
            assert t_quantile(q, df) == pytest.approx(stats.t.ppf(q, df), rel=1e-8)


def test_bootstrap_matches_exact_enumeration_of_resamples():
    """Reference: with 4 users all 4^4 resamples are equally likely; a large seeded bootstrap approaches them."""
    a, b = np.array([0.0, 1.0, 0.0, 0.5]), np.array([1.0, 1.0, 0.0, 1.0])
    d = b - a
    means = np.array([d[list(ix)].mean() for ix in itertools.product(range(4), repeat=4)])
    exact_p = (np.abs(means - d.mean()) >= abs(d.mean()) - 1e-15).mean()
    m, lo, hi, p = paired_bootstrap(a, b, n_boot=40_000, seed=0)
    assert m == pytest.approx(d.mean())
    assert p == pytest.approx(exact_p, abs=0.01)
    assert lo == pytest.approx(np.quantile(means, 0.025), abs=0.07) and hi == pytest.approx(np.quantile(means, 0.975), abs=0.07)
    assert paired_bootstrap(a, b, n_boot=500, seed=3) == paired_bootstrap(a, b, n_boot=500, seed=3)  # fixed seed


def test_identical_and_constant_differences():
    m, lo, hi, p = paired_t(A, A)
    assert (m, lo, hi, p) == (0.0, 0.0, 0.0, 1.0)
    assert paired_bootstrap(A, A, n_boot=100)[3] == 1.0
    m, lo, hi, p = paired_bootstrap(A, A + 0.1, n_boot=99)
    assert (lo, hi) == pytest.approx((0.1, 0.1)) and p == pytest.approx(1 / 100)  # never as extreme as 0
    with pytest.raises(DataError, match="one length"):
        paired_diff("HR@10", A, B[:3])


def test_mean_ci_over_seeds():
    # [1, 2, 3]: mean 2, sd 1, half-width t_{0.975, 2} / sqrt(3) = 4.302653 / 1.732051 = 2.484138
    ci = mean_ci([1.0, 2.0, 3.0])
    assert ci.mean == 2.0 and ci.n == 3 and ci.half_width == pytest.approx(2.484138, abs=1e-6)
    assert (ci.low, ci.high) == pytest.approx((2 - 2.484138, 2 + 2.484138), abs=1e-6)
    assert str(ci) == "2.0000 ± 2.4841 (n=3)"
    single = mean_ci([0.5])
    assert single.n == 1 and math.isnan(single.half_width) and "no interval" in str(single)
    with pytest.raises(DataError):
        mean_ci([])


class _Fixed:
    """A recommender returning a fixed ranked list per user (by row order)."""

    name = "fixed"

    def __init__(self, rows):
        self.rows = np.asarray(rows)
        self.i = 0

    def recommend(self, histories, k):
        out = self.rows[self.i : self.i + len(histories), :k]
        self.i += len(histories)
        return out, np.zeros(out.shape, np.float32)


def _evalset(targets, users=None):
    hist = Interactions.from_lists([[9]] * len(targets), user_ids=users)
    return EvalSet(hist, Interactions.from_lists([[t] for t in targets], user_ids=users))


def _run(tmp_path, name, rows, evalset):
    d = tmp_path / name
    evaluate(_Fixed(rows), evalset, ks=(1, 10), progress=False, per_user_out=d / "per_user_test.npz")
    return d


def test_per_user_files_and_compare_end_to_end(tmp_path):
    es = _evalset([0, 1, 2, 3, 4])
    # A ranks each target first for users 2, 3 only; B also for users 0 and 4: HR@1 = A, B above.
    base = [[5, 6], [5, 6], [2, 6], [3, 6], [5, 6]]
    better = [[0, 6], [5, 6], [2, 6], [3, 6], [4, 6]]
    da, db = _run(tmp_path, "a", [r + [-1] * 8 for r in base], es), _run(tmp_path, "b", [r + [-1] * 8 for r in better], es)
    pa = load_per_user(da)
    np.testing.assert_array_equal(pa.metrics["HR@1"], A)
    assert pa.user_ids.tolist() == ["0", "1", "2", "3", "4"] and len(pa.fingerprint) == 64
    [(name_a, name_b, diffs)] = compare_runs([pa, load_per_user(db)], ("HR@1", "MRR"), n_boot=200)
    assert (name_a, name_b) == ("a", "b")
    hr, mrr = diffs
    assert hr.diff == pytest.approx(0.4) and hr.t_p == pytest.approx(0.177808, abs=1e-5) and hr.n == 5
    assert mrr.diff == pytest.approx(0.4)

    res = CliRunner().invoke(__import__("semid.cli.main", fromlist=["app"]).app,
                             ["compare", str(da), str(db), "--metric", "HR@1", "--n-boot", "200"])
    assert res.exit_code == 0, res.output
    assert "+0.4000" in res.output and "0.178" in res.output


def test_compare_refuses_other_users_or_queries(tmp_path):
    rows = [[0] + [-1] * 9] * 5
    da = _run(tmp_path, "a", rows, _evalset([0, 1, 2, 3, 4]))
    other_users = _run(tmp_path, "u", rows, _evalset([0, 1, 2, 3, 4], users=list("vwxyz")))
    other_targets = _run(tmp_path, "t", rows, _evalset([0, 1, 2, 3, 5]))
    fewer = _run(tmp_path, "f", rows[:4], _evalset([0, 1, 2, 3]))
    a = load_per_user(da)
    for d, msg in ((other_users, "different users"), (other_targets, "different histories or targets"),
                   (fewer, "different users")):
        with pytest.raises(SemidError, match=msg):
            compare_runs([a, load_per_user(d)])
    with pytest.raises(SemidError, match="NDCG@20"):
        compare_runs([a, a], ("NDCG@20",))
    with pytest.raises(SemidError, match="per_user_valid.npz: missing"):
        load_per_user(da, "valid")
    res = CliRunner().invoke(__import__("semid.cli.main", fromlist=["app"]).app, ["compare", str(da), str(other_targets)])
    assert res.exit_code == 2 and "different histories or targets" in res.output
