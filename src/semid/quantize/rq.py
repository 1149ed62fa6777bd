"""Residual quantisation: a stack of L ``VectorQuantizer`` levels, each quantising what the previous left.

r_0 = z, c_l = argmin ||r_{l-1} - e||, r_l = r_{l-1} - e_{c_l}   (MusicRec eq. 3-5, TIGER's RQ).
The residual passed on uses sg[e] so every level's commitment term also trains the encoder.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from semid.quantize.vq import VectorQuantizer


@dataclass
class RQOutput:
    """quantized: (B, D) sum of codewords, straight-through to the input z;
    codeword_sum: (B, D) the same sum with gradient to the codebooks (for losses on ẑ);
    codes: (B, L) int64; loss: scalar, sum over levels of the VQ loss (eq. 8);
    residual: (B, D) r_L, what is left after the last level."""

    quantized: torch.Tensor
    codeword_sum: torch.Tensor
    codes: torch.Tensor
    loss: torch.Tensor
    residual: torch.Tensor


class ResidualQuantizer(nn.Module):
    """L levels of N codes in R^dim."""

    def __init__(
        self,
        *,
        n_levels: int = 3,
        n_codes: int = 256,
        dim: int = 32,
        mu: float = 0.25,
        kmeans_init: bool = True,
        seed: int = 0,
    ):
        super().__init__()
        self.dim = dim
        self.levels = nn.ModuleList(
            VectorQuantizer(n_codes=n_codes, dim=dim, mu=mu, kmeans_init=kmeans_init, seed=seed + 97 * i)
            for i in range(n_levels)
        )

    @property
    def n_levels(self) -> int:
        return len(self.levels)

    @property
    def codebook_sizes(self) -> list[int]:
        return [vq.n_codes for vq in self.levels]

    def forward(self, z: torch.Tensor) -> RQOutput:
        """z: (B, D) -> RQOutput."""
        r = z
        codes, loss = [], z.new_zeros(())
        total = torch.zeros_like(z)
        for vq in self.levels:
            out = vq(r)
            codes.append(out.codes)
            loss = loss + out.loss
            total = total + out.codewords
            r = r - out.codewords.detach()
        quantized = z + (total - z).detach()
        codes_t = torch.stack(codes, 1) if codes else z.new_zeros((len(z), 0), dtype=torch.long)
        return RQOutput(quantized=quantized, codeword_sum=total, codes=codes_t, loss=loss, residual=r)

    @torch.no_grad()
    def reseed_dead_codes(self) -> list[int]:
        """Per level, how many unused codes were re-seeded from that level's last residuals."""
        return [vq.reseed_dead_codes() for vq in self.levels]

    @property
    def n_reseeded(self) -> list[int]:
        return [vq.n_reseeded for vq in self.levels]

    @torch.no_grad()
    def encode(self, z: torch.Tensor) -> torch.Tensor:
        """(B, D) -> (B, L) codes (greedy, level by level)."""
        r, codes = z, []
        for vq in self.levels:
            c = vq.encode(r)
            codes.append(c)
            r = r - vq.decode(c)
        return torch.stack(codes, 1)

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """(B, L) codes -> (B, D) sum of the chosen codewords."""
        cb = self.levels[0].codebook
        out = torch.zeros(codes.shape[0], self.dim, dtype=cb.dtype, device=cb.device)
        for level, vq in enumerate(self.levels):
            out = out + vq.decode(codes[:, level])
        return out
