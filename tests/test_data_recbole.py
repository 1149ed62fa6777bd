"""RecBole atomic files: interaction + item files, sequential form, pre-split files."""

from __future__ import annotations

import logging

import pytest

from semid.data import load_dataset, load_recbole, read_recbole_split
from semid.errors import DataError


def test_inter_and_item_files(fixtures, caplog):
    with caplog.at_level(logging.WARNING):
        ds = load_recbole(fixtures / "recbole" / "toy")
    assert "1 interactions reference items absent" in caplog.text  # i9 is not in toy.item
    cat, inter = ds.catalog, ds.interactions
    assert cat.item_ids.tolist() == ["i1", "i2", "i3", "i4"]  # the .item file, cold-start i4 kept
    assert inter.user_ids.tolist() == ["u1", "u2", "u3"]
    ids = cat.item_ids
    assert ids[inter.seq(0)].tolist() == ["i1", "i2", "i3"]  # sorted by timestamp
    assert ids[inter.seq(1)].tolist() == ["i1"]
    assert cat.fields["title"][0] == ["red", "guitar"]  # token_seq -> list[str]
    assert cat.fields["brand"][2] is None and cat.fields["price"][0] == "199.0"
    assert cat.fields["categories"][2] is None


def test_strict_raises_on_unknown_item(fixtures):
    with pytest.raises(DataError, match="absent from .*toy.item"):
        load_recbole(fixtures / "recbole" / "toy", strict=True)


def test_without_item_file_numeric_tokens(tmp_path):
    (tmp_path / "d.inter").write_text("user_id:token\titem_id:token\n7\t10\n7\t2\n3\t2\n")
    ds = load_recbole(tmp_path)
    assert ds.catalog.item_ids.tolist() == ["2", "10"]  # numeric order
    assert ds.interactions.user_ids.tolist() == ["7", "3"]
    assert ds.interactions.seq(0).tolist() == [1, 0]  # file order without timestamps


def test_sequential_form_and_split_files(fixtures):
    ds = load_recbole(fixtures / "recbole" / "toyseq")  # only pre-split files: test rows give sequences
    assert ds.catalog.item_ids.tolist() == ["0", "1", "2", "3", "4"]
    assert ds.interactions.seq(0).tolist() == [0, 1, 2, 3]
    assert ds.interactions.seq(1).tolist() == [3, 4, 1, 0]
    split = read_recbole_split(fixtures / "recbole" / "toyseq")
    assert split["valid"] == [("0", ["0", "1"], "2"), ("1", ["3", "4"], "1")]
    assert split["train"][0] == ("0", ["0"], "1")
    assert (
        load_dataset(fixtures / "recbole" / "toyseq" / "toyseq.test.inter").interactions.n_interactions == 8
    )


def test_bad_headers(tmp_path):
    (tmp_path / "d.inter").write_text("user_id\titem_id\n1\t2\n")
    with pytest.raises(DataError, match="must be 'name:type'"):
        load_recbole(tmp_path)
    (tmp_path / "d.inter").write_text("user_id:token\titem_id:blob\n1\t2\n")
    with pytest.raises(DataError, match="unknown type 'blob'"):
        load_recbole(tmp_path)
    (tmp_path / "d.inter").write_text("user_id:token\titem_id:token\n1\t2\t3\n")
    with pytest.raises(DataError, match="line 2 has 3 tab-separated fields"):
        load_recbole(tmp_path)
    (tmp_path / "d.inter").write_text("user:token\titem_id:token\n1\t2\n")
    with pytest.raises(DataError, match="no user_id / session_id column"):
        load_recbole(tmp_path)
