"""Product quantizer: shapes, round trip (encode -> decode -> encode), config errors."""

from __future__ import annotations

import numpy as np
import pytest

from semid.quantize.kmeans import KMeansConfig
from semid.quantize.pq import ProductQuantizer


def test_round_trip_and_shapes():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3, 4)).astype(np.float32)
    pq = ProductQuantizer(3, 16, kmeans=KMeansConfig(backend="torch", n_iter=10)).fit(x)
    codes = pq.encode(x)
    assert codes.shape == (200, 3) and codes.dtype == np.int64
    assert codes.min() >= 0 and codes.max() < 16
    recon = pq.decode(codes)
    assert recon.shape == (200, 3, 4)
    np.testing.assert_array_equal(pq.encode(recon), codes)
    np.testing.assert_array_equal(pq.encode(x.reshape(200, 12)), codes)  # flat input is the same
    again = ProductQuantizer.from_centroids(pq.centroids_)
    np.testing.assert_array_equal(again.encode(x), codes)


def test_bad_inputs_name_the_problem():
    pq = ProductQuantizer(3, 4)
    with pytest.raises(ValueError, match="divisible"):
        pq.fit(np.zeros((10, 10), np.float32))
    pq.fit(np.random.default_rng(0).normal(size=(20, 3, 2)).astype(np.float32))
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        pq.decode(np.array([[0, 1, 4]]))


def test_side_by_side_subspace_fits_equal_one_thread_in_order(monkeypatch):
    """The sub-space fits run one per worker thread; the codebooks are bitwise those of fitting them one
    after another at one thread, so they do not depend on the worker count or the machine's load."""
    import torch

    from semid import threads

    rng = np.random.default_rng(1)
    x = rng.normal(size=(3000, 4, 8)).astype(np.float32)
    cfg = KMeansConfig(backend="torch", n_iter=8)
    before = torch.get_num_threads()
    monkeypatch.delenv("SEMID_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads, "_state", {})  # no --threads left over from another test
    monkeypatch.setattr(threads, "_whole", {"used": {}, "tasks": {}})
    try:
        torch.set_num_threads(2)
        side = ProductQuantizer(4, 32, kmeans=cfg).fit(x)
        assert "2x1" in threads.runtime_record()["independent_tasks"]
        assert torch.get_num_threads() == 2
        monkeypatch.setenv("SEMID_THREADS", "1")
        torch.set_num_threads(1)
        seq = ProductQuantizer(4, 32, kmeans=cfg).fit(x)
    finally:
        torch.set_num_threads(before)
    np.testing.assert_array_equal(side.centroids_, seq.centroids_)
    assert side.inertia_ == seq.inertia_


def test_encode_copies_a_chunk_not_the_whole_input():
    # 200k x 4 x 16 float32 (51 MB): encode works on row chunks, so its numpy peak is the codes (6.4 MB) plus
    # one chunk; a whole-input float32 copy (the old astype) would alone exceed half the input.
    import tracemalloc

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200_000, 4, 16)).astype(np.float32)
    pq = ProductQuantizer(4, 16, kmeans=KMeansConfig(backend="torch", n_iter=2)).fit(x[:5000])
    tracemalloc.start()
    try:
        codes = pq.encode(x)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 0.5 * x.nbytes, peak
    ref = np.stack([np.argmin(((x[:2000, j, None] - pq.centroids_[j][None]) ** 2).sum(-1), axis=1)
                    for j in range(4)], axis=1)
    np.testing.assert_array_equal(codes[:2000], ref)


def test_fit_on_rows_equals_fit_on_the_copied_rows():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3000, 3, 4)).astype(np.float32)
    rows = np.sort(rng.choice(3000, size=1800, replace=False))
    km = KMeansConfig(backend="torch", n_iter=5)
    a = ProductQuantizer(3, 32, kmeans=km).fit(x, rows=rows)
    b = ProductQuantizer(3, 32, kmeans=km).fit(x[rows])
    np.testing.assert_array_equal(a.centroids_, b.centroids_)
    np.testing.assert_array_equal(a.encode(x), b.encode(x))
