"""One evaluator for every Recommender: full-ranking top-K metrics over an EvalSet, plus metrics.json.

Full ranking means the recommender ranks the whole catalog (no sampled negatives), as in
MusicRec, LC-Rec and LETTER. The evaluator only sees the returned top-K lists, so generative
models (beam search) and scoring models (SASRec) are measured identically.

Empty histories: a user with an empty history is still evaluated, with ``histories[b]`` an empty
int64 array; the recommender must answer (MostPopular does; SASRec scores from a zero input,
the same list for every such user). Such users are counted in ``n_eval_users``; ``n_empty_history`` reports how many.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from semid.data.types import EvalSet
from semid.errors import DataError
from semid.eval.metrics import DEFAULT_KS, per_row_metrics
from semid.io import atomic_write, write_json
from semid.progress import progress_bar
from semid.train import distributed


def validate_topk(
    items: np.ndarray,
    scores: np.ndarray | None,
    *,
    n_rows: int,
    k: int,
    n_items: int | None,
    who: str = "recommender",
) -> np.ndarray:
    """Check one batch of recommend() output; return items as int64 [B, k]. Raises DataError naming the fault."""
    items = np.asarray(items)
    if items.shape != (n_rows, k):
        raise DataError(f"{who}.recommend returned items of shape {items.shape}, expected ({n_rows}, {k})")
    if not np.issubdtype(items.dtype, np.integer):
        raise DataError(f"{who}.recommend returned items of dtype {items.dtype}, expected int64 item indices")
    items = items.astype(np.int64, copy=False)
    if scores is not None and np.asarray(scores).shape != (n_rows, k):
        raise DataError(
            f"{who}.recommend returned scores of shape {np.asarray(scores).shape}, expected ({n_rows}, {k})"
        )
    low = items < -1
    high = (items >= n_items) if n_items is not None else np.zeros_like(low)
    if (low | high).any():
        r, c = np.argwhere(low | high)[0]
        raise DataError(
            f"{who}.recommend returned invalid item id {int(items[r, c])} (row {r}, position {c}); "
            f"valid ids are 0..{'n_items-1' if n_items is None else n_items - 1}, or -1 for padding"
        )
    # Duplicates (ignoring -1 padding): sort each row and compare neighbours.
    s = np.sort(items, axis=1)
    dup = (s[:, 1:] == s[:, :-1]) & (s[:, 1:] >= 0)
    if dup.any():
        r = int(np.flatnonzero(dup.any(axis=1))[0])
        item = int(s[r, 1:][dup[r]][0])
        raise DataError(
            f"{who}.recommend returned item {item} twice in row {r}; each row must list distinct items"
        )
    return items


def _drop_history(items: np.ndarray, histories: list[np.ndarray], k: int) -> np.ndarray:
    """Remove each row's history items from its ranked list, keep order, re-pad to k with -1."""
    out = np.full((len(items), k), -1, dtype=np.int64)
    for r, (row, h) in enumerate(zip(items, histories, strict=True)):
        kept = row[(row >= 0) & ~np.isin(row, h)][:k]
        out[r, : len(kept)] = kept
    return out


def evaluate(
    recommender,
    evalset: EvalSet,
    *,
    ks=DEFAULT_KS,
    batch_size: int = 256,
    exclude_history: bool = False,
    progress: bool = True,
    n_items: int | None = None,
    per_user_out: str | Path | None = None,
) -> dict:
    """Full-ranking metrics of ``recommender`` on ``evalset``.

    Calls ``recommender.recommend(histories, k=max(ks))`` in batches of ``batch_size`` users.
    Returns floats "HR@k" for k in ks, "NDCG@k" for k > 1, "MRR" (MRR@max(ks)), "Recall@k" when
    some user has several targets, and ints "n_eval_users", "n_empty_history".
    ``exclude_history=True`` asks for max(ks) + len(history) items and drops the history items
    (off by default: the MusicRec / LC-Rec / LETTER protocol does not filter).
    ``n_items`` (default: ``recommender.n_items_`` when present) bounds valid ids.
    ``per_user_out``: also write every user's metric values there (``write_per_user``), the input of
    ``semid compare``'s paired tests.
    """
    ks = tuple(sorted(set(int(k) for k in ks)))
    if not ks or ks[0] < 1:
        raise DataError(f"ks must be positive cut-offs, got {ks}")
    k_max = ks[-1]
    if n_items is None:
        n_items = getattr(recommender, "n_items_", None)
    hist, tgt = evalset.histories, evalset.targets
    n_users = hist.n_users
    if tgt.n_users != n_users:
        raise DataError(f"evalset has {n_users} histories but {tgt.n_users} target rows")
    if n_users == 0:  # metrics over nobody would be 0.0 and look like a real (terrible) result
        raise DataError(
            "the evaluation set has no users, so there is nothing to measure (leave-one-out needs users with "
            "at least 3 interactions, continuation sequences longer than data.holdout); check the dataset "
            "with `semid data check`, and data.min_length / data.k_core / the split settings"
        )
    who = getattr(recommender, "name", type(recommender).__name__)
    # Under torch.distributed each rank ranks its own slice of users; the slices are gathered in order.
    lo, hi = distributed.shard_range(n_users)
    all_topk = np.full((hi - lo, k_max), -1, dtype=np.int64)
    with progress_bar(f"eval {who}", total=hi - lo, enabled=progress) as tick:
        for start in range(lo, hi, batch_size):
            stop = min(start + batch_size, hi)
            histories = [hist.seq(u) for u in range(start, stop)]
            k_req = k_max + (max((len(h) for h in histories), default=0) if exclude_history else 0)
            items, scores = recommender.recommend(histories, k=k_req)
            items = validate_topk(items, scores, n_rows=stop - start, k=k_req, n_items=n_items, who=who)
            if exclude_history:
                items = _drop_history(items, histories, k_max)
            all_topk[start - lo : stop - lo] = items
            tick(stop - start)
    all_topk = distributed.gather_rows(all_topk)  # (n_users, k_max) on every rank
    rows = per_row_metrics(all_topk, tgt, ks)
    out: dict = {name: float(v.mean()) for name, v in rows.items()}
    if per_user_out is not None and distributed.is_main():
        write_per_user(per_user_out, rows, evalset)
    out["n_eval_users"] = int(n_users)
    out["n_empty_history"] = int((hist.lengths() == 0).sum())
    return out


def split_fingerprint(evalset: EvalSet) -> str:
    """sha256 over the users, histories and targets of an EvalSet: equal iff two runs scored the same queries."""
    h = hashlib.sha256()
    for part in (evalset.histories, evalset.targets):
        for a in (part.offsets, part.items):
            h.update(np.ascontiguousarray(a, dtype=np.int64).tobytes())
    h.update("\x1f".join(evalset.histories.user_ids.tolist()).encode())
    return h.hexdigest()


def write_per_user(path: str | Path, rows: dict[str, np.ndarray], evalset: EvalSet) -> Path:
    """Atomically write ``rows`` (metric name -> float64 [U], one value per evaluated user, in EvalSet order)
    to ``path`` (.npz) with ``user_ids`` (str [U]) and ``fingerprint`` (``split_fingerprint``), no pickles."""
    arrays = {f"metric:{name}": np.asarray(v, dtype=np.float64) for name, v in rows.items()}
    arrays["user_ids"] = np.asarray(evalset.histories.user_ids).astype(str)
    arrays["fingerprint"] = np.array(split_fingerprint(evalset))

    def w(p: Path) -> None:
        with open(p, "wb") as f:
            np.savez(f, **arrays)

    return atomic_write(path, w)


def write_metrics(run_dir: str | Path, metrics: dict, *, split: str, dataset: str, model: str) -> Path:
    """Write ``<run_dir>/metrics.json`` atomically: the metrics plus "split", "dataset", "model"."""
    payload = {"split": split, "dataset": dataset, "model": model, **metrics}
    return write_json(Path(run_dir) / "metrics.json", payload)
