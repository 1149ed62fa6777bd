"""Plain NumPy k-means: the slow, obviously-correct reference that ``kmeans.KMeans`` is tested against.

Same algorithm step by step as the torch version (k-means++ init, Lloyd iterations, empty
clusters re-seeded from the points farthest from their centroid, ties broken to the lowest
centroid index), in float64 with no batching, so a parity test can compare the two.
"""

from __future__ import annotations

import numpy as np


def kmeans_plusplus_reference(
    x: np.ndarray, k: int, seed: int = 0, *, trials: int = 1, sample: int = 0
) -> np.ndarray:
    """k-means++ seeding (Arthur & Vassilvitskii 2007): x float [N, D] -> centroids float64 [k, D].

    ``trials`` > 1: greedy k-means++ (scikit-learn's variant): each step draws ``trials`` candidates
    from D(x)^2 and keeps the one whose potential sum_x min(D(x)^2, ||x - cand||^2) is lowest (first on
    ties). ``sample`` > 0 and < N: seed on that many points drawn without replacement (sorted).
    With fewer distinct points than k the remaining draws have zero mass; they fall back to
    uniform draws (duplicate centroids), which the Lloyd step then leaves empty or tied.
    """
    x = np.asarray(x, dtype=np.float64)
    rng = np.random.default_rng(seed)
    n = len(x)
    if 0 < sample < n:
        x = x[np.sort(rng.choice(n, size=sample, replace=False))]
        n = sample
    centroids = np.empty((k, x.shape[1]), dtype=np.float64)
    centroids[0] = x[rng.integers(n)]
    d2 = ((x - centroids[0]) ** 2).sum(axis=1)
    for j in range(1, k):
        cum = np.cumsum(d2)
        total = cum[-1]
        if total <= 0:
            centroids[j] = x[rng.integers(n)]
            continue
        cand = np.minimum(np.searchsorted(cum, rng.random(trials) * total), n - 1)
        dc = ((x[None, :, :] - x[cand][:, None, :]) ** 2).sum(axis=2)  # (trials, N)
        best = int(np.argmin(np.minimum(dc, d2[None, :]).sum(axis=1))) if trials > 1 else 0
        centroids[j] = x[cand[best]]
        d2 = np.minimum(d2, dc[best])
    return centroids


def assign_reference(x: np.ndarray, centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest centroid per point: (labels int64 [N], squared distance float64 [N])."""
    d2 = ((x[:, None, :] - centroids[None, :, :]) ** 2).sum(axis=2)  # (N, K)
    labels = d2.argmin(axis=1)
    return labels.astype(np.int64), d2[np.arange(len(x)), labels]


def kmeans_reference(
    x: np.ndarray,
    k: int,
    *,
    n_iter: int = 20,
    init: np.ndarray | None = None,
    seed: int = 0,
    trials: int = 1,
    sample: int = 0,
) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """Lloyd's algorithm. Returns (centroids float64 [k, D], labels int64 [N], inertia per iteration).

    ``history[t]`` is the objective sum ||x - c(x)||^2 of the assignment at iteration t; the final
    labels are re-assigned to the final centroids.
    """
    x = np.asarray(x, dtype=np.float64)
    c = kmeans_plusplus_reference(x, k, seed, trials=trials, sample=sample) if init is None else np.array(init, dtype=np.float64)
    history: list[float] = []
    for _ in range(n_iter):
        labels, d2 = assign_reference(x, c)
        history.append(float(d2.sum()))
        new = c.copy()
        counts = np.bincount(labels, minlength=k)
        for j in np.flatnonzero(counts):
            new[j] = x[labels == j].mean(axis=0)
        empty = np.flatnonzero(counts == 0)
        if len(empty):
            # Re-seed each empty cluster at a point far from its centroid (largest d2 first).
            far = np.argsort(-d2, kind="stable")
            for j, i in zip(empty, far[: len(empty)], strict=False):
                if d2[i] > 0:
                    new[j] = x[i]
        c = new
    labels, d2 = assign_reference(x, c)
    history.append(float(d2.sum()))
    return c, labels, history
