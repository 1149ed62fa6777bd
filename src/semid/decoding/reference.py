"""Slow, obviously-correct constrained beam search: a Python dict-trie, one sequence, plain loops.

It recomputes the model from scratch for every prefix (no KV cache) and uses the same scoring as
``beam.beam_search`` (sum of full-vocabulary log-softmax values), so the two must agree.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def build_trie(tokens: np.ndarray, keep: np.ndarray | None = None) -> dict:
    """int64 [n_items, L] -> nested dict {token: {...: {token: item}}}; the last level maps to the item.

    ``keep`` (optional bool [n_items]): only these items enter the trie, which is what an item mask means.
    """
    root: dict = {}
    for item, row in enumerate(np.asarray(tokens).tolist()):
        if keep is not None and not keep[item]:
            continue
        node = root
        for t in row[:-1]:
            node = node.setdefault(t, {})
        if row[-1] in node:
            raise ValueError(f"items {node[row[-1]]} and {item} share the code {row}")
        node[row[-1]] = item
    return root


def reference_beam_search(
    next_logp: Callable[[tuple[int, ...]], np.ndarray],
    trie: dict,
    length: int,
    *,
    beam: int = 20,
    k: int = 10,
) -> tuple[list[int], list[float]]:
    """Top-k (items, scores) for ONE example. ``next_logp(prefix)`` -> log-probs over the vocabulary [V]."""
    beams: list[tuple[tuple[int, ...], float, object]] = [((), 0.0, trie)]
    for _ in range(length):
        cands = []
        for prefix, score, node in beams:
            logp = next_logp(prefix)
            for tok, sub in node.items():
                cands.append((prefix + (tok,), score + float(logp[tok]), sub))
        cands.sort(key=lambda c: -c[1])
        beams = cands[:beam]
    beams = beams[:k]
    return [int(node) for _, _, node in beams], [s for _, s, _ in beams]
