"""Item masks for business rules: which items each request may get back (exclude seen, allow/deny lists,
catalog availability), as one bool matrix that every model applies the same way.

Generative models apply it *inside* constrained decoding (``PrefixIndex.alive``: a masked item's leaf and
every prefix whose leaves are all masked become unreachable), so a beam never wastes a slot on an item that
would be dropped afterwards and k valid items still come back when the top ones are filtered. Full-ranking
models (SASRec, MostPopular) set the masked scores to -inf before their top-k (``masked_topk``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from semid.errors import DataError


def item_mask(
    n_items: int,
    n_rows: int,
    *,
    exclude: Sequence[np.ndarray] | None = None,
    allowed: np.ndarray | None = None,
) -> np.ndarray | None:
    """Combine per-row exclusions and an allow mask into bool [n_rows, n_items] (True = may be returned).

    exclude: one int array of item indices per row (e.g. the row's history); indices outside
      ``[0, n_items)`` are a DataError (an unknown item is a caller bug, never silently ignored).
    allowed: bool [n_items] (same for every row, e.g. catalog availability) or [n_rows, n_items].
    Returns None when neither is given, so callers keep their unmasked fast path.
    """
    if exclude is None and allowed is None:
        return None
    if allowed is None:
        mask = np.ones((n_rows, n_items), dtype=bool)
    else:
        allowed = np.asarray(allowed, dtype=bool)
        if allowed.shape not in ((n_items,), (n_rows, n_items)):
            raise DataError(
                f"allowed mask has shape {allowed.shape}; expected ({n_items},) or ({n_rows}, {n_items})"
            )
        mask = np.broadcast_to(allowed, (n_rows, n_items)).copy()
    if exclude is not None:
        if len(exclude) != n_rows:
            raise DataError(f"exclude has {len(exclude)} rows, expected one per history ({n_rows})")
        for r, ex in enumerate(exclude):
            ex = np.asarray(ex, dtype=np.int64).reshape(-1)
            if len(ex) and (ex.min() < 0 or ex.max() >= n_items):
                raise DataError(f"exclude row {r} names item indices outside [0, {n_items})")
            mask[r, ex] = False
    return mask


def masked_topk(
    scores: torch.Tensor, mask: np.ndarray | torch.Tensor | None, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Full-ranking top-k under a mask: scores float (B, N) -> (items int64 [B, k] -1 padded, scores [B, k]).

    Masked items get -inf and are then reported as -1 / -inf, so a row with fewer than k allowed items is
    padded exactly like the Recommender protocol's short rows.
    """
    scores = scores.float()
    if mask is not None:
        m = torch.as_tensor(np.asarray(mask) if not torch.is_tensor(mask) else mask, device=scores.device)
        scores = scores.masked_fill(~m.bool(), float("-inf"))
    B, N = scores.shape
    k_eff = min(k, N)
    top_s, top_i = torch.topk(scores, k_eff, dim=1)
    top_s, top_i = top_s.cpu().numpy(), top_i.cpu().numpy()
    items = np.full((B, k), -1, dtype=np.int64)
    out_s = np.full((B, k), -np.inf, dtype=np.float32)
    dead = np.isneginf(top_s)
    items[:, :k_eff] = np.where(dead, -1, top_i)
    out_s[:, :k_eff] = np.where(dead, -np.inf, top_s)
    return items, out_s


def recommend_masked(model, histories: list[np.ndarray], k: int, mask: np.ndarray | None, **kw):
    """``model.recommend`` under an item mask [B, n_items], for any Recommender.

    Models whose ``recommend`` takes ``allowed=`` apply the mask themselves (inside the trie, or on their
    full-ranking scores). For a model that does not (yet), its ranking is widened by the most items any row
    masks and filtered afterwards: exact for full-ranking models, which rank every item.
    """
    import inspect

    if mask is None:
        return model.recommend(histories, k, **kw)
    if "allowed" in inspect.signature(model.recommend).parameters:
        return model.recommend(histories, k, allowed=mask, **kw)
    wide = min(mask.shape[1], k + int((~mask).sum(axis=1).max()))
    items, scores = model.recommend(histories, wide, **kw)
    out_i = np.full((len(histories), k), -1, dtype=np.int64)
    out_s = np.full((len(histories), k), -np.inf, dtype=np.float32)
    for r in range(len(histories)):
        ok = (items[r] >= 0) & mask[r, np.clip(items[r], 0, None)]
        keep_i, keep_s = items[r][ok][:k], scores[r][ok][:k]
        out_i[r, : len(keep_i)], out_s[r, : len(keep_s)] = keep_i, keep_s
    return out_i, out_s
