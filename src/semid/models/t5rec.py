"""Encoder-decoder generative recommender (TIGER sec. 3.2, MusicRec "Recommendation Generation": T5).

The encoder reads ``<bos> codes(h_1) .. codes(h_n)``, the decoder generates the next item's L codes
(+ ``<eos>`` during training) under the prefix-index constraint, beam 20 at inference.

This is the one T5 code path: TIGER, LETTER, FusID + T5 use T5Rec, and MusicRec's multi-task generator
(``semid.models.musicrec_gen.MusicRecGenerator``) is a T5Rec with task-prefix tokens and two code spaces.
Its pieces:
  ``build_t5(vocab_size, config)``         a randomly initialised T5 for any vocabulary
  ``seq2seq_loss(model, batch)``            CE on {src_ids, src_mask, tgt_ids} batches (tgt right-padded with <pad>)
  ``T5Step`` / ``t5_decode(...)``           constrained beam search under any PrefixIndex (one space or several)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from transformers import T5Config, T5ForConditionalGeneration
from transformers.modeling_outputs import BaseModelOutput

from semid.decoding.beam import BeamResult, beam_search
from semid.decoding.prefix_index import PrefixIndex
from semid.errors import ConfigError
from semid.models.code_batches import seq2seq_batch
from semid.models.codeseq import CodeSeqRecommender
from semid.models.vocab import EOS, PAD

DECODER_START = PAD  # T5 convention: the decoder starts from <pad>


@dataclass(frozen=True)
class T5RecConfig:
    """Model and decoding settings of T5Rec; default is a CPU-sized T5 (see ``t5_preset`` for others)."""

    num_layers: int = 2  # encoder blocks
    num_decoder_layers: int = 2  # decoder blocks
    d_model: int = 128  # hidden size
    d_ff: int = 512  # feed-forward size
    num_heads: int = 4  # attention heads
    d_kv: int = 32  # size of each head
    dropout: float = 0.1  # dropout rate everywhere
    max_history: int = 20  # items of history kept (TIGER: 20)
    beam: int = 20  # beam width for recommend() (MusicRec / TIGER: 20)
    valid_beam: int = 10  # cheaper beam for validation during training
    valid_users: int = 0  # validation users scored for model selection: 0 = all, n > 0 = a fixed sample of n
    eval_batch_size: int = 64  # histories decoded together


def t5_preset(name: str, **overrides) -> T5RecConfig:
    """Named sizes: ``cpu`` (default), ``tiger`` (TIGER paper: 4+4 layers, d_model 128, d_ff 1024, 6x64 heads,
    dropout 0.1) and ``t5-small`` (6+6 layers, 512, 2048, 8x64)."""
    presets = {
        "cpu": {},
        "tiger": dict(
            num_layers=4, num_decoder_layers=4, d_model=128, d_ff=1024, num_heads=6, d_kv=64, dropout=0.1
        ),
        "t5-small": dict(num_layers=6, num_decoder_layers=6, d_model=512, d_ff=2048, num_heads=8, d_kv=64),
    }
    if name not in presets:
        raise ConfigError(f"unknown T5 preset {name!r}; choose one of {sorted(presets)}")
    return T5RecConfig(**{**presets[name], **overrides})


def build_t5(vocab_size: int, config: T5RecConfig) -> T5ForConditionalGeneration:
    """Randomly initialised T5 for a semantic-ID vocabulary (pad=0 is also the decoder start token)."""
    cfg = T5Config(
        vocab_size=vocab_size,
        d_model=config.d_model,
        d_kv=config.d_kv,
        d_ff=config.d_ff,
        num_layers=config.num_layers,
        num_decoder_layers=config.num_decoder_layers,
        num_heads=config.num_heads,
        dropout_rate=config.dropout,
        feed_forward_proj="relu",
        pad_token_id=PAD,
        eos_token_id=EOS,
        decoder_start_token_id=DECODER_START,
    )
    return T5ForConditionalGeneration(cfg)


def shift_right(tgt: torch.Tensor) -> torch.Tensor:
    """(B, T) targets -> decoder inputs ``<start> t_0 .. t_{T-2}``."""
    return torch.cat([tgt.new_full((tgt.shape[0], 1), DECODER_START), tgt[:, :-1]], dim=1)


def seq2seq_loss(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean CE over non-pad target tokens of a {src_ids, src_mask, tgt_ids} batch (any task, any space)."""
    tgt = batch["tgt_ids"]  # (B, T)
    out = model(
        input_ids=batch["src_ids"],
        attention_mask=batch["src_mask"],
        decoder_input_ids=shift_right(tgt),
        use_cache=False,
    )
    labels = tgt.masked_fill(tgt == PAD, -100)
    return F.cross_entropy(
        out.logits.float().reshape(-1, out.logits.shape[-1]), labels.reshape(-1), ignore_index=-100
    )


class T5Step:
    """DecodeStep for T5: encoder once; decoder one token per step with the self-attention cache reordered.

    The cross-attention cache (and encoder states) are expanded B -> B*W once: afterwards parents stay inside
    their example, whose rows are identical, so only the self-attention cache needs reordering.
    """

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model

    def start(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, Any]:
        mask = batch["src_mask"]  # (B, S)
        enc = self.model.get_encoder()(input_ids=batch["src_ids"], attention_mask=mask).last_hidden_state
        dec = torch.full((enc.shape[0], 1), DECODER_START, dtype=torch.long, device=enc.device)
        out = self.model(
            encoder_outputs=BaseModelOutput(last_hidden_state=enc),
            attention_mask=mask,
            decoder_input_ids=dec,
            use_cache=True,
        )
        return out.logits[:, -1], {"cache": out.past_key_values, "enc": enc, "mask": mask, "expanded": False}

    def advance(self, state: Any, parent: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor, Any]:
        cache = state["cache"]
        if not state["expanded"]:
            cache.reorder_cache(parent)  # self + cross attention, B -> B*W
            state["enc"] = state["enc"].index_select(0, parent)
            state["mask"] = state["mask"].index_select(0, parent)
            state["expanded"] = True
        else:
            cache.self_attention_cache.reorder_cache(parent)
        out = self.model(
            encoder_outputs=BaseModelOutput(last_hidden_state=state["enc"]),
            attention_mask=state["mask"],
            decoder_input_ids=tokens[:, None],
            past_key_values=cache,
            use_cache=True,
        )
        state["cache"] = out.past_key_values
        return out.logits[:, -1], state


def t5_decode(
    model: torch.nn.Module,
    src_ids: torch.Tensor,
    src_mask: torch.Tensor,
    index: PrefixIndex,
    *,
    beam: int = 20,
    k: int = 10,
) -> BeamResult:
    """Constrained beam search of a T5 over ``index`` (e.g. one code space's items, or text+image codes)."""
    return beam_search(T5Step(model), {"src_ids": src_ids, "src_mask": src_mask}, index, beam=beam, k=k)


# ---------------------------------------------------------------------------------------------- slow scorers


@torch.no_grad()
def t5_next_logp(model: torch.nn.Module, src: np.ndarray, prefix: tuple[int, ...]) -> np.ndarray:
    """Reference scorer: full encoder + decoder pass for ``<start> + prefix`` (no cache) -> log-probs [V]."""
    dev = next(model.parameters()).device
    dec = torch.as_tensor([DECODER_START, *prefix], dtype=torch.long, device=dev)[None]
    src_t = torch.as_tensor(src, device=dev)[None]
    logits = model(input_ids=src_t, decoder_input_ids=dec, use_cache=False).logits[0, -1]
    return torch.log_softmax(logits.float(), -1).cpu().numpy()


@torch.no_grad()
def t5_sequence_logp(model: torch.nn.Module, src: np.ndarray, cand: np.ndarray) -> np.ndarray:
    """Oracle scorer: teacher-forced summed log-prob of each candidate code (n, L) given ``src``."""
    n = len(cand)
    dev = next(model.parameters()).device
    tgt = torch.as_tensor(cand, device=dev)
    src_t = torch.as_tensor(src, device=dev)[None].expand(n, -1)
    logits = model(input_ids=src_t, decoder_input_ids=shift_right(tgt), use_cache=False).logits
    return torch.log_softmax(logits.float(), -1).gather(2, tgt[:, :, None]).squeeze(2).sum(1).cpu().numpy()


class T5Rec(CodeSeqRecommender):
    """T5 over semantic IDs (TIGER-style), implementing the Recommender protocol.

    >>> rec = T5Rec(tokenizer=tok, config=t5_preset("tiger"), train=TrainConfig(epochs=5))  # doctest: +SKIP
    """

    name = "t5rec"
    config_cls = T5RecConfig

    def __init__(self, *, config: T5RecConfig | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.config = config if config is not None else T5RecConfig()

    def _build_model(self, vocab_size: int) -> torch.nn.Module:
        return build_t5(vocab_size, self.seq_config)

    def _collate(self, H: np.ndarray, targets: np.ndarray | None) -> dict:
        return seq2seq_batch(H, self.item_tokens_, targets)

    def _loss(self, model: torch.nn.Module, batch: dict) -> torch.Tensor:
        return seq2seq_loss(model, batch)

    def _stepper(self, model: torch.nn.Module) -> T5Step:
        return T5Step(model)

    def source(self, history: np.ndarray) -> np.ndarray:
        """Unpadded encoder input for one history (for the reference / oracle scorers)."""
        return self.encode_histories([history])["src_ids"][0].numpy()
