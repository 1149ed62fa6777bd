"""Code tuples: reading index files and the one-hot round trip."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from semid.data import codes_to_onehot, onehot_to_codes, read_code_index
from semid.errors import DataError


def test_roundtrip_tuple_feature_tuple():
    rng = np.random.default_rng(0)
    sizes = [256, 16, 7, 3]
    codes = np.stack([rng.integers(0, s, 50) for s in sizes], axis=1)
    codes[4] = -1
    feats = codes_to_onehot(codes, sizes)
    assert feats.shape == (50, sum(sizes)) and feats.dtype == np.float32
    assert (feats[4] == 0).all() and (feats.sum(1)[np.arange(50) != 4] == len(sizes)).all()
    np.testing.assert_array_equal(onehot_to_codes(feats, sizes), codes)
    w = codes_to_onehot(codes, sizes, weights=[1.0, 0.5, 0.25, 0.125])
    assert w[0, :256].sum() == 1.0 and w[0, 256:272].sum() == 0.5
    np.testing.assert_array_equal(onehot_to_codes(w, sizes), codes)


def test_read_json_index_any_levels(tmp_path):
    p = tmp_path / "D.index_x.json"
    p.write_text(json.dumps({"0": ["<p_3>", "<q_9>"], "2": ["<p_0>", "<q_1>"]}))
    codes, sizes = read_code_index(p)
    assert codes.tolist() == [[3, 9], [-1, -1], [0, 1]] and sizes == [4, 16]
    codes, _ = read_code_index(p, n_items=5)
    assert codes.shape == (5, 2)
    p.write_text(json.dumps({"0": [1, 2], "1": [3, 0]}))
    codes, sizes = read_code_index(p)  # plain integers: sizes are max + 1, no power-of-two rounding
    assert codes.tolist() == [[1, 2], [3, 0]] and sizes == [4, 3]


def test_read_npy_parquet(tmp_path):
    arr = np.array([[1, 2], [0, 5]])
    np.save(tmp_path / "c.npy", arr)
    codes, sizes = read_code_index(tmp_path / "c.npy")
    assert codes.tolist() == arr.tolist() and sizes == [2, 6]
    pq.write_table(pa.table({"item": [1, 0], "codes": [[7, 1], [2, 3]]}), tmp_path / "c.parquet")
    codes, sizes = read_code_index(tmp_path / "c.parquet")
    assert codes.tolist() == [[2, 3], [7, 1]] and sizes == [8, 4]


def test_bad_code_files(tmp_path):
    p = tmp_path / "c.json"
    p.write_text(json.dumps({"0": ["<a_1>", "<b_2>"], "1": ["<a_1>"]}))
    with pytest.raises(DataError, match="has 1 code levels, others have 2"):
        read_code_index(p)
    p.write_text(json.dumps({"0": ["a1"]}))
    with pytest.raises(DataError, match="code token 'a1'"):
        read_code_index(p)
    with pytest.raises(DataError, match="not found"):
        read_code_index(tmp_path / "none.json")


def test_real_mql4grec_index_roundtrip(shared_data):
    codes, sizes = read_code_index(
        shared_data / "amazon-mql4grec" / "Instruments" / "Instruments.index_vitemb.json"
    )
    assert codes.shape == (6250, 4) and sizes == [256] * 4
    np.testing.assert_array_equal(onehot_to_codes(codes_to_onehot(codes, sizes), sizes), codes)


def test_code_file_with_a_repeated_item_key(tmp_path):
    p = tmp_path / "D.index_lemb.json"
    p.write_text('{"0": ["<a_1>", "<b_2>"], "1": ["<a_3>", "<b_4>"], "0": ["<a_5>", "<b_6>"]}')
    with pytest.raises(DataError, match=r"D.index_lemb.json: 1 duplicate item keys \(0 x2\)"):
        read_code_index(p)
    codes, _ = read_code_index(p, duplicates="first")
    assert codes[0].tolist() == [1, 2]


def test_ragged_parquet_codes_are_a_clear_error(tmp_path):
    p = tmp_path / "codes.parquet"
    pq.write_table(pa.table({"codes": pa.array([[1, 2], [3], [4, 5]], pa.list_(pa.int64()))}), p)
    with pytest.raises(DataError, match=r"codes.parquet: column 'codes' has tuples of different lengths or missing ones \(row 2 has \[3\]"):
        read_code_index(p)
