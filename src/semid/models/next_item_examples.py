"""Next-item training rows over a CSR train split, for the generative recommenders (GPT2Rec, T5Rec).

Each position t >= 1 of a training sequence is one example (TIGER sec. 3.2): history = the last
``max_history`` items before t, target = item t (``NextItemExamples``). ``SequenceWindows`` is the
decoder-only alternative: each sequence is cut into windows whose every item after the first is a target
in ONE forward pass (a language model over the item-code sequence, FusID's "GPT-2 trained on semantic-ID
sequences"). Rows are int arrays into the CSR ``items``, so nothing is materialised per example; their
batch order depends only on (seed, epoch). ``semid.models.code_batches`` turns rows into token batches.
"""

from __future__ import annotations

import numpy as np

from semid.data.types import Interactions
from semid.errors import ConfigError


class TrainRows:
    """Shared by every row layout (here and MusicRec's multi-task rows): the CSR items, the history cap, and
    shuffled batches by (seed, epoch)."""

    def __init__(self, train: Interactions, max_history: int) -> None:
        if max_history < 1:
            raise ConfigError(f"max_history must be >= 1, got {max_history}")
        self.items = train.items
        self.max_history = max_history

    def __len__(self) -> int:
        raise NotImplementedError

    def batch_indices(self, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
        order = rng.permutation(len(self))
        return [order[s : s + batch_size] for s in range(0, len(order), batch_size)]


class NextItemExamples(TrainRows):
    """All (history, next item) pairs of a CSR Interactions, history capped to ``max_history`` items.

    ``max_targets`` > 0 keeps only the latest ``max_targets`` target positions of each sequence (MusicRec's
    ``max_targets_per_user``); 0 keeps every position t >= 1.
    """

    def __init__(self, train: Interactions, *, max_history: int = 20, max_targets: int = 0) -> None:
        super().__init__(train, max_history)
        if max_targets < 0:
            raise ConfigError(f"max_targets must be >= 0 (0 = every position), got {max_targets}")
        lens = train.lengths()
        seq_start = np.repeat(train.offsets[:-1], lens)  # (nnz,) start of each position's sequence
        pos = np.arange(len(train.items), dtype=np.int64)
        keep = pos > seq_start  # t >= 1
        if max_targets:
            keep &= pos >= np.repeat(train.offsets[1:], lens) - max_targets  # the latest max_targets positions
        self.target_pos = pos[keep]  # (E,) index into items of the target
        self.hist_start = np.maximum(seq_start[keep], self.target_pos - max_history)  # (E,)

    def __len__(self) -> int:
        return len(self.target_pos)

    def take(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Example indices (E,) -> (history item matrix (E, N) right-aligned with -1 pads, targets (E,))."""
        tp, hs = self.target_pos[idx], self.hist_start[idx]
        return _right_aligned(self.items, hs, tp, self.max_history), self.items[tp]


class SequenceWindows(TrainRows):
    """Windows of up to ``max_history + 1`` items cut from the END of each sequence, for all-position training.

    Consecutive windows overlap by one item (the first item of a window is the last target of the window
    before it), so every position t >= 1 is a target exactly once, with between 1 and ``max_history``
    items of context -- the same targets as ``NextItemExamples`` (each context a suffix of the one it would
    get there: a window does not look back past its first item), in ~max_history x fewer rows. A sequence of m >= 2 items gives
    ceil((m - 1) / max_history) windows.
    """

    def __init__(self, train: Interactions, *, max_history: int = 20) -> None:
        super().__init__(train, max_history)
        lens = train.lengths()
        n_win = np.where(lens >= 2, -(-(lens - 1) // max_history), 0)  # (U,) ceil((m-1)/N), 0 if m < 2
        starts = np.repeat(train.offsets[:-1], n_win)  # (W,) sequence start of each window
        seq_end = np.repeat(train.offsets[1:], n_win)
        j = np.arange(int(n_win.sum())) - np.repeat(np.cumsum(n_win) - n_win, n_win)  # window rank from the end
        self.win_end = seq_end - j * max_history  # (W,) exclusive
        self.win_start = np.maximum(starts, self.win_end - max_history - 1)  # (W,)

    def __len__(self) -> int:
        return len(self.win_end)

    def n_targets(self) -> int:
        """Number of (history, target) pairs the windows cover (= len(NextItemExamples))."""
        return int((self.win_end - self.win_start - 1).sum())

    def take(self, idx: np.ndarray) -> np.ndarray:
        """Window indices (E,) -> (E, max_history + 1) right-aligned item matrix padded with -1."""
        return _right_aligned(self.items, self.win_start[idx], self.win_end[idx], self.max_history + 1)


def _right_aligned(items: np.ndarray, start: np.ndarray, end: np.ndarray, n: int) -> np.ndarray:
    """items[start:end] per row (len <= n), right-aligned in an (E, n) matrix padded with -1."""
    h = end - start
    offs = np.arange(n, dtype=np.int64)[None, :] - (n - h)[:, None]
    idx = np.clip(start[:, None] + offs, 0, max(len(items) - 1, 0))
    return np.where(offs >= 0, items[idx] if len(items) else -1, -1)


def history_matrix(histories: list[np.ndarray], max_history: int) -> np.ndarray:
    """Ragged histories -> (B, N) right-aligned item matrix (last ``max_history`` items), -1 padded."""
    out = np.full((len(histories), max_history), -1, dtype=np.int64)
    for r, h in enumerate(histories):
        h = np.asarray(h, dtype=np.int64)[-max_history:]
        if len(h):
            out[r, max_history - len(h) :] = h
    return out


