"""Run directories (refused overwrites, resolved paths, sanitised names), state trees and the manifest."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from semid.errors import CheckpointError, SemidError
from semid.io import RUN_MARKER, is_run_dir, make_run_dir, read_state_tree, safe_run_name, write_state_tree
from semid.manifest import verify_manifest, write_manifest


def _finished_run(path):
    d = make_run_dir(path)
    (d / "config.json").write_text(json.dumps({"data": {}, "model": "popular"}))
    (d / "metrics.json").write_text("{}")
    return d


def test_new_run_dir_gets_a_marker_and_is_resolved(tmp_path):
    d = make_run_dir(tmp_path / "a" / ".." / "b")
    assert d == (tmp_path / "b").resolve() and (d / RUN_MARKER).is_file() and is_run_dir(d)


def test_overwrite_refuses_a_folder_that_is_not_a_run(tmp_path):
    mine = tmp_path / "my_thesis"
    mine.mkdir()
    (mine / "chapter1.tex").write_text("years of work")
    with pytest.raises(SemidError, match="not a semid run directory"):
        make_run_dir(mine, overwrite=True)
    assert (mine / "chapter1.tex").read_text() == "years of work"
    # A config.json that is not semid's does not make it a run either.
    (mine / "config.json").write_text(json.dumps({"theme": "dark"}))
    with pytest.raises(SemidError, match="not a semid run directory"):
        make_run_dir(mine, overwrite=True)
    assert (mine / "chapter1.tex").exists()
    with pytest.raises(SemidError, match="not a semid run directory"):
        make_run_dir(mine, resume=True)


def test_overwrite_never_deletes_cwd_its_parents_or_home(tmp_path, monkeypatch):
    run = _finished_run(tmp_path / "run")
    monkeypatch.chdir(run)
    with pytest.raises(SemidError, match="current directory"):
        make_run_dir(".", overwrite=True)
    with pytest.raises(SemidError, match="current directory"):
        make_run_dir("..", overwrite=True)
    assert (run / "metrics.json").exists()
    monkeypatch.setenv("HOME", str(run))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SemidError, match="home"):
        make_run_dir(run, overwrite=True)
    with pytest.raises(SemidError, match="home"):
        make_run_dir("~", overwrite=True)
    assert (run / "metrics.json").exists()


def test_overwrite_replaces_a_run(tmp_path):
    run = _finished_run(tmp_path / "run")
    d = make_run_dir(run, overwrite=True)
    assert d == run.resolve() and not (d / "metrics.json").exists() and (d / RUN_MARKER).exists()
    # A run made before the marker existed (config.json only) can still be replaced.
    old = tmp_path / "old"
    old.mkdir()
    (old / "config.json").write_text(json.dumps({"data": {}, "model": "popular"}))
    make_run_dir(old, overwrite=True)
    assert not (old / "config.json").exists()


def test_unresolved_path_cannot_slip_past_the_existing_run_check(tmp_path, monkeypatch):
    """``nonexistent/../run`` is ``run``: it must be refused like ``run`` itself, not written into."""
    monkeypatch.chdir(tmp_path)
    _finished_run(tmp_path / "existing_run")
    with pytest.raises(SemidError, match="already exists"):
        make_run_dir("nonexistent/../existing_run")
    assert not (tmp_path / "nonexistent").exists()
    assert (tmp_path / "existing_run" / "metrics.json").exists()


def test_a_file_is_not_a_run_dir(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(SemidError, match="is a file"):
        make_run_dir(tmp_path / "f", overwrite=True)
    assert (tmp_path / "f").read_text() == "x"


@pytest.mark.parametrize(
    "name, expected",
    [("../../x", "_.._x"), ("/etc/passwd", "_etc_passwd"), ("..", "run"), ("fusid+gpt2", "fusid+gpt2"),
     ("a b", "a_b"), (".hidden", "hidden")],
)
def test_run_names_stay_one_path_component(name, expected, tmp_path):
    clean = safe_run_name(name)
    assert clean == expected
    assert (tmp_path / "runs" / clean).resolve().parent == (tmp_path / "runs").resolve()


def test_resume_drops_the_stale_manifest(tmp_path):
    run = _finished_run(tmp_path / "run")
    write_manifest(run)
    make_run_dir(run, resume=True)
    assert not (run / "manifest.json").exists()


def test_state_tree_round_trip(tmp_path):
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.98))
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    tree = {"optimizer": opt.state_dict(), "extra": [1, 2.5, None, "s", (1, 2)], 3: {"__odd": True}}
    write_state_tree(tmp_path / "optim", tree)
    back = read_state_tree(tmp_path / "optim")
    assert back["extra"] == [1, 2.5, None, "s", (1, 2)] and back[3] == {"__odd": True}
    assert back["optimizer"]["param_groups"] == tree["optimizer"]["param_groups"]
    for pid, st in tree["optimizer"]["state"].items():
        for k, v in st.items():
            torch.testing.assert_close(back["optimizer"]["state"][pid][k], v, rtol=0, atol=0)
    assert not list(tmp_path.glob("*.pt"))


def test_manifest_names_a_changed_file(tmp_path, caplog):
    run = _finished_run(tmp_path / "run")
    np.save(run / "codes.npy", np.arange(12).reshape(6, 2))
    (run / "w.bin").write_bytes(bytes(range(256)))
    assert not verify_manifest(run)  # no manifest yet: a warning, not an error
    assert "no manifest.json" in caplog.text
    write_manifest(run)
    assert verify_manifest(run)
    (run / "plots").mkdir()
    (run / "plots" / "curve.png").write_bytes(b"later")  # written after the run: not checked
    assert verify_manifest(run)

    data = bytearray((run / "w.bin").read_bytes())
    data[100] ^= 1  # one bit
    (run / "w.bin").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"w\.bin: SHA-256 does not match"):
        verify_manifest(run)
    data[100] ^= 1
    (run / "w.bin").write_bytes(bytes(data))
    codes = np.load(run / "codes.npy")
    np.save(run / "codes.npy", codes[::-1])  # same size, rows shuffled
    with pytest.raises(CheckpointError, match=r"codes\.npy: SHA-256"):
        verify_manifest(run)
    os.remove(run / "codes.npy")
    with pytest.raises(CheckpointError, match=r"codes\.npy: missing"):
        verify_manifest(run)


def test_legacy_pt_weights_never_run_code(tmp_path):
    """Older runs' ``ckpt/best.pt`` is read with weights_only=True: a crafted pickle raises, runs nothing."""
    from semid.models.protocol import load_weights

    pwned = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {pwned}",))

    torch.save({"weight": Payload()}, tmp_path / "best.pt")
    with pytest.raises(CheckpointError, match="best.pt: corrupt, unsafe"):
        load_weights(torch.nn.Linear(2, 2), tmp_path / "best.pt")
    assert not pwned.exists()
    good = torch.nn.Linear(2, 2)
    torch.save(good.state_dict(), tmp_path / "ok.pt")
    other = torch.nn.Linear(2, 2)
    load_weights(other, tmp_path / "ok.pt")
    torch.testing.assert_close(other.weight, good.weight)
