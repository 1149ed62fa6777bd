"""MusicRec shared-specific tokenizer: eq. 6 decomposition, unique identifiers, artifacts."""

from __future__ import annotations

import numpy as np
import torch

from semid.data.types import Catalog
from semid.io import read_json
from semid.tokenizers.musicrec import MusicRecConfig, MusicRecModel, MusicRecTokenizer, token_strings

torch.set_num_threads(1)  # 2 shared cores: keep tiny fits single-threaded

TINY = dict(hidden=(32,), latent_dim=8, n_codes=16, epochs=25, batch_size=64)


def _catalog(n=200, seed=0):
    rng = np.random.default_rng(seed)
    return Catalog(
        item_ids=[f"i{k}" for k in range(n)],
        embeddings={
            "text": rng.normal(size=(n, 24)).astype(np.float32),
            "image": rng.normal(size=(n, 16)).astype(np.float32),
            "cf": rng.normal(size=(n, 8)).astype(np.float32),
        },
    )


def test_shared_specific_decomposition():
    torch.manual_seed(0)
    cfg = MusicRecConfig(**TINY)
    m = MusicRecModel(text_dim=24, image_dim=16, config=cfg).train()
    xt, xi = torch.randn(64, 24), torch.randn(64, 16)
    out = m(xt, xi)  # first call: k-means init of every level
    out = m(xt, xi)
    d = cfg.latent_dim
    shared = m.rq_shared.decode(out.codes_shared)  # (B, 2d) sum of shared codewords
    assert torch.allclose(out.zt_hat, shared[:, :d] + m.rq_text.decode(out.codes_text), atol=1e-6)
    assert torch.allclose(out.zi_hat, shared[:, d:] + m.rq_image.decode(out.codes_image), atol=1e-6)
    # specific RQs quantise the halves of the last shared residual
    r = out.z.detach() - shared
    assert torch.equal(m.rq_text.encode(r[:, :d]), out.codes_text)
    assert torch.equal(m.rq_image.encode(r[:, d:]), out.codes_image)


def test_fit_gives_unique_text_and_image_ids(tmp_path):
    cat = _catalog()
    tok = MusicRecTokenizer(config=MusicRecConfig(**TINY)).fit(cat)
    h0, h1 = tok.history_[0], tok.history_[-1]
    assert h1["recon"] < h0["recon"] and {"align", "relation", "rq"} <= set(h1)
    for codes in (tok.text_codes_, tok.image_codes_):
        assert len({tuple(r) for r in codes.tolist()}) == len(codes) == 200
    assert np.array_equal(tok.codes_, tok.text_codes_)
    assert np.array_equal(tok.text_codes_[:, :2], tok.image_codes_[:, :2])  # shared prefix
    assert tok.text_codes_.shape[1] == tok.image_codes_.shape[1]
    for part in ("text", "image", "joint"):
        assert "conflict_rate" in tok.report_[part]
    tok.save(tmp_path / "mr", item_ids=cat.item_ids)
    rows = (tmp_path / "mr" / "ids" / "identifiers.tsv").read_text().splitlines()
    assert rows[0] == "item_id\ttext_id\timage_id" and len(rows) == 201 and rows[1].startswith("i0\t<s1.")
    assert "image" in read_json(tmp_path / "mr" / "ids" / "report.json")
    back = MusicRecTokenizer.load(tmp_path / "mr")
    assert np.array_equal(back.image_codes_, tok.image_codes_) and back.config == tok.config


def test_collisions_resolved_deterministically():
    tok = MusicRecTokenizer(config=MusicRecConfig(n_shared=1, n_specific=1, n_codes=4))
    shared = np.array([[0], [0], [1], [0]])
    tok._set_codes(shared, np.array([[1], [1], [2], [3]]), np.array([[2], [3], [2], [2]]))
    assert tok.text_codes_.tolist() == [[0, 1, 0], [0, 1, 1], [1, 2, 0], [0, 3, 0]]
    assert tok.image_codes_.tolist() == [[0, 2, 0], [0, 3, 0], [1, 2, 0], [0, 2, 1]]
    assert (
        tok.report_["text"]["n_conflicting_items"] == 2 and tok.report_["image"]["n_conflicting_items"] == 2
    )
    assert tok.report_["joint"]["conflict_rate"] == 0.0


def test_token_names_follow_the_paper():
    assert token_strings(np.array([[1, 2, 3, 4]]), n_shared=2, image=False) == ["<s1.1><s2.2><a.3><b.4>"]
    assert token_strings(np.array([[1, 2, 5, 6]]), n_shared=2, image=True) == ["<S1.1><S2.2><A.5><B.6>"]


def test_same_seed_same_ids_twice():
    cfg = MusicRecConfig(device="cpu", reseed_every=2, **{**TINY, "epochs": 4})
    a = MusicRecTokenizer(config=cfg).fit(_catalog())
    b = MusicRecTokenizer(config=cfg).fit(_catalog())
    assert np.array_equal(a.text_codes_, b.text_codes_) and np.array_equal(a.image_codes_, b.image_codes_)
    assert a.history_ == b.history_ and len(a.history_) == 4
