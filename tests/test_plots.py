"""`semid plot`: PNGs from a run directory's train log and codes; bad inputs named."""

import json

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from semid.errors import DataError  # noqa: E402
from semid.plots import plot_code_usage, plot_run  # noqa: E402


def _run_dir(tmp_path):
    (tmp_path / "model").mkdir(parents=True)
    log = [{"epoch": e, "train_loss": 3.0 - e, "valid": {"NDCG@10": 0.01 * e}} for e in range(3)]
    (tmp_path / "model" / "train_log.jsonl").write_text("\n".join(json.dumps(r) for r in log))
    ids = tmp_path / "tokenizer" / "ids"
    ids.mkdir(parents=True)
    np.save(ids / "codes_raw.npy", np.random.default_rng(0).integers(0, 8, size=(50, 3)))
    (ids / "report.json").write_text(json.dumps({"codebook_size": 8}))
    return tmp_path


def test_plot_run_writes_pngs(tmp_path):
    paths = plot_run(_run_dir(tmp_path))
    assert [p.name for p in paths] == ["training.png", "ids.png"]
    for p in paths:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_inputs_are_named(tmp_path):
    with pytest.raises(DataError, match="no model/train_log.jsonl"):
        plot_run(tmp_path)
    d = _run_dir(tmp_path / "r")
    (d / "model" / "train_log.jsonl").write_text('{"epoch": 0, "train_loss": 1}\n{broken')
    with pytest.raises(DataError, match="train_log.jsonl:2"):
        plot_run(d)
    with pytest.raises(DataError, match="codebook sizes"):
        plot_code_usage(np.zeros((4, 2), dtype=int), [8], tmp_path / "x.png")
