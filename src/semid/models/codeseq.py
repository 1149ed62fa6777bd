"""What every generative recommender over semantic IDs shares (GPT2Rec, T5Rec, MusicRecGenerator).

Codes -> vocabulary -> prefix index; the Trainer call with top-k validation (``semid.models.gen_validation``:
the full validation set unless a sample is asked for, decoded by a cheaper beam in batches of
``eval_batch_size``); batched constrained ``recommend`` on the model's device; save / load. A subclass
supplies the network, its batches, its loss and its decode stepper.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from semid.data.types import Catalog, EvalSet, Interactions
from semid.decoding.beam import DecodeStep, beam_search
from semid.decoding.masks import item_mask
from semid.decoding.prefix_index import PrefixIndex
from semid.errors import ConfigError, DataError
from semid.models.gen_validation import topk_validator
from semid.models.next_item_examples import NextItemExamples, history_matrix
from semid.models.vocab import SemanticVocab


def model_device(model: torch.nn.Module) -> torch.device:
    """The device of ``model``'s parameters (where the Trainer or ``load`` put it)."""
    return next(model.parameters()).device


class CodeSeqRecommender:
    """Shared fit/recommend for generative recommenders over item code spaces.

    Subclasses set ``config`` and implement ``_build_model(vocab_size)``, ``_collate(H, targets)``,
    ``_loss(model, batch)`` and ``_stepper(model)``. ``seq_config`` (``config`` unless a subclass nests it)
    holds max_history, beam, valid_beam, valid_users and eval_batch_size.
    """

    name = "codeseq"
    config: Any

    def __init__(self, *, tokenizer=None, codes=None, codebook_sizes=None, train=None, run_dir=None) -> None:
        from semid.train.loop import TrainConfig

        self.tokenizer = tokenizer
        self.codes = None if codes is None else np.asarray(codes, dtype=np.int64)
        self.codebook_sizes = None if codebook_sizes is None else [int(s) for s in codebook_sizes]
        self.train_config = train if train is not None else TrainConfig()
        self.run_dir = None if run_dir is None else Path(run_dir)

    @property
    def seq_config(self):
        """The config with max_history, beam, valid_beam, valid_users, eval_batch_size (and the net's sizes)."""
        return self.config

    # ---------------------------------------------------------------- subclass hooks
    def _build_model(self, vocab_size: int) -> torch.nn.Module:
        raise NotImplementedError

    def _collate(self, H: np.ndarray, targets: np.ndarray | None) -> dict:
        raise NotImplementedError

    def _loss(self, model: torch.nn.Module, batch: dict) -> torch.Tensor:
        raise NotImplementedError

    def _stepper(self, model: torch.nn.Module) -> DecodeStep:
        raise NotImplementedError

    def _train_examples(self, train: Interactions):
        """Training rows (len, batch_indices) -- one (history, target) pair each unless a subclass says otherwise."""
        return NextItemExamples(train, max_history=self.seq_config.max_history)

    def _train_batch(self, examples, idx: np.ndarray) -> dict:
        return self._collate(*examples.take(idx))

    # ---------------------------------------------------------------- codes
    def setup(self, catalog: Catalog | None = None, train: Interactions | None = None) -> CodeSeqRecommender:
        """Resolve codes (explicit, or from the tokenizer, fitting it if needed), vocab and prefix index."""
        if self.codes is not None:
            codes = self.codes
            sizes = self.codebook_sizes or (codes.max(axis=0) + 1).tolist()
        elif self.tokenizer is not None:
            if getattr(self.tokenizer, "codes_", None) is None:
                if catalog is None:
                    raise ConfigError(f"{self.name}: the tokenizer is not fitted and no catalog was given")
                self.tokenizer.fit(catalog, train)
            codes = np.asarray(self.tokenizer.codes_, dtype=np.int64)
            sizes = list(self.tokenizer.codebook_sizes_)
        else:
            raise ConfigError(f"{self.name}: pass tokenizer=... or codes=... (int64 [n_items, L])")
        check_n_items(self.name, len(codes), catalog)
        self.vocab_ = SemanticVocab.for_items(sizes)
        self.codes_, self.codebook_sizes_ = codes, [int(x) for x in sizes]  # what save() stores
        self.item_tokens_ = self.vocab_.item_tokens("item", codes)  # (n_items, L)
        self.index_ = PrefixIndex.from_codes(self.item_tokens_)
        self.n_items_ = len(codes)
        return self

    def init_model(
        self, catalog: Catalog | None = None, train: Interactions | None = None
    ) -> CodeSeqRecommender:
        """``setup`` + a randomly initialised model in eval mode (what ``fit`` starts from; used by tests)."""
        self.setup(catalog, train)
        self.model_ = self._seeded_model().eval()
        return self

    def _seeded_model(self) -> torch.nn.Module:
        # Seed the init here, not only in the Trainer: it runs after the model exists, and whatever ran before
        # (e.g. loading a text encoder) may have consumed the global torch RNG.
        torch.manual_seed(self.train_config.seed)
        return self._build_model(self.vocab_.size)

    # ---------------------------------------------------------------- training
    def fit(self, train: Interactions, catalog: Catalog | None = None,
            valid: EvalSet | None = None) -> CodeSeqRecommender:
        from semid.train.loop import Trainer

        self.setup(catalog, train)
        self.model_ = self._seeded_model()
        examples = self._train_examples(train)
        if len(examples) == 0:
            raise DataError(f"{self.name}: no training example (every sequence has < 2 items)")
        bs = self.train_config.batch_size

        def batches(epoch: int, rng: np.random.Generator):
            for idx in examples.batch_indices(bs, rng):
                yield self._train_batch(examples, idx)

        validate = self._validator(valid) if valid is not None and len(valid) else None
        cfg = self.train_config if validate is not None else replace(self.train_config, patience=0)
        self.result_ = self.train_result_ = Trainer(cfg, self.run_dir).fit(
            self.model_, batches, self._loss, validate, steps_per_epoch=math.ceil(len(examples) / bs)
        )
        self.model_.eval()
        return self

    def _validator(self, valid: EvalSet):
        """NDCG@10 / Recall@10 on ``valid`` (all users unless ``valid_users`` > 0) by the ``valid_beam``."""
        c = self.seq_config
        return topk_validator(lambda model, hists, k: self._recommend_with(model, hists, k, c.valid_beam)[0],
                              valid, valid_users=c.valid_users, k=10)

    # ---------------------------------------------------------------- inference
    def recommend(self, histories: list[np.ndarray], k: int, *, beam: int | None = None, exclude=None,
                  allowed=None):
        """Top-k items by constrained beam search (``beam`` default config.beam, at least k).

        ``exclude`` (one item-index array per history) and ``allowed`` (bool [n_items] or [B, n_items]) are
        applied inside the search (``semid.decoding.masks``): k allowed items come back whenever k exist.
        """
        if getattr(self, "model_", None) is None:
            raise ConfigError(f"{self.name}: call fit() before recommend()")
        beam = max(beam or self.seq_config.beam, k)
        self.model_.eval()
        mask = item_mask(self.n_items_, len(histories), exclude=exclude, allowed=allowed)
        return self._recommend_with(self.model_, histories, k, beam, mask)

    def encode_histories(self, histories: list[np.ndarray]) -> dict:
        return self._collate(history_matrix(histories, self.seq_config.max_history), None)

    def _recommend_with(self, model, histories, k: int, beam: int, mask: np.ndarray | None = None):
        self.index_ = self.index_.to(model_device(model))  # keep the device copy for the next call
        return self._decode(model, histories, self.encode_histories, self.index_, k=k, beam=beam, mask=mask)

    def _decode(self, model, histories, encode, index: PrefixIndex, *, k: int, beam: int,
                mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Beam search over ``index`` in batches of ``eval_batch_size`` histories: (items int64 [B, k],
        summed log-probs float32 [B, k]). Inputs and mask go to the model's device; results come back to CPU."""
        from semid.threads import independent_tasks

        device = model_device(model)
        use_bf16 = device.type == "cuda" and self.train_config.bf16
        bs = self.seq_config.eval_batch_size

        def one(s: int) -> tuple[np.ndarray, np.ndarray]:
            # no_grad / autocast are per thread: set inside the worker
            with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_bf16):
                batch = {k_: v.to(device) for k_, v in encode(histories[s : s + bs]).items()}
                m = None if mask is None else torch.from_numpy(mask[s : s + bs]).to(device)
                res = beam_search(self._stepper(model), batch, index, beam=beam, k=k, item_mask=m)
                return res.items.cpu().numpy(), res.scores.float().cpu().numpy()

        starts = list(range(0, len(histories), bs))
        if not starts:
            return np.zeros((0, k), np.int64), np.zeros((0, k), np.float32)
        # On CPU the batches are decoded side by side, one per one-thread worker (semid.threads): a decode
        # step's tiny ops scale badly over intra-op threads, independent batches do not.
        if device.type == "cpu" and len(starts) > 1:
            with independent_tasks(len(starts), small_ops=True) as run:
                parts = run(one, starts)
        else:
            parts = [one(s) for s in starts]
        return (np.concatenate([p[0] for p in parts]).astype(np.int64),
                np.concatenate([p[1] for p in parts]).astype(np.float32))

    # ---------------------------------------------------------------- persistence
    config_cls: type  # the subclass's config dataclass, rebuilt by load()

    def save(self, directory: str | Path) -> Path:
        """``<dir>/model.safetensors`` + the item codes (``codes.npy``, int64 [n_items, L], for one code space)
        + ``<dir>/config.json`` (model / train config, codebook sizes)."""
        from semid.config import to_dict
        from semid.models.protocol import save_module

        if getattr(self, "model_", None) is None:
            raise ConfigError(f"{self.name}: call fit() before save()")
        meta = {"model": self.name, "config": to_dict(self.config), "train": to_dict(self.train_config),
                **self._save_state(Path(directory))}
        return save_module(directory, self.model_, meta)

    def _save_state(self, d: Path) -> dict:
        """Write what ``_rebuild`` needs besides the configs; returns its entries of config.json."""
        from semid.io import save_npy

        save_npy(d / "codes.npy", self.codes_)
        return {"codebook_sizes": self.codebook_sizes_}

    @classmethod
    def _rebuild(cls, d: Path, meta: dict, config, train) -> CodeSeqRecommender:
        codes = np.load(d / "codes.npy", allow_pickle=False)
        return cls(config=config, train=train, codes=codes, codebook_sizes=meta["codebook_sizes"])

    @classmethod
    def load(cls, directory: str | Path, *, device: str = "cpu", weights: str | Path | None = None):
        """Rebuild a saved model; ``weights`` replaces ``model.safetensors`` (e.g. ``ckpt/best.safetensors``)."""
        from semid.config import from_dict
        from semid.errors import CheckpointError
        from semid.models.protocol import MODEL_META, MODEL_WEIGHTS, load_weights, read_model_meta
        from semid.train.loop import TrainConfig

        d = Path(directory)
        meta = read_model_meta(d, cls.name)
        cls._check_saved(d, meta)
        try:
            obj = cls._rebuild(d, meta, from_dict(cls.config_cls, meta["config"]),
                               from_dict(TrainConfig, meta["train"]))
            obj.setup()
        except Exception as e:
            raise CheckpointError(f"{d}: cannot rebuild {cls.name} from {MODEL_META} and its codes ({e})") from None
        obj.model_ = obj._seeded_model()
        load_weights(obj.model_, d / MODEL_WEIGHTS if weights is None else weights, device=device,
                     config_path=d / MODEL_META)
        obj.model_.to(device).eval()
        return obj

    @classmethod
    def _check_saved(cls, d: Path, meta: dict) -> None:
        """Refuse (CheckpointError) a saved model this version would decode differently; nothing by default."""


def check_n_items(name: str, n_codes: int, catalog: Catalog | None) -> None:
    """DataError unless the codes cover exactly the catalog's items (when a catalog is given)."""
    if catalog is not None and n_codes != catalog.n_items:
        raise DataError(f"{name}: codes have {n_codes} rows but the catalog has {catalog.n_items} items")
