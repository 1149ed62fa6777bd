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
