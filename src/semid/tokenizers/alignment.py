"""Collaborative-semantic alignment (MusicRec eq. 10-12; LETTER's collaborative regulariser).

``info_nce``: in-batch InfoNCE between L2-normalised quantised item vectors ẑ and CF embeddings z_cf
(eq. 10). ``relation_loss``: mean squared difference of the two batch cosine-similarity matrices
(eq. 11). ``CollaborativeAlignment`` wraps both with a linear head that maps ẑ to z_cf's width when
the two differ (MusicRec: ẑ = [ẑ_t; ẑ_i] in R^{2d} = 64 vs 32-d SASRec z_cf) and returns
``alpha * L_align + beta * L_relation`` (the non-semantic part of eq. 12). In data-parallel training
(``semid.tokenizers.training.BatchPart``) each rank computes its rows of both terms against the whole
global batch, so the negatives and the relation matrix are the ones a single process sees.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:
    from semid.tokenizers.training import BatchPart


def info_nce(zq: torch.Tensor, zcf: torch.Tensor, *, tau: float = 0.07, offset: int = 0) -> torch.Tensor:
    """Eq. 10. zq: (R, D) rows ``offset .. offset+R`` of the batch, zcf: (B, D) the whole batch (R = B,
    offset 0 in one process). Row i's positive is zcf[offset + i]; the other rows of zcf are its negatives.

    -1/R sum_i log( exp(cos(zq_i, zcf_{offset+i})/tau) / sum_j exp(cos(zq_i, zcf_j)/tau) ).
    """
    logits = F.normalize(zq, dim=-1) @ F.normalize(zcf, dim=-1).t() / tau  # (R, B)
    return F.cross_entropy(logits, torch.arange(offset, offset + len(zq), device=zq.device))


def relation_loss(zq: torch.Tensor, zcf: torch.Tensor, *, rows: slice | None = None) -> torch.Tensor:
    """Eq. 11. 1/B^2 sum_ij (cos(zq_i, zq_j) - cos(zcf_i, zcf_j))^2; zq, zcf: (B, D).

    ``rows``: only those rows i of the two (B, B) matrices, averaged over R x B entries (a rank's part).
    """
    a = F.normalize(zq, dim=-1)
    b = F.normalize(zcf, dim=-1)
    if rows is None:
        return (a @ a.t() - b @ b.t()).pow(2).mean()
    return (a[rows] @ a.t() - b[rows] @ b.t()).pow(2).mean()  # (R, B)


class CollaborativeAlignment(nn.Module):
    """alpha * InfoNCE(head(ẑ), z_cf) + beta * relation(head(ẑ), z_cf).

    head: identity when ẑ already has z_cf's width (TIGER/LETTER: 32 = 32), else one bias-free linear map
    (our choice; the paper does not say how 2d-dim ẑ meets d_cf-dim z_cf). The relation loss is computed
    on the same projected vectors so both terms see one space.
    """

    def __init__(
        self, *, in_dim: int, cf_dim: int, alpha: float = 1e-2, beta: float = 1e-4, tau: float = 0.07
    ):
        super().__init__()
        self.alpha, self.beta, self.tau = alpha, beta, tau
        self.head: nn.Module = nn.Identity() if in_dim == cf_dim else nn.Linear(in_dim, cf_dim, bias=False)

    @property
    def active(self) -> bool:
        return self.alpha > 0 or self.beta > 0

    def forward(self, zq: torch.Tensor, zcf: torch.Tensor, part: BatchPart | None = None) -> dict[str, torch.Tensor]:
        """zq: (B, in_dim) quantised vectors (gradient to codebooks/encoder); zcf: (B, cf_dim), fixed.

        ``part`` (data-parallel): zq holds this rank's rows ``part.rows`` only, zcf the whole global batch;
        both terms come back as this rank's share of the global batch's terms (``BatchPart``).
        """
        p = self.head(zq)
        if part is None:
            align = info_nce(p, zcf, tau=self.tau) if self.alpha > 0 else zq.new_zeros(())
            rel = relation_loss(p, zcf) if self.beta > 0 else zq.new_zeros(())
        else:
            align = info_nce(p, zcf, tau=self.tau, offset=part.lo) * part.share if self.alpha > 0 else zq.new_zeros(())
            # every rank's projected rows (differentiable gather): row i's similarities to the whole batch
            rel = relation_loss(part.gather(p), zcf, rows=part.rows) * part.share if self.beta > 0 else zq.new_zeros(())
        return {"align": align, "relation": rel, "loss": self.alpha * align + self.beta * rel}
