"""Rebuild a finished run from its directory: config, data split, tokenizer and selected model weights.

Used by ``semid evaluate`` (re-scores the checkpoint) and ``semid serve``. Nothing is retrained except
MostPopular, whose "weights" are the train counts and take milliseconds to recount.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from semid.config import from_dict
from semid.data.types import Dataset, Split
from semid.errors import CheckpointError
from semid.io import read_json
from semid.pipeline.config import RunConfig
from semid.pipeline.runner import build_model, build_tokenizer, model_train, prepare_data, torch_module


@dataclass
class LoadedRun:
    config: RunConfig
    dataset: Dataset
    split: Split
    tokenizer: object | None
    model: object


CHECKPOINTS = ("final", "best")


def load_run(run_dir: str | Path, *, device: str = "cpu", checkpoint: str = "final") -> LoadedRun:
    """``checkpoint``: ``final`` = the weights a finished run selected (``model/final.safetensors``);
    ``best`` = the best-validation weights saved so far in ``model/ckpt/best.pt``, which also exists while a
    run is still training or after it was interrupted (score a long run without waiting for it to end)."""
    if checkpoint not in CHECKPOINTS:
        raise CheckpointError(f"checkpoint must be one of {CHECKPOINTS}, got {checkpoint!r}")
    run_dir = Path(run_dir)
    cfg_path = run_dir / "config.json"
    if not cfg_path.is_file():
        raise CheckpointError(f"{run_dir}: no config.json; is this a semid run directory?")
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
    model = build_model(cfg, tokenizer, tasks, run_dir / "model")
    if cfg.model == "popular":
        model.fit(model_train(cfg, split.train), ds.catalog, None)
        return LoadedRun(cfg, ds, split, tokenizer, model)
    _init_untrained(model, ds, split)
    module = torch_module(model)
    if checkpoint == "best":
        weights = run_dir / "model" / "ckpt" / "best.pt"
        if not weights.is_file():
            raise CheckpointError(f"{weights}: missing; no validation has finished yet in this run")
        try:
            import torch

            module.load_state_dict(torch.load(weights, map_location=device, weights_only=True))
        except Exception as e:
            raise CheckpointError(f"{weights}: corrupt or does not match {cfg_path} ({e})") from None
    else:
        weights = run_dir / "model" / "final.safetensors"
        if not weights.is_file():
            raise CheckpointError(
                f"{weights}: missing; the run did not finish (resume it with `semid run --resume`, or score "
                "its best weights so far with `semid evaluate --checkpoint best`)"
            )
        from safetensors.torch import load_model

        try:
            load_model(module, str(weights), device=device)
        except Exception as e:
            raise CheckpointError(f"{weights}: corrupt or does not match {cfg_path} ({e})") from None
    module.to(device).eval()
    return LoadedRun(cfg, ds, split, tokenizer, model)


def upgrade_config(raw: dict) -> dict:
    """Fill fields whose default changed since a run was saved, with the value that run actually used.

    ``gpt2.objective`` appeared when the default became ``sequence``; runs saved before it trained (and
    must be prompted) with ``next``. Silently taking the new default would decode with the wrong prompt.
    """
    gpt2 = raw.get("gpt2")
    if isinstance(gpt2, dict) and "objective" not in gpt2:
        raw = {**raw, "gpt2": {**gpt2, "objective": "next"}}
    return raw


def _init_untrained(model, ds: Dataset, split: Split) -> None:
    """Give ``model`` its (random) module with the right shapes, ready for load_model."""
    if hasattr(model, "init_model"):  # GPT2Rec / T5Rec
        model.init_model(ds.catalog, split.train)
    elif hasattr(model, "build_model"):  # MusicRecGenerator
        model.model_ = model.build_model()
    else:  # SASRec
        from semid.models.sasrec import SASRecNet

        model.n_items_ = ds.catalog.n_items
        model.net_ = SASRecNet(ds.catalog.n_items, model.config)
