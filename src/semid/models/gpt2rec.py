"""Decoder-only generative recommender (FusID sec. "Recommendation": a GPT-2 over semantic-ID sequences).

Two training objectives (``GPT2RecConfig.objective``):

- ``sequence`` (default): a causal language model over ``<bos> codes(i_1) .. codes(i_n)``; every item
  after the first of a window is a target in the same forward pass (``SequenceWindows``), as FusID trains
  its decoder "on semantic-ID sequences" and SASRec trains on all positions. Prompt at inference:
  ``<bos> codes(h_1) .. codes(h_n)``; item boundaries need no separator because every item has exactly
  L tokens from position-specific vocabularies.
- ``next``: one (history, target) pair per row, prompt ``<bos> history <sep>``, CE on the L target
  tokens only (TIGER-style examples); ~max_history x more forward passes per epoch for the same targets.

The next item's L code tokens are generated under the prefix-index constraint. Histories are left-padded
with position ids counted from the first real token, so padding never changes a prediction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from transformers import GPT2Config, GPT2LMHeadModel

from semid.errors import ConfigError
from semid.models.code_batches import decoder_batch, sequence_batch
from semid.models.codeseq import CodeSeqRecommender
from semid.models.next_item_examples import SequenceWindows
from semid.models.vocab import BOS, EOS, PAD


@dataclass(frozen=True)
class GPT2RecConfig:
    """Model and decoding settings of GPT2Rec (training settings live in TrainConfig)."""

    n_layer: int = 2  # transformer blocks
    n_embd: int = 128  # hidden size
    n_head: int = 4  # attention heads
    dropout: float = 0.1  # residual / embedding / attention dropout
    max_history: int = 20  # items of history kept (TIGER caps at 20)
    objective: str = "sequence"  # sequence (LM over item codes, all positions) | next (one target per row)
    beam: int = 20  # beam width for recommend()
    valid_beam: int = 10  # cheaper beam for validation during training
    valid_users: int = 0  # validation users scored for model selection: 0 = all, n > 0 = a fixed sample of n
    eval_batch_size: int = 64  # histories decoded together


def build_gpt2(vocab_size: int, config: GPT2RecConfig, n_positions: int) -> GPT2LMHeadModel:
    """Randomly initialised GPT-2 for a semantic-ID vocabulary."""
    cfg = GPT2Config(
        vocab_size=vocab_size,
        n_positions=n_positions,
        n_embd=config.n_embd,
        n_layer=config.n_layer,
        n_head=config.n_head,
        resid_pdrop=config.dropout,
        embd_pdrop=config.dropout,
        attn_pdrop=config.dropout,
        bos_token_id=BOS,
        eos_token_id=EOS,
        pad_token_id=PAD,
    )
    return GPT2LMHeadModel(cfg)


def gpt2_loss(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean CE over the L target tokens; logits only for the last L+1 positions (``logits_to_keep``)."""
    tgt = batch["target_ids"]  # (B, L)
    L = tgt.shape[1]
    out = model(
        input_ids=batch["input_ids"],
        attention_mask=batch["attention_mask"],
        position_ids=batch["position_ids"],
        logits_to_keep=L + 1,
        use_cache=False,
    )
    logits = out.logits[:, :-1]  # (B, L, V): position T-L-1 (<sep>) predicts target token 0, ...
    return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), tgt.reshape(-1))


def gpt2_sequence_loss(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean CE over every labelled token of a ``sequence_batch`` (all targets of all windows at once).

    The LM head runs on the target positions only: windows are left-padded to the longest in the batch,
    so full (B, T, V) logits would be mostly padding and, with V ~ L * K tokens, dominate step time.
    """
    hidden = model.transformer(
        input_ids=batch["input_ids"],
        attention_mask=batch["attention_mask"],
        position_ids=batch["position_ids"],
        use_cache=False,
    ).last_hidden_state  # (B, T, d)
    labels = batch["labels"][:, 1:]  # (B, T-1): position j predicts token j+1; -100 = not a target
    sel = labels != -100
    logits = model.lm_head(hidden[:, :-1][sel])  # (n_targets, V)
    return F.cross_entropy(logits.float(), labels[sel])


class GPT2Step:
    """DecodeStep for GPT-2: prompt once, then one token per step with ``past_key_values`` reordered by beam."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model

    def start(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, Any]:
        mask = batch["attention_mask"]  # (B, T) left-padded
        out = self.model(
            input_ids=batch["input_ids"],
            attention_mask=mask,
            position_ids=batch["position_ids"],
            use_cache=True,
            logits_to_keep=1,
        )
        state = {
            "cache": out.past_key_values,
            "mask": mask,
            "pos": batch["position_ids"][:, -1] + 1,
            "rows": None,
        }
        return out.logits[:, -1], state

    def advance(self, state: Any, parent: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor, Any]:
        cache = state["cache"]
        cache.reorder_cache(parent)
        if state["rows"] is None:  # first step: expand per-example mask/positions from B to B*W rows
            state["mask"] = state["mask"].index_select(0, parent)
            state["pos"] = state["pos"].index_select(0, parent)
            state["rows"] = len(parent)
        # parents stay inside their example, so the padding pattern of a row never changes after expansion
        mask = torch.cat([state["mask"], state["mask"].new_ones(len(parent), 1)], dim=1)  # (R, T+l)
        out = self.model(
            input_ids=tokens[:, None],
            attention_mask=mask,
            position_ids=state["pos"][:, None],
            past_key_values=cache,
            use_cache=True,
        )
        state.update(cache=out.past_key_values, mask=mask, pos=state["pos"] + 1)
        return out.logits[:, -1], state


# ---------------------------------------------------------------------------------------------- slow scorers


@torch.no_grad()
def gpt2_next_logp(model: torch.nn.Module, context: np.ndarray, prefix: tuple[int, ...]) -> np.ndarray:
    """Reference scorer: full forward of ``context + prefix`` (no padding, no cache) -> log-probs [V]."""
    dev = next(model.parameters()).device
    ids = torch.as_tensor(np.concatenate([context, np.asarray(prefix, dtype=np.int64)]), device=dev)[None]
    logits = model(input_ids=ids, use_cache=False).logits[0, -1]
    return torch.log_softmax(logits.float(), -1).cpu().numpy()


@torch.no_grad()
def gpt2_sequence_logp(model: torch.nn.Module, context: np.ndarray, cand: np.ndarray) -> np.ndarray:
    """Oracle scorer: teacher-forced summed log-prob of each candidate code (n, L) after ``context``."""
    n, L = cand.shape
    dev = next(model.parameters()).device
    ids = torch.as_tensor(np.concatenate([np.repeat(context[None], n, 0), cand], axis=1), device=dev)
    logp = torch.log_softmax(model(input_ids=ids, use_cache=False).logits[:, -L - 1 : -1].float(), -1)
    return logp.gather(2, torch.as_tensor(cand, device=dev)[:, :, None]).squeeze(2).sum(1).cpu().numpy()


class GPT2Rec(CodeSeqRecommender):
    """GPT-2 over semantic IDs, implementing the Recommender protocol.

    >>> rec = GPT2Rec(tokenizer=tok, config=GPT2RecConfig(), train=TrainConfig(epochs=5))  # doctest: +SKIP
    >>> rec.fit(split.train, catalog, split.valid).recommend([np.array([3, 7])], k=10)  # doctest: +SKIP
    """

    name = "gpt2rec"
    config_cls = GPT2RecConfig

    def __init__(self, *, config: GPT2RecConfig | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.config = config if config is not None else GPT2RecConfig()
        if self.config.objective not in ("sequence", "next"):
            raise ConfigError(f"gpt2.objective must be 'sequence' or 'next', got {self.config.objective!r}")

    def _build_model(self, vocab_size: int) -> torch.nn.Module:
        L = self.item_tokens_.shape[1]
        return build_gpt2(vocab_size, self.config, n_positions=2 + (self.config.max_history + 1) * L)

    def _collate(self, H: np.ndarray, targets: np.ndarray | None) -> dict:
        return decoder_batch(H, self.item_tokens_, targets, sep=self.config.objective == "next")

    def _train_examples(self, train):
        if self.config.objective == "sequence":
            return SequenceWindows(train, max_history=self.config.max_history)
        return super()._train_examples(train)

    def _train_batch(self, examples, idx: np.ndarray) -> dict:
        if self.config.objective == "sequence":
            return sequence_batch(examples.take(idx), self.item_tokens_)
        return super()._train_batch(examples, idx)

    def _loss(self, model: torch.nn.Module, batch: dict) -> torch.Tensor:
        return gpt2_sequence_loss(model, batch) if "labels" in batch else gpt2_loss(model, batch)

    def _stepper(self, model: torch.nn.Module):
        """``LeanGPT2Step`` (same results as GPT2Step, several times faster) for standard GPT-2 blocks."""
        from semid.decoding.lean_gpt2 import LeanGPT2Step

        try:
            return LeanGPT2Step(model, max_new=self.item_tokens_.shape[1] - 1)
        except ConfigError:
            return GPT2Step(model)

    def context(self, history: np.ndarray) -> np.ndarray:
        """Unpadded prompt tokens for one history (for the reference / oracle scorers)."""
        return self.encode_histories([history])["input_ids"][0].numpy()
