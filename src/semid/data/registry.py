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
    """'movielens' | 'amazon' | 'recbole' | 'mpd' | 'yes' | 'table' for a folder or file; DataError if unknown."""
    if path.is_file():
        n = path.name
        if n.endswith(".inter.json"):
            return "amazon"
        if n.endswith(".inter"):
            return "recbole"
        if n.startswith("mpd.slice.") and n.endswith(".json"):
            return "mpd"
        if n in ("train.txt", "song_hash.txt") and (path.parent / "song_hash.txt").is_file():
            return "yes"
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
        if (path / "train.txt").is_file() and (path / "song_hash.txt").is_file():
            return "yes"
        tables = [p for p in path.iterdir() if p.suffix.lower() in (".parquet", ".csv", ".jsonl")]
        if len(tables) == 1:
            return "table"
    else:
        raise DataError(f"{path}: not found; pass a built-in name ({sorted(BUILTIN)}) or an existing path")
    raise DataError(
        f"{path}: cannot tell the format; expected ratings.csv/.dat (MovieLens), <D>.inter.json (Amazon), "
        "<D>.inter (RecBole), mpd.slice.*.json (MPD), train.txt + song_hash.txt (Cornell playlists) "
        "or one .parquet/.csv/.jsonl table"
    )


def _with_options(loader, fmt: str, kw: dict, time_format: str, duplicates: str) -> dict:
    """``kw`` plus time_format / duplicates for a loader that takes them; a non-default one that the
    format's loader cannot honour is an error, never silently ignored."""
    import inspect

    params = inspect.signature(loader).parameters
    for key, value, default in (("time_format", time_format, ""), ("duplicates", duplicates, "error")):
        if key in params:
            kw[key] = value
        elif value != default:
            raise DataError(f"data.{key}={value!r} does not apply to the {fmt} format (it has no {key.split('_')[0]}s "
                            "option); leave it at its default")
    return kw


def load_dataset(
    name_or_path: str | Path, *, time_format: str = "", duplicates: str = "error", **kw
) -> Dataset:
    """Load a built-in dataset by name ('movielens', 'ml-latest-small') or any supported path.

    ``time_format``: strptime format of string timestamps ("" = numbers or ISO-8601); ``duplicates``:
    'error' | 'first' | 'last' for repeated item / user keys (see ``semid.data.validate``). Other
    keyword arguments go to the format's loader (e.g. ``strict=True`` for tables / RecBole).
    """
    from semid.data.amazon import load_amazon_lcrec
    from semid.data.movielens import ArchiveError, load_movielens
    from semid.data.mpd import load_mpd
    from semid.data.recbole import load_recbole
    from semid.data.tables import load_table
    from semid.data.validate import check_policy
    from semid.data.yes import load_yes

    check_policy(duplicates)
    if isinstance(name_or_path, str) and name_or_path in BUILTIN:
        kw.setdefault("name", "ml-latest-small")
        path = builtin_path(name_or_path)
        try:
            return load_movielens(path, **_with_options(load_movielens, "movielens", kw, time_format, duplicates))
        except ArchiveError as e:
            raise DataError(
                f"{path}: the built-in dataset {name_or_path!r} shipped with semid is truncated or corrupt "
                f"({e.cause}), so the installation is damaged: reinstall semid "
                "(pip install --force-reinstall --no-deps semid, or pip install -e . in a checkout)"
            ) from None
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
        "yes": load_yes,
        "table": load_table,
    }[fmt]
    return loader(path, **_with_options(loader, fmt, kw, time_format, duplicates))
