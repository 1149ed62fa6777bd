"""Constrained beam search throughput: semid's batched search vs transformers' ``generate``.

Same GPT-2 weights, same left-padded inputs, same process. First checks that our top-10 equals
``generate(num_beams=B, prefix_allowed_tokens_fn=...)`` on a sample (both decode steps), then times users/s for
  ours, lean step (``LeanGPT2Step``: shared prompt cache, what ``recommend`` uses) | ours, HF-cache step
  (``GPT2Step``) | HF generate constrained | HF generate unconstrained (beam only)
and the share of our step time spent on the constraint (mask + child lookup).

    python benchmarks/bench_decode.py --users 64 --batch 32 --threads 2
    python benchmarks/bench_decode.py --threads 1,2      # ours at each thread count, same process
    python benchmarks/bench_decode.py --threads auto,1,2 # semid's default (small-op policy) vs 1 vs 2

Threads default to semid's policy (``semid.threads``: ``SEMID_THREADS``, else "auto": decoding picks 1-2
threads by the cores other processes use; HF ``generate`` runs at torch's default count) and the
OpenMP wait policy to PASSIVE unless ``OMP_WAIT_POLICY`` is set (``--omp-wait-policy`` sets it here,
before torch loads; ACTIVE is the spinning OpenMP default that collapses on shared cores).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

if __name__ == "__main__":  # the wait policy must be in the environment before torch loads
    for i, a in enumerate(sys.argv):
        if a.startswith("--omp-wait-policy"):
            val = a.split("=", 1)[1] if "=" in a else sys.argv[i + 1]
            os.environ["OMP_WAIT_POLICY"] = val.upper()
        if a.startswith("--gomp-spincount"):
            os.environ["GOMP_SPINCOUNT"] = a.split("=", 1)[1] if "=" in a else sys.argv[i + 1]
    from semid.threads import apply_wait_policy

    apply_wait_policy()

import numpy as np  # noqa: E402
import torch  # noqa: E402

from semid.decoding import PrefixIndex, beam_search  # noqa: E402
from semid.decoding.lean_gpt2 import LeanGPT2Step  # noqa: E402
from semid.models.gpt2rec import GPT2Rec, GPT2RecConfig, GPT2Step  # noqa: E402
from semid.models.vocab import EOS, PAD  # noqa: E402
from semid.threads import recheck_load, runtime_record, set_threads  # noqa: E402


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


def rectokens_status() -> str:
    """Whether rectokens' constrained decoding can run here, and if not the reason its own code gives.

    rectokens 0.2.2 (PyPI) routes beam search through Triton kernels: ``rectokens/kernels/
    constrained_node_transition.py`` starts with ``assert torch.cuda.is_available(), "CUDA is required to
    import VTNK kernel."`` and imports ``triton``; ``rectokens.decoding`` imports it, so on a CPU machine the
    package cannot decode at all. It is never a semid dependency: install it in its own venv to try it.
    """
    try:
        import rectokens.decoding.constrained_decoding  # noqa: F401
    except ImportError as e:
        return f"not run: rectokens not importable here ({e}); on CPU it could not run anyway (CUDA-only kernels)"
    except AssertionError as e:
        return f"not run: rectokens refuses to import its kernels: {e!s} (rectokens/kernels/constrained_node_transition.py)"
    return "importable (CUDA present), but not wired into this CPU benchmark"


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()  # CUDA kernels run asynchronously: time them to completion
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
    ap.add_argument("--threads", default="", help="a setting or a list (auto,1,2) whose lean step is timed in "
                    "turn, interleaved; auto = semid's small-op policy; the first setting runs everything else")
    ap.add_argument("--omp-wait-policy", default="", help="PASSIVE | ACTIVE (read before torch loads)")
    ap.add_argument("--gomp-spincount", default="", help="GNU OpenMP spins before an idle thread sleeps "
                    "(~100 per microsecond; overrides the policy's 0 for PASSIVE); read before torch loads")
    ap.add_argument("--dense-limit", type=int, default=None, help="PrefixIndex dense_limit (0 = CSR masks)")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--check", type=int, default=8, help="users whose top-k must match HF before timing")
    ap.add_argument("--device", default="cpu", help="cpu | cuda: where the model, index and batches live")
    args = ap.parse_args()
    device = torch.device(args.device)
    thread_list = [t.strip() for t in args.threads.split(",") if t.strip()] or ["auto"]

    def use(setting: str) -> None:  # "auto": no explicit count, beam_search picks (semid.threads.small_ops)
        set_threads(None if setting == "auto" else int(setting))
        recheck_load()

    use(thread_list[0])
    torch.manual_seed(0)

    codes = random_codes(args.items, args.levels, args.codebook, seed=0)
    cfg = GPT2RecConfig(
        n_layer=args.n_layer, n_embd=args.n_embd, n_head=4, max_history=args.history, dropout=0.0
    )
    rec = GPT2Rec(codes=codes, codebook_sizes=[args.codebook] * args.levels, config=cfg).init_model()
    model, index, L = rec.model_.to(device).eval(), rec.index_, args.levels
    if args.dense_limit is not None:
        index = PrefixIndex.from_codes(rec.item_tokens_, dense_limit=args.dense_limit)
    index = index.to(device)
    rng = np.random.default_rng(1)
    hists = [rng.integers(0, len(codes), size=rng.integers(1, args.history + 1)) for _ in range(args.users)]
    def on_device(b: dict) -> dict:
        return {k: v.to(device) for k, v in b.items()}

    batches = [on_device(rec.encode_histories(hists[s : s + args.batch])) for s in range(0, args.users, args.batch)]
    tok2item = {tuple(t): i for i, t in enumerate(rec.item_tokens_.tolist())}

    # 1) same answers on a sample
    sample = on_device(rec.encode_histories(hists[: args.check]))
    with torch.no_grad():
        ours = beam_search(GPT2Step(model), sample, index, beam=args.beam, k=args.k)
        seqs, sc = hf_generate(model, sample, L, args.beam, args.k, index.next_tokens)
    hf_items = np.array([[tok2item.get(tuple(s), -1) for s in row] for row in seqs.tolist()])
    same = (hf_items == ours.items.cpu().numpy()).all()
    max_diff = float((sc - ours.scores).abs().max())
    with torch.no_grad():
        lean = beam_search(LeanGPT2Step(model, L - 1), sample, index, beam=args.beam, k=args.k)
    same = same and bool((lean.items == ours.items).all())
    max_diff = max(max_diff, float((sc - lean.scores).abs().max()))
    print(f"check on {args.check} users: top-{args.k} identical={same} (HF generate, GPT2Step, LeanGPT2Step), "
          f"max |score diff|={max_diff:.2e}")
    if not same:
        raise SystemExit("ours and transformers.generate disagree; not timing")

    # 2) throughput
    timings: dict[str, float] = {}

    def run_ours(t=None, step=lambda: GPT2Step(model)):
        with torch.no_grad():
            for b in batches:
                beam_search(step(), b, index, beam=args.beam, k=args.k, timings=t)

    per_thread: dict[str, list[float]] = {t: [] for t in thread_list}  # the lean step at each setting
    used: dict[str, dict] = {}
    for rep in range(max(1, args.repeats)):  # interleaved, order rotated, so load changes hit every setting alike
        for t in thread_list[rep % len(thread_list):] + thread_list[: rep % len(thread_list)]:
            use(t)
            before = dict(runtime_record()["small_op_threads_used"])
            per_thread[t].append(timed(lambda: run_ours(step=lambda: LeanGPT2Step(model, L - 1)), 1))
            after = runtime_record()["small_op_threads_used"]
            for n, c in after.items():
                if c - before.get(n, 0):
                    used.setdefault(t, {})[n] = used.get(t, {}).get(n, 0) + c - before.get(n, 0)
    per_thread = {t: float(np.median(v)) for t, v in per_thread.items()}
    use(thread_list[0])
    t_lean = per_thread[thread_list[0]]

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
        f"device={device} threads={thread_list[0]} OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')} "
        f"GOMP_SPINCOUNT={os.environ.get('GOMP_SPINCOUNT', '(unset)')} "
        f"load average {os.getloadavg()[0]:.1f} items={len(codes)} L={L} K={args.codebook} beam={args.beam} "
        f"k={args.k} batch={args.batch} users={u} gpt2 {args.n_layer}x{args.n_embd} "
        f"masks={'dense' if index.dense[-1] is not None else 'csr'} at the last level"
    )
    print(f"ours, lean step      : {u / t_lean:8.1f} users/s   -> x{t_ours / t_lean:.1f} the HF-cache step")
    for n, t in per_thread.items():
        print(f"ours, lean, {n:>4s} thr: {u / t:8.1f} users/s   -> x{t_lean / t:.2f} vs {thread_list[0]}; "
              f"batches per thread count {used[n]}")
    if "auto" in per_thread and "1" in per_thread:
        r = per_thread["1"] / per_thread["auto"]
        print(f"TARGET default (auto) vs 1 thread: x{r:.3f} (>= 1.0 with another process on the cores, "
              f">= 1.5 on an idle machine; load average {os.getloadavg()[0]:.1f})")
    print(f"ours, HF-cache step  : {u / t_ours:8.1f} users/s")
    print(f"HF generate + prefix : {u / t_hf_c:8.1f} users/s   -> lean x{t_hf_c / t_lean:.1f}, HF-cache step "
          f"x{t_hf_c / t_ours:.1f}")
    print(f"HF generate (no cons): {u / t_hf_u:8.1f} users/s   -> lean x{t_hf_u / t_lean:.1f}")
    print(f"rectokens            : {rectokens_status()}")
    print(f"constraint share of our step time: {100 * share:.1f}% (index {index.nbytes() / 2**20:.2f} MiB)")


if __name__ == "__main__":
    main()
