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
    import torch

    threads = torch.get_num_threads()  # main() sets the process's count: restore it for the other tests
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import bench_playlists

        yield bench_playlists
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
        torch.set_num_threads(threads)


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
    items = ["eval_valid=false", "yes-sasrec:train.epochs=2", "yes-fusid-gpt2:features=meta=text:title,artist"]
    assert bench.set_overrides(items, "yes-sasrec") == {"eval_valid": "false", "train.epochs": "2"}
    assert bench.set_overrides(items, "yes-fusid-gpt2") == {"eval_valid": "false",
                                                            "features": "meta=text:title,artist"}
    assert bench.set_overrides(items, "yes-popular") == {"eval_valid": "false"}
    with pytest.raises(SystemExit, match="key=value"):
        bench.set_overrides(["train.epochs"], "yes-sasrec")
    # the seed and the dataset name each row's run directory: an override would mislabel the runs
    for kv in ("seed=3", "yes-sasrec:data.dataset=/x"):
        with pytest.raises(SystemExit, match="--seeds / --dataset"):
            bench.set_overrides([kv], "yes-sasrec")


def test_set_naming_a_row_that_is_not_run_is_refused(bench, tmp_path):
    data = _write_playlists(tmp_path / "pl")
    with pytest.raises(SystemExit, match="yes-sasrc"):
        bench.main(["--dataset", str(data), "--rows", "yes-popular,yes-sasrec", "--seeds", "0",
                    "--set", "yes-sasrc:train.epochs=1", "--run-root", str(tmp_path / "runs")])


def test_seed_level_t_matches_a_hand_computation(bench):
    # diffs 0.01, 0.03: mean 0.02, sd 0.01414, se 0.01, t = 2 on 1 df; two-sided p = 1 - 2 atan(2) / pi
    m, half, p = bench.seed_level_t([0.01, 0.03])
    assert m == pytest.approx(0.02)
    assert half == pytest.approx(12.7062 * 0.01, rel=1e-4)
    assert p == pytest.approx(1 - 2 * np.arctan(2) / np.pi, rel=1e-6)
    assert bench.seed_level_t([0.0, 0.0])[2] == 1.0


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

    # another torch thread count reorders float reductions, so the runs are not the ones this call would make
    bench.main([*argv, "--set", "yes-sasrec:train.epochs=2", "--threads", "2"])
    assert [r["reused"] for r in json.loads(out.read_text())] == [False, False]
