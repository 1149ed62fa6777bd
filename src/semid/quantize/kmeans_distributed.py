"""k-means fitted data-parallel over a torch.distributed process group: each rank holds a contiguous shard of
the rows, and every rank ends with the same centroids.

``ShardedKMeans(k, config=...).fit(x_part)`` is ``KMeans.fit`` (torch backend) spread over the ranks; rank r
passes rows [offset_r, offset_r + n_r) of the global (N, D) input, the ranks' slices consecutive in rank order
(``semid.train.distributed.shard_range``). Without an active process group it is ``KMeans.fit`` itself.

- Seeding: the points the 1-process seeding reads (all N rows, or the sample k-means++ draws first from its
  seeded generator) are gathered on rank 0 in row order; rank 0 runs ``kmeans_plusplus`` on them, continuing
  that same generator, so it picks the same rows as one process; the seeds are broadcast. This is the serial
  part of a fit: without a seeding sample (inputs under the coarse phase's threshold) rank 0 reads all rows
  once per centroid (``kmeans.seeding_plan``) while the others wait.
- Lloyd: each rank assigns its rows; the per-cluster sums are accumulated in global row order along the ranks
  (``ordered_sums``), counts and the objective all-reduced, so every rank computes the same centroids and
  makes the same stopping decision. An empty cluster takes the globally farthest point (ties: lowest row), as
  in ``kmeans.lloyd``.
- Coarse phase: the sample rows ``coarse_sample`` picks are the same on every rank; each rank runs the coarse
  Lloyd passes on the sampled rows it holds.

Against one process on CPU: bitwise the same seeds, sums, centroids and labels, as long as each row's distances
do not depend on which rows share its GEMM. That holds for MKL except for a GEMM of a single row (a rank's
slice or a last distance block of one row), whose distances may differ in the last bit; a label then changes
only on an exact tie. The objective is the sum of the ranks' float64 sums, within about 1e-16 relative of
one process's; only a relative drop within that of ``tol`` could stop at another pass. Why not all-reduce
float64 sums instead: that is a different rounding of the centroids, and on residual levels that do not
converge within ``n_iter`` the difference grows (measured: 10 of 40,000 codes changed at the second level).
On CUDA ``index_add_`` adds in no fixed order, so neither one process nor the ranks are bitwise reproducible.
"""

from __future__ import annotations

import numpy as np
import torch

from semid.device import pick_device
from semid.errors import ConfigError
from semid.quantize.kmeans import KMeans, assign, kmeans_plusplus
from semid.train import distributed


def shard_layout(n_local: int) -> tuple[int, int]:
    """(this rank's first global row, N): the ranks' row counts summed in rank order (one all-reduce)."""
    r = distributed.rank() if distributed.active() else 0
    sizes = np.zeros(distributed.world_size())
    sizes[r] = n_local
    sizes = distributed.all_reduce_sum(sizes).astype(np.int64)
    return int(sizes[:r].sum()), int(sizes.sum())


def _gather_on_main(part: np.ndarray) -> np.ndarray | None:
    """Rows of every rank concatenated in rank order, on rank 0 (None elsewhere)."""
    if not distributed.active():
        return part
    parts: list | None = [None] * distributed.world_size() if distributed.is_main() else None
    torch.distributed.gather_object(part, parts, dst=0)
    return np.concatenate(parts, axis=0) if parts is not None else None


def seed_sharded(x: torch.Tensor, offset: int, n: int, k: int, seed: int, *, trials: int, sample: int) -> torch.Tensor:
    """``kmeans_plusplus(x_global, k, seed, trials=trials, sample=sample)`` for a row-sharded x [n_r, D]
    starting at global row ``offset`` of N = ``n``: the same centroids [k, D] on every rank."""
    rng = np.random.default_rng(seed)
    mine = np.arange(len(x))
    if 0 < sample < n:
        # the draw kmeans_plusplus makes first; it then continues with the same generator (passed below)
        rows = np.sort(rng.choice(n, size=sample, replace=False))
        mine = rows[(rows >= offset) & (rows < offset + len(x))] - offset
    own = x[torch.from_numpy(mine).to(x.device)].cpu().numpy()
    points = _gather_on_main(own)  # (sample or N, D) in global row order, on rank 0

    def seeds():
        # np.random.default_rng(rng) returns rng itself: the same stream as one process's seeding
        return kmeans_plusplus(torch.from_numpy(points).to(x.device), k, rng, trials=trials).cpu().numpy()

    return torch.from_numpy(distributed.main_only(seeds)).to(x.device)


def _reseed_empty(new: torch.Tensor, empty: torch.Tensor, x: torch.Tensor, d2: torch.Tensor, offset: int) -> None:
    """Empty clusters ``empty`` [m] take the m globally farthest rows (ties: lowest global row) with d2 > 0,
    in place; each rank offers its own m farthest rows, so one small all-gather decides."""
    m = len(empty)
    far = torch.sort(-d2.double(), stable=True).indices[:m]  # local candidates, farthest first
    mine = (d2[far].double().cpu().numpy(), far.cpu().numpy() + offset, x[far].cpu().numpy())
    parts: list = [mine] if not distributed.active() else [None] * distributed.world_size()
    if distributed.active():
        torch.distributed.all_gather_object(parts, mine)
    vals = np.concatenate([p[0] for p in parts])
    rows = np.concatenate([p[1] for p in parts])
    pts = np.concatenate([p[2] for p in parts])
    pick = np.lexsort((rows, -vals))[:m]  # by distance descending, then row ascending
    empty = empty[: len(pick)]
    ok = torch.from_numpy(vals[pick] > 0).to(new.device)
    new[empty[ok]] = torch.from_numpy(pts[pick]).to(new)[ok]


def ordered_sums(x: torch.Tensor, labels: torch.Tensor, k: int) -> torch.Tensor:
    """Per-cluster sums [k, D] of every rank's rows x [n_r, D], in x's dtype, the same on every rank.

    ``index_add_`` on CPU adds the rows to each cluster's sum one after another in row order, so rank r
    continuing the running sums of ranks 0..r-1 (passed along in rank order, then broadcast from the last)
    does exactly the additions of one ``index_add_`` over all rows: bitwise one process's sums. The chain
    makes this O(N D) step serial over the ranks; the O(N K D) assignment before it stays parallel.
    """
    sums = torch.zeros((k, x.shape[1]), dtype=x.dtype, device=x.device)
    if not distributed.active():
        return sums.index_add_(0, labels, x)
    r, w = distributed.rank(), distributed.world_size()
    if r > 0:
        torch.distributed.recv(sums, src=r - 1)
    sums.index_add_(0, labels, x)
    if r < w - 1:
        torch.distributed.send(sums, dst=r + 1)
    torch.distributed.broadcast(sums, src=w - 1)
    return sums


def lloyd_sharded(
    x: torch.Tensor, c: torch.Tensor, n_iter: int, tol: float, chunk_size: int = 0, *, offset: int = 0
) -> tuple[torch.Tensor, list[float], torch.Tensor]:
    """``kmeans.lloyd`` over the ranks: x [n_r, D] is this rank's rows (global rows from ``offset``), c [k, D] the
    same start on every rank. Returns (centroids, global objective per pass + of the final assignment, this
    rank's final labels int64 [n_r]); every rank gets the same centroids and history."""
    k = len(c)
    x_sq = (x * x).sum(1)
    history: list[float] = []
    for _ in range(n_iter):
        labels, d2 = assign(x, c, chunk_size, x_sq=x_sq)
        sums = ordered_sums(x, labels, k)
        # counts (exact in float64) and the objective in one all-reduce: (k + 1,)
        local = torch.cat([torch.bincount(labels, minlength=k).double(), d2.double().sum().reshape(1)])
        total = torch.from_numpy(distributed.all_reduce_sum(local.cpu().numpy())).to(x.device)
        counts = total[:k].round().long()
        history.append(float(total[-1]))
        nonempty = counts > 0
        new = c.clone()
        new[nonempty] = sums[nonempty] / counts[nonempty, None].to(x.dtype)
        empty = torch.nonzero(~nonempty).flatten()
        if len(empty):
            _reseed_empty(new, empty, x, d2, offset)
        c = new
        if len(history) > 1 and history[-2] - history[-1] <= tol * max(history[-2], 1e-30):
            break
    labels, d2 = assign(x, c, chunk_size, x_sq=x_sq)
    history.append(float(distributed.all_reduce_sum(np.asarray([float(d2.double().sum())]))[0]))
    return c, history, labels


class ShardedKMeans(KMeans):
    """``ShardedKMeans(k, config=...).fit(x_part)``: ``KMeans`` fitted data-parallel on this rank's rows
    (``KMeans.fit``'s flow, with the layout, seeding and Lloyd hooks spread over the ranks).

    Fitted state as ``KMeans``: ``centroids_`` [k, D] (the same on every rank), ``history_``,
    ``coarse_history_`` and ``inertia_`` of the global input; ``labels_`` [n_r] of this rank's rows only.
    """

    def _layout(self, n_rows: int) -> tuple[int, int]:
        if not distributed.active():
            return 0, n_rows
        dev = pick_device(self.config.device)
        if torch.distributed.get_backend() == "nccl" and dev.type != "cuda":  # before any collective
            raise ConfigError(
                f"k-means on device {dev} does not fit data-parallel under nccl, which carries CUDA tensors only; "
                "use device='cuda', or fit on every rank alone (inside semid.train.distributed.local())"
            )
        return shard_layout(n_rows)

    def _fit_faiss(self, x: np.ndarray, init) -> None:
        if distributed.active():
            raise ConfigError(
                f"k-means backend={self.config.backend!r} resolves to faiss, which does not fit data-parallel; "
                "use backend='torch', or fit on every rank alone (inside semid.train.distributed.local())"
            )
        super()._fit_faiss(x, init)

    def _seed(self, x: torch.Tensor, offset: int, n: int, trials: int, sample: int) -> torch.Tensor:
        if not distributed.active():
            return super()._seed(x, offset, n, trials, sample)
        return seed_sharded(x, offset, n, self.k, self.config.seed, trials=trials, sample=sample)

    def _lloyd(self, x: torch.Tensor, c: torch.Tensor, n_iter: int, offset: int):
        if not distributed.active():
            return super()._lloyd(x, c, n_iter, offset)
        return lloyd_sharded(x, c, n_iter, self.config.tol, self.config.chunk_size, offset=offset)


__all__ = ["ShardedKMeans", "lloyd_sharded", "ordered_sums", "seed_sharded", "shard_layout"]
