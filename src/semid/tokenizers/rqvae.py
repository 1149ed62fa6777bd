"""TIGER's RQ-VAE tokenizer (Rajput et al. 2023) and LETTER's collaborative variant (Wang et al. 2024a).

One modality embedding x (D) -> ``RQVAE`` (MLP encoder -> z (32) -> residual quantizer (3 x 256) -> MLP
decoder -> x̂). L = L_recon + L_RQ (+ alpha L_align + beta L_relation for LETTER, against SASRec z_cf)
(+ diversity * sum over levels of LETTER's L_div, ``semid.quantize.diversity``), trained by the shared
Trainer (``semid.tokenizers.training``). After training every item gets its 3 codes plus TIGER's 4th
collision digit (``resolve_collisions(always_append=True)``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from semid.config import from_dict
from semid.data.types import Catalog, Interactions
from semid.errors import ConfigError
from semid.quantize.diversity import balanced_groups, diversity_loss, sample_positives
from semid.tokenizers.alignment import CollaborativeAlignment
from semid.tokenizers.base import BaseTokenizer
from semid.tokenizers.modality import cf_features, modality_features
from semid.tokenizers.rqvae_model import RQVAE
from semid.tokenizers.training import BatchPart, autoencoder_train_config, train_autoencoder


@dataclass(frozen=True)
class RQVAEConfig:
    modality: str = "text"  # catalog.embeddings key (or catalog.codes key, one-hot per level) to quantise
    hidden: tuple[int, ...] = (512, 256, 128)  # encoder widths between input and latent (decoder mirrors)
    latent_dim: int = 32  # width of z and of every codeword
    n_levels: int = 3  # RQ levels before TIGER's collision digit
    n_codes: int = 256  # codes per level
    mu: float = 0.25  # commitment weight in L_RQ (TIGER, MusicRec)
    alpha: float = 0.0  # weight of InfoNCE alignment to z_cf (0 = TIGER, >0 = LETTER)
    beta: float = 0.0  # weight of the relation-preservation loss (MusicRec eq. 11)
    tau: float = 0.07  # InfoNCE temperature
    cf_embedding: str = "cf"  # catalog.embeddings key of the collaborative embeddings z_cf
    collision_digit: bool = True  # always append TIGER's 4th level (0 for unique tuples)
    epochs: int = 200  # passes over the catalog
    batch_size: int = 256  # items per step
    lr: float = 1e-3  # AdamW learning rate
    weight_decay: float = 1e-4  # AdamW weight decay (matrices and codebooks; biases get none)
    warmup_steps: int = 0  # linear warmup steps before the cosine decay
    min_lr_ratio: float = 1.0  # cosine floor as a fraction of lr (1 = constant lr, as TIGER / LETTER)
    grad_clip: float = 0.0  # max global grad norm (0 = no clipping, as TIGER / LETTER)
    reseed_every: int = 5  # re-seed codes unused over this many epochs (0 = never)
    seed: int = 0  # torch / numpy seed (init, batch order, re-seeding, diversity positives)
    device: str = "auto"  # auto | cpu | cuda | cuda:1 | mps (training only; the fitted model ends on CPU)
    bf16: bool = False  # bf16 autocast of the MLPs on CUDA (nearest-code search stays float32)
    compile: bool = False  # torch.compile the training objective (CUDA only)
    code_level_decay: float = 1.0  # code-tuple modality: level l's one-hot scaled by decay**l (1 = plain)
    diversity: float = 0.0  # weight of LETTER's diversity loss per level (0 = off; LETTER uses 1e-4)
    diversity_groups: int = 10  # balanced codeword groups per level, recomputed every epoch (LETTER: 10)
    diversity_tau: float = 1.0  # temperature of the diversity loss (LETTER: 1)

    def __post_init__(self):
        if self.diversity < 0 or self.diversity_tau <= 0:
            raise ConfigError(
                f"rqvae diversity must be >= 0 and diversity_tau > 0; got {self.diversity}, {self.diversity_tau}"
            )
        if self.diversity > 0 and not 2 <= self.diversity_groups <= self.n_codes:
            raise ConfigError(
                f"rqvae diversity_groups must be in [2, n_codes={self.n_codes}]; got {self.diversity_groups}"
            )


def build_rqvae(in_dim: int, c: RQVAEConfig) -> RQVAE:
    return RQVAE(in_dim=in_dim, hidden=c.hidden, latent_dim=c.latent_dim, n_levels=c.n_levels,
                 n_codes=c.n_codes, mu=c.mu, seed=c.seed)


class RQVAEObjective(nn.Module):
    """forward(idx (B,), part=None) -> loss terms of items ``idx``: recon, rq (+ align, relation) (+ diversity),
    loss; with a ``BatchPart`` (data-parallel), idx are this rank's rows and every term is its share.

    x (N, D) and z_cf (N, d_cf) are non-persistent buffers, so moving the objective moves the data.
    LETTER's codeword groups are recomputed at every epoch start (``new_epoch``) and, per level, only once
    the level's codebook has had its k-means init on the first batch.
    """

    def __init__(self, model: RQVAE, align: CollaborativeAlignment, x: torch.Tensor, zcf: torch.Tensor | None,
                 config: RQVAEConfig):
        super().__init__()
        self.model, self.align, self.config = model, align, config
        self.register_buffer("x", x, persistent=False)
        self.register_buffer("zcf", zcf, persistent=False)
        self.groups: list[torch.Tensor | None] = [None] * model.rq.n_levels
        self.gen = torch.Generator()

    def new_epoch(self, epoch: int) -> None:
        c = self.config
        self.groups = [None] * self.model.rq.n_levels
        self.gen.manual_seed(c.seed * 1_000_003 + epoch + 1)  # per epoch, so a replayed epoch draws the same

    def prime(self, idx: torch.Tensor) -> None:
        """The network alone on items ``idx`` (training mode: the codebooks' k-means init on a first batch)."""
        self.model(self.x[idx])

    def forward(self, idx: torch.Tensor, part: BatchPart | None = None) -> dict[str, torch.Tensor]:
        c = self.config
        xb = self.x[idx]
        xh, q = self.model(xb)
        recon = (xh.float() - xb).pow(2).sum(-1).mean()  # ||x - x̂||^2, batch mean
        out = {"recon": recon, "rq": q.loss}
        if part is not None:  # row means over this rank's rows: its share of the global batch's means
            out = {k: v * part.share for k, v in out.items()}
        loss = out["recon"] + out["rq"]
        if self.zcf is not None:
            a = self.align(q.codeword_sum, self.zcf[idx if part is None else part.batch], part)
            out |= {"align": a["align"], "relation": a["relation"]}
            loss = loss + a["loss"]
        if c.diversity > 0:
            div = self._diversity(q.codes, part)
            out["diversity"] = div
            loss = loss + c.diversity * div
        out["loss"] = loss
        return out

    def _diversity(self, codes: torch.Tensor, part: BatchPart | None) -> torch.Tensor:
        """Sum over levels of LETTER's L_div of the batch's codes (B, L) (a rank's share with ``part``)."""
        c = self.config
        pos = []
        for lvl, vq in enumerate(self.model.rq.levels):
            if self.groups[lvl] is None:
                self.groups[lvl] = balanced_groups(vq.codebook, c.diversity_groups, seed=c.seed + lvl)
            own = codes[:, lvl].cpu()  # (B,) groups and the generator live on the CPU: draw there
            if part is not None:  # draw for the whole global batch (one process's stream), keep this rank's rows
                full = torch.zeros(len(part.batch), dtype=own.dtype)
                full[part.rows] = own  # a row's draw depends on its own code and uniform only
                pos.append(sample_positives(full, self.groups[lvl], self.gen)[part.rows])
            else:
                pos.append(sample_positives(own, self.groups[lvl], self.gen))
        # L_div averages over the rows that have a positive: a rank weighs its mean by its share of them
        weight = None if part is None else part.count_share(torch.stack([(p >= 0).sum() for p in pos]))
        div = codes.new_zeros((), dtype=self.model.rq.levels[0].codebook.dtype)
        for lvl, vq in enumerate(self.model.rq.levels):
            lc = codes[:, lvl]
            term = diversity_loss(vq.codebook[lc], lc, vq.codebook, pos[lvl].to(lc.device), tau=c.diversity_tau)
            div = div + (term if weight is None else term * float(weight[lvl]))
        return div


class RQVAETokenizer(BaseTokenizer):
    """TIGER (alpha = beta = 0) or LETTER (alpha > 0) item tokenizer over one modality."""

    name = "rqvae"
    data_parallel = True  # under an active process group ``fit`` trains data-parallel (``training``)

    def __init__(self, *, config: RQVAEConfig | None = None):
        self.config = config or RQVAEConfig()
        self.model: RQVAE | None = None
        self.align: CollaborativeAlignment | None = None

    def _init_from_config(self, config: dict) -> None:
        self.__init__(config=from_dict(RQVAEConfig, config))

    def fit(self, catalog: Catalog, train: Interactions | None = None) -> RQVAETokenizer:
        c = self.config
        torch.manual_seed(c.seed)
        x = torch.from_numpy(modality_features(catalog, c.modality, c.code_level_decay))
        self.model = build_rqvae(x.shape[1], c)
        zcf = None
        cf_dim = c.latent_dim
        if c.alpha > 0 or c.beta > 0:
            zcf = torch.from_numpy(cf_features(catalog, c.cf_embedding))
            cf_dim = zcf.shape[1]
        self.align = CollaborativeAlignment(in_dim=c.latent_dim, cf_dim=cf_dim, alpha=c.alpha, beta=c.beta, tau=c.tau)
        objective = RQVAEObjective(self.model, self.align, x, zcf, c)
        self.history_, self.n_reseeded_ = train_autoencoder(
            objective, len(x), autoencoder_train_config(c), reseed_every=c.reseed_every,
            reseed=self.model.rq.reseed_dead_codes, on_epoch_start=objective.new_epoch,
        )
        objective.cpu()  # codes are computed on the CPU, exactly as ``transform`` computes them later
        self.model.eval()
        with torch.no_grad():
            codes = self.model.encode(x).numpy()
        self._finalize(codes, self.model.rq.codebook_sizes, always_append=c.collision_digit)
        self.report_["n_dead_codes_reseeded"] = self.n_reseeded_
        self.report_["final_losses"] = self.history_[-1] if self.history_ else {}
        return self

    def transform(self, catalog: Catalog, train: Interactions | None = None) -> np.ndarray:
        """Raw RQ codes int64 [N, n_levels] (no collision digit) of every item of ``catalog``, built like the
        fitted one (same modality and width): encoder -> residual quantizer, as at the end of ``fit``."""
        if self.model is None:
            raise RuntimeError("RQVAETokenizer is not fitted; call fit(catalog) or load(dir) first")
        c = self.config
        x = torch.from_numpy(modality_features(catalog, c.modality, c.code_level_decay))
        in_dim = self.model.in_dim
        if x.ndim != 2 or x.shape[1] != in_dim:
            raise ConfigError(
                f"rqvae.transform: modality {c.modality!r} has width {x.shape[-1]}, the fitted encoder {in_dim}; "
                "build the new catalog's features like the fitted one's"
            )
        self.model.eval()
        with torch.no_grad():
            return self.model.encode(x).numpy().astype(np.int64)

    def state_tensors(self) -> dict:
        return {} if self.model is None else dict(self.model.state_dict())

    def load_state_tensors(self, tensors: dict) -> None:
        in_dim = tensors["encoder.0.weight"].shape[1]
        self.model = build_rqvae(in_dim, self.config)
        self.model.load_state_dict(tensors)
        self.model.eval()

    def get_params(self) -> dict:
        return dataclasses.asdict(self.config)
