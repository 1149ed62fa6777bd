"""Checks every loader applies at the data boundary, written once so ``load_*`` (which raise on the first
fatal problem) and ``semid data check`` (which reports them all) agree: timestamps, empty ids,
duplicate keys and dense vectors.

Each check has a ``find_*`` form that returns what is wrong without raising (for the checker) and a
form that raises a DataError naming the file, the column / row and the fix (for the loaders).

Documented choices:
- timestamps are numbers, ISO-8601 dates / datetimes, or strings in one explicit ``time_format``
  (``datetime.strptime`` syntax, e.g. ``%m/%d/%Y``); dates become seconds since the Unix epoch
  (naive ones read as UTC). Anything else is an error naming the first bad row: one bad value never
  turns the column into text, and text never decides the order;
- duplicate keys (items of an item table, users, JSON object keys) are an error by default; the
  ``duplicates`` policy ``first`` / ``last`` keeps that occurrence and logs how many were dropped.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timezone

import numpy as np

from semid.errors import DataError

log = logging.getLogger(__name__)

DUPLICATE_POLICIES = ("error", "first", "last")
N_EXAMPLES = 5  # offenders named per problem
TIME_FIX = (
    "timestamps must be numbers or ISO-8601 dates (2020-01-02, 2020-01-02T03:04:05); "
    "fix the row or pass --data.time_format (e.g. '%m/%d/%Y')"
)


def check_policy(duplicates: str) -> str:
    if duplicates not in DUPLICATE_POLICIES:
        raise DataError(f"duplicates={duplicates!r}: use one of {list(DUPLICATE_POLICIES)}")
    return duplicates


# ----------------------------------------------------------------------------- timestamps
def _number(v) -> float | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float, np.integer, np.floating)):
        f = float(v)
        return f if math.isfinite(f) else None
    try:
        f = float(str(v).strip())
    except ValueError:
        return None
    return f if math.isfinite(f) else None


def _epoch(d: datetime) -> float:
    if d.tzinfo is None:
        d = d.replace(tzinfo=timezone.utc)
    return d.timestamp()


def _iso(v) -> float | None:
    if isinstance(v, datetime):
        return _epoch(v)
    if hasattr(v, "isoformat") and not isinstance(v, str):  # datetime.date from a date32 column
        return _epoch(datetime(v.year, v.month, v.day))
    try:
        return _epoch(datetime.fromisoformat(str(v).strip()))
    except ValueError:
        return None


def _strptime(fmt: str):
    def parse(v) -> float | None:
        if isinstance(v, datetime):
            return _epoch(v)
        try:
            return _epoch(datetime.strptime(str(v).strip(), fmt))
        except ValueError:
            return None

    return parse


def find_bad_times(values: Sequence, time_format: str = "", first=None) -> tuple[np.ndarray, list[int]]:
    """Parse timestamps -> (float64 [N] seconds, indices of unparseable values).

    With ``time_format`` every value must match it. Otherwise the first non-empty value picks the
    kind: a number (then all must be numbers) or an ISO-8601 date (then all must be). None is bad.
    ``first``: the value that picks the kind when ``values`` is one part of a longer column (its first).
    """
    out = np.zeros(len(values), dtype=np.float64)
    if time_format:
        parse = _strptime(time_format)
    else:
        if first is None:
            first = next((v for v in values if v is not None), None)
        parse = _number if first is None or _number(first) is not None else _iso
    bad: list[int] = []
    for i, v in enumerate(values):
        t = None if v is None else parse(v)
        if t is None:
            bad.append(i)
        else:
            out[i] = t
    return out, bad


def parse_times(values: Sequence, *, where: str, column: str, time_format: str = "", row_label=None,
                first=None) -> np.ndarray:
    """``find_bad_times`` that raises naming the first bad row; ``row_label(i)`` words row i (e.g. 'line 7')."""
    ts, bad = find_bad_times(values, time_format, first)
    if bad:
        i = bad[0]
        label = row_label(i) if row_label else f"row {i + 1}"
        want = f"values in the format {time_format!r}" if time_format else TIME_FIX
        raise DataError(
            f"{where}: column {column!r} {label} has {values[i]!r}, not a timestamp "
            f"({len(bad)} bad rows in all); {want}"
        )
    return ts


# ----------------------------------------------------------------------------- ids
def find_empty_ids(values: Sequence) -> list[int]:
    """Indices of ids that are None or blank (an empty CSV field must not become a real id '')."""
    return [i for i, v in enumerate(values) if v is None or not str(v).strip()]


def require_ids(values: Sequence, *, where: str, column: str, row_label=None) -> np.ndarray:
    """ids as str [N]; DataError naming the first empty one, or the first floating-point one."""
    bad = find_empty_ids(values)
    if bad:
        label = row_label(bad[0]) if row_label else f"row {bad[0] + 1}"
        raise DataError(
            f"{where}: column {column!r} is empty in {len(bad)} rows (first: {label}); every row needs "
            "an id: fill it in or delete the row"
        )
    # A float id has no one text form: 1.0 reads as "1" from one format and "1.0" from another, and
    # JSON readers merge 1 with 1.0; refusing it is the only way two files of one dataset cannot disagree.
    if any(issubclass(t, (float, np.floating)) for t in set(map(type, values))):  # one C-speed pass
        floats = [i for i, v in enumerate(values) if isinstance(v, (float, np.floating))]
        raise float_id_error(where, column, len(floats), values[floats[0]],
                             row_label(floats[0]) if row_label else f"row {floats[0] + 1}")
    return np.asarray([str(v) for v in values], dtype=object).astype(str)


def float_id_error(where: str, column: str, count: int | None, example, label: str) -> DataError:
    """The error for an id column of floats (``count`` None: a streamed column, not counted whole)."""
    n = "" if count is None else f"{count} "
    return DataError(
        f"{where}: column {column!r} holds {n}floating-point ids (first: {example!r} at {label}); ids "
        "must be text or integers (a float has no single text form: 1.0 may read as '1' or '1.0'). Write the "
        "column as integers or strings"
    )


def find_duplicates(keys: Sequence) -> dict[str, int]:
    """{key: occurrences} for keys seen more than once, in order of first repeat."""
    if len(set(keys)) == len(keys):  # the common case, at C speed
        return {}
    seen: set = set()
    dups: dict[str, int] = {}
    for k in keys:
        if k in seen:
            dups[k] = dups.get(k, 1) + 1
        else:
            seen.add(k)
    return dups


def describe_duplicates(dups: dict, what: str) -> str:
    shown = ", ".join(f"{k!r} x{n}" for k, n in list(dups.items())[:N_EXAMPLES])
    more = f" and {len(dups) - N_EXAMPLES} more" if len(dups) > N_EXAMPLES else ""
    return f"{len(dups)} duplicate {what} ({shown}{more})"


def dedupe(keys: Sequence, duplicates: str, *, where: str, what: str) -> np.ndarray:
    """Indices (ascending) of the rows to keep under the ``duplicates`` policy.

    'error' raises naming the first few repeated keys; 'first' / 'last' keep that occurrence of each
    key and log how many rows were dropped.
    """
    check_policy(duplicates)
    keys = list(keys)
    dups = find_duplicates(keys)
    if not dups:
        return np.arange(len(keys))
    if duplicates == "error":
        raise DataError(
            f"{where}: {describe_duplicates(dups, what)}; each must appear once: fix the file, or pass "
            "--data.duplicates=first (keep the first occurrence) or =last (keep the last)"
        )
    chosen: dict = {}
    for i, k in enumerate(keys):
        if duplicates == "last" or k not in chosen:
            chosen[k] = i
    keep = np.sort(np.fromiter(chosen.values(), dtype=np.int64, count=len(chosen)))
    log.warning(
        "%s: %s; kept the %s occurrence of each, dropped %d rows",
        where, describe_duplicates(dups, what), duplicates, len(keys) - len(keep),
    )
    return keep


# ----------------------------------------------------------------------------- vectors
def find_bad_vectors(values: Sequence, dtype=np.float32) -> tuple[np.ndarray | None, dict[str, list[int]]]:
    """Stack list-valued rows into ``dtype`` [N, D] -> (matrix or None, {problem: row indices}).

    Problems: 'missing' (None row or None entry), 'ragged' (length differs from row 0's),
    'non-finite' (NaN / inf after the cast to ``dtype``, so float64 1e300 counts as inf in float32).
    """
    problems: dict[str, list[int]] = {}
    lengths = Counter(len(v) for v in values if v is not None)
    dim = lengths.most_common(1)[0][0] if lengths else 0  # the usual length; the others are "ragged"
    for i, v in enumerate(values):
        if v is None or any(x is None for x in v):
            problems.setdefault("missing", []).append(i)
        elif len(v) != dim:
            problems.setdefault("ragged", []).append(i)
    if problems:
        return None, problems
    with np.errstate(over="ignore", invalid="ignore"):
        mat = np.asarray(list(values), dtype=np.float64).astype(dtype).reshape(len(values), dim or 0)
    bad = np.flatnonzero(~np.isfinite(mat).all(axis=1))
    if len(bad):
        problems["non-finite"] = bad.tolist()
    return mat, problems


def vector_error(problems: dict[str, list[int]], *, where: str, column: str, ids: Sequence) -> DataError:
    kind, rows = next(iter(problems.items()))
    r = rows[0]
    item = f" (item {str(ids[r])!r})" if ids is not None and r < len(ids) else ""
    fix = {
        "missing": "give every row a full vector or drop those rows",
        "ragged": "every vector must have the same length as the others",
        "non-finite": "fix or drop those rows (values must be finite in float32)",
    }[kind]
    return DataError(
        f"{where}: column {column!r} has {kind} vectors in {len(rows)} rows (first: row {r + 1}{item}); {fix}"
    )


def finite_matrix(mat: np.ndarray, *, where: str, ids: Sequence, dtype=np.float32) -> np.ndarray:
    """Cast to ``dtype`` first, then check finiteness, so overflow in the cast is caught."""
    with np.errstate(over="ignore", invalid="ignore"):
        out = np.asarray(mat).astype(dtype, copy=False)
    bad = np.flatnonzero(~np.isfinite(out).all(axis=1)) if out.ndim == 2 else np.zeros(0, np.int64)
    if len(bad):
        raise DataError(
            f"{where}: NaN/inf in {len(bad)} rows (first row {int(bad[0])}, item {str(ids[bad[0]])!r}) "
            f"after casting to {np.dtype(dtype).name}; fix or drop those rows"
        )
    return out
