"""Dataset summary numbers (users, items, density, sequence lengths, modality coverage) and a rich
table to print them, so every run can log what it trained on."""

from __future__ import annotations

import numpy as np

from semid.data.types import Dataset


def dataset_stats(ds: Dataset) -> dict:
    """Summary of ``ds``: counts, density, sequence-length percentiles, per-modality coverage."""
    inter = ds.interactions
    lens = inter.lengths()
    n_users, n_items, nnz = inter.n_users, ds.catalog.n_items, inter.n_interactions
    used = int(len(np.unique(inter.items))) if nnz else 0

    def q(p: float) -> float:
        return float(np.percentile(lens, p)) if len(lens) else 0.0

    return {
        "name": ds.name,
        "users": n_users,
        "items": n_items,
        "items_with_interactions": used,
        "interactions": nnz,
        "density": nnz / (n_users * n_items) if n_users and n_items else 0.0,
        "seq_len": {
            "min": int(lens.min()) if len(lens) else 0,
            "mean": float(lens.mean()) if len(lens) else 0.0,
            "median": q(50),
            "p90": q(90),
            "max": int(lens.max()) if len(lens) else 0,
        },
        "coverage": ds.catalog.field_coverage(),
    }


def render_stats(stats: dict):
    """A ``rich.table.Table`` with one row per statistic (coverage as percentages)."""
    from rich.table import Table

    table = Table(title=f"dataset {stats.get('name', '')}".strip(), show_header=True)
    table.add_column("statistic")
    table.add_column("value", justify="right")
    for key in ("users", "items", "items_with_interactions", "interactions"):
        table.add_row(key, f"{stats[key]:,}")
    table.add_row("density", f"{stats['density']:.3e}")
    sl = stats["seq_len"]
    table.add_row(
        "sequence length",
        f"min {sl['min']}  mean {sl['mean']:.1f}  median {sl['median']:.0f}  p90 {sl['p90']:.0f}  max {sl['max']}",
    )
    for name, frac in stats["coverage"].items():
        table.add_row(f"coverage {name}", f"{100 * frac:.1f}%")
    return table
