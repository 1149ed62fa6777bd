"""Item feature matrices read with bounded memory: parquet vector columns in record batches, ``.npy``
memory-mapped; same matrices and same errors as the list-based reference (``find_bad_vectors``)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from semid.data.stream_features import read_parquet_vectors, vectors_from_arrow
from semid.data.tables import read_embedding_file
from semid.data.validate import find_bad_vectors
from semid.errors import DataError

CASES = {
    "fine": [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]],
    "missing row": [[1.0, 2.0], None, [5.0, 6.0]],
    "missing entry": [[1.0, 2.0], [3.0, None], [5.0, 6.0]],
    "ragged first": [[1.0], [3.0, 4.0], [5.0, 6.0], [7.0, 8.0]],
    "ragged later": [[1.0, 2.0], [3.0, 4.0], [5.0]],
    "ragged then missing": [[1.0, 2.0], [3.0], None],
    "missing then ragged": [None, [1.0, 2.0], [3.0]],
    "non-finite": [[1.0, float("nan")], [3.0, 4.0], [float("inf"), 0.0]],
    "float64 overflow": [[1e300, 1.0], [1.0, 1.0]],
    "all missing": [None, None],
    "empty": [],
}


def _same(got, ref):
    (gm, gp), (rm, rp) = got, ref
    assert gp == rp
    if rm is None:
        assert gm is None
    else:
        assert gm.dtype == np.float32
        np.testing.assert_array_equal(gm, rm)


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("chunks", [1, 2])
def test_vectors_from_arrow_equals_find_bad_vectors(name, chunks):
    rows = CASES[name]
    typ = pa.list_(pa.float64() if "float64" in name else pa.float32())
    cut = len(rows) // 2
    col = pa.chunked_array([pa.array(rows[:cut], typ), pa.array(rows[cut:], typ)] if chunks == 2 and rows
                           else [pa.array(rows, typ)], typ)
    _same(vectors_from_arrow(col), find_bad_vectors(rows))


def test_fixed_size_and_sliced_lists():
    rows = [[float(i), float(-i), 0.5] for i in range(10)]
    fixed = pa.array(rows, pa.list_(pa.float32(), 3))
    _same(vectors_from_arrow(fixed), find_bad_vectors(rows))
    _same(vectors_from_arrow(pa.array(rows, pa.list_(pa.float32())).slice(3, 5)), find_bad_vectors(rows[3:8]))


def test_parquet_vectors_in_batches_equal_whole_table_and_name_bad_rows(tmp_path):
    rng = np.random.default_rng(0)
    mat = rng.normal(size=(50, 4)).astype(np.float32)
    ids = [f"i{j}" for j in range(50)]
    pq.write_table(pa.table({"item": ids, "v": pa.array(list(mat), pa.list_(pa.float32()))}), tmp_path / "e.parquet",
                   row_group_size=7)
    got_ids, got, col = read_parquet_vectors(tmp_path / "e.parquet", id_col="item", batch_rows=5)
    assert col == "v" and got_ids.tolist() == ids
    np.testing.assert_array_equal(got, mat)
    got_ids, got = read_embedding_file(tmp_path / "e.parquet")
    np.testing.assert_array_equal(got, mat)
    rows = [list(map(float, r)) for r in mat]
    rows[33] = rows[33][:3]
    pq.write_table(pa.table({"item": ids, "v": rows}), tmp_path / "bad.parquet", row_group_size=7)
    with pytest.raises(DataError, match=r"'v' has ragged vectors in 1 rows \(first: row 34 \(item 'i33'\)\)"):
        read_parquet_vectors(tmp_path / "bad.parquet", id_col="item", batch_rows=5)
    pq.write_table(pa.table({"item": ids[:-1] + [None], "v": list(mat)}), tmp_path / "noid.parquet")
    with pytest.raises(DataError, match="'item' is empty in 1 rows \\(first: row 50\\)"):
        read_parquet_vectors(tmp_path / "noid.parquet", id_col="item", batch_rows=8)


def test_npy_is_memory_mapped_and_checked(tmp_path):
    mat = np.arange(12, dtype=np.float32).reshape(4, 3)
    np.save(tmp_path / "e.npy", mat)
    ids, got = read_embedding_file(tmp_path / "e.npy", ["a", "b", "c", "d"])
    assert isinstance(got, np.memmap)  # float32 on disk: no copy in memory
    np.testing.assert_array_equal(got, mat)
    big = mat.astype(np.float64)
    big[2, 1] = 1e300  # finite in float64, inf in float32
    np.save(tmp_path / "f.npy", big)
    with pytest.raises(DataError, match=r"NaN/inf in 1 rows \(first row 2, item 'c'\)"):
        read_embedding_file(tmp_path / "f.npy", ["a", "b", "c", "d"])


PROBE = """
import json, os, sys
import numpy as np
from semid.data.tables import attach_embedding, read_embedding_file
from semid.data.types import Catalog
import semid.data.stream_features, pyarrow.parquet  # code imported lazily, not data
n_items = int(sys.argv[2])
cat = Catalog(item_ids=[f"i{j}" for j in range(n_items)])
cat.index_of()
before = int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")  # RSS after imports
ids, mat = read_embedding_file(sys.argv[1], None if sys.argv[1].endswith(".parquet") else [f"i{j}" for j in range(n_items)])
attach_embedding(cat, "v", ids, mat, source=sys.argv[1])
del ids, mat
hwm = [int(x.split()[1]) * 1024 for x in open("/proc/self/status") if x.startswith("VmHWM")][0]
print(json.dumps({"peak": hwm - before, "size": cat.embeddings["v"].nbytes + cat.masks["v"].nbytes}))
"""
FIXED = 40 * 2**20  # Arrow's parquet reader, a few decoded batches, allocator caches
ID_BYTES = 256  # per item: its id as Python strings (the file's, the duplicate check's, the catalog lookup's)


@pytest.mark.parametrize(("fmt", "order", "copies"), [("parquet", "catalog", 1), ("parquet", "shuffled", 2),
                                                   ("npy", "catalog", 2)])
def test_200k_item_features_load_within_twice_the_result(tmp_path, fmt, order, copies):
    # 200k items x 64 float32: the catalog matrix is 51 MB; the list-based reader built 12.8M Python floats.
    # Rows in catalog order become the catalog's matrix (parquet: 1 copy; npy: the mapped pages + 1 copy);
    # rows in another order are copied into a new one (2 copies).
    if not Path("/proc/self/statm").exists():
        pytest.skip("needs /proc (Linux) to read the process's resident size")
    n, d = 200_000, 64
    mat = np.random.default_rng(0).normal(size=(n, d)).astype(np.float32)
    ids = np.array([f"i{j}" for j in range(n)])
    if order == "shuffled":
        ids = ids[np.random.default_rng(1).permutation(n)]
    path = tmp_path / f"emb.{fmt}"
    if fmt == "npy":
        np.save(path, mat)
    else:
        vals = pa.array(mat.reshape(-1))
        col = pa.ListArray.from_arrays(pa.array(np.arange(0, n * d + 1, d, dtype=np.int32)), vals)
        pq.write_table(pa.table({"item": ids.tolist(), "v": col}), path, row_group_size=1 << 15)
    del mat
    out = subprocess.run([sys.executable, "-c", PROBE, str(path), str(n)], capture_output=True, text=True,
                         timeout=120, check=True)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    # peak RSS growth over the process's size after imports: those copies plus a constant
    assert r["peak"] <= copies * r["size"] + ID_BYTES * n + FIXED, r
