"""Identifier quality (conflicts, codebook use) and deterministic collision resolution.

Every tokenizer reports on its *raw* codes (before any disambiguation), so the conflict rate
is the quantizer's own, as FusID and TIGER report it, and then resolves collisions the same way.
"""

from __future__ import annotations

import numpy as np


def _row_keys(rows: np.ndarray, dtype=np.int64) -> np.ndarray:
    """[N, L] -> one key per row (a void view of the row's bytes), for grouping equal rows.

    Codes are cast to int64 first; ``dtype=None`` keeps the array's own dtype (bitwise-equal float rows).
    """
    rows = np.ascontiguousarray(rows, dtype=dtype)
    return rows.view(np.dtype((np.void, rows.dtype.itemsize * rows.shape[1]))).ravel()


def conflict_mask(codes: np.ndarray) -> np.ndarray:
    """bool [N]: True where an item's full code tuple is shared with at least one other item."""
    if len(codes) == 0:
        return np.zeros(0, dtype=bool)
    _, inverse, counts = np.unique(_row_keys(codes), return_inverse=True, return_counts=True)
    return counts[inverse.ravel()] > 1


def resolve_collisions(codes: np.ndarray, *, always_append: bool = False) -> tuple[np.ndarray, int]:
    """Make code tuples unique by appending a disambiguation digit (TIGER's scheme).

    codes: int64 [N, L]. Items sharing a tuple get digits 0, 1, 2, ... in item-index order, so the
    result is deterministic. When no tuple collides the codes are returned unchanged (L columns)
    unless ``always_append`` (then the digit is 0 for everyone and the width is fixed at L+1).
    Returns (unique codes [N, L] or [N, L+1], number of items that shared a tuple).
    """
    codes = np.asarray(codes, dtype=np.int64)
    collided = conflict_mask(codes)
    n_collided = int(collided.sum())
    if n_collided == 0 and not always_append:
        return codes.copy(), 0
    keys = _row_keys(codes)
    digit = np.zeros(len(codes), dtype=np.int64)
    # Stable sort by key keeps item-index order inside each group: digit = rank within group.
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    starts = np.r_[True, sorted_keys[1:] != sorted_keys[:-1]]
    group_start = np.maximum.accumulate(np.where(starts, np.arange(len(order)), 0))
    digit[order] = np.arange(len(order)) - group_start
    return np.concatenate([codes, digit[:, None]], axis=1), n_collided


def input_conflict_report(codes_raw: np.ndarray, inputs: np.ndarray) -> dict:
    """Split raw conflicts into forced ones (identical inputs) and avoidable ones (distinct inputs).

    codes_raw: int64 [N, L]; inputs: [N, D] what the tokenizer saw per item (features + presence flags).
    Items with bitwise-identical inputs get identical embeddings, so no quantizer can tell them apart
    (e.g. items absent from the train split when co-occurrence is the only modality); only conflicts
    between items with *different* inputs are the quantizer's to avoid.
      duplicate_input_rate: fraction of items whose input row equals another item's.
      conflict_rate_distinct_inputs: fraction of items sharing their code with an item whose input differs.
    """
    codes_raw = np.asarray(codes_raw, dtype=np.int64)
    n = len(codes_raw)
    if n == 0:
        return {"duplicate_input_rate": 0.0, "n_duplicate_input_items": 0,
                "conflict_rate_distinct_inputs": 0.0, "n_conflicting_items_distinct_inputs": 0}
    _, in_id, in_counts = np.unique(_row_keys(np.asarray(inputs).reshape(n, -1), dtype=None),
                                    return_inverse=True, return_counts=True)
    in_id = in_id.ravel()
    _, code_id = np.unique(_row_keys(codes_raw), return_inverse=True)
    code_id = code_id.ravel()
    # distinct inputs per code group: an item conflicts avoidably when its group holds >1 input id.
    pairs = np.unique(np.stack([code_id, in_id], axis=1), axis=0)  # (code, input) pairs present
    n_inputs_per_code = np.bincount(pairs[:, 0], minlength=int(code_id.max()) + 1)
    avoidable = n_inputs_per_code[code_id] > 1
    dup = in_counts[in_id] > 1
    return {
        "duplicate_input_rate": float(dup.mean()),
        "n_duplicate_input_items": int(dup.sum()),
        "conflict_rate_distinct_inputs": float(avoidable.mean()),
        "n_conflicting_items_distinct_inputs": int(avoidable.sum()),
    }


def id_report(codes_raw: np.ndarray, codebook_sizes: list[int] | int) -> dict:
    """Quality of raw (pre-resolution) identifiers.

    conflict_rate: fraction of items whose full code is shared with another item.
    codebook_utilization: per position, fraction of that position's K codes used by some item.
    entropy: per position, Shannon entropy (bits) of code usage, and its max log2(K).
    """
    codes_raw = np.asarray(codes_raw, dtype=np.int64)
    n, L = codes_raw.shape
    sizes = [codebook_sizes] * L if isinstance(codebook_sizes, int) else list(codebook_sizes)
    util, ent = [], []
    for pos in range(L):
        counts = np.bincount(codes_raw[:, pos], minlength=sizes[pos]).astype(np.float64)
        util.append(float((counts > 0).sum() / sizes[pos]))
        p = counts[counts > 0] / max(n, 1)
        ent.append(float(-(p * np.log2(p)).sum()))
    mask = conflict_mask(codes_raw)
    return {
        "conflict_rate": float(mask.mean()) if n else 0.0,
        "n_conflicting_items": int(mask.sum()),
        "n_unique_codes": int(len(np.unique(_row_keys(codes_raw)))) if n else 0,
        "codebook_utilization": util,
        "entropy_bits": ent,
        "max_entropy_bits": [float(np.log2(s)) for s in sizes],
        "n_items": int(n),
        "n_levels": int(L),
        "codebook_size": sizes[0] if len(set(sizes)) == 1 else sizes,
    }


def conflict_summary(report: dict) -> str:
    """One line for the CLI: raw conflict rate, its forced part when known, and the final ID length."""
    out = f"raw conflict rate {report['conflict_rate']:.4f}"
    if "duplicate_input_rate" in report:
        out += (f" ({report['duplicate_input_rate']:.4f} identical inputs, "
                f"{report['conflict_rate_distinct_inputs']:.4f} between different inputs)")
    if "n_levels_final" in report:
        out += f"; unique IDs of {report['n_levels_final']} tokens"
        if report.get("n_items_reassigned"):
            out += f" ({report['n_items_reassigned']} items reassigned)"
    return out
