"""RecBole atomic-file loader: ``<D>.inter`` (and ``<D>.item``) TSVs with typed headers
``name:type`` (types token, token_seq, float, float_seq), plus ``read_recbole_split`` for the
pre-split ``<D>.{train,valid,test}.inter`` files (sequential form ``item_id_list:token_seq``).

Choices (documented):
- interaction form (``user_id``, ``item_id`` [, ``timestamp``]): a user's sequence is their rows
  stably sorted by timestamp (file order without one); users keep first-appearance order;
- sequential form (``item_id_list:token_seq`` + ``item_id``): each row is (history, target); a user's
  rows, in file order, are stitched into one sequence: a row that holds the whole past replaces it, a row
  whose history is capped at a window appends its target (so no row's target is lost), and a row that does
  not continue its user's earlier rows is an error naming its line;
  when ``<D>.inter`` is absent, the ``<D>.test.inter`` file of a pre-split dataset is used instead;
- with ``<D>.item`` the catalog is that file (its row order); interactions with items absent from it
  are dropped with a logged count (``strict=True`` raises). Without it the items are the interacted
  tokens, ordered numerically when all are integers (so index == token for re-indexed datasets),
  else by first appearance;
- item fields: token / float -> str, token_seq / float_seq -> list[str]; ``item_id`` is the id;
- an empty user / item token is an error naming its line; an item_id listed twice in ``<D>.item`` is an
  error (``duplicates='first'|'last'`` keeps one row); timestamps are numbers, ISO-8601 or ``time_format``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from semid.data.tables import group_sequences, sequences_to_interactions
from semid.data.types import Catalog, Dataset
from semid.data.validate import dedupe, parse_times, require_ids
from semid.errors import DataError

log = logging.getLogger(__name__)

_TYPES = ("token", "token_seq", "float", "float_seq")


def _read_atomic(path: Path) -> tuple[list[str], list[str], list[list[str]], list[int]]:
    """(names, types, rows of raw strings, their line numbers) of a RecBole atomic TSV."""
    if not path.is_file():
        raise DataError(f"{path}: RecBole atomic file not found")
    with open(path, encoding="utf-8") as f:
        header = f.readline().rstrip("\n").rstrip("\r").split("\t")
        names, types = [], []
        for h in header:
            if ":" not in h:
                raise DataError(f"{path}: header field {h!r} must be 'name:type' (type one of {_TYPES})")
            n, t = h.rsplit(":", 1)
            if t not in _TYPES:
                raise DataError(f"{path}: header field {h!r} has unknown type {t!r}; use one of {_TYPES}")
            names.append(n)
            types.append(t)
        rows = []
        for lineno, line in enumerate(f, 2):
            line = line.rstrip("\n").rstrip("\r")
            if not line:
                continue
            parts = line.split("\t")
            if len(parts) != len(names):
                raise DataError(
                    f"{path}: line {lineno} has {len(parts)} tab-separated fields, header has {len(names)}"
                )
            rows.append((lineno, parts))
    return names, types, [p for _, p in rows], [n for n, _ in rows]


def _col(names: list[str], path: Path, *cands: str) -> int:
    for c in cands:
        if c in names:
            return names.index(c)
    raise DataError(f"{path}: no {' / '.join(cands)} column in header {names}")


_SPLITS = (".train.inter", ".valid.inter", ".test.inter")


def _find(path: Path, suffix: str) -> tuple[Path, str]:
    """(folder, dataset name) from a folder or one of its files."""
    if path.is_file():
        for s in (*_SPLITS, ".inter", ".item"):
            if path.name.endswith(s):
                return path.parent, path.name[: -len(s)]
        raise DataError(f"{path}: not a RecBole atomic file (.inter / .item)")
    if not path.is_dir():
        raise DataError(f"{path}: RecBole data folder not found; check the path")
    found = sorted(path.glob(f"*{suffix}"))
    if suffix == ".inter":
        found = [p for p in found if not p.name.endswith(_SPLITS)]
    if len(found) != 1:
        raise DataError(
            f"{path}: expected exactly one <D>{suffix}, found {[p.name for p in found]}; pass the file"
        )
    return path, found[0].name[: -len(suffix)]


def read_recbole_split(path: str | Path) -> dict[str, list[tuple[str, list[str], str]]]:
    """Read ``<D>.{train,valid,test}.inter`` -> {split: [(user token, history tokens, target token), ...]}.

    Rows keep file order. ``path`` is the folder or any of the three files.
    """
    folder, dname = _find(Path(path), ".test.inter")
    out = {}
    for split in ("train", "valid", "test"):
        f = folder / f"{dname}.{split}.inter"
        names, types, rows, _ = _read_atomic(f)
        ui = _col(names, f, "user_id", "session_id")
        hi = _col(names, f, "item_id_list")
        ti = _col(names, f, "item_id")
        if types[hi] != "token_seq":
            raise DataError(f"{f}: item_id_list must be token_seq, header says {types[hi]}")
        out[split] = [(r[ui], r[hi].split(), r[ti]) for r in rows]
    return out


def _item_catalog(path: Path, duplicates: str) -> Catalog:
    names, types, rows, lines = _read_atomic(path)
    ii = _col(names, path, "item_id")
    ids = require_ids([r[ii] for r in rows], where=str(path), column="item_id", row_label=lambda i: f"line {lines[i]}")
    keep = dedupe(ids.tolist(), duplicates, where=f"{path}: item_id", what="item ids")
    rows, ids = [rows[i] for i in keep], [str(ids[i]) for i in keep]
    fields = {}
    for j, (n, t) in enumerate(zip(names, types, strict=True)):
        if j == ii:
            continue
        if t.endswith("_seq"):
            fields[n] = [r[j].split() or None for r in rows]
        else:
            fields[n] = [r[j].strip() or None for r in rows]
    return Catalog(item_ids=np.asarray(ids, dtype=str), fields=fields)


def _order_tokens(tokens: list[str]) -> list[str]:
    uniq = list(dict.fromkeys(tokens))
    if all(t.isdigit() for t in uniq):
        uniq.sort(key=int)
    return uniq


def _stitch(seq: list[str], history: list[str], target: str, *, where: str) -> list[str]:
    """A user's sequence so far, extended by one sequential-form row (history, target), in file order.

    A row whose history + target starts with the sequence so far replaces it (an uncapped producer: each
    row holds the whole past); a row whose history is the tail of the sequence appends its target (a
    producer that caps histories at a window: every row past the window has the same length, and only
    its target is new); a row already inside the sequence adds nothing. Anything else is not one sequence.
    """
    full = history + [target]
    if full[: len(seq)] == seq:
        return full
    if not history or seq[len(seq) - len(history):] == history:
        return seq + [target]
    if any(seq[i : i + len(full)] == full for i in range(len(seq) - len(full) + 1)):
        return seq
    raise DataError(
        f"{where}: this row's history {history[-3:]} (last 3 items) does not continue the earlier rows of its "
        f"user, which end {seq[-3:]}; rows of one user must follow each other in time order"
    )


def load_recbole(
    path: str | Path,
    *,
    strict: bool = False,
    time_format: str = "",
    duplicates: str = "error",
    name: str | None = None,
) -> Dataset:
    """Load RecBole atomic files (folder or ``<D>.inter``) as a Dataset; see the module docstring."""
    path = Path(path)
    if path.is_dir() and not [p for p in path.glob("*.inter") if not p.name.endswith(_SPLITS)]:
        folder, dname = _find(path, ".test.inter")  # pre-split only: test rows hold the full sequences
        inter_path = folder / f"{dname}.test.inter"
    else:
        folder, dname = _find(path, ".inter")
        inter_path = path if path.is_file() else folder / f"{dname}.inter"
    names, types, rows, lines = _read_atomic(inter_path)
    ui = _col(names, inter_path, "user_id", "session_id")
    ii = _col(names, inter_path, "item_id")
    if not rows:
        raise DataError(f"{inter_path}: no interaction rows")
    at_line = lambda i: f"line {lines[i]}"  # noqa: E731
    require_ids([r[ui] for r in rows], where=str(inter_path), column=names[ui], row_label=at_line)
    require_ids([r[ii] for r in rows], where=str(inter_path), column="item_id", row_label=at_line)

    if "item_id_list" in names:  # sequential form: stitch each user's (history, target) rows into one sequence
        hi = names.index("item_id_list")
        best: dict[str, list[str]] = {}
        for k, r in enumerate(rows):
            best[r[ui]] = _stitch(best.get(r[ui], []), r[hi].split(), r[ii], where=f"{inter_path}: {at_line(k)}")
        users = list(best)
        flat_u = np.repeat(np.arange(len(users)), [len(best[u]) for u in users])
        flat_i = [t for u in users for t in best[u]]
        ts = None
    else:
        user_tok = [r[ui] for r in rows]
        users = list(dict.fromkeys(user_tok))
        uidx = {u: k for k, u in enumerate(users)}
        flat_u = np.asarray([uidx[u] for u in user_tok], dtype=np.int64)
        flat_i = [r[ii] for r in rows]
        ts = None
        if "timestamp" in names:
            tj = names.index("timestamp")
            ts = parse_times([r[tj] for r in rows], where=str(inter_path), column="timestamp",
                             time_format=time_format, row_label=at_line)

    item_file = folder / f"{dname}.item"
    if item_file.is_file():
        catalog = _item_catalog(item_file, duplicates)
        index = catalog.index_of()
        codes = np.asarray([index.get(t, -1) for t in flat_i], dtype=np.int64)
        missing = codes < 0
        if missing.any():
            msg = (
                f"{inter_path}: {int(missing.sum())} interactions reference items absent from {item_file} "
                f"(e.g. {sorted({flat_i[k] for k in np.flatnonzero(missing)[:5]})})"
            )
            if strict:
                raise DataError(msg + "; add them to the .item file or pass strict=False to drop them")
            log.warning("%s; dropped them", msg)
    else:
        order = _order_tokens(flat_i)
        catalog = Catalog(item_ids=np.asarray(order, dtype=str))
        index = {t: k for k, t in enumerate(order)}
        codes = np.asarray([index[t] for t in flat_i], dtype=np.int64)
        missing = np.zeros(len(codes), dtype=bool)

    keep = ~missing
    offsets, items = group_sequences(flat_u[keep], codes[keep], None if ts is None else ts[keep], len(users))
    seqs = [items[offsets[u] : offsets[u + 1]] for u in range(len(users))]
    inter = sequences_to_interactions(seqs, users, source=str(inter_path))
    return Dataset(name=name or dname, catalog=catalog, interactions=inter)
