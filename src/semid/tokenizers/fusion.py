"""FusID fusion network (paper, "Architecture Onboarding"): concatenated modalities -> n sub-embeddings.

Input scheme (our cold-start extension, paper Open Question 1): each modality embedding is
L2-normalised (so no modality dominates by scale), missing modalities are zeros, and a presence
flag per modality is appended, so the network can tell "missing" from "near zero". During training,
modality dropout zeroes whole modalities per item with probability p (default 0.1) and clears their
flags — never all of an item's present modalities — so items that lack a modality at inference
(cold items without co-occurrence, items without tags) still map into the same space.

Network: Linear(D, hidden=2048) -> BatchNorm1d -> ReLU -> Linear(hidden, n*d) -> LayerNorm(n*d),
reshaped to (B, n, d) with n=5, d=128 as in the paper. The first Linear reads mostly-zero modality blocks
(multi-hot tags/genres; ``sparse_blocks``) from their non-zeros only (``sparse_linear.py``): same function,
same weights, fewer multiply-adds.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from semid.tokenizers.sparse_linear import block_columns, block_sparse_linear, complement_columns


@dataclass(frozen=True)
class FusionConfig:
    """Fusion-network shape and modality handling."""

    d_sub: int = 128  # d, size of each sub-embedding
    hidden: int = 2048  # hidden width of the two-layer MLP
    modality_dropout: float = 0.1  # training-time probability of zeroing a whole modality per item
    presence_flags: bool = True  # append one 0/1 presence flag per modality to the input
    # modalities whose fitted inputs have fewer non-zeros than this share take the sparse first-layer path
    # (same result up to float summation order); 0 = every block dense (plain F.linear, the reference)
    sparse_below: float = 0.05


class FusionNet(nn.Module):
    """``FusionNet(in_dims=[384, 64], n_sub=5, config=...)(feats, present) -> (B, n, d)``.

    n_sub (n) lives in ``PQConfig`` because it is the ID length; the net emits one block per position.
    """

    def __init__(
        self,
        *,
        in_dims: list[int],
        n_sub: int = 5,
        config: FusionConfig = FusionConfig(),
        sparse_blocks: tuple[int, ...] = (),
    ):
        super().__init__()
        self.in_dims = list(in_dims)
        bad = [m for m in sparse_blocks if not 0 <= m < len(self.in_dims)]
        if bad:
            raise ValueError(f"sparse_blocks {bad} out of range for {len(self.in_dims)} modalities")
        self.sparse_blocks = tuple(sorted(set(sparse_blocks)))
        self.n_sub = n_sub
        self.config = config
        d_in = sum(self.in_dims) + (len(self.in_dims) if config.presence_flags else 0)
        # (Ds,) input columns read sparsely and (D - Ds,) the rest, fixed per net; buffers so .to(device)
        # moves them, not saved in the state dict
        sparse_cols = block_columns(self.in_dims, self.sparse_blocks)
        self.register_buffer("sparse_cols", sparse_cols, persistent=False)
        self.register_buffer("dense_cols", complement_columns(d_in, sparse_cols), persistent=False)
        out = n_sub * config.d_sub
        self.fc1 = nn.Linear(d_in, config.hidden)
        self.bn = nn.BatchNorm1d(config.hidden)
        self.fc2 = nn.Linear(config.hidden, out)
        self.norm = nn.LayerNorm(out)

    def fuse_inputs(self, x: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """x (B, sum D_m) raw concatenated modalities, present (B, M) bool -> network input (B, D)."""
        parts = torch.split(x, self.in_dims, dim=1)
        present = present.clone()
        p = self.config.modality_dropout
        if self.training and p > 0 and len(parts) > 1:
            drop = (torch.rand(present.shape, device=x.device) < p) & present
            # Keep at least one present modality per item: undo the drop where it removed all of them.
            all_gone = (present & ~drop).sum(1) == 0
            drop[all_gone] = False
            present &= ~drop
        pm = present.to(x.dtype)
        cols = [F.normalize(part, dim=1) * pm[:, m : m + 1] for m, part in enumerate(parts)]
        if self.config.presence_flags:
            cols.append(pm)
        return torch.cat(cols, dim=1)

    def forward(self, x: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """(B, sum D_m), (B, M) -> fused sub-embeddings (B, n, d)."""
        inp = self.fuse_inputs(x, present)  # (B, D)
        if len(self.sparse_cols):
            h = block_sparse_linear(inp, self.fc1.weight, self.fc1.bias, self.sparse_cols, self.dense_cols)
        else:
            h = self.fc1(inp)
        h = F.relu(self.bn(h))
        z = self.norm(self.fc2(h))  # (B, n*d)
        return z.view(len(z), self.n_sub, self.config.d_sub)
