"""load_dataset: built-in names, format sniffing, clear errors."""

from __future__ import annotations

import pytest

from semid.data import load_dataset
from semid.data.registry import sniff_format
from semid.errors import DataError


def test_sniff_each_fixture(fixtures):
    assert sniff_format(fixtures / "movielens") == "movielens"
    assert sniff_format(fixtures / "movielens-1m") == "movielens"
    assert sniff_format(fixtures / "amazon" / "Toy") == "amazon"
    assert sniff_format(fixtures / "amazon" / "Toy" / "Toy.inter.json") == "amazon"
    assert sniff_format(fixtures / "recbole" / "toy") == "recbole"
    assert sniff_format(fixtures / "mpd") == "mpd"
    assert sniff_format(fixtures / "mpd" / "mpd.slice.0-2.json") == "mpd"
    assert sniff_format(fixtures / "tables" / "interactions.csv") == "table"


def test_load_by_path(fixtures):
    assert load_dataset(fixtures / "movielens" / "ratings.csv").catalog.n_items == 4
    assert load_dataset(str(fixtures / "amazon" / "Toy")).name == "Toy"
    assert load_dataset(fixtures / "recbole" / "toy", strict=False).interactions.n_users == 3


def test_unknown_name_lists_valid_names(tmp_path):
    with pytest.raises(
        DataError, match=r"unknown dataset 'netflix'; valid names are \['ml-latest-small', 'movielens'\]"
    ):
        load_dataset("netflix")
    with pytest.raises(DataError, match="not found"):
        load_dataset(tmp_path / "missing.csv")
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(DataError, match="cannot tell the format"):
        load_dataset(tmp_path)


def test_options_reach_the_loader_or_are_refused(tmp_path, fixtures):
    p = tmp_path / "i.csv"
    p.write_text("user,item,timestamp\nu,a,1/2/2020\nu,b,12/1/2019\n")
    ds = load_dataset(p, time_format="%m/%d/%Y")
    assert ds.catalog.item_ids[ds.interactions.seq(0)].tolist() == ["b", "a"]
    with pytest.raises(DataError, match="not a timestamp"):
        load_dataset(p)
    with pytest.raises(DataError, match=r"data.time_format='%Y' does not apply to the amazon format"):
        load_dataset(fixtures / "amazon" / "Toy", time_format="%Y")
    with pytest.raises(DataError, match=r"duplicates='keep'"):
        load_dataset(p, duplicates="keep")
