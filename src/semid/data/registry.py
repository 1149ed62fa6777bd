"""One entry point for every dataset: a built-in name or a path whose format is sniffed."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from semid.data.types import Dataset
from semid.errors import DataError

BUILTIN = {
    "movielens": "ml-latest-small.tar.xz",
    "ml-latest-small": "ml-latest-small.tar.xz",
}


def builtin_path(name: str) -> Path:
    """Path of a built-in archive shipped in ``semid/data/builtin`` (read in place, never extracted)."""
    ref = resources.files("semid.data") / "builtin" / BUILTIN[name]
    path = Path(str(ref))
    if not path.is_file():
        raise DataError(
            f"{path}: built-in dataset {name!r} is missing from the installation; reinstall semid"
        )
    return path


def sniff_format(path: Path) -> str:
    """'movielens' | 'amazon' | 'recbole' | 'mpd' | 'table' for a folder or file; DataError if unknown."""
    if path.is_file():
        n = path.name
        if n.endswith(".inter.json"):
            return "amazon"
        if n.endswith(".inter"):
            return "recbole"
        if n.startswith("mpd.slice.") and n.endswith(".json"):
            return "mpd"
        if n in ("ratings.csv", "ratings.dat") or n.endswith((".zip", ".tar.xz", ".tar.gz", ".tgz")):
            return "movielens"
        if path.suffix.lower() in (".parquet", ".pq", ".csv", ".tsv", ".jsonl", ".ndjson"):
            return "table"
    elif path.is_dir():
        if (path / "ratings.csv").is_file() or (path / "ratings.dat").is_file():
            return "movielens"
        if any(path.glob("*.inter.json")):
            return "amazon"
        if any(path.glob("*.inter")):
            return "recbole"
        if any(path.glob("mpd.slice.*.json")):
            return "mpd"
        tables = [p for p in path.iterdir() if p.suffix.lower() in (".parquet", ".csv", ".jsonl")]
        if len(tables) == 1:
            return "table"
    else:
        raise DataError(f"{path}: not found; pass a built-in name ({sorted(BUILTIN)}) or an existing path")
    raise DataError(
        f"{path}: cannot tell the format; expected ratings.csv/.dat (MovieLens), <D>.inter.json (Amazon), "
        "<D>.inter (RecBole), mpd.slice.*.json (MPD) or one .parquet/.csv/.jsonl table"
    )


def load_dataset(name_or_path: str | Path, **kw) -> Dataset:
    """Load a built-in dataset by name ('movielens', 'ml-latest-small') or any supported path.

    Keyword arguments go to the format's loader (e.g. ``strict=True`` for tables / RecBole).
    """
    from semid.data.amazon import load_amazon_lcrec
    from semid.data.movielens import load_movielens
    from semid.data.mpd import load_mpd
    from semid.data.recbole import load_recbole
    from semid.data.tables import load_table

    if isinstance(name_or_path, str) and name_or_path in BUILTIN:
        kw.setdefault("name", "ml-latest-small")
        return load_movielens(builtin_path(name_or_path), **kw)
    path = Path(name_or_path)
    if not path.exists():
        looks_like_path = isinstance(name_or_path, Path) or any(c in str(name_or_path) for c in "/\\.")
        if looks_like_path:
            raise DataError(f"{path}: not found; pass an existing path or a built-in name {sorted(BUILTIN)}")
        raise DataError(
            f"unknown dataset {str(name_or_path)!r}; valid names are {sorted(BUILTIN)}, or pass a path"
        )
    fmt = sniff_format(path)
    if fmt == "table" and path.is_dir():
        path = next(p for p in path.iterdir() if p.suffix.lower() in (".parquet", ".csv", ".jsonl"))
    if fmt == "movielens" and path.is_file() and path.name in ("ratings.csv", "ratings.dat"):
        path = path.parent
    loader = {
        "movielens": load_movielens,
        "amazon": load_amazon_lcrec,
        "recbole": load_recbole,
        "mpd": load_mpd,
        "table": load_table,
    }[fmt]
    return loader(path, **kw)
