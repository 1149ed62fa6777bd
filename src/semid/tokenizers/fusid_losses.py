"""FusID training losses (paper "Method Summary", mechanisms 1-2): MSE contrastive + VICReg regularisers.

total = L_cont + alpha * (L_cov + L_var), alpha = 0.2 (paper).

* L_cont (MSE formulation): for item pairs (a, b) with target t, mean((cos(z_a, z_b) - t)^2), t = 1
  for frequently co-occurring pairs and t = ``neg_target`` (default 0: orthogonal, as "rarely
  co-occurring" should carry no similarity; a negative value would push them anti-aligned) for
  sampled negatives. Cosine is taken on the whole fused vector (n*d).
* L_cov: block-wise cross-covariance of the n sub-embeddings on batch-centred features; for every
  ordered pair of blocks i != j, ||C_ij||_F^2 / d, averaged over the n(n-1) pairs (VICReg's
  off-diagonal term restricted to between-block entries, so the n positions carry different
  information; averaging keeps its scale independent of n).
* L_var: VICReg variance hinge, mean over all n*d dims of relu(1 - sqrt(var + eps)).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class FusIDLossConfig:
    """Loss weights and switches (ablations: alpha=0 -> no regularisation; contrastive=False)."""

    alpha: float = 0.2  # weight of L_cov + L_var
    contrastive: bool = True  # include L_cont (False = the "no contrastive" ablation)
    neg_target: float = 0.0  # cosine target for negative pairs
    var_eps: float = 1e-4  # eps inside sqrt(var + eps)


def contrastive_mse(za: torch.Tensor, zb: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """za, zb (P, n, d) or (P, D); target (P,) -> mean (cos - target)^2."""
    cos = F.cosine_similarity(za.flatten(1), zb.flatten(1), dim=1)
    return ((cos - target) ** 2).mean()


def cov_loss(z: torch.Tensor) -> torch.Tensor:
    """z (B, n, d) -> mean over block pairs i != j of ||Cov(z_i, z_j)||_F^2 / d."""
    b, n, d = z.shape
    if n < 2 or b < 2:
        return z.new_zeros(())
    zc = (z - z.mean(0, keepdim=True)).flatten(1)  # (B, n*d)
    cov = (zc.T @ zc) / (b - 1)  # (n*d, n*d)
    blocks = cov.view(n, d, n, d).pow(2).sum(dim=(1, 3))  # (n, n) squared Frobenius norm per block
    off = blocks.sum() - blocks.diagonal().sum()
    return off / d / (n * (n - 1))


def var_loss(z: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    """z (B, ...) -> mean over dims of relu(1 - sqrt(Var_batch + eps))."""
    flat = z.flatten(1)
    if len(flat) < 2:
        return z.new_zeros(())
    std = torch.sqrt(flat.var(dim=0) + eps)
    return F.relu(1.0 - std).mean()


def fusid_loss(
    z: torch.Tensor,
    pairs: torch.Tensor | None,
    target: torch.Tensor | None,
    config: FusIDLossConfig = FusIDLossConfig(),
) -> tuple[torch.Tensor, dict[str, float]]:
    """z (B, n, d) embeddings of the batch's unique items; pairs (P, 2) long indices into z; target (P,).

    Returns (total loss, {"cont", "cov", "var", "total"} floats for the log).
    """
    zero = z.new_zeros(())
    cont = zero
    if config.contrastive and pairs is not None and len(pairs):
        # index_select, not z[idx]: advanced indexing's backward (index_put_ with accumulate) adds in a
        # thread-dependent order on CPU, so with >1 intra-op thread two runs of one seed differed; both are
        # bit-identical at one thread.
        cont = contrastive_mse(z.index_select(0, pairs[:, 0]), z.index_select(0, pairs[:, 1]), target)
    cov = cov_loss(z) if config.alpha > 0 else zero
    var = var_loss(z, config.var_eps) if config.alpha > 0 else zero
    total = cont + config.alpha * (cov + var)
    if not config.contrastive and config.alpha == 0:
        total = total + 0.0 * z.sum()  # keeps the graph alive for the trainer
    logs = {
        "cont": float(cont.detach()),
        "cov": float(cov.detach()),
        "var": float(var.detach()),
        "total": float(total.detach()),
    }
    return total, logs
