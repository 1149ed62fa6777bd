"""MusicRec's multi-task generative recommender ("Recommendation Generation Tasks"): the T5 generator of
``semid.models.t5rec`` trained on a mix of task-prefixed examples over one or two identifier spaces.

Tasks (prefix token ``<task:NAME>`` first in the encoder input, where ``T5Rec`` puts ``<bos>``):
  uni_text / uni_image  text (image) IDs of the history -> text (image) ID of the next item
  mm_text / mm_image    interleaved [text ID; image ID] per history item -> next text (image) ID
  t2i / i2t             an item's text ID -> its image ID, and back (explicit cross-modal alignment)
Inference: constrained beam search in each modality's ID space, then ``merge_ranked``.

Everything else is T5Rec's: left-padded sources, targets + <eos>, the loss, the cached decode stepper, the
batched beam on the model's device, the validation (full validation set by default, ``valid_beam``). With
one task (TIGER / LETTER: ``uni_text``) there is no task token and the generator IS a T5Rec over that
space: same vocabulary, inputs, training batches, decoding and validation (tested).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from semid.data.types import Catalog, Interactions
from semid.decoding import PrefixIndex
from semid.errors import CheckpointError, ConfigError
from semid.models.code_batches import concat_seq2seq, seq2seq_batch
from semid.models.codeseq import check_n_items, model_device
from semid.models.next_item_examples import NextItemExamples, TrainRows, history_matrix
from semid.models.protocol import pad_topk
from semid.models.t5rec import T5Rec, T5RecConfig
from semid.models.vocab import BOS, SemanticVocab
from semid.tokenizers.presets import ALL_TASKS, I2T, MM_IMAGE, MM_TEXT, T2I, UNI_IMAGE, UNI_TEXT

TASK_IO = {  # task -> (input kind, output space)
    UNI_TEXT: ("text", "text"),
    UNI_IMAGE: ("image", "image"),
    MM_TEXT: ("mm", "text"),
    MM_IMAGE: ("mm", "image"),
    T2I: ("item_text", "image"),
    I2T: ("item_image", "text"),
}
SPACES = ("text", "image")
# Encoder inputs as T5Rec's (``<bos>|<task> codes..``, left-padded); config.json records it so that models
# saved with the earlier ``<task> codes.. <eos>`` inputs are refused instead of decoded wrongly.
INPUT_LAYOUT = 2


@dataclass(frozen=True)
class MusicRecGenConfig:
    """Tasks and inference of the multi-task generator; the T5, its decoding and validation are ``t5``."""

    tasks: tuple[str, ...] = ALL_TASKS  # training task mix (Table 3: w/o MMG, w/o MMA drop some)
    inference: str = "uni"  # history encoding used to rank: "uni" (uni_* prompts) or "mm" (mm_* prompts)
    max_targets_per_user: int = 0  # next-item examples per train sequence, latest first (0 = every prefix)
    t5: T5RecConfig = T5RecConfig()  # T5 size, max_history, beam (20), valid_beam, valid_users, eval_batch_size


def merge_ranked(lists: list[tuple[np.ndarray, np.ndarray]], k: int) -> tuple[np.ndarray, np.ndarray]:
    """Merge per-modality beams into one ranking.

    lists: per modality (items int64 [B, W] with -1 padding, log-probs float [B, W]).
    Rule: p = exp(log-prob); an item's score is the sum over modalities of its probability in that
    modality's list, or that list's floor (its smallest probability) when the list does not contain it.
    Sorted by score, ties by smaller item index. Returns ([B, k] items padded -1, [B, k] float32 scores).
    """
    B = lists[0][0].shape[0]
    out_i, out_s = [], []
    for b in range(B):
        per: list[dict[int, float]] = []
        for items, logp in lists:
            ok = items[b] >= 0
            per.append({int(i): float(np.exp(s)) for i, s in zip(items[b][ok], logp[b][ok], strict=True)})
        floors = [min(d.values()) if d else 0.0 for d in per]
        union = sorted(set().union(*per))
        scores = {i: sum(d.get(i, f) for d, f in zip(per, floors, strict=True)) for i in union}
        ranked = sorted(union, key=lambda i: (-scores[i], i))[:k]
        out_i.append(np.asarray(ranked, dtype=np.int64))
        out_s.append(np.asarray([scores[i] for i in ranked], dtype=np.float32))
    return pad_topk(out_i, out_s, k)


class MultiTaskExamples(TrainRows):
    """Training rows of every task: the next-item rows (``NextItemExamples``) once per next-item task, then
    one row per item for each alignment task; shuffled together by (seed, epoch)."""

    def __init__(self, train: Interactions, *, tasks: tuple[str, ...], n_items: int, max_history: int,
                 max_targets: int = 0) -> None:
        super().__init__(train, max_history)
        self.next = NextItemExamples(train, max_history=max_history, max_targets=max_targets)
        self.tasks = tuple(tasks)
        sizes = [n_items if TASK_IO[t][0].startswith("item_") else len(self.next) for t in self.tasks]
        self.starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)  # (n_tasks + 1,) row ranges

    def __len__(self) -> int:
        return int(self.starts[-1])

    def take(self, idx: np.ndarray) -> list[tuple[str, np.ndarray, np.ndarray]]:
        """Row indices (E,) -> per task present, in task order: (task, histories (E_t, N) right-aligned with
        -1 pads (one item for an alignment task), targets (E_t,))."""
        task_of = np.searchsorted(self.starts, idx, side="right") - 1  # (E,)
        out = []
        for j, task in enumerate(self.tasks):
            local = idx[task_of == j] - self.starts[j]
            if not len(local):
                continue
            if TASK_IO[task][0].startswith("item_"):  # the item itself is the "history"
                out.append((task, local[:, None].astype(np.int64), local.astype(np.int64)))
            else:
                out.append((task, *self.next.take(local)))
        return out


class MusicRecGenerator(T5Rec):
    """T5Rec over one or two identifier spaces with MusicRec's task mix; see the module docstring.

    spaces: {"text": codes int64 [n_items, L]} and/or {"image": ...}, each unique per item (or ``tokenizer``
    with ``text_codes_`` / ``image_codes_``, or ``codes_`` for one space, resolved at ``fit``).
    """

    name = "MusicRecGen"
    config_cls = MusicRecGenConfig

    def __init__(self, *, spaces: dict[str, np.ndarray] | None = None, tokenizer=None,
                 config: MusicRecGenConfig | None = None, train=None, run_dir=None) -> None:
        super().__init__(config=config or MusicRecGenConfig(), tokenizer=tokenizer, train=train, run_dir=run_dir)
        bad = [t for t in self.config.tasks if t not in TASK_IO]
        if bad:
            raise ConfigError(f"MusicRecGenConfig.tasks: unknown {bad}; valid: {list(TASK_IO)}")
        if not self.config.tasks:
            raise ConfigError("MusicRecGenConfig.tasks is empty; name at least one next-item task, e.g. uni_text")
        if self.config.inference not in ("uni", "mm"):
            raise ConfigError(f"MusicRecGenConfig.inference must be 'uni' or 'mm', got {self.config.inference!r}")
        if spaces is None and tokenizer is None:
            raise ConfigError(f"{self.name}: pass spaces={{'text': codes, ...}} or tokenizer=...")
        self.spaces = None if spaces is None else self._checked_spaces(spaces)

    @property
    def seq_config(self) -> T5RecConfig:
        return self.config.t5

    @classmethod
    def from_tokenizer(cls, tokenizer, *, tasks: tuple[str, ...], **kw) -> MusicRecGenerator:
        """Two spaces from a MusicRec tokenizer (``text_codes_``, ``image_codes_``), else one from ``codes_``
        named after the tasks (image when every task is image-side, as in "w/o T-Sem")."""
        cfg = kw.pop("config", None) or MusicRecGenConfig()
        return cls(spaces=_tokenizer_spaces(tokenizer, tasks), config=replace(cfg, tasks=tuple(tasks)), **kw)

    def _checked_spaces(self, spaces: dict) -> dict[str, np.ndarray]:
        if not spaces or set(spaces) - set(SPACES):
            raise ConfigError(f"spaces must be a non-empty subset of 'text', 'image'; got {sorted(spaces)}")
        for t in self.config.tasks:
            kind, out = TASK_IO[t]
            need = {out} | (set(SPACES) if kind in ("mm", "item_text", "item_image") else {kind})
            if need - set(spaces):
                raise ConfigError(f"task {t!r} needs ID spaces {sorted(need)}, have {sorted(spaces)}")
        out = {s: np.asarray(spaces[s], dtype=np.int64) for s in SPACES if s in spaces}
        if len({len(c) for c in out.values()}) > 1:
            raise ConfigError(f"ID spaces cover different item counts: { {s: len(c) for s, c in out.items()} }")
        return out

    # ------------------------------------------------------------------ codes
    def setup(self, catalog: Catalog | None = None, train: Interactions | None = None) -> MusicRecGenerator:
        """Vocabulary (base specials, a task token per task when there are several, each space's codes),
        token tables per input kind and a prefix index per space."""
        if self.spaces is None:
            if getattr(self.tokenizer, "codes_", None) is None:
                if catalog is None:
                    raise ConfigError(f"{self.name}: the tokenizer is not fitted and no catalog was given")
                self.tokenizer.fit(catalog, train)
            self.spaces = self._checked_spaces(_tokenizer_spaces(self.tokenizer, self.config.tasks))
        self.n_items_ = len(next(iter(self.spaces.values())))
        check_n_items(self.name, self.n_items_, catalog)
        vocab = SemanticVocab()
        tasks = [t for t in TASK_IO if t in self.config.tasks]
        # One task needs no prefix: <bos> as in T5Rec, so TIGER / LETTER are exactly T5Rec over their space.
        self.task_token_ = {t: vocab.add_special(f"task:{t}") for t in tasks} if len(tasks) > 1 else {
            tasks[0]: BOS}
        self.tokens_: dict[str, np.ndarray] = {}
        for name, codes in self.spaces.items():
            vocab.add_space(name, [int(codes[:, j].max()) + 1 for j in range(codes.shape[1])])
            self.tokens_[name] = vocab.item_tokens(name, codes)  # (n_items, L_space)
        self.vocab_ = vocab
        self.inputs_ = dict(self.tokens_)  # input kind -> (n_items, L') tokens of one item in the source
        if len(self.tokens_) == 2:  # interleaved: text ID then image ID of each item
            self.inputs_["mm"] = np.concatenate([self.tokens_["text"], self.tokens_["image"]], axis=1)
        for s in self.tokens_:
            self.inputs_[f"item_{s}"] = self.tokens_[s]
        self.indexes_ = {name: PrefixIndex.from_codes(tok) for name, tok in self.tokens_.items()}
        return self

    # ------------------------------------------------------------------ training
    def _train_examples(self, train: Interactions) -> MultiTaskExamples:
        return MultiTaskExamples(train, tasks=self.config.tasks, n_items=self.n_items_,
                                 max_history=self.seq_config.max_history,
                                 max_targets=self.config.max_targets_per_user)

    def _task_batch(self, task: str, H: np.ndarray, targets: np.ndarray | None) -> dict:
        kind, out = TASK_IO[task]
        return seq2seq_batch(H, self.inputs_[kind], targets, bos=self.task_token_[task],
                             target_tokens=self.tokens_[out])

    def _train_batch(self, examples: MultiTaskExamples, idx: np.ndarray) -> dict:
        return concat_seq2seq([self._task_batch(task, H, y) for task, H, y in examples.take(idx)])

    # ------------------------------------------------------------------ inference
    def _infer_task(self, space: str) -> str:
        uni, mm = (UNI_TEXT, MM_TEXT) if space == "text" else (UNI_IMAGE, MM_IMAGE)
        first, second = (mm, uni) if self.config.inference == "mm" else (uni, mm)
        return first if first in self.config.tasks else second

    def infer_spaces(self) -> list[str]:
        """Spaces ranked at inference: those with a next-item task."""
        spaces = [s for s in self.tokens_ if self._infer_task(s) in self.config.tasks]
        if not spaces:
            raise ConfigError(f"{self.name}: tasks {list(self.config.tasks)} include no next-item task to rank with")
        return spaces

    def encode_histories(self, histories: list[np.ndarray], space: str | None = None) -> dict:
        """Encoder batch of ``histories`` under the inference task of ``space`` (default: the first ranked)."""
        task = self._infer_task(space or self.infer_spaces()[0])
        return self._task_batch(task, history_matrix(histories, self.seq_config.max_history), None)

    def _rank_space(self, model, histories, space: str, k: int, beam: int, mask=None):
        self.indexes_[space] = index = self.indexes_[space].to(model_device(model))  # device copy kept
        return self._decode(model, histories, lambda hs: self.encode_histories(hs, space), index, k=k, beam=beam,
                            mask=mask)

    def _recommend_with(self, model, histories, k: int, beam: int, mask: np.ndarray | None = None):
        spaces = self.infer_spaces()
        if len(spaces) == 1:  # one ranked space: its beam as T5Rec returns it (summed log-probs)
            return self._rank_space(model, histories, spaces[0], k, beam, mask)
        return merge_ranked([self._rank_space(model, histories, s, beam, beam, mask) for s in spaces], k)

    def rank_space(self, histories: list[np.ndarray], space: str, mask: np.ndarray | None = None):
        """Constrained beam search in one ID space: (items [B, beam], log-probs [B, beam]), beam = t5.beam.

        ``mask`` (optional bool [B, n_items]) is applied inside the search (``semid.decoding.masks``)."""
        if getattr(self, "model_", None) is None:
            raise ConfigError(f"{self.name}: call fit() before rank_space()")
        self.model_.eval()
        b = self.seq_config.beam
        return self._rank_space(self.model_, histories, space, b, b, mask)

    # ------------------------------------------------------------------ persistence
    def _save_state(self, d: Path) -> dict:
        """``<dir>/space_<name>.npy`` (int64 [n_items, L] codes of each ID space)."""
        from semid.io import save_npy

        for name, codes in self.spaces.items():
            save_npy(d / f"space_{name}.npy", codes)
        return {"spaces": list(self.spaces), "input_layout": INPUT_LAYOUT}

    @classmethod
    def _rebuild(cls, d: Path, meta: dict, config, train) -> MusicRecGenerator:
        spaces = {name: np.load(d / f"space_{name}.npy", allow_pickle=False) for name in meta["spaces"]}
        return cls(spaces=spaces, config=config, train=train)

    @classmethod
    def _check_saved(cls, d: Path, meta: dict) -> None:
        if meta.get("input_layout") != INPUT_LAYOUT:
            raise CheckpointError(
                f"{d / 'config.json'}: this {cls.name} was saved by an earlier semid whose encoder inputs were "
                "'<task> codes.. <eos>'; this version feeds '<bos>|<task> codes..' as T5Rec does, so its weights "
                "would decode wrongly. Train it again: `semid run --config <run>/config.json --run-dir NEW_DIR`"
            )


def _tokenizer_spaces(tokenizer, tasks) -> dict[str, np.ndarray]:
    if hasattr(tokenizer, "image_codes_"):
        return {"text": tokenizer.text_codes_, "image": tokenizer.image_codes_}
    side = "image" if all(TASK_IO[t] == ("image", "image") for t in tasks) else "text"
    return {side: tokenizer.codes_}

