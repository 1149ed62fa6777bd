"""The one recommender protocol every model implements, so one evaluator serves all.

Persistence is part of the protocol: ``save(dir)`` writes ``dir/config.json`` (``{"model": name, ...}``
with everything needed to rebuild the model) plus its fitted state (``model.safetensors`` for neural
models, ``counts.npy`` for MostPopular); ``Class.load(dir)`` rebuilds a model that recommends exactly as
the saved one. ``save_module`` / ``load_weights`` / ``read_model_meta`` are the shared pieces.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from semid.data.types import Catalog, EvalSet, Interactions
from semid.errors import CheckpointError

MODEL_META = "config.json"  # {"model": Recommender.name, ...}: what load needs besides the weights
MODEL_WEIGHTS = "model.safetensors"  # the selected (best-validation) weights of a neural recommender


@runtime_checkable
class Recommender(Protocol):
    """fit on train sequences, recommend top-k items for histories.

    ``recommend`` returns ``(items int64 [B, k], scores float32 [B, k])`` sorted best first.
    Rows with fewer than k candidates are padded with item -1 and score -inf.
    Implementations must never return the same item twice in one row.
    """

    name: str

    def fit(self, train: Interactions, catalog: Catalog, valid: EvalSet | None = None) -> Recommender: ...

    def recommend(self, histories: list[np.ndarray], k: int) -> tuple[np.ndarray, np.ndarray]: ...

    def save(self, directory: str | Path) -> Path:
        """Write the fitted model into ``directory`` (``config.json`` + state files); returns it."""
        ...

    @classmethod
    def load(cls, directory: str | Path, *, device: str = "cpu", weights: str | Path | None = None) -> Recommender:
        """Rebuild what ``save(directory)`` wrote. ``weights``: another state-dict file of the same network
        to use instead of ``model.safetensors`` (e.g. the Trainer's ``ckpt/best.safetensors``); count-based
        models ignore it."""
        ...


def pad_topk(items: list[np.ndarray], scores: list[np.ndarray], k: int) -> tuple[np.ndarray, np.ndarray]:
    """Stack ragged per-row results into ([B, k] int64 padded -1, [B, k] float32 padded -inf)."""
    out_i = np.full((len(items), k), -1, dtype=np.int64)
    out_s = np.full((len(items), k), -np.inf, dtype=np.float32)
    for r, (it, sc) in enumerate(zip(items, scores, strict=False)):
        m = min(k, len(it))
        out_i[r, :m] = it[:m]
        out_s[r, :m] = sc[:m]
    return out_i, out_s


def save_module(directory: str | Path, module, meta: dict[str, Any]) -> Path:
    """``directory/model.safetensors`` (``module``'s weights, tied tensors stored once) + ``config.json``."""
    from safetensors.torch import save_model

    from semid.io import atomic_write, write_json

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    atomic_write(d / MODEL_WEIGHTS, lambda p: save_model(module, str(p)))
    write_json(d / MODEL_META, meta)
    return d


def read_model_meta(directory: str | Path, name: str) -> dict[str, Any]:
    """``directory/config.json`` of a saved ``name`` model; CheckpointError naming the file otherwise."""
    from semid.io import read_json

    path = Path(directory) / MODEL_META
    if not path.is_file():
        raise CheckpointError(f"{path}: missing; save a fitted {name} there with {name}.save(dir)")
    try:
        meta = read_json(path)
    except Exception as e:
        raise CheckpointError(f"{path}: unreadable ({e})") from None
    if not isinstance(meta, dict) or meta.get("model") != name:
        got = meta.get("model") if isinstance(meta, dict) else meta
        raise CheckpointError(f"{path}: describes a {got!r} model, not {name!r}")
    return meta


def load_weights(module, path: str | Path, *, device: str = "cpu", config_path: Path | None = None) -> None:
    """Load a state dict into ``module``: safetensors (full or with tied tensors stored once), or a ``.pt``
    file from older runs read with ``weights_only=True`` (never unpickles code). Strict: every tensor must
    match; errors name the file."""
    import torch
    from safetensors.torch import load_file, load_model

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: missing")
    against = f" does not match {config_path}" if config_path is not None else " does not match the model"
    try:
        if path.suffix == ".pt":
            module.load_state_dict(torch.load(path, map_location=device, weights_only=True))
        else:
            state = load_file(str(path), device=str(device))
            if set(state) == set(module.state_dict()):  # a full state dict (the Trainer's best weights)
                module.load_state_dict(state, strict=True)
            else:  # save_model's layout: tensors tied to another one stored once
                load_model(module, str(path), strict=True, device=str(device))
    except Exception as e:
        raise CheckpointError(f"{path}: corrupt, unsafe or{against} ({e})") from None
