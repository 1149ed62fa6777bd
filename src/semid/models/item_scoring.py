"""What SASRec and GRU4Rec share once trained: score every item, full-ranking top-k, item table, save/load.

Both nets map left-padded item tokens (B, T) to states (B, T, C) and score items against their tied item
table (N, C); only the sequence encoder differs. A subclass names its net and config classes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from semid.config import from_dict, to_dict
from semid.errors import CheckpointError
from semid.io import atomic_write, read_json, write_json
from semid.models.sequence_examples import full_ranking_topk, left_padded_tokens
from semid.train.loop import TrainConfig


class ItemScoringModel:
    """Mixin for a fitted ``net_`` (tokens -> states, ``item_table()``) with ``config``, ``train_config``,
    ``n_items_``. Subclasses set ``name``, ``net_cls`` and ``config_cls``."""

    name: str
    net_cls: type
    config_cls: type

    def _check_fitted(self) -> None:
        if not hasattr(self, "net_"):
            raise RuntimeError(f"{self.name} used before fit() or load()")

    @torch.no_grad()
    def score(self, histories: list[np.ndarray]) -> torch.Tensor:
        """Scores of every item for each history: float32 (B, N) = last state · item table."""
        self._check_fitted()
        net = self.net_
        dev = next(net.parameters()).device
        # An empty history becomes one padding token (zero input): every such user gets the same state.
        tok = torch.from_numpy(left_padded_tokens(histories, self.config.max_len)).to(dev)
        was_training = net.training
        net.eval()
        h = net(tok)[:, -1]  # (B, C) state at the most recent position
        net.train(was_training)
        return (h @ net.item_table().T).float()  # (B, N)

    def recommend(self, histories: list[np.ndarray], k: int, *, exclude=None, allowed=None):
        """Top-k of the full ranking; ``exclude`` / ``allowed`` mask items as in ``semid.decoding.masks``."""
        if exclude is None and allowed is None:
            return full_ranking_topk(self.score(histories), k)
        from semid.decoding.masks import item_mask, masked_topk

        scores = self.score(histories)
        return masked_topk(scores, item_mask(scores.shape[1], len(histories), exclude=exclude, allowed=allowed), k)

    def item_embeddings(self) -> np.ndarray:
        """float32 [n_items, C]: the tied input/output item table, row i = item i."""
        self._check_fitted()
        return self.net_.item_table().detach().float().cpu().numpy().copy()

    # ------------------------------------------------------------------ persistence
    def save(self, directory: str | Path) -> Path:
        """``<dir>/model.safetensors`` + ``<dir>/config.json`` (model config, train config, n_items)."""
        from safetensors.torch import save_file

        self._check_fitted()
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.net_.state_dict().items()}
        atomic_write(d / "model.safetensors", lambda p: save_file(state, str(p)))
        meta = {"model": self.name, "n_items": self.n_items_, "config": to_dict(self.config),
                "train": to_dict(self.train_config)}
        write_json(d / "config.json", meta)
        return d

    @classmethod
    def load(cls, directory: str | Path, *, device: str = "cpu", weights: str | Path | None = None):
        """Rebuild a saved model; ``weights`` replaces ``model.safetensors`` (e.g. ``ckpt/best.safetensors``)."""
        from semid.models.protocol import load_weights

        d = Path(directory).resolve()
        cfg_path = d / "config.json"
        w_path = d / "model.safetensors" if weights is None else Path(weights)
        for p in (cfg_path, w_path):
            if not p.is_file():
                raise CheckpointError(f"{p}: missing; save a fitted {cls.name} there with {cls.name}.save(dir)")
        try:
            meta = read_json(cfg_path)
            if meta.get("model", cls.name) != cls.name:
                raise ValueError(f"it describes a {meta.get('model')!r} model")
            model = cls(config=from_dict(cls.config_cls, meta["config"]), train=from_dict(TrainConfig, meta["train"]))
            n_items = int(meta["n_items"])
        except Exception as e:
            raise CheckpointError(f"{cfg_path}: not a valid {cls.name} config ({e})") from None
        net = cls.net_cls(n_items, model.config)
        load_weights(net, w_path, device=device, config_path=cfg_path)
        model.net_ = net.to(device).eval()
        model.n_items_ = n_items
        return model
