"""RQ-KMeans tokenizer: residual k-means over item embeddings (the training-free RQ of GRID and MiniOneRec).

r_0 = x, c_l = k-means_l(r_{l-1}), r_l = r_{l-1} - C_l[c_l]   for l = 1..L, each level a plain k-means
(``semid.quantize.kmeans``) fitted on what the previous levels left; no encoder, no gradient. Unlike the
RQ-VAE (``semid.tokenizers.rqvae``) the codes live in the input space itself, so the per-level residual
error is directly the quantisation error of the item vectors (``report_["residual_mse"]``). Shared
tuples are made unique by ``BaseTokenizer``'s extra digit (appended only when some tuple repeats, or
always with ``collision_digit``). ``transform`` codes unseen items with the fitted centroids.

Under an active torch.distributed process group the levels are fitted data-parallel
(``semid.quantize.kmeans_distributed``, torch backend): each rank keeps the residuals of its contiguous slice
of the items, and every rank ends with the centroids one process fits (bitwise on CPU); every rank then codes
all items from them itself, as ``transform`` would. With faiss, or a CPU k-means under nccl (which carries
CUDA tensors only), every rank fits all items alone instead.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from semid.config import from_dict
from semid.data.types import Catalog, Interactions
from semid.device import pick_device
from semid.errors import CheckpointError, ConfigError
from semid.quantize.kmeans import KMeans, KMeansConfig
from semid.quantize.kmeans_distributed import ShardedKMeans
from semid.tokenizers.base import BaseTokenizer
from semid.tokenizers.modality import modality_features
from semid.train import distributed


@dataclass(frozen=True)
class RQKMeansConfig:
    """Residual k-means over one item modality."""

    modality: str = "text"  # catalog.embeddings key (or catalog.codes key, one-hot per level) to quantise
    n_codes: tuple[int, ...] = (256, 256, 256)  # K of each level; its length is the number of levels
    normalize: bool = False  # L2-normalise item vectors first (quantise directions, as for cosine retrieval)
    code_level_decay: float = 1.0  # code-tuple modality: level l's one-hot scaled by decay**l (1 = plain)
    collision_digit: bool = False  # always append the disambiguating digit (TIGER); False: only if needed
    n_iter: int = 25  # Lloyd iterations per level
    tol: float = 1e-6  # stop a level early when its relative objective drop falls below this
    backend: str = "torch"  # k-means backend: torch | faiss | auto (see semid.quantize.kmeans)
    device: str = "cpu"  # torch k-means device: cpu | cuda | auto
    seed: int = 0  # level l's k-means++ is seeded with seed + 97 * l
    # k-means++ on every item at every level, also above 32,768 items where k-means otherwise seeds on a
    # sample (semid.quantize.kmeans): residuals are clustered, and the sample cost ~3.5% MSE at 100k items
    seed_all: bool = True

    def __post_init__(self):
        if not self.n_codes or any(int(k) < 1 for k in self.n_codes):
            raise ConfigError(f"rqkmeans.n_codes must list K >= 1 for each level, got {self.n_codes!r}")

    def kmeans(self, level: int) -> KMeansConfig:
        """The k-means settings of ``level`` (0-based)."""
        return KMeansConfig(n_iter=self.n_iter, tol=self.tol, seed=self.seed + 97 * level, backend=self.backend,
                            device=self.device, init_all=self.seed_all)


class RQKMeansTokenizer(BaseTokenizer):
    """``RQKMeansTokenizer(config=RQKMeansConfig(n_codes=(256, 256, 256))).fit(catalog)``.

    Fitted state: ``centroids_`` list of float32 [K_l, D], ``codes_raw_`` int64 [N, L], ``codes_`` unique.
    """

    name = "rqkmeans"
    data_parallel = True  # under an active process group ``fit`` runs the torch k-means data-parallel

    def __init__(self, *, config: RQKMeansConfig | None = None):
        self.config = config or RQKMeansConfig()

    def _init_from_config(self, config: dict) -> None:
        self.__init__(config=from_dict(RQKMeansConfig, config))

    # ------------------------------------------------------------------ features
    def features(self, catalog: Catalog) -> np.ndarray:
        """float32 [N, D] item vectors the levels quantise (the modality, L2-normalised if configured)."""
        x = np.asarray(modality_features(catalog, self.config.modality, self.config.code_level_decay),
                       dtype=np.float32)
        if self.config.normalize:
            x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        return x

    def _quantize(self, x: np.ndarray) -> tuple[np.ndarray, list[float]]:
        """Greedy level-by-level assignment with the fitted centroids: (codes int64 [N, L], residual MSE
        after each level [L]). ``fit`` assigns through this same function, so transform(fitted items)
        reproduces ``codes_raw_`` exactly."""
        r = x.copy()
        codes = np.zeros((len(x), len(self.centroids_)), dtype=np.int64)
        mse = []
        for lvl, c in enumerate(self.centroids_):
            codes[:, lvl] = self._kmeans[lvl].predict(r)
            r -= c[codes[:, lvl]]
            mse.append(float(np.mean(r.astype(np.float64) ** 2)))
        return codes, mse

    # ------------------------------------------------------------------ protocol
    def fit(self, catalog: Catalog, train: Interactions | None = None) -> RQKMeansTokenizer:
        c = self.config
        x = self.features(catalog)  # (N, D)
        if len(x) == 0:
            raise ConfigError(f"rqkmeans: modality {c.modality!r} has no items to quantise")
        # faiss does not fit data-parallel, and nccl (the group on a CUDA machine) carries CUDA tensors only:
        # with either, every rank fits all items alone (the same codes)
        alone = any(KMeans(int(k), config=c.kmeans(lvl)).backend_for(len(x)) != "torch"
                    for lvl, k in enumerate(c.n_codes))
        alone = alone or (distributed.active() and torch.distributed.get_backend() == "nccl"
                          and pick_device(c.device).type != "cuda")
        self.centroids_, self._kmeans, history = [], [], []
        with distributed.local(enabled=alone):
            lo, hi = distributed.shard_range(len(x))  # this rank's items (all of them in one process)
            r = x[lo:hi].copy()  # (n_r, D) residuals of this rank's items
            for lvl, k in enumerate(c.n_codes):
                km = ShardedKMeans(int(k), config=c.kmeans(lvl)).fit(r)  # KMeans.fit in one process
                self._kmeans.append(km)
                self.centroids_.append(np.asarray(km.centroids_, dtype=np.float32))
                r -= self.centroids_[-1][km.predict(r)]
                history.append(km.history_)
        codes, mse = self._quantize(x)
        self._finalize(codes, [int(k) for k in c.n_codes], always_append=c.collision_digit)
        self.report_["input_mse"] = float(np.mean(x.astype(np.float64) ** 2))
        self.report_["residual_mse"] = mse
        self.report_["kmeans_iterations"] = [len(h) - 1 for h in history]
        return self

    def transform(self, catalog: Catalog, train: Interactions | None = None) -> np.ndarray:
        """Raw codes int64 [N, L] (before collision resolution) of every item of ``catalog``, built like the
        fitted one (same modality and width); unseen items are coded with the fitted centroids."""
        if not hasattr(self, "centroids_"):
            raise RuntimeError("RQKMeansTokenizer is not fitted; call fit(catalog) or load(dir) first")
        x = self.features(catalog)
        d = self.centroids_[0].shape[1]
        if x.ndim != 2 or x.shape[1] != d:
            raise ConfigError(
                f"rqkmeans.transform: modality {self.config.modality!r} has width {x.shape[-1]}, the fitted "
                f"centroids {d}; build the new catalog's features like the fitted one's"
            )
        return self._quantize(x)[0]

    # ------------------------------------------------------------------ persistence
    def state_tensors(self) -> dict:
        return {f"centroids.{lvl}": torch.from_numpy(c) for lvl, c in enumerate(self.centroids_)}

    def load_state_tensors(self, tensors: dict) -> None:
        n = len(self.config.n_codes)
        try:
            self.centroids_ = [tensors[f"centroids.{lvl}"].numpy().astype(np.float32) for lvl in range(n)]
        except KeyError as e:
            raise CheckpointError(f"rqkmeans state has no {e.args[0]} for its {n} levels") from None
        self._kmeans = []
        for lvl, c in enumerate(self.centroids_):
            km = KMeans(len(c), config=self.config.kmeans(lvl))
            km.centroids_ = c
            self._kmeans.append(km)

    def get_params(self) -> dict:
        return dataclasses.asdict(self.config)
