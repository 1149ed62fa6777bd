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


# ----------------------------------------------------------------------------- boundary checks
@pytest.fixture
def ml_copy(fixtures, tmp_path):
    d = tmp_path / "ml"
    shutil.copytree(fixtures / "movielens", d)
    return d


def test_duplicate_movie_id_error_first_last(ml_copy):
    movies = ml_copy / "movies.csv"
    movies.write_text(movies.read_text() + "10,Toy Story again (1995),Drama\n")  # before: the last row won
    with pytest.raises(DataError, match=r"movies.csv: column 'movieId': 1 duplicate movieIds \(10 x2\)"):
        load_movielens(ml_copy)
    assert load_movielens(ml_copy, duplicates="first").catalog.fields["title"][0] == "Toy Story (1995)"
    last = load_movielens(ml_copy, duplicates="last").catalog.fields
    assert last["title"][0] == "Toy Story again (1995)" and last["genres"][0] == ["Drama"]


def test_bad_or_empty_rating_fields_name_their_line(ml_copy):
    ratings = ml_copy / "ratings.csv"
    lines = ratings.read_text().splitlines()
    bad = lines.copy()
    bad[2] = "1,30,3.5,abc"
    ratings.write_text("\n".join(bad) + "\n")
    with pytest.raises(DataError, match=r"ratings.csv: column 'timestamp' line 3 has 'abc', not a timestamp"):
        load_movielens(ml_copy)
    bad = lines.copy()
    bad[3] = ",20,5.0,90"  # before: an empty userId ... raised without saying where
    ratings.write_text("\n".join(bad) + "\n")
    with pytest.raises(DataError, match=r"column 'userId' line 4 is empty \(1 bad rows in all\)"):
        load_movielens(ml_copy)
    bad = lines.copy()
    bad[1:] = [",".join([*ln.split(",")[:3], d]) for ln, d in
               zip(lines[1:], ["2020-01-03", "2020-01-03", "2020-01-02", "2019-01-01", "2019-02-01",
                               "2019-03-01", "2019-01-01"], strict=True)]
    ratings.write_text("\n".join(bad) + "\n")  # ISO dates: same order as the integer fixture
    ds = load_movielens(ml_copy)
    assert ds.catalog.item_ids[ds.interactions.seq(0)].tolist() == ["20", "10", "30"]


def test_truncated_archive_is_a_clear_error(tmp_path):
    from semid.data import registry

    data = registry.builtin_path("movielens").read_bytes()
    cut = tmp_path / "ml-latest-small.tar.xz"
    cut.write_bytes(data[: len(data) // 2])  # before: EOFError, which the CLI printed as "Aborted."
    with pytest.raises(DataError, match=r"ml-latest-small.tar.xz: the archive is truncated or corrupt \(EOFError"):
        load_movielens(cut)
    bad_zip = tmp_path / "ml.zip"
    bad_zip.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(DataError, match="the archive is truncated or corrupt"):
        load_movielens(bad_zip)


def test_truncated_builtin_archive_says_reinstall(tmp_path, monkeypatch):
    from semid.data import registry

    data = registry.builtin_path("movielens").read_bytes()
    cut = tmp_path / "ml-latest-small.tar.xz"
    cut.write_bytes(data[: len(data) // 3])
    monkeypatch.setattr(registry, "builtin_path", lambda name: cut)
    with pytest.raises(DataError, match=r"built-in dataset 'movielens' .* truncated or corrupt .* reinstall semid"):
        load_dataset("movielens")
