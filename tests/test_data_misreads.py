"""User files that loaders once misread without a word: each case is now loaded exactly or refused by name."""

from __future__ import annotations

import json
import logging

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from semid.data import load_table
from semid.data.recbole import load_recbole
from semid.errors import DataError


def _seqs(ds) -> dict[str, list[str]]:
    ids, inter = ds.catalog.item_ids, ds.interactions
    return {inter.user_ids[u]: ids[inter.seq(u)].tolist() for u in range(inter.n_users)}


@pytest.fixture
def inter_abc(tmp_path):
    p = tmp_path / "inter.csv"
    p.write_text("user,item\nu,A\nu,B\nu,C\n")
    return p


def _npy(tmp_path, ids_text: str, name: str = "e.ids.txt"):
    np.save(tmp_path / "e.npy", np.arange(9, dtype=np.float32).reshape(3, 3) + 1)
    (tmp_path / name).write_text(ids_text, encoding="utf-8")
    return tmp_path / "e.npy"


def test_embeddings_matching_no_item_are_an_error(tmp_path, inter_abc):
    with pytest.raises(DataError, match=r"none of its 3 embedding ids is an item id.*\['a', 'b', 'c'\]"):
        load_table(inter_abc, embeddings=_npy(tmp_path, "a\nb\nc\n"))


def test_embedding_rows_for_unknown_items_are_a_warning_with_examples(tmp_path, inter_abc, caplog):
    with caplog.at_level(logging.WARNING, logger="semid.data"):
        ds = load_table(inter_abc, embeddings=_npy(tmp_path, "A\nB\nzz\n"))
    assert "ignored 1 embedding rows" in caplog.text and "zz" in caplog.text
    assert ds.catalog.masks["e"].tolist() == [True, True, False]


def test_byte_order_mark_in_an_id_list_is_not_part_of_the_first_id(tmp_path, inter_abc):
    ds = load_table(inter_abc, embeddings=_npy(tmp_path, "\ufeffA\nB\nC\n"))
    assert ds.catalog.masks["e"].all()
    assert ds.catalog.embeddings["e"][0].tolist() == [1.0, 2.0, 3.0]


def test_float_ids_in_a_json_id_list_are_refused(tmp_path):
    p = tmp_path / "inter.csv"
    p.write_text("user,item\nu,1\nu,2\nu,3\n")
    _npy(tmp_path, json.dumps([1.0, 2.0, 3.0]), name="e.ids.json")
    with pytest.raises(DataError, match="floating-point ids"):
        load_table(p, embeddings=tmp_path / "e.npy")


def test_float_id_column_in_parquet_is_refused(tmp_path):
    p = tmp_path / "f.parquet"
    pq.write_table(pa.table({"user": ["u", "u"], "item": [1.0, 2.0]}), p)
    with pytest.raises(DataError, match=r"column 'item' holds floating-point ids \(first: 1.0 at row 1\)"):
        load_table(p)


def test_jsonl_ids_mixing_1_and_1_point_0_are_refused_not_merged(tmp_path):
    p = tmp_path / "mix.jsonl"
    p.write_text("\n".join(json.dumps({"user": "u", "item": v}) for v in (1, 1.0, 2, 2.5)) + "\n")
    with pytest.raises(DataError, match="floating-point ids"):
        load_table(p)


def test_csv_item_fields_are_kept_as_written(tmp_path):
    inter = tmp_path / "inter.csv"
    inter.write_text("user,item\nu,007\nu,7\n")
    items = tmp_path / "items.csv"
    items.write_text("item,title,year,code\n007,NA,2001,0012\n7,,1999.0,1.10\n")
    f = load_table(inter, items).catalog.fields
    assert f["title"] == ["NA", None]  # only an empty cell is missing
    assert f["year"] == ["2001", "1999.0"]
    assert f["code"] == ["0012", "1.10"]


def test_repeated_header_column_is_an_error(tmp_path):
    p = tmp_path / "inter.csv"
    p.write_text("user,item,item\nu,a,b\n")
    with pytest.raises(DataError, match="1 duplicate column names \\('item' x2\\)"):
        load_table(p)


def test_nanosecond_timestamps_order_exactly(tmp_path):
    p = tmp_path / "ns.parquet"
    base = 1_700_000_000_000_000_000
    ts = pa.array([base + 3, base + 1, base + 2], type=pa.timestamp("ns"))
    pq.write_table(pa.table({"user": ["u"] * 3, "item": ["c", "a", "b"], "timestamp": ts}), p)
    assert _seqs(load_table(p)) == {"u": ["a", "b", "c"]}


def _recbole(tmp_path, rows: list[tuple[str, str, str]]):
    d = tmp_path / "cap"
    d.mkdir()
    lines = ["user_id:token\titem_id_list:token_seq\titem_id:token"] + ["\t".join(r) for r in rows]
    (d / "cap.inter").write_text("\n".join(lines) + "\n")
    return d


def test_recbole_capped_histories_keep_every_target(tmp_path):
    # a producer capping histories at 2 items: every row past the second has the same length
    d = _recbole(tmp_path, [("u", "a", "b"), ("u", "a b", "c"), ("u", "b c", "d"), ("u", "c d", "e"),
                            ("v", "x", "y")])
    assert _seqs(load_recbole(d)) == {"u": ["a", "b", "c", "d", "e"], "v": ["x", "y"]}


def test_recbole_full_histories_and_repeated_rows(tmp_path):
    d = _recbole(tmp_path, [("u", "a b", "c"), ("u", "a", "b"), ("u", "a b c", "d")])
    assert _seqs(load_recbole(d)) == {"u": ["a", "b", "c", "d"]}


def test_recbole_rows_that_are_not_one_sequence_are_named(tmp_path):
    d = _recbole(tmp_path, [("u", "a", "b"), ("u", "x y", "z")])
    with pytest.raises(DataError, match=r"line 3: this row's history \['x', 'y'\].*end \['a', 'b'\]"):
        load_recbole(d)


def _parquet_times(tmp_path, times: list[str]):
    p = tmp_path / "t.parquet"
    table = pa.table({"user": ["u"] * len(times), "item": [f"i{k}" for k in range(len(times))], "timestamp": times})
    pq.write_table(table, p, row_group_size=2)  # every row group is its own batch
    return p


def test_streamed_bad_timestamp_names_its_row_in_the_file(tmp_path):
    p = _parquet_times(tmp_path, ["5", "4", "3", "x"])
    with pytest.raises(DataError, match="row 4 has 'x'"):
        load_table(p)


def test_streamed_time_column_cannot_switch_from_numbers_to_dates(tmp_path):
    # numbers in the first row group, ISO dates in the second: one kind for the whole column
    p = _parquet_times(tmp_path, ["5", "4", "2020-01-01", "2020-01-02"])
    with pytest.raises(DataError, match="row 3 has '2020-01-01'"):
        load_table(p)
