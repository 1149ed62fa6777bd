"""GRU4Rec (Hidasi et al., ICLR 2016; the MusicRec Table 2 row): a GRU over the item history, full ranking.

As in RecBole's GRU4Rec (the version MusicRec and most leave-one-out tables report): item embedding,
embedding dropout, a GRU, a linear map back to the embedding width, and scores = that state · the item
embedding table (tied input/output), trained with full-softmax cross-entropy over all items at every
position. The session-parallel mini-batches and sampled ranking losses of the original paper are replaced
by the same all-targets windows SASRec trains on (``semid.models.sequence_examples``), so the two
baselines see identical examples.

Padding never changes a prediction: windows and histories are left-padded tokens (item i = token i + 1,
0 = padding) and are run through the GRU as packed sequences of their true lengths.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from semid.data.types import Catalog, EvalSet, Interactions
from semid.errors import ConfigError, DataError
from semid.models.item_scoring import ItemScoringModel
from semid.models.sequence_examples import SequenceExamples
from semid.train.loop import TrainConfig, Trainer, TrainResult


@dataclass(frozen=True)
class GRU4RecConfig:
    """Architecture of GRU4Rec (defaults: RecBole's GRU4Rec except the 64-d hidden state)."""

    embedding: int = 64  # item embedding width (RecBole: 64)
    hidden: int = 64  # GRU state width (RecBole: 128; 64 matches SASRec's width)
    n_layers: int = 1  # stacked GRU layers (RecBole: 1)
    dropout: float = 0.3  # dropout on the input embeddings (RecBole: 0.3)
    max_len: int = 50  # history window; older items are dropped (RecBole: 50)
    # Training windows advance by this many targets (1 = one example per prefix, as RecBole; 0 = max_len // 2).
    stride: int = 0
    eval_batch_size: int = 256  # users per recommend() forward pass during validation


class GRU4RecNet(nn.Module):
    """tokens (B, T) left-padded -> states (B, T, E); scores against the tied item table (N, E)."""

    def __init__(self, n_items: int, cfg: GRU4RecConfig) -> None:
        super().__init__()
        self.item_emb = nn.Embedding(n_items + 1, cfg.embedding, padding_idx=0)  # token 0 = padding
        self.drop = nn.Dropout(cfg.dropout)
        self.gru = nn.GRU(cfg.embedding, cfg.hidden, num_layers=cfg.n_layers, batch_first=True, bias=False)
        self.dense = nn.Linear(cfg.hidden, cfg.embedding)
        nn.init.xavier_normal_(self.item_emb.weight)
        for name, w in self.gru.named_parameters():
            if "weight_ih" in name:
                nn.init.xavier_uniform_(w)
            else:
                nn.init.orthogonal_(w)  # recurrent weights
        with torch.no_grad():
            self.item_emb.weight[0].zero_()

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        b, t = tokens.shape  # (B, T), left-padded with 0
        # An all-padding row (empty history) counts as one step on the zero padding embedding.
        lengths = (tokens > 0).sum(1).clamp(min=1)  # (B,)
        # Left padding -> right padding (roll each row left by its padding) so packing sees the true lengths.
        shift = (t - lengths)[:, None]
        cols = torch.arange(t, device=tokens.device)[None, :]
        right = torch.gather(tokens, 1, (cols + shift) % t)  # (B, T) real items first
        x = self.drop(self.item_emb(right))  # (B, T, E)
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, _ = self.gru(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=t)  # (B, T, H), zeros past the end
        out = torch.gather(out, 1, ((cols - shift) % t)[:, :, None].expand(-1, -1, out.shape[-1]))  # back left
        return self.dense(out)  # (B, T, E)

    def item_table(self) -> torch.Tensor:
        return self.item_emb.weight[1:]  # (N, E)


class GRU4Rec(ItemScoringModel):
    """Recommender wrapper: fit with semid's Trainer (early stopping on valid NDCG@10), full-ranking recommend."""

    name = "GRU4Rec"
    net_cls = GRU4RecNet
    config_cls = GRU4RecConfig

    def __init__(
        self,
        *,
        config: GRU4RecConfig | None = None,
        train: TrainConfig | None = None,
        run_dir: str | Path | None = None,
    ) -> None:
        self.config = config or GRU4RecConfig()
        self.train_config = train or TrainConfig()
        self.run_dir = run_dir
        L, s = self.config.max_len, self.config.stride
        if L < 1 or not 0 <= s <= L:
            raise ConfigError(f"GRU4RecConfig: need max_len >= 1 and 0 <= stride <= max_len, got {L}, {s}")

    def init_model(self, catalog: Catalog, train: Interactions | None = None) -> GRU4Rec:
        """A randomly initialised network for ``catalog`` (what ``fit`` starts from; used to load weights)."""
        torch.manual_seed(self.train_config.seed)
        self.n_items_ = catalog.n_items
        self.net_ = GRU4RecNet(catalog.n_items, self.config).eval()
        return self

    # ------------------------------------------------------------------ training
    def _examples(self, train: Interactions) -> SequenceExamples:
        L = self.config.max_len
        try:
            return SequenceExamples(train, max_len=L, stride=self.config.stride or max(1, L // 2))
        except DataError as e:
            raise DataError(f"GRU4Rec.fit: {e}") from None

    @staticmethod
    def _loss(net: GRU4RecNet, batch: dict) -> torch.Tensor:
        inp, tgt = batch["input"], batch["target"]  # (B, T) tokens, 0 = padding / not a target
        h = net(inp)  # (B, T, E)
        keep = tgt > 0
        return F.cross_entropy(h[keep] @ net.item_table().T, tgt[keep] - 1)  # full softmax over N items

    def fit(self, train: Interactions, catalog: Catalog, valid: EvalSet | None = None) -> GRU4Rec:
        from semid.eval.evaluator import evaluate

        n = catalog.n_items
        if len(train.items) and (train.items.min() < 0 or train.items.max() >= n):
            raise DataError(f"train interactions reference item ids outside [0, {n}) of the catalog")
        examples = self._examples(train)
        self.init_model(catalog)
        bs = self.train_config.batch_size

        def batches(epoch: int, rng: np.random.Generator):
            return examples.batches(bs, rng)

        validate = None
        if valid is not None and len(valid):

            def validate(net: nn.Module) -> dict:
                return evaluate(self, valid, ks=(5, 10), batch_size=self.config.eval_batch_size, progress=False)

        self.result_: TrainResult = Trainer(self.train_config, self.run_dir).fit(
            self.net_, batches, self._loss, validate
        )
        self.net_.eval()
        return self
