"""Run a whole pipeline from a RunConfig into a run directory.

<run_dir>/config.json          resolved RunConfig (the sections it uses), so the run is reproducible from it
<run_dir>/data.json            dataset statistics and split sizes
<run_dir>/features.json        modality features attached to the catalog
<run_dir>/tokenizer/           tokenizer artifacts (ids/codes.npy, ids/report.json, weights)
<run_dir>/model/               Recommender.save (config.json + weights/counts), trainer checkpoints (ckpt/),
                               train_log.jsonl, train_result.json
<run_dir>/metrics.json         test metrics (+ split, dataset, model); metrics_valid.json likewise
<run_dir>/per_user_test.npz    per-user HR/NDCG/MRR of the test split (per_user_valid.npz), for `semid compare`
<run_dir>/manifest.json        SHA-256 of every file above, written last (semid.manifest)
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
from semid.encoders.feature_spec import upgrade_features
from semid.encoders.features import attach_features
from semid.errors import ConfigError, DataError
from semid.eval.evaluator import evaluate, write_metrics
from semid.io import make_run_dir, read_json, write_json
from semid.manifest import write_manifest
from semid.pipeline.config import MODELS, TOKENIZERS, RunConfig, model_kind, tokenizer_kind
from semid.tokenizers.ids import conflict_summary
from semid.train import distributed
from semid.train.loop import seed_everything

log = logging.getLogger(__name__)
# Models fitted without the trainer (counts, item2vec): their config.json carries no train section.
UNTRAINED_MODELS = ("popular", "item2vec_knn")


def runtime_environment() -> dict:
    """What besides the config decides a run's floats: library versions, device, torch thread count."""
    import platform

    import torch

    import semid
    from semid.threads import runtime_record

    return {"semid": semid.__version__, "torch": torch.__version__, "python": platform.python_version(),
            "torch_threads": torch.get_num_threads(), "cuda": torch.cuda.is_available(),
            **runtime_record()}  # thread count's source and the OpenMP wait policy


def prepare_data(cfg: RunConfig) -> tuple[Dataset, Split]:
    ds = load_dataset(cfg.data.dataset, time_format=cfg.data.time_format, duplicates=cfg.data.duplicates)
    if cfg.data.min_length:
        ds = min_length(ds, cfg.data.min_length)
    if cfg.data.k_core:
        ds = k_core(ds, cfg.data.k_core)
    if cfg.data.split == "loo":
        split = leave_one_out(ds.interactions, max_history=cfg.data.max_history or None)
    elif cfg.data.split == "continuation":
        split = playlist_continuation(ds.interactions, holdout=cfg.data.holdout, frac=cfg.data.holdout_frac,
                                      seed=cfg.seed, min_history=cfg.data.min_history or None)
    else:
        raise ConfigError(f"data.split={cfg.data.split!r}: use 'loo' or 'continuation'")
    if cfg.data.train_tail < 0:
        raise ConfigError(f"data.train_tail={cfg.data.train_tail}: use 0 (all) or a positive item count")
    for part in ("valid", "test"):  # fail before training, not after it with all-zero metrics
        if len(getattr(split, part)) == 0:
            raise DataError(
                f"{cfg.data.dataset}: the {split.name} split has no {part} users ({ds.interactions.n_users} "
                "sequences in all); leave-one-out needs users with at least 3 interactions, continuation "
                "sequences longer than data.holdout and data.holdout_frac > 0; check `semid data check`"
            )
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
    """SASRec as the run's model (hidden=None) or as the z_cf provider (``cfg.cf_sasrec``; ``hidden`` is kept
    for callers and must match it). The z_cf SASRec follows the run's progress and resume flags."""
    from semid.models.sasrec import SASRec

    if hidden is None:
        return SASRec(config=cfg.model, train=cfg.train, run_dir=run_dir)
    cf = cfg.cf_sasrec
    if hidden != cf.sasrec.hidden:
        raise ConfigError(f"z_cf SASRec width {hidden} != cf_sasrec.sasrec.hidden={cf.sasrec.hidden}")
    train = dataclasses.replace(cf.train, progress=cf.train.progress and cfg.train.progress, resume=cfg.train.resume)
    return SASRec(config=cf.sasrec, train=train, run_dir=run_dir)


def cf_sasrec_trainer(cfg: RunConfig, run_dir: Path | None, valid):
    """``sasrec_fn(train, catalog) -> [n_items, d]`` for ``attach_features``: fits ``cfg.cf_sasrec`` on the
    train split (early stopping on ``valid``) and returns its item embeddings (z_cf)."""

    def sasrec_fn(train, catalog):
        m = _sasrec(cfg, cfg.cf_sasrec.sasrec.hidden, run_dir).fit(train, catalog, valid)
        return m.item_embeddings()

    return sasrec_fn


def build_features(cfg: RunConfig, ds: Dataset, split: Split, run_dir: Path | None) -> dict:
    """Attach ``cfg.features`` to ``ds.catalog`` (collaborative ones trained on the train split only; the z_cf
    SASRec's checkpoints under ``run_dir/cf_sasrec``); the one feature path of ``semid run`` and ``tokenize``."""
    cf_dir = None if run_dir is None else Path(run_dir) / "cf_sasrec"
    return attach_features(cfg.features, ds.catalog, split.train, dataset=ds.name,
                           sasrec_fn=cf_sasrec_trainer(cfg, cf_dir, split.valid))


def uses_cf_sasrec(cfg: RunConfig) -> bool:
    """Whether a feature spec trains the z_cf SASRec (``name=sasrec``)."""
    from semid.encoders.feature_spec import SASRecFeature

    return any(isinstance(spec, SASRecFeature) for spec in cfg.features)


def check_modalities(cfg: RunConfig, catalog) -> None:
    """Fail before fitting when the tokenizer quantises a modality (or aligns to a z_cf) that neither
    ``cfg.features`` nor the dataset provides, naming the missing keys and the fix."""
    c = cfg.tokenizer
    needed = [getattr(c, f) for f in ("modality", "text_modality", "image_modality") if hasattr(c, f)]
    if getattr(c, "alpha", 0) > 0 or getattr(c, "beta", 0) > 0:
        needed.append(c.cf_embedding)
    have = set(catalog.embeddings) | set(catalog.codes)
    missing = [m for m in needed if m not in have]
    if missing:
        raise ConfigError(
            f"tokenizer {tokenizer_kind(cfg)} needs catalog modalities {missing}, which neither the dataset nor "
            f"--features={[f.name for f in cfg.features]} provides (have {sorted(have)}); add feature specs, e.g. "
            "--features='[\"text=text:title\", \"cf=sasrec\"]', or point the tokenizer at an existing modality"
        )


def build_tokenizer(cfg: RunConfig):
    """(unfitted tokenizer or None, the model's generation tasks or None) for ``cfg.tokenizer``."""
    c, kind = cfg.tokenizer, tokenizer_kind(cfg)
    tasks = tuple(cfg.model.tasks) if model_kind(cfg) == "musicrec_gen" else None
    if kind == "none":
        return None, tasks
    if kind == "fusid":
        from semid.tokenizers.fusid import FusID

        return FusID(config=c), tasks
    if kind == "rqvae":
        from semid.tokenizers.rqvae import RQVAETokenizer

        return RQVAETokenizer(config=c), tasks
    if kind == "musicrec":
        from semid.tokenizers.musicrec import MusicRecTokenizer

        return MusicRecTokenizer(config=c), tasks
    if kind == "rqkmeans":
        from semid.tokenizers.rqkmeans import RQKMeansTokenizer

        return RQKMeansTokenizer(config=c), tasks
    if kind == "precomputed":
        from semid.tokenizers.precomputed import PrecomputedTokenizer

        if not c.source:
            raise ConfigError("tokenizer=precomputed needs --precomputed.source=<catalog code name or file>")
        return PrecomputedTokenizer(source=c.source), tasks
    if kind == "random":
        from semid.tokenizers.random_ids import RandomIDsTokenizer

        return RandomIDsTokenizer(config=c), tasks
    raise ConfigError(f"tokenizer {kind!r} has no builder; valid: {TOKENIZERS}")


def build_model(cfg: RunConfig, tokenizer, tasks=None, run_dir: Path | None = None):
    """The unfitted recommender of ``cfg.model`` (``tasks``: the generation tasks ``build_tokenizer`` returned;
    they are the model config's own, so None means the same)."""
    c, name = cfg.model, model_kind(cfg)
    if name == "popular":
        from semid.models.popular import MostPopular

        return MostPopular(exclude_history=c.exclude_history)
    if name == "sasrec":
        return _sasrec(cfg, None, run_dir)
    if name == "gru4rec":
        from semid.models.gru4rec import GRU4Rec

        return GRU4Rec(config=c, train=cfg.train, run_dir=run_dir)
    if name == "item2vec_knn":
        from semid.models.item2vec_knn import Item2VecKNN

        return Item2VecKNN(config=c)
    if tokenizer is None:
        raise ConfigError(f"model {name!r} generates semantic IDs: set --tokenizer (fusid, rqvae, musicrec, ...)")
    if name == "gpt2":
        from semid.models.gpt2rec import GPT2Rec

        return GPT2Rec(tokenizer=tokenizer, config=c, train=cfg.train, run_dir=run_dir)
    if name == "t5":
        from semid.models.t5rec import T5Rec

        return T5Rec(tokenizer=tokenizer, config=c, train=cfg.train, run_dir=run_dir)
    if name == "musicrec_gen":
        from semid.models.musicrec_gen import MusicRecGenerator

        tasks = tuple(c.tasks) if tasks is None else tuple(tasks)
        return MusicRecGenerator.from_tokenizer(tokenizer, tasks=tasks, config=c, train=cfg.train, run_dir=run_dir)
    raise ConfigError(f"model {name!r} has no builder; valid: {MODELS}")


def stored_config(cfg: RunConfig) -> dict:
    """The JSON dict a run writes as ``config.json`` for ``cfg``: exactly the sections it uses (no z_cf
    SASRec without a ``sasrec`` feature, no trainer for MostPopular / item2vec-kNN) and never the resume
    flag, so a resumed run's config.json equals the original's; compare against it to tell whether a run
    directory was made by this config."""
    d = to_dict(dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, resume=False)))
    if not uses_cf_sasrec(cfg):
        del d["cf_sasrec"]
    if model_kind(cfg) in UNTRAINED_MODELS:
        del d["train"]
    return json.loads(json.dumps(d))


def fit_tokenizer(tokenizer, catalog, train) -> None:
    """``tokenizer.fit(catalog, train)`` on every torchrun rank: FusID, RQ-VAE (TIGER / LETTER), MusicRec and
    RQ-KMeans fit data-parallel over the ranks, other tokenizers on every rank alone (deterministic); either
    way the codes are checked equal on every rank before anyone writes them."""
    with distributed.local(enabled=not getattr(tokenizer, "data_parallel", False)):
        tokenizer.fit(catalog, train)
    distributed.check_same(getattr(tokenizer, "codes_", None), "tokenizer codes")


def run(cfg: RunConfig, run_dir: str | Path, *, resume: bool = False, overwrite: bool = False,
        console=None) -> dict:
    """Execute the pipeline; returns {"valid": metrics, "test": metrics, "tokenizer": report | None}."""
    if distributed.follows():  # torchrun rank > 0: same computation, rank 0 alone writes run_dir
        return distributed.follow(run, cfg, resume=resume)
    run_dir = make_run_dir(run_dir, overwrite=overwrite, resume=resume)
    resolved = stored_config(cfg)
    prev = run_dir / "config.json"
    # a run recorded before the typed feature specs stored them as strings: compare their typed form
    diff = differences(upgrade_features(read_json(prev)), resolved) if resume and prev.exists() else []
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

    feats = build_features(cfg, ds, split, run_dir)
    write_json(run_dir / "features.json", feats)

    tokenizer, tasks = build_tokenizer(cfg)
    report, tokenizer_s = None, 0.0  # 0.0: no tokenizer, or restored by --resume
    if tokenizer is not None:
        check_modalities(cfg, ds.catalog)
        tok_dir = run_dir / "tokenizer"
        # Rank 0 decides and its saved tokenizer goes to every rank: the others follow with resume off, and a
        # data-parallel fit on them alone would wait forever in its first collective.
        if distributed.broadcast_object(resume and (tok_dir / "ids" / "codes.npy").exists()):
            tokenizer = distributed.broadcast_object(type(tokenizer).load(tok_dir) if distributed.is_main() else None)
            distributed.check_same(getattr(tokenizer, "codes_", None), "tokenizer codes")
        else:
            t1 = time.perf_counter()
            fit_tokenizer(tokenizer, ds.catalog, split.train)
            tokenizer.save(tok_dir)
            tokenizer_s = time.perf_counter() - t1
            say(f"[bold]tokenizer[/] {tokenizer.name}: {tokenizer_s:.1f}s")
        report = tokenizer.report_
        say(f"  {conflict_summary(report)}, utilisation "
            f"{[round(u, 3) for u in report['codebook_utilization']]}")

    model = build_model(cfg, tokenizer, tasks, run_dir / "model")
    t2 = time.perf_counter()
    model.fit(model_train(cfg, split.train), ds.catalog, split.valid)
    train_s = time.perf_counter() - t2
    model.save(run_dir / "model")  # Recommender.save; pipeline.restore.load_run reads it back
    out = {"tokenizer": report, "tokenizer_seconds": tokenizer_s, "train_seconds": train_s}
    for which, es in (("valid", split.valid), ("test", split.test)):
        if which == "valid" and not cfg.eval_valid:
            continue  # the checkpoint was still chosen on (sampled) validation during training
        m = evaluate(model, es, batch_size=cfg.eval_batch_size, n_items=ds.catalog.n_items,
                     per_user_out=run_dir / f"per_user_{which}.npz")  # for `semid compare`
        out[which] = m
        if which == "test":
            write_metrics(run_dir, m, split=which, dataset=ds.name, model=cfg.name)
        else:
            write_json(run_dir / "metrics_valid.json", {"split": which, "dataset": ds.name, "model": cfg.name, **m})
    from semid.models.popular import MostPopular

    if cfg.baseline_popular and not isinstance(model, MostPopular):
        pop = MostPopular().fit(split.train, ds.catalog)
        out["popular"] = evaluate(pop, split.test, batch_size=cfg.eval_batch_size, n_items=ds.catalog.n_items)
        write_json(run_dir / "metrics_popular.json", {"split": "test", "dataset": ds.name, "model": "popular",
                                                      **out["popular"]})
    out["total_seconds"] = time.perf_counter() - t0
    # Float reduction order depends on the intra-op thread count, so IDs and metrics of one seed differ
    # between thread counts; the summary records what this run used.
    out["environment"] = runtime_environment()
    write_json(run_dir / "summary.json", {"name": cfg.name, "dataset": ds.name, **out})
    write_manifest(run_dir)  # last: SHA-256 of every artifact, checked by `semid evaluate` / `semid serve`
    log.info("run %s done in %.1fs", cfg.name, out["total_seconds"])
    return out


def fmt_metrics_row(m: dict) -> list[str]:
    return [f"{m[k]:.4f}" for k in ("HR@5", "HR@10", "NDCG@5", "NDCG@10", "MRR")]


def summarize(results: dict[str, dict]) -> list[list[str]]:
    """Table rows: each run's test metrics, then MostPopular of the same run when it was scored."""
    rows = []
    for name, r in results.items():
        rows.append([name, *fmt_metrics_row(r["test"]), str(int(r["test"]["n_eval_users"]))])
        if "popular" in r:
            p = r["popular"]
            rows.append(["MostPopular (same run)", *fmt_metrics_row(p), str(int(p["n_eval_users"]))])
    return rows


__all__ = ["run", "prepare_data", "build_tokenizer", "build_model", "summarize"]
