"""VQ / RQ invariants: losses fall, more levels reconstruct better, codes -> vectors -> codes round-trips."""

from __future__ import annotations

import torch

from semid.quantize.rq import ResidualQuantizer
from semid.quantize.vq import VectorQuantizer, kmeans_torch

torch.set_num_threads(1)  # 2 shared cores: keep tiny fits single-threaded


def _data(n=512, d=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(16, d, generator=g) * 3
    return centers[torch.randint(16, (n,), generator=g)] + 0.5 * torch.randn(n, d, generator=g)


def test_vq_round_trip_and_straight_through():
    vq = VectorQuantizer(n_codes=32, dim=8).train()
    x = _data().requires_grad_(True)
    out = vq(x)
    assert torch.equal(vq.encode(vq.decode(out.codes)), out.codes)  # codes -> vectors -> codes
    assert torch.allclose(out.quantized, vq.codebook[out.codes])
    out.quantized.sum().backward()  # straight-through: d quantized / d x = identity
    assert torch.allclose(x.grad, torch.ones_like(x))


def test_rq_loss_falls():
    x = _data()
    rq = ResidualQuantizer(n_levels=2, n_codes=16, dim=8, kmeans_init=False).train()
    opt = torch.optim.Adam(rq.parameters(), lr=0.05)
    losses = []
    for _ in range(60):
        out = rq(x)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        losses.append(float(out.loss.detach()))
    assert losses[-1] < 0.5 * losses[0]


def test_reconstruction_improves_with_levels():
    x = _data()
    errs = []
    for levels in (1, 2, 3):
        rq = ResidualQuantizer(n_levels=levels, n_codes=16, dim=8).train()
        rq(x)  # k-means init level by level on this batch
        errs.append(float((rq.decode(rq.encode(x)) - x).pow(2).mean()))
    assert errs[0] > errs[1] > errs[2]


def test_rq_round_trip_codes_vectors_codes():
    rq = ResidualQuantizer(n_levels=3, n_codes=8, dim=4, kmeans_init=False)
    g = torch.Generator().manual_seed(1)
    for level, vq in enumerate(rq.levels):  # each level 20x finer than the last: greedy decoding is exact
        vq.codebook.data = torch.randn(8, 4, generator=g) * 20.0**-level
    codes = torch.randint(8, (100, 3), generator=g)
    assert torch.equal(rq.encode(rq.decode(codes)), codes)


def test_dead_codes_are_reseeded_and_counted():
    vq = VectorQuantizer(n_codes=8, dim=2, kmeans_init=False).train()
    vq.codebook.data[:] = 100.0  # all codes far away ...
    vq.codebook.data[0] = 0.0  # ... except code 0: every input picks it
    x = torch.randn(64, 2)
    vq(x)
    assert vq.reseed_dead_codes() == 7 and vq.n_reseeded == 7
    assert vq.codebook.data.abs().max() < 10  # re-seeded from the inputs
    assert int(vq.usage.sum()) == 0


def test_kmeans_handles_fewer_points_than_codes():
    cent = kmeans_torch(torch.randn(5, 3), 8)
    assert cent.shape == (8, 3) and torch.isfinite(cent).all()
