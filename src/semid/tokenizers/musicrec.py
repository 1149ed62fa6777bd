"""MusicRec's shared-specific multi-modal tokenizer (Zhao et al. 2026, "Multi-Modal Semantic-Enhanced
Identifier", eq. 2-9) with collaborative-semantic alignment (eq. 10-12).

Two modality inputs x_t, x_i -> MLP encoders -> z_t, z_i (d) -> z = Linear([z_t; z_i]) (2d)
-> shared RQ (L_e levels, N codes in R^{2d}) -> last shared residual split in halves
-> text-specific RQ and image-specific RQ (L_c levels each, R^d).
Text ID = shared codes + text-specific codes; image ID = shared codes + image-specific codes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from semid.config import from_dict
from semid.data.types import Catalog, Interactions
from semid.errors import CheckpointError
from semid.io import atomic_write, save_npy, write_json
from semid.quantize.rq import ResidualQuantizer
from semid.tokenizers.alignment import CollaborativeAlignment
from semid.tokenizers.base import BaseTokenizer
from semid.tokenizers.ids import conflict_mask, id_report, resolve_collisions
from semid.tokenizers.modality import cf_features, modality_features
from semid.tokenizers.rqvae_model import mlp
from semid.tokenizers.training import BatchPart, autoencoder_train_config, train_autoencoder


@dataclass(frozen=True)
class MusicRecConfig:
    text_modality: str = "text"  # catalog.embeddings (or catalog.codes, one-hot) key used as x_t
    image_modality: str = "image"  # catalog.embeddings (or catalog.codes, one-hot) key used as x_i
    hidden: tuple[int, ...] = (512, 256, 128)  # encoder widths between input and z (decoders mirror)
    latent_dim: int = 32  # d: width of z_t, z_i and of specific codewords (shared codewords are 2d)
    n_shared: int = 2  # L_e, shared levels
    n_specific: int = 2  # L_c, specific levels per modality
    n_codes: int = 256  # N, codes per level
    mu: float = 0.25  # commitment weight in eq. 8
    alpha: float = 1e-2  # weight of L_align (eq. 12); 0 = "w/o L_align"
    beta: float = 1e-4  # weight of L_relation (eq. 12); 0 = "w/o L_rel"
    tau: float = 0.07  # InfoNCE temperature (eq. 10); paper gives no value, 0.07 as in CLIP/MoCo
    cf_embedding: str = "cf"  # catalog.embeddings key of SASRec z_cf
    collision_digit: bool = False  # always append a disambiguation digit (else only when IDs collide)
    epochs: int = 200  # passes over the catalog
    batch_size: int = 256  # items per step (also the InfoNCE negatives)
    lr: float = 1e-3  # AdamW learning rate
    weight_decay: float = 1e-4  # AdamW weight decay (matrices and codebooks; biases get none)
    warmup_steps: int = 0  # linear warmup steps before the cosine decay
    min_lr_ratio: float = 1.0  # cosine floor as a fraction of lr (1 = constant lr, as the paper)
    grad_clip: float = 0.0  # max global grad norm (0 = no clipping)
    reseed_every: int = 5  # re-seed codes unused over this many epochs (0 = never)
    seed: int = 0  # torch / numpy seed (init, batch order, re-seeding)
    device: str = "auto"  # auto | cpu | cuda | cuda:1 | mps (training only; the fitted model ends on CPU)
    bf16: bool = False  # bf16 autocast of the MLPs on CUDA (nearest-code search stays float32)
    compile: bool = False  # torch.compile the training objective (CUDA only)
    code_level_decay: float = 1.0  # code-tuple modalities: level l's one-hot scaled by decay**l (1 = plain)


@dataclass
class MusicRecOutput:
    """Shapes for a batch of B items; d = latent_dim.

    z: (B, 2d) fused latent; zt_hat / zi_hat: (B, d) quantised text / image vectors (eq. 6, value = sum of
    codewords, gradient to codebooks and, straight-through, to the encoders); xt_hat / xi_hat: decoder
    outputs (eq. 7); codes_shared (B, L_e), codes_text / codes_image (B, L_c); rq_*: eq. 8 terms."""

    z: torch.Tensor
    zt_hat: torch.Tensor
    zi_hat: torch.Tensor
    xt_hat: torch.Tensor
    xi_hat: torch.Tensor
    codes_shared: torch.Tensor
    codes_text: torch.Tensor
    codes_image: torch.Tensor
    rq_shared: torch.Tensor
    rq_text: torch.Tensor
    rq_image: torch.Tensor


class MusicRecModel(nn.Module):
    def __init__(self, *, text_dim: int, image_dim: int, config: MusicRecConfig):
        super().__init__()
        c, d = config, config.latent_dim
        self.d = d
        self.enc_t = mlp([text_dim, *c.hidden, d])  # eq. 2
        self.enc_i = mlp([image_dim, *c.hidden, d])
        self.fuse = nn.Linear(2 * d, 2 * d)  # z = Linear([z_t; z_i])
        kw = dict(n_codes=c.n_codes, mu=c.mu)
        self.rq_shared = ResidualQuantizer(n_levels=c.n_shared, dim=2 * d, seed=c.seed, **kw)  # eq. 3
        self.rq_text = ResidualQuantizer(n_levels=c.n_specific, dim=d, seed=c.seed + 1, **kw)  # eq. 4
        self.rq_image = ResidualQuantizer(n_levels=c.n_specific, dim=d, seed=c.seed + 2, **kw)  # eq. 5
        self.dec_t = mlp([d, *reversed(c.hidden), text_dim])  # eq. 7
        self.dec_i = mlp([d, *reversed(c.hidden), image_dim])

    def forward(self, xt: torch.Tensor, xi: torch.Tensor) -> MusicRecOutput:
        d = self.d
        z = self.fuse(torch.cat([self.enc_t(xt), self.enc_i(xi)], -1))  # (B, 2d)
        qe = self.rq_shared(z)
        r_t, r_i = qe.residual[:, :d], qe.residual[:, d:]  # r^T_0, r^I_0: halves of r^e_{L_e}
        qt, qi = self.rq_text(r_t), self.rq_image(r_i)
        # eq. 6: ẑ_t = ẑ_{e,t} + sum_l e_{c^T_l}. Value = codeword sums (gradient to every codebook);
        # the (z - sg[z]) term adds the straight-through path to the encoders (ẑ_t approximates z[:, :d]).
        zt_cw = qe.codeword_sum[:, :d] + qt.codeword_sum
        zi_cw = qe.codeword_sum[:, d:] + qi.codeword_sum
        zt_hat = zt_cw + (z[:, :d] - z[:, :d].detach())
        zi_hat = zi_cw + (z[:, d:] - z[:, d:].detach())
        # Decoders get the straight-through version: value ẑ, gradient into z only (codebooks learn from eq. 8).
        zt_st = z[:, :d] + (zt_cw - z[:, :d]).detach()
        zi_st = z[:, d:] + (zi_cw - z[:, d:]).detach()
        return MusicRecOutput(
            z=z,
            zt_hat=zt_hat,
            zi_hat=zi_hat,
            xt_hat=self.dec_t(zt_st),
            xi_hat=self.dec_i(zi_st),
            codes_shared=qe.codes,
            codes_text=qt.codes,
            codes_image=qi.codes,
            rq_shared=qe.loss,
            rq_text=qt.loss,
            rq_image=qi.loss,
        )

    def reseed_dead_codes(self) -> list[int]:
        return (
            self.rq_shared.reseed_dead_codes()
            + self.rq_text.reseed_dead_codes()
            + self.rq_image.reseed_dead_codes()
        )

    @torch.no_grad()
    def encode(self, xt: torch.Tensor, xi: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """-> (shared [N, L_e], text-specific [N, L_c], image-specific [N, L_c]) int64, eval mode."""
        was = self.training
        self.eval()
        out = self(xt, xi)
        self.train(was)
        return out.codes_shared.cpu().numpy(), out.codes_text.cpu().numpy(), out.codes_image.cpu().numpy()


class MusicRecObjective(nn.Module):
    """forward(idx (B,), part=None) -> eq. 9 terms (recon, rq, sem) (+ align, relation, eq. 10-11) and loss
    (eq. 12) of items ``idx``; with a ``BatchPart`` (data-parallel), idx are this rank's rows and every term is
    its share. x_t (N, D_t), x_i (N, D_i), z_cf (N, d_cf) are non-persistent buffers (they move with it)."""

    def __init__(self, model: MusicRecModel, align: CollaborativeAlignment, xt: torch.Tensor, xi: torch.Tensor,
                 zcf: torch.Tensor | None):
        super().__init__()
        self.model, self.align = model, align
        self.register_buffer("xt", xt, persistent=False)
        self.register_buffer("xi", xi, persistent=False)
        self.register_buffer("zcf", zcf, persistent=False)

    def prime(self, idx: torch.Tensor) -> None:
        """The network alone on items ``idx`` (training mode: the codebooks' k-means init on a first batch)."""
        self.model(self.xt[idx], self.xi[idx])

    def forward(self, idx: torch.Tensor, part: BatchPart | None = None) -> dict[str, torch.Tensor]:
        xt, xi = self.xt[idx], self.xi[idx]
        out = self.model(xt, xi)
        terms = semantic_loss(out, xt, xi)
        if part is not None:  # row means over this rank's rows: its share of the global batch's means
            terms = {k: v * part.share for k, v in terms.items()}
        loss = terms["sem"]
        if self.zcf is not None:
            zcf = self.zcf[idx if part is None else part.batch]  # the whole global batch's z_cf with a part
            a = self.align(torch.cat([out.zt_hat, out.zi_hat], -1), zcf, part)  # eq. 10-11
            terms |= {"align": a["align"], "relation": a["relation"]}
            loss = loss + a["loss"]  # eq. 12
        terms["loss"] = loss
        return terms


def semantic_loss(out: MusicRecOutput, xt: torch.Tensor, xi: torch.Tensor) -> dict[str, torch.Tensor]:
    """Eq. 9: L_Sem = ||x_t - x̂_t||^2 + ||x_i - x̂_i||^2 + L_RQ^e + L_RQ^T + L_RQ^I (squared norms, batch mean)."""
    recon = (out.xt_hat.float() - xt).pow(2).sum(-1).mean() + (out.xi_hat.float() - xi).pow(2).sum(-1).mean()
    rq = out.rq_shared + out.rq_text + out.rq_image
    return {"recon": recon, "rq": rq, "sem": recon + rq}


def token_strings(codes: np.ndarray, *, n_shared: int, image: bool) -> list[str]:
    """Paper's token names: text ``<s1.1><s2.2><a.3><b.4>``, image ``<S1.1><S2.2><A.5><B.6>``.
    A collision digit (if any) continues the letters after the specific levels."""
    out = []
    for row in np.asarray(codes).tolist():
        toks = []
        for pos, c in enumerate(row):
            if pos < n_shared:
                name = f"s{pos + 1}"
            else:
                name = chr(ord("a") + pos - n_shared)
            toks.append(f"<{name.upper() if image else name}.{c}>")
        out.append("".join(toks))
    return out


class MusicRecTokenizer(BaseTokenizer):
    """Fitted state: ``text_codes_`` / ``image_codes_`` int64 [n_items, L_e + L_c (+1)], each unique;
    ``codes_`` = ``text_codes_`` (the protocol's identifier); ``joint_codes_raw_`` [n_items, L_e + 2 L_c]."""

    name = "musicrec"
    data_parallel = True  # under an active process group ``fit`` trains data-parallel (``training``)

    def __init__(self, *, config: MusicRecConfig | None = None):
        self.config = config or MusicRecConfig()
        self.model: MusicRecModel | None = None
        self.align: CollaborativeAlignment | None = None

    def _init_from_config(self, config: dict) -> None:
        self.__init__(config=from_dict(MusicRecConfig, config))

    def fit(self, catalog: Catalog, train: Interactions | None = None) -> MusicRecTokenizer:
        c = self.config
        torch.manual_seed(c.seed)
        xt = torch.from_numpy(modality_features(catalog, c.text_modality, c.code_level_decay))
        xi = torch.from_numpy(modality_features(catalog, c.image_modality, c.code_level_decay))
        self.model = MusicRecModel(text_dim=xt.shape[1], image_dim=xi.shape[1], config=c)
        zcf = torch.from_numpy(cf_features(catalog, c.cf_embedding)) if (c.alpha > 0 or c.beta > 0) else None
        # ẑ = [ẑ_t; ẑ_i] (2d) is mapped to z_cf's width by a linear head (see alignment.py).
        self.align = CollaborativeAlignment(
            in_dim=2 * c.latent_dim,
            cf_dim=zcf.shape[1] if zcf is not None else 1,
            alpha=c.alpha,
            beta=c.beta,
            tau=c.tau,
        )
        objective = MusicRecObjective(self.model, self.align, xt, xi, zcf)
        self.history_, self.n_reseeded_ = train_autoencoder(
            objective, len(xt), autoencoder_train_config(c), reseed_every=c.reseed_every,
            reseed=self.model.reseed_dead_codes,
        )
        objective.cpu()  # codes are computed on the CPU, like every later load / encode
        shared, spec_t, spec_i = self.model.encode(xt, xi)
        self._set_codes(shared, spec_t, spec_i)
        self.report_["n_dead_codes_reseeded"] = self.n_reseeded_
        self.report_["final_losses"] = self.history_[-1] if self.history_ else {}
        return self

    def _set_codes(self, shared: np.ndarray, spec_t: np.ndarray, spec_i: np.ndarray) -> None:
        """Build, report and resolve text / image identifiers (each made unique by its own digit,
        assigned in item-index order, so resolution is deterministic)."""
        c = self.config
        sizes = [c.n_codes] * (c.n_shared + c.n_specific)
        text_raw = np.concatenate([shared, spec_t], 1).astype(np.int64)
        image_raw = np.concatenate([shared, spec_i], 1).astype(np.int64)
        self.joint_codes_raw_ = np.concatenate([shared, spec_t, spec_i], 1).astype(np.int64)
        # One digit width for both spaces: if either modality collides, both get the digit (0 when unique).
        digit = c.collision_digit or bool(conflict_mask(text_raw).any() or conflict_mask(image_raw).any())
        self._finalize(text_raw, sizes, always_append=digit)  # codes_ = text identifiers
        self.text_codes_ = self.codes_
        self.text_codebook_sizes_ = self.codebook_sizes_
        image, n_img = resolve_collisions(image_raw, always_append=digit)
        img_sizes = sizes + ([int(image[:, -1].max()) + 1] if image.shape[1] > len(sizes) else [])
        self.image_codes_raw_, self.image_codes_, self.image_codebook_sizes_ = image_raw, image, img_sizes
        text_report = dict(self.report_)
        image_report = id_report(image_raw, sizes) | {
            "n_items_disambiguated": n_img,
            "n_levels_final": int(image.shape[1]),
            "conflict_rate_final": id_report(image, img_sizes)["conflict_rate"],
        }
        joint = id_report(self.joint_codes_raw_, c.n_codes)
        self.report_ = text_report | {"text": text_report, "image": image_report, "joint": joint}

    # ---- persistence: base files (text IDs) + image IDs + the human-readable table ----------------
    def state_tensors(self) -> dict:
        return {} if self.model is None else dict(self.model.state_dict())

    def load_state_tensors(self, tensors: dict) -> None:
        self.model = MusicRecModel(
            text_dim=tensors["enc_t.0.weight"].shape[1],
            image_dim=tensors["enc_i.0.weight"].shape[1],
            config=self.config,
        )
        self.model.load_state_dict(tensors)
        self.model.eval()

    def identifier_table(self, item_ids: np.ndarray | None = None) -> list[tuple[str, str, str]]:
        """(item_id, text_id, image_id) per item, with the paper's token names."""
        self._check_fitted()
        ids = (
            np.arange(len(self.codes_)).astype(str) if item_ids is None else np.asarray(item_ids).astype(str)
        )
        t = token_strings(self.text_codes_, n_shared=self.config.n_shared, image=False)
        i = token_strings(self.image_codes_, n_shared=self.config.n_shared, image=True)
        return list(zip(ids.tolist(), t, i, strict=True))

    def save(self, path: str | Path, item_ids: np.ndarray | None = None) -> None:
        super().save(path)
        path = Path(path)
        save_npy(path / "ids" / "image_codes.npy", self.image_codes_)
        save_npy(path / "ids" / "image_codes_raw.npy", self.image_codes_raw_)
        save_npy(path / "ids" / "joint_codes_raw.npy", self.joint_codes_raw_)
        write_json(
            path / "ids" / "codebook_sizes.json",
            {"text": self.text_codebook_sizes_, "image": self.image_codebook_sizes_},
        )
        rows = ["item_id\ttext_id\timage_id"] + ["\t".join(r) for r in self.identifier_table(item_ids)]
        atomic_write(path / "ids" / "identifiers.tsv", lambda p: p.write_text("\n".join(rows) + "\n"))

    @classmethod
    def load(cls, path: str | Path) -> MusicRecTokenizer:
        obj = super().load(path)
        path = Path(path)
        try:
            obj.image_codes_ = np.load(path / "ids" / "image_codes.npy")
            obj.image_codes_raw_ = np.load(path / "ids" / "image_codes_raw.npy")
            obj.joint_codes_raw_ = np.load(path / "ids" / "joint_codes_raw.npy")
        except (OSError, ValueError) as e:
            raise CheckpointError(f"{path}/ids: cannot read image codes ({e}); re-run tokenization") from None
        from semid.io import read_json

        sizes = read_json(path / "ids" / "codebook_sizes.json")
        obj.text_codes_, obj.text_codebook_sizes_ = obj.codes_, list(sizes["text"])
        obj.image_codebook_sizes_ = list(sizes["image"])
        return obj
