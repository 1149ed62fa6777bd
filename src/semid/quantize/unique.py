"""Conflict-free product codes without an extra token: move colliding items to their cheapest free code.

Nearest-centroid PQ can give two items the same n-tuple (identical inputs always do). The default fix
(``semid.tokenizers.ids.resolve_collisions``) appends a disambiguation digit, which makes *every* ID one
token longer. ``reassign_conflicts`` instead keeps the n positions: in each group of items sharing a
tuple, the item closest to its centroids keeps it, and each other member moves to the unused tuple that
raises its quantization error least, changing one position (or, if every one-position change is taken,
two). The raw nearest-centroid codes are still what the ID report's ``conflict_rate`` measures.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch

from semid.quantize.kmeans import pairwise_sq_dists


def _group_conflicts(codes: np.ndarray) -> list[np.ndarray]:
    """Item indices of every tuple shared by >1 item, groups ordered by their lowest item index."""
    _, inverse, counts = np.unique(codes, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.ravel()
    groups = [np.flatnonzero(inverse == g) for g in np.flatnonzero(counts > 1)]
    return sorted(groups, key=lambda g: int(g[0]))


def reassign_conflicts(
    blocks: np.ndarray, centroids: np.ndarray, codes: np.ndarray, *, n_pair_candidates: int = 64
) -> tuple[np.ndarray, np.ndarray]:
    """Unique codes from nearest-centroid codes by minimal-cost moves.

    blocks: float [N, n, d] sub-embeddings; centroids: float [n, K, d]; codes: int64 [N, n] nearest codes.
    One-position moves are searched exhaustively (n*K options per moved item); two-position moves, needed
    only when every one-position move is taken, combine the ``n_pair_candidates`` cheapest single moves.
    Returns (codes int64 [N, n], moved bool [N]). Deterministic: groups in item order, ties broken by
    (cost, position, code). An item with no free tuple within the search keeps its code (the caller's
    digit fallback then separates it).
    """
    codes = np.asarray(codes, dtype=np.int64).copy()
    moved = np.zeros(len(codes), dtype=bool)
    groups = _group_conflicts(codes) if len(codes) else []
    if not groups:
        return codes, moved
    n, K = centroids.shape[:2]
    members = np.concatenate(groups)
    # Squared distances of every conflicting item to every centroid, per position: (M, n, K).
    x = torch.from_numpy(np.ascontiguousarray(blocks[members], dtype=np.float32))
    c = torch.from_numpy(np.ascontiguousarray(centroids, dtype=np.float32))
    dist = torch.stack([pairwise_sq_dists(x[:, j], c[j]) for j in range(n)], dim=1).numpy().astype(np.float64)
    row = {int(i): r for r, i in enumerate(members)}
    taken = {tuple(t) for t in codes.tolist()}
    for group in groups:
        base = codes[group[0]]
        err = np.array([dist[row[int(i)], np.arange(n), base].sum() for i in group])  # (G,) current error
        order = np.lexsort((group, err))  # keeper = smallest error, then lowest index
        for i in group[order[1:]]:
            d = dist[row[int(i)]]  # (n, K)
            extra = d - d[np.arange(n), base][:, None]  # (n, K) error added by moving position j to code k
            extra[np.arange(n), base] = np.inf  # staying put is not a move
            flat = np.lexsort((np.tile(np.arange(K), n), np.repeat(np.arange(n), K), extra.ravel()))
            singles = [(extra.flat[f], f // K, f % K) for f in flat[: n * (K - 1)]]  # cost, position, code
            pick = next((((j, k),) for _, j, k in singles if _with(base, ((j, k),)) not in taken), None)
            if pick is None:  # every one-position move is taken: try two positions
                pairs = sorted(
                    (a[0] + b[0], *min((a[1], a[2], b[1], b[2]), (b[1], b[2], a[1], a[2])))
                    for a, b in itertools.combinations(singles[:n_pair_candidates], 2) if a[1] != b[1]
                )
                pick = next((((j1, k1), (j2, k2)) for _, j1, k1, j2, k2 in pairs
                             if _with(base, ((j1, k1), (j2, k2))) not in taken), None)
            if pick is None:
                continue
            new = _with(base, pick)
            codes[i] = new
            moved[i] = True
            taken.add(new)
    return codes, moved


def _with(base: np.ndarray, changes) -> tuple:
    """base tuple with (position, code) changes applied."""
    t = list(base.tolist())
    for j, k in changes:
        t[int(j)] = int(k)
    return tuple(t)
