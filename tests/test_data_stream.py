"""Streaming parquet loader: same Dataset as the in-memory loader, peak memory within 2x of the result."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from semid.data.stream import stream_interactions
from semid.data.tables import load_table
from semid.errors import DataError


def _table(n: int, n_users: int, n_items: int, seed: int, *, shuffled: bool) -> pa.Table:
    rng = np.random.default_rng(seed)
    users = rng.integers(0, n_users, n)
    times = np.sort(rng.integers(0, 10 * n, n)) if not shuffled else rng.integers(0, 20, n)  # ties when shuffled
    return pa.table({"user": pa.array([f"u{u}" for u in users]), "item": pa.array(rng.integers(0, n_items, n)),
                     "timestamp": pa.array(times)})


def _same(a, b) -> None:
    np.testing.assert_array_equal(a.interactions.offsets, b.interactions.offsets)
    np.testing.assert_array_equal(a.interactions.items, b.interactions.items)
    np.testing.assert_array_equal(a.interactions.user_ids, b.interactions.user_ids)
    np.testing.assert_array_equal(np.asarray(a.catalog.item_ids), np.asarray(b.catalog.item_ids))


@pytest.mark.parametrize("shuffled", [False, True])
@pytest.mark.parametrize("batch_rows", [7, 1 << 16])
def test_stream_equals_in_memory_loader(tmp_path, shuffled, batch_rows):
    t = _table(500, 40, 30, 1, shuffled=shuffled)
    pq.write_table(t, tmp_path / "i.parquet", row_group_size=64)
    pacsv.write_csv(t, tmp_path / "i.csv")
    ref = load_table(tmp_path / "i.csv")  # the in-memory loader (CSV path)
    inter, cat = stream_interactions(tmp_path / "i.parquet", batch_rows=batch_rows, progress=False)
    _same(ref, type(ref)(name=ref.name, catalog=cat, interactions=inter))
    _same(ref, load_table(tmp_path / "i.parquet"))  # load_table streams parquet


def test_stream_with_item_table_drops_unknown_items_like_in_memory(tmp_path, caplog):
    t = _table(300, 20, 30, 2, shuffled=True)
    pq.write_table(t, tmp_path / "i.parquet", row_group_size=50)
    pacsv.write_csv(t, tmp_path / "i.csv")
    pq.write_table(pa.table({"item": [str(i) for i in range(0, 30, 2)], "title": ["x"] * 15}), tmp_path / "items.parquet")
    ref = load_table(tmp_path / "i.csv", tmp_path / "items.parquet")
    got = load_table(tmp_path / "i.parquet", tmp_path / "items.parquet")
    _same(ref, got)
    assert "absent from the item table" in caplog.text
    with pytest.raises(DataError, match="absent from the item table"):
        load_table(tmp_path / "i.parquet", tmp_path / "items.parquet", strict=True)


def test_stream_refuses_empty_ids_naming_the_row(tmp_path):
    pq.write_table(pa.table({"user": ["a", None, "b"], "item": [1, 2, 3]}), tmp_path / "i.parquet")
    with pytest.raises(DataError, match="'user' is empty at row 2"):
        load_table(tmp_path / "i.parquet")
    pq.write_table(pa.table({"user": ["a", "b", ""], "item": [1, 2, 3]}), tmp_path / "j.parquet")
    with pytest.raises(DataError, match="empty string at row 3"):
        load_table(tmp_path / "j.parquet")


PROBE = """
import json, sys
import numpy as np
from semid.data.stream import stream_interactions
import semid.data.tables, semid.progress  # the modules it imports lazily: code, not data
import os
before = int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")  # RSS after imports
inter, cat = stream_interactions(sys.argv[1], progress=False)
# VmHWM (this process's peak RSS; ru_maxrss would carry the forking pytest process's peak over exec)
hwm = [int(x.split()[1]) * 1024 for x in open("/proc/self/status") if x.startswith("VmHWM")][0]
peak = hwm - before
size = inter.offsets.nbytes + inter.items.nbytes + inter.user_ids.nbytes + np.asarray(cat.item_ids).nbytes
print(json.dumps({"peak": peak, "size": size, "nnz": len(inter.items)}))
"""


def _probe(path: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE, str(path)], capture_output=True, text=True, timeout=120,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("shuffled", [False, True])
def test_one_million_rows_load_within_twice_the_result(tmp_path, shuffled):
    # 1M interactions, 10k users, 5k items (MovieLens-20M's density); time-ordered (a log) or not.
    n = 1_000_000
    rng = np.random.default_rng(0)
    users = rng.integers(0, 10_000, n)
    t = pa.table({"user": pa.array(users.astype(str)), "item": pa.array(rng.integers(0, 5_000, n)),
                  "timestamp": pa.array(np.arange(n) if not shuffled else rng.permutation(n))})
    pq.write_table(t, tmp_path / "big.parquet", row_group_size=1 << 16)
    del t
    if not Path("/proc/self/statm").exists():
        pytest.skip("needs /proc (Linux) to read the process's resident size")
    r = _probe(tmp_path / "big.parquet")
    assert r["nnz"] == n
    # Peak = growth of the process's peak RSS over its size after imports (everything: numpy, Arrow, Python).
    # Beyond the result: a constant FIXED (Arrow's parquet reader, one decoded row group, one batch's
    # temporaries, memory the allocators keep). At 1M rows the constant dominates (result ~8 MB).
    assert r["peak"] <= 2 * r["size"] + FIXED, r


FIXED = 64 * 2**20


def test_file_out_of_time_order_costs_no_more_memory_than_a_sorted_one(tmp_path):
    # The same 2M rows twice: times in file order, and the same times shuffled (a third pass and a sort).
    # The sort's timestamps live in the result's own buffer (uint32 offsets beside int32 codes), so the
    # peaks agree but for the sort's constant scratch (~8 MB: SORT_BLOCK rows of keys and order); a separate
    # int64 time column would add 8 bytes a row on top (16 MB here).
    if not Path("/proc/self/statm").exists():
        pytest.skip("needs /proc (Linux) to read the process's resident size")
    n = 2_000_000
    rng = np.random.default_rng(1)
    cols = {"user": pa.array(rng.integers(0, 20_000, n).astype(str)), "item": pa.array(rng.integers(0, 9_000, n))}
    times = 1_600_000_000 + np.arange(n)  # unix seconds
    pq.write_table(pa.table({**cols, "timestamp": pa.array(times)}), tmp_path / "sorted.parquet",
                   row_group_size=1 << 16)
    pq.write_table(pa.table({**cols, "timestamp": pa.array(rng.permutation(times))}), tmp_path / "shuffled.parquet",
                   row_group_size=1 << 16)
    a, b = _probe(tmp_path / "sorted.parquet"), _probe(tmp_path / "shuffled.parquet")
    assert a["nnz"] == b["nnz"] == n
    assert b["peak"] - a["peak"] < 6 * n, (a, b, b["peak"] - a["peak"])


@pytest.mark.parametrize("kind", ["ns_epochs", "fractional", "whole_floats", "negative"])
def test_out_of_order_times_beyond_32_bits_or_fractional_sort_like_in_memory(tmp_path, kind):
    # Times that do not fit uint32 offsets (a span over 2^32, fractions) take the separate 8-byte sort key;
    # whole floats and negative times use the offsets. Either way the result equals the in-memory loader's.
    rng = np.random.default_rng(5)
    n = 400
    base = {"ns_epochs": 1_600_000_000_000_000_000 + rng.integers(0, 10**12, n),
            "fractional": rng.integers(0, 30, n) + rng.choice([0.0, 0.25, 0.5], n),
            "whole_floats": rng.integers(0, 30, n).astype(np.float64),
            "negative": rng.integers(-50, 50, n)}[kind]
    t = pa.table({"user": pa.array([f"u{u}" for u in rng.integers(0, 25, n)]),
                  "item": pa.array(rng.integers(0, 40, n)), "timestamp": pa.array(base)})
    pq.write_table(t, tmp_path / "i.parquet", row_group_size=64)
    pacsv.write_csv(t, tmp_path / "i.csv")
    ref = load_table(tmp_path / "i.csv")
    inter, cat = stream_interactions(tmp_path / "i.parquet", batch_rows=50, progress=False)
    _same(ref, type(ref)(name=ref.name, catalog=cat, interactions=inter))
    assert inter.items.dtype == np.int64


ARROW_PROBE = """
import sys
import pyarrow as pa
from semid.data.stream import stream_interactions
inter, _ = stream_interactions(sys.argv[1], progress=False)
print(len(inter.items), pa.default_memory_pool().max_memory())
"""


def test_arrow_memory_stays_one_row_group_not_the_whole_file(tmp_path):
    # 500k rows in 62 row groups of 8,192: decoded row group by row group Arrow peaks at ~0.5 MiB; one reader
    # over the whole file kept every group's buffers (3.6 MiB here, 160 MiB at 10M rows).
    n = 500_000
    rng = np.random.default_rng(0)
    t = pa.table({"user": pa.array(np.char.add("u", rng.integers(0, 5000, n).astype(str))),
                  "item": pa.array(rng.integers(0, 2000, n)), "timestamp": pa.array(np.arange(n))})
    pq.write_table(t, tmp_path / "s.parquet", row_group_size=8192)
    out = subprocess.run([sys.executable, "-c", ARROW_PROBE, str(tmp_path / "s.parquet")], capture_output=True,
                         text=True, timeout=120, check=True)
    nnz, arrow_peak = map(int, out.stdout.split())
    assert nnz == n
    assert arrow_peak < 1.5 * 2**20, arrow_peak
