"""Spotify MPD slices -> playlist sequences ordered by pos."""

from __future__ import annotations

import json

import pytest

from semid.data import load_dataset, load_mpd
from semid.errors import DataError


def test_fixture_slice(fixtures):
    ds = load_mpd(fixtures / "mpd")
    cat, inter = ds.catalog, ds.interactions
    assert inter.user_ids.tolist() == ["0", "1", "2"]
    assert cat.n_items == 8 and inter.n_interactions == 12
    uri = cat.item_ids
    assert [u.split(":")[-1] for u in uri[inter.seq(0)]] == ["t1", "t2", "t3", "t4"]
    # playlist 1 is stored out of order; pos gives t2, t4, t5, t6, t7
    assert [u.split(":")[-1] for u in uri[inter.seq(1)]] == ["t2", "t4", "t5", "t6", "t7"]
    i = cat.index_of()["spotify:track:t1"]
    assert cat.fields["track_name"][i] == "Mr. Brightside"
    assert cat.fields["artist_name"][i] == "The Killers" and cat.fields["album_name"][i] == "Hot Fuss"
    assert set(cat.fields) == {"track_name", "artist_name", "album_name"}
    assert load_dataset(fixtures / "mpd").interactions.n_interactions == 12


def test_bad_slices(tmp_path):
    with pytest.raises(DataError, match="no mpd.slice"):
        load_mpd(tmp_path)
    (tmp_path / "mpd.slice.0-0.json").write_text(
        json.dumps({"info": {}, "playlists": [{"pid": 0, "tracks": [{}]}]})
    )
    with pytest.raises(DataError, match="without an integer 'pos'"):
        load_mpd(tmp_path)
    (tmp_path / "mpd.slice.0-0.json").write_text(json.dumps({"playlists": [{"pid": 0, "tracks": []}]}))
    with pytest.raises(DataError, match="no playlists with tracks"):
        load_mpd(tmp_path)


def test_duplicate_pids_error_first_last(tmp_path):
    pl = [{"pid": 7, "tracks": [{"pos": 0, "track_uri": "a"}]}, {"pid": 7, "tracks": [{"pos": 0, "track_uri": "b"}]}]
    (tmp_path / "mpd.slice.0-1.json").write_text(json.dumps({"playlists": pl}))
    with pytest.raises(DataError, match=r"1 duplicate playlist pids \('7' x2\)"):
        load_mpd(tmp_path)
    ds = load_mpd(tmp_path, duplicates="last")
    assert ds.catalog.item_ids[ds.interactions.seq(0)].tolist() == ["b"]
