"""All-targets training examples for the scoring sequence models (SASRec, GRU4Rec), and their top-k.

Every position t >= 1 of every train sequence is a target exactly once. Each sequence is cut, from its
end, into windows of at most ``max_len + 1`` items that overlap so that only the last ``stride`` items of
a window are its targets (the earliest window of a sequence also targets everything before). A window is
one forward pass: input tokens = window[:-1], target tokens = window[1:], masked to the window's own
targets. So a target at position t sees ``min(t, max_len - stride + 1 .. max_len)`` history items:

  stride = max_len   non-overlapping windows: fewest forward passes; a target sees 1..max_len items
  stride = 1         one example per prefix (RecBole's augmentation): every target sees
                     min(t, max_len) items, at ~max_len x the forward passes

Windows are kept as three int arrays into the CSR items (start, end, first target), so nothing is
materialised per example; ``take`` builds a left-padded token batch (item i = token i + 1, 0 = padding).
"""

from __future__ import annotations

import numpy as np
import torch

from semid.data.types import Interactions
from semid.errors import ConfigError, DataError


class SequenceExamples:
    """Windows over CSR ``train`` covering every target once; see the module docstring for ``stride``."""

    def __init__(self, train: Interactions, *, max_len: int, stride: int) -> None:
        if max_len < 1:
            raise ConfigError(f"max_len must be >= 1, got {max_len}")
        if not 1 <= stride <= max_len:
            raise ConfigError(f"stride must be in [1, max_len={max_len}], got {stride}")
        self.items = train.items
        self.max_len = max_len
        self.stride = stride
        lens = train.lengths()
        n_win = np.where(lens >= 2, -(-(lens - 1) // stride), 0)  # (U,) ceil((m - 1) / stride)
        if not n_win.any():
            raise DataError("no training sequence has 2 or more items: nothing to predict")
        seq_start = np.repeat(train.offsets[:-1], n_win)  # (W,)
        seq_end = np.repeat(train.offsets[1:], n_win)
        j = np.arange(int(n_win.sum())) - np.repeat(np.cumsum(n_win) - n_win, n_win)  # window rank from the end
        self.end = seq_end - j * stride  # (W,) exclusive end of the window's items = its last target + 1
        self.first_target = np.maximum(seq_start + 1, self.end - stride)  # (W,) position of its first target
        self.start = np.maximum(seq_start, self.end - max_len - 1)  # (W,) first item (context only)

    def __len__(self) -> int:
        return len(self.end)

    def n_targets(self) -> int:
        """Targets covered by all windows (= number of positions t >= 1 over all train sequences)."""
        return int((self.end - self.first_target).sum())

    def widths(self) -> np.ndarray:
        """(W,) input length of each window (its items minus one), for length-bucketed batches."""
        return self.end - self.start - 1

    def take(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Window indices (B,) -> (input tokens, target tokens), each int64 (B, T) left-padded with 0.

        T is the widest window in the batch. ``target[b, j]`` is the token to predict after
        ``input[b, :j + 1]``, or 0 where position j is padding or context already targeted by another window.
        """
        s, e, f = self.start[idx], self.end[idx], self.first_target[idx]
        T = int((e - s - 1).max()) if len(idx) else 0
        # Column c of the (B, T) batch holds input position e - T - 1 + c, target position e - T + c.
        tpos = e[:, None] - T + np.arange(T)[None, :]  # (B, T) item position of each target
        ipos = tpos - 1
        inp = np.where(ipos >= s[:, None], self.items[np.clip(ipos, 0, None)] + 1, 0)
        tgt = np.where(tpos >= f[:, None], self.items[np.clip(tpos, 0, len(self.items) - 1)] + 1, 0)
        return inp.astype(np.int64), tgt.astype(np.int64)

    def batches(self, batch_size: int, rng: np.random.Generator):
        """Shuffled batches of similar width (less padding): shuffle, sort by width inside chunks of 50
        batches, shuffle the batches. The order depends only on ``rng``."""
        return _Batches(self, batch_size, rng)


class _Batches:
    def __init__(self, ex: SequenceExamples, bs: int, rng: np.random.Generator) -> None:
        self.ex = ex
        widths = ex.widths()
        order = rng.permutation(len(ex))
        chunk = 50 * bs
        for s in range(0, len(order), chunk):
            part = order[s : s + chunk]
            order[s : s + chunk] = part[np.argsort(widths[part], kind="stable")]
        batches = [order[s : s + bs] for s in range(0, len(order), bs)]
        self.batches = [batches[i] for i in rng.permutation(len(batches))]

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self):
        for idx in self.batches:
            inp, tgt = self.ex.take(idx)
            yield {"input": torch.from_numpy(inp), "target": torch.from_numpy(tgt)}


def left_padded_tokens(histories: list[np.ndarray], max_len: int) -> np.ndarray:
    """Histories (item ids) -> int64 (B, T) tokens (item + 1), the last ``max_len`` items, left-padded with 0.

    T = the longest kept history, at least 1, so an empty history is one padding token.
    """
    t = max(1, min(max_len, max((len(h) for h in histories), default=1)))
    out = np.zeros((len(histories), t), dtype=np.int64)
    for r, h in enumerate(histories):
        h = np.asarray(h, dtype=np.int64)[-t:]
        if len(h):
            out[r, t - len(h) :] = h + 1
    return out


def full_ranking_topk(scores: torch.Tensor, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Scores (B, N) over every item -> (items int64 (B, k), scores float32 (B, k)), best first.

    ``torch.topk`` returns distinct columns, so no row repeats an item; k > N pads with -1 / -inf.
    """
    b, n = scores.shape
    k_eff = min(k, n)
    top_s, top_i = torch.topk(scores.float(), k_eff, dim=1)
    items = np.full((b, k), -1, dtype=np.int64)
    out_s = np.full((b, k), -np.inf, dtype=np.float32)
    items[:, :k_eff] = top_i.cpu().numpy()
    out_s[:, :k_eff] = top_s.cpu().numpy()
    return items, out_s
