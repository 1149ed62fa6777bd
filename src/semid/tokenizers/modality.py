"""Item feature matrices the quantising tokenizers (RQ-VAE, MusicRec, RQ-KMeans) read from a ``Catalog``:
one modality as float32 [N, D], and the collaborative embeddings z_cf the alignment losses pull towards."""

from __future__ import annotations

import numpy as np

from semid.data.codes import codes_to_onehot, level_decay_weights
from semid.data.types import Catalog
from semid.errors import ConfigError


def modality_features(catalog: Catalog, name: str, code_level_decay: float = 1.0) -> np.ndarray:
    """float32 [N, D] features of modality ``name``: an embedding, or a code tuple as concatenated per-level
    one-hots with level l scaled by ``code_level_decay**l`` (items without a tuple: zero rows)."""
    if name in catalog.embeddings:
        return np.asarray(catalog.embeddings[name], dtype=np.float32)
    if name in catalog.codes:
        codes = catalog.codes[name]
        sizes = catalog.code_sizes.get(name) or [int(codes[:, j].max()) + 1 for j in range(codes.shape[1])]
        return codes_to_onehot(codes, sizes, weights=level_decay_weights(code_level_decay, len(sizes)))
    raise ConfigError(
        f"modality {name!r} is neither in catalog.embeddings {sorted(catalog.embeddings)} nor in catalog.codes "
        f"{sorted(catalog.codes)}; set the tokenizer config's modality field to one of them"
    )


def cf_features(catalog: Catalog, name: str) -> np.ndarray:
    """float32 [N, d_cf] collaborative embeddings ``catalog.embeddings[name]`` (LETTER / MusicRec z_cf)."""
    if name not in catalog.embeddings:
        raise ConfigError(
            f"alignment needs collaborative embeddings catalog.embeddings[{name!r}] (e.g. SASRec "
            f"item_embeddings(), 32-d); have {sorted(catalog.embeddings)}. Add them or set alpha=beta=0"
        )
    return np.asarray(catalog.embeddings[name], dtype=np.float32)
