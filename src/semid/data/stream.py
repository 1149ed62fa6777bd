"""Bounded-memory loading of parquet interaction tables: record batches in, CSR ``Interactions`` out.

``semid.data.tables.load_table`` reads a whole table and turns its id columns into Python lists, which
for 10M interactions costs several GB. Here the file is read twice in record batches
(``pyarrow.dataset``): pass 1 assigns user / item codes (first appearance order, as ``load_table``)
and counts each user's interactions, so the CSR offsets are known; pass 2 writes every row's item code
straight into its final slot of the ``items`` array. Rows keep their file order within a user; when the
file is not already in time order within every user, a third pass puts every row's timestamp beside its
item and each user's slice is stably sorted by time, in blocks of users so the sort's scratch stays small.
Peak memory is the result plus one batch: while loading, item codes are int32 in the first half of the
result's int64 buffer and the timestamps, as uint32 offsets from the file's earliest one, in its second
half; the codes are widened in place at the end. Only timestamps that are not whole numbers or span more
than 2^32 units (e.g. nanosecond epochs over more than 4 s) take a separate 8-byte-a-row array for the sort.
The result equals ``load_table``'s on the same data (same user / item order, same ties).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from semid.data.types import Catalog, Interactions
from semid.data.validate import float_id_error
from semid.errors import DataError

log = logging.getLogger(__name__)
BATCH_ROWS = 1 << 14  # rows per record batch (~2 MB of temporaries each)
SORT_BLOCK = 1 << 18  # rows per block of users sorted together (bounds the argsort scratch)


def _batches(path: Path, columns: list[str], batch_rows: int):
    """(row count, iterator of record batches of ``columns``); one row group is decoded at a time."""
    import pyarrow.parquet as pq

    try:
        f = pq.ParquetFile(str(path))
    except (pa.ArrowInvalid, OSError) as e:
        raise DataError(f"{path}: cannot read the interaction table ({e})") from None
    names = f.schema_arrow.names
    for c in columns:
        if c not in names:
            raise DataError(f"{path}: no column {c!r}; columns are {names}. Pass the right name")
    # One reader per row group: a single reader over the whole file keeps every decoded row group's buffers
    # alive until it is exhausted (pyarrow 26: 101 MiB of Arrow memory for two columns of 10M rows, 3.7 MiB
    # row group by row group), which made peak memory grow with the file instead of staying one batch.
    def batches():
        for g in range(f.metadata.num_row_groups):
            yield from f.iter_batches(batch_size=batch_rows, row_groups=[g], columns=columns, use_threads=False)

    return f.metadata.num_rows, batches()


class _Codes:
    """Incremental first-appearance codes of string ids, fed one record batch at a time."""

    def __init__(self, path: Path, column: str, fixed: dict[str, int] | None = None):
        self.path, self.column = path, column
        self.codes: dict[str, int] = {} if fixed is None else fixed
        self.grow = fixed is None  # False: an item table fixed the codes; unknown ids get -1

    def encode(self, arr: pa.Array, row0: int) -> np.ndarray:
        """int64 [rows] codes of one batch column (rows from ``row0`` of the file, for error messages)."""
        if arr.null_count:
            bad = int(np.flatnonzero(arr.is_null().to_numpy(zero_copy_only=False))[0])
            raise DataError(f"{self.path}: column {self.column!r} is empty at row {row0 + bad + 1} "
                            f"({arr.null_count} empty in this part of the file); every row needs an id")
        if pa.types.is_floating(arr.type) and len(arr):  # as require_ids: a float id has no one text form
            raise float_id_error(str(self.path), self.column, None, arr[0].as_py(), f"row {row0 + 1}")
        if not pa.types.is_string(arr.type) and not pa.types.is_large_string(arr.type):
            arr = pc.cast(arr, pa.string())
        enc = pc.dictionary_encode(arr)
        values = enc.dictionary.to_pylist()  # this batch's distinct ids, first appearance order
        if "" in values:
            bad = int(np.flatnonzero(enc.indices.to_numpy() == values.index(""))[0])
            raise DataError(f"{self.path}: column {self.column!r} is an empty string at row {row0 + bad + 1}; "
                            "every row needs an id")
        if self.grow:
            lut = np.fromiter((self.codes.setdefault(v, len(self.codes)) for v in values), np.int64, len(values))
        else:
            lut = np.fromiter((self.codes.get(v, -1) for v in values), np.int64, len(values))
        return lut[enc.indices.to_numpy()]


def stream_interactions(
    path: str | Path,
    *,
    user_col: str = "user",
    item_col: str = "item",
    time_col: str | None = "timestamp",
    time_format: str = "",
    catalog: Catalog | None = None,
    strict: bool = False,
    batch_rows: int = BATCH_ROWS,
    progress: bool = True,
) -> tuple[Interactions, Catalog]:
    """(Interactions, Catalog) of a parquet interaction table, read in record batches.

    ``catalog``: the item table's catalog (items absent from it are dropped with a logged count, or an
    error when ``strict``); None builds one from the items in first appearance order. ``time_col``: sort
    key within a user (absent "timestamp" = file order). Same semantics as ``tables.load_table``.
    """
    from semid.data.tables import read_times
    from semid.progress import progress_bar

    path = Path(path).resolve()
    if not path.is_file():
        raise DataError(f"{path}: interaction table not found; pass the path of an existing .parquet file")
    import pyarrow.parquet as pq

    names = pq.ParquetFile(str(path)).schema_arrow.names
    if time_col is not None and time_col != "timestamp" and time_col not in names:
        raise DataError(f"{path}: no column {time_col!r} (time_col); columns are {names}")
    tcol = time_col if time_col is not None and time_col in names else None
    users = _Codes(path, user_col)
    items = _Codes(path, item_col, None if catalog is None else catalog.index_of())

    # Pass 1: user / item codes and per-user counts (users first seen on a dropped row are not coded).
    n_rows, it = _batches(path, [user_col, item_col], batch_rows)
    counts = np.zeros(1024, dtype=np.int64)
    row0, n_missing, missing_ex = 0, 0, []
    with progress_bar(f"read {path.name} (1/2)", total=n_rows, enabled=progress) as tick:
        for b in it:
            _, uc, keep = _codes(b, users, items, row0)
            if not keep.all():
                n_missing += int((~keep).sum())
                if len(missing_ex) < 5:
                    missing_ex += b.column(1).filter(pa.array(~keep)).to_pylist()[: 5 - len(missing_ex)]
            if len(users.codes) > len(counts):
                counts = np.concatenate([counts, np.zeros(max(len(counts), len(users.codes)), np.int64)])
            counts += np.bincount(uc, minlength=len(counts))
            row0 += b.num_rows
            tick(b.num_rows)
    if n_missing:
        msg = (f"{path}: {n_missing} interactions (e.g. {missing_ex}) reference items absent from the item table")
        if strict:
            raise DataError(msg + "; add them to the item table or pass strict=False to drop them")
        log.warning("%s; dropped them", msg)
    n_users = len(users.codes)
    counts = counts[:n_users]
    offsets = np.zeros(n_users + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    if n_users == 0:
        raise DataError(f"{path}: no interactions left to load; check the file and the item table")

    # Pass 2: each row's item code into its final slot; the time range, and whether the file is in order.
    n = int(offsets[-1])
    out = np.empty(n, dtype=np.int64)
    # int32 codes in the first half of out's bytes (widened in place at the end), so that a sort's uint32
    # timestamps fit in the second half: [n] int64 = [2n] int32 = codes [0, n) + times [n, 2n).
    narrow = len(items.codes) < 2**31
    dst = out.view(np.int32)[:n] if narrow else out
    fill = offsets[:-1].copy()  # next free slot per user
    last: np.ndarray | None = None  # last timestamp seen per user (order check)
    in_order, ts_dtype, t_lo, t_hi, whole = True, None, None, None, True
    cols = [user_col, item_col] + ([tcol] if tcol else [])
    first = None  # the time column's first value: it picks number vs ISO date for every batch
    for b, ic, uc, keep, row0 in _coded_batches(path, cols, batch_rows, users, items, f"read {path.name} (2/2)",
                                                progress):
        slots, order, su, start = _slots(uc, fill)
        dst[slots] = ic
        if not tcol:
            continue
        tb = b.column(2)
        if first is None and (pa.types.is_string(tb.type) or pa.types.is_large_string(tb.type)) and tb.null_count < len(tb):
            first = tb.drop_null()[0].as_py()
        t = read_times(pa.chunked_array([b.column(2)]), path, tcol, time_format, row0=row0, first=first)[keep]
        if len(t):
            lo, hi = t.min(), t.max()
            t_lo, t_hi = (lo, hi) if t_lo is None else (min(t_lo, lo), max(t_hi, hi))
            whole = whole and (np.issubdtype(t.dtype, np.integer) or bool((t == np.floor(t)).all()))
        if in_order:
            if last is None:
                low = np.iinfo(t.dtype).min if np.issubdtype(t.dtype, np.integer) else -np.inf
                last = np.full(n_users, low, dtype=t.dtype)
            # Still non-decreasing within every user, this batch included? Else a third pass sorts.
            st = t[order]  # grouped by user, file order within a user
            down = st[1:] < st[:-1]
            down[start[1:] - 1] = False  # across two users: no constraint
            ends = np.r_[start[1:] - 1, len(su) - 1]
            if down.any() or (st[start] < last[su[start]]).any():
                in_order, ts_dtype, last = False, t.dtype, None
            else:
                last[su[ends]] = st[ends]
    if not in_order:
        # Exact as uint32 offsets (monotone, so the same order and ties) when whole and within 2^32 units.
        if narrow and whole and int(t_hi) - int(t_lo) < 2**32:
            ts, shift = out.view(np.uint32)[n:], t_lo
        else:
            ts, shift = np.empty(n, dtype=ts_dtype), None
        _fill_times(path, cols, batch_rows, users, items, offsets, ts, shift, time_format, tcol, progress, first)
        _sort_segments(dst, ts, offsets)
        del ts
    if narrow:
        _widen(out)
    inter = Interactions(offsets=offsets, items=out, user_ids=np.array(list(users.codes), dtype=str))
    if catalog is None:
        catalog = Catalog(item_ids=np.array(list(items.codes), dtype=str))
    return inter, catalog


def _codes(b: pa.RecordBatch, users: _Codes, items: _Codes, row0: int):
    """(item codes, user codes, kept-row mask) of one batch; rows whose item the catalog lacks are dropped."""
    ic = items.encode(b.column(1), row0)
    keep = ic >= 0
    col = b.column(0) if keep.all() else b.column(0).filter(pa.array(keep))
    return ic[keep], users.encode(col, row0), keep


def _slots(uc: np.ndarray, fill: np.ndarray):
    """Final CSR slot of each row of a batch (its user's next free slot + its rank among the batch's rows of
    that user, file order) and advance ``fill``. Also returns the grouping (order, sorted users, group starts)."""
    order = np.argsort(uc, kind="stable")
    su = uc[order]
    start = np.flatnonzero(np.r_[True, su[1:] != su[:-1]])
    sizes = np.diff(np.r_[start, len(su)])
    slots = np.empty_like(order)
    slots[order] = fill[su] + (np.arange(len(su)) - np.repeat(start, sizes))
    fill[su[start]] += sizes  # one entry per user: no repeated index
    return slots, order, su, start


def _fill_times(path, cols, batch_rows, users, items, offsets, ts, shift, time_format, tcol, progress,
                first) -> None:
    """Pass 3 (files out of time order): every kept row's timestamp (minus ``shift`` when not None, cast to
    ``ts``'s dtype) into its slot of ``ts``; ``first`` as in pass 2."""
    from semid.data.tables import read_times

    fill = offsets[:-1].copy()
    for b, _, uc, keep, row0 in _coded_batches(path, cols, batch_rows, users, items, f"read {path.name} times",
                                               progress):
        t = read_times(pa.chunked_array([b.column(2)]), path, tcol, time_format, row0=row0, first=first)[keep]
        slots, *_ = _slots(uc, fill)
        ts[slots] = t if shift is None else (t - shift).astype(ts.dtype)


def _coded_batches(path, cols, batch_rows, users, items, label: str, progress: bool):
    """Yield (batch, item codes, user codes, kept-row mask, its first row's index in the file) of every batch
    that keeps a row, with a progress bar."""
    from semid.progress import progress_bar

    n_rows, it = _batches(path, cols, batch_rows)
    row0 = 0
    with progress_bar(label, total=n_rows, enabled=progress) as tick:
        for b in it:
            ic, uc, keep = _codes(b, users, items, row0)
            tick(b.num_rows)
            if len(uc):
                yield b, ic, uc, keep, row0
            row0 += b.num_rows


def _sort_segments(items: np.ndarray, ts: np.ndarray, offsets: np.ndarray) -> None:
    """Stable-sort each user's slice of ``items`` by ``ts`` in place, a block of users at a time."""
    n_users, u = len(offsets) - 1, 0
    while u < n_users:
        # the largest block of whole users within SORT_BLOCK rows (at least one user)
        v = max(u + 1, int(np.searchsorted(offsets, offsets[u] + SORT_BLOCK, side="right")) - 1)
        v = min(v, n_users)
        a, b = int(offsets[u]), int(offsets[v])
        seg = np.repeat(np.arange(v - u), np.diff(offsets[u : v + 1]))
        order = np.lexsort((ts[a:b], seg))  # stable: equal times keep file order
        items[a:b] = items[a:b][order]
        u = v


def _widen(out: np.ndarray, step: int = 1 << 16) -> None:
    """In place: the int32 codes in the first half of int64 ``out``'s bytes become ``out``'s values.

    Chunks go from the end down: writing ``out[a:b]`` overwrites the int32 slots [2a, 2b), which are the
    chunk itself (copied first) or slots at or beyond b, already widened."""
    src = out.view(np.int32)
    for b in range(len(out), 0, -step):
        a = max(0, b - step)
        out[a:b] = src[a:b].copy()


__all__ = ["stream_interactions"]
