"""RunConfig: every component's frozen config in one tree, so ``--section.field=value`` reaches any of them."""

from __future__ import annotations

from dataclasses import dataclass, field

from semid.models.gpt2rec import GPT2RecConfig
from semid.models.musicrec_gen import MusicRecGenConfig
from semid.models.sasrec import SASRecConfig
from semid.models.t5rec import T5RecConfig
from semid.tokenizers.fusid import FusIDConfig
from semid.tokenizers.musicrec import MusicRecConfig
from semid.tokenizers.rqvae import RQVAEConfig
from semid.train.loop import TrainConfig

TOKENIZERS = ("none", "fusid", "rqvae", "musicrec", "precomputed")
MODELS = ("popular", "sasrec", "gpt2", "t5", "musicrec_gen")


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


@dataclass(frozen=True)
class RunConfig:
    """A whole pipeline. ``features`` attach modality embeddings to the catalog before tokenizing.

    Feature specs are ``name=kind[:args]``:
      text:f1,f2      sentence-transformers over the fields rendered to text (title, tags, ...)
      multihot:f      multi-hot of a set field (genres, categories), see MultiHotConfig
      codes:k[,decay=d]  per-level one-hots of precomputed code tuples catalog.codes[k] (MQL4GRec
                         indices); level l scaled by d**l (default 1 = plain one-hots)
      item2vec[:window=w,dim=d]  skip-gram co-occurrence embeddings learned on the TRAIN split only
      sasrec          SASRec item embeddings (hidden = sasrec_cf_dim) learned on the TRAIN split only
    """

    name: str = "run"  # label written into metrics.json
    seed: int = 0  # seeds every component (overrides the components' own seed fields)
    data: DataConfig = field(default_factory=DataConfig)
    features: tuple[str, ...] = ()  # modality specs, see class docstring
    tokenizer: str = "fusid"  # none | fusid | rqvae | musicrec | precomputed
    tokenizer_preset: str = ""  # tiger | letter | musicrec | musicrec_wo_* (sets rqvae/musicrec + tasks)
    precomputed: str = ""  # precomputed tokenizer: catalog.codes key or a path to a code file
    model: str = "gpt2"  # popular | sasrec | gpt2 | t5 | musicrec_gen
    sasrec_cf_dim: int = 32  # width of the SASRec embeddings used as z_cf (MusicRec: 32)
    sasrec_cf_epochs: int = 30  # that SASRec's own epoch budget (the generator's train.epochs is often smaller)
    device: str = "auto"  # auto | cpu | cuda
    eval_batch_size: int = 256  # histories per recommend() call in the final evaluation
    # Full-ranking metrics on the whole validation split after training (metrics_valid.json). Off halves the
    # final evaluation on large catalogs; early stopping still uses the model's sampled validation users.
    eval_valid: bool = True
    train: TrainConfig = field(default_factory=TrainConfig)
    sasrec: SASRecConfig = field(default_factory=SASRecConfig)
    fusid: FusIDConfig = field(default_factory=FusIDConfig)
    rqvae: RQVAEConfig = field(default_factory=RQVAEConfig)
    musicrec: MusicRecConfig = field(default_factory=MusicRecConfig)
    gpt2: GPT2RecConfig = field(default_factory=GPT2RecConfig)
    t5: T5RecConfig = field(default_factory=T5RecConfig)
    musicrec_gen: MusicRecGenConfig = field(default_factory=MusicRecGenConfig)
