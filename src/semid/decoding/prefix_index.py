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
* ``add_items`` appends items (the live catalog): the arrays are rebuilt from all token tuples, O(n log n),
  and swapped into this same object, so every holder of the index sees the new items.
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
        self.n_prefix = [1] + [len(k) for k in keys]
        self.dense_limit = int(dense_limit)
        self.device = torch.device(device)
        # numpy copies for the per-sequence API (next_tokens) used by HF's prefix_allowed_tokens_fn.
        self._keys_np = [np.asarray(k, dtype=np.int64) for k in keys]
        self._ptr_np = [
            np.searchsorted(k, np.arange(self.n_prefix[lvl] + 1, dtype=np.int64) * self.sizes[lvl])
            for lvl, k in enumerate(self._keys_np)
        ]
        self._leaf_np = np.asarray(leaf_item, dtype=np.int64)
        # parent prefix id (level l) of each child at level l + 1, for the bottom-up OR of ``alive``
        self._parent_np = [k // self.sizes[lvl] for lvl, k in enumerate(self._keys_np)]
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
        dense_limit: int = DENSE_LIMIT,
        device: str | torch.device = "cpu",
    ) -> PrefixIndex:
        """Build from item token tuples int64 [n_items, L] (row i = item i); tuples must be unique."""
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
        lo = tok.min(axis=0)
        sizes = (tok.max(axis=0) - lo + 1).tolist()
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
        leaf_item[prefix] = np.arange(len(tok))
        index = cls(lo=lo, sizes=sizes, keys=keys, leaf_item=leaf_item, dense_limit=dense_limit, device=device)
        index._tokens_np = tok.copy()
        return index

    def add_items(self, tokens: np.ndarray) -> None:
        """Append items with token tuples int64 [m, L] (indices n_items .. n_items + m - 1), in place.

        Raises DataError (and leaves the index unchanged) when a tuple is already taken or the width differs.
        """
        old = getattr(self, "_tokens_np", None)
        if old is None:
            raise DataError("PrefixIndex.add_items needs an index built by PrefixIndex.from_codes")
        tokens = np.asarray(tokens, dtype=np.int64)
        if tokens.ndim != 2 or tokens.shape[1] != self.L:
            raise DataError(f"PrefixIndex.add_items: expected int [m, {self.L}] tokens, got {tokens.shape}")
        new = PrefixIndex.from_codes(np.concatenate([old, tokens]), dense_limit=self.dense_limit, device=self.device)
        self.__dict__.update(new.__dict__)

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
        if hasattr(self, "_tokens_np"):
            moved._tokens_np = self._tokens_np
        return moved

    @property
    def n_items(self) -> int:
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
