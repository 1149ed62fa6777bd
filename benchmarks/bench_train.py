"""Training throughput: semid's Trainer vs a plain eager PyTorch loop on the same GPT2Rec model and batches.

Tokens/s counts non-pad input tokens of the batches GPT2Rec itself trains on (``--objective``:
``sequence`` = all-position windows, ``next`` = one target per row). The plain loop is AdamW + backward + step, nothing else; the
Trainer adds warmup/cosine, grad clipping, finiteness checks and (on CUDA) bf16 autocast.

    python benchmarks/bench_train.py --steps 30 --threads 2   # both objectives, same process

``--movielens`` instead trains GPT2Rec and T5Rec briefly on the built-in MovieLens (leave-one-out) with
stand-in codes (truncated SVD of the train user-item matrix -> 3-level residual k-means, K=16, plus
TIGER's collision digit; FusID codes can replace them once that tokenizer lands) and compares test
NDCG@10 / HR@10 with MostPopular:

    python benchmarks/bench_train.py --movielens --epochs 3 --threads 1
"""

from __future__ import annotations

import argparse
import copy
import time

import numpy as np
import torch

from semid.data.types import Interactions
from semid.models.gpt2rec import GPT2Rec, GPT2RecConfig
from semid.train.loop import TrainConfig, Trainer


def svd_rq_codes(train: Interactions, n_items: int, *, dim=32, K=16, levels=3, seed=0):
    """Stand-in semantic IDs: SVD item factors of the binary train matrix, residual k-means per level."""
    from semid.quantize.kmeans import KMeans, KMeansConfig
    from semid.tokenizers.ids import resolve_collisions

    users = np.repeat(np.arange(train.n_users), train.lengths())
    X = torch.zeros(train.n_users, n_items)
    X[users, train.items] = 1.0
    torch.manual_seed(seed)
    _, _, V = torch.svd_lowrank(X, q=dim, niter=4)  # V: (n_items, dim)
    r = V.numpy().astype(np.float32)  # (n_items, dim) residual, quantized level by level
    codes = np.zeros((n_items, levels), dtype=np.int64)
    for lvl in range(levels):
        km = KMeans(K, config=KMeansConfig(seed=seed + lvl, n_iter=20, backend="torch")).fit(r)
        codes[:, lvl] = km.predict(r)
        r = r - km.centroids_[codes[:, lvl]]
    codes, _ = resolve_collisions(codes, always_append=True)
    return codes, [K] * levels + [int(codes[:, -1].max()) + 1]


def movielens_quality(args) -> None:
    from semid.data.registry import load_dataset
    from semid.data.split import leave_one_out
    from semid.eval import evaluate
    from semid.models.popular import MostPopular
    from semid.models.t5rec import T5Rec, T5RecConfig

    ds = load_dataset("movielens")
    split = leave_one_out(ds.interactions, max_history=args.history)
    n = ds.catalog.n_items
    t0 = time.perf_counter()
    codes, sizes = svd_rq_codes(split.train, n)
    print(f"stand-in codes {codes.shape} sizes={sizes} in {time.perf_counter() - t0:.1f}s")
    # train on each user's last --train-tail items to bound CPU time
    tail = Interactions.from_lists([s[-args.train_tail :] for s in split.train.to_lists()])
    tcfg = TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch,
        lr=2e-3,
        warmup_steps=50,
        progress=False,
        device=args.device,
        patience=0,
    )
    models = {
        "MostPopular": MostPopular(),
        "GPT2Rec": GPT2Rec(
            codes=codes,
            codebook_sizes=sizes,
            train=tcfg,
            config=GPT2RecConfig(n_layer=2, n_embd=128, n_head=4, max_history=args.history, valid_users=128,
                                 objective=args.objective.split(",")[0]),
        ),
        "T5Rec": T5Rec(
            codes=codes,
            codebook_sizes=sizes,
            train=tcfg,
            config=T5RecConfig(max_history=args.history, valid_users=128),
        ),
    }
    for name, rec in models.items():
        if name not in args.models.split(","):
            continue
        t0 = time.perf_counter()
        rec.fit(tail, ds.catalog, split.valid)
        t_fit = time.perf_counter() - t0
        t0 = time.perf_counter()
        m = evaluate(rec, split.test, ks=(10,), batch_size=64, progress=False)
        print(
            f"{name:12s} test NDCG@10={m['NDCG@10']:.4f} HR@10={m['HR@10']:.4f} "
            f"fit {t_fit:.0f}s eval {time.perf_counter() - t0:.0f}s ({m['n_eval_users']} users)"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--items", type=int, default=2000)
    ap.add_argument("--levels", type=int, default=3)
    ap.add_argument("--codebook", type=int, default=64)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--n-layer", type=int, default=2)
    ap.add_argument("--n-embd", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--objective", default="sequence,next", help="sequence | next | both, comma-separated")
    ap.add_argument("--movielens", action="store_true", help="quality check vs MostPopular instead")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--history", type=int, default=20)
    ap.add_argument("--train-tail", type=int, default=40)
    ap.add_argument("--models", default="MostPopular,GPT2Rec,T5Rec", help="comma list for --movielens")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.movielens:
        return movielens_quality(args)
    rng = np.random.default_rng(0)
    codes = np.unique(rng.integers(0, args.codebook, size=(args.items * 2, args.levels)), axis=0)[
        : args.items
    ]
    seqs = [rng.integers(0, len(codes), size=25) for _ in range(args.steps * args.batch + 1)]
    rates = {}
    for objective in args.objective.split(","):
        rates[objective] = throughput(args, codes, Interactions.from_lists(seqs), objective)
    if len(rates) == 2:
        a, b = rates
        print(f"targets/s, semid Trainer: {a} / {b} = x{rates[a] / rates[b]:.1f}")


def throughput(args, codes: np.ndarray, train: Interactions, objective: str) -> float:
    """Trainer vs plain loop on one objective's batches; returns the Trainer's targets/s."""
    torch.manual_seed(0)
    cfg = GPT2RecConfig(n_layer=args.n_layer, n_embd=args.n_embd, n_head=4, objective=objective)
    rec = GPT2Rec(codes=codes, codebook_sizes=[args.codebook] * args.levels, config=cfg).init_model()
    ex = rec._train_examples(train)
    order = ex.batch_indices(args.batch, np.random.default_rng(0))[: args.steps]
    batches = [rec._train_batch(ex, idx) for idx in order]
    loss_fn = rec._loss
    n_tokens = sum(int(b["attention_mask"].sum()) for b in batches)
    L = rec.item_tokens_.shape[1]  # targets = next items predicted (a window holds many, a next-item row one)
    n_targets = sum(int((b["labels"] != -100).sum()) // L if "labels" in b else len(b["input_ids"]) for b in batches)
    device = torch.device(args.device)

    # plain eager loop
    model = copy.deepcopy(rec.model_).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loss_fn(model, {k: v.to(device) for k, v in batches[0].items()}).backward()  # warm-up
    opt.zero_grad()
    t0 = time.perf_counter()
    for b in batches:
        loss = loss_fn(model, {k: v.to(device) for k, v in b.items()})
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    float(loss.detach())
    t_plain = time.perf_counter() - t0

    # semid Trainer, one epoch over the same batches
    model = copy.deepcopy(rec.model_)
    tcfg = TrainConfig(epochs=1, batch_size=args.batch, progress=False, device=args.device, warmup_steps=5)
    t0 = time.perf_counter()
    Trainer(tcfg).fit(model, lambda epoch, r: iter(batches), loss_fn, steps_per_epoch=len(batches))
    t_trainer = time.perf_counter() - t0

    print(
        f"device={args.device} threads={args.threads} gpt2 {args.n_layer}x{args.n_embd} batch={args.batch} "
        f"objective={objective} steps={len(batches)} tokens={n_tokens} targets={n_targets}"
    )
    print(f"plain eager loop: {n_tokens / t_plain:10.0f} tokens/s {n_targets / t_plain:8.0f} targets/s")
    print(
        f"semid Trainer   : {n_tokens / t_trainer:10.0f} tokens/s {n_targets / t_trainer:8.0f} targets/s"
        f"   (x{t_plain / t_trainer:.2f} of plain)"
    )
    return n_targets / t_trainer

if __name__ == "__main__":
    main()
