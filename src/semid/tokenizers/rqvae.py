"""TIGER's RQ-VAE tokenizer (Rajput et al. 2023) and LETTER's collaborative variant (Wang et al. 2024a).

One modality embedding x (D) -> MLP encoder -> z (32) -> residual quantizer (3 x 256) -> MLP decoder -> x̂.
L = L_recon + L_RQ (+ alpha L_align + beta L_relation for LETTER, against SASRec z_cf)
(+ diversity * sum over levels of LETTER's L_div, ``semid.quantize.diversity``). After training
every item gets its 3 codes plus TIGER's 4th collision digit (``resolve_collisions(always_append=True)``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from semid.config import from_dict
from semid.data.codes import codes_to_onehot, level_decay_weights
from semid.data.types import Catalog, Interactions
from semid.errors import ConfigError
from semid.quantize.diversity import balanced_groups, diversity_loss, sample_positives
from semid.quantize.rq import ResidualQuantizer
from semid.tokenizers.alignment import CollaborativeAlignment
from semid.tokenizers.base import BaseTokenizer


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
    weight_decay: float = 1e-4  # AdamW weight decay
    reseed_every: int = 5  # re-seed codes unused over this many epochs (0 = never)
    seed: int = 0  # torch / numpy seed
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


def mlp(widths: list[int]) -> nn.Sequential:
    """Linear layers of the given widths with ReLU between (none after the last)."""
    layers: list[nn.Module] = []
    for i in range(len(widths) - 1):
        layers.append(nn.Linear(widths[i], widths[i + 1]))
        if i < len(widths) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


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
    if name not in catalog.embeddings:
        raise ConfigError(
            f"alignment needs collaborative embeddings catalog.embeddings[{name!r}] (e.g. SASRec "
            f"item_embeddings(), 32-d); have {sorted(catalog.embeddings)}. Add them or set alpha=beta=0"
        )
    return np.asarray(catalog.embeddings[name], dtype=np.float32)


def train_loop(
    model: nn.Module,
    n_items: int,
    step: Callable[[torch.Tensor], dict[str, torch.Tensor]],
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    weight_decay: float,
    reseed_every: int,
    seed: int,
    reseed: Callable[[], list[int]],
    on_epoch_start: Callable[[int], None] | None = None,
) -> tuple[list[dict[str, float]], int]:
    """Mini-batch AdamW over shuffled item indices. ``step(idx)`` returns a dict with "loss";
    ``on_epoch_start(epoch)`` runs before each epoch. Returns (per-epoch mean of every term, total dead
    codes re-seeded)."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    rng = np.random.default_rng(seed)
    history, n_reseeded = [], 0
    model.train()
    for epoch in range(epochs):
        if on_epoch_start is not None:
            on_epoch_start(epoch)
        perm = torch.from_numpy(rng.permutation(n_items))
        sums: dict[str, float] = {}
        n_b = 0
        for s in range(0, n_items, batch_size):
            out = step(perm[s : s + batch_size])
            opt.zero_grad(set_to_none=True)
            out["loss"].backward()
            opt.step()
            for k, v in out.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach())
            n_b += 1
        history.append({k: v / n_b for k, v in sums.items()})
        if reseed_every and (epoch + 1) % reseed_every == 0 and epoch + 1 < epochs:
            n_reseeded += int(sum(reseed()))
    model.eval()
    return history, n_reseeded


class RQVAE(nn.Module):
    """x (B, D_in) -> z (B, d) -> RQ -> ẑ (B, d) -> x̂ (B, D_in)."""

    def __init__(self, *, in_dim: int, config: RQVAEConfig):
        super().__init__()
        c = config
        self.encoder = mlp([in_dim, *c.hidden, c.latent_dim])
        self.rq = ResidualQuantizer(
            n_levels=c.n_levels, n_codes=c.n_codes, dim=c.latent_dim, mu=c.mu, seed=c.seed
        )
        self.decoder = mlp([c.latent_dim, *reversed(c.hidden), in_dim])

    def forward(self, x: torch.Tensor):
        q = self.rq(self.encoder(x))
        return self.decoder(q.quantized), q


class RQVAETokenizer(BaseTokenizer):
    """TIGER (alpha = beta = 0) or LETTER (alpha > 0) item tokenizer over one modality."""

    name = "rqvae"

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
        self.model = RQVAE(in_dim=x.shape[1], config=c)
        self.align = CollaborativeAlignment(
            in_dim=c.latent_dim, cf_dim=c.latent_dim, alpha=c.alpha, beta=c.beta, tau=c.tau
        )
        zcf = None
        if self.align.active:
            zcf = torch.from_numpy(cf_features(catalog, c.cf_embedding))
            self.align = CollaborativeAlignment(
                in_dim=c.latent_dim, cf_dim=zcf.shape[1], alpha=c.alpha, beta=c.beta, tau=c.tau
            )
        params = nn.ModuleDict({"model": self.model, "align": self.align})
        levels = self.model.rq.levels
        # LETTER's codeword groups, per level; None = recompute at the next step (every epoch start, and
        # only once the level's codebook has had its k-means init on the first batch).
        groups: list[torch.Tensor | None] = [None] * len(levels)
        gen = torch.Generator().manual_seed(c.seed + 1)

        def new_epoch(epoch: int) -> None:
            groups[:] = [None] * len(levels)

        def step(idx: torch.Tensor) -> dict[str, torch.Tensor]:
            xb = x[idx]
            xh, q = self.model(xb)
            recon = (xh - xb).pow(2).sum(-1).mean()  # ||x - x̂||^2, batch mean
            out = {"recon": recon, "rq": q.loss}
            loss = recon + q.loss
            if zcf is not None:
                a = self.align(q.codeword_sum, zcf[idx])
                out |= {"align": a["align"], "relation": a["relation"]}
                loss = loss + a["loss"]
            if c.diversity > 0:
                div = q.loss.new_zeros(())
                for lvl, vq in enumerate(levels):
                    if groups[lvl] is None:
                        groups[lvl] = balanced_groups(vq.codebook, c.diversity_groups, seed=c.seed + lvl)
                    codes = q.codes[:, lvl]  # (B,)
                    pos = sample_positives(codes, groups[lvl], gen)
                    div = div + diversity_loss(vq.codebook[codes], codes, vq.codebook, pos, tau=c.diversity_tau)
                out["diversity"] = div
                loss = loss + c.diversity * div
            out["loss"] = loss
            return out

        self.history_, self.n_reseeded_ = train_loop(
            params,
            len(x),
            step,
            epochs=c.epochs,
            batch_size=c.batch_size,
            lr=c.lr,
            weight_decay=c.weight_decay,
            reseed_every=c.reseed_every,
            seed=c.seed,
            reseed=self.model.rq.reseed_dead_codes,
            on_epoch_start=new_epoch,
        )
        with torch.no_grad():
            codes = self.model.rq.encode(self.model.encoder(x)).numpy()
        self._finalize(codes, self.model.rq.codebook_sizes, always_append=c.collision_digit)
        self.report_["n_dead_codes_reseeded"] = self.n_reseeded_
        self.report_["final_losses"] = self.history_[-1] if self.history_ else {}
        return self

    def state_tensors(self) -> dict:
        return {} if self.model is None else dict(self.model.state_dict())

    def load_state_tensors(self, tensors: dict) -> None:
        in_dim = tensors["encoder.0.weight"].shape[1]
        self.model = RQVAE(in_dim=in_dim, config=self.config)
        self.model.load_state_dict(tensors)
        self.model.eval()

    def get_params(self) -> dict:
        return dataclasses.asdict(self.config)
