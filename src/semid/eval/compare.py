"""Honest comparisons: paired per-user differences between runs on one split, and mean ± CI over seeds.

Two runs evaluated on the same users give, per user u, metric values a_u and b_u; the paired difference
d_u = b_u - a_u removes the between-user variance that dominates an unpaired comparison. For the mean
difference we report two 95% intervals and two-sided p-values for "no difference":

  paired t-test   mean(d) ± t_{0.975, n-1} · sd(d) / sqrt(n); p from Student's t with n - 1 df
  paired bootstrap  resample users with replacement (fixed seed), percentile CI of mean(d*);
                  p = (1 + #{|mean(d*) - mean(d)| >= |mean(d)|}) / (B + 1), the null shifted to zero mean

The t distribution is computed here (regularised incomplete beta by Lentz's continued fraction), so semid
needs no SciPy; tests check it against SciPy where that is installed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from semid.errors import DataError, SemidError

DEFAULT_METRICS = ("HR@10", "NDCG@10", "MRR")


# ---------------------------------------------------------------------------------------------- Student t


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz; Numerical Recipes 6.4)."""
    tiny, eps = 1e-300, 1e-15
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 10_000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c if abs(1.0 + aa / c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c if abs(1.0 + aa / c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < eps:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta I_x(a, b) for a, b > 0, 0 <= x <= 1."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    lbeta = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
    front = math.exp(lbeta + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_sf2(t: float, df: float) -> float:
    """Two-sided tail P(|T| >= |t|) of Student's t with ``df`` degrees of freedom."""
    if math.isinf(t):
        return 0.0
    return betainc(df / 2.0, 0.5, df / (df + t * t))


def t_quantile(q: float, df: float) -> float:
    """The q-quantile (0.5 < q < 1) of Student's t with ``df`` degrees of freedom, by bisection on t_sf2."""
    if not 0.5 < q < 1.0:
        raise ValueError(f"t_quantile needs 0.5 < q < 1, got {q}")
    target = 2.0 * (1.0 - q)  # two-sided tail at the quantile
    lo, hi = 0.0, 1.0
    while t_sf2(hi, df) > target:
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if t_sf2(mid, df) > target:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12 * max(1.0, hi):
            break
    return 0.5 * (lo + hi)


# ---------------------------------------------------------------------------------------------- intervals


@dataclass(frozen=True)
class MeanCI:
    """Mean of ``n`` values with the half-width of its Student-t confidence interval (nan when n < 2)."""

    mean: float
    half_width: float
    n: int
    confidence: float = 0.95

    @property
    def low(self) -> float:
        return self.mean - self.half_width

    @property
    def high(self) -> float:
        return self.mean + self.half_width

    def __str__(self) -> str:
        if self.n < 2:
            return f"{self.mean:.4f} (n={self.n}, no interval)"
        return f"{self.mean:.4f} ± {self.half_width:.4f} (n={self.n})"


def mean_ci(values, confidence: float = 0.95) -> MeanCI:
    """Mean ± Student-t half-width over e.g. seeds: t_{(1+c)/2, n-1} · sd / sqrt(n), sd with n - 1."""
    x = np.asarray(values, dtype=np.float64).ravel()
    if len(x) == 0:
        raise DataError("mean_ci needs at least one value")
    if not np.isfinite(x).all():
        raise DataError(f"mean_ci got non-finite values {x.tolist()}")
    n = len(x)
    if n < 2:
        return MeanCI(float(x[0]), math.nan, 1, confidence)
    half = t_quantile((1 + confidence) / 2, n - 1) * float(x.std(ddof=1)) / math.sqrt(n)
    return MeanCI(float(x.mean()), half, n, confidence)


@dataclass(frozen=True)
class PairedDiff:
    """Mean of b - a over paired users, with a t-test and a bootstrap CI / p-value."""

    metric: str
    n: int
    mean_a: float
    mean_b: float
    diff: float  # mean(b - a)
    t_low: float
    t_high: float
    t_p: float
    boot_low: float
    boot_high: float
    boot_p: float


def paired_t(a, b, confidence: float = 0.95) -> tuple[float, float, float, float]:
    """(mean(b - a), CI low, CI high, two-sided p) of the paired t-test. Identical runs give (0, 0, 0, 1)."""
    d = np.asarray(b, np.float64) - np.asarray(a, np.float64)
    n = len(d)
    if n < 2:
        raise DataError(f"a paired t-test needs at least 2 users, got {n}")
    m, sd = float(d.mean()), float(d.std(ddof=1))
    if sd == 0.0:
        return m, m, m, (1.0 if m == 0.0 else 0.0)
    se = sd / math.sqrt(n)
    half = t_quantile((1 + confidence) / 2, n - 1) * se
    return m, m - half, m + half, t_sf2(m / se, n - 1)


def paired_bootstrap(
    a, b, *, n_boot: int = 10_000, seed: int = 0, confidence: float = 0.95, chunk: int = 250
) -> tuple[float, float, float, float]:
    """(mean(b - a), percentile CI low, high, p) from ``n_boot`` user resamples drawn by default_rng(seed)."""
    d = np.asarray(b, np.float64) - np.asarray(a, np.float64)
    n = len(d)
    if n < 2:
        raise DataError(f"a paired bootstrap needs at least 2 users, got {n}")
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot)
    for s in range(0, n_boot, chunk):  # (chunk, n) indices at a time bounds memory on large eval sets
        e = min(s + chunk, n_boot)
        means[s:e] = d[rng.integers(0, n, size=(e - s, n))].mean(axis=1)
    m = float(d.mean())
    alpha = 1.0 - confidence
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    extreme = int((np.abs(means - m) >= abs(m) - 1e-15).sum())
    return m, float(lo), float(hi), (1 + extreme) / (n_boot + 1)


def paired_diff(metric: str, a, b, *, n_boot: int = 10_000, seed: int = 0) -> PairedDiff:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise DataError(f"{metric}: paired arrays must be 1-D of one length, got {a.shape} and {b.shape}")
    m, tl, th, tp = paired_t(a, b)
    _, bl, bh, bp = paired_bootstrap(a, b, n_boot=n_boot, seed=seed)
    return PairedDiff(metric, len(a), float(a.mean()), float(b.mean()), m, tl, th, tp, bl, bh, bp)


# ---------------------------------------------------------------------------------------------- runs


@dataclass
class PerUser:
    """One run's per-user metrics on one split (``per_user_<split>.npz`` written by the evaluator)."""

    name: str
    path: Path
    user_ids: np.ndarray
    fingerprint: str
    metrics: dict[str, np.ndarray]


def load_per_user(run_dir: str | Path, split: str = "test") -> PerUser:
    run_dir = Path(run_dir).resolve()
    path = run_dir / f"per_user_{split}.npz"
    if not path.is_file():
        raise SemidError(
            f"{path}: missing; runs record per-user metrics since `semid compare` exists: re-run this config "
            f"(`semid run --config {run_dir / 'config.json'} --run-dir ...`)"
        )
    try:
        with np.load(path, allow_pickle=False) as z:
            metrics = {k.split(":", 1)[1]: z[k] for k in z.files if k.startswith("metric:")}
            user_ids, fp = z["user_ids"].astype(str), str(z["fingerprint"])
    except Exception as e:
        raise SemidError(f"{path}: not a per-user metrics file ({e})") from None
    name = run_dir.name
    return PerUser(name, path, user_ids, fp, metrics)


def compare_runs(
    runs: list[PerUser], metrics=DEFAULT_METRICS, *, n_boot: int = 10_000, seed: int = 0
) -> list[tuple[str, str, list[PairedDiff]]]:
    """Every run against the first: [(name_a, name_b, [PairedDiff per metric])]. Refuses runs whose users or
    queries differ, because per-user differences are only meaningful on identical queries."""
    if len(runs) < 2:
        raise SemidError("compare needs at least two runs")
    base = runs[0]
    out = []
    for r in runs[1:]:
        if len(r.user_ids) != len(base.user_ids) or not np.array_equal(r.user_ids, base.user_ids):
            raise SemidError(
                f"{r.path} and {base.path} were evaluated on different users ({len(r.user_ids)} vs "
                f"{len(base.user_ids)}); compare only runs of the same dataset and split settings"
            )
        if r.fingerprint != base.fingerprint:
            raise SemidError(
                f"{r.path} and {base.path} have the same users but different histories or targets (another "
                "split, data.max_history or filter); compare only runs on the same split"
            )
        diffs = []
        for m in metrics:
            if m not in base.metrics or m not in r.metrics:
                have = sorted(set(base.metrics) & set(r.metrics))
                raise SemidError(f"metric {m!r} is not in both {base.path} and {r.path}; available: {have}")
            diffs.append(paired_diff(m, base.metrics[m], r.metrics[m], n_boot=n_boot, seed=seed))
        out.append((base.name, r.name, diffs))
    return out


COLUMNS = ("metric", "A", "B", "B - A", "95% CI (t)", "p (t)", "95% CI (bootstrap)", "p (bootstrap)")


def format_rows(diffs: list[PairedDiff]) -> list[list[str]]:
    """Table rows (one per metric, in the order of ``COLUMNS``) for printing a comparison."""
    return [
        [d.metric, f"{d.mean_a:.4f}", f"{d.mean_b:.4f}", f"{d.diff:+.4f}", f"[{d.t_low:+.4f}, {d.t_high:+.4f}]",
         f"{d.t_p:.3g}", f"[{d.boot_low:+.4f}, {d.boot_high:+.4f}]", f"{d.boot_p:.3g}"]
        for d in diffs
    ]
