"""Two CPU processes (gloo): the RQ-VAE (TIGER, LETTER) and MusicRec tokenizers trained data-parallel.

Each rank forwards its contiguous part of every global batch of item indices and the gradients are averaged;
the codebooks' k-means init runs on rank 0 from the whole first batch and is broadcast, dead-code re-seeding
uses the usage counts summed over the ranks and the last global batch's residuals. Checked against one
process with the same global batch: every per-epoch loss term within rtol 1e-4 (measured <= 1e-5; not exact
because each rank averages its own rows before the ranks' means are averaged, the gradient is the
all-reduced sum of two half-batch backward passes, and the encoders multiply row subsets, so float
summation order differs), and the final codes are the 1-process codes exactly (measured on these configs:
the float differences never flip a nearest codeword). Both ranks end with bit-identical weights and codes.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from semid.data.types import Catalog
from semid.errors import SemidError
from semid.tokenizers.alignment import info_nce, relation_loss
from semid.tokenizers.musicrec import MusicRecConfig, MusicRecObjective, MusicRecTokenizer
from semid.tokenizers.rqvae import RQVAEConfig, RQVAEObjective, RQVAETokenizer
from semid.tokenizers.training import BatchPart
from semid.train import distributed

TINY = dict(hidden=(32,), latent_dim=8, n_codes=32, epochs=10, batch_size=64, reseed_every=3)
# name -> (tokenizer kind, config, catalog size). 201 items: a last batch of 9 (uneven parts 4 / 5);
# 193 items: a last batch of 1, which every rank computes whole.
CASES = {
    "tiger": ("rqvae", dict(TINY), 201),
    "letter": ("rqvae", dict(TINY, alpha=0.1, beta=0.01, diversity=0.1, diversity_groups=4), 200),
    "musicrec": ("musicrec", dict(TINY), 193),
}
RTOL = 1e-4


def _catalog(n: int) -> Catalog:
    rng = np.random.default_rng(0)
    return Catalog(item_ids=np.arange(n).astype(str), embeddings={
        "text": rng.normal(size=(n, 24)).astype(np.float32),
        "image": rng.normal(size=(n, 16)).astype(np.float32),
        "cf": rng.normal(size=(n, 8)).astype(np.float32)})


def _tokenizer(name: str):
    kind, cfg, _ = CASES[name]
    return RQVAETokenizer(config=RQVAEConfig(**cfg)) if kind == "rqvae" else MusicRecTokenizer(config=MusicRecConfig(**cfg))


def _digest(state: dict) -> str:
    h = hashlib.sha256()
    for k in sorted(state):
        h.update(k.encode() + state[k].detach().cpu().numpy().tobytes())
    return h.hexdigest()


def _fit(name: str) -> dict:
    tok = _tokenizer(name)
    # as ``semid run`` does: a tokenizer that is not data-parallel is fitted by every rank alone
    with distributed.local(enabled=not getattr(tok, "data_parallel", False)):
        tok.fit(_catalog(CASES[name][2]))
    return {"history": tok.history_, "codes": tok.codes_.tolist(), "state": _digest(tok.model.state_dict()),
            "n_reseeded": tok.n_reseeded_}


def _alignment_problem():
    """(p (7, 5), z_cf (7, 5)): 7 rows, parts 3 / 4."""
    g = torch.Generator().manual_seed(0)
    return torch.randn(7, 5, generator=g), torch.randn(7, 5, generator=g)


def _alignment_loss(p, zcf, part=None):
    if part is None:
        return info_nce(p, zcf) + relation_loss(p, zcf)
    return (info_nce(p, zcf, offset=part.lo) + relation_loss(part.gather(p), zcf, rows=part.rows)) * part.share


def _worker(rank: int, port: int, out: str) -> None:
    torch.set_num_threads(1)
    distributed.init_local(rank, 2, port)
    rows: list[int] = []  # item rows each objective forward saw on this rank
    for cls in (RQVAEObjective, MusicRecObjective):
        def counted(self, idx, *a, _fwd=cls.forward, **k):
            rows.append(len(idx))
            return _fwd(self, idx, *a, **k)
        cls.forward = counted
    result = {}
    for name in CASES:
        rows.clear()
        result[name] = _fit(name) | {"rows": list(rows)}
    # the differentiable gather: this rank's share of InfoNCE + relation and the gradient of its rows
    p, zcf = _alignment_problem()
    lo, hi = distributed.shard_range(len(p))
    own = p[lo:hi].clone().requires_grad_(True)
    loss = _alignment_loss(own, zcf, BatchPart(batch=torch.arange(len(p)), lo=lo, hi=hi, world=2))
    loss.backward()
    result["gather"] = {"loss": float(loss), "grad": own.grad.tolist()}
    # ranks holding different item features are refused before any training step
    cat = _catalog(50)
    if rank == 1:
        cat.embeddings["text"][3, 0] += 1.0
    try:
        RQVAETokenizer(config=RQVAEConfig(**TINY)).fit(cat)
        result["refused"] = None
    except SemidError as e:
        result["refused"] = str(e)
    (Path(out) / f"rank{rank}.json").write_text(json.dumps(result))
    distributed.shutdown()


@pytest.fixture(scope="module")
def one_process():
    torch.set_num_threads(1)
    return {name: _fit(name) for name in CASES}


@pytest.fixture(scope="module")
def two_process(tmp_path_factory, one_process, free_port):
    # fork after the 1-process fits: the workers inherit the imported torch optimizer stack
    out = tmp_path_factory.mktemp("dp_tokenizers")
    torch.multiprocessing.start_processes(_worker, args=(free_port(), str(out)), nprocs=2, join=True,
                                          start_method="fork")
    return [json.loads((out / f"rank{r}.json").read_text()) for r in range(2)]


@pytest.mark.parametrize("name", list(CASES))
def test_loss_trajectory_matches_one_process_with_the_same_global_batch(two_process, one_process, name):
    r0, r1 = (r[name] for r in two_process)
    one = one_process[name]
    assert r0["history"] == r1["history"]  # every rank logs the global batches' terms
    assert len(r0["history"]) == len(one["history"]) == TINY["epochs"]
    for got, want in zip(r0["history"], one["history"], strict=True):
        assert got.keys() == want.keys()
        for term in want:
            np.testing.assert_allclose(got[term], want[term], rtol=RTOL, err_msg=f"{name} {term}")
    assert one["history"][-1]["recon"] < one["history"][0]["recon"]


@pytest.mark.parametrize("name", list(CASES))
def test_ranks_end_with_identical_weights_and_the_one_process_codes(two_process, one_process, name):
    r0, r1 = (r[name] for r in two_process)
    one = one_process[name]
    assert r0["state"] == r1["state"]  # codebooks, MLPs and usage buffers bit-identical on both ranks
    assert r0["codes"] == r1["codes"] == one["codes"]
    # dead codes were re-seeded, and the same number as one process: the same decision on every rank
    assert r0["n_reseeded"] == r1["n_reseeded"] == one["n_reseeded"] > 0


@pytest.mark.parametrize("name", list(CASES))
def test_each_rank_trains_on_its_part_of_every_batch(two_process, name):
    """Each rank's forwards covered only its contiguous part of every global batch (a fit every rank runs
    alone, as before the tokenizers were data-parallel, sees every batch whole)."""
    _, cfg, n = CASES[name]
    bs = cfg["batch_size"]
    sizes = [min(bs, n - s) for s in range(0, n, bs)]
    for rank, r in enumerate(two_process):
        want = [b if b < 2 else (rank + 1) * b // 2 - rank * b // 2 for b in sizes] * cfg["epochs"]
        assert r[name]["rows"] == want


def test_gathered_alignment_loss_and_gradient_equal_one_process(two_process):
    """Reference: InfoNCE + relation loss on the whole batch in one process. The ranks' shares average to
    its value and each rank's row gradients, divided by the world size, are its gradient rows."""
    p, zcf = _alignment_problem()
    p.requires_grad_(True)
    loss = _alignment_loss(p, zcf)
    loss.backward()
    shares = [r["gather"]["loss"] for r in two_process]
    np.testing.assert_allclose(np.mean(shares), float(loss.detach()), rtol=1e-6)
    # rank r's rows get world x dL/dp (the gather's backward sums every rank's loss); DDP averages
    grads = np.concatenate([np.asarray(r["gather"]["grad"]) for r in two_process]) / 2
    np.testing.assert_allclose(grads, p.grad.numpy(), rtol=1e-5, atol=1e-7)


def test_ranks_with_different_item_features_are_refused(two_process):
    for r in two_process:
        assert r["refused"] is not None and "tokenizer input 'x' differ between ranks" in r["refused"]
