"""Slow, obviously-correct loop versions of the metrics in ``semid.eval.metrics`` (for parity tests only)."""

from __future__ import annotations

import math

from semid.eval.metrics import DEFAULT_KS


def row_metrics(ranked: list[int], targets: list[int], ks=DEFAULT_KS) -> dict[str, float]:
    """Metrics of one ranked list against one target set. -1 entries are padding and never hit."""
    target_set = set(targets)
    out: dict[str, float] = {}
    for k in ks:
        out[f"HR@{k}"] = 1.0 if any(i in target_set for i in ranked[:k] if i >= 0) else 0.0
    for k in ks:
        if k == 1:
            continue
        dcg = 0.0
        for r, item in enumerate(ranked[:k], start=1):
            if item >= 0 and item in target_set:
                dcg += 1.0 / math.log2(r + 1)
        idcg = sum(1.0 / math.log2(r + 1) for r in range(1, min(len(target_set), k) + 1))
        out[f"NDCG@{k}"] = dcg / idcg
    if len(target_set) > 1:
        for k in ks:
            found = {i for i in ranked[:k] if i >= 0 and i in target_set}
            out[f"Recall@{k}"] = len(found) / len(target_set)
    out["MRR"] = 0.0
    for r, item in enumerate(ranked, start=1):
        if item >= 0 and item in target_set:
            out["MRR"] = 1.0 / r
            break
    return out


def reference_metrics(topk, target_lists, ks=DEFAULT_KS) -> dict[str, float]:
    """Average of ``row_metrics`` over rows; Recall@k appears when any row has several targets."""
    rows = [
        row_metrics([int(i) for i in r], [int(t) for t in ts], ks)
        for r, ts in zip(topk, target_lists, strict=True)
    ]
    multi = any(len(set(ts)) > 1 for ts in target_lists)
    names = [f"HR@{k}" for k in ks] + [f"NDCG@{k}" for k in ks if k > 1]
    names += [f"Recall@{k}" for k in ks] if multi else []
    names.append("MRR")
    out = {}
    for name in names:
        # A single-target row in a multi-target batch has Recall@k == HR@k.
        vals = [r.get(name, r.get(name.replace("Recall", "HR"))) for r in rows]
        out[name] = sum(vals) / len(vals) if vals else 0.0
    return out
