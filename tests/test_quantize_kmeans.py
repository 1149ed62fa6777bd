"""k-means: torch vs NumPy reference parity, invariants (faiss contrib style), degenerate inputs."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from semid.quantize.kmeans import KMeans, KMeansConfig
from semid.quantize.kmeans_reference import kmeans_plusplus_reference, kmeans_reference

TORCH = KMeansConfig(backend="torch", n_iter=15, tol=0.0)


def _blobs(n=300, k=6, d=4, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(k, d)) * 5
    return (centers[rng.integers(k, size=n)] + rng.normal(size=(n, d))).astype(np.float32)


def test_parity_with_reference_same_init():
    x = _blobs()
    init = kmeans_plusplus_reference(x, 8, seed=3)
    ref_c, ref_lab, ref_hist = kmeans_reference(x, 8, n_iter=15, init=init)
    km = KMeans(8, config=TORCH).fit(x, init=init)
    assert (km.labels_ == ref_lab).mean() == 1.0
    np.testing.assert_allclose(km.centroids_, ref_c, atol=1e-4)
    np.testing.assert_allclose(km.history_[-1], ref_hist[-1], rtol=1e-4)


def test_plusplus_init_matches_reference():
    import torch

    from semid.quantize.kmeans import kmeans_plusplus

    x = _blobs(seed=1)
    c = kmeans_plusplus(torch.from_numpy(x).double(), 10, seed=5).numpy()
    np.testing.assert_allclose(c, kmeans_plusplus_reference(x, 10, seed=5), atol=1e-6)


def test_objective_non_increasing():
    km = KMeans(16, config=TORCH).fit(_blobs(n=500, seed=2))
    h = np.asarray(km.history_)
    assert (np.diff(h) <= 1e-3 * h[0]).all(), h


def test_more_centroids_lower_error():
    x = _blobs(n=400, seed=3)
    inertia = [KMeans(k, config=TORCH).fit(x).inertia_ for k in (2, 8, 32)]
    assert inertia[0] > inertia[1] > inertia[2]


def test_degenerate_duplicates_and_fewer_distinct_points_than_k():
    x = np.repeat(np.eye(3, dtype=np.float32), 10, axis=0)  # 30 points, 3 distinct
    km = KMeans(8, config=TORCH).fit(x)
    assert np.isfinite(km.centroids_).all()
    assert km.inertia_ == pytest.approx(0.0, abs=1e-6)
    assert len(np.unique(km.labels_)) == 3
    same = KMeans(4, config=TORCH).fit(np.ones((5, 2), np.float32))  # all identical
    assert (same.labels_ == 0).all() and same.inertia_ == pytest.approx(0.0, abs=1e-6)
    tiny = KMeans(8, config=KMeansConfig(backend="auto")).fit(x[:3])  # N < K: auto must not pick faiss
    assert tiny.backend_ == "torch"


def test_empty_cluster_is_reseeded():
    x = _blobs(n=200, k=4, seed=4)
    init = np.vstack([x[:3], np.full((1, x.shape[1]), 1e3, np.float32)])  # one centroid far away
    km = KMeans(4, config=TORCH).fit(x, init=init)
    assert len(np.unique(km.labels_)) == 4
    ref_c, ref_lab, _ = kmeans_reference(x, 4, n_iter=15, init=init)
    assert (km.labels_ == ref_lab).all()


def test_faiss_backend_comparable_inertia():
    pytest.importorskip("faiss")
    x = _blobs(n=2000, k=20, d=8, seed=5)
    t = KMeans(32, config=KMeansConfig(backend="torch", n_iter=20)).fit(x)
    f = KMeans(32, config=KMeansConfig(backend="faiss", n_iter=20)).fit(x)
    assert f.backend_ == "faiss"
    assert f.inertia_ < 1.1 * t.inertia_ and t.inertia_ < 1.1 * f.inertia_
    assert (f.predict(x) == f.labels_).mean() > 0.99


def test_default_backend_does_not_depend_on_optional_installs():
    # Same config -> same IDs on every machine: the default never switches to faiss because it is installed.
    from semid.quantize.kmeans import KMeans, KMeansConfig

    assert KMeans(4).backend_for(1000) == "torch"
    assert KMeans(4, config=KMeansConfig(backend="auto")).backend_for(2) == "torch"  # fewer points than K


# ---------------------------------------------------------------- fast path: greedy k-means++ on a sample


def test_greedy_sampled_plusplus_matches_reference():
    import torch

    from semid.quantize.kmeans import kmeans_plusplus

    x = _blobs(n=400, k=12, d=5, seed=6)
    for trials, sample in ((4, 0), (3, 150), (1, 150)):
        c = kmeans_plusplus(torch.from_numpy(x).double(), 12, seed=7, trials=trials, sample=sample).numpy()
        ref = kmeans_plusplus_reference(x, 12, seed=7, trials=trials, sample=sample)
        np.testing.assert_allclose(c, ref, atol=1e-9, err_msg=f"trials={trials} sample={sample}")


def test_default_config_fit_matches_reference_end_to_end():
    from semid.quantize.kmeans import default_init_trials

    x = _blobs(n=600, k=10, d=6, seed=8).astype(np.float64)  # float64: no rounding-order differences
    cfg = KMeansConfig(n_iter=12, tol=0.0, seed=4, init_sample=4)  # 4 * 16 = 64 of 600 points seed
    km = KMeans(16, config=cfg).fit(x)
    ref_c, ref_lab, ref_hist = kmeans_reference(
        x, 16, n_iter=12, seed=4, trials=default_init_trials(16), sample=4 * 16
    )
    assert (km.labels_ == ref_lab).all()
    np.testing.assert_allclose(km.centroids_, ref_c, atol=1e-9)
    h = km.history_  # tol=0 stops once an iteration leaves the objective unchanged (converged)
    np.testing.assert_allclose(h, ref_hist[: len(h) - 1] + ref_hist[-1:], rtol=1e-9)


def test_plain_settings_reproduce_the_previous_algorithm():
    # init_trials=1, init_sample=0 is plain k-means++ on all points: the draws of the earlier default.
    x = _blobs(n=300, seed=9)
    km = KMeans(8, config=KMeansConfig(n_iter=15, tol=0.0, seed=2, init_trials=1, init_sample=0)).fit(x)
    _, ref_lab, ref_hist = kmeans_reference(x, 8, n_iter=15, seed=2)
    assert (km.labels_ == ref_lab).all()
    np.testing.assert_allclose(km.history_[-1], ref_hist[-1], rtol=1e-4)


def test_deterministic_for_a_seed():
    x = _blobs(n=2000, k=30, d=8, seed=10)
    a = KMeans(64, config=KMeansConfig(seed=3)).fit(x)
    b = KMeans(64, config=KMeansConfig(seed=3)).fit(x)
    c = KMeans(64, config=KMeansConfig(seed=4)).fit(x)
    np.testing.assert_array_equal(a.centroids_, b.centroids_)
    np.testing.assert_array_equal(a.labels_, b.labels_)
    assert not np.array_equal(a.centroids_, c.centroids_)


def test_default_inertia_not_worse_than_previous_default():
    # Many well-separated clusters, K equal to their number: plain k-means++ (the previous default)
    # often seeds two centroids in one cluster, which Lloyd cannot undo; greedy seeding rarely does.
    x = _blobs(n=3000, k=40, d=8, seed=11)
    old = KMeansConfig(n_iter=25, tol=1e-6, init_trials=1, init_sample=0)
    for seed in (0, 1):
        new_i = KMeans(40, config=KMeansConfig(seed=seed)).fit(x).inertia_
        old_i = KMeans(40, config=dataclasses.replace(old, seed=seed)).fit(x).inertia_
        assert new_i <= old_i * 1.001, (seed, new_i, old_i)


def test_bad_config_values_name_the_fields():
    with pytest.raises(ValueError, match="init_trials"):
        KMeans(4, config=KMeansConfig(init_trials=-1)).fit(np.zeros((10, 2), np.float32))


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 40), k=st.integers(1, 12), d=st.integers(1, 5), chunk=st.integers(0, 7),
    seed=st.integers(0, 2**16),
)
def test_assign_matches_reference_property(n, k, d, chunk, seed):
    import torch

    from semid.quantize.kmeans import assign
    from semid.quantize.kmeans_reference import assign_reference

    rng = np.random.default_rng(seed)
    # Small integers in float64: every distance is exact, so ties (duplicates) must go to the lowest index.
    x = rng.integers(-3, 4, size=(n, d)).astype(np.float64)
    c = rng.integers(-3, 4, size=(k, d)).astype(np.float64)
    lab, dist = assign(torch.from_numpy(x), torch.from_numpy(c), chunk)
    ref_lab, ref_d = assign_reference(x, c)
    np.testing.assert_array_equal(lab.numpy(), ref_lab)
    np.testing.assert_allclose(dist.numpy(), ref_d, atol=1e-9)


def test_coarse_phase_is_lloyd_on_the_sample_then_on_all_points():
    from semid.quantize.kmeans import coarse_sample, default_init_trials

    x = _blobs(n=900, k=10, d=6, seed=12).astype(np.float64)
    cfg = KMeansConfig(n_iter=10, tol=0.0, seed=5, fit_sample=20, fit_min=0, refine_iter=3, init_sample=50)
    km = KMeans(16, config=cfg).fit(x)  # coarse phase on 20 * 16 = 320 of 900 rows; seeding on 50 * 16 = 800
    sub = coarse_sample(900, 16, 20, 5)
    assert len(sub) == 320 and (np.diff(sub) > 0).all()
    init = kmeans_plusplus_reference(x, 16, 5, trials=default_init_trials(16), sample=800)
    c1, _, h1 = kmeans_reference(x[sub], 16, n_iter=10, init=init)
    c2, lab, h2 = kmeans_reference(x, 16, n_iter=3, init=c1)
    assert (km.labels_ == lab).all()
    np.testing.assert_allclose(km.centroids_, c2, atol=1e-9)
    assert len(km.coarse_history_) <= 11 and len(km.history_) <= 4  # tol=0 stops at a fixed point
    np.testing.assert_allclose(km.history_[-1], h2[-1], rtol=1e-9)
    # off, a sample as large as the data, or no more points than fit_min (the default 32768): one plain fit
    assert coarse_sample(900, 16, 0, 5) is None and coarse_sample(300, 16, 20, 5) is None
    assert coarse_sample(900, 16, 20, 5, fit_min=900) is None and len(coarse_sample(901, 16, 20, 5, fit_min=900)) == 900
    plain = KMeans(16, config=KMeansConfig(n_iter=10, tol=0.0, seed=5, fit_sample=0)).fit(x)
    for off in (KMeansConfig(n_iter=10, tol=0.0, seed=5), KMeansConfig(n_iter=10, tol=0.0, seed=5, fit_sample=100,
                                                                          fit_min=0)):
        np.testing.assert_array_equal(plain.centroids_, KMeans(16, config=off).fit(x).centroids_)
    # seeding on all points: FULL_SEED_TRIALS_FACTOR x scikit-learn's candidates per step
    ref_c, _, _ = kmeans_reference(x, 16, n_iter=10, seed=5, trials=4 * default_init_trials(16))
    np.testing.assert_allclose(plain.centroids_, ref_c, atol=1e-9)
    with pytest.raises(ValueError, match="refine_iter"):
        KMeans(4, config=KMeansConfig(refine_iter=-1)).fit(np.zeros((10, 2), np.float32))


def test_coarse_phase_seeds_on_a_sample_unless_told(monkeypatch):
    from semid.quantize import kmeans as km_mod

    x = _blobs(n=2000, k=10, d=4, seed=13)
    seen = []
    real = km_mod.kmeans_plusplus

    def spy(x, k, seed=0, *, trials=1, sample=0):
        seen.append(sample)
        return real(x, k, seed, trials=trials, sample=sample)

    monkeypatch.setattr(km_mod, "kmeans_plusplus", spy)
    KMeans(8, config=KMeansConfig(n_iter=3, fit_sample=10, fit_min=0)).fit(x)  # coarse: 80 of 2000 rows
    KMeans(8, config=KMeansConfig(n_iter=3, fit_sample=10, fit_min=0, init_sample=2)).fit(x)
    KMeans(8, config=KMeansConfig(n_iter=3)).fit(x)  # 2000 <= fit_min: all points, as before
    assert seen == [km_mod.COARSE_SEED_POINTS, 16, 0]


# ---------------------------------------------------------------- how many k-means++ candidates


def test_seeding_plan_full_fit_draws_four_times_scikit_learns_candidates():
    from semid.quantize.kmeans import COARSE_SEED_POINTS, default_init_trials, seeding_plan

    assert default_init_trials(256) == 7 and default_init_trials(1024) == 8 and default_init_trials(1) == 1
    assert seeding_plan(20_000, 256, KMeansConfig()) == (28, 0)  # all points (20k <= fit_min): 4 x 7
    assert seeding_plan(100_000, 1024, KMeansConfig()) == (8, COARSE_SEED_POINTS)  # coarse phase: a sample
    assert seeding_plan(100_000, 1024, KMeansConfig(fit_sample=0)) == (32, 0)  # full fit of a large input
    assert seeding_plan(1000, 16, KMeansConfig(init_sample=4)) == (4, 64)  # a sample asked for
    assert seeding_plan(50, 16, KMeansConfig(init_sample=4)) == (16, 64)  # sample >= N: all points
    assert seeding_plan(1000, 16, KMeansConfig(init_trials=3)) == (3, 0)  # explicit trials win
    assert seeding_plan(1000, 1, KMeansConfig()) == (1, 0)
    # init_all (residual k-means): every point also in the coarse phase, 2 x (2 + ln K) candidates there
    assert seeding_plan(100_000, 256, KMeansConfig(init_all=True)) == (14, 0)
    assert seeding_plan(100_000, 256, KMeansConfig()) == (7, COARSE_SEED_POINTS)
    assert seeding_plan(20_000, 256, KMeansConfig(init_all=True)) == (28, 0)  # no coarse phase: as before


def test_residual_kmeans_seeds_on_every_item_above_the_coarse_threshold():
    """RQ-KMeans' levels seed on all items (init_all), not on the coarse phase's sample; k-means on the same
    data otherwise seeds on a sample."""
    from semid.quantize.kmeans import seeding_plan
    from semid.tokenizers.rqkmeans import RQKMeansConfig

    cfg = RQKMeansConfig()
    assert all(seeding_plan(100_000, 256, cfg.kmeans(lvl))[1] == 0 for lvl in range(3))
    assert seeding_plan(100_000, 256, RQKMeansConfig(seed_all=False).kmeans(0))[1] > 0


def test_fit_seeds_with_the_plan(monkeypatch):
    # Regression: the full fit drew scikit-learn's 2 + ln K candidates, whose seeds Lloyd could not get out of
    # (residual k-means ended above scikit-learn's MSE however many passes it ran).
    from semid.quantize import kmeans as km_mod

    seen = []
    real = km_mod.kmeans_plusplus

    def spy(x, k, seed=0, *, trials=1, sample=0):
        seen.append((trials, sample))
        return real(x, k, seed, trials=trials, sample=sample)

    monkeypatch.setattr(km_mod, "kmeans_plusplus", spy)
    x = _blobs(n=500, k=10, d=4, seed=14)
    KMeans(16, config=KMeansConfig(n_iter=2)).fit(x)
    KMeans(16, config=KMeansConfig(n_iter=2, init_sample=4)).fit(x)  # seeding on 64 of 500 rows
    # coarse phase, seeding sample (16384) not smaller than the input: seeding on all points
    KMeans(16, config=KMeansConfig(n_iter=2, fit_sample=10, fit_min=0)).fit(x)
    assert seen == [(16, 0), (4, 64), (16, km_mod.COARSE_SEED_POINTS)]


def test_more_candidates_lower_the_seeding_potential_and_the_fitted_inertia():
    # As many well-separated clusters as centroids: the optimum puts one centroid per cluster. Plain k-means++
    # seeds two in one cluster often, greedy with 2 + ln K candidates less often, with 4x that hardly ever.
    import torch

    from semid.quantize.kmeans import assign, default_init_trials, kmeans_plusplus

    x = _blobs(n=3000, k=40, d=8, seed=11)
    xt = torch.from_numpy(x)
    few = default_init_trials(40)
    fitted = {few: [], 4 * few: []}
    for seed in range(4):
        pot = [float(assign(xt, kmeans_plusplus(xt, 40, seed, trials=t))[1].double().sum()) for t in (1, few, 4 * few)]
        assert pot[0] > pot[1] > pot[2], (seed, pot)
        for t in fitted:
            fitted[t].append(KMeans(40, config=KMeansConfig(seed=seed, init_trials=t)).fit(x).inertia_)
    assert all(a <= b * 1.0001 for a, b in zip(fitted[4 * few], fitted[few], strict=True)), fitted
    assert np.mean(fitted[4 * few]) < 0.97 * np.mean(fitted[few]), fitted
    auto = [KMeans(40, config=KMeansConfig(seed=s)).fit(x).inertia_ for s in range(2)]  # the default is the 4x
    np.testing.assert_allclose(auto, fitted[4 * few][:2], rtol=1e-6)


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 30), k=st.integers(1, 10), d=st.integers(1, 4), trials=st.integers(1, 9),
    sample=st.integers(0, 35), seed=st.integers(0, 2**16),
)
def test_plusplus_matches_the_reference_loop_property(n, k, d, trials, sample, seed):
    # Small integers in float64: distances, cumulative masses and potentials are exact in both, so the same
    # generator draws must pick the same rows, duplicates and zero-mass steps included.
    import torch

    from semid.quantize.kmeans import kmeans_plusplus

    x = np.random.default_rng(seed).integers(-3, 4, size=(n, d)).astype(np.float64)
    c = kmeans_plusplus(torch.from_numpy(x), k, seed, trials=trials, sample=sample).numpy()
    np.testing.assert_array_equal(c, kmeans_plusplus_reference(x, k, seed, trials=trials, sample=sample))
