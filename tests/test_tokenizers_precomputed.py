"""Precomputed-ID tokenizer: duplicates become unique, missing tuples get a documented fallback."""

from __future__ import annotations

import json

import numpy as np
import pytest

from semid.data.types import Catalog
from semid.errors import DataError
from semid.tokenizers.precomputed import PrecomputedTokenizer


def _catalog():
    codes = np.array([[1, 2, 3], [1, 2, 3], [0, 0, 1], [-1, -1, -1], [1, 2, 3]])
    return Catalog(item_ids=[f"i{k}" for k in range(5)], codes={"lemb": codes}, code_sizes={"lemb": [4, 4, 4]})


def test_duplicates_resolved_uniquely_and_reported(tmp_path):
    tok = PrecomputedTokenizer(source="lemb").fit(_catalog())
    assert len({tuple(r) for r in tok.codes_.tolist()}) == 5
    assert tok.codes_[[0, 1, 4], -1].tolist() == [0, 1, 2]  # extra digit in item order
    assert tok.report_["conflict_rate"] == pytest.approx(3 / 5)
    assert tok.report_["n_items_without_codes"] == 1 and (tok.codes_[3, :2] == 4).all()
    assert tok.decode(tok.encode(np.arange(5))).tolist() == list(range(5))
    tok.save(tmp_path)
    back = PrecomputedTokenizer.load(tmp_path)
    assert back.source == "lemb" and (back.codes_ == tok.codes_).all()


def test_reads_a_code_file(tmp_path):
    path = tmp_path / "X.index_lemb.json"
    path.write_text(json.dumps({"0": ["<a_1>", "<b_2>"], "1": ["<a_3>", "<b_0>"]}))
    cat = Catalog(item_ids=["x", "y"])
    tok = PrecomputedTokenizer(source=str(path)).fit(cat)
    assert tok.codes_.tolist() == [[1, 2], [3, 0]]


def test_unknown_source_is_named():
    with pytest.raises(DataError, match="nope"):
        PrecomputedTokenizer(source="nope").fit(_catalog())
