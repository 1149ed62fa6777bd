"""Model selection of the generative recommenders: top-k validation on every validation user by default.

``valid_users`` = 0 (the default of GPT2RecConfig / T5RecConfig) scores the whole validation set; a positive
value scores a fixed random sample of that many users (seed 0, the same users for every model and seed, so
runs stay comparable). Either way the result carries its size and the standard error of NDCG@k
(std over users / sqrt(n)): with a few hundred users one standard error is of the order of the gaps
between epochs, which the log then shows. Users are sharded over the ranks of a distributed run
(``semid.train.validation``); the means are those of ``semid.eval.metrics.ndcg_recall_at``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from torch import nn

from semid.data.types import EvalSet, Interactions
from semid.errors import ConfigError

# recommend(model, histories, k) -> items int64 [B, k]
RankFn = Callable[[nn.Module, list[np.ndarray], int], np.ndarray]


def validation_rows(n_valid: int, valid_users: int, seed: int = 0) -> np.ndarray:
    """Sorted row indices of the validation users to score: all of them when ``valid_users`` is 0 or at least
    ``n_valid``, else a sample of ``valid_users`` rows without replacement drawn with ``seed``."""
    if valid_users < 0:
        raise ConfigError(f"valid_users must be >= 0 (0 = the full validation set), got {valid_users}")
    if valid_users == 0 or valid_users >= n_valid:
        return np.arange(n_valid, dtype=np.int64)
    return np.sort(np.random.default_rng(seed).choice(n_valid, valid_users, replace=False)).astype(np.int64)


def sample_evalset(evalset: EvalSet, valid_users: int, seed: int = 0) -> EvalSet:
    """The ``validation_rows`` of ``evalset`` as an EvalSet (user ids kept); ``evalset`` itself when all."""
    rows = validation_rows(len(evalset), valid_users, seed)
    if len(rows) == len(evalset):
        return evalset
    h, t = evalset.histories, evalset.targets
    return EvalSet(
        histories=Interactions.from_lists([h.seq(int(u)) for u in rows], h.user_ids[rows]),
        targets=Interactions.from_lists([t.seq(int(u)) for u in rows], t.user_ids[rows]),
    )


def topk_validator(rank: RankFn, valid: EvalSet, *, valid_users: int = 0, k: int = 10, seed: int = 0):
    """``validate(model) -> {NDCG@k, Recall@k, NDCG@k_se, n_eval_users}`` for ``Trainer.fit``.

    ``rank`` decodes a list of histories (the caller batches it by its ``eval_batch_size``). The Trainer
    selects epochs by its ``train.metric`` (NDCG@10): ``NDCG@k_se`` and ``n_eval_users`` are only logged.
    """
    from semid.train.validation import ShardedValidation, ndcg_recall_rows

    rows = validation_rows(len(valid), valid_users, seed)
    hists = [valid.histories.seq(int(r)) for r in rows]
    targets = [valid.targets.seq(int(r)) for r in rows]
    n = sum(1 for t in targets if len(t))  # users counted by the means (one without a target is skipped)
    nd = f"NDCG@{k}"

    def per_user(model: nn.Module, lo: int, hi: int) -> dict[str, np.ndarray]:
        out = ndcg_recall_rows(rank(model, hists[lo:hi], k), targets[lo:hi], k)
        out[f"{nd}_sq"] = out[nd] ** 2  # E[x^2] over users, for the standard error
        return out

    sharded = ShardedValidation(n_rows=len(hists), rows=per_user)

    def validate(model: nn.Module) -> dict[str, float]:
        m = sharded(model)
        mean, sq = m.get(nd, 0.0), m.pop(f"{nd}_sq", 0.0)
        # sample std (ddof 1) / sqrt(n) = sqrt((E[x^2] - E[x]^2) / (n - 1))
        m[f"{nd}_se"] = math.sqrt(max(sq - mean * mean, 0.0) / (n - 1)) if n > 1 else 0.0
        m["n_eval_users"] = n
        return m

    return validate


__all__ = ["RankFn", "sample_evalset", "topk_validator", "validation_rows"]
