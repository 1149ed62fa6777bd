"""Live catalog of a served run: items added and retired without a restart, persisted atomically.

Adding: the run's tokenizer codes the new items (``tokenizer.transform(new_catalog) -> int64 [m, L_raw]``),
collisions are resolved against the live catalog (``assign_codes``: the smallest free extra digit, like
``semid.tokenizers.ids.resolve_collisions``, within the model's vocabulary), then the model's prefix index
is patched in place (``PrefixIndex.add_items``). Retiring clears the item's availability flag (masked in
every search) and drops its leaf from the index (``PrefixIndex.remove_items``); its id and code are never
reused.

State lives in ``<run_dir>/serve/catalog.json`` (one file, written with ``semid.io`` so a crash leaves the
old or the new state): the added items with their codes, the retired ids, the catalog version and the
*SID table* the codes extend (hash of the run's codes and codebook sizes). On start a file written for
another tokenizer (a re-run, other codes) is refused instead of being applied to the wrong IDs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

from semid.data.types import Catalog
from semid.errors import CheckpointError, DataError, SemidError
from semid.io import read_json, write_json

FORMAT = 1
MAX_MESSAGE = 300  # errors quote at most this many characters of anything a client sent


class CatalogConflict(SemidError):
    """The request cannot be applied to this catalog / model (HTTP 409)."""


class CatalogInputError(SemidError):
    """The request's items are malformed for this tokenizer (HTTP 422)."""


def short(text: object, n: int = 64) -> str:
    s = str(text)
    return s if len(s) <= n else s[: n - 3] + "..."


def sid_table(codes: np.ndarray | None, sizes: list[int] | None, item_ids: np.ndarray) -> dict:
    """Identity of the ID table a live catalog extends: sha256 of the codes (or of the item ids when the
    model has no codes), the codebook sizes and the number of items."""
    h = hashlib.sha256()
    if codes is not None:
        h.update(np.ascontiguousarray(codes, dtype=np.int64).tobytes())
        h.update(repr(list(sizes or [])).encode())
    else:
        h.update("\n".join(item_ids.tolist()).encode())
    return {"format": FORMAT, "sha256": h.hexdigest(), "n_items": int(len(item_ids)),
            "codebook_sizes": list(sizes) if sizes is not None else None}


def assign_codes(raw: np.ndarray, live: np.ndarray, sizes: list[int]) -> np.ndarray:
    """Raw codes int64 [m, L_raw] of new items -> unique codes [m, L] against the live codes [n, L].

    L_raw == L: a new code equal to a live one (or another new one) is a conflict. L_raw == L - 1 (the
    tokenizer appends a disambiguation digit): each item gets the smallest digit no live or earlier new
    item with the same raw code holds; a digit >= the model's last codebook size cannot be emitted.
    """
    raw = np.asarray(raw, dtype=np.int64)
    n, L = live.shape
    m, L_raw = raw.shape if raw.ndim == 2 else (len(raw), -1)
    if L_raw not in (L, L - 1):
        raise CatalogInputError(f"tokenizer.transform returned codes of shape {raw.shape}; the model's IDs have "
                                f"{L} positions ({L} or {L - 1} raw positions expected)")
    bad = (raw < 0) | (raw >= np.asarray(sizes[:L_raw])[None, :])
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise CatalogConflict(f"new item {r} has code {int(raw[r, c])} at position {c}, outside the model's "
                              f"codebook of {sizes[c]}; the model cannot emit it (retrain to cover new codes)")
    taken = {tuple(row) for row in live.tolist()}
    out = np.empty((m, L), dtype=np.int64)
    if L_raw == L:
        for r, row in enumerate(raw.tolist()):
            if tuple(row) in taken:
                raise CatalogConflict(f"new item {r} gets code {row}, already held by another item, and this "
                                      "model's IDs have no disambiguation digit")
            taken.add(tuple(row))
            out[r] = row
        return out
    used: dict[tuple, set[int]] = {}
    for row in taken:
        used.setdefault(row[:-1], set()).add(row[-1])
    for r, row in enumerate(raw.tolist()):
        digits = used.setdefault(tuple(row), set())
        d = next(i for i in range(len(digits) + 1) if i not in digits)
        if d >= sizes[-1]:
            raise CatalogConflict(f"new item {r} collides with {len(digits)} items on {row}; the model's last "
                                  f"position has only {sizes[-1]} digits, so it cannot emit another")
        digits.add(d)
        out[r] = [*row, d]
    return out


class LiveCatalog:
    """Ids, fields, codes and availability of every served item; see module docstring."""

    def __init__(
        self,
        base: Catalog,
        *,
        codes: np.ndarray | None,
        codebook_sizes: list[int] | None,
        tokenizer=None,
        extend_model: Callable[[np.ndarray], None] | None = None,
        retire_model: Callable[[np.ndarray], None] | None = None,
        path: str | Path | None = None,
    ) -> None:
        self.base = base
        self.ids: list[str] = base.item_ids.tolist()
        self.index = {x: i for i, x in enumerate(self.ids)}
        self.codes = None if codes is None else np.asarray(codes, dtype=np.int64)
        self.sizes = None if codebook_sizes is None else [int(s) for s in codebook_sizes]
        self.tokenizer = tokenizer
        self.extend_model = extend_model  # codes [m, L] of new items -> the model's index gets them
        self.retire_model = retire_model  # item indices -> dropped from the model's index
        self.path = None if path is None else Path(path)
        self.available = np.ones(len(self.ids), dtype=bool)
        self.version = 0
        self.added: list[dict] = []
        self.table = sid_table(self.codes, self.sizes, base.item_ids)
        if self.path is not None and self.path.is_file():
            self._reload()

    @property
    def n_items(self) -> int:
        return len(self.ids)

    def lookup(self, ids: list[str]) -> tuple[np.ndarray, list[str]]:
        """External ids -> (item indices int64 [len], unknown ids)."""
        unknown = [i for i in ids if i not in self.index]
        return np.array([self.index.get(i, -1) for i in ids], dtype=np.int64), unknown

    def fields(self, i: int) -> dict:
        if i < len(self.base.item_ids):
            return {k: v[i] for k, v in self.base.fields.items()}
        return dict(self.added[i - len(self.base.item_ids)].get("fields") or {})

    def code(self, i: int) -> list[int] | None:
        return None if self.codes is None else self.codes[i].tolist()

    # ------------------------------------------------------------------ edits
    def add(self, items: list[dict]) -> list[dict]:
        """items: [{"id": str, "fields": {name: value}, "embeddings": {name: [floats]}}] -> [{"id", "index", "code"}]."""
        if self.codes is None or self.extend_model is None:
            raise CatalogConflict("this model ranks a fixed item table and cannot serve items added at run time; "
                                  "retrain it with the new items")
        transform = getattr(self.tokenizer, "transform", None)
        if transform is None:
            raise CatalogConflict(f"tokenizer {short(getattr(self.tokenizer, 'name', type(self.tokenizer).__name__))!r} "
                                  "cannot code unseen items (it has no transform); use a tokenizer that "
                                  "does (fusid, rqvae, rqkmeans) or retrain with the new items")
        ids = [str(it["id"]) for it in items]
        if len(set(ids)) != len(ids):
            raise CatalogInputError("the request names the same item id twice")
        clash = [i for i in ids if i in self.index]
        if clash:
            raise CatalogConflict(f"item ids already in the catalog (ids are never reused, even retired): "
                                  f"{[short(c) for c in clash[:5]]}")
        new_cat = self._new_catalog(items, ids)
        try:
            raw = np.asarray(transform(new_cat), dtype=np.int64)
        except (SemidError, ValueError, KeyError, TypeError, IndexError) as e:
            raise CatalogInputError(f"the tokenizer could not code the new items: {short(e, MAX_MESSAGE)}") from None
        codes = assign_codes(raw, self.codes, self.sizes)
        records = [{"id": x, "code": c, "fields": it.get("fields") or {}}
                   for x, c, it in zip(ids, codes.tolist(), items, strict=True)]
        self._commit(added=records, retired=[], version=self.version + 1)  # persist first: crash-safe
        self.extend_model(codes)
        self._apply_added(records, codes)
        self.version += 1
        start = self.n_items - len(ids)
        return [{"id": x, "index": start + r, "code": c} for r, (x, c) in enumerate(zip(ids, codes.tolist(), strict=True))]

    def retire(self, item_id: str) -> int:
        """Mark one item unavailable (masked in every search); returns its index."""
        i = self.index[item_id]
        if self.available[i]:
            self._commit(added=[], retired=[item_id], version=self.version + 1)
            self.available[i] = False
            if self.retire_model is not None:
                self.retire_model(np.array([i]))
            self.version += 1
        return i

    # ------------------------------------------------------------------ helpers
    def _new_catalog(self, items: list[dict], ids: list[str]) -> Catalog:
        names = sorted({k for it in items for k in (it.get("fields") or {})})
        fields = {k: [(it.get("fields") or {}).get(k) for it in items] for k in names}
        emb_names = sorted({k for it in items for k in (it.get("embeddings") or {})})
        embeddings, masks = {}, {}
        for k in emb_names:
            rows = [(it.get("embeddings") or {}).get(k) for it in items]
            dims = {len(r) for r in rows if r is not None}
            if len(dims) != 1:
                raise CatalogInputError(f"embedding {short(k)!r}: rows must all have the same length")
            d = dims.pop()
            embeddings[k] = np.array([r if r is not None else [0.0] * d for r in rows], dtype=np.float32)
            masks[k] = np.array([r is not None for r in rows])
        try:
            return Catalog(item_ids=np.array(ids), fields=fields, embeddings=embeddings, masks=masks)
        except DataError as e:
            raise CatalogInputError(short(e, MAX_MESSAGE)) from None

    def _apply_added(self, records: list[dict], codes: np.ndarray) -> None:
        for rec in records:
            self.index[rec["id"]] = len(self.ids)
            self.ids.append(rec["id"])
        self.added.extend(records)
        self.codes = np.concatenate([self.codes, codes])
        self.available = np.concatenate([self.available, np.ones(len(records), dtype=bool)])

    def _retired(self) -> list[str]:
        return [self.ids[i] for i in np.flatnonzero(~self.available)]

    def _commit(self, *, added: list[dict], retired: list[str], version: int) -> None:
        if self.path is None:
            return
        write_json(self.path, {"sid_table": self.table, "version": version, "added": self.added + added,
                               "retired": self._retired() + retired})

    def _reload(self) -> None:
        state = read_json(self.path)
        try:
            table, added, retired, version = state["sid_table"], state["added"], state["retired"], state["version"]
        except (KeyError, TypeError):
            raise CheckpointError(f"{self.path}: not a semid live catalog (needs sid_table, added, retired, "
                                  "version); move it away to serve the run's own catalog") from None
        if table != self.table:
            raise CheckpointError(
                f"{self.path}: written for another ID table (sha256 {short(table.get('sha256'), 16)}, "
                f"{table.get('n_items')} items) than this run's tokenizer (sha256 {self.table['sha256'][:13]}..., "
                f"{self.table['n_items']} items); its codes would name the wrong items. Move the file away to "
                "serve the run's own catalog"
            )
        if added:
            if self.codes is None or self.extend_model is None:
                raise CheckpointError(f"{self.path}: holds added items but this model cannot serve them")
            codes = np.asarray([r["code"] for r in added], dtype=np.int64)
            if codes.shape[1] != self.codes.shape[1]:
                raise CheckpointError(f"{self.path}: codes of {codes.shape[1]} positions, the model has "
                                      f"{self.codes.shape[1]}")
            self.extend_model(codes)
            self._apply_added(added, codes)
        for x in retired:
            if x not in self.index:
                raise CheckpointError(f"{self.path}: retires unknown item {short(x)!r}")
            self.available[self.index[x]] = False
        if self.retire_model is not None and not self.available.all():
            self.retire_model(np.flatnonzero(~self.available))
        self.version = int(version)
