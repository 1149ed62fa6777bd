"""Plots of a run directory: training curves and semantic-ID code usage (``semid plot <run_dir>``).

<run_dir>/plots/training.png   train loss and validation metric per epoch (model/train_log.jsonl)
<run_dir>/plots/ids.png        per-position code-usage histograms, sorted, with utilisation and entropy
                               (tokenizer/ids/codes_raw.npy or codes.npy + report.json)

matplotlib is an optional extra (``pip install semid[plot]``); it runs headless (Agg backend).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from semid.errors import ConfigError, DataError
from semid.io import atomic_write, read_json


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ConfigError("plots need matplotlib: pip install 'semid[plot]'") from None
    return plt


def read_train_log(path: Path) -> list[dict]:
    """One dict per epoch from a Trainer's train_log.jsonl; a malformed line names the file and line."""
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as e:
            raise DataError(f"{path}:{n}: not a JSON line ({e})") from None
    return rows


def plot_training(log: list[dict], out: Path, metric: str = "NDCG@10") -> Path:
    """train_loss and valid[metric] against epoch -> PNG at ``out``."""
    if not log:
        raise DataError("the training log is empty: nothing to plot")
    plt = _pyplot()
    ep = [r["epoch"] for r in log]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(ep, [r["train_loss"] for r in log], "o-", color="tab:blue", label="train loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("train loss", color="tab:blue")
    valid = [(r["epoch"], r["valid"][metric]) for r in log if metric in (r.get("valid") or {})]
    if valid:
        ax2 = ax.twinx()
        ax2.plot(*zip(*valid, strict=True), "s--", color="tab:red", label=f"valid {metric}")
        ax2.set_ylabel(f"valid {metric}", color="tab:red")
    ax.set_title("training")
    fig.tight_layout()
    atomic_write(out, lambda p: fig.savefig(p, format="png", dpi=110))
    plt.close(fig)
    return out


def plot_code_usage(codes: np.ndarray, sizes: list[int], out: Path) -> Path:
    """codes int [N, L] -> one panel per position: how many items use each code, sorted descending."""
    codes = np.asarray(codes)
    if codes.ndim != 2 or codes.shape[1] != len(sizes):
        raise DataError(f"codes shape {codes.shape} does not match {len(sizes)} codebook sizes")
    plt = _pyplot()
    L = codes.shape[1]
    fig, axes = plt.subplots(1, L, figsize=(2.6 * L, 2.6), squeeze=False)
    for j, ax in enumerate(axes[0]):
        counts = np.bincount(codes[:, j][codes[:, j] >= 0], minlength=sizes[j])
        p = counts[counts > 0] / max(counts.sum(), 1)
        util, ent = (counts > 0).mean(), float(-(p * np.log2(p)).sum())
        ax.bar(np.arange(len(counts)), np.sort(counts)[::-1], width=1.0)
        ax.set_title(f"pos {j}: util {util:.2f}, H {ent:.1f}/{np.log2(sizes[j]):.1f} bits", fontsize=8)
        ax.set_xlabel("code rank", fontsize=8)
    axes[0][0].set_ylabel("items")
    fig.tight_layout()
    atomic_write(out, lambda p: fig.savefig(p, format="png", dpi=110))
    plt.close(fig)
    return out


def plot_run(run_dir: str | Path) -> list[Path]:
    """Every plot the run directory has data for; returns the written paths."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise DataError(f"{run_dir}: not a directory")
    written = []
    log = run_dir / "model" / "train_log.jsonl"
    if log.is_file():
        written.append(plot_training(read_train_log(log), run_dir / "plots" / "training.png"))
    ids = run_dir / "tokenizer" / "ids"
    codes_file = ids / "codes_raw.npy" if (ids / "codes_raw.npy").is_file() else ids / "codes.npy"
    if codes_file.is_file() and (ids / "report.json").is_file():
        codes = np.load(codes_file)
        report = read_json(ids / "report.json")  # a corrupt report is named, not a bare JSONDecodeError
        K = int(report.get("codebook_size", 0))
        sizes = [max(K, int(codes[:, j].max()) + 1) for j in range(codes.shape[1])]
        written.append(plot_code_usage(codes, sizes, run_dir / "plots" / "ids.png"))
    if not written:
        raise DataError(f"{run_dir}: no model/train_log.jsonl or tokenizer/ids to plot")
    return written
