"""Peer benchmark: our SASRec (or GRU4Rec) against RecBole's on exactly our leave-one-out split, one machine.

The split is semid's (``leave_one_out`` with eval histories capped at --max-len). Each user's whole sequence
(train items, then the valid item, then the test item) is written as a RecBole atomic ``.inter`` file with
``timestamp`` = position in the sequence, so RecBole's own leave-one-out (``eval_args.split = {LS:
valid_and_test}``, ordered by time, grouped by user) holds out the same valid and test item per user, with
the same histories (RecBole's MAX_ITEM_LIST_LENGTH = --max-len), and its training data augmentation
(one example per train prefix) covers the same train targets as ours. Both rank the full catalogue with no
history filtering (RecBole's full-sort evaluation of sequential models does not mask history), both keep
the epoch with the best validation NDCG@10 and report test HR@10 / NDCG@10 from it.

RecBole runs in its own virtual environment (default /tmp/recbole-venv), created on first use with pinned
versions (torch's CPU wheel, numpy < 2, which RecBole 1.2 needs). RecBole reloads its best checkpoint
with ``torch.load``, whose ``weights_only`` default (torch >= 2.6) refuses RecBole's pickled config; this
script instead keeps the best-validation weights in memory (patching ``Trainer._save_checkpoint``) and
evaluates them without reloading anything, so no unsafe unpickling is needed.

    python benchmarks/bench_recbole.py --dataset movielens --epochs 5
    python benchmarks/bench_recbole.py --dataset mql4grec-instruments --epochs 5
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
DATASETS = {
    "movielens": "movielens",  # semid's built-in MovieLens latest-small
    "mql4grec-instruments": str(DATA / "amazon-mql4grec" / "Instruments"),
}
# Pinned peer environment. numpy < 2: RecBole 1.2.1 uses APIs numpy 2 removed; torch 2.13.0 is the CPU wheel
# the machine has on disk (never a bare `torch`, which would pull CUDA wheels).
PINS = ["torch==2.13.0", "numpy==1.26.4", "scipy==1.13.1", "pandas==2.2.3", "recbole==1.2.1"]

RECBOLE_RUNNER = r'''
import json, sys, time
import torch
torch.set_num_threads(int(sys.argv[2]))
from recbole.config import Config
from recbole.data import create_dataset, data_preparation
from recbole.trainer import Trainer
from recbole.utils import get_model, init_seed

args = json.loads(sys.argv[1])
config = Config(model=args["model"], dataset=args["dataset"], config_dict=args["config"])
init_seed(config["seed"], config["reproducibility"])
dataset = create_dataset(config)
train_data, valid_data, test_data = data_preparation(config, dataset)
model = get_model(config["model"])(config, train_data._dataset).to(config["device"])

# Keep the best-validation weights in memory instead of a checkpoint that evaluate() would torch.load.
best = {}
def _save_checkpoint(self, epoch, verbose=True, **kwargs):
    best["epoch"] = epoch
    best["state"] = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
Trainer._save_checkpoint = _save_checkpoint

trainer = Trainer(config, model)
t0 = time.perf_counter()
best_valid, valid_result = trainer.fit(train_data, valid_data, saved=True, show_progress=False)
train_s = time.perf_counter() - t0
model.load_state_dict(best["state"])
test = trainer.evaluate(test_data, load_best_model=False, show_progress=False)
print("RESULT " + json.dumps({
    "test": {k: float(v) for k, v in test.items()}, "valid": {k: float(v) for k, v in valid_result.items()},
    "best_epoch": int(best["epoch"]), "train_seconds": train_s,
    "n_users": int(dataset.user_num - 1), "n_items": int(dataset.item_num - 1),
    "n_test": int(len(test_data._dataset)),
}))
'''


def ensure_venv(venv: Path) -> Path:
    py = venv / "bin" / "python"
    ok = py.exists() and subprocess.run([str(py), "-c", "import recbole"], capture_output=True).returncode == 0
    if not ok:
        print(f"creating {venv} with {' '.join(PINS)} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", *PINS], check=True)
    return py


def write_atomic_files(ds, split, out: Path, name: str) -> dict:
    """``<out>/<name>/<name>.inter``: user_id, item_id, timestamp = position, one row per interaction of the
    users in our valid/test sets (train history + valid item + test item). Users our split keeps in train
    only (fewer than 3 items) are left out: RecBole's leave-one-out would still hold out items for them."""
    d = out / name
    d.mkdir(parents=True, exist_ok=True)
    vh, vt, th, tt = split.valid.histories, split.valid.targets, split.test.histories, split.test.targets
    train_of = {u: i for i, u in enumerate(split.train.user_ids.tolist())}
    rows = 0
    with open(d / f"{name}.inter", "w") as f:
        f.write("user_id:token\titem_id:token\ttimestamp:float\n")
        for r, u in enumerate(split.test.histories.user_ids.tolist()):
            seq = [int(i) for i in split.train.seq(train_of[u])]  # the full train prefix (not capped)
            seq += [int(vt.seq(r)[0]), int(tt.seq(r)[0])]
            # our eval histories are suffixes of that sequence, as RecBole's will be
            nv, nt = len(vh.seq(r)), len(th.seq(r))
            assert vh.seq(r).tolist() == seq[len(seq) - 2 - nv : -2] and th.seq(r).tolist() == seq[len(seq) - 1 - nt : -1]
            for pos, item in enumerate(seq):
                f.write(f"{u}\t{ds.catalog.item_ids[item]}\t{pos}\n")
            rows += len(seq)
    return {"users": len(split.test), "interactions": rows, "dropped_train_only_users": split.train.n_users - len(split.test)}


def run_recbole(py: Path, model: str, data_dir: Path, name: str, args) -> dict:
    hidden = 64
    config = {
        "data_path": str(data_dir), "checkpoint_dir": str(data_dir / "saved"), "seed": args.seed,
        "reproducibility": True, "device": "cpu", "use_gpu": False, "show_progress": False,
        "USER_ID_FIELD": "user_id", "ITEM_ID_FIELD": "item_id", "TIME_FIELD": "timestamp",
        "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
        "MAX_ITEM_LIST_LENGTH": args.max_len,
        "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "group_by": "user", "mode": "full"},
        "metrics": ["Hit", "NDCG"], "topk": [10], "valid_metric": "NDCG@10",
        "epochs": args.epochs, "stopping_step": args.epochs, "eval_step": 1,
        "train_batch_size": args.recbole_batch, "eval_batch_size": 256, "learning_rate": 1e-3,
        "loss_type": "CE", "train_neg_sample_args": None,
    }
    if model == "SASRec":  # our SASRec's architecture: 2 blocks, 1 head, FFN width d, dropout 0.2
        config.update({"n_layers": 2, "n_heads": 1, "hidden_size": hidden, "inner_size": hidden,
                       "hidden_dropout_prob": 0.2, "attn_dropout_prob": 0.2, "hidden_act": "gelu"})
    else:  # GRU4Rec: our defaults (64-d embedding and state, dropout 0.3)
        config.update({"embedding_size": hidden, "hidden_size": hidden, "num_layers": 1, "dropout_prob": 0.3})
    payload = json.dumps({"model": model, "dataset": name, "config": config})
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(RECBOLE_RUNNER)
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    t0 = time.perf_counter()
    p = subprocess.run([str(py), f.name, payload, str(args.threads)], capture_output=True, text=True,
                       cwd=data_dir, env=env)
    wall = time.perf_counter() - t0
    res = [ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")]
    if p.returncode != 0 or not res:
        sys.exit(f"RecBole {model} failed (exit {p.returncode}):\n{p.stdout[-3000:]}\n{p.stderr[-5000:]}")
    out = json.loads(res[-1][len("RESULT "):])
    out["wall_seconds"] = wall
    return out


def run_ours(model: str, ds, split, args) -> dict:
    import torch

    from semid.eval import evaluate
    from semid.train.loop import TrainConfig

    torch.set_num_threads(args.threads)
    tc = TrainConfig(epochs=args.epochs, batch_size=args.batch, lr=args.lr, patience=0, seed=args.seed,
                     device="cpu", progress=False, warmup_steps=args.warmup, min_lr_ratio=args.min_lr_ratio,
                     weight_decay=args.weight_decay)
    if model == "SASRec":
        from semid.models.sasrec import SASRec, SASRecConfig

        extra = {} if args.dropout < 0 else {"dropout": args.dropout}
        rec = SASRec(config=SASRecConfig(max_len=args.max_len, stride=args.stride, **extra), train=tc)
    else:
        from semid.models.gru4rec import GRU4Rec, GRU4RecConfig

        rec = GRU4Rec(config=GRU4RecConfig(max_len=args.max_len, stride=args.stride), train=tc)
    t0 = time.perf_counter()
    rec.fit(split.train, ds.catalog, split.valid)
    train_s = time.perf_counter() - t0
    test = evaluate(rec, split.test, ks=(10,), progress=False)
    return {"test": {"hit@10": test["HR@10"], "ndcg@10": test["NDCG@10"]}, "best_epoch": rec.result_.best_epoch,
            "train_seconds": train_s, "wall_seconds": time.perf_counter() - t0,
            "valid_ndcg@10_per_epoch": [round(h["valid"]["NDCG@10"], 4) for h in rec.result_.history]}


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.3f}" if b > 0 else "n/a"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", choices=sorted(DATASETS), default="movielens")
    ap.add_argument("--models", default="SASRec", help="comma list of SASRec, GRU4Rec")
    ap.add_argument("--epochs", type=int, default=5, help="the same epoch count for both (each target once per epoch)")
    ap.add_argument("--max-len", type=int, default=50, help="history cap of both models and of the eval split")
    ap.add_argument("--batch", type=int, default=0,
                    help="our windows per step (0 = recbole-batch / stride: the same targets per step as RecBole)")
    ap.add_argument("--stride", type=int, default=0, help="our window stride (0 = the model default)")
    ap.add_argument("--recbole-batch", type=int, default=2048, help="RecBole's examples (prefixes) per step")
    ap.add_argument("--threads", type=int, default=1, help="torch threads for each side")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lr", type=float, default=1e-3, help="our peak learning rate (RecBole's is 1e-3)")
    # Our optimiser defaults are the SASRec presets' (semid.pipeline.presets._SASREC_OPT): constant LR, no
    # warmup, no weight decay; pass the Trainer's generic defaults (100, 0.05, 0.01) to measure those.
    ap.add_argument("--warmup", type=int, default=0, help="our warmup steps")
    ap.add_argument("--min-lr-ratio", type=float, default=1.0, help="our cosine floor (1 = constant LR, as RecBole)")
    ap.add_argument("--weight-decay", type=float, default=0.0, help="our AdamW weight decay")
    ap.add_argument("--dropout", type=float, default=-1.0, help="our SASRec dropout (-1 = the model default)")
    ap.add_argument("--skip-recbole", action="store_true", help="run ours only (RecBole's figure from an earlier run)")
    ap.add_argument("--venv", type=Path, default=Path("/tmp/recbole-venv"))
    ap.add_argument("--work", type=Path, default=Path("/tmp/bench_recbole"))
    ap.add_argument("--limit-users", type=int, default=0, help="keep only the first N users (a smoke test)")
    args = ap.parse_args()
    stride = args.stride or max(1, args.max_len // 2)  # both models' default
    args.batch = args.batch or max(1, args.recbole_batch // stride)

    from semid.data import leave_one_out, load_dataset

    ds = load_dataset(DATASETS[args.dataset])
    if args.limit_users:
        from semid.data.types import Dataset, Interactions

        seqs = ds.interactions.to_lists()[: args.limit_users]
        ds = Dataset(ds.name, ds.catalog, Interactions.from_lists(seqs, ds.interactions.user_ids[: args.limit_users]))
    split = leave_one_out(ds.interactions, max_history=args.max_len)
    name = args.dataset.replace("-", "_") + (f"_first{args.limit_users}" if args.limit_users else "")
    info = write_atomic_files(ds, split, args.work, name)
    print(f"{args.dataset}: {info}; catalogue {ds.catalog.n_items} items; {args.epochs} epochs each, "
          f"max_len {args.max_len}, ours {args.batch} windows (stride {stride}) per step, RecBole "
          f"{args.recbole_batch} prefixes per step, {args.threads} torch thread(s) each", flush=True)
    py = None if args.skip_recbole else ensure_venv(args.venv)
    rows = []
    for model in [m.strip() for m in args.models.split(",") if m.strip()]:
        if model not in ("SASRec", "GRU4Rec"):
            sys.exit(f"--models: unknown model {model!r} (SASRec, GRU4Rec)")
        ours = run_ours(model, ds, split, args)
        print(f"ours    {model}: {json.dumps(ours)}", flush=True)
        if args.skip_recbole:
            continue
        peer = run_recbole(py, model, args.work, name, args)
        print(f"RecBole {model}: {json.dumps(peer)}", flush=True)
        if peer["n_test"] != len(split.test):
            print(f"WARNING: RecBole evaluated {peer['n_test']} test users, ours {len(split.test)}")
        rows.append((model, ours, peer))
    print("\n| model | dataset | epochs | ours HR@10 | RecBole HR@10 | ratio | ours NDCG@10 | RecBole NDCG@10 | ratio "
          "| ours train s | RecBole train s |\n|---|---|---|---|---|---|---|---|---|---|---|")
    for model, o, p in rows:
        oh, on, ph, pn = o["test"]["hit@10"], o["test"]["ndcg@10"], p["test"]["hit@10"], p["test"]["ndcg@10"]
        print(f"| {model} | {args.dataset} | {args.epochs} | {oh:.4f} | {ph:.4f} | {_ratio(oh, ph)} | {on:.4f} | {pn:.4f} "
              f"| {_ratio(on, pn)} | {o['train_seconds']:.0f} | {p['train_seconds']:.0f} |")


if __name__ == "__main__":
    main()
