"""Collision resolution and the ID report, checked against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from semid.errors import CheckpointError
from semid.tokenizers.base import BaseTokenizer
from semid.tokenizers.ids import conflict_mask, id_report, resolve_collisions


def test_resolve_collisions_appends_digit_in_item_order():
    codes = np.array([[1, 2], [0, 0], [1, 2], [3, 3], [1, 2]])
    out, n = resolve_collisions(codes)
    assert n == 3
    assert out[:, -1].tolist() == [0, 0, 1, 0, 2]
    assert len({tuple(r) for r in out.tolist()}) == len(codes)


def test_no_collision_keeps_width_unless_asked():
    codes = np.array([[0, 1], [1, 0]])
    out, n = resolve_collisions(codes)
    assert n == 0 and out.shape == (2, 2)
    out2, _ = resolve_collisions(codes, always_append=True)
    assert out2.shape == (2, 3) and (out2[:, -1] == 0).all()


def test_id_report_by_hand():
    # 4 items, K=4: position 0 uses codes {0,1} (2/4), position 1 uses {0,1,2} (3/4); items 0 and 2 collide.
    codes = np.array([[0, 1], [1, 2], [0, 1], [1, 0]])
    r = id_report(codes, 4)
    assert r["conflict_rate"] == 0.5
    assert r["codebook_utilization"] == [0.5, 0.75]
    assert r["entropy_bits"][0] == pytest.approx(1.0)
    assert r["entropy_bits"][1] == pytest.approx(1.5)  # p = (1/4, 1/2, 1/4)
    assert conflict_mask(codes).tolist() == [True, False, True, False]


class _Fixed(BaseTokenizer):
    name = "fixed"

    def fit(self, codes):
        self._finalize(codes, [4, 4])
        return self


def test_base_tokenizer_round_trip(tmp_path):
    codes = np.array([[0, 1], [1, 2], [0, 1]])
    tok = _Fixed().fit(codes)
    assert tok.codes_.shape == (3, 3)
    assert tok.decode(tok.encode(np.arange(3))).tolist() == [0, 1, 2]
    assert tok.decode(np.array([[3, 3, 3]])).tolist() == [-1]
    with pytest.raises(IndexError, match="unknown item"):
        tok.encode(np.array([5]))
    tok.save(tmp_path)
    back = _Fixed.load(tmp_path)
    assert (back.codes_ == tok.codes_).all() and back.report_["conflict_rate"] == pytest.approx(2 / 3)
    (tmp_path / "ids" / "codes.npy").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="codes"):
        _Fixed.load(tmp_path)


def test_input_conflict_report_splits_forced_from_avoidable_conflicts():
    from semid.tokenizers.ids import input_conflict_report

    codes = np.array([[0, 1], [0, 1], [0, 1], [2, 3], [2, 3], [4, 5]])
    # items 0-2 share code and input (forced); items 3, 4 share a code with different inputs (avoidable)
    x = np.array([[0, 0], [0, 0], [0, 0], [1, 2], [1, 3], [5, 5]], dtype=np.float32)
    r = input_conflict_report(codes, x)
    assert r["n_duplicate_input_items"] == 3 and r["duplicate_input_rate"] == 0.5
    assert r["n_conflicting_items_distinct_inputs"] == 2 and r["conflict_rate_distinct_inputs"] == 2 / 6
    # item 2 now differs from 0 and 1 but shares their code: all three conflict avoidably, 0 and 1 stay duplicates
    x[2] = [9, 9]
    r = input_conflict_report(codes, x)
    assert r["n_duplicate_input_items"] == 2 and r["n_conflicting_items_distinct_inputs"] == 5
    assert input_conflict_report(np.arange(6)[:, None], x)["conflict_rate_distinct_inputs"] == 0.0


def test_conflict_summary_names_forced_part_and_id_length():
    from semid.tokenizers.ids import conflict_summary

    line = conflict_summary({"conflict_rate": 0.0013, "duplicate_input_rate": 0.0009,
                             "conflict_rate_distinct_inputs": 0.0004, "n_levels_final": 5, "n_items_reassigned": 10})
    assert line == ("raw conflict rate 0.0013 (0.0009 identical inputs, 0.0004 between different inputs); "
                    "unique IDs of 5 tokens (10 items reassigned)")
    assert conflict_summary({"conflict_rate": 0.0}) == "raw conflict rate 0.0000"
