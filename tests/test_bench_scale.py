"""benchmarks/bench_scale.py: the synthetic sessions follow the catalog's clusters, and the FusID row's encode
pass reproduces the codes its fit assigned."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import bench_scale

        yield bench_scale
    finally:
        sys.path.remove(str(REPO / "benchmarks"))


def test_cluster_of_is_the_catalogs_own_assignment(bench):
    n = 5000
    x, which = bench.catalog(n), bench._cluster_of(n)
    # items of one cluster differ by noise only: their mean distance is far below the catalog's
    big = np.bincount(which).argmax()
    members = x[which == big]
    within = np.linalg.norm(members - members.mean(0), axis=1).mean()
    overall = np.linalg.norm(x - x.mean(0), axis=1).mean()
    assert within < 0.6 * overall


def test_sessions_stay_in_one_cluster_and_walk_its_cycle(bench):
    n = 5000
    which = bench._cluster_of(n)
    s = bench.sessions(n, 400, length=10)
    assert s.shape == (400, 10) and s.min() >= 0 and s.max() < n
    assert (which[s] == which[s[:, :1]]).all()  # one cluster per session
    sizes = np.bincount(which, minlength=bench.N_CENTRES)
    long = sizes[which[s[:, 0]]] >= 10
    assert all(len(set(row)) == 10 for row in s[long])  # a cycle of >= 10 items repeats none in 10 steps
    assert np.array_equal(s, bench.sessions(n, 400, length=10))  # seeded


def test_fusid_row_encodes_what_its_fit_assigned(bench):
    args = SimpleNamespace(fusion_epochs=1, fusion_pairs=2000, fusion_hidden=64, fusid_alpha=0.2,
                           fusion_batch=512, fusion_max_pairs=200_000)
    x = bench.catalog(3000)
    codes, sizes, fit_s, enc_s = bench._fusid(x, args)  # raises if encode differs from the fit's codes
    assert codes.shape == (3000, 5) and sizes == [1024] * 5 and fit_s > 0 and enc_s > 0
    assert bench.EXTRA["sessions"] == 1200 and set(bench.EXTRA["fusid_seconds"]) >= {"train", "pq"}
