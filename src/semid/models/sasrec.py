"""SASRec (Kang & McAuley, ICDM 2018): causal self-attention over the item history, full-ranking scores.

Differences from the paper, each a deliberate modern default:
- Pre-LN blocks (LayerNorm before attention / FFN, residual after) with a final LayerNorm, as in the
  widely used pmixer/SASRec.pytorch port; more stable than the paper's post-LN at lr 1e-3.
- Loss "ce" (default): full-softmax cross-entropy over all items at every position (RecBole's
  default, stronger than the paper's one-negative BCE). "bce" keeps the paper's Section III-E loss
  with one uniformly sampled negative per position.
- Output layer is tied to the input item embedding (paper Section III-D, "shared item embedding").
- Positions are right-aligned: the most recent item always gets position max_len - 1, whatever the
  history length, so the positional embedding encodes recency (same as the reference code).
- Training uses every target of every train sequence once (``semid.models.sequence_examples``):
  overlapping windows of max_len + 1 items whose last ``stride`` items are targets. The paper's code
  (and this model before) kept only each user's last max_len + 1 items, a quarter of MovieLens's
  targets. Windows, not RecBole's one-example-per-prefix, because a window scores ``stride`` targets in
  one causal pass: stride = max_len costs ~1/max_len of the prefix passes. The default stride =
  max_len // 2 still gives every target at least max_len / 2 items of history (all it has when
  shorter); ``stride=1`` is exactly the prefix scheme.

Item index i of the catalog is token i + 1; token 0 is padding (left padding).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from semid.data.types import Catalog, EvalSet, Interactions
from semid.errors import DataError
from semid.io import save_npy
from semid.models.item_scoring import ItemScoringModel
from semid.models.sequence_examples import SequenceExamples
from semid.train.loop import TrainConfig, Trainer, TrainResult


@dataclass(frozen=True)
class SASRecConfig:
    """Architecture and loss of SASRec."""

    hidden: int = 64  # embedding / model width d (MusicRec uses 32-d SASRec item embeddings)
    n_layers: int = 2  # self-attention blocks (paper: 2)
    n_heads: int = 1  # attention heads (paper: 1)
    max_len: int = 50  # history window n; older items are dropped (paper: 50 for Amazon)
    # Training windows advance by this many targets (1 = one example per prefix, as RecBole; 0 = max_len // 2).
    stride: int = 0
    dropout: float = 0.2  # dropout on embeddings, attention and FFN (paper: 0.2 dense data, 0.5 sparse)
    loss: str = "ce"  # "ce" = full-softmax cross-entropy over all items; "bce" = paper's 1-negative BCE
    eval_batch_size: int = 256  # users per recommend() forward pass during validation


class _Block(nn.Module):
    """Pre-LN transformer block: x + Attn(LN(x)), then x + FFN(LN(x))."""

    def __init__(self, d: int, n_heads: int, dropout: float) -> None:
        super().__init__()
        if d % n_heads:
            raise DataError(f"SASRecConfig.hidden={d} must be divisible by n_heads={n_heads}")
        self.n_heads = n_heads
        self.norm1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.norm2 = nn.LayerNorm(d)
        self.ff1 = nn.Linear(d, d)  # paper: point-wise FFN of width d
        self.ff2 = nn.Linear(d, d)
        self.drop = nn.Dropout(dropout)
        self.p_attn = dropout

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape  # (B, T, C)
        q, k, v = self.qkv(self.norm1(x)).split(d, dim=-1)
        q, k, v = (
            z.view(b, t, self.n_heads, d // self.n_heads).transpose(1, 2) for z in (q, k, v)
        )  # (B, H, T, C/H)
        a = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=self.p_attn if self.training else 0.0
        )
        x = x + self.drop(self.proj(a.transpose(1, 2).reshape(b, t, d)))
        x = x + self.drop(self.ff2(self.drop(F.gelu(self.ff1(self.norm2(x))))))
        return x


class SASRecNet(nn.Module):
    """The network: tokens (B, T) -> hidden states (B, T, C); scores against the tied item table."""

    def __init__(self, n_items: int, cfg: SASRecConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.hidden
        self.item_emb = nn.Embedding(n_items + 1, d, padding_idx=0)  # token 0 = padding
        self.pos_emb = nn.Embedding(cfg.max_len, d)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(_Block(d, cfg.n_heads, cfg.dropout) for _ in range(cfg.n_layers))
        self.norm = nn.LayerNorm(d)
        # Every Linear and Embedding starts at N(0, 0.02) with zero bias (as RecBole and GPT-2): PyTorch's
        # default uniform init of the Linear layers learned markedly slower on MovieLens validation.
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.item_emb.weight, std=0.02)
        nn.init.normal_(self.pos_emb.weight, std=0.02)
        with torch.no_grad():
            self.item_emb.weight[0].zero_()

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        b, t = tokens.shape  # (B, T), left-padded with 0, T <= max_len
        pos = torch.arange(self.cfg.max_len - t, self.cfg.max_len, device=tokens.device)  # right-aligned
        # Paper Section III-B: scale item embeddings by sqrt(d) before adding positions.
        x = self.item_emb(tokens) * math.sqrt(self.cfg.hidden) + self.pos_emb(pos)[None]
        x = self.drop(x) * (tokens > 0).unsqueeze(-1)
        # Causal mask that also hides padding keys; each position may always see itself, so a
        # padded query row is never fully masked (no NaN) and its output is simply ignored.
        causal = torch.ones(t, t, dtype=torch.bool, device=tokens.device).tril()
        eye = torch.eye(t, dtype=torch.bool, device=tokens.device)
        mask = (causal[None] & (tokens > 0)[:, None, :]) | eye[None]  # (B, T, T)
        mask = mask[:, None]  # (B, 1, T, T) broadcast over heads
        for blk in self.blocks:
            x = blk(x, mask)
        return self.norm(x)  # (B, T, C)

    def item_table(self) -> torch.Tensor:
        return self.item_emb.weight[1:]  # (N, C)


class SASRec(ItemScoringModel):
    """Recommender wrapper: fit with semid's Trainer (early stopping on valid NDCG@10), full-ranking recommend."""

    name = "SASRec"
    net_cls = SASRecNet
    config_cls = SASRecConfig

    def __init__(
        self,
        *,
        config: SASRecConfig | None = None,
        train: TrainConfig | None = None,
        run_dir: str | Path | None = None,
    ) -> None:
        self.config = config or SASRecConfig()
        self.train_config = train or TrainConfig()
        self.run_dir = run_dir
        if self.config.loss not in ("ce", "bce"):
            raise DataError(f"SASRecConfig.loss must be 'ce' or 'bce', got {self.config.loss!r}")

    # ------------------------------------------------------------------ training
    def _examples(self, train: Interactions) -> SequenceExamples:
        """Windows covering every train target once (see ``sequence_examples``)."""
        L = self.config.max_len
        try:
            return SequenceExamples(train, max_len=L, stride=self.config.stride or max(1, L // 2))
        except DataError as e:
            raise DataError(f"SASRec.fit: {e}") from None

    def _loss(self, net: SASRecNet, batch: dict) -> torch.Tensor:
        inp, tgt = batch["input"], batch["target"]  # (B, T) tokens, 0 = padding
        h = net(inp)  # (B, T, C)
        keep = tgt > 0
        h, y = h[keep], tgt[keep] - 1  # (P, C), (P,) item indices
        table = net.item_table()  # (N, C)
        if self.config.loss == "ce":
            return F.cross_entropy(h @ table.T, y)  # full softmax over all N items
        neg = torch.randint(0, table.shape[0], y.shape, device=y.device)  # paper: 1 random negative
        pos_logit = (h * table[y]).sum(-1)
        neg_logit = (h * table[neg]).sum(-1)
        return F.softplus(-pos_logit).mean() + F.softplus(neg_logit).mean()

    def fit(self, train: Interactions, catalog: Catalog, valid: EvalSet | None = None) -> SASRec:
        from semid.eval.evaluator import evaluate

        n = catalog.n_items
        if len(train.items) and (train.items.min() < 0 or train.items.max() >= n):
            raise DataError(f"train interactions reference item ids outside [0, {n}) of the catalog")
        self.n_items_ = n
        tc = self.train_config
        torch.manual_seed(tc.seed)
        self.net_ = SASRecNet(n, self.config)
        examples = self._examples(train)
        bs = tc.batch_size

        def batches(epoch: int, rng: np.random.Generator):
            return examples.batches(bs, rng)

        validate = None
        if valid is not None:

            def validate(net: nn.Module) -> dict:
                return evaluate(
                    self, valid, ks=(5, 10), batch_size=self.config.eval_batch_size, progress=False
                )

        trainer = Trainer(tc, self.run_dir)
        self.result_: TrainResult = trainer.fit(self.net_, batches, self._loss, validate)
        self.net_.eval()
        return self

    # ------------------------------------------------------------------ inference
    def export_embeddings(self, path: str | Path) -> Path:
        """Write ``item_embeddings()`` to ``path`` (.npy), e.g. as MusicRec's collaborative embeddings."""
        return save_npy(path, self.item_embeddings())
