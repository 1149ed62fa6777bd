"""RunConfig: a whole pipeline as one typed tree, written as ``config.json`` beside every run.

The tokenizer and model sections are tagged unions of the component configs: a run holds exactly the
config of the tokenizer and the model it builds (``{"kind": "rqvae", ...}``), nothing else. How dotted
overrides, presets and ``--seed`` reach these fields is in ``semid.pipeline.overrides``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from semid.config import TaggedUnion
from semid.encoders.feature_spec import FEATURE_KINDS, FeatureSection, coerce_features
from semid.models.gpt2rec import GPT2RecConfig
from semid.models.gru4rec import GRU4RecConfig
from semid.models.item2vec_knn import Item2VecKNNConfig
from semid.models.musicrec_gen import MusicRecGenConfig
from semid.models.sasrec import SASRecConfig
from semid.models.t5rec import T5RecConfig
from semid.tokenizers.fusid import FusIDConfig
from semid.tokenizers.musicrec import MusicRecConfig
from semid.tokenizers.random_ids import RandomIDsConfig
from semid.tokenizers.rqkmeans import RQKMeansConfig
from semid.tokenizers.rqvae import RQVAEConfig
from semid.train.loop import TrainConfig


@dataclass(frozen=True)
class PrecomputedConfig:
    """IDs read as they are: a catalog code tuple (MQL4GRec's index files) or a code file."""

    source: str = ""  # catalog.codes key (lemb, vitemb, ...) or a path to a codes .npy / .json file


@dataclass(frozen=True)
class PopularConfig:
    """MostPopular: rank every item by its train-split count."""

    exclude_history: bool = False  # drop items already in a user's history from their list


# Kind names are the CLI's (``--tokenizer=rqvae``, ``--model=t5``) and the sections' override prefixes
# (``--rqvae.n_levels=4`` addresses the tokenizer section while it holds an RQ-VAE config).
TOKENIZER_KINDS: dict[str, type | None] = {
    "none": None,
    "fusid": FusIDConfig,
    "rqvae": RQVAEConfig,  # TIGER and LETTER (presets tiger, letter)
    "musicrec": MusicRecConfig,
    "rqkmeans": RQKMeansConfig,  # residual k-means (GRID, MiniOneRec)
    "precomputed": PrecomputedConfig,
    "random": RandomIDsConfig,  # unique random tuples: the ID-source ablation's control
}
MODEL_KINDS: dict[str, type] = {
    "popular": PopularConfig,
    "sasrec": SASRecConfig,
    "gru4rec": GRU4RecConfig,
    "item2vec_knn": Item2VecKNNConfig,
    "gpt2": GPT2RecConfig,
    "t5": T5RecConfig,
    "musicrec_gen": MusicRecGenConfig,
}
TOKENIZERS = tuple(TOKENIZER_KINDS)
MODELS = tuple(MODEL_KINDS)
TOKENIZER_UNION = TaggedUnion(TOKENIZER_KINDS, what="tokenizer")
MODEL_UNION = TaggedUnion(MODEL_KINDS, what="model")
TokenizerSection = Annotated[object | None, TOKENIZER_UNION]
ModelSection = Annotated[object, MODEL_UNION]


@dataclass(frozen=True)
class DataConfig:
    """Which dataset and which evaluation protocol."""

    dataset: str = "movielens"  # built-in name or a path (MovieLens / Amazon / RecBole / MPD / table)
    split: str = "loo"  # loo (leave-one-out) | continuation (hold out the last items of some sequences)
    max_history: int = 50  # eval histories keep the last N items (MQL4GRec: 50); 0 = all
    k_core: int = 0  # iterative k-core filter before splitting (0 = off)
    min_length: int = 0  # drop sequences shorter than this before splitting (0 = off)
    # The sequence model trains on each user's last N train items only (0 = all): bounds CPU time on
    # long MovieLens histories. Features/tokenizers still see the whole train split, and valid/test
    # histories are untouched, so evaluation is the same protocol.
    train_tail: int = 0
    holdout: int = 5  # continuation: items held out per sampled sequence
    holdout_frac: float = 0.1  # continuation: fraction of sequences sampled for valid+test
    # continuation: 0 = only sequences longer than holdout, each holding out exactly holdout items;
    # m >= 1 = every sequence with > m items, holding out min(holdout, len - m) (short radio playlists)
    min_history: int = 0
    time_format: str = ""  # strptime format of text timestamps, e.g. %m/%d/%Y ("" = numbers or ISO-8601 only)
    duplicates: str = "error"  # repeated item / user keys in the files: error | first | last (keep that one)


@dataclass(frozen=True)
class CFSASRecConfig:
    """The SASRec trained on the train split whose item embeddings are the ``sasrec`` feature (z_cf)."""

    sasrec: SASRecConfig = field(default_factory=lambda: SASRecConfig(hidden=32))  # width 32 as MusicRec
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=30))  # its own epoch budget


@dataclass(frozen=True)
class RunConfig:
    """A whole pipeline. ``features`` are built (``semid.encoders.features``) and attached to the catalog under
    their names before tokenizing; tokenizers select them by name (``rqvae.modality=text``).

    Each feature is a typed spec ``{"kind": "text" | "multihot" | "image" | "audio" | "item2vec" | "sasrec" |
    "codes" | "precomputed", "name": ..., ...}`` (``semid config fields features``). The strings
    ``name=kind[:args]`` are sugar for them:
      text:f1,f2      sentence-transformers over the fields rendered to text (title, tags, ...)
      multihot:f      multi-hot of a set field (genres, categories), see MultiHotConfig (image:f, audio:f alike)
      codes:k[,decay=d]  per-level one-hots of precomputed code tuples catalog.codes[k] (MQL4GRec
                         indices); level l scaled by d**l (default 1 = plain one-hots)
      item2vec[:window=w,dim=d]  skip-gram co-occurrence embeddings learned on the TRAIN split only
      sasrec          SASRec item embeddings (see cf_sasrec) learned on the TRAIN split only
      precomputed:k_or_file.npy[,dim=d]  a catalog embedding or a float .npy [n_items, d] as it is
    """

    name: str = "run"  # label written into metrics.json
    seed: int = 0  # --seed sets every seed field below (k-means, item2vec, trainers, ...) to this value
    data: DataConfig = field(default_factory=DataConfig)  # dataset and evaluation protocol
    features: tuple[FeatureSection, ...] = ()  # item features built before tokenizing, see the class docstring
    tokenizer: TokenizerSection = field(default_factory=FusIDConfig)  # item IDs: none | fusid | rqvae | ...
    model: ModelSection = field(default_factory=GPT2RecConfig)  # recommender: popular | sasrec | gpt2 | ...
    train: TrainConfig = field(default_factory=TrainConfig)  # the recommender's optimisation settings
    cf_sasrec: CFSASRecConfig = field(default_factory=CFSASRecConfig)  # z_cf provider for `sasrec` features
    device: str = "auto"  # auto | cpu | cuda; --device=cpu|cuda also sets every nested device field
    eval_batch_size: int = 256  # histories per recommend() call in the final evaluation
    # Full-ranking metrics on the whole validation split after training (metrics_valid.json). Off halves the
    # final evaluation on large catalogs; early stopping still uses the model's sampled validation users.
    eval_valid: bool = True
    # Also fit MostPopular on the same train split and score it on the same test users (metrics_popular.json),
    # so the printed table puts the model beside the simplest baseline measured in the same run.
    baseline_popular: bool = False

    def __post_init__(self):
        # library sugar: RunConfig(features=("cf=sasrec",)) holds the typed specs (item2vec seeded with the run seed)
        if not isinstance(self.features, tuple) or not all(type(f) in FEATURE_KINDS.values() for f in self.features):
            object.__setattr__(self, "features", coerce_features(self.features, seed=self.seed))


def tokenizer_kind(cfg: RunConfig) -> str:
    """``none``, ``fusid``, ``rqvae``, ... for ``cfg.tokenizer``."""
    return TOKENIZER_UNION.kind_of(cfg.tokenizer)


def model_kind(cfg: RunConfig) -> str:
    """``popular``, ``sasrec``, ``gpt2``, ... for ``cfg.model``."""
    return MODEL_UNION.kind_of(cfg.model)
