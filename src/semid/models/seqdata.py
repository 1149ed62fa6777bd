"""Next-item training examples over semantic IDs, their padded batches, and the shared recommender glue.

Each position t >= 1 of a training sequence is one example (TIGER sec. 3.2): history = the last
``max_history`` items before t, target = item t. ``SequenceWindows`` is the decoder-only alternative:
each sequence is cut into windows whose every item after the first is a target in ONE forward pass
(a language model over the item-code sequence, FusID's "GPT-2 trained on semantic-ID sequences"). Examples are two int arrays (history start, target
position) into the CSR ``items`` so nothing is materialised per example; batches are built with numpy
fancy indexing, left-padded (histories right-aligned), and their order depends only on (seed, epoch).

``CodeSeqRecommender`` holds what GPT2Rec and T5Rec share: codes -> vocabulary -> prefix index,
the Trainer call with NDCG@10 validation by a cheap beam, and batched constrained ``recommend``.
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
from semid.eval.metrics import ndcg_recall_at
from semid.models.vocab import BOS, EOS, PAD, SEP, SemanticVocab

# ---------------------------------------------------------------------------------------------- examples


class _TrainRows:
    """Shared by the two row layouts: the CSR items, the history cap, and shuffled batches by (seed, epoch)."""

    def __init__(self, train: Interactions, max_history: int) -> None:
        if max_history < 1:
            raise ConfigError(f"max_history must be >= 1, got {max_history}")
        self.items = train.items
        self.max_history = max_history

    def __len__(self) -> int:
        raise NotImplementedError

    def batch_indices(self, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
        order = rng.permutation(len(self))
        return [order[s : s + batch_size] for s in range(0, len(order), batch_size)]


class NextItemExamples(_TrainRows):
    """All (history, next item) pairs of a CSR Interactions, history capped to ``max_history`` items."""

    def __init__(self, train: Interactions, *, max_history: int = 20) -> None:
        super().__init__(train, max_history)
        lens = train.lengths()
        seq_start = np.repeat(train.offsets[:-1], lens)  # (nnz,) start of each position's sequence
        pos = np.arange(len(train.items), dtype=np.int64)
        keep = pos > seq_start  # t >= 1
        self.target_pos = pos[keep]  # (E,) index into items of the target
        self.hist_start = np.maximum(seq_start[keep], self.target_pos - max_history)  # (E,)

    def __len__(self) -> int:
        return len(self.target_pos)

    def take(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Example indices (E,) -> (history item matrix (E, N) right-aligned with -1 pads, targets (E,))."""
        tp, hs = self.target_pos[idx], self.hist_start[idx]
        return _right_aligned(self.items, hs, tp, self.max_history), self.items[tp]


class SequenceWindows(_TrainRows):
    """Windows of up to ``max_history + 1`` items cut from the END of each sequence, for all-position training.

    Consecutive windows overlap by one item (the first item of a window is the last target of the window
    before it), so every position t >= 1 is a target exactly once, with between 1 and ``max_history``
    items of context -- the same targets as ``NextItemExamples`` (each context a suffix of the one it would
    get there: a window does not look back past its first item), in ~max_history x fewer rows. A sequence of m >= 2 items gives ceil((m - 1) / max_history) windows.
    """

    def __init__(self, train: Interactions, *, max_history: int = 20) -> None:
        super().__init__(train, max_history)
        lens = train.lengths()
        n_win = np.where(lens >= 2, -(-(lens - 1) // max_history), 0)  # (U,) ceil((m-1)/N), 0 if m < 2
        starts = np.repeat(train.offsets[:-1], n_win)  # (W,) sequence start of each window
        seq_end = np.repeat(train.offsets[1:], n_win)
        j = np.arange(int(n_win.sum())) - np.repeat(np.cumsum(n_win) - n_win, n_win)  # window rank from the end
        self.win_end = seq_end - j * max_history  # (W,) exclusive
        self.win_start = np.maximum(starts, self.win_end - max_history - 1)  # (W,)

    def __len__(self) -> int:
        return len(self.win_end)

    def n_targets(self) -> int:
        """Number of (history, target) pairs the windows cover (= len(NextItemExamples))."""
        return int((self.win_end - self.win_start - 1).sum())

    def take(self, idx: np.ndarray) -> np.ndarray:
        """Window indices (E,) -> (E, max_history + 1) right-aligned item matrix padded with -1."""
        return _right_aligned(self.items, self.win_start[idx], self.win_end[idx], self.max_history + 1)


def _right_aligned(items: np.ndarray, start: np.ndarray, end: np.ndarray, n: int) -> np.ndarray:
    """items[start:end] per row (len <= n), right-aligned in an (E, n) matrix padded with -1."""
    h = end - start
    offs = np.arange(n, dtype=np.int64)[None, :] - (n - h)[:, None]
    idx = np.clip(start[:, None] + offs, 0, max(len(items) - 1, 0))
    return np.where(offs >= 0, items[idx] if len(items) else -1, -1)


def history_matrix(histories: list[np.ndarray], max_history: int) -> np.ndarray:
    """Ragged histories -> (B, N) right-aligned item matrix (last ``max_history`` items), -1 padded."""
    out = np.full((len(histories), max_history), -1, dtype=np.int64)
    for r, h in enumerate(histories):
        h = np.asarray(h, dtype=np.int64)[-max_history:]
        if len(h):
            out[r, max_history - len(h) :] = h
    return out


# ---------------------------------------------------------------------------------------------- collation


def context_tokens(H: np.ndarray, item_tokens: np.ndarray, *, sep: bool) -> np.ndarray:
    """(E, N) right-aligned items -> left-padded (E, T) tokens ``<bos> h1 .. hn [<sep>]``, trimmed to the batch.

    item_tokens: int64 [n_items, L] token tuple per item.
    """
    E, N = H.shape
    L = item_tokens.shape[1]
    h = (H >= 0).sum(axis=1)
    maxh = int(h.max()) if E else 0
    ht = np.where((H >= 0)[:, :, None], item_tokens[np.clip(H, 0, None)], PAD).reshape(E, N * L)  # (E, N*L)
    width = 1 + maxh * L + int(sep)
    ctx = np.full((E, width), PAD, dtype=np.int64)
    ctx[:, 1 : 1 + maxh * L] = ht[:, N * L - maxh * L :]
    ctx[np.arange(E), (maxh - h) * L] = BOS  # right before the first history token
    if sep:
        ctx[:, -1] = SEP
    return ctx


def decoder_batch(
    H: np.ndarray, item_tokens: np.ndarray, targets: np.ndarray | None = None, *, sep: bool = True
) -> dict:
    """Decoder-only (GPT-2) batch: ``input_ids`` = pad.. <bos> history [<sep>] [target L tokens], left-padded.

    Returns input_ids / attention_mask / position_ids (E, T) and, with targets, ``target_ids`` (E, L).
    Position ids count from the first real token so left padding does not shift positions.
    """
    ctx = context_tokens(H, item_tokens, sep=sep)
    if targets is not None:
        tgt = item_tokens[targets]
        ids = np.concatenate([ctx, tgt], axis=1)
    else:
        ids = ctx
    ids_t = torch.from_numpy(ids)
    mask = (ids_t != PAD).long()
    pos = (mask.cumsum(-1) - 1).clamp_(min=0)
    out = {"input_ids": ids_t, "attention_mask": mask, "position_ids": pos}
    if targets is not None:
        out["target_ids"] = torch.from_numpy(np.ascontiguousarray(tgt))
    return out


def sequence_batch(W: np.ndarray, item_tokens: np.ndarray) -> dict:
    """All-position decoder batch from ``SequenceWindows.take``: ``<bos> w1 .. wn`` left-padded, plus labels.

    ``labels`` (E, T) equal ``input_ids`` on the tokens of items 2..n (the targets) and -100 elsewhere
    (padding, <bos>, the first item, which has no context inside its window); token j is predicted
    from position j - 1, so a model's causal LM loss on these labels is the mean CE over all targets.
    """
    out = decoder_batch(W, item_tokens, None, sep=False)
    ids = out["input_ids"]  # (E, T), T = 1 + n_max * L
    L = item_tokens.shape[1]
    first_target = ids.shape[1] - ((W >= 0).sum(axis=1) - 1) * L  # (E,) column of item 2's first token
    cols = torch.arange(ids.shape[1])[None, :]
    out["labels"] = torch.where(cols >= torch.as_tensor(first_target)[:, None], ids, -100)
    return out


def seq2seq_batch(H: np.ndarray, item_tokens: np.ndarray, targets: np.ndarray | None = None) -> dict:
    """Encoder-decoder (T5) batch: ``src_ids`` = <bos> history (left-padded), ``tgt_ids`` = target + <eos>."""
    src = torch.from_numpy(context_tokens(H, item_tokens, sep=False))
    out = {"src_ids": src, "src_mask": (src != PAD).long()}
    if targets is not None:
        tgt = item_tokens[targets]
        tgt = np.concatenate([tgt, np.full((len(tgt), 1), EOS, dtype=np.int64)], axis=1)
        out["tgt_ids"] = torch.from_numpy(tgt)
    return out


# ---------------------------------------------------------------------------------------------- metrics


# ``ndcg_recall_at`` (validation NDCG@k / Recall@k) is semid.eval.metrics's, so the Recall@10 logged during
# training has the same definition (hits / |T|) as the evaluator's.


# ---------------------------------------------------------------------------------------------- recommender glue


class CodeSeqRecommender:
    """Shared fit/recommend for generative recommenders over one item code space.

    Subclasses set ``config`` (with fields max_history, beam, valid_beam, valid_users, eval_batch_size)
    and implement ``_build_model(vocab_size)``, ``_collate(H, targets)``, ``_loss(model, batch)`` and
    ``_stepper(model)``.
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
        return NextItemExamples(train, max_history=self.config.max_history)

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
        if catalog is not None and len(codes) != catalog.n_items:
            raise DataError(
                f"{self.name}: codes have {len(codes)} rows but the catalog has {catalog.n_items} items"
            )
        self.vocab_ = SemanticVocab.for_items(sizes)
        self.codes_, self.codebook_sizes_ = codes, [int(x) for x in sizes]  # what save() stores
        self.item_tokens_ = self.vocab_.item_tokens("item", codes)  # (n_items, L)
        self.index_ = PrefixIndex.from_codes(self.item_tokens_)
        return self

    def init_model(
        self, catalog: Catalog | None = None, train: Interactions | None = None
    ) -> CodeSeqRecommender:
        """``setup`` + a randomly initialised model in eval mode (what ``fit`` starts from; used by tests)."""
        self.setup(catalog, train)
        # Seed the init here, not only in the Trainer: it runs after the model exists, and whatever ran before
        # (e.g. loading a text encoder) may have consumed the global torch RNG.
        torch.manual_seed(self.train_config.seed)
        self.model_ = self._build_model(self.vocab_.size).eval()
        return self

    # ---------------------------------------------------------------- training
    def fit(self, train: Interactions, catalog: Catalog, valid: EvalSet | None = None) -> CodeSeqRecommender:
        from semid.train.loop import Trainer

        self.setup(catalog, train)
        # Seed the init here, not only in the Trainer: it runs after the model exists, and whatever ran before
        # (e.g. loading a text encoder) may have consumed the global torch RNG.
        torch.manual_seed(self.train_config.seed)
        self.model_ = self._build_model(self.vocab_.size)
        examples = self._train_examples(train)
        if len(examples) == 0:
            raise DataError(f"{self.name}: no training example (every sequence has < 2 items)")
        bs = self.train_config.batch_size

        def batches(epoch: int, rng: np.random.Generator):
            for idx in examples.batch_indices(bs, rng):
                yield self._train_batch(examples, idx)

        validate = self._validator(valid) if valid is not None and len(valid) else None
        cfg = self.train_config if validate is not None else replace(self.train_config, patience=0)
        self.train_result_ = Trainer(cfg, self.run_dir).fit(
            self.model_, batches, self._loss, validate, steps_per_epoch=math.ceil(len(examples) / bs)
        )
        self.model_.eval()
        return self

    def _validator(self, valid: EvalSet):
        n = min(len(valid), self.config.valid_users)
        rows = np.sort(np.random.default_rng(0).choice(len(valid), n, replace=False))
        hists = [valid.histories.seq(int(r)) for r in rows]
        targets = Interactions.from_lists([valid.targets.seq(int(r)) for r in rows])

        def validate(model: torch.nn.Module) -> dict[str, float]:
            items, _ = self._recommend_with(model, hists, 10, self.config.valid_beam)
            return ndcg_recall_at(items, targets, 10)

        return validate

    # ---------------------------------------------------------------- inference
    def recommend(self, histories: list[np.ndarray], k: int, *, beam: int | None = None, exclude=None,
                  allowed=None):
        """Top-k items by constrained beam search (``beam`` default config.beam, at least k).

        ``exclude`` (one item-index array per history) and ``allowed`` (bool [n_items] or [B, n_items]) are
        applied inside the search (``semid.decoding.masks``): k allowed items come back whenever k exist.
        """
        if getattr(self, "model_", None) is None:
            raise ConfigError(f"{self.name}: call fit() before recommend()")
        beam = max(beam or self.config.beam, k)
        self.model_.eval()
        mask = item_mask(len(self.item_tokens_), len(histories), exclude=exclude, allowed=allowed)
        return self._recommend_with(self.model_, histories, k, beam, mask)

    def encode_histories(self, histories: list[np.ndarray]) -> dict:
        return self._collate(history_matrix(histories, self.config.max_history), None)

    def _recommend_with(self, model, histories, k: int, beam: int, mask: np.ndarray | None = None):
        device = next(model.parameters()).device
        use_bf16 = device.type == "cuda" and self.train_config.bf16
        index = self.index_ = self.index_.to(device)  # keep the device copy for the next call
        out_i, out_s = [], []
        bs = self.config.eval_batch_size
        with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_bf16):
            for s in range(0, len(histories), bs):
                batch = {k_: v.to(device) for k_, v in self.encode_histories(histories[s : s + bs]).items()}
                m = None if mask is None else torch.from_numpy(mask[s : s + bs]).to(device)
                res = beam_search(self._stepper(model), batch, index, beam=beam, k=k, item_mask=m)
                out_i.append(res.items.cpu().numpy())
                out_s.append(res.scores.float().cpu().numpy())
        if not out_i:
            return np.zeros((0, k), np.int64), np.zeros((0, k), np.float32)
        return np.concatenate(out_i).astype(np.int64), np.concatenate(out_s).astype(np.float32)

    # ---------------------------------------------------------------- persistence
    config_cls: type  # the subclass's config dataclass, rebuilt by load()

    def save(self, directory: str | Path) -> Path:
        """``<dir>/model.safetensors`` + ``<dir>/codes.npy`` (int64 [n_items, L], the item codes the model was
        trained on) + ``<dir>/config.json`` (model / train config, codebook sizes)."""
        from semid.config import to_dict
        from semid.io import save_npy
        from semid.models.protocol import save_module

        if getattr(self, "model_", None) is None:
            raise ConfigError(f"{self.name}: call fit() before save()")
        save_npy(Path(directory) / "codes.npy", self.codes_)
        meta = {"model": self.name, "config": to_dict(self.config), "train": to_dict(self.train_config),
                "codebook_sizes": self.codebook_sizes_}
        return save_module(directory, self.model_, meta)

    @classmethod
    def load(cls, directory: str | Path, *, device: str = "cpu", weights: str | Path | None = None):
        """Rebuild a saved model; ``weights`` replaces ``model.safetensors`` (e.g. ``ckpt/best.safetensors``)."""
        from semid.config import from_dict
        from semid.errors import CheckpointError
        from semid.models.protocol import MODEL_META, MODEL_WEIGHTS, load_weights, read_model_meta
        from semid.train.loop import TrainConfig

        d = Path(directory)
        meta = read_model_meta(d, cls.name)
        try:
            codes = np.load(d / "codes.npy", allow_pickle=False)
            obj = cls(config=from_dict(cls.config_cls, meta["config"]), train=from_dict(TrainConfig, meta["train"]),
                      codes=codes, codebook_sizes=meta["codebook_sizes"])
            obj.setup()
        except Exception as e:
            raise CheckpointError(f"{d}: cannot rebuild {cls.name} from {MODEL_META} and codes.npy ({e})") from None
        torch.manual_seed(obj.train_config.seed)
        obj.model_ = obj._build_model(obj.vocab_.size)
        load_weights(obj.model_, d / MODEL_WEIGHTS if weights is None else weights, device=device,
                     config_path=d / MODEL_META)
        obj.model_.to(device).eval()
        return obj
