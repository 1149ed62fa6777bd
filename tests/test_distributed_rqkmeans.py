"""Two CPU processes (gloo): k-means and the RQ-KMeans tokenizer fitted data-parallel, and `semid tokenize` on them.

Each rank assigns its contiguous slice of the rows; the per-cluster sums are accumulated in row order along the
ranks and the counts all-reduced, and rank 0 seeds on the rows one process seeds on. Against one process:
bitwise the same centroids, labels and codes, the same number of passes, and objectives within 1e-12 relative
(a sum of the ranks' float64 sums). On the old code, each rank fitting alone, the different slices give different
centroids, and the tokenizer's every pass assigns all items on every rank.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from semid.data.types import Catalog
from semid.errors import ConfigError
from semid.quantize.kmeans import KMeans, KMeansConfig
from semid.quantize.kmeans_distributed import ShardedKMeans
from semid.tokenizers.rqkmeans import RQKMeansConfig, RQKMeansTokenizer
from semid.train import distributed

N, D = 701, 12  # 701 rows: uneven slices 350 / 351
KM = KMeansConfig(n_iter=15, tol=0.0, seed=3)
KM_COARSE = KMeansConfig(n_iter=10, tol=0.0, seed=5, fit_sample=20, fit_min=0, refine_iter=3, init_sample=20)


@dataclasses.dataclass(frozen=True)
class _CoarseRQKMeansConfig(RQKMeansConfig):
    """RQ-KMeans whose levels take k-means' coarse phase (and a seeding sample) already at 701 items."""

    def kmeans(self, level: int) -> KMeansConfig:
        return dataclasses.replace(super().kmeans(level), fit_sample=4, fit_min=0, init_sample=8, refine_iter=3)


TOKENIZERS = {
    "full": RQKMeansConfig(n_codes=(16, 8, 8), n_iter=20),  # seeding on all rows, every pass on all rows
    "coarse": _CoarseRQKMeansConfig(n_codes=(16, 8), n_iter=20),  # coarse sample 64 / 32 rows, seeding 128 / 64
}
# semid tokenize on the conftest ring dataset (60 items), over the items' two-level code one-hots
TOKENIZE = {
    "rqkmeans": ["tokenize", "--tokenizer", "rqkmeans", "--rqkmeans.modality=lemb", "--rqkmeans.n_codes=[6,4]"],
    "rqvae": ["tokenize", "--tokenizer", "rqvae", "--rqvae.modality=lemb", "--rqvae.hidden=[16]",
              "--rqvae.latent_dim=4", "--rqvae.n_levels=2", "--rqvae.n_codes=8", "--rqvae.epochs=4",
              "--rqvae.batch_size=16", "--rqvae.device=cpu"],
}


def _blobs(n: int = N, d: int = D, seed: int = 0, dtype=np.float32) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(20, d)) * 4
    return (centers[rng.integers(20, size=n)] + rng.normal(size=(n, d))).astype(dtype)


def _catalog() -> Catalog:
    return Catalog(item_ids=np.arange(N).astype(str), embeddings={"text": _blobs()})


def _digest(arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def _kmeans_cases() -> dict:
    """name -> (k, config, x, init, rows of rank 0): fit on rows [0, cut) and [cut, N) of x."""
    x = _blobs()
    far = np.vstack([x[:3], np.full((1, D), 1e3, np.float32)])  # one centroid far away: its cluster empties
    return {
        "plain": (16, KM, x, None, None),
        "coarse_float64": (16, KM_COARSE, _blobs(900, 6, seed=12, dtype=np.float64), None, None),
        "empty_cluster": (4, KM, x, far, None),
        "uneven_100": (16, KM, x, None, 100),
        "rank1_empty": (16, KM, x, None, N),
    }


def _one_process_kmeans(name: str) -> dict:
    k, cfg, x, init, _ = _kmeans_cases()[name]
    km = KMeans(k, config=cfg).fit(x, init=init)
    return {"centroids": km.centroids_.tolist(), "labels": km.labels_.tolist(), "history": km.history_,
            "coarse_history": km.coarse_history_}


def _fit_tokenizer(name: str) -> dict:
    tok = RQKMeansTokenizer(config=TOKENIZERS[name])
    with distributed.local(enabled=not getattr(tok, "data_parallel", False)):  # as semid run and tokenize do
        tok.fit(_catalog())
    return {"codes": tok.codes_.tolist(), "codes_raw": tok.codes_raw_.tolist(),
            "centroids": [c.tolist() for c in tok.centroids_], "digest": _digest(tok.centroids_),
            "iterations": tok.report_["kmeans_iterations"], "mse": tok.report_["residual_mse"]}


def _worker(rank: int, port: int, out: str, dataset: str) -> None:
    torch.set_num_threads(1)
    distributed.init_local(rank, 2, port)
    from semid.quantize import kmeans, kmeans_distributed

    rows: list[int] = []  # rows of every nearest-centroid assignment on this rank

    def counted(x, *a, _assign=kmeans.assign, **kw):
        rows.append(len(x))
        return _assign(x, *a, **kw)

    kmeans.assign = kmeans_distributed.assign = counted
    result: dict = {"kmeans": {}, "tokenizer": {}}
    for name, (k, cfg, x, init, cut) in _kmeans_cases().items():
        cut = len(x) // 2 if cut is None else cut  # rank 1's first row (shard_range's split by default)
        own = x[:cut] if rank == 0 else x[cut:]
        km = ShardedKMeans(k, config=cfg).fit(own, init=init)
        # what each rank fitted before: its rows only
        alone = KMeans(k, config=cfg).fit(own, init=init).centroids_ if len(own) else np.zeros(0)
        result["kmeans"][name] = {"centroids": km.centroids_.tolist(), "labels": km.labels_.tolist(),
                                  "history": km.history_, "coarse_history": km.coarse_history_,
                                  "digest": _digest([km.centroids_]), "alone": _digest([alone])}
    for name in TOKENIZERS:
        rows.clear()
        result["tokenizer"][name] = _fit_tokenizer(name) | {"rows": list(rows)}
    # what each torchrun worker of `semid tokenize --nproc 2` runs: both ranks are given the same --out
    from semid.cli.main import app
    from semid.tokenizers.rqvae import RQVAETokenizer

    fitted_in_group = []  # whether collectives were on when the command called the tokenizer's fit
    for cls in (RQKMeansTokenizer, RQVAETokenizer):
        def spied(self, *a, _fit=cls.fit, **kw):
            fitted_in_group.append(distributed.active())
            return _fit(self, *a, **kw)
        cls.fit = spied
    result["cli"] = {}
    for name, args in TOKENIZE.items():
        res = CliRunner().invoke(app, [*args, "--dataset", dataset, "--out", str(Path(out) / name)])
        result["cli"][name] = {"exit_code": res.exit_code, "output": res.output}
    result["fitted_in_group"] = fitted_in_group
    (Path(out) / f"rank{rank}.json").write_text(json.dumps(result))
    distributed.shutdown()


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, ring_dataset):
    return str(ring_dataset(tmp_path_factory.mktemp("ring"), 60))


@pytest.fixture(scope="module")
def one_process(tmp_path_factory, dataset):
    torch.set_num_threads(1)
    from semid.cli.main import app

    out = tmp_path_factory.mktemp("one")
    for name, args in TOKENIZE.items():
        res = CliRunner().invoke(app, [*args, "--dataset", dataset, "--out", str(out / name)])
        assert res.exit_code == 0, res.output
    return {"kmeans": {name: _one_process_kmeans(name) for name in _kmeans_cases()},
            "tokenizer": {name: _fit_tokenizer(name) for name in TOKENIZERS}, "cli": out}


@pytest.fixture(scope="module")
def two_process(tmp_path_factory, one_process, free_port, dataset):
    out = tmp_path_factory.mktemp("dp_rqkmeans")
    torch.multiprocessing.start_processes(_worker, args=(free_port(), str(out), dataset), nprocs=2, join=True,
                                          start_method="fork")
    return out, [json.loads((out / f"rank{r}.json").read_text()) for r in range(2)]


def test_one_process_sharded_lloyd_is_lloyd():
    # the reference: kmeans.lloyd, which one process runs
    from semid.quantize.kmeans import lloyd
    from semid.quantize.kmeans_distributed import lloyd_sharded

    x = torch.from_numpy(_blobs())
    for init in (x[:16], torch.cat([x[:3], torch.full((1, D), 1e3)])):  # the second empties a cluster
        c, hist, lab = lloyd(x, init.clone(), 15, 0.0)
        c2, hist2, lab2 = lloyd_sharded(x, init.clone(), 15, 0.0)
        assert torch.equal(lab, lab2) and torch.equal(c2, c) and hist2 == hist
    assert ShardedKMeans(4, config=KM).fit(_blobs(50)).labels_.shape == (50,)  # no process group: KMeans.fit


@pytest.mark.parametrize("name", list(_kmeans_cases()))
def test_ranks_holding_different_rows_fit_the_one_process_clusters(two_process, one_process, name):
    _, ranks = two_process
    r0, r1 = (r["kmeans"][name] for r in ranks)
    one = one_process["kmeans"][name]
    assert r0["digest"] == r1["digest"]  # bitwise the same centroids on both ranks
    if name != "rank1_empty":  # fitted alone, the two slices give two different k-means (the old per-rank fit)
        assert r0["alone"] != r1["alone"]
    assert r0["labels"] + r1["labels"] == one["labels"]  # each rank's labels: its rows' 1-process labels
    assert r0["centroids"] == one["centroids"]  # bitwise
    for key in ("history", "coarse_history"):  # the same passes (tol=0: to the same fixed point)
        assert r0[key] == r1[key] and len(r0[key]) == len(one[key])
        np.testing.assert_allclose(r0[key], one[key], rtol=1e-12)
    if name == "coarse_float64":
        assert len(one["coarse_history"]) > 1
    if name == "empty_cluster":
        assert len(set(one["labels"])) == 4  # the far centroid's cluster was re-seeded


@pytest.mark.parametrize("name", list(TOKENIZERS))
def test_rqkmeans_codes_equal_the_one_process_codes(two_process, one_process, name):
    _, ranks = two_process
    r0, r1 = (r["tokenizer"][name] for r in ranks)
    one = one_process["tokenizer"][name]
    assert RQKMeansTokenizer.data_parallel
    assert r0["digest"] == r1["digest"]
    assert r0["codes_raw"] == r1["codes_raw"] == one["codes_raw"]
    assert r0["codes"] == one["codes"]
    assert r0["iterations"] == one["iterations"]
    assert r0["digest"] == one["digest"]  # bitwise the 1-process centroids of every level
    assert r0["mse"] == one["mse"]


@pytest.mark.parametrize("name", list(TOKENIZERS))
def test_each_rank_assigns_only_its_items_while_fitting(two_process, name):
    # Every Lloyd pass and residual update of a rank touches its 350 / 351 items; only the final coding of
    # all items (one pass per level, the same computation as transform) sees all 701. Per-rank fits (the
    # tokenizer inside distributed.local) would assign all 701 rows in every pass.
    _, ranks = two_process
    levels = len(TOKENIZERS[name].n_codes)
    for rank, r in enumerate(ranks):
        seen = r["tokenizer"][name]["rows"]
        lo, hi = (0, 350) if rank == 0 else (350, N)
        coarse = [n for n in seen if n not in (hi - lo, N)]  # coarse-phase passes over this rank's sample rows
        assert seen.count(N) == levels and seen.count(hi - lo) > levels
        assert bool(coarse) == (name == "coarse") and all(n < hi - lo for n in coarse)


@pytest.mark.parametrize("name", list(TOKENIZE))
def test_tokenize_under_a_process_group_writes_one_directory_with_the_one_process_codes(two_process, one_process,
                                                                                        name):
    out, ranks = two_process
    for r in ranks:
        assert r["cli"][name]["exit_code"] == 0, r["cli"][name]["output"]
        assert r["fitted_in_group"] == [True] * len(TOKENIZE)  # data-parallel fits: not inside local()
    assert f"{name} on" in ranks[0]["cli"][name]["output"] and ranks[1]["cli"][name]["output"] == ""  # rank 0 prints
    one = one_process["cli"] / name
    written = sorted(p.relative_to(out / name).as_posix() for p in (out / name).rglob("*"))
    assert written == sorted(p.relative_to(one).as_posix() for p in one.rglob("*"))
    for f in ("ids/codes.npy", "ids/codes_raw.npy"):
        np.testing.assert_array_equal(np.load(out / name / f), np.load(one / f))
    assert json.loads((out / name / "run_config.json").read_text()) == json.loads((one / "run_config.json").read_text())


@pytest.mark.slow  # about 25 s on a loaded 2-core machine: torchrun and three fresh interpreters importing torch
def test_tokenize_nproc_launches_workers_and_rank0_alone_writes(tmp_path, one_process, dataset):
    # the real launcher: `semid tokenize --nproc 2` relaunches itself under torchrun on 2 gloo processes
    env = {**os.environ, "SEMID_NO_PROGRESS": "1", "OMP_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "semid", *TOKENIZE["rqkmeans"], "--dataset", dataset, "--out",
                          str(tmp_path / "ids"), "--nproc", "2"], env=env, capture_output=True, text=True,
                         timeout=300, cwd=tmp_path)  # a relative stray write would land beside "ids"
    assert res.returncode == 0, res.stdout + res.stderr
    print(f"semid tokenize --nproc 2: {time.perf_counter() - t0:.1f}s")
    assert res.stdout.count("rqkmeans on") == 1  # one summary: rank 0's
    np.testing.assert_array_equal(np.load(tmp_path / "ids" / "ids" / "codes.npy"),
                                  np.load(one_process["cli"] / "rqkmeans" / "ids" / "codes.npy"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ids"]


def _resume_worker(rank: int, port: int, dataset: str, out: str) -> None:
    torch.set_num_threads(1)
    distributed.init_local(rank, 2, port)
    from semid.pipeline.presets import resolve
    from semid.pipeline.runner import run

    fitted = []  # whether this rank fitted the tokenizer, per run

    def spied(self, *a, _fit=RQKMeansTokenizer.fit, **kw):
        fitted.append(True)
        return _fit(self, *a, **kw)

    RQKMeansTokenizer.fit = spied
    cfg = resolve(None, {"data.dataset": dataset, "tokenizer": "rqkmeans", "rqkmeans.modality": "lemb",
                         "rqkmeans.n_codes": [6, 4], "model": "popular", "name": "p"})
    first = run(cfg, Path(out) / "run")
    n_first = len(fitted)
    again = run(cfg, Path(out) / "run", resume=True)
    (Path(out) / f"resume{rank}.json").write_text(json.dumps(
        {"first": first["tokenizer"]["n_items"], "again": again["tokenizer"] == first["tokenizer"],
         "fits": [n_first, len(fitted) - n_first]}))
    distributed.shutdown()


def test_resume_under_a_process_group_takes_rank0s_saved_tokenizer_on_every_rank(tmp_path, dataset, free_port):
    # Regression: on --resume rank 0 loaded the saved tokenizer while the other ranks (following in a scratch
    # directory, resume off) fitted the data-parallel one again and waited forever in its first collective.
    ctx = torch.multiprocessing.start_processes(_resume_worker, args=(free_port(), dataset, str(tmp_path)),
                                                nprocs=2, join=False, start_method="fork")
    deadline = time.monotonic() + 90  # a run takes a few seconds; the old code never returned
    while not ctx.join(timeout=2):
        if time.monotonic() > deadline:
            for p in ctx.processes:
                p.kill()
            pytest.fail("the resumed 2-process run hung")
    for rank in range(2):
        r = json.loads((tmp_path / f"resume{rank}.json").read_text())
        assert r["first"] == 60 and r["again"] and r["fits"] == [1, 0], r  # resumed: nobody fits again


def test_cpu_rqkmeans_under_an_nccl_group_fits_alone_on_every_rank(monkeypatch):
    # Regression: nccl carries CUDA tensors only, so a CPU k-means (RQ-KMeans' default device) fitted
    # data-parallel under the nccl group init_from_env makes on a CUDA machine failed in its first collective
    # ("No backend type associated with device type cpu"). A fake 2-rank nccl group: any collective fails here.
    one = RQKMeansTokenizer(config=TOKENIZERS["full"]).fit(_catalog())
    monkeypatch.setattr(distributed, "_group_ready", lambda: True)
    monkeypatch.setattr(torch.distributed, "get_world_size", lambda *a, **k: 2)
    monkeypatch.setattr(torch.distributed, "get_rank", lambda *a, **k: 1)
    monkeypatch.setattr(torch.distributed, "get_backend", lambda *a, **k: "nccl")
    assert distributed.active()
    tok = RQKMeansTokenizer(config=TOKENIZERS["full"]).fit(_catalog())  # as semid run / tokenize call it
    np.testing.assert_array_equal(tok.codes_, one.codes_)
    with pytest.raises(ConfigError, match="nccl"):  # called directly: a clear error before any collective
        ShardedKMeans(4, config=KM).fit(_blobs(50))
