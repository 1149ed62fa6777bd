"""Fast constrained beam search over semantic IDs: the whole batch x beam on the device at once.

Every step: log-softmax over the full vocabulary (so scores are true model log-probs), keep the slice of
the current code position, add the beam's running score, set codes that lead to no item to -inf
(``PrefixIndex.allowed``), and take one top-k over beam x S per example. The model's KV cache is reused
between steps and reordered by parent beam (``DecodeStep``). Beams are distinct prefixes at every level
and codes are unique per item, so the final beams are distinct items (TIGER sec. 3.2 / MusicRec: beam 20).

With an ``item_mask`` (bool (B, n_items), ``semid.decoding.masks``) a code is also -inf when every item
below it is masked for that example (``PrefixIndex.alive``): filtered items never take a beam slot.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from semid.decoding.prefix_index import PrefixIndex
from semid.threads import small_ops


class DecodeStep(Protocol):
    """What a model provides to the beam search (see GPT2Step / T5Step).

    start(batch) -> (logits (B, V) for the first code token, state)
    advance(state, parent (R,), tokens (R,)) -> (logits (R, V), state): row r continues row ``parent[r]`` of
    the previous call with token ``tokens[r]``; the stepper reorders its cache by ``parent``.
    Parents always stay inside the same example (rows b*W .. b*W+W-1 after the first step).
    """

    def start(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, Any]: ...

    def advance(self, state: Any, parent: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor, Any]: ...


@dataclass
class BeamResult:
    items: torch.Tensor  # int64 (B, k), -1 where fewer than k items are reachable
    scores: torch.Tensor  # float32 (B, k), summed log-probs, -inf padding
    tokens: torch.Tensor  # int64 (B, k, L) global token ids of each returned code


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def beam_search(
    step: DecodeStep,
    batch: dict[str, torch.Tensor],
    index: PrefixIndex,
    *,
    beam: int = 20,
    k: int = 10,
    timings: dict[str, float] | None = None,
    item_mask: torch.Tensor | None = None,
) -> BeamResult:
    """Top-``k`` distinct items per example by constrained beam search of width ``beam``.

    ``item_mask`` (optional) bool (B, n_items): only True items may be returned (rows padded with -1
    when fewer than k are allowed and reachable).

    ``timings`` (optional) accumulates seconds spent in the model (``model``) and in the constraint
    (``constraint``: mask + child lookup); the device is synchronised around each part when given.

    Runs at the small-op intra-op thread count (``semid.threads.small_ops``: fewer threads when other
    processes share the cores; an explicit ``--threads`` / ``SEMID_THREADS`` wins).
    """
    with small_ops():
        return _beam_search(step, batch, index, beam=beam, k=k, timings=timings, item_mask=item_mask)


@torch.no_grad()
def _beam_search(step, batch, index, *, beam, k, timings, item_mask) -> BeamResult:
    if beam < 1 or k < 1:
        raise ValueError(f"beam and k must be >= 1, got beam={beam}, k={k}")
    t_model = time.perf_counter()
    logits, state = step.start(batch)  # (B, V)
    device = logits.device
    if timings is not None:
        _sync(device)
        timings["model"] = timings.get("model", 0.0) + time.perf_counter() - t_model
    B = logits.shape[0]
    if index.device != device:
        index = index.to(device)
    neg_inf = torch.tensor(float("-inf"), device=device)
    scores = torch.zeros(B, 1, device=device)  # (B, Wc) running sums
    prefix = torch.zeros(B, 1, dtype=torch.long, device=device)  # (B, Wc) prefix ids at level lvl
    toks = torch.zeros(B, 1, 0, dtype=torch.long, device=device)  # (B, Wc, lvl) chosen tokens
    arange_b = torch.arange(B, device=device)[:, None]
    alive = None
    if item_mask is not None:
        if tuple(item_mask.shape) != (B, index.n_items):
            raise ValueError(f"item_mask must be (B, n_items) = ({B}, {index.n_items}), got {tuple(item_mask.shape)}")
        alive = index.alive(item_mask.to(device))  # per level (B, n_prefix[l])
    for lvl in range(index.L):
        Wc, lo, S = scores.shape[1], index.lo[lvl], index.sizes[lvl]
        logp = torch.log_softmax(logits.float(), dim=-1)[:, lo : lo + S].reshape(B, Wc, S)
        t0 = time.perf_counter()
        if alive is None:
            allowed = index.allowed(lvl, prefix.reshape(-1)).view(B, Wc, S)
        else:
            row_ex = arange_b.expand(B, Wc).reshape(-1)  # (B*Wc,) example of each beam row
            allowed = index.allowed_alive(lvl, prefix.reshape(-1), alive[lvl + 1], row_ex).view(B, Wc, S)
        cand = torch.where(allowed, scores[:, :, None] + logp, neg_inf).view(B, Wc * S)
        if timings is not None:
            _sync(device)
            timings["constraint"] = timings.get("constraint", 0.0) + time.perf_counter() - t0
        kk = min(beam, Wc * S)
        top, idx = cand.topk(kk, dim=1)  # (B, kk), sorted best first
        if kk < beam:  # fewer candidates than beams: pad with dead (-inf) beams
            top = torch.cat([top, neg_inf.expand(B, beam - kk)], dim=1)
            idx = torch.cat([idx, idx[:, :1].expand(B, beam - kk)], dim=1)
        parent = torch.div(idx, S, rounding_mode="floor")  # (B, W) beam index within the example
        code = idx - parent * S  # (B, W) local code
        t0 = time.perf_counter()
        child, ok = index.child(lvl, prefix.gather(1, parent), code)
        if timings is not None:
            _sync(device)
            timings["constraint"] = timings.get("constraint", 0.0) + time.perf_counter() - t0
        scores = torch.where(ok, top, neg_inf)
        prefix = child
        token = code + lo
        toks = torch.cat([toks.gather(1, parent[:, :, None].expand(-1, -1, lvl)), token[:, :, None]], dim=2)
        if lvl + 1 < index.L:
            t_model = time.perf_counter()
            logits, state = step.advance(state, (arange_b * Wc + parent).reshape(-1), token.reshape(-1))
            if timings is not None:
                _sync(device)
                timings["model"] = timings.get("model", 0.0) + time.perf_counter() - t_model
    dead = torch.isinf(scores)  # (B, W)
    items = torch.where(dead, torch.full_like(prefix, -1), index.items(prefix))
    if k > beam:
        pad = k - beam
        items = torch.cat([items, items.new_full((B, pad), -1)], dim=1)
        scores = torch.cat([scores, neg_inf.expand(B, pad)], dim=1)
        toks = torch.cat([toks, toks.new_zeros(B, pad, index.L)], dim=1)
    return BeamResult(items=items[:, :k], scores=scores[:, :k], tokens=toks[:, :k])
