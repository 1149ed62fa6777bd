"""Token batches of the generative recommenders, built from next-item rows (``semid.models.next_item_examples``).

Histories are right-aligned item matrices (E, N) with -1 padding; every batch is left-padded (histories end
at the last column) with <pad> = 0. Decoder-only (GPT-2) batches carry position ids counted from the first
real token, so padding never changes a prediction; encoder-decoder (T5) batches carry the source and the
target + <eos>. Every item is a fixed-length token tuple (``SemanticVocab.item_tokens``).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from semid.models.vocab import BOS, EOS, PAD, SEP


def context_tokens(H: np.ndarray, item_tokens: np.ndarray, *, sep: bool, bos: int = BOS) -> np.ndarray:
    """(E, N) right-aligned items -> left-padded (E, T) tokens ``<bos> h1 .. hn [<sep>]``, trimmed to the batch.

    item_tokens: int64 [n_items, L] token tuple per item. ``bos``: the first token (a multi-task model puts
    its task token there, ``semid.models.musicrec_gen``).
    """
    E, N = H.shape
    L = item_tokens.shape[1]
    h = (H >= 0).sum(axis=1)
    maxh = int(h.max()) if E else 0
    ht = np.where((H >= 0)[:, :, None], item_tokens[np.clip(H, 0, None)], PAD).reshape(E, N * L)  # (E, N*L)
    width = 1 + maxh * L + int(sep)
    ctx = np.full((E, width), PAD, dtype=np.int64)
    ctx[:, 1 : 1 + maxh * L] = ht[:, N * L - maxh * L :]
    ctx[np.arange(E), (maxh - h) * L] = bos  # right before the first history token
    if sep:
        ctx[:, -1] = SEP
    return ctx


def decoder_batch(
    H: np.ndarray, item_tokens: np.ndarray, targets: np.ndarray | None = None, *, sep: bool = True
) -> dict:
    """Decoder-only (GPT-2) batch: ``input_ids`` = pad.. <bos> history [<sep>] [target L tokens], left-padded.

    Returns input_ids / attention_mask / position_ids (E, T) and, with targets, ``target_ids`` (E, L).
    Position ids count from the first real token so left padding does not shift positions.
    """
    ctx = context_tokens(H, item_tokens, sep=sep)
    if targets is not None:
        tgt = item_tokens[targets]
        ids = np.concatenate([ctx, tgt], axis=1)
    else:
        ids = ctx
    ids_t = torch.from_numpy(ids)
    mask = (ids_t != PAD).long()
    pos = (mask.cumsum(-1) - 1).clamp_(min=0)
    out = {"input_ids": ids_t, "attention_mask": mask, "position_ids": pos}
    if targets is not None:
        out["target_ids"] = torch.from_numpy(np.ascontiguousarray(tgt))
    return out


def sequence_batch(W: np.ndarray, item_tokens: np.ndarray) -> dict:
    """All-position decoder batch from ``SequenceWindows.take``: ``<bos> w1 .. wn`` left-padded, plus labels.

    ``labels`` (E, T) equal ``input_ids`` on the tokens of items 2..n (the targets) and -100 elsewhere
    (padding, <bos>, the first item, which has no context inside its window); token j is predicted
    from position j - 1, so a model's causal LM loss on these labels is the mean CE over all targets.
    """
    out = decoder_batch(W, item_tokens, None, sep=False)
    ids = out["input_ids"]  # (E, T), T = 1 + n_max * L
    L = item_tokens.shape[1]
    first_target = ids.shape[1] - ((W >= 0).sum(axis=1) - 1) * L  # (E,) column of item 2's first token
    cols = torch.arange(ids.shape[1])[None, :]
    out["labels"] = torch.where(cols >= torch.as_tensor(first_target)[:, None], ids, -100)
    return out


def seq2seq_batch(
    H: np.ndarray,
    item_tokens: np.ndarray,
    targets: np.ndarray | None = None,
    *,
    bos: int = BOS,
    target_tokens: np.ndarray | None = None,
) -> dict:
    """Encoder-decoder (T5) batch: ``src_ids`` = <bos> history (left-padded), ``tgt_ids`` = target + <eos>.

    ``bos`` replaces the first token (a task token); ``target_tokens`` (int64 [n_items, L']) codes the
    targets in another space than the history (default ``item_tokens``), e.g. MusicRec's text -> image task.
    """
    src = torch.from_numpy(context_tokens(H, item_tokens, sep=False, bos=bos))
    out = {"src_ids": src, "src_mask": (src != PAD).long()}
    if targets is not None:
        tgt = (item_tokens if target_tokens is None else target_tokens)[targets]
        tgt = np.concatenate([tgt, np.full((len(tgt), 1), EOS, dtype=np.int64)], axis=1)
        out["tgt_ids"] = torch.from_numpy(tgt)
    return out


def concat_seq2seq(parts: list[dict]) -> dict:
    """Stack seq2seq batches of different widths: ``src`` left-padded (as ``context_tokens`` pads), ``tgt``
    right-padded with <pad> after each row's <eos> (``seq2seq_loss`` ignores it). One part is returned as is."""
    if len(parts) == 1:
        return parts[0]
    S = max(p["src_ids"].shape[1] for p in parts)
    out = {
        "src_ids": torch.cat([F.pad(p["src_ids"], (S - p["src_ids"].shape[1], 0), value=PAD) for p in parts]),
        "src_mask": torch.cat([F.pad(p["src_mask"], (S - p["src_mask"].shape[1], 0), value=0) for p in parts]),
    }
    if all("tgt_ids" in p for p in parts):
        T = max(p["tgt_ids"].shape[1] for p in parts)
        out["tgt_ids"] = torch.cat([F.pad(p["tgt_ids"], (0, T - p["tgt_ids"].shape[1]), value=PAD) for p in parts])
    return out
