"""LETTER's diversity regulariser: balanced codeword groups, positive sampling, the loss by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from semid.errors import ConfigError
from semid.quantize.diversity import balanced_groups, diversity_loss, sample_positives

torch.set_num_threads(1)


def _blobs(sizes, dim=4, spread=0.01, seed=0):
    g = torch.Generator().manual_seed(seed)
    centers = torch.eye(dim)[: len(sizes)] * 10.0
    pts = [centers[i] + spread * torch.randn(s, dim, generator=g) for i, s in enumerate(sizes)]
    labels = np.concatenate([np.full(s, i) for i, s in enumerate(sizes)])
    return torch.cat(pts), labels


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    return all((a[i] == a[j]) == (b[i] == b[j]) for i in range(len(a)) for j in range(len(a)))


def test_balanced_groups_recover_separated_blobs():
    x, labels = _blobs([4, 4, 4])
    groups = balanced_groups(x, 3, seed=0).numpy()
    assert _same_partition(groups, labels)


def test_balanced_groups_cap_group_size_and_assign_every_code():
    x, labels = _blobs([8, 2, 2])  # one blob holds 8 codes, the cap is 4
    groups = balanced_groups(x, 3, seed=0, max_size=4).numpy()
    assert (groups >= 0).all()
    assert np.bincount(groups, minlength=3).max() <= 4
    # default cap ceil(2N/G) = 8 keeps the blobs as they are
    assert _same_partition(balanced_groups(x, 3, seed=0).numpy(), labels)


def test_balanced_groups_reject_impossible_requests():
    x, _ = _blobs([4, 4])
    with pytest.raises(ConfigError, match="groups"):
        balanced_groups(x, 1)
    with pytest.raises(ConfigError, match="groups"):
        balanced_groups(x, 9)
    with pytest.raises(ConfigError, match="cannot hold"):
        balanced_groups(x, 2, max_size=3)


def test_sample_positives_stay_in_group_never_self_and_cover_the_group():
    groups = torch.tensor([0, 0, 0, 1, 1, 2, 0])  # group 0 = codes {0, 1, 2, 6}; code 5 is alone
    codes = torch.tensor([0, 1, 2, 3, 4, 5, 6]).repeat(2000)
    pos = sample_positives(codes, groups, torch.Generator().manual_seed(0))
    alone = codes == 5
    assert (pos[alone] == -1).all()
    p, c = pos[~alone], codes[~alone]
    assert (p != c).all() and (groups[p] == groups[c]).all()
    # code 0's positives are drawn uniformly from {1, 2, 6}
    counts = np.bincount(pos[codes == 0].numpy(), minlength=7)
    assert counts[[1, 2, 6]].min() > 500 and counts[[0, 3, 4, 5]].sum() == 0
    assert (pos[codes == 3] == 4).all() and (pos[codes == 4] == 3).all()


def test_diversity_loss_matches_hand_computation():
    E = torch.tensor([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0], [-1.0, 0.2]])
    codes = torch.tensor([0, 2, 3])
    positives = torch.tensor([1, 1, -1])  # the third row has no positive: no term
    tau = 0.5
    got = diversity_loss(E[codes], codes, E, positives, tau=tau)
    En = E.numpy()
    terms = []
    for c, p in [(0, 1), (2, 1)]:
        logits = En @ En[c] / tau
        others = [j for j in range(4) if j != c]
        terms.append(-(logits[p] - np.log(np.exp(logits[others]).sum())))
    assert got.item() == pytest.approx(np.mean(terms), rel=1e-6)


def test_diversity_loss_without_positives_is_zero_and_differentiable():
    E = torch.randn(5, 3, requires_grad=True)
    codes = torch.tensor([0, 1])
    out = diversity_loss(E[codes], codes, E, torch.tensor([-1, -1]))
    out.backward()
    assert out.item() == 0.0 and E.grad is not None


def test_diversity_loss_falls_when_the_codebook_is_optimised():
    g = torch.Generator().manual_seed(0)
    E = torch.nn.Parameter(torch.randn(16, 4, generator=g))
    groups = balanced_groups(E, 4, seed=0)
    codes = torch.arange(16).repeat(8)
    opt = torch.optim.SGD([E], lr=0.5)
    gen = torch.Generator().manual_seed(1)
    losses = []
    for _ in range(200):
        loss = diversity_loss(E[codes], codes, E, sample_positives(codes, groups, gen))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    # floor: positives uniform over 3 group-mates -> CE >= log 3 (all other groups pushed to -inf)
    start, end = np.mean(losses[:20]), np.mean(losses[-20:])
    assert end - np.log(3) < 0.5 * (start - np.log(3))
    assert end > np.log(3) - 1e-3
