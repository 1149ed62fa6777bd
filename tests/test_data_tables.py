"""Generic tables: CSV/JSONL/parquet interactions, item tables, embeddings, and every bad-input path."""

from __future__ import annotations

import logging

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from semid.data import load_dataset, load_table
from semid.errors import DataError


@pytest.fixture
def tables(fixtures):
    return fixtures / "tables"


def test_interactions_only(tables):
    ds = load_table(tables / "interactions.csv")
    assert ds.interactions.user_ids.tolist() == ["alice", "bob", "carol"]
    ids = ds.catalog.item_ids
    assert ids[ds.interactions.seq(0)].tolist() == ["a", "c", "007"]  # by timestamp; "007" kept as a string
    assert ids[ds.interactions.seq(1)].tolist() == ["b", "a"]
    assert load_dataset(tables / "interactions.csv").interactions.n_interactions == 6


def test_item_table_fields_embeddings_and_logged_drop(tables, caplog):
    with caplog.at_level(logging.WARNING):
        ds = load_table(tables / "interactions.csv", items=tables / "items.jsonl")
    assert "1 interactions (1 distinct items, e.g. ['zzz'])" in caplog.text
    assert "dropped 1 users whose sequences became empty" in caplog.text
    cat = ds.catalog
    assert cat.item_ids.tolist() == ["007", "a", "b", "c"]
    assert ds.interactions.user_ids.tolist() == ["alice", "bob"]
    assert cat.fields["title"] == ["Bond", "Alpha", "Beta", None]
    assert cat.fields["genres"] == [["action", "spy"], ["drama"], None, None]
    assert cat.fields["year"] == ["1962", None, "2001", "1999"]
    assert "vec" not in cat.fields and cat.embeddings["vec"].shape == (4, 2)


def test_strict_raises_on_absent_items(tables):
    with pytest.raises(DataError, match="absent from the item table"):
        load_table(tables / "interactions.csv", items=tables / "items.jsonl", strict=True)


def test_unknown_column_named(tables):
    with pytest.raises(
        DataError, match=r"no column 'uid' \(user_col\); columns are \['user', 'item', 'timestamp'\]"
    ):
        load_table(tables / "interactions.csv", user_col="uid")
    with pytest.raises(DataError, match="no column 'asin'"):
        load_table(tables / "interactions.csv", items=tables / "items.jsonl", item_id_col="asin")


def test_malformed_json_line(tables):
    with pytest.raises(DataError, match=r"bad.jsonl: line 3 is not valid JSON"):
        load_table(tables / "bad.jsonl")


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="interaction table not found"):
        load_table(tmp_path / "nope.csv")


def test_empty_sequences_dropped_or_error(tmp_path, caplog):
    p = tmp_path / "i.csv"
    p.write_text("user,item\n")
    with pytest.raises(DataError, match="no interactions left"):
        load_table(p)
    items = tmp_path / "items.csv"
    items.write_text("item,title\nx,X\n")
    p.write_text("user,item\nu1,x\nu2,y\n")
    with caplog.at_level(logging.WARNING):
        ds = load_table(p, items=items)
    assert ds.interactions.user_ids.tolist() == ["u1"]
    assert "dropped 1 users whose sequences became empty" in caplog.text


def test_parquet_and_npy_embeddings(tmp_path, tables):
    inter = tmp_path / "i.parquet"
    pq.write_table(pa.table({"uid": ["u", "u", "v"], "iid": ["a", "b", "a"], "t": [2, 1, 5]}), inter)
    emb = tmp_path / "text.npy"
    np.save(emb, np.arange(6, dtype=np.float32).reshape(3, 2))
    (tmp_path / "text.ids.txt").write_text("b\nzz\na\n")  # zz unknown -> ignored
    pq.write_table(
        pa.table({"iid": ["a"], "v": pa.array([[1.0, 2.0, 3.0]], pa.list_(pa.float32()))}),
        tmp_path / "img.parquet",
    )
    ds = load_table(
        inter,
        user_col="uid",
        item_col="iid",
        time_col="t",
        embeddings={"text": emb, "img": tmp_path / "img.parquet"},
    )
    cat = ds.catalog
    assert cat.item_ids.tolist() == ["a", "b"]
    assert ds.interactions.seq(0).tolist() == [1, 0]  # t=1 (b) before t=2 (a)
    np.testing.assert_array_equal(cat.embeddings["text"], [[4, 5], [0, 1]])
    np.testing.assert_array_equal(cat.masks["img"], [True, False])
    assert cat.field_coverage()["emb:img"] == 0.5
    # JSON id list form
    (tmp_path / "ids.json").write_text('["a", "b", "c"]')
    ds2 = load_table(inter, user_col="uid", item_col="iid", embeddings={"t": (emb, tmp_path / "ids.json")})
    np.testing.assert_array_equal(ds2.catalog.embeddings["t"], [[0, 1], [2, 3]])


def test_embedding_nan_and_row_count(tmp_path, tables):
    emb = tmp_path / "e.npy"
    np.save(emb, np.array([[1.0, np.nan], [0.0, 1.0]], dtype=np.float32))
    (tmp_path / "e.ids.txt").write_text("a\nb\n")
    with pytest.raises(DataError, match=r"e.npy: NaN/inf in 1 rows \(first row 0, item 'a'\)"):
        load_table(tables / "interactions.csv", embeddings=emb)
    np.save(emb, np.ones((3, 2), dtype=np.float32))
    with pytest.raises(DataError, match="3 embedding rows but 2 item ids"):
        load_table(tables / "interactions.csv", embeddings=emb)
    (tmp_path / "e.ids.txt").unlink()
    with pytest.raises(DataError, match="no item-id list for this .npy"):
        load_table(tables / "interactions.csv", embeddings=emb)


# ----------------------------------------------------------------------------- boundary checks
def _csv(tmp_path, text, name="i.csv"):
    p = tmp_path / name
    p.write_text(text)
    return p


def _order(ds):
    return [ds.catalog.item_ids[s].tolist() for s in ds.interactions.to_lists()]


def test_one_bad_timestamp_is_an_error_naming_its_line(tmp_path):
    # before: one "abc" turned the column into text and "10" sorted before "9"
    p = _csv(tmp_path, "user,item,timestamp\nu,a,10\nu,b,abc\nu,c,9\n")
    with pytest.raises(DataError, match=r"i.csv: column 'timestamp' line 3 has 'abc', not a timestamp"):
        load_table(p)


def test_us_dates_need_time_format_and_then_sort_chronologically(tmp_path):
    p = _csv(tmp_path, "user,item,timestamp\nu,a,1/2/2020\nu,b,12/1/2019\nu,c,2/1/2020\n")
    with pytest.raises(DataError, match=r"line 2 has '1/2/2020'.*--data.time_format"):
        load_table(p)
    assert _order(load_table(p, time_format="%m/%d/%Y")) == [["b", "a", "c"]]  # as text: a, b, c
    with pytest.raises(DataError, match=r"line 4 has '31/12/2020', not a timestamp .* format '%m/%d/%Y'"):
        load_table(_csv(tmp_path, "user,item,timestamp\nu,a,1/2/2020\nu,b,12/1/2019\nu,c,31/12/2020\n"),
                   time_format="%m/%d/%Y")


def test_iso_dates_and_datetimes_sort_chronologically(tmp_path):
    p = _csv(tmp_path, "user,item,timestamp\nu,a,2020-01-02\nu,b,2019-12-01\nu,c,2020-01-02T00:00:01Z\n")
    assert _order(load_table(p)) == [["b", "a", "c"]]
    p = _csv(tmp_path, "user,item,timestamp\nu,a,2020-01-02 10:00\nu,b,2019-12-01 00:00\nu,c,2020-01-02 9:00\n")
    with pytest.raises(DataError, match="line 4 has '2020-01-02 9:00'"):  # not zero-padded: not ISO
        load_table(p)
    jl = tmp_path / "i.jsonl"
    jl.write_text('{"user": "u", "item": "a", "timestamp": 5}\n{"user": "u", "item": "b", "timestamp": "x"}\n')
    with pytest.raises(DataError, match=r"i.jsonl: column 'timestamp' row 2 has a str \('x'\), row 1 a number"):
        load_table(jl)
    jl.write_text('{"user": "u", "item": "a", "timestamp": "5"}\n{"user": "u", "item": "b", "timestamp": "x"}\n')
    with pytest.raises(DataError, match=r"i.jsonl: column 'timestamp' row 2 has 'x', not a timestamp"):
        load_table(jl)


def test_empty_user_field_is_an_error_not_a_user_named_empty(tmp_path):
    with pytest.raises(DataError, match=r"column 'user' is empty in 1 rows \(first: line 3\)"):
        load_table(_csv(tmp_path, "user,item\nu,a\n,b\nu,c\n"))
    with pytest.raises(DataError, match=r"column 'item' is empty in 1 rows \(first: line 2\)"):
        load_table(_csv(tmp_path, "user,item\nu,  \nu,c\n"))


def test_duplicate_items_in_item_table_error_first_last(tmp_path, caplog):
    inter = _csv(tmp_path, "user,item\nu,a\nu,b\n")
    items = _csv(tmp_path, "item,title\na,A\nb,B\na,A2\n", "items.csv")
    with pytest.raises(DataError, match=r"items.csv: column 'item': 1 duplicate item ids \('a' x2\).*first"):
        load_table(inter, items=items)
    assert load_table(inter, items=items, duplicates="first").catalog.fields["title"] == ["A", "B"]
    with caplog.at_level(logging.WARNING):
        last = load_table(inter, items=items, duplicates="last").catalog
    assert dict(zip(last.item_ids.tolist(), last.fields["title"], strict=True)) == {"a": "A2", "b": "B"}
    assert "kept the last occurrence of each, dropped 1 rows" in caplog.text
    with pytest.raises(DataError, match="duplicates='middle'"):
        load_table(inter, items=items, duplicates="middle")


def test_vector_column_nan_ragged_missing(tmp_path):
    inter = _csv(tmp_path, "user,item\nu,a\nu,b\nu,c\n")
    items = tmp_path / "items.jsonl"
    rows = ['{"item": "a", "vec": [1.0, 2.0]}', None, '{"item": "c", "vec": [0.5, 0.5]}']
    cases = {
        '{"item": "b", "vec": [1.0, NaN]}': r"column 'vec' has non-finite vectors in 1 rows \(first: row 2 \(item 'b'\)\)",
        '{"item": "b", "vec": [1.0]}': r"column 'vec' has ragged vectors in 1 rows \(first: row 2 \(item 'b'\)\)",
        '{"item": "b", "vec": [1.0, null]}': r"column 'vec' has missing vectors in 1 rows",
        '{"item": "b", "vec": [1e300, 0.0]}': r"column 'vec' has non-finite vectors",  # inf once float32
    }
    for bad, msg in cases.items():
        items.write_text("\n".join([rows[0], bad, rows[2]]) + "\n")
        with pytest.raises(DataError, match=msg):
            load_table(inter, items=items)


def test_empty_jsonl_is_a_clear_error(tmp_path):
    p = tmp_path / "i.jsonl"
    p.write_text("")
    with pytest.raises(DataError, match=r"i.jsonl: no JSON objects \(the file is empty\)"):
        load_table(p)
    p.write_text("\n\n")
    with pytest.raises(DataError, match="no JSON objects"):
        load_table(p)


def test_float64_npy_checked_after_the_float32_cast(tmp_path, tables):
    emb = tmp_path / "e.npy"
    np.save(emb, np.array([[1.0, 0.0], [1e300, 1.0]], dtype=np.float64))  # finite in float64, inf in float32
    (tmp_path / "e.ids.txt").write_text("a\nb\n")
    with pytest.raises(DataError, match=r"e.npy: NaN/inf in 1 rows \(first row 1, item 'b'\) after casting to float32"):
        load_table(tables / "interactions.csv", embeddings=emb)


def test_duplicate_embedding_ids(tmp_path, tables):
    emb = tmp_path / "e.npy"
    np.save(emb, np.arange(6, dtype=np.float32).reshape(3, 2))
    (tmp_path / "e.ids.txt").write_text("a\nb\na\n")
    with pytest.raises(DataError, match=r"e.ids.txt: 1 duplicate item ids in the embedding id list \('a' x2\)"):
        load_table(tables / "interactions.csv", embeddings=emb)
    ds = load_table(tables / "interactions.csv", embeddings=emb, duplicates="last")
    a = ds.catalog.index_of()["a"]
    np.testing.assert_array_equal(ds.catalog.embeddings["e"][a], [4, 5])


def test_catalog_duplicate_ids_are_named():
    from semid.data.types import Catalog

    with pytest.raises(DataError, match=r"Catalog.item_ids has 1 duplicate item ids \('a' x3\)"):
        Catalog(item_ids=np.array(["a", "b", "a", "a"]))
