"""`semid data check`: every problem of a dataset in one report (the loaders stop at the first), exit 1
when one is fatal, and no finding at all on the shipped and shared datasets."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from semid.cli.main import app
from semid.data.check import check_dataset

runner = CliRunner()


def _by_problem(report):
    return {f.problem: f for f in report.findings}


def test_movielens_folder_with_three_problems_reports_all(fixtures, tmp_path):
    d = tmp_path / "ml"
    shutil.copytree(fixtures / "movielens", d)
    (d / "movies.csv").write_text((d / "movies.csv").read_text() + "10,Again (1995),Drama\n")
    lines = (d / "ratings.csv").read_text().splitlines()
    lines[2] = "1,30,3.5,abc"
    lines[5] = "2,40,2.0,xyz"
    lines[3] = ",20,5.0,90"
    (d / "ratings.csv").write_text("\n".join(lines) + "\n")
    report = check_dataset(d)
    found = _by_problem(report)
    assert report.fatal and report.format == "movielens"
    assert found["bad timestamps in 'timestamp'"].count == 2
    assert found["bad timestamps in 'timestamp'"].examples == ["line 3: 'abc'", "line 6: 'xyz'"]
    assert found["empty or non-integer userId"].examples == ["line 4: None"]
    assert found["duplicate movieIds"].examples == ["10 x2"]
    assert found["duplicate movieIds"].file.endswith("movies.csv")
    result = runner.invoke(app, ["data", "check", str(d)])
    assert result.exit_code == 1
    assert "FATAL" in result.output and "duplicate movieIds" in result.output and "--data.duplicates" in result.output


def test_table_problems_counted_with_first_examples(tmp_path):
    p = tmp_path / "i.csv"
    p.write_text("user,item,timestamp\nu,a,1\n,b,2\nu,c,abc\nv,a,4\n  ,b,5\nv,c,6/1/2020\n")
    found = _by_problem(check_dataset(p))
    assert found["empty user"].count == 2 and found["empty user"].examples == ["line 3", "line 6"]
    assert found["bad timestamps in 'timestamp'"].examples == ["line 4: 'abc'", "line 7: '6/1/2020'"]
    assert "--data.time_format" in found["bad timestamps in 'timestamp'"].fix
    # the same file is fine once the format is named, apart from the empty users
    p.write_text("user,item,timestamp\nu,a,1/2/2020\nu,b,1/3/2020\nu,c,12/1/2019\n")
    assert check_dataset(p, time_format="%m/%d/%Y").findings == []
    assert list(_by_problem(check_dataset(p))) == ["bad timestamps in 'timestamp'"]


def test_amazon_problems_reported_together(fixtures, tmp_path):
    d = tmp_path / "Toy"
    shutil.copytree(fixtures / "amazon" / "Toy", d)
    (d / "Toy.inter.json").write_text('{"0": [0, 1], "1": [1, 2, 4], "0": [5], "2": [3, 0], "9": [2, 4]}')
    (d / "Toy.item2id").write_text((d / "Toy.item2id").read_text().replace("B000CCC222", "B000AAA000"))
    report = check_dataset(d)
    found = _by_problem(report)
    assert found["duplicate user keys"].examples == ["0 x2"]
    assert found["duplicate ASINs"].examples == ["'B000AAA000' x2"]
    assert found["users missing from user2id"].examples == ["9"]
    assert all(f.fatal for f in report.findings)
    # first/last repairs the user keys but never the positional ASIN duplicate
    found = _by_problem(check_dataset(d, duplicates="first"))
    assert "duplicate user keys" not in found and found["duplicate ASINs"].fatal


def test_recbole_empty_and_duplicate_items(fixtures, tmp_path):
    d = tmp_path / "toy"
    shutil.copytree(fixtures / "recbole" / "toy", d)
    (d / "toy.item").write_text((d / "toy.item").read_text() + "i1\tx\ty\t1.0\tz\n")
    (d / "toy.inter").write_text((d / "toy.inter").read_text().replace("u3\ti2", "u3\t"))
    found = _by_problem(check_dataset(d))
    assert found["empty item_id"].examples == ["line 7"]
    assert found["duplicate item ids"].examples == ["'i1' x2"]


def test_documented_drops_are_reported_but_not_fatal(fixtures):
    report = check_dataset(fixtures / "recbole" / "toy")  # i9 is absent from toy.item: dropped
    (drop,) = report.findings
    assert not drop.fatal and drop.count == 1 and "['i9']" in drop.examples[0]
    result = runner.invoke(app, ["data", "check", str(fixtures / "recbole" / "toy"), "--json"])
    assert result.exit_code == 0
    out = json.loads(result.output)
    assert out["fatal"] is False and out["findings"][0]["problem"] == "rows the loader drops"


def test_nothing_to_evaluate_is_fatal(tmp_path):
    p = tmp_path / "i.csv"
    p.write_text("user,item\nu,a\nv,b\nw,a\n")
    found = _by_problem(check_dataset(p))
    assert found["nothing to evaluate"].fatal


def test_clean_fixtures_have_no_finding(fixtures):
    for path in ("movielens", "movielens-1m", "amazon/Toy", "mpd", "tables/interactions.csv"):
        report = check_dataset(fixtures / path)
        assert report.findings == [], (path, report.findings)
    result = runner.invoke(app, ["data", "check", str(fixtures / "movielens")])
    assert result.exit_code == 0 and "no problems found" in result.output


def test_damaged_builtin_archive_says_reinstall(tmp_path, monkeypatch):
    from semid.data import registry

    data = registry.builtin_path("movielens").read_bytes()
    cut = tmp_path / "ml-latest-small.tar.xz"
    cut.write_bytes(data[: len(data) // 2])
    monkeypatch.setattr(registry, "builtin_path", lambda name: cut)
    (finding,) = check_dataset("movielens").findings
    assert finding.fatal and "reinstall semid" in finding.examples[0]


def test_unknown_path_and_bad_option():
    result = runner.invoke(app, ["data", "check", "/nonexistent/dataset"])
    assert result.exit_code == 1 and "not found" in result.output
    result = runner.invoke(app, ["data", "check", "movielens", "--duplicates", "keep"])
    assert result.exit_code == 2 and "duplicates='keep'" in result.output


@pytest.mark.parametrize(
    "rel", ["movielens", "amazon-lcrec/Instruments", "amazon-lcrec/Games", "amazon-mql4grec/Instruments",
            "yes-playlists"],
)
def test_shared_datasets_have_no_finding(rel, shared_data):
    target = rel if rel == "movielens" else shared_data / rel
    if rel != "movielens" and not target.is_dir():
        pytest.skip(f"{target} not present")
    report = check_dataset(target)
    assert report.findings == [], report.findings
    assert report.stats["users"] > 0 and report.stats["interactions"] > 0
