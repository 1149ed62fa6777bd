"""``semid data check``: read a dataset and report every problem at once (the loaders stop at the first).

Each problem class (bad timestamps, empty ids, duplicate keys, unreadable files, rows the loader drops,
nothing to evaluate, ...) is one Finding with its file, a count and the first few examples. Fatal
findings are the ones ``load_dataset`` would raise on (or that leave nothing to evaluate); the others
are documented drops the loader logs. The scanners reuse the loaders' own parsing and the checks in
``semid.data.validate``, then the dataset is loaded for real so nothing the loader rejects is missed.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pyarrow as pa

from semid.data.validate import (
    N_EXAMPLES,
    TIME_FIX,
    check_policy,
    find_bad_times,
    find_duplicates,
    find_empty_ids,
)
from semid.errors import DataError

MIN_LOO_LENGTH = 3  # leave-one-out needs train + valid + test items


@dataclass
class Finding:
    """One problem class in one file: how many rows / keys, the first few, and what to do."""

    problem: str
    file: str
    count: int
    examples: list[str] = field(default_factory=list)
    fatal: bool = True
    fix: str = ""


@dataclass
class Report:
    """Everything ``check_dataset`` found; ``stats`` is filled when the dataset loaded."""

    path: str
    format: str = ""
    findings: list[Finding] = field(default_factory=list)
    stats: dict = field(default_factory=dict)

    @property
    def fatal(self) -> bool:
        return any(f.fatal for f in self.findings)

    def to_dict(self) -> dict:
        return {"path": self.path, "format": self.format, "fatal": self.fatal,
                "findings": [asdict(f) for f in self.findings], "stats": self.stats}


class _Collector:
    def __init__(self, report: Report):
        self.report = report

    def add(self, problem: str, file, count: int, examples=(), *, fatal: bool = True, fix: str = "") -> None:
        if count:
            self.report.findings.append(
                Finding(problem, str(file), int(count), [str(e) for e in list(examples)[:N_EXAMPLES]], fatal, fix)
            )

    def attempt(self, problem: str, file, fn: Callable, *args, **kw):
        """Run ``fn``; a DataError becomes a fatal finding (its message is the example) and None is returned."""
        try:
            return fn(*args, **kw)
        except DataError as e:
            self.add(problem, file, 1, [str(e)])
            return None

    def ids(self, values: list, file, column: str, label: Callable[[int], str]) -> None:
        bad = find_empty_ids(values)
        self.add(f"empty {column}", file, len(bad), [label(i) for i in bad],
                 fix="every row needs an id: fill it in or delete the row")

    def times(self, values: list, file, column: str, label: Callable[[int], str], time_format: str) -> None:
        _, bad = find_bad_times(values, time_format)
        self.add(f"bad timestamps in {column!r}", file, len(bad), [f"{label(i)}: {values[i]!r}" for i in bad],
                 fix=f"values in the format {time_format!r}" if time_format else TIME_FIX)

    def duplicates(self, keys: list, file, what: str, policy: str, *, fix: str = "") -> None:
        """Repeated keys: fatal under 'error' (or when ``fix`` is given: no policy can repair them)."""
        dups = find_duplicates(keys)  # count = keys seen more than once, as the loaders word it
        if policy == "error" or fix:  # else the loader keeps one and logs the drop, reported from its log
            self.add(f"duplicate {what}", file, len(dups), [f"{k!r} x{n}" for k, n in dups.items()],
                     fix=fix or "each must appear once: fix the file, or pass --data.duplicates=first|last")


# ----------------------------------------------------------------------------- per-format scanners
def _scan_table(c: _Collector, path: Path, time_format: str, duplicates: str) -> None:
    from semid.data.tables import read_table, row_label

    table = c.attempt("unreadable interaction table", path, read_table, path, string_columns=["user", "item"],
                      what="interaction table")
    if table is None:
        return
    label = row_label(path)
    for col in ("user", "item"):
        if col not in table.column_names:
            c.add(f"no {col!r} column", path, 1, [f"columns are {table.column_names}"],
                  fix=f"name the {col} column {col!r} (or call load_table with {col}_col=...)")
        else:
            c.ids(table.column(col).to_pylist(), path, col, label)
    if "timestamp" in table.column_names:
        col = table.column("timestamp")
        if time_format or col.null_count or not pa.types.is_integer(col.type):
            c.times(col.to_pylist(), path, "timestamp", label, time_format)


def _scan_movielens(c: _Collector, path: Path, time_format: str, duplicates: str) -> None:
    from semid.data import movielens as ml

    files = c.attempt("unreadable MovieLens archive or folder", path, ml._Files, path)
    if files is None:
        return
    line = lambda i: f"line {i + 2}"  # noqa: E731 (CSV data row i sits below the header)
    if files.has("ratings.csv"):
        r = c.attempt("unreadable ratings.csv", files.where("ratings.csv"), ml._csv, files, "ratings.csv",
                      ["userId", "movieId", "timestamp"], [])
        if r is not None:
            where = files.where("ratings.csv")
            for col in ("userId", "movieId"):
                values = r.column(col).to_pylist()
                bad = ml._bad_int_rows(values)
                c.add(f"empty or non-integer {col}", where, len(bad), [f"{line(i)}: {values[i]!r}" for i in bad],
                      fix=f"{col} must be an integer in every row: fix or delete those rows")
            ts = r.column("timestamp")
            if time_format or ts.null_count or not pa.types.is_integer(ts.type):
                c.times(ts.to_pylist(), where, "timestamp", line, time_format)
        if files.has("movies.csv"):
            m = c.attempt("unreadable movies.csv", files.where("movies.csv"), ml._csv, files, "movies.csv",
                          ["movieId", "title", "genres"], ["title", "genres"])
            if m is not None:
                where = files.where("movies.csv")
                values = m.column("movieId").to_pylist()
                bad = ml._bad_int_rows(values)
                c.add("empty or non-integer movieId", where, len(bad), [f"{line(i)}: {values[i]!r}" for i in bad],
                      fix="movieId must be an integer in every row")
                c.duplicates([v for v in values if v is not None], where, "movieIds", duplicates)
        if files.has("tags.csv"):
            t = c.attempt("unreadable tags.csv", files.where("tags.csv"), ml._csv, files, "tags.csv",
                          ["movieId", "tag", "timestamp"], ["tag"])
            tts = None if t is None else t.column("timestamp")
            if tts is not None and (time_format or tts.null_count or not pa.types.is_integer(tts.type)):
                c.times(tts.to_pylist(), files.where("tags.csv"), "timestamp", line, time_format)
    elif files.has("ratings.dat"):
        rows = c.attempt("malformed ratings.dat", files.where("ratings.dat"), ml._dat, files, "ratings.dat", 4)
        if rows is not None:
            bad = [k for k, r in enumerate(rows) if ml._bad_int_rows([r[0], r[1], r[3]])]
            c.add("non-integer UserID / MovieID / Timestamp", files.where("ratings.dat"), len(bad),
                  [f"row {k + 1}: {'::'.join(rows[k])!r}" for k in bad], fix="fix or delete those rows")
        if files.has("movies.dat"):
            mrows = c.attempt("malformed movies.dat", files.where("movies.dat"), ml._dat, files, "movies.dat", 3)
            if mrows is not None:
                c.duplicates([r[0] for r in mrows], files.where("movies.dat"), "MovieIDs", duplicates)


def _scan_amazon(c: _Collector, path: Path, time_format: str, duplicates: str) -> None:
    from semid.data import amazon as az
    from semid.data.codes import read_code_index
    from semid.data.tables import read_json_file

    found = c.attempt("no inter.json", path, az._find_inter, path)
    if found is None:
        return
    inter_path, dname = found
    folder = inter_path.parent
    pairs = c.attempt("unreadable inter.json", inter_path, read_json_file, inter_path, as_pairs=True)
    max_item, user_keys = -1, []
    if pairs is not None:
        if not isinstance(pairs, list) or (pairs and not isinstance(pairs[0], tuple)):
            c.add("inter.json is not an object", inter_path, 1, fix="expected {user_index: [item_index, ...]}")
            pairs = []
        bad_keys = [k for k, _ in pairs if not str(k).isdigit()]
        c.add("user keys that are not integer indices", inter_path, len(bad_keys), [repr(k) for k in bad_keys],
              fix="keys must be the user indices 0..U-1")
        bad_lists = [k for k, v in pairs if not az.is_index_list(v)]
        c.add("users whose value is not a list of item indices", inter_path, len(bad_lists),
              [repr(k) for k in bad_lists], fix="each user maps to a list of non-negative item indices")
        user_keys = [int(k) for k, _ in pairs if str(k).isdigit()]
        c.duplicates(user_keys, inter_path, "user keys", duplicates)
        max_item = max((max(v) for _, v in pairs if az.is_index_list(v) and v), default=-1)
    n = max_item + 1
    item2id = folder / f"{dname}.item2id"
    asins: list[str] = []
    if item2id.is_file():
        id_map = c.attempt("malformed item2id", item2id, az._read_id_map, item2id)
        if id_map is not None:
            asins = [id_map[i] for i in range(len(id_map))]
            c.duplicates(asins, item2id, "ASINs", duplicates,
                         fix="indices are positional (code files align to them), so no policy applies: fix the file")
            n = len(id_map)
            if max_item >= n:
                c.add("item indices beyond item2id", inter_path, 1, [f"item {max_item} >= {n} items"],
                      fix=f"every item index must be a line of {item2id.name}")
    user2id = folder / f"{dname}.user2id"
    if user2id.is_file():
        umap = c.attempt("malformed user2id", user2id, az._read_id_map, user2id)
        if umap is not None:
            c.duplicates(list(umap.values()), user2id, "reviewer ids", duplicates)
            missing = sorted({u for u in user_keys if u not in umap})
            c.add("users missing from user2id", inter_path, len(missing), missing,
                  fix=f"every user index must be a line of {user2id.name}")
    item_json = folder / f"{dname}.item.json"
    if item_json.is_file():
        c.attempt("bad item.json", item_json, az._item_fields, item_json, n, {a: i for i, a in enumerate(asins)},
                  duplicates)
    for code_path in sorted(folder.glob(f"{dname}.index_*.json")):
        c.attempt("bad code file", code_path, read_code_index, code_path, n_items=n, duplicates=duplicates)


def _scan_recbole(c: _Collector, path: Path, time_format: str, duplicates: str) -> None:
    from semid.data import recbole as rb

    if path.is_dir() and not [p for p in path.glob("*.inter") if not p.name.endswith(rb._SPLITS)]:
        found = c.attempt("no RecBole files", path, rb._find, path, ".test.inter")
        inter_path = None if found is None else found[0] / f"{found[1]}.test.inter"
    else:
        found = c.attempt("no RecBole files", path, rb._find, path, ".inter")
        inter_path = None if found is None else (path if path.is_file() else found[0] / f"{found[1]}.inter")
    if inter_path is None:
        return
    read = c.attempt("malformed .inter file", inter_path, rb._read_atomic, inter_path)
    if read is not None:
        names, _, rows, lines = read
        label = lambda i: f"line {lines[i]}"  # noqa: E731
        for col in ("user_id", "session_id", "item_id"):
            if col in names:
                c.ids([r[names.index(col)] for r in rows], inter_path, col, label)
        if "timestamp" in names and "item_id_list" not in names:
            c.times([r[names.index("timestamp")] for r in rows], inter_path, "timestamp", label, time_format)
    item_file = found[0] / f"{found[1]}.item"
    if item_file.is_file():
        read = c.attempt("malformed .item file", item_file, rb._read_atomic, item_file)
        if read is not None and "item_id" in read[0]:
            names, _, rows, lines = read
            ids = [r[names.index("item_id")] for r in rows]
            c.ids(ids, item_file, "item_id", lambda i: f"line {lines[i]}")
            c.duplicates(ids, item_file, "item ids", duplicates)


_SCANNERS = {"table": _scan_table, "movielens": _scan_movielens, "amazon": _scan_amazon, "recbole": _scan_recbole}


# ----------------------------------------------------------------------------- the checker
class _Capture(logging.Handler):
    """Collects the loaders' warnings (documented drops) while the dataset is loaded."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _load(c: _Collector, target, fmt: str, time_format: str, duplicates: str):
    from semid.data.registry import load_dataset

    cap = _Capture()
    logger = logging.getLogger("semid.data")
    logger.addHandler(cap)
    try:
        ds = load_dataset(target, time_format=time_format, duplicates=duplicates)
    except DataError as e:
        if not c.report.fatal:  # the scanners did not see it: report the loader's own error
            c.add("the loader rejects the dataset", target, 1, [str(e)])
        return None
    finally:
        logger.removeHandler(cap)
    for rec in cap.records:
        msg = rec.getMessage()
        where, _, rest = msg.partition(": ")
        counted = re.search(r"\b(\d+)\b", rest)  # the loaders' messages lead with the count
        c.add("rows the loader drops", where, int(counted.group(1)) if counted else 1, [msg], fatal=False,
              fix="documented drop; fix the file if those rows matter")
    return ds


def _evaluability(c: _Collector, ds) -> None:
    lens = ds.interactions.lengths()
    c.report.stats = {
        "users": int(ds.interactions.n_users), "items": int(ds.catalog.n_items),
        "interactions": int(ds.interactions.n_interactions),
        f"users_with_{MIN_LOO_LENGTH}+_items": int((lens >= MIN_LOO_LENGTH).sum()),
    }
    if ds.interactions.n_users and not (lens >= 2).any():
        c.add("nothing to evaluate", ds.name, int(ds.interactions.n_users),
              [f"longest sequence has {int(lens.max())} items"],
              fix="every sequence has < 2 items, so no split can hold one out; use a dataset with longer sequences")


def check_dataset(name_or_path: str | Path, *, time_format: str = "", duplicates: str = "error") -> Report:
    """Every problem ``load_dataset(name_or_path)`` would hit, and the drops it would log, in one Report."""
    from semid.data.registry import BUILTIN, builtin_path, sniff_format

    check_policy(duplicates)
    report = Report(path=str(name_or_path))
    c = _Collector(report)
    if isinstance(name_or_path, str) and name_or_path in BUILTIN:
        path, report.format = builtin_path(name_or_path), "movielens"
        from semid.data.movielens import ArchiveError, _Files

        try:
            _Files(path)
        except ArchiveError:  # the loader words this one with the reinstall fix
            _load(c, name_or_path, report.format, time_format, duplicates)
            return report
    else:
        path = Path(name_or_path)
        report.format = c.attempt("unknown dataset format", path, sniff_format, path) or ""
        if not report.format:
            return report
        if report.format == "table" and path.is_dir():
            path = next(p for p in path.iterdir() if p.suffix.lower() in (".parquet", ".csv", ".jsonl"))
        if report.format == "movielens" and path.is_file() and path.name in ("ratings.csv", "ratings.dat"):
            path = path.parent
    scan = _SCANNERS.get(report.format)
    if scan is not None:
        scan(c, path, time_format, duplicates)
    ds = _load(c, name_or_path, report.format, time_format, duplicates)
    if ds is not None:
        _evaluability(c, ds)
    return report


def render_report(report: Report) -> str:
    """The findings as rich-markup text, one block per problem class (long paths stay readable)."""
    from rich.markup import escape

    out = [f"[bold]data check[/] {escape(report.path)} ({report.format or 'unknown format'})"]
    for f in report.findings:
        tag = "[bold red]FATAL[/]" if f.fatal else "[yellow]drop [/]"
        out.append(f"{tag} {escape(f.problem)}: {f.count:,} in {escape(f.file)}")
        out.extend(f"      e.g. {escape(e)}" for e in f.examples)
        if f.fix:
            out.append(f"      fix: {escape(f.fix)}")
    return "\n".join(out)


def summary_line(report: Report) -> str:
    n_fatal = sum(f.fatal for f in report.findings)
    if not report.findings:
        s = report.stats
        return (f"no problems found in {report.path}: {s.get('users', 0):,} users, {s.get('items', 0):,} items, "
                f"{s.get('interactions', 0):,} interactions")
    return f"{len(report.findings)} problem classes ({n_fatal} fatal) in {report.path}"


__all__ = ["Finding", "Report", "check_dataset", "render_report", "summary_line"]
