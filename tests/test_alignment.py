"""Eq. 10-11 against a hand computation on 3 x 2 vectors."""

from __future__ import annotations

import math

import torch

from semid.tokenizers.alignment import CollaborativeAlignment, info_nce, relation_loss

torch.set_num_threads(1)  # 2 shared cores: keep tiny fits single-threaded

ZQ = [[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]]
ZCF = [[1.0, 1.0], [0.0, 1.0], [-1.0, 0.0]]


def _cos(a, b):
    return (a[0] * b[0] + a[1] * b[1]) / (math.hypot(*a) * math.hypot(*b))


def test_info_nce_matches_hand_computation():
    tau = 0.5
    want = 0.0
    for i in range(3):
        logits = [_cos(ZQ[i], ZCF[j]) / tau for j in range(3)]
        want -= logits[i] - math.log(sum(math.exp(v) for v in logits))
    want /= 3
    got = info_nce(torch.tensor(ZQ), torch.tensor(ZCF), tau=tau)
    assert abs(float(got) - want) < 1e-6


def test_relation_loss_matches_hand_computation():
    want = sum((_cos(ZQ[i], ZQ[j]) - _cos(ZCF[i], ZCF[j])) ** 2 for i in range(3) for j in range(3)) / 9
    got = relation_loss(torch.tensor(ZQ), torch.tensor(ZCF))
    assert abs(float(got) - want) < 1e-6


def test_weights_and_head():
    al = CollaborativeAlignment(in_dim=2, cf_dim=2, alpha=0.5, beta=2.0, tau=0.07)
    out = al(torch.tensor(ZQ), torch.tensor(ZCF))
    assert torch.isclose(out["loss"], 0.5 * out["align"] + 2.0 * out["relation"])
    proj = CollaborativeAlignment(in_dim=4, cf_dim=2)
    assert isinstance(proj.head, torch.nn.Linear)
    assert proj(torch.randn(3, 4), torch.tensor(ZCF))["loss"].requires_grad
    off = CollaborativeAlignment(in_dim=2, cf_dim=2, alpha=0.0, beta=0.0)
    assert not off.active and float(off(torch.tensor(ZQ), torch.tensor(ZCF))["loss"]) == 0.0
