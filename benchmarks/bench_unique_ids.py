"""Where a finished FusID run's raw conflicts come from, and what each way of making IDs unique costs.

For each run directory (``semid run`` with ``tokenizer=fusid``): reloads the tokenizer and the run's data,
rebuilds the fusion-net inputs (from the encoder cache), and prints
  - raw conflict rate split into items with identical inputs (no quantizer can separate them) and items
    sharing a code with a *different* input (the quantizer's own conflicts);
  - "digit" resolution (baseline: one extra token for every item) vs "reassign" (``fusid.pq.resolve``:
    colliding items move to their cheapest free tuple, n positions kept): items changed, ID length,
    added squared quantization error of the moved items relative to their nearest-centroid error, and time.

    python benchmarks/bench_unique_ids.py runs/lcrec-ins runs/lcrec-games
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from semid.config import from_dict
from semid.io import read_json
from semid.pipeline.config import RunConfig, tokenizer_kind
from semid.pipeline.restore import upgrade_config
from semid.pipeline.runner import prepare_data
from semid.quantize.unique import reassign_conflicts
from semid.tokenizers.fusid import FusID
from semid.tokenizers.ids import input_conflict_report, resolve_collisions


def _sq_err(z: np.ndarray, cents: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Squared quantization error per item: z (N, n, d), cents (n, K, d), codes (N, n) -> (N,)."""
    return sum(((z[:, j] - cents[j][codes[:, j]]) ** 2).sum(1) for j in range(z.shape[1]))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dirs", nargs="+")
    args = ap.parse_args(argv)
    print("| run | items | raw conflict | identical inputs | distinct-input conflicts | digit: changed / len / s "
          "| reassign: moved / len / s | reassign added error (moved items) |")
    print("|---|---|---|---|---|---|---|---|")
    for d in args.run_dirs:
        cfg = from_dict(RunConfig, upgrade_config(read_json(f"{d}/config.json")))
        if tokenizer_kind(cfg) != "fusid":
            sys.exit(f"{d}: tokenizer is {tokenizer_kind(cfg)!r}, not fusid")
        ds, split = prepare_data(cfg)
        tok = FusID.load(f"{d}/tokenizer")
        x, present = tok.inputs(ds.catalog, split.train)
        raw = tok.codes_raw_
        z = tok.embed(x, present)  # (N, n, d) fused sub-embeddings
        np.testing.assert_array_equal(tok.pq_.encode(z), raw)  # inputs rebuilt exactly
        rep = input_conflict_report(raw, np.concatenate([x, present.astype(np.float32)], axis=1))
        t = time.perf_counter()
        dig, n_dig = resolve_collisions(raw)
        t_dig = time.perf_counter() - t
        t = time.perf_counter()
        new, moved = reassign_conflicts(z, tok.pq_.centroids_, raw)
        t_re = time.perf_counter() - t
        if len({tuple(r) for r in new.tolist()}) != len(new):
            sys.exit(f"{d}: reassignment left shared codes")
        e0, e1 = _sq_err(z, tok.pq_.centroids_, raw), _sq_err(z, tok.pq_.centroids_, new)
        added = float((e1[moved] - e0[moved]).sum() / max(e0[moved].sum(), 1e-12)) if moved.any() else 0.0
        n = len(raw)
        print(f"| {d} | {n} | {tok.report_['conflict_rate']:.4f} ({tok.report_['n_conflicting_items']}) "
              f"| {rep['duplicate_input_rate']:.4f} ({rep['n_duplicate_input_items']}) "
              f"| {rep['conflict_rate_distinct_inputs']:.4f} ({rep['n_conflicting_items_distinct_inputs']}) "
              f"| {n_dig} / {dig.shape[1]} / {t_dig:.3f} | {int(moved.sum())} / {new.shape[1]} / {t_re:.3f} "
              f"| +{100 * added:.1f}% |", flush=True)


if __name__ == "__main__":
    main()
