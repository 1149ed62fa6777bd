"""k-means for product quantization: torch Lloyd (CPU/GPU) with k-means++ init, and a faiss backend.

Which backend is the default and why: ``torch``. On CPU ``faiss.Kmeans`` (C++/BLAS, OpenMP) is faster
(4.4x on one FusID sub-space of Amazon Instruments, 9.9k x 128 points, K=1024, one thread) but lands at a
4% higher inertia (random init vs our k-means++), and a default that depends on whether an optional
package is installed made the same config give different IDs on different machines (the README's install
has no faiss). So faiss is opt-in (``backend="faiss"``, or ``"auto"``: faiss when installed, the device is
CPU and there are at least K points, else torch); runs whose saved config says ``auto`` keep it. The
torch path is the one the parity test checks against the NumPy reference in ``kmeans_reference.py``.

Algorithm (torch backend): k-means++ seeding, then Lloyd iterations. Distances are computed in row
chunks as ||x||^2 - 2 x.c + ||c||^2 so memory stays O(chunk * K). A cluster that empties is re-seeded
at the point currently farthest from its centroid, which can only lower the objective (so
``history_`` is non-increasing); with fewer distinct points than K, the extra centroids duplicate
points, stay empty or tied, and ties go to the lowest centroid index.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from semid.device import pick_device


@dataclass(frozen=True)
class KMeansConfig:
    """k-means settings shared by every quantizer built on it."""

    n_iter: int = 25  # Lloyd iterations (both backends)
    tol: float = 1e-6  # stop early when the relative objective drop falls below this (torch backend)
    seed: int = 0  # seeds k-means++ (torch) / the random init (faiss)
    backend: str = "torch"  # torch | faiss | auto (faiss if installed; see the module docstring)
    device: str = "cpu"  # torch backend device: cpu | cuda | auto
    chunk_size: int = 8192  # rows per distance block (memory O(chunk_size * K))


def _faiss_available() -> bool:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


def pairwise_sq_dists(x: torch.Tensor, c: torch.Tensor, c_sq: torch.Tensor | None = None) -> torch.Tensor:
    """(N, D), (K, D) -> squared distances (N, K), clamped at 0 against cancellation."""
    c_sq = (c * c).sum(1) if c_sq is None else c_sq
    return ((x * x).sum(1, keepdim=True) - 2.0 * (x @ c.T) + c_sq[None, :]).clamp_min_(0.0)


def assign(x: torch.Tensor, c: torch.Tensor, chunk_size: int = 8192) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest centroid per row, batched over rows: (labels int64 [N], squared distance [N])."""
    c_sq = (c * c).sum(1)
    labels, dists = [], []
    for s in range(0, len(x), chunk_size):
        d = pairwise_sq_dists(x[s : s + chunk_size], c, c_sq)
        m, a = d.min(dim=1)  # torch.min returns the first (lowest) index on ties
        labels.append(a)
        dists.append(m)
    if not labels:
        return torch.zeros(0, dtype=torch.long, device=x.device), torch.zeros(
            0, dtype=x.dtype, device=x.device
        )
    return torch.cat(labels), torch.cat(dists)


def kmeans_plusplus(x: torch.Tensor, k: int, seed: int = 0) -> torch.Tensor:
    """k-means++ seeding; draws from a NumPy generator so it matches ``kmeans_plusplus_reference``."""
    rng = np.random.default_rng(seed)
    n = len(x)
    idx = [int(rng.integers(n))]
    d2 = ((x - x[idx[0]]) ** 2).sum(1).double()
    for _ in range(1, k):
        total = float(d2.sum())
        if total <= 0:
            j = int(rng.integers(n))
        else:
            u = rng.random() * total
            j = int(
                torch.searchsorted(torch.cumsum(d2, 0), torch.tensor([u], dtype=d2.dtype, device=d2.device))
            )
        j = min(j, n - 1)
        idx.append(j)
        d2 = torch.minimum(d2, ((x - x[j]) ** 2).sum(1).double())
    return x[torch.tensor(idx, device=x.device)].clone()


class KMeans:
    """``KMeans(k, config=...).fit(x)`` -> centroids_ [k, D], labels_ [N], inertia_, history_ (per iteration)."""

    def __init__(self, k: int, *, config: KMeansConfig = KMeansConfig()):
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        self.k = k
        self.config = config

    def backend_for(self, n_points: int) -> str:
        cfg = self.config
        if cfg.backend not in ("auto", "torch", "faiss"):
            raise ValueError(f"KMeansConfig.backend must be auto|torch|faiss, got {cfg.backend!r}")
        if cfg.backend != "auto":
            return cfg.backend
        on_cpu = pick_device(cfg.device).type == "cpu"
        return "faiss" if (on_cpu and n_points >= self.k and _faiss_available()) else "torch"

    def fit(self, x: np.ndarray | torch.Tensor, *, init: np.ndarray | None = None) -> KMeans:
        """x float [N, D]; ``init`` float [k, D] replaces k-means++ (used by the parity test)."""
        n = len(x)
        if n == 0:
            raise ValueError("KMeans.fit got 0 points")
        backend = self.backend_for(n)
        self.backend_ = backend
        if backend == "faiss":
            self._fit_faiss(np.asarray(x, dtype=np.float32), init)
        else:
            self._fit_torch(x, init)
        return self

    # ------------------------------------------------------------------ torch Lloyd
    def _fit_torch(self, x, init) -> None:
        cfg = self.config
        dev = pick_device(cfg.device)
        x = torch.as_tensor(np.asarray(x) if not torch.is_tensor(x) else x).to(dev)
        if not x.is_floating_point():
            x = x.float()
        k = self.k
        c = (
            kmeans_plusplus(x, k, cfg.seed)
            if init is None
            else torch.as_tensor(init, dtype=x.dtype, device=dev).clone()
        )
        history: list[float] = []
        for _ in range(cfg.n_iter):
            labels, d2 = assign(x, c, cfg.chunk_size)
            history.append(float(d2.double().sum()))
            sums = torch.zeros_like(c).index_add_(0, labels, x)
            counts = torch.bincount(labels, minlength=k)
            nonempty = counts > 0
            new = c.clone()
            new[nonempty] = sums[nonempty] / counts[nonempty, None].to(x.dtype)
            empty = torch.nonzero(~nonempty).flatten()
            if len(empty):
                # Farthest points first; stable order so ties match the NumPy reference.
                far = torch.sort(-d2.double(), stable=True).indices[: len(empty)]
                empty = empty[: len(far)]
                ok = d2[far] > 0
                new[empty[ok]] = x[far[ok]]
            c = new
            if len(history) > 1 and history[-2] - history[-1] <= cfg.tol * max(history[-2], 1e-30):
                break
        labels, d2 = assign(x, c, cfg.chunk_size)
        history.append(float(d2.double().sum()))
        self.centroids_ = c.cpu().numpy()
        self.labels_ = labels.cpu().numpy().astype(np.int64)
        self.inertia_ = history[-1]
        self.history_ = history

    # ------------------------------------------------------------------ faiss
    def _fit_faiss(self, x: np.ndarray, init) -> None:
        import faiss

        cfg = self.config
        km = faiss.Kmeans(x.shape[1], self.k, niter=cfg.n_iter, seed=cfg.seed, verbose=False)
        km.cp.min_points_per_centroid = 1  # FusID fits K=1024 on ~10k items: silence faiss's warning
        km.cp.max_points_per_centroid = 1 << 30  # use every point (no subsampling), like the torch path
        km.train(
            np.ascontiguousarray(x), init_centroids=None if init is None else np.asarray(init, np.float32)
        )
        d2, labels = km.index.search(np.ascontiguousarray(x), 1)
        self.centroids_ = np.asarray(km.centroids, dtype=np.float32)
        self.labels_ = labels[:, 0].astype(np.int64)
        self.inertia_ = float(d2.astype(np.float64).sum())
        self.history_ = [float(v) for v in km.obj] + [self.inertia_]

    # ------------------------------------------------------------------ use
    def predict(self, x: np.ndarray) -> np.ndarray:
        """Nearest centroid (lowest index on ties) for each row of x float [N, D] -> int64 [N]."""
        c = torch.as_tensor(self.centroids_)
        xt = torch.as_tensor(np.asarray(x, dtype=self.centroids_.dtype))
        return assign(xt, c, self.config.chunk_size)[0].numpy().astype(np.int64)
