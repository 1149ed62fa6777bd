"""benchmarks/bench_playlists.py: per-row overrides, reuse of finished runs only when their config matches, and
the paired comparison against SASRec on a generated playlist folder."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import bench_playlists

        yield bench_playlists
    finally:
        sys.path.remove(str(REPO / "benchmarks"))


def _write_playlists(root: Path, n_songs: int = 24, n_lists: int = 160, seed: int = 0) -> Path:
    """A folder in the yes-playlists layout: playlists walk along a ring of songs, so order carries signal."""
    rng = np.random.default_rng(seed)
    root.mkdir()
    lists = []
    for _ in range(n_lists):
        start, length = rng.integers(n_songs), rng.integers(3, 8)
        lists.append([(start + j) % n_songs for j in range(length)])
    header = " ".join(str(1000 + i) for i in range(n_songs))
    counts = " ".join("1" for _ in range(n_songs))
    (root / "train.txt").write_text("\n".join([header, counts, *(" ".join(map(str, p)) + " " for p in lists)]) + "\n")
    (root / "song_hash.txt").write_text("".join(f"{i}\tSong {i}\tArtist {i % 5}\n" for i in range(n_songs)))
    (root / "tag_hash.txt").write_text("0, rock\n1, pop\n")
    (root / "tags.txt").write_text("".join("#\n" if i % 4 == 0 else f"{i % 2}\n" for i in range(n_songs)))
    return root


def test_set_overrides_apply_to_every_row_or_one(bench):
    items = ["seed=3", "yes-sasrec:train.epochs=2", "yes-fusid-gpt2:features=meta=text:title,artist"]
    assert bench.set_overrides(items, "yes-sasrec") == {"seed": "3", "train.epochs": "2"}
    assert bench.set_overrides(items, "yes-fusid-gpt2") == {"seed": "3", "features": "meta=text:title,artist"}
    assert bench.set_overrides(items, "yes-popular") == {"seed": "3"}
    with pytest.raises(SystemExit, match="key=value"):
        bench.set_overrides(["train.epochs"], "yes-sasrec")


def test_reuse_keeps_only_a_run_of_the_same_config_and_pairs_rows_with_sasrec(bench, tmp_path, capsys):
    data = _write_playlists(tmp_path / "pl")
    out = tmp_path / "rows.json"
    argv = ["--dataset", str(data), "--rows", "yes-popular,yes-sasrec", "--seeds", "0", "--groups", "none",
            "--run-root", str(tmp_path / "runs"), "--out", str(out), "--reuse",
            "--set", "yes-sasrec:train.epochs=1", "--set", "yes-sasrec:sasrec.hidden=16",
            "--set", "yes-sasrec:sasrec.n_layers=1", "--set", "eval_valid=false"]
    bench.main(argv)
    first = json.loads(out.read_text())
    assert [r["reused"] for r in first] == [False, False]
    sas_dir = Path(first[1]["run_dir"])
    assert json.loads((sas_dir / "config.json").read_text())["train"]["epochs"] == 1  # the per-row override ran
    printed = capsys.readouterr().out
    assert "paired per-user differences against SASRec" in printed and "| yes-popular | 1 |" in printed

    bench.main(argv)  # same configs: both rows reused, same figures
    second = json.loads(out.read_text())
    assert [r["reused"] for r in second] == [True, True]
    assert [r["test"] for r in second] == [r["test"] for r in first]

    bench.main([*argv, "--set", "yes-sasrec:train.epochs=2"])  # SASRec's config changed: it alone reruns
    third = json.loads(out.read_text())
    assert [r["reused"] for r in third] == [True, False]
    assert json.loads((sas_dir / "config.json").read_text())["train"]["epochs"] == 2
