"""FusID losses and pair mining: VICReg terms on constructed inputs, MSE contrastive, train-only pairs."""

from __future__ import annotations

import numpy as np
import torch

from semid.data.types import Interactions
from semid.tokenizers.fusid_losses import FusIDLossConfig, contrastive_mse, cov_loss, fusid_loss, var_loss
from semid.tokenizers.fusid_pairs import PairConfig, mine_pairs, sample_negatives
from semid.tokenizers.fusion import FusionConfig, FusionNet


def test_var_loss_zero_for_unit_variance_positive_for_collapsed():
    z = torch.randn(512, 3, 8)
    z = (z - z.mean(0)) / z.std(0)  # exactly unit variance per dim
    assert float(var_loss(z)) == 0.0
    collapsed = torch.ones(64, 3, 8) + 1e-3 * torch.randn(64, 3, 8)
    assert float(var_loss(collapsed)) > 0.9


def test_cov_loss_zero_for_block_independent_positive_for_duplicated_blocks():
    b, n, d = 64, 3, 8
    basis = torch.cat([torch.ones(b, 1), torch.randn(b, n * d)], dim=1).double()
    q, _ = torch.linalg.qr(basis)  # orthonormal columns, the first spans the constant vector
    z = q[:, 1:].reshape(b, n, d) * 10  # every column centred and orthogonal to every other
    assert float(cov_loss(z)) < 1e-20
    dup = torch.randn(b, 1, d).repeat(1, n, 1)  # the same block n times
    assert float(cov_loss(dup)) > 0.1


def test_contrastive_mse_targets():
    a = torch.randn(10, 6)
    assert float(contrastive_mse(a, a, torch.ones(10))) < 1e-10
    assert float(contrastive_mse(a, -a, torch.ones(10))) > 3.9  # cos = -1 vs target 1 -> (2)^2


def test_losses_fall_on_tiny_problem():
    torch.manual_seed(0)
    x = torch.randn(64, 20)
    present = torch.ones(64, 2, dtype=torch.bool)
    net = FusionNet(in_dims=[12, 8], n_sub=3, config=FusionConfig(d_sub=8, hidden=32))
    pairs = torch.stack([torch.arange(0, 64, 2), torch.arange(1, 64, 2)], 1)
    target = torch.ones(len(pairs))
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    first = None
    for _ in range(60):
        loss, logs = fusid_loss(net(x, present), pairs, target, FusIDLossConfig())
        first = first if first is not None else logs
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert logs["total"] < 0.5 * first["total"]
    assert logs["cont"] < first["cont"]


def test_pairs_use_window_counts_and_negatives_never_cooccur():
    train = Interactions.from_lists([[0, 1, 2, 3], [0, 1, 4], [5, 6], [0, 1]])
    mined = mine_pairs(train, 8, PairConfig(window=1, min_count=2))
    assert mined.positives.tolist() == [[0, 1]] and mined.counts.tolist() == [3]
    neg = sample_negatives(mined, np.zeros(200, np.int64), 1, np.random.default_rng(0))
    cooc_with_0 = {1}
    assert len(neg) > 0 and not set(neg[:, 1].tolist()) & (cooc_with_0 | {0})
    assert 7 not in neg[:, 1]  # never seen in train: zero sampling mass


def test_modality_dropout_keeps_one_modality():
    net = FusionNet(in_dims=[4, 4], n_sub=2, config=FusionConfig(d_sub=4, hidden=8, modality_dropout=0.9))
    net.train()
    present = torch.tensor([[True, False]] * 50 + [[True, True]] * 50)
    fused = net.fuse_inputs(torch.randn(100, 8), present)
    flags = fused[:, -2:]
    assert (flags.sum(1) >= 1).all()
    assert (flags[:50, 0] == 1).all()  # an item's only modality is never dropped


def test_fusid_loss_gradient_is_bit_identical_across_runs_with_two_threads():
    """Pairs repeat items, so the backward accumulates into shared rows; it must not depend on thread timing
    (advanced indexing's backward did, with >1 intra-op thread)."""
    g = torch.Generator().manual_seed(0)
    z0 = torch.randn(600, 4, 32, generator=g)
    pairs = torch.randint(0, 600, (3000, 2), generator=g)
    target = torch.ones(3000)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        grads = []
        for _ in range(4):
            z = z0.clone().requires_grad_(True)
            fusid_loss(z, pairs, target)[0].backward()
            grads.append(z.grad)
    finally:
        torch.set_num_threads(before)
    assert all(torch.equal(grads[0], x) for x in grads[1:])
