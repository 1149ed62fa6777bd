"""A tiny catalog, train split, fake text encoder and fake z_cf trainer shared by the feature tests (and by
the script that froze the pre-unification feature paths' outputs in fixtures/features/old_paths.npz)."""

from __future__ import annotations

import hashlib

import numpy as np

from semid.data.types import Catalog, Interactions


def fake_text_encode(self, texts):
    """Stands in for ``TextEncoder.encode``: an 8-d vector seeded by each text's SHA-256, zeros for None."""
    emb = np.zeros((len(texts), 8), dtype=np.float32)
    mask = np.array([t is not None for t in texts])
    for i, t in enumerate(texts):
        if t is not None:
            seed = int(hashlib.sha256(t.encode()).hexdigest()[:8], 16)
            emb[i] = np.random.default_rng(seed).standard_normal(8)
    return emb, mask


def tiny_catalog() -> Catalog:
    """10 items: a title (one missing), genres and tags (set fields, some empty), a code tuple, an embedding."""
    titles = [f"Movie {i}" for i in range(10)]
    titles[4] = None
    genres = [["Comedy"], ["Drama", "Comedy"], ["Horror"], None, ["Drama"], ["Comedy", "Horror"], [], ["Drama"],
              ["Sci-Fi"], ["Comedy"]]
    tags = [["funny"], None, ["scary", "dark"], ["dark"], None, [], ["classic"], None, ["space"], ["funny"]]
    codes = np.array([[i % 3, (i * 2) % 4] for i in range(10)])
    codes[6] = -1
    cat = Catalog(item_ids=np.array([f"m{i}" for i in range(10)]),
                  fields={"title": titles, "genres": genres, "tags": tags})
    cat.codes["lemb"] = codes
    cat.code_sizes["lemb"] = [3, 4]
    cat.embeddings["img"] = np.arange(30, dtype=np.float32).reshape(10, 3) / 30
    cat.masks["img"] = np.array([True] * 9 + [False])
    return cat


def tiny_train() -> Interactions:
    """Train sequences over items 0-8 (item 9 never occurs: no co-occurrence / z_cf row)."""
    return Interactions.from_lists([[0, 1, 2, 3], [1, 2, 5], [3, 4, 5, 6, 7], [7, 8, 0], [2, 5, 8, 1], [6, 7, 8]])


def fake_sasrec(train, catalog) -> np.ndarray:
    """Stands in for the z_cf SASRec: a fixed float32 [n_items, 4]."""
    return np.random.default_rng(0).standard_normal((catalog.n_items, 4)).astype(np.float32)
