"""Static prefix index over item code tuples, living on the decoding device.

Constrained beam search asks, for a batch of partial codes, "which next tokens lead to a real item?"
and, once a code is complete, "which item is it?". This index answers both with a few tensor ops.

Layout (L levels, item tokens ``tok`` int64 [n_items, L]):

* Level ``l`` works in *local* codes ``c = tok[:, l] - lo[l]`` in ``[0, S_l)`` so the beam only ever
  looks at the slice ``logp[:, lo[l] : lo[l] + S_l]`` of the vocabulary.
* A prefix of length ``l`` has an id ``p`` in ``[0, n_prefix[l])`` (``n_prefix[0] = 1``: the empty prefix).
  The children of level ``l`` are stored as sorted int64 keys ``keys[l] = p * S_l + c`` (a CSR whose row
  pointers are ``ptr[l]``); a child's position in ``keys[l]`` *is* its prefix id at level ``l + 1``,
  so stepping is one ``searchsorted`` and leaves (level L) map to items through ``leaf_item``.
* Allowed-token masks ``[R, S_l]`` for R prefixes: when ``n_prefix[l] * S_l <= dense_limit`` a dense bool
  table is precomputed and the mask is one row gather (level 0 and 1 always are, in practice); otherwise
  the mask is scattered from the CSR rows (one ``repeat_interleave`` + one index_put).
  ``dense_limit`` default 2**24 cells = 16 MiB of bool per level.
* Item masks (``semid.decoding.masks``): ``alive(mask)`` turns a per-row item mask [B, n_items] into, per
  level, which prefixes still lead to an allowed item ([B, n_prefix[l]], a bottom-up OR over ``parent``);
  ``allowed_alive`` is ``allowed`` restricted to live children, so masked items are unreachable.
* The live catalog patches the index in place: ``add_items`` merges the new keys into each level's sorted
  keys and ``remove_items`` drops an item's leaf and every prefix left without children. A level's insert
  or delete shifts the prefix ids after it, so the next level's keys are re-encoded through that monotone
  id map (their order is kept, nothing is re-sorted): O(n_prefix) array work per level and call, no
  ``np.unique`` over all codes. The layout (``lo``, ``sizes``) is fixed at construction (pass the
  codebook ranges so any code the model can emit fits); a token outside it is the one case that rebuilds
  (counted in ``rebuilds``). ``n_items`` is the width of the item-index space (item masks are
  [B, n_items]); ``n_leaves`` the items currently in the index. Every holder of the object sees each patch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from semid.errors import DataError

DENSE_LIMIT = 1 << 24


class PrefixIndex:
    """Prefix trie of item codes as sorted keys (CSR) + optional dense masks; see module docstring."""

    def __init__(
        self,
        *,
        lo: np.ndarray,
        sizes: list[int],
        keys: list[np.ndarray],
        leaf_item: np.ndarray,
        dense_limit: int = DENSE_LIMIT,
        device: str | torch.device = "cpu",
    ) -> None:
        self.L = len(sizes)
        self.lo = [int(x) for x in lo]
        self.sizes = [int(s) for s in sizes]
        self.dense_limit = int(dense_limit)
        self.device = torch.device(device)
        self.rebuilds = 0  # add_items calls that had to re-lay the index out (a token outside lo/sizes)
        leaf_item = np.asarray(leaf_item, dtype=np.int64)
        self._n_items = int(leaf_item.max()) + 1 if len(leaf_item) else 0
        self._refresh([np.asarray(k, dtype=np.int64) for k in keys], leaf_item)

    def _refresh(self, keys: list[np.ndarray], leaf_item: np.ndarray) -> None:
        """Set every derived array (CSR row pointers, parents, device tensors, dense masks) from the keys."""
        self.n_prefix = [1] + [len(k) for k in keys]
        # numpy copies for the per-sequence API (next_tokens) used by HF's prefix_allowed_tokens_fn.
        self._keys_np = keys
        # parent prefix id (level l) of each child at level l + 1, for the bottom-up OR of ``alive``
        self._parent_np = [k // self.sizes[lvl] for lvl, k in enumerate(keys)]
        self._ptr_np = [
            np.concatenate([[0], np.cumsum(np.bincount(par, minlength=self.n_prefix[lvl]))]).astype(np.int64)
            for lvl, par in enumerate(self._parent_np)
        ]
        self._leaf_np = leaf_item
        self.parent = [torch.as_tensor(p, device=self.device) for p in self._parent_np]
        self.keys = [torch.as_tensor(k, device=self.device) for k in self._keys_np]
        self.ptr = [torch.as_tensor(p, device=self.device) for p in self._ptr_np]
        self.leaf_item = torch.as_tensor(self._leaf_np, device=self.device)
        self.dense: list[torch.Tensor | None] = []
        for lvl in range(self.L):
            if self.n_prefix[lvl] * self.sizes[lvl] <= self.dense_limit:
                m = torch.zeros(self.n_prefix[lvl] * self.sizes[lvl], dtype=torch.bool, device=self.device)
                m[self.keys[lvl]] = True
                self.dense.append(m.view(self.n_prefix[lvl], self.sizes[lvl]))  # (n_prefix_l, S_l)
            else:
                self.dense.append(None)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_codes(
        cls,
        tokens: np.ndarray | torch.Tensor,
        *,
        items: np.ndarray | None = None,
        n_items: int | None = None,
        lo: Sequence[int] | None = None,
        sizes: Sequence[int] | None = None,
        dense_limit: int = DENSE_LIMIT,
        device: str | torch.device = "cpu",
    ) -> PrefixIndex:
        """Build from item token tuples int64 [m, L]; tuples must be unique.

        items: the item index of each row (default 0..m-1); n_items: width of the item-index space (default
        the largest index + 1). lo / sizes: the token layout per level (default the range the tokens span);
        a token outside a given layout is a DataError.
        """
        tok = tokens.detach().cpu().numpy() if torch.is_tensor(tokens) else np.asarray(tokens)
        tok = tok.astype(np.int64, copy=False)
        if tok.ndim != 2 or tok.shape[0] == 0 or tok.shape[1] == 0:
            raise DataError(
                f"PrefixIndex.from_codes needs a non-empty int [n_items, L] array, got {tok.shape}"
            )
        if (tok < 0).any():
            raise DataError(
                "PrefixIndex.from_codes: negative token ids (items without codes?); drop or fill them"
            )
        items = np.arange(len(tok), dtype=np.int64) if items is None else np.asarray(items, dtype=np.int64)
        width = int(items.max()) + 1 if n_items is None else int(n_items)
        if items.shape != (len(tok),) or items.min() < 0 or items.max() >= width or len(np.unique(items)) != len(items):
            raise DataError(f"PrefixIndex.from_codes: items must be {len(tok)} distinct indices in [0, {width})")
        if lo is None or sizes is None:
            lo = tok.min(axis=0)
            sizes = (tok.max(axis=0) - lo + 1).tolist()
        lo, sizes = np.asarray(lo, dtype=np.int64), [int(x) for x in sizes]
        if len(lo) != tok.shape[1] or len(sizes) != tok.shape[1]:
            raise DataError(f"PrefixIndex.from_codes: lo / sizes need {tok.shape[1]} levels")
        outside = (tok < lo) | (tok >= lo + np.asarray(sizes))
        if outside.any():
            r, c = np.argwhere(outside)[0]
            raise DataError(f"PrefixIndex.from_codes: token {int(tok[r, c])} at level {c} is outside the layout "
                            f"[{int(lo[c])}, {int(lo[c]) + sizes[c]})")
        prefix = np.zeros(len(tok), dtype=np.int64)  # prefix id of each item at the current level
        keys = []
        for lvl in range(tok.shape[1]):
            key = prefix * sizes[lvl] + (tok[:, lvl] - lo[lvl])
            uniq, inv = np.unique(key, return_inverse=True)
            keys.append(uniq)
            prefix = inv.reshape(-1).astype(np.int64)
        if len(keys[-1]) != len(tok):
            n_dup = len(tok) - len(keys[-1])
            raise DataError(
                f"PrefixIndex.from_codes: {n_dup} items share a code tuple with another item; "
                "resolve collisions in the tokenizer (semid.tokenizers.ids.resolve_collisions)"
            )
        leaf_item = np.empty(len(tok), dtype=np.int64)
        leaf_item[prefix] = items
        index = cls(lo=lo, sizes=sizes, keys=keys, leaf_item=leaf_item, dense_limit=dense_limit, device=device)
        index._n_items = width
        index._tokens_np = np.full((width, tok.shape[1]), -1, dtype=np.int64)  # tokens of every item index
        index._tokens_np[items] = tok
        index._live_np = np.zeros(width, dtype=bool)  # item index -> has a leaf now
        index._live_np[items] = True
        return index

    def rebuilt(self) -> PrefixIndex:
        """A fresh index over the same live items and layout (what every patch must equal)."""
        live = np.flatnonzero(self._live_np)
        return PrefixIndex.from_codes(self._tokens_np[live], items=live, n_items=self._n_items, lo=self.lo,
                                      sizes=self.sizes, dense_limit=self.dense_limit, device=self.device)

    def _check_patchable(self) -> None:
        if getattr(self, "_tokens_np", None) is None:
            raise DataError("PrefixIndex: add_items / remove_items need an index built by PrefixIndex.from_codes")

    def _leaf_of(self, tok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Token tuples (m, L) -> (leaf prefix id (m,), found bool (m,)), walking the sorted keys."""
        p = np.zeros(len(tok), dtype=np.int64)
        found = np.ones(len(tok), dtype=bool)
        for lvl in range(self.L):
            keys = self._keys_np[lvl]
            key = p * self.sizes[lvl] + (tok[:, lvl] - self.lo[lvl])
            pos = np.minimum(np.searchsorted(keys, key), max(len(keys) - 1, 0))
            found &= (keys[pos] == key) if len(keys) else False
            p = np.where(found, pos, 0)
        return p, found

    def add_items(self, tokens: np.ndarray, items: np.ndarray | None = None) -> None:
        """Insert items with token tuples int64 [m, L], in place; ``items`` their indices (default the next
        m indices n_items .. n_items + m - 1, the live catalog's case).

        Raises DataError (and leaves the index unchanged) when a tuple is taken, an index is in use, or the
        width differs. A token outside the layout re-lays the whole index out (``rebuilds`` += 1).
        """
        self._check_patchable()
        tok = np.asarray(tokens, dtype=np.int64)
        if tok.ndim != 2 or tok.shape[1] != self.L or (tok < 0).any():
            raise DataError(f"PrefixIndex.add_items: expected non-negative int [m, {self.L}] tokens, got {tok.shape}")
        m = len(tok)
        items = (np.arange(self._n_items, self._n_items + m, dtype=np.int64) if items is None
                 else np.asarray(items, dtype=np.int64).reshape(-1))
        if len(items) != m or (items < 0).any() or len(np.unique(items)) != m:
            raise DataError(f"PrefixIndex.add_items: need {m} distinct non-negative item indices")
        reused = items[items < self._n_items]
        if len(reused) and (self._tokens_np[reused] >= 0).any():
            raise DataError(f"PrefixIndex.add_items: item indices already used: {reused[:5].tolist()}")
        if m == 0:
            return
        if len(np.unique(tok, axis=0)) != m:
            raise DataError("PrefixIndex.add_items: two new items share a code tuple")
        lo, hi = np.asarray(self.lo), np.asarray(self.lo) + np.asarray(self.sizes)
        row_inside = ((tok >= lo) & (tok < hi)).all(axis=1)  # a row outside the layout cannot be taken
        if self._leaf_of(tok[row_inside])[1].any():
            raise DataError("PrefixIndex.add_items: a new item would share a code tuple with a live item")
        if not row_inside.all():  # the fixed key encoding cannot hold this token: re-lay out over the union
            live = np.flatnonzero(self._live_np)
            all_tok = np.concatenate([self._tokens_np[live], tok])
            new_lo = np.minimum(lo, tok.min(axis=0))
            new = PrefixIndex.from_codes(all_tok, items=np.concatenate([live, items]),
                                         n_items=max(self._n_items, int(items.max()) + 1), lo=new_lo,
                                         sizes=(np.maximum(hi, tok.max(axis=0) + 1) - new_lo).tolist(),
                                         dense_limit=self.dense_limit, device=self.device)
            self._grow(new.n_items)
            self._tokens_np[items], self._live_np[items] = tok, True
            self.lo, self.sizes, self.rebuilds = new.lo, new.sizes, self.rebuilds + 1
            self._refresh(new._keys_np, new._leaf_np)
            return
        self._grow(int(items.max()) + 1)
        self._tokens_np[items] = tok
        self._live_np[items] = True
        keys = [k for k in self._keys_np]
        prefix = np.zeros(m, dtype=np.int64)  # new rows' prefix id at the current level (new numbering)
        remap = None  # old prefix id at this level -> new id, after the previous level's inserts
        for lvl in range(self.L):
            S = self.sizes[lvl]
            old = keys[lvl]
            if remap is not None:  # parents shifted: re-encode, order unchanged (remap is increasing)
                old = remap[old // S] * S + old % S
            cand = np.unique(prefix * S + (tok[:, lvl] - self.lo[lvl]))
            ins = cand[~np.isin(cand, old, assume_unique=True)]
            merged = np.sort(np.concatenate([old, ins]), kind="stable")
            remap = np.arange(len(old), dtype=np.int64) + np.searchsorted(ins, old)  # old position -> merged
            prefix = np.searchsorted(merged, prefix * S + (tok[:, lvl] - self.lo[lvl]))
            keys[lvl] = merged
        leaf = np.empty(len(keys[-1]), dtype=np.int64)
        leaf[remap] = self._leaf_np
        leaf[prefix] = items
        self._refresh(keys, leaf)

    def remove_items(self, items: np.ndarray) -> None:
        """Drop live items (indices) from the index in place: their leaves and every prefix left without a
        child. Their indices stay reserved (``n_items`` does not shrink). DataError, index unchanged, for an
        index that is not live or a removal that would leave the index empty."""
        self._check_patchable()
        items = np.unique(np.asarray(items, dtype=np.int64).reshape(-1))
        if len(items) == 0:
            return
        if items.min() < 0 or items.max() >= self._n_items or not self._live_np[items].all():
            bad = [int(i) for i in items if not (0 <= i < self._n_items and self._live_np[i])]
            raise DataError(f"PrefixIndex.remove_items: not in the index: {bad[:5]}")
        if len(items) == self.n_leaves:
            raise DataError("PrefixIndex.remove_items: would remove every item (an index needs at least one)")
        leaf, _ = self._leaf_of(self._tokens_np[items])
        keep = [np.ones(n, dtype=bool) for n in self.n_prefix[1:]]  # per level: key kept
        keep[-1][leaf] = False
        for lvl in range(self.L - 1, 0, -1):  # bottom-up: a prefix whose children are all gone goes too
            kids = np.bincount(self._parent_np[lvl][keep[lvl]], minlength=self.n_prefix[lvl])
            keep[lvl - 1] &= kids > 0
        keys, remap = [], None
        for lvl in range(self.L):  # top-down: drop, then re-encode the next level through the id map
            S = self.sizes[lvl]
            k = self._keys_np[lvl][keep[lvl]]
            if remap is not None:
                k = remap[k // S] * S + k % S
            keys.append(k)
            remap = np.cumsum(keep[lvl]) - 1  # old prefix id at level lvl + 1 -> new (valid where kept)
        self._live_np[items] = False
        self._refresh(keys, self._leaf_np[keep[-1]])

    def _grow(self, width: int) -> None:
        if width > self._n_items:
            self._tokens_np = np.concatenate(
                [self._tokens_np, np.full((width - self._n_items, self.L), -1, dtype=np.int64)])
            self._live_np = np.concatenate([self._live_np, np.zeros(width - self._n_items, dtype=bool)])
            self._n_items = width

    def to(self, device: str | torch.device) -> PrefixIndex:
        if torch.device(device) == self.device:
            return self
        moved = PrefixIndex(
            lo=np.asarray(self.lo),
            sizes=self.sizes,
            keys=self._keys_np,
            leaf_item=self._leaf_np,
            dense_limit=self.dense_limit,
            device=device,
        )
        moved._n_items, moved.rebuilds = self._n_items, self.rebuilds
        if hasattr(self, "_tokens_np"):
            moved._tokens_np, moved._live_np = self._tokens_np, self._live_np
        return moved

    @property
    def n_items(self) -> int:
        """Width of the item-index space (item masks are [B, n_items]); removed indices stay reserved."""
        return self._n_items

    @property
    def n_leaves(self) -> int:
        """Items currently in the index."""
        return len(self._leaf_np)

    def nbytes(self) -> int:
        """Device memory held by the index."""
        ts = [*self.keys, *self.ptr, self.leaf_item, *(d for d in self.dense if d is not None)]
        return int(sum(t.numel() * t.element_size() for t in ts))

    # ------------------------------------------------------------------ batched queries
    def allowed(self, level: int, prefix: torch.Tensor) -> torch.Tensor:
        """Prefix ids (R,) at ``level`` -> bool (R, S_level): which local codes continue to an item."""
        dense = self.dense[level]
        if dense is not None:
            return dense.index_select(0, prefix)
        rows, j, code = self._children(level, prefix)
        mask = torch.zeros(len(prefix), self.sizes[level], dtype=torch.bool, device=prefix.device)
        mask[rows, code] = True
        return mask

    def _children(self, level: int, prefix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Every child of the prefixes (R,) at ``level`` from the CSR rows: (its row in 0..R-1, its prefix id at
        level + 1, its local code), each (n_children,)."""
        ptr, keys, S = self.ptr[level], self.keys[level], self.sizes[level]
        start, end = ptr.index_select(0, prefix), ptr.index_select(0, prefix + 1)
        counts = end - start  # (R,)
        rows = torch.repeat_interleave(torch.arange(len(prefix), device=prefix.device), counts)
        # position of each child inside its row, then its key -> local code
        first = torch.cumsum(counts, 0) - counts
        j = (
            start.index_select(0, rows)
            + torch.arange(len(rows), device=prefix.device)
            - first.index_select(0, rows)
        )
        return rows, j, keys.index_select(0, j) % S

    def alive(self, item_mask: torch.Tensor) -> list[torch.Tensor]:
        """bool [B, n_items] (True = allowed) -> per level l = 0..L, bool [B, n_prefix[l]]: prefix leads to
        at least one allowed item. Level L is the leaves; level 0 says whether a row has any item at all."""
        B = item_mask.shape[0]
        out = [item_mask.to(self.device).bool().index_select(1, self.leaf_item)]  # (B, n_leaves)
        for lvl in range(self.L - 1, -1, -1):
            cnt = torch.zeros(B, self.n_prefix[lvl], dtype=torch.int32, device=self.device)
            cnt.index_add_(1, self.parent[lvl], out[-1].to(torch.int32))
            out.append(cnt > 0)
        return out[::-1]

    def allowed_alive(
        self, level: int, prefix: torch.Tensor, alive_next: torch.Tensor, row_example: torch.Tensor
    ) -> torch.Tensor:
        """Like ``allowed`` but only children that are alive for the row's example.

        prefix (R,) prefix ids at ``level``; alive_next bool [B, n_prefix[level + 1]] from ``alive``;
        row_example (R,) example of each row. Scatters from the CSR rows whatever the dense_limit.
        """
        rows, j, code = self._children(level, prefix)
        mask = torch.zeros(len(prefix), self.sizes[level], dtype=torch.bool, device=prefix.device)
        mask[rows, code] = alive_next[row_example.index_select(0, rows), j]
        return mask

    def child(
        self, level: int, prefix: torch.Tensor, code: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(prefix ids, local codes) at ``level`` -> (child prefix ids at level+1, valid bool); invalid ids are 0."""
        keys = self.keys[level]
        key = prefix * self.sizes[level] + code
        pos = torch.searchsorted(keys, key).clamp_(max=len(keys) - 1)
        ok = keys.index_select(0, pos.reshape(-1)).view_as(pos) == key
        return torch.where(ok, pos, torch.zeros_like(pos)), ok

    def items(self, leaf: torch.Tensor) -> torch.Tensor:
        """Leaf prefix ids (level L) -> item indices."""
        return self.leaf_item[leaf]

    # ------------------------------------------------------------------ per-sequence API (slow path helpers)
    def next_tokens(self, prefix_tokens: Sequence[int]) -> list[int]:
        """Global token ids allowed after ``prefix_tokens`` (len < L); [] for a dead prefix. Plain numpy."""
        p = 0
        for lvl, t in enumerate(prefix_tokens):
            key = p * self.sizes[lvl] + (int(t) - self.lo[lvl])
            j = int(np.searchsorted(self._keys_np[lvl], key))
            if j >= len(self._keys_np[lvl]) or self._keys_np[lvl][j] != key:
                return []
            p = j
        lvl = len(prefix_tokens)
        if lvl >= self.L:
            return []
        ch = self._keys_np[lvl][self._ptr_np[lvl][p] : self._ptr_np[lvl][p + 1]] % self.sizes[lvl]
        return (ch + self.lo[lvl]).tolist()
