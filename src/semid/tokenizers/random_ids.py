"""Random unique IDs: the control of an ID-source ablation.

Every item gets a code tuple drawn uniformly without replacement from the product of the levels'
codebooks, so the IDs carry no content and no collaborative signal: shared prefixes are chance. A
generator trained on them shows how much of its quality comes from the items' IDs themselves (a
tuple-shaped item embedding) rather than from what the IDs encode. No conflicts by construction,
so no disambiguating digit; the draw depends only on ``seed`` and the number of items.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from semid.config import from_dict
from semid.data.types import Catalog, Interactions
from semid.errors import ConfigError
from semid.tokenizers.base import BaseTokenizer


@dataclass(frozen=True)
class RandomIDsConfig:
    """Unique random code tuples."""

    n_codes: tuple[int, ...] = (256, 256, 256)  # K of each level; its length is the number of levels
    seed: int = 0  # the draw's seed (same seed and catalog size -> same IDs)

    def __post_init__(self):
        if not self.n_codes or any(int(k) < 1 for k in self.n_codes):
            raise ConfigError(f"random.n_codes must list K >= 1 for each level, got {self.n_codes!r}")


class RandomIDsTokenizer(BaseTokenizer):
    """``RandomIDsTokenizer(config=RandomIDsConfig(n_codes=(256, 256, 256))).fit(catalog)``; codes_ int64 [N, L]."""

    name = "random"

    def __init__(self, *, config: RandomIDsConfig | None = None):
        self.config = config or RandomIDsConfig()

    def _init_from_config(self, config: dict) -> None:
        self.__init__(config=from_dict(RandomIDsConfig, config))

    def fit(self, catalog: Catalog, train: Interactions | None = None) -> RandomIDsTokenizer:
        sizes = [int(k) for k in self.config.n_codes]
        space = int(np.prod(np.array(sizes, dtype=object)))  # exact: Python ints do not overflow
        n = catalog.n_items
        if space < n:
            raise ConfigError(f"random.n_codes={sizes} give {space} distinct tuples for {n} items; add a level "
                              "or raise K")
        if space >= 2**63:
            raise ConfigError(f"random.n_codes={sizes}: {space} tuples overflow int64 ranks; use fewer levels")
        rng = np.random.default_rng(self.config.seed)
        ranks = rng.choice(space, size=n, replace=False)  # int64 [N], distinct
        codes = np.stack(np.unravel_index(ranks, sizes), axis=1).astype(np.int64)  # mixed radix, last level fastest
        self._finalize(codes, sizes)
        return self
