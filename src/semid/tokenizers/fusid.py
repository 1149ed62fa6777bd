"""FusID tokenizer (arXiv 2601.08764): modality-fused semantic IDs via a fusion net + product quantization.

fit(catalog, train):
  1. features: one embedding per modality (``semid.encoders.features``; co-occurrence from train only)
  2. fusion net (``fusion.py``) trained with L_cont + alpha (L_cov + L_var) (``fusid_losses.py``) on
     co-occurrence pairs mined from train (``fusid_pairs.py``)
  3. product quantization of the n sub-embeddings, K centroids each, fit on train items (mechanism 3)
  4. raw codes [N, n] -> ID report (conflict rate of PQ alone, as the paper reports it) -> collisions
     resolved with one extra digit only when needed (``BaseTokenizer._finalize``).
Ablations are config values: ``loss.alpha=0`` (no regularisation), ``loss.contrastive=False``,
``modalities=("title", "cooc")`` (use only these; drop one by listing the others).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from semid.config import from_dict
from semid.data.types import Catalog, Interactions
from semid.encoders.features import FeaturesConfig, build_fusid_features
from semid.errors import CheckpointError, ConfigError
from semid.io import read_json, save_npy, write_json
from semid.quantize.kmeans import KMeansConfig
from semid.quantize.pq import PQConfig, ProductQuantizer
from semid.quantize.unique import reassign_conflicts
from semid.tokenizers.base import BaseTokenizer
from semid.tokenizers.fusid_losses import FusIDLossConfig, fusid_loss
from semid.tokenizers.fusid_pairs import PairConfig, mine_pairs, sample_negatives
from semid.tokenizers.fusion import FusionConfig, FusionNet
from semid.tokenizers.ids import input_conflict_report
from semid.tokenizers.sparse_linear import input_density
from semid.train import distributed
from semid.train.loop import TrainConfig, Trainer


def _default_training() -> TrainConfig:
    return TrainConfig(
        epochs=10, batch_size=512, lr=1e-3, warmup_steps=50, patience=0, device="cpu", bf16=False
    )


@dataclass(frozen=True)
class FusIDConfig:
    """Everything FusID needs; every run writes it beside its IDs (config.json)."""

    features: FeaturesConfig = field(default_factory=FeaturesConfig)  # which modalities and encoders
    modalities: tuple[str, ...] = ()  # keep only these modalities (empty = all built); drop-one ablation
    fusion: FusionConfig = field(default_factory=FusionConfig)  # d=128, hidden=2048
    loss: FusIDLossConfig = field(default_factory=FusIDLossConfig)  # alpha=0.2, contrastive on
    pairs: PairConfig = field(default_factory=PairConfig)  # co-occurrence pair mining
    pq: PQConfig = field(default_factory=PQConfig)  # n=5 positions, K=1024 per sub-space
    training: TrainConfig = field(default_factory=_default_training)  # epochs, batch size, lr, seed, device
    pairs_per_epoch: int = 0  # positives drawn per epoch (0 = all mined positives; capped at their count)


class FusID(BaseTokenizer):
    """``FusID(config=FusIDConfig()).fit(catalog, train)``; then ``codes_``, ``report_``, ``save(dir)``."""

    name = "fusid"
    # fit() trains data-parallel under torch.distributed: each rank takes its part of every pair batch, the
    # gradients are averaged, PQ is fitted on rank 0 and broadcast, so every rank ends with the same codes
    data_parallel = True

    def __init__(self, *, config: FusIDConfig = FusIDConfig()):
        self.config = config

    def _init_from_config(self, config: dict) -> None:
        self.config = from_dict(FusIDConfig, config)

    # ------------------------------------------------------------------ features
    def _select(self, feats: dict) -> dict:
        keep = self.config.modalities
        if not keep:
            return feats
        unknown = [m for m in keep if m not in feats]
        if unknown:
            raise ConfigError(
                f"FusIDConfig.modalities names {unknown}, not built for this catalog; available: {list(feats)}"
            )
        return {m: feats[m] for m in keep}

    @staticmethod
    def _stack(feats: dict) -> tuple[np.ndarray, np.ndarray]:
        x = np.concatenate([e for e, _ in feats.values()], axis=1).astype(np.float32)  # (N, sum D_m)
        present = np.stack([m for _, m in feats.values()], axis=1)  # (N, M)
        return x, present

    # ------------------------------------------------------------------ fit
    def fit(self, catalog: Catalog, train: Interactions | None = None) -> FusID:
        cfg = self.config
        # checked before the encoders and fusion training run, not minutes later at the PQ step
        if cfg.pq.resolve not in ("digit", "reassign"):
            raise ConfigError(f"fusid.pq.resolve must be 'digit' or 'reassign', got {cfg.pq.resolve!r}")
        t0 = time.perf_counter()
        feats = self._select(build_fusid_features(catalog, train, cfg.features))
        if not feats:
            raise ConfigError(
                "FusID found no modality to fuse: give the catalog fields/embeddings or pass train sequences"
            )
        self.modalities_ = list(feats)
        self.in_dims_ = [int(e.shape[1]) for e, _ in feats.values()]
        self.coverage_ = {m: float(mask.mean()) for m, (_, mask) in feats.items()}
        x, present = self._stack(feats)
        t_feat = time.perf_counter()

        # Seed the init from the config (the Trainer seeds only after the net exists; earlier steps such as a
        # text encoder's loading may have consumed the global torch RNG).
        torch.manual_seed(cfg.training.seed)
        density = input_density(x, self.in_dims_)
        self.sparse_blocks_ = [m for m, d in enumerate(density) if d < cfg.fusion.sparse_below]
        self.fusion_ = FusionNet(
            in_dims=self.in_dims_, n_sub=cfg.pq.n_sub, config=cfg.fusion, sparse_blocks=tuple(self.sparse_blocks_)
        )
        self.loss_log_ = self._train(x, present, train)
        t_train = time.perf_counter()
        z = self.embed(x, present)  # (N, n, d)
        self.embeddings_ = z

        fit_items = np.arange(catalog.n_items)
        if train is not None and train.n_interactions:
            seen = np.unique(train.items)
            if len(seen) >= max(cfg.pq.K, cfg.pq.min_fit_items):
                fit_items = seen
        # k-means on rank 0 alone; every rank encodes its own (identical) z with the broadcast centroids
        self.pq_ = distributed.main_only(
            lambda: ProductQuantizer(cfg.pq.n_sub, cfg.pq.K, kmeans=cfg.pq.kmeans).fit(z, rows=fit_items))
        raw = self.pq_.encode(z)
        moved = None
        if cfg.pq.resolve == "reassign":
            moved, _ = reassign_conflicts(z, self.pq_.centroids_, raw)
        self._finalize(raw, [cfg.pq.K] * cfg.pq.n_sub, reassigned=moved)
        # how much of the raw conflict rate no quantizer could avoid (items with identical inputs)
        self.report_.update(input_conflict_report(raw, np.concatenate([x, present.astype(np.float32)], axis=1)))
        t_end = time.perf_counter()
        self.report_["n_pq_fit_items"] = int(len(fit_items))
        self.report_["fusion_training"] = self.train_plan_
        self.report_["modalities"] = self.modalities_
        self.report_["modality_coverage"] = self.coverage_
        self.report_["sparse_modalities"] = [self.modalities_[m] for m in self.sparse_blocks_]
        self.report_["seconds"] = {
            "features": t_feat - t0,
            "train": t_train - t_feat,
            "pq": t_end - t_train,
            "total": t_end - t0,
        }
        return self

    def _train(self, x: np.ndarray, present: np.ndarray, train: Interactions | None) -> list[dict]:
        cfg = self.config
        n_items = len(x)
        use_pairs = cfg.loss.contrastive and train is not None and train.n_interactions > 0
        mined = mine_pairs(train, n_items, cfg.pairs) if use_pairs else None
        if mined is not None and len(mined.positives) == 0:
            mined = None
        bs = max(2, cfg.training.batch_size)
        if mined is not None:
            n_pos = len(mined.positives)
            per_epoch = min(n_pos, cfg.pairs_per_epoch) if cfg.pairs_per_epoch > 0 else n_pos
        else:
            per_epoch = cfg.pairs_per_epoch if cfg.pairs_per_epoch > 0 else n_items
        steps = max(1, per_epoch // bs)
        # what the fusion net saw: pairs_per_epoch beyond the mined positives is capped at their count
        self.train_plan_ = {"positives_mined": 0 if mined is None else int(len(mined.positives)),
                            "pairs_per_epoch": int(per_epoch), "steps_per_epoch": int(steps)}
        xt, pt = torch.from_numpy(x), torch.from_numpy(present)

        def own_part(rows: np.ndarray) -> np.ndarray:
            """This rank's contiguous part of a global batch's rows (all of them in one process). Every rank
            draws the whole global batch (same RNG stream) and keeps its part; a part under 2 rows (BatchNorm
            needs 2) is replaced by the whole batch, which only repeats work."""
            lo, hi = distributed.shard_range(len(rows))
            return rows[lo:hi] if hi - lo >= 2 else rows

        def batches(epoch: int, rng: np.random.Generator):
            if mined is None:  # regulariser-only training: batches of random items
                for _ in range(steps):
                    idx = own_part(rng.choice(n_items, size=min(bs, n_items), replace=False))
                    yield distributed.rank_part({
                        "x": xt[idx],
                        "present": pt[idx],
                        "pairs": torch.zeros(0, 2, dtype=torch.long),
                        "target": torch.zeros(0),
                    })
                return
            order = rng.permutation(len(mined.positives))[: steps * bs]
            for s in range(steps):
                pos = mined.positives[order[s * bs : (s + 1) * bs]]
                neg = sample_negatives(mined, pos[:, 0], cfg.pairs.negatives_per_positive, rng)
                # positives and (anchor-major) negatives split separately, so each rank gets both kinds
                pos, neg = own_part(pos), own_part(neg)
                allp = np.concatenate([pos, neg])
                target = np.concatenate([np.ones(len(pos)), np.full(len(neg), cfg.loss.neg_target)])
                uniq, inv = np.unique(allp, return_inverse=True)  # embed each item once per batch
                yield distributed.rank_part({
                    "x": xt[uniq],
                    "present": pt[uniq],
                    "pairs": torch.from_numpy(inv.reshape(-1, 2)),
                    "target": torch.from_numpy(target.astype(np.float32)),
                })

        log: list[dict] = []

        def loss_fn(model, batch):
            z = model(batch["x"], batch["present"])
            loss, parts = fusid_loss(z.float(), batch["pairs"], batch["target"], cfg.loss)
            log.append(parts)
            return loss

        Trainer(cfg.training).fit(self.fusion_, batches, loss_fn, steps_per_epoch=steps)
        epochs = []
        for e in range(0, len(log), steps):
            chunk = log[e : e + steps]
            epochs.append(
                {k: float(np.mean([c[k] for c in chunk])) for k in chunk[0]} | {"epoch": e // steps}
            )
        return epochs

    @torch.no_grad()
    def embed(self, x: np.ndarray, present: np.ndarray, batch_size: int = 4096) -> np.ndarray:
        """Fused sub-embeddings float32 [N, n, d] (eval mode: no modality dropout, running BN stats)."""
        net = self.fusion_.cpu().eval()
        # filled in place: one (N, n, d) array, not a list of batches plus their concatenation
        out = np.empty((len(x), self.config.pq.n_sub, self.config.fusion.d_sub), dtype=np.float32)
        for s in range(0, len(x), batch_size):
            out[s : s + batch_size] = net(
                torch.from_numpy(x[s : s + batch_size]), torch.from_numpy(present[s : s + batch_size])
            ).numpy()
        return out

    def inputs(self, catalog: Catalog, train: Interactions | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Fusion-net inputs for a catalog built like the fitted one: x float32 [N, sum D_m], present bool [N, M]."""
        x, present = self._stack(self._select(build_fusid_features(catalog, train, self.config.features)))
        if x.shape[1] != sum(self.in_dims_):
            raise ConfigError(
                f"catalog features are {x.shape[1]}-d, the fitted FusID expects {sum(self.in_dims_)}"
            )
        return x, present

    def transform(self, catalog: Catalog, train: Interactions | None = None) -> np.ndarray:
        """Raw PQ codes [N, n] for a catalog built like the fitted one (same modalities and widths)."""
        return self.pq_.encode(self.embed(*self.inputs(catalog, train)))

    # ------------------------------------------------------------------ persistence
    def state_tensors(self) -> dict:
        t = {f"fusion.{k}": v for k, v in self.fusion_.state_dict().items()}
        t["pq.centroids"] = torch.from_numpy(self.pq_.centroids_)
        return t

    def load_state_tensors(self, tensors: dict) -> None:
        self._pending_state = tensors

    def save(self, path: str | Path) -> None:
        super().save(path)
        path = Path(path)
        save_npy(path / "pq_centroids.npy", self.pq_.centroids_)
        write_json(
            path / "fusid_meta.json",
            {
                "modalities": self.modalities_,
                "in_dims": self.in_dims_,
                "coverage": self.coverage_,
                "sparse_blocks": self.sparse_blocks_,
                "loss_log": self.loss_log_,
            },
        )

    @classmethod
    def load(cls, path: str | Path) -> FusID:
        path = Path(path)
        obj = super().load(path)
        try:
            meta = read_json(path / "fusid_meta.json")
        except Exception as e:
            raise CheckpointError(
                f"{path}/fusid_meta.json: cannot read FusID metadata ({e}); re-run fit"
            ) from None
        obj.modalities_, obj.in_dims_ = meta["modalities"], meta["in_dims"]
        obj.coverage_, obj.loss_log_ = meta.get("coverage", {}), meta.get("loss_log", [])
        obj.sparse_blocks_ = list(meta.get("sparse_blocks", []))  # runs saved before the sparse path: dense
        state = getattr(obj, "_pending_state", None)
        if state is None:
            raise CheckpointError(f"{path}/state.safetensors missing: the fusion weights were not saved")
        obj.fusion_ = FusionNet(
            in_dims=obj.in_dims_,
            n_sub=obj.config.pq.n_sub,
            config=obj.config.fusion,
            sparse_blocks=tuple(obj.sparse_blocks_),
        )
        obj.fusion_.load_state_dict(
            {k[len("fusion.") :]: v for k, v in state.items() if k.startswith("fusion.")}
        )
        obj.fusion_.eval()
        obj.pq_ = ProductQuantizer.from_centroids(state["pq.centroids"].numpy(), kmeans=obj.config.pq.kmeans)
        del obj._pending_state
        return obj


def small_config(**overrides) -> FusIDConfig:
    """A tiny FusID config for tests and quick looks: n=3, d=8, hidden=32, K=8, 3 x 2 steps, no cache."""
    base = FusIDConfig(
        features=FeaturesConfig(cache=False),
        fusion=FusionConfig(d_sub=8, hidden=32),
        pq=PQConfig(n_sub=3, K=8, kmeans=KMeansConfig(backend="torch", n_iter=10)),
        training=dataclasses.replace(
            _default_training(), epochs=3, batch_size=32, warmup_steps=2, progress=False
        ),
        pairs_per_epoch=64,
    )
    return dataclasses.replace(base, **overrides)
