"""The `semid` command line on the hand-made Amazon fixture: help, data stats, run, refusal, tokenize, evaluate."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from semid.cli.main import app

FIXTURES = Path(__file__).resolve().parent / "fixtures"
TOY = str(FIXTURES / "amazon" / "Toy")
FAST = ["--train.epochs=1", "--train.progress=false", "--train.device=cpu"]
runner = CliRunner()


def _ok(args):
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    return " ".join(res.output.split())  # rich wraps long lines at the runner's 80 columns


def test_every_command_has_help():
    assert "run" in _ok(["--help"]) and "tokenize" in _ok(["--help"])
    for cmd in (["run"], ["train"], ["evaluate"], ["serve"], ["tokenize"], ["presets"], ["plot"], ["data", "stats"]):
        out = _ok([*cmd, "--help"])
        assert "Usage" in out, cmd


def test_data_stats_and_presets():
    out = _ok(["data", "stats", TOY])
    assert re.search(r"users", out) and re.search(r"items", out)
    assert "quickstart" in _ok(["presets"])
    bad = runner.invoke(app, ["data", "stats", str(FIXTURES / "nope")])
    assert bad.exit_code == 2 and "error" in bad.output


def test_run_prints_table_refuses_overwrite_and_rescores(tmp_path):
    rd = tmp_path / "pop"
    out = _ok(["run", "--dataset", TOY, "--run-dir", str(rd), "--tokenizer=none", "--model=popular", *FAST])
    assert "HR@10" in out and (rd / "metrics.json").exists()
    stored = json.loads((rd / "metrics.json").read_text())
    again = runner.invoke(app, ["run", "--dataset", TOY, "--run-dir", str(rd), "--tokenizer=none", "--model=popular"])
    assert again.exit_code == 2 and "already exists" in again.output  # never silently overwritten
    out = _ok(["evaluate", str(rd)])
    assert f"{stored['HR@10']:.4f}" in out and "stored" in out
    assert runner.invoke(app, ["evaluate", str(rd), "--split", "train"]).exit_code == 2
    # the saved config re-runs the same job
    out2 = _ok(["run", "--config", str(rd / "config.json"), "--run-dir", str(tmp_path / "again")])
    assert json.loads((tmp_path / "again" / "metrics.json").read_text())["HR@10"] == stored["HR@10"]
    assert "HR@10" in out2


def test_unknown_override_and_preset_are_named(tmp_path):
    res = runner.invoke(app, ["run", "--dataset", TOY, "--run-dir", str(tmp_path / "x"), "--train.epochz=3"])
    assert res.exit_code != 0 and "epochz" in (res.output + repr(res.exception))
    res = runner.invoke(app, ["run", "--preset", "nope", "--run-dir", str(tmp_path / "y")])
    assert res.exit_code == 2 and "unknown preset" in res.output


def test_tokenize_writes_ids_and_prints_the_conflict_split(tmp_path):
    out = _ok(["tokenize", "--tokenizer", "fusid", "--dataset", TOY, "--out", str(tmp_path / "ids"),
               "--fusid.pq.n_sub=2", "--fusid.pq.K=4", "--fusid.fusion.hidden=32", "--fusid.fusion.d_sub=8",
               "--fusid.training.epochs=1", "--fusid.training.progress=false", "--fusid.pairs_per_epoch=32",
               "--fusid.pq.resolve=reassign", "--fusid.features.cache=false"])
    assert "raw conflict rate" in out and "identical inputs" in out and "unique IDs of 2 tokens" in out
    report = json.loads((tmp_path / "ids" / "ids" / "report.json").read_text())
    assert report["n_levels_final"] == 2 and report["conflict_rate_final"] == 0.0
    res = runner.invoke(app, ["tokenize", "--dataset", TOY, "--out", str(tmp_path / "ids")])
    assert res.exit_code == 2 and "already exists" in res.output


@pytest.mark.parametrize("args", [["evaluate", "/no/such/run"], ["plot", "/no/such/run"]])
def test_missing_run_dir_is_a_clear_error(args):
    res = runner.invoke(app, args)
    assert res.exit_code != 0 and "/no/such/run" in (res.output + repr(res.exception))


def test_run_name_cannot_write_outside_runs(tmp_path, monkeypatch):
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    _ok(["run", "--dataset", TOY, "--tokenizer=none", "--model=popular", "--name=../../x", *FAST])
    assert (work / "runs" / "_.._x" / "metrics.json").exists()
    assert not (tmp_path / "x").exists() and not (tmp_path / "a" / "x").exists()


def test_overwrite_of_cwd_or_a_foreign_folder_deletes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("keep me")
    res = runner.invoke(app, ["run", "--dataset", TOY, "--run-dir", ".", "--overwrite", "--tokenizer=none",
                              "--model=popular", *FAST])
    assert res.exit_code == 2 and "current directory" in " ".join(res.output.split())
    assert (tmp_path / "notes.txt").read_text() == "keep me"
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "table.csv").write_text("a,b")
    res = runner.invoke(app, ["run", "--dataset", TOY, "--run-dir", "data", "--overwrite", "--tokenizer=none",
                              "--model=popular", *FAST])
    assert res.exit_code == 2 and "not a semid run" in " ".join(res.output.split())
    assert (tmp_path / "data" / "table.csv").read_text() == "a,b"


def test_unresolved_run_dir_does_not_overwrite_a_finished_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    base = ["--dataset", TOY, "--tokenizer=none", "--model=popular", *FAST]
    _ok(["run", "--run-dir", "existing_run", *base])
    before = (tmp_path / "existing_run" / "metrics.json").read_text()
    res = runner.invoke(app, ["run", "--run-dir", "nonexistent/../existing_run", *base, "--seed=5"])
    assert res.exit_code == 2 and "already exists" in res.output
    assert (tmp_path / "existing_run" / "metrics.json").read_text() == before
    assert json.loads((tmp_path / "existing_run" / "config.json").read_text())["seed"] == 0


def test_evaluate_refuses_a_tampered_artifact_naming_it(tmp_path):
    import numpy as np

    rd = tmp_path / "pop"
    _ok(["run", "--dataset", TOY, "--run-dir", str(rd), "--tokenizer=none", "--model=popular", *FAST])
    counts = rd / "model" / "counts.npy"
    np.save(counts, np.load(counts)[::-1])
    res = runner.invoke(app, ["evaluate", str(rd)])
    out = " ".join(res.output.split())
    assert res.exit_code == 2 and "counts.npy" in out and "SHA-256" in out
