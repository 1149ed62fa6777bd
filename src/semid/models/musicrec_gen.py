"""MusicRec's multi-task generative recommender ("Recommendation Generation Tasks"): one T5 trained on a
mix of task-prefixed seq2seq examples over two identifier spaces (text IDs, image IDs).

Tasks (prefix token ``<task:NAME>`` first in the encoder input):
  uni_text / uni_image  text (image) IDs of the history -> text (image) ID of the next item
  mm_text / mm_image    interleaved [text ID; image ID] per history item -> next text (image) ID
  t2i / i2t             an item's text ID -> its image ID, and back (explicit cross-modal alignment)
Inference: constrained beam search (beam 20) in each modality's ID space, then ``merge_ranked``.
TIGER / LETTER are the single-space case (one ``uni_text`` task).

The T5, its loss and its cached decode stepper come from ``semid.models.t5rec`` (build_t5, seq2seq_loss,
T5Step); the constraint and the beam from ``semid.decoding`` (PrefixIndex + beam_search).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from semid.data.types import Catalog, EvalSet, Interactions
from semid.decoding import PrefixIndex, beam_search
from semid.decoding.masks import item_mask
from semid.errors import ConfigError
from semid.models.protocol import pad_topk
from semid.models.t5rec import T5RecConfig, T5Step, build_t5, seq2seq_loss
from semid.models.vocab import EOS, PAD, SemanticVocab
from semid.tokenizers.presets import ALL_TASKS, I2T, MM_IMAGE, MM_TEXT, T2I, UNI_IMAGE, UNI_TEXT
from semid.train.loop import TrainConfig, Trainer

TASK_IO = {  # task -> (input kind, output space)
    UNI_TEXT: ("text", "text"),
    UNI_IMAGE: ("image", "image"),
    MM_TEXT: ("mm", "text"),
    MM_IMAGE: ("mm", "image"),
    T2I: ("item_text", "image"),
    I2T: ("item_image", "text"),
}


@dataclass(frozen=True)
class MusicRecGenConfig:
    tasks: tuple[str, ...] = ALL_TASKS  # training task mix (Table 3: w/o MMG, w/o MMA drop some)
    inference: str = "uni"  # history encoding used to rank: "uni" (uni_* prompts) or "mm" (mm_* prompts)
    max_targets_per_user: int = 0  # next-item examples per train sequence, latest first (0 = every prefix)
    t5: T5RecConfig = T5RecConfig()  # T5 size, max_history, beam (20), valid_users, eval_batch_size


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


class MusicRecGenerator:
    """Recommender over one or two identifier spaces; see module docstring.

    spaces: {"text": codes int64 [n_items, L]} and/or {"image": ...}, each unique per item.
    """

    name = "MusicRecGen"

    def __init__(
        self,
        *,
        spaces: dict[str, np.ndarray],
        config: MusicRecGenConfig | None = None,
        train: TrainConfig | None = None,
        run_dir=None,
    ):
        self.config = config or MusicRecGenConfig()
        self.train_config = train or TrainConfig()
        self.run_dir = run_dir
        bad = [t for t in self.config.tasks if t not in TASK_IO]
        if bad:
            raise ConfigError(f"MusicRecGenConfig.tasks: unknown {bad}; valid: {list(TASK_IO)}")
        if not spaces or set(spaces) - {"text", "image"}:
            raise ConfigError(f"spaces must be a non-empty subset of 'text', 'image'; got {sorted(spaces)}")
        for t in self.config.tasks:
            need = {TASK_IO[t][1]} | (
                {"text", "image"} if TASK_IO[t][0] in ("mm", "item_text", "item_image") else {TASK_IO[t][0]}
            )
            if need - set(spaces):
                raise ConfigError(f"task {t!r} needs ID spaces {sorted(need)}, have {sorted(spaces)}")
        self.spaces = {k: np.asarray(v, dtype=np.int64) for k, v in spaces.items()}
        self.vocab = SemanticVocab()
        self.task_token = {t: self.vocab.add_special(f"task:{t}") for t in TASK_IO}
        self.tokens: dict[str, np.ndarray] = {}
        for name, codes in self.spaces.items():
            sizes = [int(codes[:, j].max()) + 1 for j in range(codes.shape[1])]
            self.vocab.add_space(name, sizes)
            self.tokens[name] = self.vocab.item_tokens(name, codes)  # (n_items, L)
        self.index = {name: PrefixIndex.from_codes(tok) for name, tok in self.tokens.items()}
        self.n_items_ = len(next(iter(self.spaces.values())))
        self.model_: nn.Module | None = None

    @classmethod
    def from_tokenizer(cls, tokenizer, *, tasks: tuple[str, ...], **kw) -> MusicRecGenerator:
        """Two spaces from a MusicRec tokenizer (``text_codes_``, ``image_codes_``), else one from ``codes_``
        named after the tasks (image when every task is image-side, as in "w/o T-Sem")."""
        if hasattr(tokenizer, "image_codes_"):
            spaces = {"text": tokenizer.text_codes_, "image": tokenizer.image_codes_}
        else:
            side = (
                "image"
                if all(TASK_IO[t][1] == "image" and TASK_IO[t][0] == "image" for t in tasks)
                else "text"
            )
            spaces = {side: tokenizer.codes_}
        cfg = kw.pop("config", None) or MusicRecGenConfig()
        from dataclasses import replace

        return cls(spaces=spaces, config=replace(cfg, tasks=tuple(tasks)), **kw)

    # ------------------------------------------------------------------ examples
    def _source(self, kind: str, hist: np.ndarray) -> np.ndarray:
        """Encoder tokens (without task / eos) for a history (or a single item for alignment tasks)."""
        if kind in ("text", "image"):
            return self.tokens[kind][hist].ravel()
        if kind == "mm":  # interleaved: text ID then image ID of each item, chronological
            return np.concatenate([self.tokens["text"][hist], self.tokens["image"][hist]], 1).ravel()
        return self.tokens[kind.split("_")[1]][hist].ravel()  # item_text / item_image

    def _encode_inputs(self, task: str, hists: list[np.ndarray]) -> dict[str, torch.Tensor]:
        kind = TASK_IO[task][0]
        seqs = [
            np.concatenate(
                [[self.task_token[task]], self._source(kind, np.asarray(h, dtype=np.int64)), [EOS]]
            )
            for h in hists
        ]
        T = max(len(s) for s in seqs)
        ids = np.full((len(seqs), T), PAD, dtype=np.int64)
        for r, s in enumerate(seqs):
            ids[r, : len(s)] = s
        ids_t = torch.from_numpy(ids)
        return {"src_ids": ids_t, "src_mask": (ids_t != PAD).long()}

    def _examples(self, train: Interactions) -> list[tuple[str, np.ndarray, int]]:
        """(task, history or item, target item) for every task; next-item examples from every prefix."""
        c, H = self.config, self.config.t5.max_history
        nxt: list[tuple[np.ndarray, int]] = []
        for u in range(train.n_users):
            s = train.seq(u)
            ts = range(len(s) - 1, 0, -1)
            if c.max_targets_per_user:
                ts = list(ts)[: c.max_targets_per_user]
            nxt += [(s[max(0, t - H) : t], int(s[t])) for t in ts]
        out: list[tuple[str, np.ndarray, int]] = []
        for task in c.tasks:
            if TASK_IO[task][0] in ("item_text", "item_image"):
                out += [(task, np.array([i]), i) for i in range(self.n_items_)]
            else:
                out += [(task, h, y) for h, y in nxt]
        return out

    def _batch(self, examples: list[tuple[str, np.ndarray, int]]) -> dict[str, torch.Tensor]:
        parts = []
        for task in dict.fromkeys(e[0] for e in examples):
            ex = [e for e in examples if e[0] == task]
            enc = self._encode_inputs(task, [e[1] for e in ex])
            lab = self.tokens[TASK_IO[task][1]][[e[2] for e in ex]]
            parts.append((enc, torch.from_numpy(lab)))
        T = max(p[0]["src_ids"].shape[1] for p in parts)
        L = max(p[1].shape[1] for p in parts)

        def pad(x, n, v):
            return torch.nn.functional.pad(x, (0, n - x.shape[1]), value=v)

        return {  # targets right-padded with <pad>, which seq2seq_loss ignores
            "src_ids": torch.cat([pad(e["src_ids"], T, PAD) for e, _ in parts]),
            "src_mask": torch.cat([pad(e["src_mask"], T, 0) for e, _ in parts]),
            "tgt_ids": torch.cat([pad(lab, L, PAD) for _, lab in parts]),
        }

    # ------------------------------------------------------------------ model
    def build_model(self) -> nn.Module:
        torch.manual_seed(self.train_config.seed)
        return build_t5(self.vocab.size, self.config.t5)

    def fit(
        self,
        train: Interactions,
        catalog: Catalog | None = None,
        valid: EvalSet | None = None,
    ) -> MusicRecGenerator:
        if catalog is not None and catalog.n_items != self.n_items_:
            raise ConfigError(
                f"catalog has {catalog.n_items} items but the identifiers cover {self.n_items_}"
            )
        examples = self._examples(train)
        bs = self.train_config.batch_size

        class _Batches:
            def __init__(s, epoch: int, rng: np.random.Generator):
                s.order = rng.permutation(len(examples))

            def __len__(s):
                return -(-len(examples) // bs)

            def __iter__(s):
                for i in range(0, len(s.order), bs):
                    yield self._batch([examples[j] for j in s.order[i : i + bs]])

        validate = None
        if valid is not None:
            from semid.eval.evaluator import evaluate

            sub = _subset(valid, self.config.t5.valid_users, self.train_config.seed)

            def validate(model):
                return evaluate(
                    self, sub, ks=(5, 10), batch_size=self.config.t5.eval_batch_size, progress=False
                )

        self.model_ = self.build_model()
        self.result_ = Trainer(self.train_config, run_dir=self.run_dir).fit(
            self.model_, _Batches, seq2seq_loss, validate
        )
        self.model_.eval()
        return self

    # ------------------------------------------------------------------ inference
    def _infer_task(self, space: str) -> str:
        uni, mm = (UNI_TEXT, MM_TEXT) if space == "text" else (UNI_IMAGE, MM_IMAGE)
        first, second = (mm, uni) if self.config.inference == "mm" else (uni, mm)
        return first if first in self.config.tasks else second

    def rank_space(
        self, histories: list[np.ndarray], space: str, mask: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Constrained beam search in one ID space: (items [B, beam], log-probs [B, beam]).

        ``mask`` (optional bool [B, n_items]) is applied inside the search (``semid.decoding.masks``)."""
        hists = [np.asarray(h, dtype=np.int64)[-self.config.t5.max_history :] for h in histories]
        # Inputs, mask and prefix index go to the model's device (the Trainer may have moved it to CUDA);
        # the index's device copy is kept for the next call.
        device = next(self.model_.parameters()).device
        batch = {k: v.to(device) for k, v in self._encode_inputs(self._infer_task(space), hists).items()}
        m = None if mask is None else torch.from_numpy(mask).to(device)
        index = self.index[space] = self.index[space].to(device)
        use_bf16 = device.type == "cuda" and self.train_config.bf16
        with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_bf16):
            res = beam_search(
                T5Step(self.model_), batch, index, beam=self.config.t5.beam, k=self.config.t5.beam, item_mask=m,
            )
        return res.items.cpu().numpy(), res.scores.float().cpu().numpy()

    def infer_spaces(self) -> list[str]:
        """Spaces ranked at inference: those with a next-item task."""
        return [s for s in self.spaces if self._infer_task(s) in self.config.tasks]

    def recommend(self, histories: list[np.ndarray], k: int, *, exclude=None, allowed=None):
        """Merged per-space beams; ``exclude`` / ``allowed`` as in ``semid.decoding.masks.item_mask``."""
        if self.model_ is None:
            raise RuntimeError("MusicRecGenerator is not fitted; call fit(train, catalog, valid) first")
        was = self.model_.training
        self.model_.eval()
        n_items = self.index[self.infer_spaces()[0]].n_items
        mask = item_mask(n_items, len(histories), exclude=exclude, allowed=allowed)
        lists = [self.rank_space(histories, s, mask) for s in self.infer_spaces()]
        self.model_.train(was)
        return merge_ranked(lists, k)


    # ------------------------------------------------------------------ persistence
    def save(self, directory) -> Path:
        """``<dir>/model.safetensors`` + ``<dir>/space_<name>.npy`` (int64 [n_items, L] codes of each ID space)
        + ``<dir>/config.json`` (generator / train config, space names)."""
        from semid.config import to_dict
        from semid.io import save_npy
        from semid.models.protocol import save_module

        if self.model_ is None:
            raise RuntimeError("MusicRecGenerator.save called before fit")
        for name, codes in self.spaces.items():
            save_npy(Path(directory) / f"space_{name}.npy", codes)
        meta = {"model": self.name, "config": to_dict(self.config), "train": to_dict(self.train_config),
                "spaces": list(self.spaces)}
        return save_module(directory, self.model_, meta)

    @classmethod
    def load(cls, directory, *, device: str = "cpu", weights=None) -> MusicRecGenerator:
        """Rebuild a saved generator; ``weights`` replaces ``model.safetensors`` (e.g. ``ckpt/best.safetensors``)."""
        from semid.config import from_dict
        from semid.errors import CheckpointError
        from semid.models.protocol import MODEL_META, MODEL_WEIGHTS, load_weights, read_model_meta

        d = Path(directory)
        meta = read_model_meta(d, cls.name)
        try:
            spaces = {name: np.load(d / f"space_{name}.npy", allow_pickle=False) for name in meta["spaces"]}
            obj = cls(spaces=spaces, config=from_dict(MusicRecGenConfig, meta["config"]),
                      train=from_dict(TrainConfig, meta["train"]))
        except Exception as e:
            raise CheckpointError(f"{d}: cannot rebuild {cls.name} from {MODEL_META} and its spaces ({e})") from None
        obj.model_ = obj.build_model()
        load_weights(obj.model_, d / MODEL_WEIGHTS if weights is None else weights, device=device,
                     config_path=d / MODEL_META)
        obj.model_.to(device).eval()
        return obj


def _subset(evalset: EvalSet, n: int, seed: int) -> EvalSet:
    if not n or n >= len(evalset):
        return evalset
    keep = np.sort(np.random.default_rng(seed).choice(len(evalset), n, replace=False))
    h, t = evalset.histories, evalset.targets
    return EvalSet(
        histories=Interactions.from_lists([h.seq(u) for u in keep], h.user_ids[keep]),
        targets=Interactions.from_lists([t.seq(u) for u in keep], t.user_ids[keep]),
    )
