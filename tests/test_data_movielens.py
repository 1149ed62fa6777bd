"""MovieLens loader: CSV and ::-.dat layouts, ordering, fields, the built-in archive."""

from __future__ import annotations

import shutil
import zipfile

import numpy as np
import pytest

from semid.data import load_dataset, load_movielens
from semid.errors import DataError


def test_csv_fixture_sequences_and_fields(fixtures):
    ds = load_movielens(fixtures / "movielens")
    cat, inter = ds.catalog, ds.interactions
    # only rated movies are items (50 is never rated), ordered by movieId
    assert cat.item_ids.tolist() == ["10", "20", "30", "40"]
    assert inter.user_ids.tolist() == ["1", "2", "3"]
    ids = cat.item_ids
    # user 1: t=90 (20), then the t=100 tie broken by movieId (10 before 30)
    assert ids[inter.seq(0)].tolist() == ["20", "10", "30"]
    assert ids[inter.seq(1)].tolist() == ["30", "40", "10"]
    assert ids[inter.seq(2)].tolist() == ["20"]
    assert cat.fields["title"][1] == "American President, The (1995)"
    assert cat.fields["genres"][0] == ["Adventure", "Animation", "Children"]
    assert cat.fields["genres"][2] == []  # "(no genres listed)"
    assert cat.fields["tags"][0] == ["pixar", "fun"]  # lowercased, stripped, deduplicated
    assert cat.fields["tags"][1] == ["politics"]
    assert cat.fields["tags"][2] is None


def test_dat_fixture(fixtures):
    ds = load_movielens(fixtures / "movielens-1m")
    assert ds.catalog.item_ids.tolist() == ["661", "914", "1193"]
    ids = ds.catalog.item_ids
    assert ids[ds.interactions.seq(0)].tolist() == ["1193", "914", "661"]
    # same timestamp -> movieId order
    assert ids[ds.interactions.seq(1)].tolist() == ["661", "1193"]
    assert ds.catalog.fields["genres"][0] == ["Animation", "Children's", "Musical"]
    assert ds.catalog.fields["tags"] == [None, None, None]


def test_zip_archive_equals_folder(fixtures, tmp_path):
    zpath = tmp_path / "ml.zip"
    with zipfile.ZipFile(zpath, "w") as z:
        for f in (fixtures / "movielens").iterdir():
            z.write(f, f"ml-small/{f.name}")
    a, b = load_movielens(fixtures / "movielens"), load_movielens(zpath)
    np.testing.assert_array_equal(a.interactions.items, b.interactions.items)
    assert a.catalog.fields == b.catalog.fields


def test_missing_and_bad_files(fixtures, tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_movielens(tmp_path / "nope")
    with pytest.raises(DataError, match="no ratings.csv or ratings.dat"):
        load_movielens(tmp_path)
    d = tmp_path / "ml"
    shutil.copytree(fixtures / "movielens", d)
    (d / "ratings.csv").write_text("userId,item,timestamp\n1,2,3\n")
    with pytest.raises(DataError, match=r"ratings.csv: missing columns \['movieId'\]"):
        load_movielens(d)


def test_builtin_movielens_counts():
    ds = load_dataset("movielens")
    assert ds.interactions.n_users == 610
    assert ds.catalog.n_items == 9724  # movies with at least one rating
    assert ds.interactions.n_interactions == 100_836
    assert ds.catalog.fields["title"][0] == "Toy Story (1995)"
    lens = ds.interactions.lengths()
    assert lens.min() == 20
    assert load_dataset("ml-latest-small").interactions.n_interactions == 100_836


def test_builtin_archive_small_and_documented():
    from semid.data.registry import builtin_path

    p = builtin_path("movielens")
    assert p.stat().st_size < 2_000_000
    readme = (p.parent / "README.md").read_text()
    assert "GroupLens" in readme and "unmodified" in readme
