"""One vector-quantisation layer (VQ-VAE, van den Oord et al. 2017): nearest codeword, straight-through
gradient, codebook + commitment loss, k-means initialisation and dead-code re-seeding.

Used level by level by ``semid.quantize.rq.ResidualQuantizer`` (TIGER / LETTER / MusicRec eq. 3-5, 8).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class VQOutput:
    """quantized: (B, D) codewords e_c with straight-through gradient to the input;
    codewords: (B, D) the same codewords, gradient flows to the codebook only;
    codes: (B,) int64; loss: scalar ``||sg[r]-e||^2 + mu ||r-sg[e]||^2`` (squared norms, batch mean)."""

    quantized: torch.Tensor
    codewords: torch.Tensor
    codes: torch.Tensor
    loss: torch.Tensor


def kmeans_torch(x: torch.Tensor, k: int, *, iters: int = 20, seed: int = 0) -> torch.Tensor:
    """Plain Lloyd k-means on (B, D) -> centroids (k, D). Empty clusters take a random point.

    When B < k the points are repeated with small noise so every centroid has a distinct seed. Used for
    codebook init only when the first batch has fewer points than codes (else ``semid.quantize.kmeans``).
    """
    g = torch.Generator().manual_seed(seed)
    x = x.detach().float().cpu()
    if len(x) < k:
        reps = -(-k // len(x))
        x = x.repeat(reps, 1)
        x = x + 1e-3 * x.std().clamp_min(1e-6) * torch.randn(x.shape, generator=g)
    cent = x[torch.randperm(len(x), generator=g)[:k]].clone()
    for _ in range(iters):
        assign = torch.cdist(x, cent).argmin(1)
        sums = torch.zeros_like(cent).index_add_(0, assign, x)
        counts = torch.bincount(assign, minlength=k).float()
        empty = counts == 0
        cent = torch.where(empty[:, None], cent, sums / counts.clamp_min(1)[:, None])
        if empty.any():
            cent[empty] = x[torch.randint(len(x), (int(empty.sum()),), generator=g)]
    return cent


class VectorQuantizer(nn.Module):
    """Codebook (N, D). ``forward(r)`` picks argmin_i ||r - e_i||^2 (eq. 3) and returns a ``VQOutput``.

    Training state: ``initialized`` (k-means run on the first training batch), ``usage`` (N,) counts since
    the last ``reseed_dead_codes`` call, ``n_reseeded`` total codes re-seeded so far.
    """

    def __init__(
        self, *, n_codes: int = 256, dim: int = 32, mu: float = 0.25, kmeans_init: bool = True, seed: int = 0
    ):
        super().__init__()
        self.n_codes, self.dim, self.mu, self.kmeans_init, self.seed = n_codes, dim, mu, kmeans_init, seed
        g = torch.Generator().manual_seed(seed)
        self.codebook = nn.Parameter(torch.randn(n_codes, dim, generator=g) / dim**0.5)
        self.register_buffer("initialized", torch.tensor(not kmeans_init))
        self.register_buffer("usage", torch.zeros(n_codes, dtype=torch.long))
        self.n_reseeded = 0
        self._last_inputs: torch.Tensor | None = None

    @torch.no_grad()
    def _init_from(self, r: torch.Tensor) -> None:
        if len(r) >= self.n_codes:  # the shared k-means (k-means++ + Lloyd, torch backend)
            from semid.quantize.kmeans import KMeans, KMeansConfig

            cfg = KMeansConfig(seed=self.seed, backend="torch", n_iter=20)
            cent = torch.from_numpy(KMeans(self.n_codes, config=cfg).fit(r.detach().float().cpu()).centroids_)
        else:  # fewer points than codes: jittered copies, see kmeans_torch
            cent = kmeans_torch(r, self.n_codes, seed=self.seed)
        self.codebook.data.copy_(cent.to(self.codebook))
        self.initialized.fill_(True)

    def nearest(self, r: torch.Tensor) -> torch.Tensor:
        """(B, D) -> (B,) int64 index of the nearest codeword (squared L2)."""
        # float32 even under bf16 autocast: bf16 distances tie and flip near-equal codes
        with torch.autocast(r.device.type, enabled=False):
            r, cb = r.float(), self.codebook.float()
            d = r.pow(2).sum(1, keepdim=True) - 2 * r @ cb.t() + cb.pow(2).sum(1)[None]
        return d.argmin(1)

    def forward(self, r: torch.Tensor) -> VQOutput:
        if self.training and not bool(self.initialized):
            self._init_from(r)
        codes = self.nearest(r.detach())
        e = self.codebook[codes]  # (B, D)
        # eq. 8: codebook term pulls e to sg[r]; commitment term (weight mu) pulls r to sg[e].
        # Squared L2 norms as in eq. 8, summed over dims and averaged over the batch.
        loss = (r.detach() - e).pow(2).sum(-1).mean() + self.mu * (r - e.detach()).pow(2).sum(-1).mean()
        if self.training:
            self.usage += torch.bincount(codes, minlength=self.n_codes)
            self._last_inputs = r.detach()
        quantized = r + (e - r).detach()  # straight-through estimator
        return VQOutput(quantized=quantized, codewords=e, codes=codes, loss=loss)

    @torch.no_grad()
    def reseed_dead_codes(self, inputs: torch.Tensor | None = None) -> int:
        """Codes unused since the last call get random rows of ``inputs`` (default: the last training
        batch seen at this level). Resets ``usage``; returns how many codes were re-seeded."""
        inputs = self._last_inputs if inputs is None else inputs
        dead = self.usage == 0
        n_dead = int(dead.sum())
        if n_dead and inputs is not None and len(inputs):
            g = torch.Generator().manual_seed(self.seed + self.n_reseeded + 1)
            idx = torch.randint(len(inputs), (n_dead,), generator=g)
            self.codebook.data[dead] = inputs[idx].to(self.codebook)
            self.n_reseeded += n_dead
        else:
            n_dead = 0
        self.usage.zero_()
        return n_dead

    @torch.no_grad()
    def encode(self, r: torch.Tensor) -> torch.Tensor:
        """(B, D) -> (B,) codes."""
        return self.nearest(r)

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """(B,) codes -> (B, D) codewords."""
        return self.codebook[codes]
