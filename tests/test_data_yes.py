"""Cornell / Yes.com playlist layout: loader, validation, playlist-continuation split, multi-target metrics."""

from __future__ import annotations

import logging
import math
import shutil

import numpy as np
import pytest

from semid.data import dataset_stats, load_dataset, playlist_continuation
from semid.data.registry import sniff_format
from semid.data.types import EvalSet, Interactions
from semid.data.yes import load_yes, playlist_counts
from semid.errors import DataError
from semid.eval.by_group import group_report, target_hits
from semid.eval.metrics import compute_metrics
from semid.eval.reference import reference_metrics

PLAYLISTS = [[0, 1, 2, 3], [4], [1, 2, 1, 5, 0], [3, 0], [5, 4, 2], [2, 3, 4, 5, 0, 1]]


def test_fixture_loads_exactly(fixtures):
    ds = load_yes(fixtures / "yes")
    cat, inter = ds.catalog, ds.interactions
    assert ds.name == "yes"
    assert cat.item_ids.tolist() == ["0", "1", "2", "3", "4", "5"]
    assert [s.tolist() for s in inter.to_lists()] == PLAYLISTS  # play order, repeats and singletons kept
    assert inter.user_ids.tolist() == ["pl3", "pl4", "pl5", "pl6", "pl7", "pl8"]  # train.txt line numbers
    assert cat.fields["title"][0] == "Song A (w/ X)"  # the crawl's escaped slash is read as '/'
    assert cat.fields["artist"][:3] == ["Artist One", "Artist Two", "Artist One"]
    # tags in file order, duplicate ids once, '#' -> None
    assert cat.fields["tags"] == [["rock", "80s"], ["pop"], None, ["rock", "pop"], None, ["hip hop"]]
    assert playlist_counts(ds) == {"playlists": 6, "single_song": 1, "with_transition": 5}


def test_registry_detects_folder_and_files(fixtures):
    assert sniff_format(fixtures / "yes") == "yes"
    assert sniff_format(fixtures / "yes" / "train.txt") == "yes"
    for p in (fixtures / "yes", fixtures / "yes" / "train.txt", str(fixtures / "yes")):
        assert load_dataset(p).interactions.n_interactions == sum(map(len, PLAYLISTS))


def test_stats_and_cli(fixtures):
    st = dataset_stats(load_dataset(fixtures / "yes"))
    assert st["users"] == 6 and st["items"] == 6 and st["interactions"] == 21
    assert st["coverage"]["tags"] == pytest.approx(4 / 6) and st["coverage"]["title"] == 1.0
    from typer.testing import CliRunner

    from semid.cli.main import app

    res = CliRunner().invoke(app, ["data", "stats", str(fixtures / "yes")])
    assert res.exit_code == 0, res.output
    assert "coverage tags" in res.output and "66.7%" in res.output


def test_min_length_drops_are_counted(fixtures, caplog):
    with caplog.at_level(logging.INFO, logger="semid.data.yes"):
        ds = load_yes(fixtures / "yes", min_length=2)
    assert ds.interactions.n_users == 5 and "pl4" not in ds.interactions.user_ids.tolist()
    assert "dropped 1 playlists shorter than min_length=2" in caplog.text
    assert "1 of 6 playlists have a single song" in caplog.text
    assert "2 of 6 songs have no tags" in caplog.text


def _copy(fixtures, tmp_path):
    d = tmp_path / "yes"
    shutil.copytree(fixtures / "yes", d)
    return d


def _rewrite(path, old, new):
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


@pytest.mark.parametrize(
    "file,old,new,match",
    [
        ("train.txt", "3 0 \n", "3 9 \n", r"train\.txt:6: song index 9 is outside song_hash\.txt \(0\.\.5\)"),
        ("train.txt", "3 0 \n", "3 x \n", r"train\.txt:6: song index 'x' is not an integer"),
        ("train.txt", "5 4 6 4 5 4 \n", "5 4 6 \n", r"header line 1 lists 6 song ids but line 2 has 3"),
        ("song_hash.txt", "1\tSong B\tArtist Two", "1\tSong B", r"song_hash\.txt:2: 2 tab-separated fields"),
        ("song_hash.txt", "5\tSong F", "4\tSong F", r"song_hash\.txt:6: song index 4 appears twice"),
        ("song_hash.txt", "5\tSong F", "7\tSong F", r"song indices must be 0\.\.5 without gaps"),
        ("tags.txt", "\n2", "", r"tags\.txt: 5 lines for 6 songs"),
        ("tags.txt", "0 1 1", "0 7", r"tags\.txt:4: tag id 7 is not in tag_hash\.txt"),
        ("tags.txt", "#\n0 1 1", "\n0 1 1", r"tags\.txt:3: empty line; write '#'"),
        ("tag_hash.txt", "2, hip hop", "2 hip hop", r"tag_hash\.txt:3: expected 'id, tag'"),
    ],
)
def test_bad_files_name_file_line_and_fix(fixtures, tmp_path, file, old, new, match):
    d = _copy(fixtures, tmp_path)
    _rewrite(d / file, old, new)
    with pytest.raises(DataError, match=match):
        load_yes(d)


def test_missing_files(fixtures, tmp_path):
    d = _copy(fixtures, tmp_path)
    (d / "tag_hash.txt").unlink()
    with pytest.raises(DataError, match=r"tag_hash\.txt: tag names not found; tags\.txt needs tag_hash\.txt"):
        load_yes(d)
    (d / "tags.txt").unlink()  # without tags.txt the catalog simply has no tags field
    assert set(load_yes(d).catalog.fields) == {"title", "artist"}
    (d / "song_hash.txt").unlink()
    with pytest.raises(DataError, match="cannot tell the format"):
        load_dataset(d)
    with pytest.raises(DataError, match=r"song_hash\.txt: song table not found"):
        load_yes(d)


def test_header_must_match_song_table(fixtures, tmp_path):
    d = _copy(fixtures, tmp_path)
    _rewrite(d / "train.txt", "101 102 103 104 105 106 \n5 4 6 4 5 4 \n", "101 102 \n5 4 \n")
    with pytest.raises(DataError, match="header lists 2 songs but song_hash.txt has 6"):
        load_yes(d)


# ----------------------------------------------------------------------------- continuation split
def _random_playlists(n=300, seed=0):
    rng = np.random.default_rng(seed)
    return Interactions.from_lists([rng.integers(0, 50, rng.integers(1, 12)) for _ in range(n)])


@pytest.mark.parametrize("min_history", [None, 1, 2])
def test_continuation_split_invariants(min_history):
    inter = _random_playlists()
    holdout = 3
    a = playlist_continuation(inter, holdout=holdout, frac=0.5, seed=4, min_history=min_history)
    b = playlist_continuation(inter, holdout=holdout, frac=0.5, seed=4, min_history=min_history)
    c = playlist_continuation(inter, holdout=holdout, frac=0.5, seed=5, min_history=min_history)
    for x, y in ((a.valid, b.valid), (a.test, b.test)):  # seeded: identical
        assert x.histories.user_ids.tolist() == y.histories.user_ids.tolist()
        assert np.array_equal(x.targets.items, y.targets.items)
    assert a.test.histories.user_ids.tolist() != c.test.histories.user_ids.tolist()
    valid_u, test_u = set(a.valid.histories.user_ids), set(a.test.histories.user_ids)
    assert not valid_u & test_u  # disjoint
    lens = inter.lengths()
    m = 1 if min_history is None else min_history
    eligible = int((lens > (holdout if min_history is None else m)).sum())
    assert len(valid_u) + len(test_u) == round(0.5 * eligible)
    train = {u: s for u, s in zip(a.train.user_ids, a.train.to_lists(), strict=True)}
    assert len(train) == inter.n_users  # every playlist keeps its history in train
    for es in (a.valid, a.test):
        for r, uid in enumerate(es.histories.user_ids):
            full = inter.seq(int(uid))
            h, t = es.histories.seq(r), es.targets.seq(r)
            assert np.array_equal(np.concatenate([h, t]), full)  # history = everything before the targets
            assert len(t) == (holdout if min_history is None else min(holdout, len(full) - m))
            assert len(h) >= m
            assert np.array_equal(train[uid], h)  # no target position is trained on
    held = valid_u | test_u
    for uid, s in train.items():
        if uid not in held:
            assert np.array_equal(s, inter.seq(int(uid)))


def test_continuation_on_fixture(fixtures):
    inter = load_yes(fixtures / "yes").interactions
    sp = playlist_continuation(inter, holdout=2, frac=1.0, seed=0, min_history=1)
    # 5 playlists have >= 2 songs; the singleton is train-only
    assert len(sp.valid) + len(sp.test) == 5
    got = {u: (h.tolist(), t.tolist()) for es in (sp.valid, sp.test)
           for u, h, t in zip(es.histories.user_ids, es.histories.to_lists(), es.targets.to_lists(), strict=True)}
    assert got == {"pl3": ([0, 1], [2, 3]), "pl5": ([1, 2, 1], [5, 0]), "pl6": ([3], [0]),
                   "pl7": ([5], [4, 2]), "pl8": ([2, 3, 4, 5], [0, 1])}
    with pytest.raises(ValueError, match="min_history"):
        playlist_continuation(inter, min_history=0)


# ----------------------------------------------------------------------------- metrics by hand
def test_multi_target_metrics_match_hand_computation():
    topk = np.array([[7, 3, 5, 1, 9], [2, 4, 6, 8, 0], [1, 2, 3, 4, 5]])
    targets = Interactions.from_lists([[3, 9], [0], [6, 7, 8]])
    m = compute_metrics(topk, targets, ks=(1, 3, 5))
    # row 0: hits at ranks 2 and 5; row 1: hit at rank 5; row 2: none
    assert m["MRR"] == pytest.approx((1 / 2 + 1 / 5 + 0) / 3)
    assert m["Recall@1"] == 0.0
    assert m["Recall@3"] == pytest.approx((1 / 2 + 0 + 0) / 3)
    assert m["Recall@5"] == pytest.approx((2 / 2 + 1 / 1 + 0) / 3)
    assert m["HR@3"] == pytest.approx(1 / 3) and m["HR@5"] == pytest.approx(2 / 3)
    d = [1 / math.log2(r + 1) for r in range(1, 6)]
    ndcg5 = [(d[1] + d[4]) / (d[0] + d[1]), d[4] / d[0], 0.0]
    assert m["NDCG@5"] == pytest.approx(sum(ndcg5) / 3)
    ref = reference_metrics(topk, [[3, 9], [0], [6, 7, 8]], ks=(1, 3, 5))
    assert m == pytest.approx(ref)


def test_default_ks_give_the_papers_metrics():
    rng = np.random.default_rng(0)
    topk = np.stack([rng.permutation(30)[:20] for _ in range(8)])
    targets = Interactions.from_lists([rng.choice(30, rng.integers(1, 4), replace=False) for _ in range(8)])
    m = compute_metrics(topk, targets)
    for name in ("MRR", "Recall@1", "Recall@5", "Recall@10", "Recall@20", "HR@10", "NDCG@10"):
        assert name in m


def test_group_report_conflicts_and_recall():
    codes = np.array([[0, 1], [0, 1], [2, 3], [4, 5], [4, 5], [6, 7]])
    untagged = np.array([True, False, True, True, False, False])
    es = EvalSet(histories=Interactions.from_lists([[1], [2], [3]]),
                 targets=Interactions.from_lists([[0, 5], [2, 2], [3, 4]]))
    topk = np.array([[0, 1], [3, 4], [4, 3]])
    items, hits = target_hits(topk, es, k=2)
    assert items.tolist() == [0, 5, 2, 3, 4] and hits.tolist() == [True, False, False, True, True]
    r = group_report(untagged, codes_raw=codes, topk=topk, evalset=es, k=2)
    # items 0 and 3 share codes (with 1 and 4); item 2 does not -> 2/3 in the group, 2/3 outside
    assert r["conflict_rate_in"] == pytest.approx(2 / 3) and r["conflict_rate_out"] == pytest.approx(2 / 3)
    # group targets: 0 (hit), 2 (miss, counted once), 3 (hit); others: 5 (miss), 4 (hit)
    assert r["n_targets_in"] == 3 and r["recall@2_in"] == pytest.approx(2 / 3)
    assert r["n_targets_out"] == 2 and r["recall@2_out"] == pytest.approx(1 / 2)


# ----------------------------------------------------------------------------- the real data
@pytest.fixture
def yes_real(shared_data):
    path = shared_data / "yes-playlists"
    if not path.is_dir():
        pytest.skip(f"{path} not found")
    return path


def test_real_yes_playlists(yes_real):
    ds = load_dataset(yes_real)
    assert ds.catalog.n_items == 3168 and ds.interactions.n_users == 41_480
    assert playlist_counts(ds) == {"playlists": 41_480, "single_song": 16_726, "with_transition": 24_754}
    assert ds.interactions.n_interactions == 175_911
    assert sum(len(s) - 1 for s in ds.interactions.to_lists()) == 134_431  # the README's transitions
    tags = ds.catalog.fields["tags"]
    assert sum(t is None for t in tags) == 564
    assert len({t for ts in tags if ts for t in ts}) <= 250
    assert all(ds.catalog.fields["title"]) and all(ds.catalog.fields["artist"])
    sp = playlist_continuation(ds.interactions, holdout=5, frac=0.1, seed=0, min_history=1)
    assert len(sp.valid) + len(sp.test) == round(0.1 * 24_754)
    assert sp.train.n_interactions + sp.valid.targets.n_interactions + sp.test.targets.n_interactions == 175_911
