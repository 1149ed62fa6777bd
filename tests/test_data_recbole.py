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


# ----------------------------------------------------------------------------- boundary checks
def _copy(fixtures, tmp_path):
    import shutil

    shutil.copytree(fixtures / "recbole" / "toy", tmp_path / "toy")
    return tmp_path / "toy"


def test_bad_timestamp_and_empty_user_name_their_line(fixtures, tmp_path):
    d = _copy(fixtures, tmp_path)
    text = (d / "toy.inter").read_text()
    (d / "toy.inter").write_text(text.replace("u1\ti2\t4\t20", "u1\ti2\t4\tsoon"))
    with pytest.raises(DataError, match=r"toy.inter: column 'timestamp' line 5 has 'soon', not a timestamp"):
        load_recbole(d)
    (d / "toy.inter").write_text(text.replace("u2\ti1\t4\t10", "\ti1\t4\t10"))
    with pytest.raises(DataError, match=r"toy.inter: column 'user_id' is empty in 1 rows \(first: line 3\)"):
        load_recbole(d)
    (d / "toy.inter").write_text(text.replace("\t30\n", "\t2020-01-03\n").replace("\t10\n", "\t2020-01-01\n")
                                 .replace("\t20\n", "\t2020-01-02\n").replace("\t5\n", "\t2019-01-01\n")
                                 .replace("\t1\n", "\t2019-01-01\n"))
    ds = load_recbole(d, time_format="%Y-%m-%d")
    assert ds.catalog.item_ids[ds.interactions.seq(0)].tolist() == ["i1", "i2", "i3"]


def test_duplicate_item_rows(fixtures, tmp_path):
    d = _copy(fixtures, tmp_path)
    (d / "toy.item").write_text((d / "toy.item").read_text() + "i1\tother guitar\tgibson\t1.0\tmisc\n")
    with pytest.raises(DataError, match=r"toy.item: item_id: 1 duplicate item ids \('i1' x2\)"):
        load_recbole(d)
    assert load_recbole(d, duplicates="last").catalog.fields["brand"][-1] == "gibson"
