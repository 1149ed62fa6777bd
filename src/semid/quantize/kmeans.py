"""k-means for product / residual quantization: torch Lloyd (CPU/GPU) with greedy k-means++ init, and faiss.

Which backend is the default and why: ``torch``. A default that depends on whether an optional package
is installed made the same config give different IDs on different machines (the README's install has no
faiss), so faiss is opt-in (``backend="faiss"``, or ``"auto"``: faiss when installed, the device is CPU
and there are at least K points, else torch); runs whose saved config says ``auto`` keep it. The torch
path is the one the parity tests check against the NumPy reference in ``kmeans_reference.py``; its fit
time is compared with faiss and scikit-learn by ``benchmarks/bench_fusid.py --compare-kmeans``.

Algorithm (torch backend):
1. Seeding: greedy k-means++ (the variant scikit-learn uses: ``init_trials`` candidates drawn per step
   with probability proportional to D(x)^2, the one that lowers the potential most is kept), each step
   one GEMM against the candidates. On all points by default: on clustered data (residual k-means)
   seeding on a sample of 32 K points left a 3.5% higher final MSE. Seeding costs about as much as
   ``init_trials`` Lloyd passes (it reads x once per centroid); ``init_sample`` bounds it for large N, and in
   the coarse phase below it runs on max(16 K, 16384) random points unless ``init_sample`` or ``init_all``
   (residual k-means' default: on 100k clustered residuals the sample cost 3.5% MSE) says otherwise.
   How many candidates (``seeding_plan``): seeding on all points draws 4x scikit-learn's 2 + ln K. Lloyd
   cannot leave the basin the seeds put it in (run to convergence it kept the same MSE), and with 4x the
   candidates residual k-means 3 x 256 ended 1.7% lower in MSE on clustered data (mean of 4 seeds, below
   scikit-learn's on each) and 1.0-1.6% lower on MiniLM title embeddings; one PQ sub-space (K=1024, 10k
   points) 0.8-0.9% lower. Each step's GEMM reads all of x, so 4x the candidates cost well under 4x the
   seeding time. Seeding on a sample (the coarse phase, or ``init_sample``) keeps 2 + ln K: there the point
   is speed, and 4x cost 10% of a 100k-point fit for 0.1% lower MSE.
2. Lloyd iterations on all points until ``n_iter`` or a relative objective drop below ``tol``. Large inputs
   (more than S = max(``fit_sample`` * K, ``fit_min``) points) take a coarse phase first: the ``n_iter``
   passes run on S random points, then at most ``refine_iter`` passes on all of them, so a fit costs about
   ``n_iter * S / N + refine_iter`` full passes plus a seeding on a sample. Why the
   threshold: on 100k x 128 with K=1024 this is as fast as faiss at its MSE, where seeding on all points
   costs about as much as the Lloyd passes themselves (1% lower MSE, 2.6x faiss's time); on clustered
   residual data seeding on a small sample lost 5% MSE, so catalogs under 32,768 items (every shared
   dataset) keep the full fit (``fit_sample=0`` restores it everywhere).
   Distances are one GEMM per row block, ``||c||^2 - 2 x.c`` (``addmm``), reduced by a fused min/argmin
   (``||x||^2`` is added to the minimum only), with the block sized so it stays in cache.
A cluster that empties is re-seeded at the point currently farthest from its centroid, which can only
lower the objective (so ``history_`` is non-increasing); with fewer distinct points than K, the extra
centroids duplicate points, stay empty or tied, and ties go to the lowest centroid index. All random
draws come from a NumPy generator seeded by ``seed``, so a config gives the same centroids whatever
else is installed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from semid.device import pick_device
from semid.threads import whole_matrix

_BLOCK_ELEMS = 1 << 21  # distance block of rows x K floats (8 MiB in float32): fastest measured on CPU


@dataclass(frozen=True)
class KMeansConfig:
    """k-means settings shared by every quantizer built on it."""

    n_iter: int = 25  # Lloyd iterations (both backends)
    tol: float = 1e-4  # stop early when the relative objective drop falls below this (torch backend)
    seed: int = 0  # seeds k-means++ (torch) / the random init (faiss)
    backend: str = "torch"  # torch | faiss | auto (faiss if installed; see the module docstring)
    device: str = "cpu"  # torch backend device: cpu | cuda | auto
    chunk_size: int = 0  # rows per distance block (memory O(chunk_size * K)); 0 = auto (2^21 / K rows)
    init_trials: int = 0  # k-means++ candidates per step, best kept; 0 = auto (seeding_plan), 1 = plain
    init_sample: int = 0  # k-means++ runs on at most init_sample * K random points; 0 = on all points
    # k-means++ on every point even when the coarse phase runs (with 2 x (2 + ln K) candidates unless
    # init_trials says otherwise): residual k-means' default, where a seeding sample cost 3.5% MSE
    init_all: bool = False
    fit_sample: int = 32  # coarse phase: Lloyd on max(fit_sample * K, fit_min) random points first; 0 = off
    fit_min: int = 32768  # the coarse sample's minimum size; inputs not larger than the sample get the full fit
    refine_iter: int = 6  # after the coarse phase: at most this many Lloyd passes on all points


def _faiss_available() -> bool:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


def _block_rows(chunk_size: int, k: int) -> int:
    return chunk_size if chunk_size > 0 else max(64, _BLOCK_ELEMS // max(k, 1))


def default_init_trials(k: int) -> int:
    """scikit-learn's greedy k-means++ candidates per step: 2 + floor(ln k) (1 for k = 1)."""
    return 2 + int(math.log(k)) if k > 1 else 1


FULL_SEED_TRIALS_FACTOR = 4  # seeding on all points: this many times default_init_trials (module docstring)
ALL_SEED_COARSE_TRIALS_FACTOR = 2  # init_all with the coarse phase: on N > fit_min points, 2x keeps it cheaper
COARSE_SEED_POINTS = 16384  # coarse phase: k-means++ on max(16 K, this many) points unless init_sample is set


def seeding_plan(n: int, k: int, config: KMeansConfig) -> tuple[int, int]:
    """(trials, sample) of the k-means++ seeding that ``KMeans(k, config=config).fit`` runs on n points.

    sample: ``init_sample * k`` if set; else 0 = all points with ``init_all``; else max(16 k,
    ``COARSE_SEED_POINTS``) when the coarse phase is on (``coarse_size`` > 0), else 0 = all points.
    trials: ``init_trials`` if set; else ``default_init_trials(k)`` when seeding on fewer than n points,
    ``FULL_SEED_TRIALS_FACTOR`` times it on all of them (``ALL_SEED_COARSE_TRIALS_FACTOR`` times with
    ``init_all`` and the coarse phase on: the 100k-point residual case measured at 2x beat scikit-learn's
    time and MSE).
    """
    coarse = coarse_size(n, k, config.fit_sample, config.fit_min) > 0
    if config.init_sample:
        sample = config.init_sample * k
    elif config.init_all:
        sample = 0
    elif coarse:
        sample = max(16 * k, COARSE_SEED_POINTS)
    else:
        sample = 0
    if config.init_trials:
        return config.init_trials, sample
    on_all = sample == 0 or sample >= n
    if not on_all or k == 1:
        return default_init_trials(k), sample
    factor = ALL_SEED_COARSE_TRIALS_FACTOR if coarse and config.init_all else FULL_SEED_TRIALS_FACTOR
    return default_init_trials(k) * factor, sample


def pairwise_sq_dists(x: torch.Tensor, c: torch.Tensor, c_sq: torch.Tensor | None = None) -> torch.Tensor:
    """(N, D), (K, D) -> squared distances (N, K), clamped at 0 against cancellation."""
    c_sq = (c * c).sum(1) if c_sq is None else c_sq
    return ((x * x).sum(1, keepdim=True) - 2.0 * (x @ c.T) + c_sq[None, :]).clamp_min_(0.0)


def assign(
    x: torch.Tensor, c: torch.Tensor, chunk_size: int = 0, *, x_sq: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest centroid per row, batched over rows: (labels int64 [N], squared distance [N]).

    ``x_sq`` [N] (optional) is ``(x * x).sum(1)``, passed by callers that assign the same x repeatedly.
    """
    n = len(x)
    labels = torch.empty(n, dtype=torch.long, device=x.device)
    best = torch.empty(n, dtype=x.dtype, device=x.device)
    if n == 0:
        return labels, best
    c_sq = (c * c).sum(1)
    ct = c.T.contiguous()  # (D, K)
    rows = _block_rows(chunk_size, len(c))
    for s in range(0, n, rows):
        # (B, K) = ||c||^2 - 2 x.c in one GEMM; argmin over K does not need ||x||^2.
        d = torch.addmm(c_sq, x[s : s + rows], ct, beta=1.0, alpha=-2.0)
        torch.min(d, dim=1, out=(best[s : s + rows], labels[s : s + rows]))  # first (lowest) index on ties
    best += (x * x).sum(1) if x_sq is None else x_sq
    return labels, best.clamp_min_(0.0)


def kmeans_plusplus(x: torch.Tensor, k: int, seed: int = 0, *, trials: int = 1, sample: int = 0) -> torch.Tensor:
    """k-means++ seeding x [N, D] -> centroids [k, D]; draws match ``kmeans_plusplus_reference``.

    ``trials`` > 1 is greedy k-means++: that many candidates per step, the one giving the lowest
    potential sum_x min(D(x)^2, ||x - cand||^2) is kept. ``sample`` > 0 seeds on that many points
    drawn without replacement (all points when N is not larger).
    """
    rng = np.random.default_rng(seed)
    n = len(x)
    if 0 < sample < n:
        x = x[torch.from_numpy(np.sort(rng.choice(n, size=sample, replace=False))).to(x.device)]
        n = sample
    x_sq = (x * x).sum(1)
    first = int(rng.integers(n))
    idx = [first]
    d2 = _dist_to(x, x_sq, x[first : first + 1])[:, 0]  # (n,) D(x)^2 to the nearest seed
    with whole_matrix() as rebalance:
        for _ in range(1, k):
            rebalance()  # one thread per free core (semid.threads)
            cum = torch.cumsum(d2, 0, dtype=torch.float64)  # float64: the draw resolves small masses
            total = float(cum[-1])
            if total <= 0:
                idx.append(int(rng.integers(n)))
                continue  # every point is a seed already: d2 stays 0
            u = torch.from_numpy(rng.random(trials) * total).to(d2.device)
            cand = torch.searchsorted(cum, u).clamp_max_(n - 1)  # (trials,)
            dc = _dist_to(x, x_sq, x[cand])  # (n, trials)
            if trials > 1:
                best = int(torch.argmin(torch.minimum(dc, d2[:, None]).sum(0)))  # first lowest potential
            else:
                best = 0
            idx.append(int(cand[best]))
            d2 = torch.minimum(d2, dc[:, best])
    return x[torch.tensor(idx, device=x.device)].clone()


def _dist_to(x: torch.Tensor, x_sq: torch.Tensor, cand: torch.Tensor) -> torch.Tensor:
    """x [n, D], x_sq [n], cand [t, D] -> squared distances [n, t] via one GEMM, clamped at 0."""
    d = torch.addmm((cand * cand).sum(1)[None, :], x, cand.T, beta=1.0, alpha=-2.0)
    return d.add_(x_sq[:, None]).clamp_min_(0.0)


def coarse_sample(n: int, k: int, fit_sample: int, seed: int, fit_min: int = 0) -> np.ndarray | None:
    """Sorted row indices of the coarse phase's sample (max(``fit_sample * k``, ``fit_min``) of ``n`` rows drawn
    without replacement from their own seeded stream), or None when the phase is off: ``fit_sample`` 0, or
    ``n`` not above the sample size."""
    size = coarse_size(n, k, fit_sample, fit_min)
    if not size:
        return None
    return np.sort(np.random.default_rng([seed, 1]).choice(n, size=size, replace=False))


def coarse_size(n: int, k: int, fit_sample: int, fit_min: int = 0) -> int:
    """Points in the coarse phase's sample of n: max(``fit_sample * k``, ``fit_min``), or 0 when the phase is
    off (``fit_sample`` 0, or n not above that size)."""
    size = max(fit_sample * k, fit_min)
    return size if fit_sample > 0 and n > size else 0


def lloyd(
    x: torch.Tensor, c: torch.Tensor, n_iter: int, tol: float, chunk_size: int = 0
) -> tuple[torch.Tensor, list[float], torch.Tensor]:
    """Lloyd passes from centroids c [k, D] over x [N, D]: (centroids, objective per pass + of the final
    assignment, final labels int64 [N]). Stops after ``n_iter`` passes or
    when a pass lowers the objective by at most ``tol`` of it."""
    k = len(c)
    x_sq = (x * x).sum(1)
    history: list[float] = []
    with whole_matrix() as rebalance:
        for _ in range(n_iter):
            rebalance()  # one thread per free core (semid.threads)
            labels, d2 = assign(x, c, chunk_size, x_sq=x_sq)
            history.append(float(d2.double().sum()))
            sums = torch.zeros_like(c).index_add_(0, labels, x)
            counts = torch.bincount(labels, minlength=k)
            nonempty = counts > 0
            new = c.clone()
            new[nonempty] = sums[nonempty] / counts[nonempty, None].to(x.dtype)
            empty = torch.nonzero(~nonempty).flatten()
            if len(empty):
                # Farthest points first; stable order so ties match the NumPy reference.
                far = torch.sort(-d2.double(), stable=True).indices[: len(empty)]
                empty = empty[: len(far)]
                ok = d2[far] > 0
                new[empty[ok]] = x[far[ok]]
            c = new
            if len(history) > 1 and history[-2] - history[-1] <= tol * max(history[-2], 1e-30):
                break
    labels, d2 = assign(x, c, chunk_size, x_sq=x_sq)
    history.append(float(d2.double().sum()))
    return c, history, labels


class KMeans:
    """``KMeans(k, config=...).fit(x)`` -> centroids_ [k, D], labels_ [N], inertia_, history_ (per iteration)."""

    def __init__(self, k: int, *, config: KMeansConfig = KMeansConfig()):
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        self.k = k
        self.config = config

    def backend_for(self, n_points: int) -> str:
        cfg = self.config
        if cfg.backend not in ("auto", "torch", "faiss"):
            raise ValueError(f"KMeansConfig.backend must be auto|torch|faiss, got {cfg.backend!r}")
        if cfg.backend != "auto":
            return cfg.backend
        on_cpu = pick_device(cfg.device).type == "cpu"
        return "faiss" if (on_cpu and n_points >= self.k and _faiss_available()) else "torch"

    def fit(self, x: np.ndarray | torch.Tensor, *, init: np.ndarray | None = None) -> KMeans:
        """x float [N, D]; ``init`` float [k, D] replaces k-means++ (used by the parity test)."""
        cfg = self.config
        if min(cfg.init_trials, cfg.init_sample, cfg.chunk_size, cfg.fit_sample, cfg.fit_min, cfg.refine_iter) < 0:
            raise ValueError(
                "KMeansConfig.init_trials, init_sample, chunk_size, fit_sample, fit_min and refine_iter must be "
                f">= 0 (0 = automatic / off), got {cfg.init_trials}, {cfg.init_sample}, {cfg.chunk_size}, "
                f"{cfg.fit_sample}, {cfg.fit_min}, {cfg.refine_iter}"
            )
        offset, n = self._layout(len(x))
        if n == 0:
            raise ValueError("KMeans.fit got 0 points")
        backend = self.backend_for(n)
        self.backend_ = backend
        if backend == "faiss":
            self._fit_faiss(np.asarray(x, dtype=np.float32), init)
        else:
            self._fit_torch(x, init, offset, n)
        return self

    # Hooks of a row-sharded fit (``kmeans_distributed.ShardedKMeans``); one process holds every row.
    def _layout(self, n_rows: int) -> tuple[int, int]:
        """(global index of x's first row, N) for x of ``n_rows`` rows."""
        return 0, n_rows

    def _seed(self, x: torch.Tensor, offset: int, n: int, trials: int, sample: int) -> torch.Tensor:
        """k-means++ centroids [k, D] over the N rows (x: rows [offset, offset + len(x)) of them)."""
        return kmeans_plusplus(x, self.k, self.config.seed, trials=trials, sample=sample)

    def _lloyd(self, x: torch.Tensor, c: torch.Tensor, n_iter: int, offset: int):
        """``lloyd`` from c over x (global rows from ``offset``): (centroids, history, labels of x's rows)."""
        return lloyd(x, c, n_iter, self.config.tol, self.config.chunk_size)

    # ------------------------------------------------------------------ torch Lloyd
    def _fit_torch(self, x, init, offset: int, n: int) -> None:
        cfg = self.config
        dev = pick_device(cfg.device)
        x = torch.as_tensor(np.asarray(x) if not torch.is_tensor(x) else x).to(dev)
        if not x.is_floating_point():
            x = x.float()
        x = x.contiguous()
        k = self.k
        sub = coarse_sample(n, k, cfg.fit_sample, cfg.seed, cfg.fit_min)
        if init is None:
            trials, sample = seeding_plan(n, k, cfg)
            c = self._seed(x, offset, n, trials, sample)
        else:
            c = torch.as_tensor(init, dtype=x.dtype, device=dev).clone()
        n_iter, self.coarse_history_ = cfg.n_iter, []
        if sub is not None:
            # Coarse phase: the centroids settle on a random sample (each pass costs sample / N of a full one),
            # then at most refine_iter full passes correct what the sample got wrong. x holds the sample's
            # rows in [lo, hi) (all of them in one process).
            lo, hi = np.searchsorted(sub, [offset, offset + len(x)])
            xs = x[torch.from_numpy(sub[lo:hi] - offset).to(dev)]
            c, self.coarse_history_, _ = self._lloyd(xs, c, cfg.n_iter, int(lo))
            n_iter = cfg.refine_iter
        c, history, labels = self._lloyd(x, c, n_iter, offset)
        self.centroids_ = c.cpu().numpy()
        self.labels_ = labels.cpu().numpy().astype(np.int64)
        self.inertia_ = history[-1]
        self.history_ = history

    # ------------------------------------------------------------------ faiss
    def _fit_faiss(self, x: np.ndarray, init) -> None:
        import faiss

        cfg = self.config
        km = faiss.Kmeans(x.shape[1], self.k, niter=cfg.n_iter, seed=cfg.seed, verbose=False)
        km.cp.min_points_per_centroid = 1  # FusID fits K=1024 on ~10k items: silence faiss's warning
        km.cp.max_points_per_centroid = 1 << 30  # use every point (no subsampling), like the torch path
        km.train(
            np.ascontiguousarray(x), init_centroids=None if init is None else np.asarray(init, np.float32)
        )
        d2, labels = km.index.search(np.ascontiguousarray(x), 1)
        self.centroids_ = np.asarray(km.centroids, dtype=np.float32)
        self.labels_ = labels[:, 0].astype(np.int64)
        self.inertia_ = float(d2.astype(np.float64).sum())
        self.history_ = [float(v) for v in km.obj] + [self.inertia_]

    # ------------------------------------------------------------------ use
    def predict(self, x: np.ndarray) -> np.ndarray:
        """Nearest centroid (lowest index on ties) for each row of x float [N, D] -> int64 [N]."""
        c = torch.as_tensor(self.centroids_)
        xt = torch.as_tensor(np.asarray(x, dtype=self.centroids_.dtype))
        return assign(xt, c, self.config.chunk_size)[0].numpy().astype(np.int64)
