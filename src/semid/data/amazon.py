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
- the MQL4GRec layout (same files plus ``<D>.{train,valid,test}.inter``) loads the same way.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from semid.data.codes import read_code_index
from semid.data.tables import read_json_file, sequences_to_interactions
from semid.data.types import Catalog, Dataset
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
            out[idx] = parts[0]
    if sorted(out) != list(range(len(out))):
        raise DataError(f"{path}: indices must be exactly 0..{len(out) - 1} (one line per index)")
    return out


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


def _item_fields(path: Path, n: int, asin_index: dict[str, int]) -> dict[str, list]:
    obj = read_json_file(path)
    if not isinstance(obj, dict):
        raise DataError(
            f"{path}: expected a JSON object {{item_index: {{title, description, brand, categories}}}}"
        )
    fields: dict[str, list] = {k: [None] * n for k in (*TEXT_FIELDS, "categories")}
    for key, meta in obj.items():
        if str(key).isdigit():
            idx = int(key)
        elif key in asin_index:
            idx = asin_index[key]
        else:
            raise DataError(f"{path}: key {key!r} is neither an item index nor an ASIN from item2id")
        if idx >= n:
            raise DataError(f"{path}: item index {idx} is outside the catalog of {n} items")
        if not isinstance(meta, dict):
            raise DataError(
                f"{path}: item {key!r} must map to an object with title/description/brand/categories"
            )
        for k in TEXT_FIELDS:
            fields[k][idx] = _text(meta.get(k))
        fields["categories"][idx] = _categories(meta.get("categories"))
    return fields


def load_amazon_lcrec(path: str | Path, *, name: str | None = None) -> Dataset:
    """Load an LC-Rec / MQL4GRec style Amazon folder (or its ``<D>.inter.json``); see the module docstring."""
    inter_path, dname = _find_inter(Path(path))
    folder = inter_path.parent
    raw = read_json_file(inter_path)
    if not isinstance(raw, dict):
        raise DataError(f"{inter_path}: expected a JSON object {{user_index: [item_index, ...]}}")
    users: list[tuple[int, list[int]]] = []
    for key, seq in raw.items():
        if not str(key).isdigit():
            raise DataError(f"{inter_path}: user key {key!r} is not a non-negative integer index")
        if not isinstance(seq, list) or not all(isinstance(i, int) and i >= 0 for i in seq):
            raise DataError(f"{inter_path}: user {key!r} must map to a list of non-negative item indices")
        users.append((int(key), seq))
    users.sort(key=lambda t: t[0])
    max_item = max((max(s) for _, s in users if s), default=-1)

    item2id_path = folder / f"{dname}.item2id"
    if item2id_path.is_file():
        id_map = _read_id_map(item2id_path)
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

    fields: dict[str, list] = {}
    item_json = folder / f"{dname}.item.json"
    if item_json.is_file():
        fields = _item_fields(item_json, n, {a: i for i, a in enumerate(item_ids)})

    catalog = Catalog(item_ids=np.asarray(item_ids), fields=fields)
    for code_path in sorted(folder.glob(f"{dname}.index_*.json")):
        cname = code_path.name[len(f"{dname}.index_") : -len(".json")]
        codes, sizes = read_code_index(code_path, n_items=n)
        catalog.codes[cname] = codes
        catalog.code_sizes[cname] = sizes
        n_missing = int((codes < 0).any(axis=1).sum())
        if n_missing:
            log.info("%s: %d of %d items have no codes (rows set to -1)", code_path, n_missing, n)

    inter = sequences_to_interactions([s for _, s in users], user_ids, source=str(inter_path))
    return Dataset(name=name or dname, catalog=catalog, interactions=inter)
