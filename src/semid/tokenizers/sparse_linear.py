"""First fusion layer with mostly-zero input columns (multi-hot tags, genres) computed from their non-zeros.

FusID concatenates every modality before one Linear. On MovieLens the tag multi-hot block is 1,472 of the
1,943 input columns yet ~16% of items carry any tag, so a dense ``x @ W.T`` spends ~3/4 of the first layer's
multiply-adds, forward and weight-gradient, on zeros. ``block_sparse_linear`` splits the columns: dense
columns go through one GEMM; sparse columns go through a sparse (COO) x dense product over only the weight
columns that some non-zero uses (cost ~nnz x hidden), forward and weight gradient. ``F.linear`` is the plain
reference; tests check parity of the outputs and of all gradients, and ``benchmarks/bench_sparse_fc1.py``
measures the speed.
"""

from __future__ import annotations

import torch


class _BlockSparseLinear(torch.autograd.Function):
    """y = x @ W.T + b with x's ``sparse_cols`` read as (row, col, value) triplets."""

    @staticmethod
    def forward(ctx, x, weight, bias, dense_cols, sparse_cols):
        # Computed in the weight's dtype with autocast off (backward gets no autocast, and the sparse product
        # has no bf16 kernel on CPU), so bf16 autocast runs see float32 here and cast the output downstream.
        with torch.autocast(device_type=x.device.type, enabled=False):
            return _BlockSparseLinear._forward(ctx, x.to(weight.dtype), weight, bias, dense_cols, sparse_cols)

    @staticmethod
    def _forward(ctx, x, weight, bias, dense_cols, sparse_cols):
        # x (B, D), weight (H, D), bias (H,), dense_cols (Dd,), sparse_cols (Ds,) long; Dd + Ds = D
        xd = x.index_select(1, dense_cols)  # (B, Dd)
        wd = weight.index_select(1, dense_cols)  # (H, Dd)
        y = torch.addmm(bias, xd, wd.t())  # (B, H)
        xs = x.index_select(1, sparse_cols)  # (B, Ds), mostly zeros
        rows, cols = xs.nonzero(as_tuple=True)  # (nnz,) each, row-major order
        vals = xs[rows, cols]  # (nnz,)
        # only the weight columns some non-zero uses: (u,) columns of W, and each non-zero's slot among them
        used, slot = torch.unique(sparse_cols[cols], return_inverse=True)
        S = _sparse(rows, slot, vals, (x.shape[0], len(used)))  # (B, u) sparse
        if len(rows):
            y += S @ weight.index_select(1, used).t()  # (B, u) @ (u, H) -> (B, H)
        ctx.save_for_backward(xd, wd, rows, slot, vals, used, weight, dense_cols, sparse_cols)
        ctx.x_shape = x.shape
        return y

    @staticmethod
    def backward(ctx, g):
        # g (B, H)
        xd, wd, rows, slot, vals, used, weight, dense_cols, sparse_cols = ctx.saved_tensors
        g = g.to(weight.dtype)
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            gx = g.new_zeros(ctx.x_shape)
            gx.index_copy_(1, dense_cols, g @ wd)
            gx.index_copy_(1, sparse_cols, g @ weight.index_select(1, sparse_cols))
        if ctx.needs_input_grad[1]:
            gw = g.new_zeros(weight.shape)  # (H, D); sparse columns without non-zeros keep 0
            gw.index_copy_(1, dense_cols, g.t() @ xd)
            if len(rows):
                St = _sparse(slot, rows, vals, (len(used), g.shape[0]))  # (u, B) sparse
                gw.index_copy_(1, used, (St @ g).t())  # (u, B) @ (B, H) -> (u, H), columns of gW
        if ctx.needs_input_grad[2]:
            gb = g.sum(0)
        return gx, gw, gb, None, None


def _sparse(rows: torch.Tensor, cols: torch.Tensor, vals: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """Sparse (COO, coalesced) matrix from (row, col, value) triplets (duplicates summed)."""
    coo = torch.sparse_coo_tensor(torch.stack([rows, cols]), vals, shape, check_invariants=False)
    return coo.coalesce()


def block_sparse_linear(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    sparse_cols: torch.Tensor,
    dense_cols: torch.Tensor | None = None,
) -> torch.Tensor:
    """``F.linear(x, weight, bias)`` computed with the columns ``sparse_cols`` (long, sorted) of x treated
    as sparse. x (B, D) float, weight (H, D), bias (H,) -> (B, H). ``dense_cols`` (the complement) may be
    passed precomputed (FusionNet keeps it as a buffer) to spare a mask + nonzero per call."""
    if dense_cols is None:
        dense_cols = complement_columns(x.shape[1], sparse_cols)
    return _BlockSparseLinear.apply(x, weight, bias, dense_cols, sparse_cols)


def complement_columns(n_cols: int, cols: torch.Tensor) -> torch.Tensor:
    """Sorted column indices in range(n_cols) not in ``cols`` (long)."""
    mask = torch.ones(n_cols, dtype=torch.bool, device=cols.device)
    mask[cols] = False
    return mask.nonzero(as_tuple=True)[0]


def block_columns(in_dims: list[int], blocks: tuple[int, ...]) -> torch.Tensor:
    """Column indices (long, sorted) of the modality blocks ``blocks`` in a concatenation of ``in_dims``."""
    offsets = [0]
    for d in in_dims:
        offsets.append(offsets[-1] + d)
    cols = [torch.arange(offsets[m], offsets[m + 1]) for m in sorted(blocks)]
    return torch.cat(cols) if cols else torch.zeros(0, dtype=torch.long)


def input_density(x, in_dims: list[int]) -> list[float]:
    """Share of non-zero entries of each modality block of a numpy/torch matrix x (N, sum in_dims)."""
    out, s = [], 0
    for d in in_dims:
        block = x[:, s : s + d]
        out.append(float((block != 0).sum()) / max(1, block.shape[0] * block.shape[1]))
        s += d
    return out
