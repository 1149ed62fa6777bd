"""TIGER's RQ-VAE network (Rajput et al. 2023, sec. 3.1): an MLP encoder, a residual quantizer and a mirrored
MLP decoder. The tokenizer that trains it and turns its codes into item IDs is ``semid.tokenizers.rqvae``."""

from __future__ import annotations

import torch
from torch import nn

from semid.quantize.rq import ResidualQuantizer


def mlp(widths: list[int]) -> nn.Sequential:
    """Linear layers of the given widths with ReLU between (none after the last)."""
    layers: list[nn.Module] = []
    for i in range(len(widths) - 1):
        layers.append(nn.Linear(widths[i], widths[i + 1]))
        if i < len(widths) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class RQVAE(nn.Module):
    """x (B, D_in) -> z (B, d) -> RQ (n_levels x n_codes) -> ẑ (B, d) -> x̂ (B, D_in)."""

    def __init__(
        self,
        *,
        in_dim: int,
        hidden: tuple[int, ...] = (512, 256, 128),
        latent_dim: int = 32,
        n_levels: int = 3,
        n_codes: int = 256,
        mu: float = 0.25,
        seed: int = 0,
    ):
        super().__init__()
        self.encoder = mlp([in_dim, *hidden, latent_dim])
        self.rq = ResidualQuantizer(n_levels=n_levels, n_codes=n_codes, dim=latent_dim, mu=mu, seed=seed)
        self.decoder = mlp([latent_dim, *reversed(hidden), in_dim])

    @property
    def in_dim(self) -> int:
        return self.encoder[0].in_features

    def forward(self, x: torch.Tensor):
        """x (B, D_in) -> (x̂ (B, D_in), RQOutput of the latent)."""
        q = self.rq(self.encoder(x))
        return self.decoder(q.quantized), q

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, D_in) -> codes (B, n_levels) int64 (encoder, then greedy RQ level by level)."""
        return self.rq.encode(self.encoder(x))
