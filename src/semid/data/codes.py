"""Discrete code tuples as an item modality: read MQL4GRec/LC-Rec ``<D>.index_*.json`` files (or
integer parquet / npy arrays) into int64 [N, L], and turn tuples into concatenated one-hot features
(and back) so a code tuple can feed any encoder that takes dense item features.

Codebook sizes: for integer arrays, ``max + 1`` per level. For ``<a_k>``-style tokens the files come
from a quantizer whose codebook size is a power of two (MQL4GRec uses 256 per level) but a level may
not use its last codes, so the size is ``max + 1`` rounded up to the next power of two.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from semid.errors import ConfigError, DataError

_TOKEN = re.compile(r"^<([A-Za-z]+)_(\d+)>$")


def _next_pow2(n: int) -> int:
    return 1 << max(int(n) - 1, 0).bit_length()


def _parse_token(tok, path: Path, key: str) -> tuple[str | None, int]:
    if isinstance(tok, (int, np.integer)) and not isinstance(tok, bool):
        return None, int(tok)
    if isinstance(tok, str):
        m = _TOKEN.match(tok.strip())
        if m:
            return m.group(1), int(m.group(2))
        if tok.strip().isdigit():
            return None, int(tok)
    raise DataError(
        f"{path}: item {key!r} has code token {tok!r}; expected '<a_12>'-style tokens or integers"
    )


def _read_json_index(path: Path, n_items: int | None, duplicates: str) -> tuple[np.ndarray, list[int]]:
    from semid.data.tables import read_json_file
    from semid.data.validate import dedupe

    pairs = read_json_file(path, as_pairs=True)  # pairs: a repeated key must not silently win
    if not isinstance(pairs, list) or not pairs or not isinstance(pairs[0], tuple):
        raise DataError(f"{path}: expected a non-empty JSON object {{item_index: [code tokens]}}")
    keys = [int(k) if str(k).isdigit() else k for k, _ in pairs]
    keep = dedupe(keys, duplicates, where=str(path), what="item keys")
    obj = dict(pairs[i] for i in keep)
    parsed: dict[int, list[int]] = {}
    prefixes: list[str | None] | None = None
    tokenised = False
    for key, toks in obj.items():
        if not str(key).isdigit():
            raise DataError(f"{path}: key {key!r} is not an item index (non-negative integer)")
        if not isinstance(toks, list) or not toks:
            raise DataError(f"{path}: item {key!r} has {toks!r}; expected a list of code tokens")
        pairs = [_parse_token(t, path, key) for t in toks]
        pre = [p for p, _ in pairs]
        if prefixes is None:
            prefixes = pre
        elif len(pre) != len(prefixes):
            raise DataError(f"{path}: item {key!r} has {len(pre)} code levels, others have {len(prefixes)}")
        tokenised = tokenised or any(p is not None for p in pre)
        parsed[int(key)] = [v for _, v in pairs]
    n = max(parsed) + 1 if n_items is None else n_items
    if max(parsed) >= n:
        raise DataError(f"{path}: item index {max(parsed)} is outside the catalog of {n} items")
    codes = np.full((n, len(prefixes)), -1, dtype=np.int64)
    for i, v in parsed.items():
        codes[i] = v
    maxes = codes.max(axis=0)
    sizes = [_next_pow2(m + 1) if tokenised else int(m + 1) for m in maxes]
    return codes, sizes


def read_code_index(
    path: str | Path, *, n_items: int | None = None, duplicates: str = "error"
) -> tuple[np.ndarray, list[int]]:
    """Read code tuples -> (codes int64 [N, L] with -1 rows for items without codes, sizes per level).

    Accepts ``{item_index: ["<a_170>", "<b_224>", ...]}`` JSON (any number of levels and prefix letters;
    plain integers also work), ``.npy`` int [N, L], or parquet with either a list<int> column ``codes``
    (plus optional ``item`` index column) or one integer column per level. ``n_items`` pads to a catalog size.
    """
    from semid.data.tables import require_file

    path = require_file(path, "code index file")
    if path.suffix == ".json":
        return _read_json_index(path, n_items, duplicates)
    if path.suffix == ".npy":
        codes = np.load(path, allow_pickle=False)
        rows = None
    elif path.suffix in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        rows = (
            np.asarray(table.column("item").to_pylist(), dtype=np.int64)
            if "item" in table.column_names
            else None
        )
        if "codes" in table.column_names:
            rows_ = table.column("codes").to_pylist()
            lens = {len(r) if r is not None else -1 for r in rows_}
            if len(lens) > 1:
                first = next(i for i, r in enumerate(rows_) if r is None or len(r) != len(rows_[0] or ()))
                raise DataError(
                    f"{path}: column 'codes' has tuples of different lengths or missing ones (row {first + 1} has "
                    f"{rows_[first]!r}, row 1 {rows_[0]!r}); every item needs the same number of code levels"
                )
            codes = np.asarray(rows_)
        else:
            cols = [c for c in table.column_names if c != "item"]
            codes = (
                np.stack([np.asarray(table.column(c).to_pylist()) for c in cols], axis=1) if cols else None
            )
        if codes is None:
            raise DataError(
                f"{path}: no code columns; expect a list<int> column 'codes' or one column per level"
            )
    else:
        raise DataError(f"{path}: unsupported code file {path.suffix!r}; use .json, .npy or .parquet")
    if codes.ndim != 2 or not np.issubdtype(codes.dtype, np.integer):
        raise DataError(
            f"{path}: codes must be an integer array [items, levels], got {codes.dtype} {codes.shape}"
        )
    codes = codes.astype(np.int64)
    if rows is not None:
        n = int(rows.max()) + 1 if n_items is None else n_items
        full = np.full((n, codes.shape[1]), -1, dtype=np.int64)
        full[rows] = codes
        codes = full
    elif n_items is not None and n_items != len(codes):
        raise DataError(f"{path}: {len(codes)} code rows but the catalog has {n_items} items")
    sizes = [int(m) + 1 for m in codes.max(axis=0)]
    return codes, sizes


def level_decay_weights(decay: float, n_levels: int) -> list[float]:
    """Per-level one-hot scales ``[1, decay, decay**2, ...]`` for ``codes_to_onehot``; decay in (0, 1]."""
    if not 0.0 < decay <= 1.0:
        raise ConfigError(f"code_level_decay must be in (0, 1], got {decay}")
    return [decay**lvl for lvl in range(n_levels)]


def codes_to_onehot(codes: np.ndarray, sizes: list[int], weights: list[float] | None = None) -> np.ndarray:
    """Concatenated per-level one-hots: int [N, L] -> float32 [N, sum(sizes)].

    Level l occupies columns ``[sum(sizes[:l]), sum(sizes[:l+1]))`` and its 1 is scaled by ``weights[l]``
    (default 1). Rows with any missing code (-1) are all zeros.
    """
    codes = np.asarray(codes, dtype=np.int64)
    if codes.ndim != 2 or codes.shape[1] != len(sizes):
        raise DataError(f"codes shape {codes.shape} does not match {len(sizes)} code sizes")
    w = np.ones(len(sizes), dtype=np.float32) if weights is None else np.asarray(weights, dtype=np.float32)
    if len(w) != len(sizes):
        raise DataError(f"got {len(w)} weights for {len(sizes)} code levels")
    if (codes >= np.asarray(sizes)).any():
        raise DataError(f"a code exceeds its level's codebook size {sizes}")
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    out = np.zeros((len(codes), int(sum(sizes))), dtype=np.float32)
    present = (codes >= 0).all(axis=1)
    rows = np.flatnonzero(present)
    for lvl in range(len(sizes)):
        out[rows, offsets[lvl] + codes[rows, lvl]] = w[lvl]
    return out


def onehot_to_codes(features: np.ndarray, sizes: list[int]) -> np.ndarray:
    """Inverse of ``codes_to_onehot``: argmax per level block; all-zero rows -> -1."""
    features = np.asarray(features)
    if features.ndim != 2 or features.shape[1] != sum(sizes):
        raise DataError(f"features shape {features.shape} does not match code sizes summing to {sum(sizes)}")
    out = np.empty((len(features), len(sizes)), dtype=np.int64)
    start = 0
    for lvl, s in enumerate(sizes):
        out[:, lvl] = features[:, start : start + s].argmax(axis=1)
        start += s
    out[~(features != 0).any(axis=1)] = -1
    return out
