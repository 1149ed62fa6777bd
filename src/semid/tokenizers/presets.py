"""Named tokenizer + generation-task presets: TIGER, LETTER, MusicRec and MusicRec's Table-3 ablations.

``preset(name, text=..., image=..., cf=...)`` -> ``Preset(tokenizer, tasks)``: an unfitted tokenizer and
the generation tasks (``semid.models.musicrec_gen`` task names) the generative stage trains on.

| name              | tokenizer                                              | generation tasks            |
|-------------------|--------------------------------------------------------|-----------------------------|
| tiger             | RQ-VAE on text, 3 x 256 + collision digit, no alignment | text next-item              |
| letter            | tiger + InfoNCE to SASRec z_cf (alpha 1e-2) + diversity 1e-4 | text next-item         |
| musicrec          | shared 2 + specific 2 per modality, alpha 1e-2, beta 1e-4 | all five (uni, multi, align) |
| musicrec_wo_isem  | RQ-VAE on text only, 4 levels, alpha/beta as MusicRec   | text next-item              |
| musicrec_wo_tsem  | RQ-VAE on image only, 4 levels, alpha/beta as MusicRec  | image next-item             |
| musicrec_wo_align | musicrec with alpha = 0                                 | all five                    |
| musicrec_wo_rel   | musicrec with beta = 0                                  | all five                    |
| musicrec_wo_mmg   | musicrec                                                | without multi-modal next item |
| musicrec_wo_mma   | musicrec                                                | without text<->image alignment |

"w/o I-Sem / T-Sem" keep the collaborative losses and 4 code levels so only the missing modality differs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from semid.errors import ConfigError
from semid.tokenizers.musicrec import MusicRecConfig, MusicRecTokenizer
from semid.tokenizers.rqvae import RQVAEConfig, RQVAETokenizer

# Generation tasks (see semid.models.musicrec_gen): uni-modal next item, multi-modal next item, alignment.
UNI_TEXT, UNI_IMAGE, MM_TEXT, MM_IMAGE, T2I, I2T = (
    "uni_text",
    "uni_image",
    "mm_text",
    "mm_image",
    "t2i",
    "i2t",
)
ALL_TASKS = (UNI_TEXT, UNI_IMAGE, MM_TEXT, MM_IMAGE, T2I, I2T)
MMG_TASKS = (MM_TEXT, MM_IMAGE)
MMA_TASKS = (T2I, I2T)


@dataclass(frozen=True)
class Preset:
    name: str
    tokenizer: RQVAETokenizer | MusicRecTokenizer
    tasks: tuple[str, ...]


def _config(cls, fixed: dict, kw: dict):
    """``cls(**fixed)`` with ``kw`` replacing any of its fields; a name ``cls`` lacks is refused, not dropped."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(kw) - names)
    if unknown:
        raise ConfigError(f"{cls.__name__} has no field(s) {unknown}; valid: {sorted(names)}")
    return cls(**{**fixed, **kw})


def tiger(*, text: str = "text", **kw) -> Preset:
    cfg = _config(RQVAEConfig, dict(modality=text, n_levels=3, alpha=0.0, beta=0.0, collision_digit=True), kw)
    return Preset("tiger", RQVAETokenizer(config=cfg), (UNI_TEXT,))


def letter(*, text: str = "text", cf: str = "cf", alpha: float = 1e-2, diversity: float = 1e-4, **kw) -> Preset:
    # alpha and the diversity weight as LETTER's Instruments tokenizer script (cf 0.01, diversity 1e-4)
    cfg = _config(RQVAEConfig, dict(modality=text, n_levels=3, alpha=alpha, beta=0.0, cf_embedding=cf,
                                     collision_digit=True, diversity=diversity), kw)
    return Preset("letter", RQVAETokenizer(config=cfg), (UNI_TEXT,))


def musicrec(
    *, text: str = "text", image: str = "image", cf: str = "cf", tasks=ALL_TASKS, name: str = "musicrec", **kw
) -> Preset:
    cfg = _config(MusicRecConfig, dict(text_modality=text, image_modality=image, cf_embedding=cf), kw)
    return Preset(name, MusicRecTokenizer(config=cfg), tuple(tasks))


def _single_modality(name: str, modality: str, task: str, cf: str, **kw) -> Preset:
    mr = MusicRecConfig()
    fixed = dict(modality=modality, n_levels=mr.n_shared + mr.n_specific, alpha=mr.alpha, beta=mr.beta, tau=mr.tau,
                 cf_embedding=cf, collision_digit=False)
    cfg = _config(RQVAEConfig, fixed, kw)
    return Preset(name, RQVAETokenizer(config=cfg), (task,))


def preset(name: str, *, text: str = "text", image: str = "image", cf: str = "cf", **kw) -> Preset:
    """Build a preset by name (see module table); ``kw`` are tokenizer config fields (epochs, seed, ...)."""
    if name == "tiger":
        return tiger(text=text, **kw)
    if name == "letter":
        return letter(text=text, cf=cf, **kw)
    if name == "musicrec":
        return musicrec(text=text, image=image, cf=cf, **kw)
    if name == "musicrec_wo_isem":
        return _single_modality(name, text, UNI_TEXT, cf, **kw)
    if name == "musicrec_wo_tsem":
        return _single_modality(name, image, UNI_IMAGE, cf, **kw)
    if name == "musicrec_wo_align":
        return musicrec(text=text, image=image, cf=cf, name=name, **({"alpha": 0.0} | kw))
    if name == "musicrec_wo_rel":
        return musicrec(text=text, image=image, cf=cf, name=name, **({"beta": 0.0} | kw))
    if name == "musicrec_wo_mmg":
        tasks = tuple(t for t in ALL_TASKS if t not in MMG_TASKS)
        return musicrec(text=text, image=image, cf=cf, name=name, tasks=tasks, **kw)
    if name == "musicrec_wo_mma":
        tasks = tuple(t for t in ALL_TASKS if t not in MMA_TASKS)
        return musicrec(text=text, image=image, cf=cf, name=name, tasks=tasks, **kw)
    raise ConfigError(f"unknown preset {name!r}; valid: {list(PRESET_NAMES)}")


PRESET_NAMES = (
    "tiger",
    "letter",
    "musicrec",
    "musicrec_wo_isem",
    "musicrec_wo_tsem",
    "musicrec_wo_align",
    "musicrec_wo_rel",
    "musicrec_wo_mmg",
    "musicrec_wo_mma",
)
