"""Constrained beam search throughput: semid's batched search vs transformers' ``generate``.

Same GPT-2 weights, same left-padded inputs, same process. First checks that our top-10 equals
``generate(num_beams=B, prefix_allowed_tokens_fn=...)`` on a sample, then times users/s for
  ours (constrained) | HF generate constrained | HF generate unconstrained (beam only)
and the share of our step time spent on the constraint (mask + child lookup).

    python benchmarks/bench_decode.py --users 64 --batch 32 --threads 2
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from semid.decoding import PrefixIndex, beam_search
from semid.models.gpt2rec import GPT2Rec, GPT2RecConfig, GPT2Step
from semid.models.vocab import EOS, PAD


def random_codes(n: int, L: int, K: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    codes = np.unique(rng.integers(0, K, size=(int(n * 1.2) + 16, L)), axis=0)
    return codes[rng.permutation(len(codes))[:n]]


def hf_generate(model, batch, L, beam, k, allowed_fn=None):
    T = batch["input_ids"].shape[1]
    kwargs = {}
    if allowed_fn is not None:
        kwargs["prefix_allowed_tokens_fn"] = lambda b, ids: allowed_fn(ids[T:].tolist())
    out = model.generate(
        input_ids=batch["input_ids"],
        attention_mask=batch["attention_mask"],
        num_beams=beam,
        num_return_sequences=k,
        max_new_tokens=L,
        min_new_tokens=L,
        do_sample=False,
        length_penalty=0.0,  # summed log-probs, like ours
        early_stopping=False,
        pad_token_id=PAD,
        eos_token_id=EOS,
        output_scores=True,
        return_dict_in_generate=True,
        **kwargs,
    )
    B = batch["input_ids"].shape[0]
    return out.sequences[:, T:].reshape(B, k, L), out.sequences_scores.reshape(B, k)


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t0) / repeats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--items", type=int, default=5000)
    ap.add_argument("--levels", type=int, default=3)
    ap.add_argument("--codebook", type=int, default=256)
    ap.add_argument("--users", type=int, default=64)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--history", type=int, default=20)
    ap.add_argument("--beam", type=int, default=20)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--n-layer", type=int, default=2)
    ap.add_argument("--n-embd", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dense-limit", type=int, default=None, help="PrefixIndex dense_limit (0 = CSR masks)")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--check", type=int, default=8, help="users whose top-k must match HF before timing")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    codes = random_codes(args.items, args.levels, args.codebook, seed=0)
    cfg = GPT2RecConfig(
        n_layer=args.n_layer, n_embd=args.n_embd, n_head=4, max_history=args.history, dropout=0.0
    )
    rec = GPT2Rec(codes=codes, codebook_sizes=[args.codebook] * args.levels, config=cfg).init_model()
    model, index, L = rec.model_, rec.index_, args.levels
    if args.dense_limit is not None:
        index = PrefixIndex.from_codes(rec.item_tokens_, dense_limit=args.dense_limit)
    rng = np.random.default_rng(1)
    hists = [rng.integers(0, len(codes), size=rng.integers(1, args.history + 1)) for _ in range(args.users)]
    batches = [rec.encode_histories(hists[s : s + args.batch]) for s in range(0, args.users, args.batch)]
    tok2item = {tuple(t): i for i, t in enumerate(rec.item_tokens_.tolist())}

    # 1) same answers on a sample
    sample = rec.encode_histories(hists[: args.check])
    with torch.no_grad():
        ours = beam_search(GPT2Step(model), sample, index, beam=args.beam, k=args.k)
        seqs, sc = hf_generate(model, sample, L, args.beam, args.k, index.next_tokens)
    hf_items = np.array([[tok2item.get(tuple(s), -1) for s in row] for row in seqs.tolist()])
    same = (hf_items == ours.items.numpy()).all()
    max_diff = float((sc - ours.scores).abs().max())
    print(f"check on {args.check} users: top-{args.k} identical={same}, max |score diff|={max_diff:.2e}")
    if not same:
        raise SystemExit("ours and transformers.generate disagree; not timing")

    # 2) throughput
    timings: dict[str, float] = {}

    def run_ours(t=None):
        with torch.no_grad():
            for b in batches:
                beam_search(GPT2Step(model), b, index, beam=args.beam, k=args.k, timings=t)

    def run_hf(constrained: bool):
        with torch.no_grad():
            for b in batches:
                hf_generate(model, b, L, args.beam, args.k, index.next_tokens if constrained else None)

    t_ours = timed(run_ours, args.repeats)
    run_ours(timings)
    t_hf_c = timed(lambda: run_hf(True), args.repeats)
    t_hf_u = timed(lambda: run_hf(False), args.repeats)
    share = timings["constraint"] / (timings["constraint"] + timings["model"])
    u = args.users
    print(
        f"device=cpu threads={args.threads} items={len(codes)} L={L} K={args.codebook} beam={args.beam} "
        f"k={args.k} batch={args.batch} users={u} gpt2 {args.n_layer}x{args.n_embd} "
        f"masks={'dense' if index.dense[-1] is not None else 'csr'} at the last level"
    )
    print(f"ours constrained     : {u / t_ours:8.1f} users/s")
    print(f"HF generate + prefix : {u / t_hf_c:8.1f} users/s   -> ours x{t_hf_c / t_ours:.1f}")
    print(f"HF generate (no cons): {u / t_hf_u:8.1f} users/s   -> ours x{t_hf_u / t_ours:.1f}")
    print(f"constraint share of our step time: {100 * share:.1f}% (index {index.nbytes() / 2**20:.2f} MiB)")


if __name__ == "__main__":
    main()
