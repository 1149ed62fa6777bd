"""Amazon Reviews loader for the LC-Rec / LETTER / MQL4GRec preprocessing: ``<D>.inter.json``
({user_index: [item_index, ...]} in time order), optional ``<D>.item2id`` / ``<D>.user2id``
(``external_id<TAB>index``), optional ``<D>.item.json`` ({item_index: {title, description, brand,
categories}}) and optional ``<D>.index_<name>.json`` code files (-> ``catalog.codes[name]``).

Choices (documented):
- catalog row i is the file's item index i, so shipped code / embedding files stay aligned; with
  item2id the catalog has one row per line (item ids = ASINs), else ``max index + 1`` rows (ids = the
  index strings). Items nobody interacted with stay in the catalog;
- users are ordered by user index; user ids are the reviewer ids from user2id when present, else the
  index strings (so row u is user index u in both cases when indices are 0..U-1);
- the MQL4GRec layout (same files plus ``<D>.{train,valid,test}.inter``) loads the same way;
- a user key repeated in inter.json (plain ``json.load`` would keep the last list silently) or a reviewer
  id at two indices of user2id is an error; ``duplicates='first'|'last'`` keeps that user's first / last
  list and logs how many were dropped. An ASIN at two indices of item2id is always an error (indices are
  positional: code and embedding files are aligned to them, so no row can be dropped).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from semid.data.codes import read_code_index
from semid.data.tables import read_json_file, sequences_to_interactions
from semid.data.types import Catalog, Dataset
from semid.data.validate import check_policy, dedupe, describe_duplicates, find_duplicates
from semid.errors import DataError

log = logging.getLogger(__name__)

TEXT_FIELDS = ("title", "description", "brand")


def _find_inter(path: Path) -> tuple[Path, str]:
    if path.is_file():
        if not path.name.endswith(".inter.json"):
            raise DataError(f"{path}: expected a <D>.inter.json file or the folder holding it")
        return path, path.name[: -len(".inter.json")]
    if not path.is_dir():
        raise DataError(f"{path}: Amazon data folder not found; check the path")
    found = sorted(path.glob("*.inter.json"))
    if len(found) != 1:
        raise DataError(
            f"{path}: expected exactly one <D>.inter.json, found {[f.name for f in found]}; pass the file path"
        )
    return found[0], found[0].name[: -len(".inter.json")]


def _read_id_map(path: Path) -> dict[int, str]:
    out: dict[int, str] = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 2 or not parts[1].strip().isdigit():
                raise DataError(
                    f"{path}: line {lineno} must be 'external_id<TAB>index', got {line.strip()!r}"
                )
            idx = int(parts[1])
            if idx in out:
                raise DataError(f"{path}: index {idx} appears twice (line {lineno})")
            if not parts[0].strip():
                raise DataError(f"{path}: line {lineno} has an empty external id for index {idx}; fill it in")
            out[idx] = parts[0]
    if sorted(out) != list(range(len(out))):
        raise DataError(f"{path}: indices must be exactly 0..{len(out) - 1} (one line per index)")
    return out


def _reject_duplicate_items(path: Path, id_map: dict[int, str]) -> None:
    dups = find_duplicates([id_map[i] for i in range(len(id_map))])
    if dups:
        first = next(iter(dups))
        at = [i for i in range(len(id_map)) if id_map[i] == first]
        raise DataError(
            f"{path}: {describe_duplicates(dups, 'ASINs')}; e.g. {first!r} is at indices {at}. Each item needs "
            "one index (code and embedding files are aligned to them): fix the preprocessing output"
        )


def _text(v) -> str | None:
    if v is None:
        return None
    if isinstance(v, list):  # some dumps store description as a list of paragraphs
        v = " ".join(str(x) for x in _flatten(v))
    s = " ".join(str(v).split())
    return s or None


def _flatten(v) -> list:
    if isinstance(v, list):
        return [y for x in v for y in _flatten(x)]
    return [v]


def _categories(v) -> list[str] | None:
    if v is None:
        return None
    parts = [str(x) for x in _flatten(v)] if isinstance(v, list) else str(v).split(",")
    out: list[str] = []
    for p in parts:
        p = " ".join(p.split())
        if p and p not in out:
            out.append(p)
    return out or None


def _as_dicts(v):
    """Undo ``read_json_file(as_pairs=True)`` below the top level: pair lists back to dicts."""
    if isinstance(v, list) and v and all(isinstance(x, tuple) for x in v):
        return {k: _as_dicts(x) for k, x in v}
    if isinstance(v, list):
        return [_as_dicts(x) for x in v]
    return v


def _item_fields(path: Path, n: int, asin_index: dict[str, int], duplicates: str) -> dict[str, list]:
    pairs = read_json_file(path, as_pairs=True)
    if not isinstance(pairs, list) or (pairs and not isinstance(pairs[0], tuple)):
        raise DataError(
            f"{path}: expected a JSON object {{item_index: {{title, description, brand, categories}}}}"
        )
    fields: dict[str, list] = {k: [None] * n for k in (*TEXT_FIELDS, "categories")}
    rows = []
    for key, meta in pairs:
        if str(key).isdigit():
            idx = int(key)
        elif key in asin_index:
            idx = asin_index[key]
        else:
            raise DataError(f"{path}: key {key!r} is neither an item index nor an ASIN from item2id")
        if idx >= n:
            raise DataError(f"{path}: item index {idx} is outside the catalog of {n} items")
        if isinstance(meta, list) and all(isinstance(x, tuple) for x in meta):  # an object ({} included)
            meta = {k: _as_dicts(x) for k, x in meta}
        rows.append((idx, key, meta))
    # an item keyed twice (same key, or its index and its ASIN) would silently keep the last entry
    keep = dedupe([idx for idx, _, _ in rows], duplicates, where=str(path), what="item entries (by index)")
    for idx, key, meta in (rows[i] for i in keep):
        if not isinstance(meta, dict):
            raise DataError(
                f"{path}: item {key!r} must map to an object with title/description/brand/categories"
            )
        for k in TEXT_FIELDS:
            fields[k][idx] = _text(meta.get(k))
        fields["categories"][idx] = _categories(meta.get("categories"))
    return fields


def is_index_list(v) -> bool:
    """A list of non-negative ints (bools excluded); type() per element runs in C, so 500k items take ms."""
    return isinstance(v, list) and (not v or (set(map(type, v)) == {int} and min(v) >= 0))


def _user_lists(inter_path: Path, duplicates: str) -> list[tuple[int, list[int]]]:
    """(user index, item list) sorted by index; a repeated key (``"7"`` twice, or ``"7"`` and ``"07"``)
    is handled per the ``duplicates`` policy instead of json's silent last-one-wins."""
    pairs = read_json_file(inter_path, as_pairs=True)
    if not isinstance(pairs, list) or (pairs and not isinstance(pairs[0], tuple)):
        raise DataError(f"{inter_path}: expected a JSON object {{user_index: [item_index, ...]}}")
    users: list[tuple[int, list[int]]] = []
    for key, seq in pairs:
        if not str(key).isdigit():
            raise DataError(f"{inter_path}: user key {key!r} is not a non-negative integer index")
        if not is_index_list(seq):
            raise DataError(f"{inter_path}: user {key!r} must map to a list of non-negative item indices")
        users.append((int(key), seq))
    keep = dedupe([u for u, _ in users], duplicates, where=str(inter_path), what="user keys")
    users = [users[i] for i in keep]
    users.sort(key=lambda t: t[0])
    return users


def load_amazon_lcrec(path: str | Path, *, duplicates: str = "error", name: str | None = None) -> Dataset:
    """Load an LC-Rec / MQL4GRec style Amazon folder (or its ``<D>.inter.json``); see the module docstring."""
    check_policy(duplicates)
    inter_path, dname = _find_inter(Path(path))
    folder = inter_path.parent
    users = _user_lists(inter_path, duplicates)
    if not users:
        raise DataError(f"{inter_path}: no users; expected {{user_index: [item_index, ...]}} with at least one user")
    max_item = max((max(s) for _, s in users if s), default=-1)

    item2id_path = folder / f"{dname}.item2id"
    if item2id_path.is_file():
        id_map = _read_id_map(item2id_path)
        _reject_duplicate_items(item2id_path, id_map)
        n = len(id_map)
        if max_item >= n:
            raise DataError(f"{inter_path}: item index {max_item} is not in {item2id_path} ({n} items)")
        item_ids = [id_map[i] for i in range(n)]
    else:
        n = max_item + 1
        item_ids = [str(i) for i in range(n)]

    user_map = None
    user2id_path = folder / f"{dname}.user2id"
    if user2id_path.is_file():
        user_map = _read_id_map(user2id_path)
        missing = [u for u, _ in users if u not in user_map]
        if missing:
            raise DataError(f"{inter_path}: user index {missing[0]} is not in {user2id_path}")
    user_ids = [user_map[u] if user_map else str(u) for u, _ in users]
    if user_map:  # one reviewer at two indices: keep one of their lists per the policy
        keep = dedupe(user_ids, duplicates, where=str(user2id_path), what="reviewer ids")
        users, user_ids = [users[i] for i in keep], [user_ids[i] for i in keep]

    fields: dict[str, list] = {}
    item_json = folder / f"{dname}.item.json"
    if item_json.is_file():
        fields = _item_fields(item_json, n, {a: i for i, a in enumerate(item_ids)}, duplicates)

    catalog = Catalog(item_ids=np.asarray(item_ids), fields=fields)
    for code_path in sorted(folder.glob(f"{dname}.index_*.json")):
        cname = code_path.name[len(f"{dname}.index_") : -len(".json")]
        codes, sizes = read_code_index(code_path, n_items=n, duplicates=duplicates)
        catalog.codes[cname] = codes
        catalog.code_sizes[cname] = sizes
        n_missing = int((codes < 0).any(axis=1).sum())
        if n_missing:
            log.info("%s: %d of %d items have no codes (rows set to -1)", code_path, n_missing, n)

    inter = sequences_to_interactions([s for _, s in users], user_ids, source=str(inter_path))
    return Dataset(name=name or dname, catalog=catalog, interactions=inter)
