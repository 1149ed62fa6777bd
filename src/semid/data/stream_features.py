"""Bounded-memory reading of item feature matrices: ``.npy`` memory-mapped, parquet vector columns in record
batches, Arrow list columns converted without Python lists.

``semid.data.validate.find_bad_vectors`` stacks a column of Python lists, which for a million 64-d vectors
means 64M Python floats (several GB). Here the vectors go from Arrow buffers into one preallocated
float32 [N, D] matrix, a record batch at a time, so the peak is the result plus one batch; a float32 ``.npy``
is memory-mapped and checked in blocks of rows. The checks and the error they raise are
``find_bad_vectors`` / ``finite_matrix``'s (same problems, same rows), which ``vectors_from_arrow`` is
tested against.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from semid.data.validate import require_ids, vector_error
from semid.errors import DataError

BATCH_ROWS = 1 << 12  # parquet rows per record batch (1 MB of 64-d float32)
BLOCK_ROWS = 1 << 16  # matrix rows per block of the finiteness check / cast


def _is_float_list(t: pa.DataType) -> bool:
    return (pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)) and (
        pa.types.is_floating(t.value_type)
    )


class _VectorSink:
    """Vectors fed one Arrow list array at a time into one float32 [n_rows, D] matrix.

    D is the first present row's length; rows of another length, null rows and rows with a null entry are
    recorded (lengths kept per row, 8 bytes each) and reported at ``finish`` as ``find_bad_vectors`` would.
    """

    def __init__(self, n_rows: int):
        self.n_rows = n_rows
        self.lens = np.zeros(n_rows, dtype=np.int64)
        self.missing = np.zeros(n_rows, dtype=bool)
        self.out: np.ndarray | None = None
        self.bad = False  # some row is missing or ragged: the matrix is not filled any more

    def feed(self, arr: pa.Array, row0: int) -> None:
        n = len(arr)
        sl = slice(row0, row0 + n)
        if pa.types.is_fixed_size_list(arr.type):
            lens = np.full(n, arr.type.list_size, dtype=np.int64)
        else:
            lens = pc.list_value_length(arr).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
        missing = arr.is_null().to_numpy(zero_copy_only=False) if arr.null_count else np.zeros(n, bool)
        values = arr.flatten()  # the present rows' entries, in order
        if values.null_count:  # a null entry makes its row missing
            parents = pc.list_parent_indices(arr).to_numpy(zero_copy_only=False)
            missing[parents[values.is_null().to_numpy(zero_copy_only=False)]] = True
        self.lens[sl], self.missing[sl] = lens, missing
        present = ~missing
        if self.out is None and present.any():
            self.out = np.empty((self.n_rows, int(lens[present][0])), dtype=np.float32)
        if self.bad or missing.any() or (self.out is not None and (lens != self.out.shape[1]).any()):
            self.bad = True
            return
        if self.out is not None:
            with np.errstate(over="ignore", invalid="ignore"):
                block = values.to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
            self.out[sl] = block.reshape(n, self.out.shape[1])

    def finish(self) -> tuple[np.ndarray | None, dict[str, list[int]]]:
        """(float32 [N, D] or None, {problem: row indices}) as ``find_bad_vectors``."""
        present = ~self.missing
        if self.bad:
            dim = Counter(self.lens[present].tolist()).most_common(1)[0][0] if present.any() else 0
            ragged = present & (self.lens != dim)
            problems: dict[str, list[int]] = {}
            first = [(int(np.argmax(m)), k, m) for k, m in (("missing", self.missing), ("ragged", ragged)) if m.any()]
            for _, kind, m in sorted(first, key=lambda t: t[0]):  # the kind seen first in row order comes first
                problems[kind] = np.flatnonzero(m).tolist()
            return None, problems
        mat = self.out if self.out is not None else np.zeros((self.n_rows, 0), dtype=np.float32)
        bad = nonfinite_rows(mat)
        return mat, ({"non-finite": bad.tolist()} if len(bad) else {})


def nonfinite_rows(mat: np.ndarray, block_rows: int = BLOCK_ROWS) -> np.ndarray:
    """Row indices of ``mat`` (N, D) holding NaN / inf, checked in blocks (scratch: one block of bools)."""
    bad = [s + np.flatnonzero(~np.isfinite(mat[s : s + block_rows]).all(axis=1))
           for s in range(0, len(mat), block_rows)]
    return np.concatenate(bad) if bad else np.zeros(0, np.int64)


def vectors_from_arrow(col: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray | None, dict[str, list[int]]]:
    """An Arrow list<float> column -> (float32 [N, D] or None, {problem: rows}), ``find_bad_vectors``'s contract
    without building Python lists (peak: the result plus one chunk's values)."""
    chunks = col.chunks if isinstance(col, pa.ChunkedArray) else [col]
    sink, row = _VectorSink(len(col)), 0
    for chunk in chunks:
        sink.feed(chunk, row)
        row += len(chunk)
    return sink.finish()


def finite_float32(mat: np.ndarray, *, where: str, ids, block_rows: int = BLOCK_ROWS) -> np.ndarray:
    """``semid.data.validate.finite_matrix`` in blocks of rows: a float32 matrix (a memory map too) is checked
    in place; another dtype is cast into one new float32 matrix block by block. Same error."""
    mat = np.asarray(mat) if not isinstance(mat, np.memmap) else mat
    out = mat
    if mat.dtype != np.float32:
        out = np.empty(mat.shape, dtype=np.float32)
        with np.errstate(over="ignore", invalid="ignore"):
            for s in range(0, len(mat), block_rows):
                out[s : s + block_rows] = mat[s : s + block_rows]
    bad = nonfinite_rows(out, block_rows) if out.ndim == 2 else np.zeros(0, np.int64)
    if len(bad):
        raise DataError(
            f"{where}: NaN/inf in {len(bad)} rows (first row {int(bad[0])}, item {str(ids[bad[0]])!r}) "
            f"after casting to float32; fix or drop those rows"
        )
    return out


def load_npy_matrix(path: Path) -> np.ndarray:
    """A ``.npy`` matrix memory-mapped read-only (``np.load(mmap_mode='r')``): rows are read when used."""
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise DataError(f"{path}: cannot read .npy ({e})") from None


def read_parquet_vectors(path: Path, *, id_col: str, column: str | None = None,
                         batch_rows: int = BATCH_ROWS) -> tuple[np.ndarray, np.ndarray, str]:
    """(ids str [M], float32 [M, D], column) of a parquet embedding table, read in record batches.

    Peak memory: the result plus a few batches of decoded pages (~40 MB at 64-d), whatever the row groups.
    ``column``: the list<float> column (auto-detected when the table has exactly one). Empty ids and
    missing / ragged / non-finite vectors raise DataError naming the file, column, row and item.
    """
    import pyarrow.parquet as pq

    try:
        f = pq.ParquetFile(str(path), buffer_size=1 << 20, pre_buffer=False)
    except (pa.ArrowInvalid, OSError) as e:
        raise DataError(f"{path}: cannot read embedding table ({e})") from None
    schema = f.schema_arrow
    if id_col not in schema.names:
        raise DataError(f"{path}: no column {id_col!r} (id_col); columns are {schema.names}. "
                        f"Pass the right name (e.g. id_col={schema.names[0]!r})")
    if column is None:
        cands = [fl.name for fl in schema if _is_float_list(fl.type)]
        if len(cands) != 1:
            raise DataError(f"{path}: expected exactly one list<float> column, found {cands}; pass column=<name>")
        column = cands[0]
    if column not in schema.names:
        raise DataError(f"{path}: no column {column!r} (column); columns are {schema.names}")
    if not _is_float_list(schema.field(column).type):
        raise DataError(f"{path}: column {column!r} is {schema.field(column).type}, not a list of floats")
    n = f.metadata.num_rows
    sink, ids, row = _VectorSink(n), [], 0
    # A buffered stream without pre-buffering decodes pages as the batches need them, so the transient is
    # about one batch whatever the file's row-group size; reading whole row groups (or the default
    # pre-buffered ``iter_batches``) held ~9x a row group's floats (75 MB for 32k x 64 rows).
    for batch in f.iter_batches(batch_size=batch_rows, columns=[id_col, column], use_threads=False):
        r0 = row
        ids.append(require_ids(batch.column(id_col).to_pylist(), where=str(path), column=id_col,
                               row_label=lambda i, r0=r0: f"row {r0 + i + 1}"))
        sink.feed(batch.column(column), row)
        row += batch.num_rows
        del batch
        pa.default_memory_pool().release_unused()  # hand the decoded pages back now (allocator caches)
    id_arr = np.concatenate(ids) if ids else np.zeros(0, str)
    mat, problems = sink.finish()
    if problems:
        raise vector_error(problems, where=str(path), column=column, ids=id_arr)
    return id_arr, mat, column


__all__ = ["vectors_from_arrow", "nonfinite_rows", "finite_float32", "load_npy_matrix", "read_parquet_vectors"]
