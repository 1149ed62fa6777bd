"""Cornell / Yes.com playlist loader (Chen et al., KDD 2012): the ``yes_small`` / ``yes_big`` /
``yes_complete`` layout, a folder holding

  train.txt      line 1: source song ids, line 2: their counts (both skipped apart from a length
                 check); from line 3 one playlist per line, space-separated song indices in play order
  song_hash.txt  ``index<TAB>title<TAB>artist``, one line per song, indices 0..N-1
  tags.txt       line i = space-separated tag ids of song i, ``#`` when the song has none (optional)
  tag_hash.txt   ``id, tag`` (needed when tags.txt is there)

Choices (documented):
- items are the songs of song_hash.txt in index order (every song, even one no playlist plays);
  item ids are the index strings "0".."N-1";
- fields: ``title`` and ``artist`` (str; the crawl's JSON escape ``\\/`` is read as ``/``; empty -> None)
  and ``tags`` (list of tag names in file order, duplicates dropped; None for ``#``);
- one playlist = one sequence (user id ``"pl<line number>"``), songs in play order, repeats kept;
- blank playlist lines are dropped with a logged count; single-song playlists (no transition) are
  counted and logged and kept (they still count towards popularity) unless ``min_length`` drops them;
- the authors' test.txt, when present, is not read: make a held-out split (``playlist_continuation``).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from semid.data.tables import require_file
from semid.data.types import Catalog, Dataset, Interactions
from semid.errors import DataError

log = logging.getLogger(__name__)

FILES = ("train.txt", "song_hash.txt", "tags.txt", "tag_hash.txt")
_LAYOUT = "a yes-playlists folder needs train.txt and song_hash.txt (tags.txt + tag_hash.txt optional)"


def _lines(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text (byte {e.start}); re-save the file as UTF-8") from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the final newline does not open another line
    return [ln.rstrip("\r") for ln in lines]


def _int(token: str, where: str, what: str) -> int:
    try:
        return int(token)
    except ValueError:
        raise DataError(f"{where}: {what} {token!r} is not an integer") from None


def read_songs(path: Path) -> tuple[list[str | None], list[str | None]]:
    """song_hash.txt -> (titles, artists), each a list indexed by song index 0..N-1."""
    rows: dict[int, tuple[str | None, str | None]] = {}
    for lineno, line in enumerate(_lines(path), 1):
        if not line.strip():
            raise DataError(f"{path}:{lineno}: blank line; every line must be index<TAB>title<TAB>artist")
        parts = line.split("\t")
        if len(parts) != 3:
            raise DataError(
                f"{path}:{lineno}: {len(parts)} tab-separated fields, expected 3 (index<TAB>title<TAB>artist)"
            )
        idx = _int(parts[0].strip(), f"{path}:{lineno}", "song index")
        if idx in rows:
            raise DataError(f"{path}:{lineno}: song index {idx} appears twice; each song needs one line")
        title, artist = (p.replace("\\/", "/").strip() or None for p in parts[1:])
        rows[idx] = (title, artist)
    n = len(rows)
    if n == 0:
        raise DataError(f"{path}: no songs; {_LAYOUT}")
    if set(rows) != set(range(n)):
        missing = sorted(set(range(n)) - set(rows))[:5]
        raise DataError(
            f"{path}: song indices must be 0..{n - 1} without gaps; missing {missing}, "
            f"largest {max(rows)}"
        )
    return [rows[i][0] for i in range(n)], [rows[i][1] for i in range(n)]


def read_tag_names(path: Path) -> list[str]:
    """tag_hash.txt (``id, tag``) -> tag names indexed by tag id 0..T-1."""
    names: dict[int, str] = {}
    for lineno, line in enumerate(_lines(path), 1):
        if not line.strip():
            continue
        head, sep, name = line.partition(",")
        if not sep or not name.strip():
            raise DataError(f"{path}:{lineno}: expected 'id, tag', got {line[:60]!r}")
        tid = _int(head.strip(), f"{path}:{lineno}", "tag id")
        if tid in names:
            raise DataError(f"{path}:{lineno}: tag id {tid} appears twice")
        names[tid] = name.strip()
    if set(names) != set(range(len(names))):
        raise DataError(f"{path}: tag ids must be 0..{len(names) - 1} without gaps")
    return [names[i] for i in range(len(names))]


def read_song_tags(path: Path, tag_names: list[str], n_songs: int) -> list[list[str] | None]:
    """tags.txt -> per song the tag names (file order, duplicates dropped) or None for ``#``."""
    lines = _lines(path)
    if len(lines) != n_songs:
        raise DataError(
            f"{path}: {len(lines)} lines for {n_songs} songs in song_hash.txt; tags.txt needs one line per "
            "song ('#' when it has no tags)"
        )
    out: list[list[str] | None] = []
    for lineno, line in enumerate(lines, 1):
        text = line.strip()
        if text == "#":
            out.append(None)
            continue
        if not text:
            raise DataError(f"{path}:{lineno}: empty line; write '#' for a song without tags")
        ids = []
        for tok in text.split():
            tid = _int(tok, f"{path}:{lineno}", "tag id")
            if not 0 <= tid < len(tag_names):
                raise DataError(
                    f"{path}:{lineno}: tag id {tid} is not in tag_hash.txt (ids 0..{len(tag_names) - 1})"
                )
            if tid not in ids:
                ids.append(tid)
        out.append([tag_names[t] for t in ids])
    return out


def read_playlists(path: Path, n_songs: int) -> tuple[list[list[int]], list[str], int]:
    """train.txt -> (playlists, their ids ``pl<line>``, number of blank lines dropped)."""
    lines = _lines(path)
    if len(lines) < 2:
        raise DataError(
            f"{path}: needs two header lines (source song ids, then their counts) before the playlists"
        )
    n_ids, n_counts = len(lines[0].split()), len(lines[1].split())
    if n_ids != n_counts:
        raise DataError(
            f"{path}: header line 1 lists {n_ids} song ids but line 2 has {n_counts} counts; is this a "
            "Cornell playlist file (two header lines, then one playlist per line)?"
        )
    if n_ids and n_ids != n_songs:
        raise DataError(
            f"{path}: header lists {n_ids} songs but song_hash.txt has {n_songs}; the two files must come "
            "from the same folder"
        )
    seqs: list[list[int]] = []
    pids: list[str] = []
    blank = 0
    for lineno, line in enumerate(lines[2:], 3):
        toks = line.split()
        if not toks:
            blank += 1
            continue
        seq = [_int(t, f"{path}:{lineno}", "song index") for t in toks]
        bad = [s for s in seq if not 0 <= s < n_songs]
        if bad:
            raise DataError(
                f"{path}:{lineno}: song index {bad[0]} is outside song_hash.txt (0..{n_songs - 1})"
            )
        seqs.append(seq)
        pids.append(f"pl{lineno}")
    return seqs, pids, blank


def load_yes(path: str | Path, *, min_length: int = 1, name: str = "") -> Dataset:
    """Load a Cornell playlist folder as a Dataset (songs x playlists); see the module docstring.

    ``min_length``: playlists with fewer songs are dropped (counted in the log); 1 keeps every playlist.
    ``name`` defaults to the folder name.
    """
    root = Path(path).resolve()
    if root.is_file() and root.name in FILES:
        root = root.parent
    if not root.is_dir():
        raise DataError(f"{root}: playlist folder not found; {_LAYOUT}")
    if min_length < 1:
        raise DataError(f"load_yes: min_length={min_length}; use 1 (keep all) or more")
    fix = _LAYOUT
    titles, artists = read_songs(require_file(root / "song_hash.txt", "song table", fix))
    n = len(titles)
    fields: dict[str, list] = {"title": titles, "artist": artists}
    tags_path = root / "tags.txt"
    if tags_path.is_file():
        names = read_tag_names(require_file(root / "tag_hash.txt", "tag names", "tags.txt needs tag_hash.txt"))
        fields["tags"] = read_song_tags(tags_path, names, n)
        n_untagged = sum(t is None for t in fields["tags"])
        log.info("%s: %d of %d songs have no tags ('#')", tags_path, n_untagged, n)
    seqs, pids, blank = read_playlists(require_file(root / "train.txt", "playlists", fix), n)
    if blank:
        log.warning("%s: dropped %d blank playlist lines", root / "train.txt", blank)
    lens = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs))
    n_single = int((lens < 2).sum())
    if n_single:
        log.info("%s: %d of %d playlists have a single song (no transition, never evaluated)",
                 root / "train.txt", n_single, len(seqs))
    keep = np.flatnonzero(lens >= min_length)
    if len(keep) < len(seqs):
        log.warning("%s: dropped %d playlists shorter than min_length=%d", root / "train.txt",
                    len(seqs) - len(keep), min_length)
    if len(keep) == 0:
        raise DataError(f"{root / 'train.txt'}: no playlists with at least {min_length} songs")
    inter = Interactions.from_lists([seqs[i] for i in keep], user_ids=[pids[i] for i in keep])
    catalog = Catalog(item_ids=np.arange(n).astype(str), fields=fields)
    return Dataset(name=name or root.name, catalog=catalog, interactions=inter)


def playlist_counts(ds: Dataset) -> dict[str, int]:
    """Playlist-length counts worth reporting beside ``dataset_stats``: total, single-song, >= 2 songs."""
    lens = ds.interactions.lengths()
    return {"playlists": int(len(lens)), "single_song": int((lens == 1).sum()),
            "with_transition": int((lens >= 2).sum())}
