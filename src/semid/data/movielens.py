"""MovieLens loader: latest-small / 20M / 25M style CSVs (ratings.csv, movies.csv, tags.csv) and the
1M style ``::``-separated .dat files, from a directory or straight from a .zip / .tar.* archive.

Choices (documented):
- items are the movies that appear in ratings (movies nobody rated are left out), ordered by movieId;
  item ids are the movieId strings;
- users are ordered by userId; a user's sequence is their ratings stably sorted by (timestamp, movieId);
  every rating counts as an interaction whatever its value;
- fields: ``title`` (str, year kept), ``genres`` (list[str]; "(no genres listed)" -> []) and ``tags``
  (the users' free-text tags for the movie, lowercased, stripped, de-duplicated in order of first use;
  None when the movie has none). links.csv (IMDb/TMDb ids) is not content, so it is not a field;
- a movieId listed twice in the movies file is an error (``duplicates='first'|'last'`` keeps one row);
  an empty or non-integer userId / movieId / timestamp is an error naming its line. Timestamps may also
  be ISO-8601 dates or match ``time_format`` (see ``semid.data.validate``).
"""

from __future__ import annotations

import io
import logging
import lzma
import tarfile
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pc

from semid.data.types import Catalog, Dataset, Interactions
from semid.data.validate import dedupe, parse_times
from semid.errors import DataError

log = logging.getLogger(__name__)

# what a truncated or corrupt .zip / .tar.* raises while it is read (EOFError: xz/gz stream cut short)
_ARCHIVE_ERRORS = (EOFError, tarfile.TarError, zipfile.BadZipFile, lzma.LZMAError, zlib.error, OSError)


class ArchiveError(DataError):
    """The archive itself is unreadable (truncated download, damaged installation); ``cause`` says how."""

    def __init__(self, message: str, cause: str = ""):
        super().__init__(message)
        self.cause = cause


def _archive_error(path: Path, e: BaseException) -> ArchiveError:
    cause = f"{type(e).__name__}: {e}"
    return ArchiveError(
        f"{path}: the archive is truncated or corrupt ({cause}); download it again or point to the unpacked folder",
        cause,
    )


class _Files:
    """Read files by base name from a directory or an archive (nothing is extracted to disk)."""

    def __init__(self, path: Path):
        self.path = path
        self._members: dict[str, str] = {}
        self._cache: dict[str, bytes] | None = None
        if path.is_dir():
            self.kind = "dir"
            return
        try:
            if zipfile.is_zipfile(path):
                self.kind = "zip"
                with zipfile.ZipFile(path) as z:
                    self._members = {Path(n).name: n for n in z.namelist() if not n.endswith("/")}
                return
            if tarfile.is_tarfile(path):
                self.kind = "tar"
                with tarfile.open(path) as t:
                    self._members = {Path(m.name).name: m.name for m in t.getmembers() if m.isfile()}
                return
        except _ARCHIVE_ERRORS as e:
            raise _archive_error(path, e) from None
        if path.suffix.lower() in (".zip", ".xz", ".gz", ".tgz", ".bz2", ".tar"):
            raise _archive_error(path, EOFError("not recognised as a complete archive"))
        raise DataError(f"{path}: not a MovieLens directory or .zip/.tar archive")

    def has(self, name: str) -> bool:
        return (self.path / name).is_file() if self.kind == "dir" else name in self._members

    def read(self, name: str) -> bytes:
        if not self.has(name):
            raise DataError(
                f"{self.path}: {name} not found; a MovieLens folder needs ratings.csv or ratings.dat"
            )
        if self.kind == "dir":
            return (self.path / name).read_bytes()
        try:
            if self.kind == "zip":
                with zipfile.ZipFile(self.path) as z:
                    return z.read(self._members[name])
            if self._cache is None:  # one decompression pass for all members (tar has no random access)
                with tarfile.open(self.path) as t:
                    self._cache = {
                        Path(m.name).name: t.extractfile(m).read() for m in t.getmembers() if m.isfile()
                    }
        except _ARCHIVE_ERRORS as e:
            raise _archive_error(self.path, e) from None
        return self._cache[name]

    def where(self, name: str) -> str:
        return str(self.path / name) if self.kind == "dir" else f"{self.path}!{self._members.get(name, name)}"


def _csv(files: _Files, name: str, required: list[str], strings: list[str]) -> pa.Table:
    try:
        table = pc.read_csv(
            io.BytesIO(files.read(name)),
            convert_options=pc.ConvertOptions(column_types={c: pa.string() for c in strings}),
        )
    except pa.ArrowInvalid as e:
        raise DataError(f"{files.where(name)}: cannot parse CSV ({e})") from None
    missing = [c for c in required if c not in table.column_names]
    if missing:
        raise DataError(
            f"{files.where(name)}: missing columns {missing} (found {table.column_names}); "
            "is this a MovieLens file?"
        )
    return table


def _dat(files: _Files, name: str, ncols: int) -> list[list[str]]:
    raw = files.read(name)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:  # ML-1M movies.dat is latin-1
        text = raw.decode("latin-1")
    rows = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split("::")
        if len(parts) != ncols:
            raise DataError(
                f"{files.where(name)}: line {lineno} has {len(parts)} '::'-separated fields, expected {ncols}"
            )
        rows.append(parts)
    return rows


def _bad_int_rows(values: list) -> list[int]:
    bad = []
    for i, v in enumerate(values):
        if isinstance(v, bool) or v is None:
            bad.append(i)
        elif isinstance(v, int):
            continue
        elif isinstance(v, float):
            if not v.is_integer():
                bad.append(i)
        else:
            try:
                int(str(v).strip())
            except ValueError:
                bad.append(i)
    return bad


def _int_col(table: pa.Table, name: str, where: str) -> np.ndarray:
    col = table.column(name)
    if not col.null_count and pa.types.is_integer(col.type):
        return col.cast(pa.int64()).to_numpy()
    values = col.to_pylist()
    bad = _bad_int_rows(values)
    if bad:
        i = bad[0]
        what = "is empty" if values[i] is None else f"has {values[i]!r}"
        raise DataError(
            f"{where}: column {name!r} line {i + 2} {what} ({len(bad)} bad rows in all); "
            f"{name} must be an integer in every row: fix or delete those rows"
        )
    return np.asarray([int(str(v).strip()) if not isinstance(v, (int, float)) else int(v) for v in values],
                      dtype=np.int64)


def _time_col(table: pa.Table, name: str, where: str, time_format: str) -> np.ndarray:
    """Seconds [N]: integer epochs (every MovieLens release), else ISO-8601 / ``time_format`` strings."""
    col = table.column(name)
    if not time_format and not col.null_count and pa.types.is_integer(col.type):
        return col.cast(pa.int64()).to_numpy()
    return parse_times(col.to_pylist(), where=where, column=name, time_format=time_format,
                       row_label=lambda i: f"line {i + 2}")


def load_movielens(
    path: str | Path, *, time_format: str = "", duplicates: str = "error", name: str | None = None
) -> Dataset:
    """Load a MovieLens release (directory or archive) as a Dataset; see the module docstring."""
    path = Path(path)
    if not path.exists():
        raise DataError(
            f"{path}: MovieLens data not found; download it from https://grouplens.org/datasets/movielens/ "
            "or use load_dataset('movielens') for the built-in latest-small copy"
        )
    files = _Files(path)
    titles: dict[int, str] = {}
    genres: dict[int, list[str]] = {}
    tag_lists: dict[int, list[str]] = {}
    if files.has("ratings.csv"):
        where = files.where("ratings.csv")
        r = _csv(files, "ratings.csv", ["userId", "movieId", "timestamp"], [])
        users, movies = _int_col(r, "userId", where), _int_col(r, "movieId", where)
        ts = _time_col(r, "timestamp", where, time_format)
        if files.has("movies.csv"):
            m = _csv(files, "movies.csv", ["movieId", "title", "genres"], ["title", "genres"])
            mids = _int_col(m, "movieId", files.where("movies.csv")).tolist()
            keep = dedupe(mids, duplicates, where=f"{files.where('movies.csv')}: column 'movieId'", what="movieIds")
            mtitles, mgenres = m.column("title").to_pylist(), m.column("genres").to_pylist()
            for k in keep.tolist():
                titles[mids[k]] = mtitles[k]
                genres[mids[k]] = _split_genres(mgenres[k])
        if files.has("tags.csv"):
            t = _csv(files, "tags.csv", ["movieId", "tag", "timestamp"], ["tag"])
            tw = files.where("tags.csv")
            order = np.argsort(_time_col(t, "timestamp", tw, time_format), kind="stable")
            tmov = _int_col(t, "movieId", tw)[order].tolist()
            all_tags = t.column("tag").to_pylist()
            ttag = [all_tags[i] for i in order]
            for mid, tag in zip(tmov, ttag, strict=True):
                tag = (tag or "").strip().lower()
                if tag:
                    lst = tag_lists.setdefault(mid, [])
                    if tag not in lst:
                        lst.append(tag)
    elif files.has("ratings.dat"):
        where = files.where("ratings.dat")
        rows = _dat(files, "ratings.dat", 4)
        try:
            arr = np.asarray([[int(a), int(b), int(d)] for a, b, _, d in rows], dtype=np.int64).reshape(-1, 3)
        except ValueError:
            bad = next(k for k, r in enumerate(rows) if _bad_int_rows([r[0], r[1], r[3]]))
            raise DataError(
                f"{where}: row {bad + 1} ({'::'.join(rows[bad])!r}) must have integer UserID, MovieID and "
                "Timestamp; fix or delete it"
            ) from None
        users, movies, ts = arr[:, 0], arr[:, 1], arr[:, 2]
        if files.has("movies.dat"):
            mrows = _dat(files, "movies.dat", 3)
            mw = files.where("movies.dat")
            if _bad_int_rows([r[0] for r in mrows]):
                bad = _bad_int_rows([r[0] for r in mrows])[0]
                raise DataError(f"{mw}: row {bad + 1} has MovieID {mrows[bad][0]!r}; it must be an integer")
            keep = dedupe([int(r[0]) for r in mrows], duplicates, where=f"{mw}: MovieID", what="MovieIDs")
            for k in keep.tolist():
                mid, title, g = mrows[k]
                titles[int(mid)] = title
                genres[int(mid)] = _split_genres(g)
    else:
        raise DataError(
            f"{path}: no ratings.csv or ratings.dat found; point to an unpacked MovieLens release folder"
        )
    if len(users) == 0:
        raise DataError(f"{where}: no ratings")

    item_keys = np.unique(movies)  # only rated movies become items, ordered by movieId
    item_idx = np.searchsorted(item_keys, movies)
    user_keys, user_idx = np.unique(users, return_inverse=True)
    order = np.lexsort((movies, ts, user_idx))  # by user, then timestamp, then movieId
    counts = np.bincount(user_idx, minlength=len(user_keys))
    offsets = np.zeros(len(user_keys) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    inter = Interactions(offsets=offsets, items=item_idx[order], user_ids=user_keys.astype(str))

    keys = item_keys.tolist()
    no_meta = sum(k not in titles for k in keys)
    if no_meta and titles:
        log.warning(
            "%s: %d rated movies have no row in the movies file; their fields are None", path, no_meta
        )
    fields = {
        "title": [titles.get(k) for k in keys],
        "genres": [genres.get(k) for k in keys],
        "tags": [tag_lists.get(k) for k in keys],
    }
    catalog = Catalog(item_ids=item_keys.astype(str), fields=fields)
    return Dataset(name=name or path.name.split(".")[0], catalog=catalog, interactions=inter)


def _split_genres(g: str | None) -> list[str] | None:
    if g is None:
        return None
    g = g.strip()
    if g in ("", "(no genres listed)"):
        return []
    return [x.strip() for x in g.split("|") if x.strip()]
