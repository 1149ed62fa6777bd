"""Rebuild a finished run from its directory: config, data split, tokenizer and selected model.

Used by ``semid evaluate`` (re-scores the checkpoint) and ``semid serve``. The run's ``manifest.json``
is checked first (``semid.manifest``: a corrupt or edited artifact is an error naming it), then the
tokenizer and the recommender are rebuilt with their own ``load`` (``Recommender.load(run_dir/model)``).
Nothing is retrained, except in runs saved before recommenders had ``save`` / ``load``: their weights
are loaded into a freshly built model, and MostPopular / item2vec-kNN (counts, seeded one-thread
item2vec) are refitted, which is exact.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path

from semid.config import from_dict
from semid.data.types import Dataset, Split
from semid.errors import CheckpointError
from semid.io import read_json
from semid.manifest import verify_manifest
from semid.models.protocol import MODEL_META
from semid.pipeline.config import RunConfig, model_kind
from semid.pipeline.runner import UNTRAINED_MODELS, build_model, build_tokenizer, model_train, prepare_data

log = logging.getLogger(__name__)


@dataclass
class LoadedRun:
    config: RunConfig
    dataset: Dataset
    split: Split
    tokenizer: object | None
    model: object


CHECKPOINTS = ("final", "best")


def load_run(run_dir: str | Path, *, device: str = "cpu", checkpoint: str = "final") -> LoadedRun:
    """``checkpoint``: ``final`` = the model a finished run selected and saved (``model/``);
    ``best`` = the best-validation weights saved so far in ``model/ckpt/best.safetensors``, which also exist
    while a run is still training or after it was interrupted (score a long run without waiting for it)."""
    if checkpoint not in CHECKPOINTS:
        raise CheckpointError(f"checkpoint must be one of {CHECKPOINTS}, got {checkpoint!r}")
    run_dir = Path(run_dir).resolve()
    cfg_path = run_dir / "config.json"
    if not cfg_path.is_file():
        raise CheckpointError(f"{run_dir}: no config.json; is this a semid run directory?")
    verify_manifest(run_dir)
    try:
        cfg = from_dict(RunConfig, upgrade_config(read_json(cfg_path)))
    except Exception as e:
        raise CheckpointError(f"{cfg_path}: not a valid RunConfig ({e})") from None
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, device=device, resume=False))
    ds, split = prepare_data(cfg)
    tokenizer, tasks = build_tokenizer(cfg)
    if tokenizer is not None:
        tok_dir = run_dir / "tokenizer"
        if not (tok_dir / "ids" / "codes.npy").is_file():
            raise CheckpointError(f"{tok_dir}: tokenizer artifacts missing; re-run `semid run` for this config")
        tokenizer = type(tokenizer).load(tok_dir)
    model_dir = run_dir / "model"
    weights = None
    if checkpoint == "best" and model_kind(cfg) not in UNTRAINED_MODELS:
        ckpt = model_dir / "ckpt"
        weights = next((p for p in (ckpt / "best.safetensors", ckpt / "best.pt") if p.is_file()), None)
        if weights is None:
            raise CheckpointError(f"{ckpt / 'best.safetensors'}: missing; no validation has finished yet in this run")
    built = build_model(cfg, tokenizer, tasks, model_dir)
    if (model_dir / MODEL_META).is_file():
        model = type(built).load(model_dir, device=device, weights=weights)
    elif checkpoint == "final" and (model_dir / "ckpt").is_dir() and model_kind(cfg) not in UNTRAINED_MODELS \
            and not (model_dir / "final.safetensors").is_file():
        raise CheckpointError(
            f"{model_dir / MODEL_META}: missing; the run did not finish (resume it with `semid run --resume`, "
            "or score its best weights so far with `semid evaluate --checkpoint best`)"
        )
    else:
        model = _load_legacy(built, cfg, ds, split, model_dir, weights, device)
    return LoadedRun(cfg, ds, split, tokenizer, model)


def upgrade_config(raw: dict) -> dict:
    """Fill fields whose default changed since a run was saved, with the value that run actually used.

    ``gpt2.objective`` appeared when the default became ``sequence``; runs saved before it trained (and
    must be prompted) with ``next``. Silently taking the new default would decode with the wrong prompt.
    """
    gpt2 = raw.get("gpt2")
    if isinstance(gpt2, dict) and "objective" not in gpt2:
        raw = {**raw, "gpt2": {**gpt2, "objective": "next"}}
    from semid.pipeline.overrides import upgrade_legacy

    return upgrade_legacy(raw)  # one section per component -> the tagged tokenizer / model sections


def _load_legacy(model, cfg: RunConfig, ds: Dataset, split: Split, model_dir: Path, weights: Path | None,
                 device: str):
    """Runs saved before ``Recommender.save``: ``model/final.safetensors`` (or a best checkpoint) holds only
    the network's weights, loaded into ``model`` built from the run config; count-based models are refitted."""
    from semid.models.protocol import load_weights

    log.warning("%s was saved before recommenders had save/load; loading its weights into a rebuilt model", model_dir)
    if model_kind(cfg) in UNTRAINED_MODELS:
        return model.fit(model_train(cfg, split.train), ds.catalog, None)
    if model_kind(cfg) == "musicrec_gen":  # saved before the generator took T5Rec's '<bos>|<task> codes' inputs
        raise CheckpointError(
            f"{model_dir}: a MusicRec generator saved by an earlier semid (its encoder inputs were "
            "'<task> codes.. <eos>'); its weights would decode wrongly. Train it again: "
            f"`semid run --config {model_dir.parent / 'config.json'} --run-dir NEW_DIR`"
        )
    if hasattr(model, "init_model"):  # GPT2Rec / T5Rec / GRU4Rec
        model.init_model(ds.catalog, split.train)
    else:  # SASRec
        from semid.models.sasrec import SASRecNet

        model.n_items_ = ds.catalog.n_items
        model.net_ = SASRecNet(ds.catalog.n_items, model.config)
    module = model.model_ if getattr(model, "model_", None) is not None else model.net_
    path = weights if weights is not None else model_dir / "final.safetensors"
    if not path.is_file():
        raise CheckpointError(
            f"{path}: missing; the run did not finish (resume it with `semid run --resume`, or score its best "
            "weights so far with `semid evaluate --checkpoint best`)"
        )
    load_weights(module, path, device=device, config_path=model_dir.parent / "config.json")
    module.to(device).eval()
    return model
