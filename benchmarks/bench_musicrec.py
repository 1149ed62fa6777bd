"""TIGER / LETTER / MusicRec on amazon-mql4grec/Instruments (the split of MusicRec's Table 2), CPU budget.

Modalities: MQL4GRec's text code tuples (``index_lemb.json``) and image code tuples (``index_vitemb.json``),
each turned into a per-level one-hot feature (4 x 256 = 1024-d); z_cf = item embeddings of a 32-d SASRec
trained here (also the in-process baseline every row is compared with). Per preset: fit the tokenizer,
report ID quality, train the multi-task T5 (validation NDCG@10 on a fixed user sample picks the epoch),
and score test with full ranking, constrained beam 20. Prints markdown rows for benchmarks/RESULTS.md.

    python benchmarks/bench_musicrec.py --presets tiger,letter,musicrec --out /tmp/bench_musicrec
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from semid.data.amazon import load_amazon_lcrec
from semid.data.split import leave_one_out
from semid.eval.evaluator import evaluate
from semid.models.musicrec_gen import MusicRecGenConfig, MusicRecGenerator, _subset
from semid.models.sasrec import SASRec, SASRecConfig
from semid.models.t5rec import T5RecConfig
from semid.tokenizers.presets import preset
from semid.train.loop import TrainConfig

PUBLISHED = {  # MusicRec Table 2, Instruments: HR@5, HR@10, NDCG@5, NDCG@10
    "sasrec": (0.0946, 0.1233, 0.0654, 0.0746),
    "tiger": (0.1007, 0.1221, 0.0882, 0.0950),
    "letter": (0.1045, 0.1271, 0.0913, 0.0986),
    "musicrec": (0.1257, 0.1472, 0.0993, 0.1071),
}
METRICS = ("HR@5", "HR@10", "NDCG@5", "NDCG@10", "MRR")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="../shared/data/amazon-mql4grec/Instruments")
    ap.add_argument("--presets", default="tiger,letter,musicrec")
    ap.add_argument("--out", default="/tmp/bench_musicrec")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sasrec-epochs", type=int, default=20)
    ap.add_argument("--tok-epochs", type=int, default=100)
    ap.add_argument("--tok-lr", type=float, default=3e-3)
    ap.add_argument(
        "--tok-hidden", default="256,128", help="encoder widths between input and the 32-d latent"
    )
    ap.add_argument("--tok-reseed", type=int, default=1, help="re-seed dead codes every N epochs")
    ap.add_argument("--gen-epochs", type=int, default=3)
    ap.add_argument(
        "--max-targets", type=int, default=1, help="next-item examples per train sequence (0 = all)"
    )
    ap.add_argument("--valid-users", type=int, default=500)
    ap.add_argument("--test-users", type=int, default=0, help="0 = every test user")
    ap.add_argument("--d-model", type=int, default=64, help="T5 width (T5-small: 512); d_ff = 4x, 4 heads")
    ap.add_argument("--max-history", type=int, default=10, help="history items fed to the T5 encoder")
    ap.add_argument("--stage", choices=("tok", "all"), default="all")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    ds = load_amazon_lcrec(args.data)
    split = leave_one_out(ds.interactions, max_history=50)
    cat = ds.catalog
    test = _subset(split.test, args.test_users, 0)
    results: dict[str, dict] = {}

    # -- SASRec z_cf (32-d) and the in-process baseline -----------------------------------------------
    cf_path = out / "sasrec_cf.npy"
    if cf_path.exists():
        cat.embeddings["cf"] = np.load(cf_path)
        results["sasrec"] = json.loads((out / "sasrec.json").read_text())
    else:
        t0 = time.perf_counter()
        sas = SASRec(
            config=SASRecConfig(hidden=32), train=TrainConfig(epochs=args.sasrec_epochs, progress=False)
        )
        sas.fit(split.train, cat, split.valid)
        res = evaluate(sas, test, ks=(5, 10, 20), progress=False)
        res["seconds"] = time.perf_counter() - t0
        cat.embeddings["cf"] = sas.item_embeddings()
        np.save(cf_path, cat.embeddings["cf"])
        (out / "sasrec.json").write_text(json.dumps(res))
        results["sasrec"] = res
    print("sasrec", {k: round(results["sasrec"][k], 4) for k in METRICS}, flush=True)

    for name in args.presets.split(","):
        t0 = time.perf_counter()
        p = preset(
            name,
            text="lemb",
            image="vitemb",
            cf="cf",
            epochs=args.tok_epochs,
            lr=args.tok_lr,
            hidden=tuple(int(h) for h in args.tok_hidden.split(",")),
            reseed_every=args.tok_reseed,
        )
        tok_dir = out / name / "tokenizer"
        if (tok_dir / "ids" / "codes.npy").exists():  # reuse a tokenizer fitted by an earlier --stage tok run
            tok = type(p.tokenizer).load(tok_dir)
        else:
            tok = p.tokenizer.fit(cat)
            tok.save(tok_dir)
        t_tok = time.perf_counter() - t0
        rep = tok.report_
        ids = {
            "conflict_rate": rep["conflict_rate"],
            "n_levels_final": rep["n_levels_final"],
            "util": [round(u, 3) for u in rep["codebook_utilization"]],
            "tok_seconds": round(t_tok, 1),
            "dead_reseeded": rep.get("n_dead_codes_reseeded"),
            "final_losses": rep.get("final_losses"),
            "entropy": [round(e, 2) for e in rep["entropy_bits"]],
        }
        if "image" in rep:
            ids |= {
                "conflict_rate_image": rep["image"]["conflict_rate"],
                "conflict_rate_joint": rep["joint"]["conflict_rate"],
            }
        print(name, "ids", json.dumps(ids), flush=True)
        res: dict = {"ids": ids}
        if args.stage == "all":
            t1 = time.perf_counter()
            gen = MusicRecGenerator.from_tokenizer(
                tok,
                tasks=p.tasks,
                config=MusicRecGenConfig(
                    max_targets_per_user=args.max_targets,
                    t5=T5RecConfig(
                        d_model=args.d_model,
                        d_ff=4 * args.d_model,
                        num_heads=4,
                        d_kv=args.d_model // 4,
                        max_history=args.max_history,
                        valid_users=args.valid_users,
                        eval_batch_size=128,
                    ),
                ),
                train=TrainConfig(
                    epochs=args.gen_epochs,
                    batch_size=256,
                    lr=2e-3,
                    warmup_steps=10,
                    progress=False,
                    patience=0,
                ),
            )
            gen.fit(split.train, cat, split.valid)
            t_fit = time.perf_counter() - t1
            t2 = time.perf_counter()
            res |= evaluate(gen, test, ks=(5, 10, 20), batch_size=128, progress=False)
            res |= {
                "fit_seconds": round(t_fit, 1),
                "test_seconds": round(time.perf_counter() - t2, 1),
                "best_epoch": gen.result_.best_epoch,
                "history": gen.result_.history,
            }
            print(
                name,
                {k: round(res[k], 4) for k in METRICS},
                "best epoch",
                gen.result_.best_epoch,
                f"fit {t_fit:.0f}s",
                flush=True,
            )
        results[name] = res
        (out / f"{name}.json").write_text(json.dumps(res, default=float))

    base = results["sasrec"]
    print(
        "\n| method | NDCG@10 / SASRec(same run) | HR@5 | HR@10 | NDCG@5 | NDCG@10 | published HR@5/HR@10/N@5/N@10 |"
    )
    for name, res in results.items():
        if "NDCG@10" not in res:
            continue
        ratio = res["NDCG@10"] / max(base["NDCG@10"], 1e-12)
        pub = PUBLISHED.get(name, ("—",) * 4)
        print(
            f"| {name} | {ratio:.2f} | "
            + " | ".join(f"{res[k]:.4f}" for k in METRICS[:4])
            + " | "
            + "/".join(str(v) for v in pub)
            + " |"
        )


if __name__ == "__main__":
    main()
