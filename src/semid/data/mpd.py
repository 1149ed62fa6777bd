"""Spotify Million Playlist Dataset loader: ``mpd.slice.<a>-<b>.json`` files, each
{"info": ..., "playlists": [{"pid", "name", "tracks": [{"pos", "track_uri", "track_name",
"artist_name", "artist_uri", "album_name", "album_uri", "duration_ms"}, ...]}, ...]}.

Choices (documented):
- a playlist is a sequence (user id = ``pid``), its tracks ordered by ``pos``; slices are read in
  order of their first pid, playlists in file order;
- items are track URIs in first-appearance order, with fields ``track_name``, ``artist_name`` and
  ``album_name`` (str) taken from the first occurrence; the playlist name describes the playlist,
  not an item, so it is not an item field;
- playlists without tracks are dropped with a logged count; a pid seen twice is an error
  (``duplicates='first'|'last'`` keeps that playlist and logs how many were dropped).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np

from semid.data.tables import read_json_file, sequences_to_interactions
from semid.data.types import Catalog, Dataset
from semid.data.validate import dedupe
from semid.errors import DataError

log = logging.getLogger(__name__)

FIELDS = ("track_name", "artist_name", "album_name")
_SLICE = re.compile(r"^mpd\.slice\.(\d+)-(\d+)\.json$")


def _slices(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise DataError(f"{path}: MPD folder not found; point to the folder holding mpd.slice.*.json files")
    found = [p for p in path.glob("mpd.slice.*.json") if _SLICE.match(p.name)]
    if not found:
        raise DataError(f"{path}: no mpd.slice.<a>-<b>.json files; is this the MPD 'data' folder?")
    return sorted(found, key=lambda p: int(_SLICE.match(p.name).group(1)))


def load_mpd(
    path: str | Path, *, max_slices: int | None = None, duplicates: str = "error", name: str = "mpd"
) -> Dataset:
    """Load MPD slices (a folder or one slice file) as a Dataset; ``max_slices`` limits how many are read."""
    files = _slices(Path(path))[:max_slices]
    item_index: dict[str, int] = {}
    fields: dict[str, list] = {k: [] for k in FIELDS}
    seqs: list[list[int]] = []
    pids: list[str] = []
    for f in files:
        obj = read_json_file(f)
        if not isinstance(obj, dict) or not isinstance(obj.get("playlists"), list):
            raise DataError(f"{f}: expected an object with a 'playlists' list")
        for k, pl in enumerate(obj["playlists"]):
            if not isinstance(pl, dict) or pl.get("pid") is None or not str(pl["pid"]).strip():
                raise DataError(f"{f}: playlist #{k} has no 'pid'; every playlist needs one")
            tracks = pl.get("tracks") or []
            try:
                tracks = sorted(tracks, key=lambda t: int(t["pos"]))
            except (KeyError, TypeError, ValueError):
                raise DataError(
                    f"{f}: playlist pid={pl['pid']} has a track without an integer 'pos'"
                ) from None
            seq = []
            for t in tracks:
                uri = t.get("track_uri")
                if not uri:
                    raise DataError(f"{f}: playlist pid={pl['pid']} pos={t['pos']} has no 'track_uri'")
                idx = item_index.get(uri)
                if idx is None:
                    idx = item_index[uri] = len(item_index)
                    for fld in FIELDS:
                        v = t.get(fld)
                        fields[fld].append(str(v).strip() or None if v is not None else None)
                seq.append(idx)
            seqs.append(seq)
            pids.append(str(pl["pid"]))
    keep = dedupe(pids, duplicates, where=str(path), what="playlist pids")
    seqs, pids = [seqs[i] for i in keep], [pids[i] for i in keep]
    catalog = Catalog(item_ids=np.asarray(list(item_index), dtype=str), fields=fields)
    inter = sequences_to_interactions(seqs, pids, source=str(path))
    if inter.n_users == 0:
        raise DataError(f"{path}: no playlists with tracks")
    return Dataset(name=name, catalog=catalog, interactions=inter)
