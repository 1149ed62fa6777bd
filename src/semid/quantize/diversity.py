"""LETTER's diversity regulariser against code assignment bias (Wang et al. 2024, "LETTER", sec. 3.1).

RQ codebooks trained on reconstruction alone drift into a few popular codes per level; the generator then
over-produces those prefixes. LETTER clusters each level's codebook into G balanced groups and adds, per
level, a contrastive term on the codeword e_c assigned to each item (c its code, g(c) its group):

    L_div = -1/B sum_i log( exp(<e_ci, e_+> / tau) / sum_{j != c_i} exp(<e_ci, e_j> / tau) )

with e_+ a codeword drawn uniformly from the other members of g(c_i). Gradient reaches the codebook
through both sides, pulling same-group codewords together and pushing the rest apart, which spreads
assignments over groups. The total loss adds ``weight * sum_levels L_div`` (LETTER's Instruments script:
weight 1e-4, G = 10, tau = 1, groups recomputed every epoch).

LETTER balances group sizes with constrained k-means (the ``k-means-constrained`` package). We take our
own k-means centroids and a capacity-limited greedy assignment instead (every group holds at most
ceil(2N/G) codes), which needs no extra dependency. A code left alone in its group has no positive: items
holding it add no term (``sample_positives`` returns -1 for them), which the tests cover.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from semid.errors import ConfigError
from semid.quantize.kmeans import KMeans, KMeansConfig


def balanced_groups(
    codebook: torch.Tensor, n_groups: int, *, seed: int = 0, max_size: int | None = None
) -> torch.Tensor:
    """Codebook (N, D) -> group id per code, int64 (N,), every group at most ``max_size`` codes
    (default ceil(2N/G)). k-means centroids, then codes take their nearest group with room left, the
    globally closest (code, group) pairs first."""
    n = len(codebook)
    if not 2 <= n_groups <= n:
        raise ConfigError(
            f"diversity needs 2 <= groups <= codebook size; got {n_groups} groups for {n} codes"
        )
    cap = max_size if max_size is not None else math.ceil(2 * n / n_groups)
    if cap * n_groups < n:
        raise ConfigError(f"{n_groups} groups of at most {cap} codes cannot hold {n} codes")
    x = codebook.detach().float().cpu()
    cent = torch.from_numpy(
        KMeans(n_groups, config=KMeansConfig(seed=seed, backend="torch")).fit(x).centroids_
    )
    d = torch.cdist(x, cent).numpy()  # (N, G)
    order = np.argsort(d, axis=None, kind="stable")  # (code, group) pairs, closest first
    groups = np.full(n, -1, dtype=np.int64)
    room = np.full(n_groups, cap)
    left = n
    for flat in order:
        code, g = divmod(int(flat), n_groups)
        if groups[code] < 0 and room[g] > 0:
            groups[code] = g
            room[g] -= 1
            left -= 1
            if left == 0:
                break
    return torch.from_numpy(groups)


def sample_positives(codes: torch.Tensor, groups: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """codes (B,) -> (B,) a uniformly drawn other member of each code's group; -1 where the group has
    no other member. Vectorised: members sorted by group, draw u in [0, size-2] and skip the code itself."""
    order = torch.argsort(groups, stable=True)  # (N,) codes grouped
    sizes = torch.bincount(groups, minlength=int(groups.max()) + 1)  # (G,)
    starts = torch.cumsum(sizes, 0) - sizes  # (G,)
    rank = torch.empty_like(order)
    rank[order] = torch.arange(len(order))  # position of every code in ``order``
    g = groups[codes]  # (B,)
    size = sizes[g]
    own = rank[codes] - starts[g]  # (B,) the code's own slot within its group
    u = (torch.rand(len(codes), generator=generator) * (size - 1).clamp_min(1)).long()
    u = torch.minimum(u, (size - 2).clamp_min(0))
    u = u + (u >= own).long()  # skip the code itself
    pos = order[(starts[g] + u).clamp_max(len(order) - 1)]
    return torch.where(size >= 2, pos, torch.full_like(pos, -1))


def diversity_loss(
    codewords: torch.Tensor,
    codes: torch.Tensor,
    codebook: torch.Tensor,
    positives: torch.Tensor,
    *,
    tau: float = 1.0,
) -> torch.Tensor:
    """L_div for one level. codewords (B, D) = codebook[codes] with gradient to the codebook; codes (B,);
    codebook (N, D); positives (B,) from ``sample_positives`` (-1 = no term). Mean over rows with a
    positive; 0 (still attached to the graph) when there are none."""
    keep = positives >= 0
    if not bool(keep.any()):
        return codewords.sum() * 0.0
    logits = codewords[keep] @ codebook.t() / tau  # (B', N)
    own = F.one_hot(codes[keep], len(codebook)).bool()
    logits = logits.masked_fill(own, float("-inf"))  # the item's own code is neither positive nor negative
    return F.cross_entropy(logits, positives[keep])
