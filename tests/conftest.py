"""Shared pytest fixtures: real-data location (skips cleanly when absent), small torch thread count."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("SEMID_SHARED_DATA", REPO.parent / "shared" / "data"))
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def pytest_configure(config):
    try:
        import torch

        torch.set_num_threads(min(2, os.cpu_count() or 1))
    except ImportError:
        pass


def pytest_collection_modifyitems(config, items):
    import torch

    slow_ok = os.environ.get("SEMID_SLOW") == "1"
    for item in items:
        if "gpu" in item.keywords and not torch.cuda.is_available():
            item.add_marker(pytest.mark.skip(reason="needs CUDA"))
        if "slow" in item.keywords and not slow_ok:
            item.add_marker(pytest.mark.skip(reason="slow; set SEMID_SLOW=1"))


@pytest.fixture
def shared_data() -> Path:
    """Path to ../shared/data; skips the test when it is not there."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture
def fixtures() -> Path:
    return FIXTURES


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def free_port():
    """A function returning a free loopback TCP port (rendezvous of multi-process tests)."""
    return _free_port


def _write_ring_dataset(root: Path, n_items: int, n_users: int = 40) -> Path:
    """An Amazon-format folder ``root/Tiny``: ``n_users`` users walking the item ring i, i+1, i+2, ... (5-8
    items each, seeded), so the next item is learnable, and unique two-level codes (i // 6, i % 6) like
    MQL4GRec's index files."""
    d = root / "Tiny"
    d.mkdir()
    rng = np.random.default_rng(0)
    inter = {}
    for u in range(n_users):
        start, n = int(rng.integers(n_items)), int(rng.integers(5, 9))
        inter[str(u)] = [(start + t) % n_items for t in range(n)]
    (d / "Tiny.inter.json").write_text(json.dumps(inter))
    (d / "Tiny.index_lemb.json").write_text(
        json.dumps({str(i): [f"<a_{i // 6}>", f"<b_{i % 6}>"] for i in range(n_items)}))
    return d


@pytest.fixture(scope="session")
def ring_dataset():
    """``ring_dataset(root, n_items)`` writes the tiny item-ring dataset and returns its folder."""
    return _write_ring_dataset
