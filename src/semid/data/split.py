"""Evaluation splits over CSR sequences.

``leave_one_out`` is the TIGER / LC-Rec / MQL4GRec protocol (last item = test target, second-to-last =
valid target); ``playlist_continuation`` holds out the last k tracks of a sampled fraction of playlists.
"""

from __future__ import annotations

import logging

import numpy as np

from semid.data.types import EvalSet, Interactions, Split

log = logging.getLogger(__name__)


def _cap(seq: np.ndarray, max_history: int | None) -> np.ndarray:
    return seq if max_history is None else seq[max(len(seq) - max_history, 0) :]


def _evalset(histories: list, targets: list, user_ids: list) -> EvalSet:
    return EvalSet(
        histories=Interactions.from_lists(histories, user_ids=user_ids),
        targets=Interactions.from_lists(targets, user_ids=user_ids),
    )


def leave_one_out(interactions: Interactions, max_history: int | None = None) -> Split:
    """Leave-one-out split of every user's chronological sequence ``s`` (length n).

    test:  history ``s[:-1]``, target ``s[-1]`` (the history includes the valid item);
    valid: history ``s[:-2]``, target ``s[-2]``;
    train: ``s[:-2]``, the full prefix models fit on (``max_history`` does not cap it).
    ``max_history`` keeps only the last N items of each *evaluation* history (MQL4GRec uses 50).
    Users with fewer than 3 items cannot give a non-empty valid history: their whole sequence goes to
    train and they are in neither eval set (their count is logged). Eval users keep the input order.

    With max_history=50 this reproduces MQL4GRec's ``Instruments.{valid,test}.inter`` exactly; its
    ``train.inter`` holds, for every train sequence t, the pairs ``(t[max(0, i-50):i], t[i])`` for
    i = len(t)-1 down to 1 (see tests/test_data_split.py).
    """
    train, vh, vt, th, tt, eval_users = [], [], [], [], [], []
    short = 0
    for u in range(interactions.n_users):
        s = interactions.seq(u)
        if len(s) < 3:
            short += 1
            train.append(s)
            continue
        train.append(s[:-2])
        vh.append(_cap(s[:-2], max_history))
        vt.append(s[-2:-1])
        th.append(_cap(s[:-1], max_history))
        tt.append(s[-1:])
        eval_users.append(interactions.user_ids[u])
    if short:
        log.info("leave_one_out: %d users with < 3 items kept in train only", short)
    lens = np.fromiter((len(t) for t in train), dtype=np.int64, count=len(train))
    keep = np.flatnonzero(lens > 0)
    train_inter = Interactions.from_lists([train[i] for i in keep], user_ids=interactions.user_ids[keep])
    return Split(
        name="leave_one_out" if max_history is None else f"leave_one_out(max_history={max_history})",
        train=train_inter,
        valid=_evalset(vh, vt, eval_users),
        test=_evalset(th, tt, eval_users),
    )


def playlist_continuation(
    interactions: Interactions,
    holdout: int = 5,
    frac: float = 0.1,
    seed: int = 0,
    min_history: int | None = None,
) -> Split:
    """Hold out the last items of a sampled fraction ``frac`` of the sequences.

    ``min_history=None``: only sequences longer than ``holdout`` are eligible and each holds out exactly
    ``holdout`` items (the history is non-empty). ``min_history=m`` (>= 1), for short sequences such as
    radio playlists: every sequence with at least m + 1 items is eligible and holds out its last
    ``min(holdout, len - m)`` items, so the history keeps at least m.
    The sample (``round(frac * n_eligible)`` sequences, drawn with ``np.random.default_rng(seed)``) is split
    in half: the first half of a seeded shuffle goes to valid, the rest to test (each kept in input order),
    so valid and test never share a sequence.
    train = every sequence with its held-out items removed (sampled ones keep their history), so no target
    position is ever trained on.
    """
    if holdout < 1 or not 0.0 <= frac <= 1.0:
        raise ValueError(f"need holdout >= 1 and 0 <= frac <= 1, got holdout={holdout}, frac={frac}")
    if min_history is not None and min_history < 1:
        raise ValueError(f"min_history must be >= 1 (or None for exactly holdout targets), got {min_history}")
    lens = interactions.lengths()
    if min_history is None:
        eligible = np.flatnonzero(lens > holdout)
        n_held = np.full(interactions.n_users, holdout, dtype=np.int64)
    else:
        eligible = np.flatnonzero(lens > min_history)
        n_held = np.clip(lens - min_history, 0, holdout)
    rng = np.random.default_rng(seed)
    picked = rng.permutation(eligible)[: int(round(frac * len(eligible)))]
    half = (len(picked) + 1) // 2
    valid_u, test_u = np.sort(picked[:half]), np.sort(picked[half:])
    held = np.zeros(interactions.n_users, dtype=bool)
    held[picked] = True
    train = [
        interactions.seq(u)[: len(interactions.seq(u)) - n_held[u]] if held[u] else interactions.seq(u)
        for u in range(interactions.n_users)
    ]

    def ev(users: np.ndarray) -> EvalSet:
        seqs = [(interactions.seq(u), int(n_held[u])) for u in users]
        return _evalset(
            [s[: len(s) - h] for s, h in seqs], [s[len(s) - h :] for s, h in seqs], interactions.user_ids[users]
        )

    extra = "" if min_history is None else f", min_history={min_history}"
    return Split(
        name=f"playlist_continuation(holdout={holdout}, frac={frac}, seed={seed}{extra})",
        train=Interactions.from_lists(train, user_ids=interactions.user_ids),
        valid=ev(valid_u),
        test=ev(test_u),
    )
