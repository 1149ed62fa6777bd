"""Run a whole pipeline from a RunConfig into a run directory.

<run_dir>/config.json          resolved RunConfig (every field), so the run is reproducible from it
<run_dir>/data.json            dataset statistics and split sizes
<run_dir>/features.json        modality features attached to the catalog
<run_dir>/tokenizer/           tokenizer artifacts (ids/codes.npy, ids/report.json, weights)
<run_dir>/model/               trainer checkpoints (ckpt/), train_log.jsonl, train_result.json
<run_dir>/metrics.json         test metrics (+ split, dataset, model); metrics_valid.json likewise
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path

from semid.config import differences, to_dict
from semid.data import dataset_stats, k_core, leave_one_out, load_dataset, min_length, playlist_continuation
from semid.data.types import Dataset, Interactions, Split
from semid.errors import ConfigError
from semid.eval.evaluator import evaluate, write_metrics
from semid.io import make_run_dir, read_json, write_json
from semid.pipeline.config import MODELS, TOKENIZERS, RunConfig
from semid.pipeline.features import attach_features
from semid.tokenizers.ids import conflict_summary
from semid.train.loop import TrainConfig, seed_everything

log = logging.getLogger(__name__)


def _reseed(cfg: RunConfig) -> RunConfig:
    """Propagate the run seed and device into every component config that has such fields."""
    changes = {}
    for f in dataclasses.fields(cfg):
        sub = getattr(cfg, f.name)
        if dataclasses.is_dataclass(sub):
            names = {x.name for x in dataclasses.fields(sub)}
            upd = {}
            if "seed" in names:
                upd["seed"] = cfg.seed
            if "device" in names and f.name == "train":
                upd["device"] = cfg.device
            if "training" in names:  # FusID keeps its optimiser settings in a nested TrainConfig
                upd["training"] = dataclasses.replace(sub.training, seed=cfg.seed)
            if upd:
                changes[f.name] = dataclasses.replace(sub, **upd)
    return dataclasses.replace(cfg, **changes)


def runtime_environment() -> dict:
    """What besides the config decides a run's floats: library versions, device, torch thread count."""
    import platform

    import torch

    import semid

    return {"semid": semid.__version__, "torch": torch.__version__, "python": platform.python_version(),
            "torch_threads": torch.get_num_threads(), "cuda": torch.cuda.is_available()}


def prepare_data(cfg: RunConfig) -> tuple[Dataset, Split]:
    ds = load_dataset(cfg.data.dataset)
    if cfg.data.min_length:
        ds = min_length(ds, cfg.data.min_length)
    if cfg.data.k_core:
        ds = k_core(ds, cfg.data.k_core)
    if cfg.data.split == "loo":
        split = leave_one_out(ds.interactions, max_history=cfg.data.max_history or None)
    elif cfg.data.split == "continuation":
        split = playlist_continuation(ds.interactions, holdout=cfg.data.holdout, frac=cfg.data.holdout_frac,
                                      seed=cfg.seed)
    else:
        raise ConfigError(f"data.split={cfg.data.split!r}: use 'loo' or 'continuation'")
    if cfg.data.train_tail < 0:
        raise ConfigError(f"data.train_tail={cfg.data.train_tail}: use 0 (all) or a positive item count")
    return ds, split


def model_train(cfg: RunConfig, train: Interactions) -> Interactions:
    """The sequences the recommender fits on: each user's last ``data.train_tail`` train items (0 = all).

    Features and tokenizers always see the whole train split; only the sequence model is bounded.
    """
    if not cfg.data.train_tail:
        return train
    tail = [s[-cfg.data.train_tail:] for s in train.to_lists()]
    return Interactions.from_lists(tail, user_ids=train.user_ids)


def _sasrec(cfg: RunConfig, hidden: int | None, run_dir: Path | None):
    """SASRec as the run's model (hidden=None) or as the z_cf provider (its own width and epochs)."""
    from semid.models.sasrec import SASRec

    if hidden is None:
        return SASRec(config=cfg.sasrec, train=cfg.train, run_dir=run_dir)
    # TrainConfig defaults (lr 1e-3, patience 5) with its own epoch budget; seed/device/resume from the run
    t = cfg.train
    train = TrainConfig(epochs=cfg.sasrec_cf_epochs, seed=t.seed, device=t.device, bf16=t.bf16, progress=t.progress,
                        resume=t.resume)
    return SASRec(config=dataclasses.replace(cfg.sasrec, hidden=hidden), train=train, run_dir=run_dir)


def build_tokenizer(cfg: RunConfig):
    """(tokenizer or None, generation tasks or None) for cfg.tokenizer / cfg.tokenizer_preset."""
    if cfg.tokenizer_preset:
        from semid.tokenizers.presets import preset

        p = preset(cfg.tokenizer_preset, text=cfg.musicrec.text_modality, image=cfg.musicrec.image_modality,
                   cf=cfg.musicrec.cf_embedding)
        base = cfg.rqvae if p.tokenizer.config.__class__ is cfg.rqvae.__class__ else cfg.musicrec
        # The preset fixes the structure (levels, alpha, modality); the run's config supplies the budget.
        keep = {"epochs", "batch_size", "lr", "weight_decay", "seed", "hidden", "latent_dim", "n_codes", "tau",
                "reseed_every", "code_level_decay", "diversity_groups", "diversity_tau"}
        upd = {k: getattr(base, k) for k in keep if hasattr(p.tokenizer.config, k)}
        p.tokenizer.config = dataclasses.replace(p.tokenizer.config, **upd)
        return p.tokenizer, p.tasks
    name = cfg.tokenizer
    if name == "none":
        return None, None
    if name == "fusid":
        from semid.tokenizers.fusid import FusID

        return FusID(config=cfg.fusid), None
    if name == "rqvae":
        from semid.tokenizers.rqvae import RQVAETokenizer

        return RQVAETokenizer(config=cfg.rqvae), None
    if name == "musicrec":
        from semid.tokenizers.musicrec import MusicRecTokenizer

        return MusicRecTokenizer(config=cfg.musicrec), None
    if name == "precomputed":
        from semid.tokenizers.precomputed import PrecomputedTokenizer

        if not cfg.precomputed:
            raise ConfigError("tokenizer=precomputed needs --precomputed=<catalog code name or file>")
        return PrecomputedTokenizer(source=cfg.precomputed), None
    raise ConfigError(f"unknown tokenizer {name!r}; valid: {TOKENIZERS}")


def build_model(cfg: RunConfig, tokenizer, tasks, run_dir: Path):
    name = cfg.model
    if name == "popular":
        from semid.models.popular import MostPopular

        return MostPopular()
    if name == "sasrec":
        return _sasrec(cfg, None, run_dir)
    if tokenizer is None:
        raise ConfigError(f"model {name!r} generates semantic IDs: set --tokenizer (fusid, rqvae, musicrec, ...)")
    if name == "gpt2":
        from semid.models.gpt2rec import GPT2Rec

        return GPT2Rec(tokenizer=tokenizer, config=cfg.gpt2, train=cfg.train, run_dir=run_dir)
    if name == "t5":
        from semid.models.t5rec import T5Rec

        return T5Rec(tokenizer=tokenizer, config=cfg.t5, train=cfg.train, run_dir=run_dir)
    if name == "musicrec_gen":
        from semid.models.musicrec_gen import MusicRecGenerator

        if hasattr(tokenizer, "text_codes_"):
            spaces = {"text": tokenizer.text_codes_, "image": tokenizer.image_codes_}
        else:
            space = "image" if tasks and all("image" in t for t in tasks) else "text"
            spaces = {space: tokenizer.codes_}
        gen_cfg = cfg.musicrec_gen if tasks is None else dataclasses.replace(cfg.musicrec_gen, tasks=tuple(tasks))
        return MusicRecGenerator(spaces=spaces, config=gen_cfg, train=cfg.train, run_dir=run_dir)
    raise ConfigError(f"unknown model {name!r}; valid: {MODELS}")


def torch_module(model):
    """The nn.Module inside a fitted recommender (None for count-based models)."""
    for attr in ("model_", "net_"):
        m = getattr(model, attr, None)
        if m is not None:
            return m
    return None


def save_model_weights(model, directory: Path) -> None:
    """``<directory>/final.safetensors``: the selected (best-validation) weights, restored by ``load_run``."""
    from safetensors.torch import save_model

    from semid.io import atomic_write

    module = torch_module(model)
    if module is not None:
        atomic_write(directory / "final.safetensors", lambda p: save_model(module, str(p)))


def stored_config(cfg: RunConfig) -> dict:
    """The JSON dict a run writes as ``config.json`` for ``cfg`` (seeds resolved). It never carries the
    resume flag, so a resumed run's config.json equals the original's; compare against it to tell whether a
    run directory was made by this config."""
    cfg = _reseed(cfg)
    return json.loads(json.dumps(to_dict(dataclasses.replace(cfg, train=dataclasses.replace(cfg.train,
                                                                                          resume=False)))))


def run(cfg: RunConfig, run_dir: str | Path, *, resume: bool = False, overwrite: bool = False,
        console=None) -> dict:
    """Execute the pipeline; returns {"valid": metrics, "test": metrics, "tokenizer": report | None}."""
    run_dir = make_run_dir(run_dir, overwrite=overwrite, resume=resume)
    resolved = stored_config(cfg)
    cfg = _reseed(cfg)
    prev = run_dir / "config.json"
    diff = differences(read_json(prev), resolved) if resume and prev.exists() else []
    if diff:
        raise ConfigError(f"{prev}: --resume with a different config ({'; '.join(diff[:5])}); "
                          "start a new --run-dir instead")
    if resume:
        cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, resume=True))
    write_json(prev, resolved)
    say = console.print if console is not None else (lambda *a, **k: None)
    seed_everything(cfg.seed)
    t0 = time.perf_counter()

    ds, split = prepare_data(cfg)
    stats = dataset_stats(ds)
    stats.update(split=split.name, n_train_sequences=split.train.n_users, n_valid=len(split.valid),
                 n_test=len(split.test))
    write_json(run_dir / "data.json", stats)
    say(f"[bold]data[/] {ds.name}: {stats.get('users')} users, {stats.get('items')} items, "
        f"{stats.get('interactions')} interactions; split {split.name}")

    def sasrec_cf(train, catalog):
        m = _sasrec(cfg, cfg.sasrec_cf_dim, run_dir / "cf_sasrec").fit(train, catalog, split.valid)
        return m.item_embeddings()

    feats = attach_features(ds.catalog, split.train, cfg.features, dataset=ds.name, seed=cfg.seed,
                            sasrec_fn=sasrec_cf)
    write_json(run_dir / "features.json", feats)

    tokenizer, tasks = build_tokenizer(cfg)
    report = None
    if tokenizer is not None:
        tok_dir = run_dir / "tokenizer"
        if resume and (tok_dir / "ids" / "codes.npy").exists():
            tokenizer = type(tokenizer).load(tok_dir)
        else:
            t1 = time.perf_counter()
            tokenizer.fit(ds.catalog, split.train)
            tokenizer.save(tok_dir)
            say(f"[bold]tokenizer[/] {tokenizer.name}: {time.perf_counter() - t1:.1f}s")
        report = tokenizer.report_
        say(f"  {conflict_summary(report)}, utilisation "
            f"{[round(u, 3) for u in report['codebook_utilization']]}")

    model = build_model(cfg, tokenizer, tasks, run_dir / "model")
    t2 = time.perf_counter()
    model.fit(model_train(cfg, split.train), ds.catalog, split.valid)
    train_s = time.perf_counter() - t2
    save_model_weights(model, run_dir / "model")
    out = {"tokenizer": report, "train_seconds": train_s}
    for which, es in (("valid", split.valid), ("test", split.test)):
        if which == "valid" and not cfg.eval_valid:
            continue  # the checkpoint was still chosen on (sampled) validation during training
        m = evaluate(model, es, batch_size=cfg.eval_batch_size, n_items=ds.catalog.n_items)
        out[which] = m
        if which == "test":
            write_metrics(run_dir, m, split=which, dataset=ds.name, model=cfg.name)
        else:
            write_json(run_dir / "metrics_valid.json", {"split": which, "dataset": ds.name, "model": cfg.name, **m})
    out["total_seconds"] = time.perf_counter() - t0
    # Float reduction order depends on the intra-op thread count, so IDs and metrics of one seed differ
    # between thread counts; the summary records what this run used.
    out["environment"] = runtime_environment()
    write_json(run_dir / "summary.json", {"name": cfg.name, "dataset": ds.name, **out})
    log.info("run %s done in %.1fs", cfg.name, out["total_seconds"])
    return out


def fmt_metrics_row(m: dict) -> list[str]:
    return [f"{m[k]:.4f}" for k in ("HR@5", "HR@10", "NDCG@5", "NDCG@10", "MRR")]


def summarize(results: dict[str, dict]) -> list[list[str]]:
    rows = []
    for name, r in results.items():
        rows.append([name, *fmt_metrics_row(r["test"]), str(int(r["test"]["n_eval_users"]))])
    return rows


__all__ = ["run", "prepare_data", "build_tokenizer", "build_model", "summarize"]
