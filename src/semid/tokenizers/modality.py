"""Item feature matrices the quantising tokenizers (RQ-VAE, MusicRec, RQ-KMeans) read from a ``Catalog``:
one modality as float32 [N, D], and the collaborative embeddings z_cf the alignment losses pull towards."""

from __future__ import annotations

import numpy as np

from semid.data.types import Catalog
from semid.errors import ConfigError


def modality_features(catalog: Catalog, name: str, code_level_decay: float = 1.0) -> np.ndarray:
    """float32 [N, D] input of a quantising tokenizer: the feature called ``name`` (a ``catalog.embeddings``
    entry: a run feature attached by ``semid.encoders.features.attach_features`` under its spec name, or the
    dataset's own), or the code tuple ``catalog.codes[name]`` as per-level one-hots scaled by
    ``code_level_decay**l`` (items without a tuple: zero rows) built by the same ``build_features``."""
    from semid.encoders.feature_spec import CodesFeature, PrecomputedFeature
    from semid.encoders.features import build_features

    if name in catalog.embeddings:
        spec = PrecomputedFeature(name=name, source=name)
    elif name in catalog.codes:
        try:
            spec = CodesFeature(name=name, source=name, decay=code_level_decay)
        except ConfigError:
            raise ConfigError(f"code_level_decay must be in (0, 1], got {code_level_decay}") from None
    else:
        raise ConfigError(
            f"modality {name!r} is neither a feature in catalog.embeddings {sorted(catalog.embeddings)} nor a code "
            f"tuple in catalog.codes {sorted(catalog.codes)}; set the tokenizer config's modality field to one of "
            f"them, or build it as a feature named {name!r} (--features='[\"{name}=text:title\"]')"
        )
    return build_features((spec,), catalog, cache=False)[name][0]


def cf_features(catalog: Catalog, name: str) -> np.ndarray:
    """float32 [N, d_cf] collaborative embeddings ``catalog.embeddings[name]`` (LETTER / MusicRec z_cf)."""
    if name not in catalog.embeddings:
        raise ConfigError(
            f"alignment needs collaborative embeddings catalog.embeddings[{name!r}] (e.g. SASRec "
            f"item_embeddings(), 32-d); have {sorted(catalog.embeddings)}. Add them or set alpha=beta=0"
        )
    return np.asarray(catalog.embeddings[name], dtype=np.float32)
