"""Sparse first fusion layer: same outputs and gradients as F.linear, and FusID picks it for sparse blocks."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from semid.data.types import Catalog, Interactions
from semid.tokenizers.fusid import FusID
from semid.tokenizers.fusion import FusionConfig, FusionNet
from semid.tokenizers.sparse_linear import block_columns, block_sparse_linear, input_density


def _sparse_x(B=37, dims=(5, 40, 3), seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, sum(dims), generator=g, dtype=dtype)
    s = dims[0]
    block = torch.zeros(B, dims[1], dtype=dtype)
    rows = torch.arange(0, B, 3)  # a third of the rows carry 1-2 non-zeros, the rest none
    block[rows, torch.randint(0, dims[1], (len(rows),), generator=g)] = 0.5
    block[rows[::2], torch.randint(0, dims[1], (len(rows[::2]),), generator=g)] = -1.25
    x[:, s : s + dims[1]] = block
    return x


@pytest.mark.parametrize("blocks", [(1,), (0, 1), (1, 2), ()])
def test_block_sparse_linear_matches_f_linear_outputs_and_all_gradients(blocks):
    dims = [5, 40, 3]
    x = _sparse_x().requires_grad_(True)
    w = torch.randn(7, sum(dims), dtype=torch.float64, requires_grad=True)
    b = torch.randn(7, dtype=torch.float64, requires_grad=True)
    up = torch.randn(x.shape[0], 7, dtype=torch.float64)  # a non-uniform upstream gradient

    ref = F.linear(x, w, b)
    (ref * up).sum().backward()
    grads_ref = [t.grad.clone() for t in (x, w, b)]
    for t in (x, w, b):
        t.grad = None
    out = block_sparse_linear(x, w, b, block_columns(dims, blocks))
    (out * up).sum().backward()
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    for got, want in zip((x.grad, w.grad, b.grad), grads_ref, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_block_sparse_linear_with_an_all_zero_sparse_block():
    dims = [4, 10]
    x = torch.randn(6, 14, dtype=torch.float64)
    x[:, 4:] = 0
    w = torch.randn(3, 14, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    out = block_sparse_linear(x, w, b, block_columns(dims, (1,)))
    torch.testing.assert_close(out, F.linear(x, w, b))
    out.sum().backward()
    assert (w.grad[:, 4:] == 0).all() and (w.grad[:, :4] != 0).any()


def test_block_columns_and_density():
    assert block_columns([2, 3, 4], (2, 0)).tolist() == [0, 1, 5, 6, 7, 8]
    assert block_columns([2, 3], ()).numel() == 0
    x = np.zeros((4, 5), np.float32)
    x[:, 0] = 1.0
    x[0, 3] = 2.0
    assert input_density(x, [2, 3]) == pytest.approx([0.5, 1 / 12])


def test_fusion_net_sparse_path_equals_dense_path_in_train_and_eval_mode():
    dims = [5, 40, 3]
    x = _sparse_x(dtype=torch.float32)
    present = torch.ones(x.shape[0], 3, dtype=torch.bool)
    present[::4, 2] = False
    torch.manual_seed(0)
    dense = FusionNet(in_dims=dims, n_sub=2, config=FusionConfig(d_sub=4, hidden=16))
    sparse = FusionNet(in_dims=dims, n_sub=2, config=FusionConfig(d_sub=4, hidden=16), sparse_blocks=(1,))
    sparse.load_state_dict(dense.state_dict())  # the sparse column list is not part of the weights
    for mode in ("train", "eval"):
        dense.train(mode == "train")
        sparse.train(mode == "train")
        torch.manual_seed(1)  # same modality-dropout draw
        a = dense(x, present)
        torch.manual_seed(1)
        c = sparse(x, present)
        torch.testing.assert_close(c, a, rtol=1e-5, atol=1e-5)
    a.square().sum().backward()
    c.square().sum().backward()
    torch.testing.assert_close(sparse.fc1.weight.grad, dense.fc1.weight.grad, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="out of range"):
        FusionNet(in_dims=dims, sparse_blocks=(3,))


def test_fusion_net_sparse_path_under_bf16_autocast():
    """bf16 autocast (CUDA training; CPU autocast here): the sparse path runs in float32 inside, trains,
    and stays within bf16 rounding of the dense path."""
    dims = [5, 40, 3]
    x = _sparse_x(dtype=torch.float32)
    present = torch.ones(x.shape[0], 3, dtype=torch.bool)
    torch.manual_seed(0)
    dense = FusionNet(in_dims=dims, n_sub=2, config=FusionConfig(d_sub=4, hidden=16)).eval()
    sparse = FusionNet(in_dims=dims, n_sub=2, config=FusionConfig(d_sub=4, hidden=16), sparse_blocks=(1,)).eval()
    sparse.load_state_dict(dense.state_dict())
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        a = dense(x, present)
        c = sparse(x, present)
    torch.testing.assert_close(c.float(), a.float(), rtol=0.05, atol=0.05)
    c.float().square().sum().backward()
    assert sparse.fc1.weight.grad is not None and torch.isfinite(sparse.fc1.weight.grad).all()
    assert sparse.fc1.weight.grad.dtype == torch.float32


def _tag_catalog(n=60, seed=0):
    """Wide, mostly empty 'tags' sets (1 tag for a third of the items) beside a dense embedding."""
    rng = np.random.default_rng(seed)
    tags = [[f"t{i % 50}"] if i % 3 == 0 else None for i in range(n)]
    cat = Catalog(item_ids=[f"i{i}" for i in range(n)], fields={"tags": tags},
                  embeddings={"content": rng.normal(size=(n, 6)).astype(np.float32)},
                  masks={"content": np.ones(n, bool)})
    seqs = [rng.choice(n, size=8, replace=False).tolist() for _ in range(80)]
    return cat, Interactions.from_lists(seqs)


def test_fusid_routes_sparse_modalities_and_matches_the_dense_reference(tmp_path):
    from semid.encoders.features import FeaturesConfig
    from semid.tokenizers.fusid import small_config

    cat, train = _tag_catalog()
    base = dataclasses.replace(small_config(), features=FeaturesConfig(cache=False, auto_set_encoder="multihot"))
    tok = FusID(config=base).fit(cat, train)
    assert tok.report_["sparse_modalities"] == ["tags"]  # ~1/3 x 1/17 non-zeros; content and cooc are dense
    ref_cfg = dataclasses.replace(base, fusion=dataclasses.replace(base.fusion, sparse_below=0.0))
    ref = FusID(config=ref_cfg).fit(cat, train)
    assert ref.report_["sparse_modalities"] == []
    # Same seed, same function; only float summation order differs. fc1's bias has an exactly-zero true
    # gradient (BatchNorm removes it), so AdamW turns rounding noise there into +-lr steps that reach the
    # eval-mode running mean: embeddings (LayerNorm scale ~1) agree to ~1e-2, not to float precision.
    assert np.abs(tok.embeddings_ - ref.embeddings_).max() < 0.05
    assert np.abs(tok.embeddings_).mean() > 0.5
    tok.save(tmp_path / "f")
    back = FusID.load(tmp_path / "f")
    assert back.sparse_blocks_ == tok.sparse_blocks_ and len(back.fusion_.sparse_cols) > 0
    np.testing.assert_array_equal(back.transform(cat, train), tok.codes_raw_)
