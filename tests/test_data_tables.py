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
