"""Generic loader for interaction / item / embedding tables (parquet, CSV, JSONL), plus the helpers
every other loader shares: checked file access and "external ids -> CSR Interactions".

Conventions of ``load_table`` (documented choices):
- users keep their first-appearance order; a user's interactions are stably sorted by timestamp when
  the timestamp column exists, else kept in file order;
- with an item table the catalog is the item table (its row order, every row, even items nobody
  interacted with); interactions whose item is absent from it are dropped with a logged count, or
  raise with ``strict=True``; without one, the catalog is the interacted items in first-appearance order;
- sequences left empty are dropped with a logged count;
- timestamps, empty ids, duplicate item rows and vector columns are checked as ``semid.data.validate``
  documents: a bad value is an error naming its row, never a silent reinterpretation.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa

from semid.data.stream_features import vectors_from_arrow
from semid.data.types import Catalog, Dataset, Interactions
from semid.data.validate import (
    dedupe,
    describe_duplicates,
    find_bad_vectors,
    find_duplicates,
    parse_times,
    require_ids,
    vector_error,
)
from semid.errors import DataError

log = logging.getLogger(__name__)

TABLE_SUFFIXES = (".parquet", ".pq", ".csv", ".tsv", ".jsonl", ".ndjson", ".json")


# ----------------------------------------------------------------------------- shared helpers
def require_file(path: str | Path, what: str, fix: str = "") -> Path:
    """Return ``path`` as a Path if it is an existing file, else raise DataError naming it."""
    path = Path(path)
    if not path.is_file():
        hint = f"; {fix}" if fix else ""
        raise DataError(f"{path}: {what} not found{hint}")
    return path


def require_dir(path: str | Path, what: str) -> Path:
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: {what} not found; check the path")
    return path


def read_json_file(path: Path, *, as_pairs: bool = False) -> object:
    """Parse a JSON file. ``as_pairs`` turns every object into its list of (key, value) tuples in file
    order, so repeated keys can be seen (plain json.load keeps the last one silently)."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f, object_pairs_hook=list if as_pairs else None)
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: not valid JSON at line {e.lineno} column {e.colno} ({e.msg})") from None
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start}); is this the right file?") from None


def sequences_to_interactions(
    seqs: Sequence[Sequence[int]], user_ids: Sequence[str], *, source: str
) -> Interactions:
    """CSR Interactions from per-user index lists; empty sequences are dropped with a logged count."""
    keep = [i for i, s in enumerate(seqs) if len(s) > 0]
    if len(keep) < len(seqs):
        log.warning("%s: dropped %d empty sequences", source, len(seqs) - len(keep))
    return Interactions.from_lists([seqs[i] for i in keep], user_ids=[str(user_ids[i]) for i in keep])


def group_sequences(
    user_codes: np.ndarray, item_codes: np.ndarray, order_key: np.ndarray | None, n_users: int
) -> tuple[np.ndarray, np.ndarray]:
    """Group flat (user, item) rows into CSR per user code 0..n_users-1.

    Within a user, rows are stably sorted by ``order_key`` (e.g. timestamp) or kept in input order.
    Returns (offsets int64 [n_users + 1], items int64 [nnz]).
    """
    keys = (user_codes,) if order_key is None else (order_key, user_codes)
    order = np.lexsort(keys)  # lexsort is stable: ties keep input order
    items = item_codes[order].astype(np.int64)
    counts = np.bincount(user_codes, minlength=n_users)
    offsets = np.zeros(n_users + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return offsets, items


def _first_appearance_codes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(uniques in first-appearance order, code per value)."""
    uniq, first, inv = np.unique(values, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return uniq[order], rank[inv.reshape(-1)]


# ----------------------------------------------------------------------------- reading tables
def _read_jsonl(path: Path) -> pa.Table:
    import pyarrow.json as pj

    try:
        table = pj.read_json(path)
    except pa.ArrowInvalid:
        table = None  # re-scan line by line to name the bad line
    if table is not None:
        if table.num_rows == 0:
            raise DataError(f"{path}: no JSON objects (the file is empty); write one object per line")
        return table
    rows = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(
                    f"{path}: line {lineno} is not valid JSON ({e.msg}); each line must be one JSON object"
                ) from None
            if not isinstance(obj, dict):
                raise DataError(f"{path}: line {lineno} is a {type(obj).__name__}, expected a JSON object")
            rows.append(obj)
    if not rows:
        raise DataError(f"{path}: no JSON objects (the file is empty); write one object per line")
    try:
        return pa.Table.from_pylist(rows)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
        raise DataError(f"{path}: {_first_type_clash(rows) or f'rows have inconsistent column types ({e})'}; "
                        "every row must give a column the same kind of value") from None


def _kind(v) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    return type(v).__name__


def _first_type_clash(rows: list[dict]) -> str | None:
    """'column 'x' row 7 has a str ('abc'), row 1 a number' for the first value whose kind differs."""
    first: dict[str, tuple[int, str]] = {}
    for i, row in enumerate(rows):
        for k, v in row.items():
            if v is None:
                continue
            kind = _kind(v)
            if k not in first:
                first[k] = (i, kind)
            elif first[k][1] != kind:
                j, kj = first[k]
                return f"column {k!r} row {i + 1} has a {kind} ({v!r}), row {j + 1} a {kj}"
    return None


def read_table(path: str | Path, *, string_columns: Iterable[str] = (), what: str = "table",
               all_strings: bool = False) -> pa.Table:
    """Read a parquet / CSV / TSV / JSONL file into a pyarrow Table.

    ``string_columns`` are read as strings in CSV (so ids like "007" keep their leading zeros);
    ``all_strings`` reads every CSV column as text, with only an empty cell as missing (item fields:
    a year "2001" beside "1999.0" or a code "0012" stay as written, a title "NA" stays a title).
    A column name given twice is an error.
    """
    path = require_file(path, what, "pass the path of an existing .parquet, .csv or .jsonl file")
    suffix = path.suffix.lower()
    table = None
    try:
        if suffix in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            table = pq.read_table(path)
        elif suffix in (".csv", ".tsv"):
            table = _read_csv(path, "\t" if suffix == ".tsv" else ",", string_columns, all_strings)
        elif suffix in (".jsonl", ".ndjson", ".json"):
            table = _read_jsonl(path)
    except (pa.ArrowInvalid, OSError) as e:
        raise DataError(f"{path}: cannot read {what} ({e})") from None
    if table is None:
        raise DataError(f"{path}: unsupported {what} format {suffix!r}; use .parquet, .csv, .tsv or .jsonl")
    dups = find_duplicates(table.column_names)
    if dups:
        raise DataError(f"{path}: {describe_duplicates(dups, 'column names')} in the header; every column "
                        "needs its own name: rename or delete the repeated one")
    return table


def _read_csv(path: Path, delimiter: str, string_columns: Iterable[str], all_strings: bool) -> pa.Table:
    import csv

    import pyarrow.csv as pc

    strings = list(string_columns)
    convert = {}
    if all_strings:
        with open(path, encoding="utf-8-sig", newline="") as f:  # the header alone, to type every column
            strings = next(csv.reader(f, delimiter=delimiter), [])
        convert = {"null_values": [""], "strings_can_be_null": True}
    return pc.read_csv(
        path,
        parse_options=pc.ParseOptions(delimiter=delimiter),
        convert_options=pc.ConvertOptions(column_types={c: pa.string() for c in strings}, **convert),
    )


def row_label(path: Path):
    """Row index i -> how to find it in the file: CSV 'line i+2' (after the header), else 'row i+1'."""
    if path.suffix.lower() in (".csv", ".tsv"):
        return lambda i: f"line {i + 2}"
    return lambda i: f"row {i + 1}"


def _column(table: pa.Table, name: str, path: Path, role: str) -> pa.ChunkedArray:
    if not table.column_names:
        raise DataError(f"{path}: the table has no columns; is the file empty?")
    if name not in table.column_names:
        raise DataError(
            f"{path}: no column {name!r} ({role}); columns are {table.column_names}. "
            f"Pass the right name (e.g. {role}={table.column_names[0]!r})"
        )
    return table.column(name)


def _ids(col: pa.ChunkedArray, path: Path, name: str) -> np.ndarray:
    return require_ids(col.to_pylist(), where=str(path), column=name, row_label=row_label(path))


def read_times(col: pa.ChunkedArray, path: Path, name: str, time_format: str = "", *, row0: int = 0,
               first=None) -> np.ndarray:
    """Timestamp column -> sort key [N]: int64 as stored for integer columns (exact, even for ns epochs),
    else float64 seconds; see ``semid.data.validate`` for what is accepted. For one part of a streamed
    column: ``row0`` is its first row's index in the file (error messages), ``first`` the column's first
    value (it picks number vs ISO date for the whole column)."""
    if not time_format and pa.types.is_integer(col.type) and not col.null_count:
        try:
            return col.cast(pa.int64()).to_numpy()
        except pa.ArrowInvalid:  # uint64 beyond int64: fall back to float64
            pass
    if not time_format and pa.types.is_floating(col.type) and not col.null_count:
        ts = np.asarray(col.to_numpy(zero_copy_only=False), dtype=np.float64)
        if np.isfinite(ts).all():
            return ts
    if not time_format and pa.types.is_timestamp(col.type) and not col.null_count:
        return col.cast(pa.int64()).to_numpy()  # ticks of the column's own unit: exact, even sub-microsecond
    label = row_label(path)
    return parse_times(col.to_pylist(), where=str(path), column=name, time_format=time_format,
                       row_label=lambda i: label(row0 + i), first=first)


def _is_float_list(t: pa.DataType) -> bool:
    return (pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)) and (
        pa.types.is_floating(t.value_type)
    )


def _to_field(values: list) -> list:
    """Arrow column values -> catalog field entries (str, list[str] or None)."""
    out: list = []
    for v in values:
        if v is None:
            out.append(None)
        elif isinstance(v, (list, tuple)):
            vals = [str(x).strip() for x in v if x is not None and str(x).strip()]
            out.append(vals or None)
        else:
            s = str(v).strip()
            out.append(s or None)
    return out


# ----------------------------------------------------------------------------- embeddings
def read_embedding_file(
    path: str | Path,
    ids: str | Path | Sequence[str] | None = None,
    *,
    id_col: str = "item",
    column=None,
    duplicates: str = "error",
) -> tuple[np.ndarray, np.ndarray]:
    """Read item embeddings -> (ids str [M], float32 [M, D]).

    ``.npy`` needs ``ids``: a list, or a file with one id per line (``.txt``) or a JSON list (``.json``);
    when None, ``<stem>.ids.txt`` / ``<stem>.ids.json`` beside the .npy are tried. Parquet / JSONL
    need an id column (``id_col``) and one list<float> column (``column``, auto-detected when unique).
    """
    from semid.data import stream_features as sf  # bounded memory: memory maps, record batches

    path = require_file(path, "embedding file")
    if path.suffix == ".npy":
        mat = sf.load_npy_matrix(path)  # memory-mapped: rows are read when used
        if ids is None:
            cands = [path.with_name(path.stem + s) for s in (".ids.txt", ".ids.json")]
            found = [c for c in cands if c.is_file()]
            if not found:
                raise DataError(
                    f"{path}: no item-id list for this .npy; write one id per row to {cands[0]} "
                    "(one per line) or pass ids=..."
                )
            ids = found[0]
        if isinstance(ids, (str, Path)):
            ids_path = require_file(ids, "embedding id list")
            if ids_path.suffix == ".json":
                id_list = read_json_file(ids_path)
                if not isinstance(id_list, list):
                    raise DataError(f"{ids_path}: expected a JSON list of item ids")
            else:
                id_list = [  # utf-8-sig: a byte-order mark would otherwise stick to the first id
                    ln.strip() for ln in ids_path.read_text(encoding="utf-8-sig").splitlines() if ln.strip()
                ]
            src = ids_path
        else:
            id_list, src = list(ids), "ids"
        id_arr = require_ids(id_list, where=str(src), column="ids")
    elif path.suffix.lower() in (".parquet", ".pq"):
        id_arr, mat, column = sf.read_parquet_vectors(path, id_col=id_col, column=column)
        src = path
    else:
        table = read_table(path, string_columns=[id_col], what="embedding table")
        id_arr = _ids(_column(table, id_col, path, "id_col"), path, id_col)
        if column is None:
            cands = [f.name for f in table.schema if _is_float_list(f.type)]
            if len(cands) != 1:
                raise DataError(
                    f"{path}: expected exactly one list<float> column, found {cands}; pass column=<name>"
                )
            column = cands[0]
        col = _column(table, column, path, "column")
        mat, problems = find_bad_vectors(col.to_pylist())
        if problems:
            raise vector_error(problems, where=str(path), column=column, ids=id_arr)
        src = path
    if mat.ndim != 2:
        raise DataError(f"{path}: embeddings must be 2-D [items, dim], got shape {mat.shape}")
    if mat.shape[0] != len(id_arr):
        raise DataError(
            f"{path}: {mat.shape[0]} embedding rows but {len(id_arr)} item ids in {src}; "
            "they must match one to one"
        )
    if not np.issubdtype(mat.dtype, np.number) or np.issubdtype(mat.dtype, np.complexfloating):
        raise DataError(f"{path}: embeddings must be real numbers, got dtype {mat.dtype}")
    mat = sf.finite_float32(mat, where=str(path), ids=id_arr)  # float32 first: 1e300 must fail, not become inf
    keep = dedupe(id_arr.tolist(), duplicates, where=str(src), what="item ids in the embedding id list")
    if len(keep) == len(id_arr):  # no duplicate ids: no copy of the matrix
        return id_arr, mat
    return id_arr[keep], mat[keep]


def attach_embedding(catalog: Catalog, name: str, ids: np.ndarray, mat: np.ndarray, *, source: str) -> None:
    """Add ``mat`` rows to ``catalog.embeddings[name]`` aligned by item id; absent items get mask False.

    ``mat`` must be the caller's to give away: when its rows are the catalog's items in catalog order it
    becomes the catalog's matrix without a copy (otherwise rows are copied in blocks into a new matrix).
    """
    index = catalog.index_of()
    rows = np.asarray([index.get(i, -1) for i in ids.tolist()], dtype=np.int64)
    unknown = int((rows < 0).sum())
    if unknown and unknown == len(rows) and catalog.n_items:
        raise DataError(
            f"{source}: none of its {len(rows)} embedding ids is an item id (embedding ids e.g. "
            f"{ids[:3].tolist()}, item ids e.g. {catalog.item_ids[:3].tolist()}); ids match as exact text: "
            "check that the id list / id column names the same items as the interactions"
        )
    if unknown:
        shown = ids[rows < 0][:3].tolist()
        log.warning("%s: ignored %d embedding rows for items not in the catalog (e.g. %s)", source, unknown, shown)
    covered = len(rows) - unknown  # both readers dedupe the ids first
    if covered < catalog.n_items:  # a missing modality is allowed (mask False), but counted
        log.info("%s: %d of %d catalog items have no %r vector (mask False)", source,
                 catalog.n_items - covered, catalog.n_items, name)
    aligned = len(rows) == catalog.n_items and bool((rows == np.arange(len(rows))).all())
    if aligned and type(mat) is np.ndarray and mat.dtype == np.float32 and mat.flags.c_contiguous:
        # rows already in catalog order: the matrix (fresh from the reader, not reused) becomes the catalog's
        catalog.embeddings[name] = mat
        catalog.masks[name] = np.ones(catalog.n_items, dtype=bool)
        return
    full = np.zeros((catalog.n_items, mat.shape[1]), dtype=np.float32)
    mask = np.zeros(catalog.n_items, dtype=bool)
    step = 1 << 16  # rows copied per block: no second full-size temporary beside ``full``
    for s in range(0, len(rows), step):
        r = rows[s : s + step]
        full[r[r >= 0]] = mat[s : s + step][r >= 0]
    mask[rows[rows >= 0]] = True
    catalog.embeddings[name] = full
    catalog.masks[name] = mask


# ----------------------------------------------------------------------------- the table loader
def _item_catalog(items: str | Path, id_col: str, duplicates: str = "error") -> Catalog:
    path = Path(items)
    table = read_table(path, string_columns=[id_col], what="item table", all_strings=True)
    ids = _ids(_column(table, id_col, path, "item_id_col"), path, id_col)
    keep = dedupe(ids.tolist(), duplicates, where=f"{path}: column {id_col!r}", what="item ids")
    if len(keep) < len(ids):
        table, ids = table.take(pa.array(keep)), ids[keep]
    fields: dict[str, list] = {}
    embs: dict[str, np.ndarray] = {}
    for f in table.schema:
        if f.name == id_col:
            continue
        col = table.column(f.name)
        if _is_float_list(f.type):  # a vector column is an embedding modality, not text
            mat, problems = vectors_from_arrow(col)  # find_bad_vectors without Python lists
            if problems:
                raise vector_error(problems, where=str(path), column=f.name, ids=ids)
            embs[f.name] = mat
        else:
            fields[f.name] = _to_field(col.to_pylist())
    cat = Catalog(item_ids=ids, fields=fields)
    for name, mat in embs.items():
        attach_embedding(cat, name, ids, mat, source=str(path))
    return cat


def load_table(
    interactions: str | Path,
    items: str | Path | None = None,
    embeddings: str | Path | Mapping[str, str | Path | tuple] | None = None,
    *,
    user_col: str = "user",
    item_col: str = "item",
    time_col: str | None = "timestamp",
    item_id_col: str | None = None,
    strict: bool = False,
    time_format: str = "",
    duplicates: str = "error",
    name: str | None = None,
) -> Dataset:
    """Load a Dataset from generic tables.

    interactions: parquet/CSV/JSONL with ``user_col``, ``item_col`` and optionally ``time_col``.
    items:        optional item table: ``item_id_col`` (default ``item_col``) + any text / list columns
                  (-> ``catalog.fields``) and list<float> columns (-> ``catalog.embeddings``).
    embeddings:   a path, or {name: path | (npy_path, ids_path)}; see ``read_embedding_file``.
                  A bare path is named by its stem.
    strict:       raise instead of dropping interactions whose item is absent from the item table.
    time_format:  ``strptime`` format of string timestamps ("" = numbers or ISO-8601 only).
    duplicates:   repeated item ids in the item table / embedding ids: 'error' | 'first' | 'last'.
    """
    ipath = Path(interactions)
    if ipath.suffix.lower() in (".parquet", ".pq"):  # bounded memory: record batches (semid.data.stream)
        from semid.data.stream import stream_interactions

        catalog = _item_catalog(items, item_id_col or item_col, duplicates) if items is not None else None
        inter, catalog = stream_interactions(ipath, user_col=user_col, item_col=item_col, time_col=time_col,
                                             time_format=time_format, catalog=catalog, strict=strict)
        _attach_embeddings(catalog, embeddings, item_id_col or item_col, duplicates)
        return Dataset(name=name or ipath.stem, catalog=catalog, interactions=inter)
    table = read_table(ipath, string_columns=[user_col, item_col], what="interaction table")
    users = _ids(_column(table, user_col, ipath, "user_col"), ipath, user_col)
    item_vals = _ids(_column(table, item_col, ipath, "item_col"), ipath, item_col)
    ts = None
    if time_col is not None and time_col != "timestamp":  # an explicitly named column must exist
        _column(table, time_col, ipath, "time_col")
    if time_col is not None and time_col in table.column_names:
        ts = read_times(table.column(time_col), ipath, time_col, time_format)

    if items is not None:
        catalog = _item_catalog(items, item_id_col or item_col, duplicates)
        index = catalog.index_of()
        codes = np.asarray([index.get(i, -1) for i in item_vals.tolist()], dtype=np.int64)
        missing = codes < 0
        if missing.any():
            n_missing = int(missing.sum())
            examples = sorted(set(item_vals[missing].tolist()))[:5]
            msg = (
                f"{ipath}: {n_missing} interactions ({len(set(item_vals[missing].tolist()))} distinct items, "
                f"e.g. {examples}) reference items absent from the item table {items}"
            )
            if strict:
                raise DataError(msg + "; add them to the item table or pass strict=False to drop them")
            log.warning("%s; dropped them", msg)
            users, codes = users[~missing], codes[~missing]
            ts = None if ts is None else ts[~missing]
    else:
        uniq, codes = _first_appearance_codes(item_vals)
        catalog = Catalog(item_ids=uniq)

    user_uniq, user_codes = (
        _first_appearance_codes(users) if len(users) else (np.zeros(0, str), np.zeros(0, np.int64))
    )
    offsets, seq_items = group_sequences(user_codes, codes, ts, len(user_uniq))
    seqs = [seq_items[offsets[u] : offsets[u + 1]] for u in range(len(user_uniq))]
    # users whose every interaction was dropped vanish from user_uniq only if we recount them
    orig_users = set(_ids(table.column(user_col), ipath, user_col).tolist())
    n_vanished = len(orig_users) - len(user_uniq)
    if n_vanished:
        log.warning("%s: dropped %d users whose sequences became empty", ipath, n_vanished)
    inter = sequences_to_interactions(seqs, user_uniq, source=str(ipath))
    if inter.n_users == 0:
        raise DataError(f"{ipath}: no interactions left to load; check the file and the item table")

    _attach_embeddings(catalog, embeddings, item_id_col or item_col, duplicates)
    return Dataset(name=name or ipath.stem, catalog=catalog, interactions=inter)


def _attach_embeddings(catalog: Catalog, embeddings, id_col: str, duplicates: str) -> None:
    """Attach ``load_table``'s ``embeddings`` (a path, or {name: path | (npy_path, ids_path)}) to ``catalog``."""
    if embeddings is None:
        return
    specs = {Path(embeddings).stem: embeddings} if isinstance(embeddings, (str, Path)) else embeddings
    for ename, spec in specs.items():
        epath, eids = spec if isinstance(spec, tuple) else (spec, None)
        ids, mat = read_embedding_file(epath, eids, id_col=id_col, duplicates=duplicates)
        attach_embedding(catalog, ename, ids, mat, source=str(epath))
