"""Product quantization (FusID mechanism 3): one k-means codebook per sub-embedding.

A fused embedding E in R^(n x d) is split into its n sub-embeddings; sub-space j gets its own
K-centroid codebook, so an item's ID is the tuple of its n nearest-centroid indices and the ID
space has K^n tuples. The verbs follow faiss: ``fit`` / ``encode`` / ``decode``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from semid.device import pick_device
from semid.quantize.kmeans import KMeans, KMeansConfig
from semid.threads import independent_tasks


@dataclass(frozen=True)
class PQConfig:
    """Product-quantizer settings (FusID: n=5 sub-spaces, K=1024)."""

    n_sub: int = 5  # n, sub-spaces = ID positions before disambiguation (the fusion net emits n blocks)
    K: int = 1024  # centroids per sub-space
    kmeans: KMeansConfig = field(default_factory=KMeansConfig)  # k-means used for every sub-space
    min_fit_items: int = 0  # fit on train items unless fewer than max(this, K) exist; then on all items
    # How items sharing a raw tuple get unique IDs: "digit" appends a disambiguation token (n+1 positions
    # for everyone, TIGER's scheme); "reassign" moves all but one to their cheapest free tuple and keeps n
    # positions (``semid.quantize.unique``). The report's conflict_rate is the raw rate either way.
    resolve: str = "digit"


ENCODE_ROWS = 1 << 16  # rows per encode chunk


def _as_blocks(x: np.ndarray, n_sub: int) -> np.ndarray:
    """(N, n*d) or (N, n, d) -> (N, n, d)."""
    x = np.asarray(x)
    if x.ndim == 2:
        if x.shape[1] % n_sub:
            raise ValueError(f"embedding width {x.shape[1]} is not divisible by n_sub={n_sub}")
        return x.reshape(len(x), n_sub, -1)
    if x.ndim != 3 or x.shape[1] != n_sub:
        raise ValueError(f"expected (N, {n_sub}, d) or (N, {n_sub}*d), got {x.shape}")
    return x


class ProductQuantizer:
    """``ProductQuantizer(n_sub=5, K=1024).fit(x)``; ``encode(x) -> int64 [N, n_sub]``; ``decode(codes)``."""

    def __init__(self, n_sub: int, K: int, *, kmeans: KMeansConfig = KMeansConfig()):
        self.n_sub = n_sub
        self.K = K
        self.kmeans = kmeans

    def fit(self, x: np.ndarray, rows: np.ndarray | None = None) -> ProductQuantizer:
        """x float [N, n, d] (or [N, n*d]): the sub-embeddings to fit the codebooks on; ``rows`` (int [M],
        optional): fit on these rows only, as ``fit(x[rows])`` would, without copying all n sub-spaces."""
        blocks = _as_blocks(x, self.n_sub)
        sel = slice(None) if rows is None else np.asarray(rows)

        def fit_one(j: int) -> KMeans:
            cfg = dataclasses.replace(self.kmeans, seed=self.kmeans.seed + j)
            # one sub-space's rows, float32 and contiguous: the only copy of x a fit makes
            return KMeans(self.K, config=cfg).fit(np.ascontiguousarray(blocks[sel, j], dtype=np.float32))

        # The sub-spaces share nothing, so on CPU they are fitted side by side, one per worker thread
        # (semid.threads.independent_tasks); faiss and CUDA fits run one after another.
        probe = KMeans(self.K, config=self.kmeans)
        on_cpu = pick_device(self.kmeans.device).type == "cpu"
        n_fit = len(blocks) if rows is None else len(sel)
        if on_cpu and probe.backend_for(n_fit) == "torch":
            with independent_tasks(self.n_sub) as run:
                fitted = run(fit_one, list(range(self.n_sub)))
        else:
            fitted = [fit_one(j) for j in range(self.n_sub)]
        self.centroids_ = np.stack([km.centroids_.astype(np.float32) for km in fitted])  # (n, K, d)
        self.inertia_ = [km.inertia_ for km in fitted]
        self.backends_ = [km.backend_ for km in fitted]
        return self

    @classmethod
    def from_centroids(
        cls, centroids: np.ndarray, *, kmeans: KMeansConfig = KMeansConfig()
    ) -> ProductQuantizer:
        """Rebuild a fitted quantizer from saved centroids float [n, K, d]."""
        pq = cls(centroids.shape[0], centroids.shape[1], kmeans=kmeans)
        pq.centroids_ = np.asarray(centroids, dtype=np.float32)
        return pq

    def encode(self, x: np.ndarray) -> np.ndarray:
        """float [N, n, d] or [N, n*d] -> int64 codes [N, n] (nearest centroid, lowest index on ties)."""
        import torch

        from semid.quantize.kmeans import assign

        blocks = _as_blocks(x, self.n_sub)
        out = np.empty((len(blocks), self.n_sub), dtype=np.int64)
        # row chunks: the contiguous float32 copy of one sub-space stays ENCODE_ROWS x d, not N x d
        for a in range(0, len(blocks), ENCODE_ROWS):
            part = blocks[a : a + ENCODE_ROWS]
            for j in range(self.n_sub):
                lab, _ = assign(torch.from_numpy(np.ascontiguousarray(part[:, j], dtype=np.float32)),
                                torch.from_numpy(self.centroids_[j]))
                out[a : a + len(part), j] = lab.numpy()
        return out

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """int codes [N, n] -> reconstructed sub-embeddings float32 [N, n, d] (the centroids)."""
        codes = np.asarray(codes, dtype=np.int64)
        if codes.ndim != 2 or codes.shape[1] != self.n_sub:
            raise ValueError(f"codes must be (N, {self.n_sub}), got {codes.shape}")
        if (codes < 0).any() or (codes >= self.K).any():
            raise ValueError(f"codes must lie in [0, {self.K})")
        return np.stack([self.centroids_[j][codes[:, j]] for j in range(self.n_sub)], axis=1)
