"""Named run presets: a description plus dotted overrides on RunConfig's defaults.

Each resolves to a complete typed RunConfig (``resolve``; ``semid config show --preset NAME`` prints it);
the override rules, and why a preset may only name the sections it selects, are in
``semid.pipeline.overrides``.

``semid run --preset quickstart`` is the README's main command: FusID IDs + GPT-2 on the built-in
MovieLens, sized to finish in a few minutes on a laptop CPU. The ``mql4grec-*`` presets reproduce
the MusicRec Table 2 setting on amazon-mql4grec/Instruments (pass its path with --data.dataset).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from semid.errors import ConfigError
from semid.pipeline.config import RunConfig
from semid.pipeline.overrides import apply


@dataclass(frozen=True)
class Reference:
    """A figure measured earlier on the same split (benchmarks/RESULTS.md), printed beside a run, labelled so."""

    label: str  # short method name for the table row
    hr10: float  # test HR@10
    ndcg10: float  # test NDCG@10
    source: str = ""  # settings and where the figure comes from (printed under the table)


@dataclass(frozen=True)
class RunPreset:
    description: str
    overrides: dict = field(default_factory=dict)
    references: tuple[Reference, ...] = ()  # stored figures on the same split, printed under the run's table


_ML = {"data.dataset": "movielens"}
_CPU_GEN = {"train.epochs": 10, "train.batch_size": 256, "train.lr": 2e-3, "train.warmup_steps": 100,
            "train.patience": 3}
# FusID builds its own modalities (title, genres, tags through the text encoder; item2vec co-occurrence
# on the train split), as the paper encodes each modality separately before fusion.
# FusID on MovieLens: K=256 keeps every code well used for ~9.7k items; n=4 positions still give
# 256^4 combinations, so raw conflicts stay ~0 while generation needs one fewer decoding step.
_FUSID_ML = {"tokenizer": "fusid", "fusid.pq.n_sub": 4, "fusid.pq.K": 256,
             # titles through the text encoder; genres and tags as multi-hot sets (one text pass on CPU)
             "fusid.features.auto_set_encoder": "multihot",
             # 10 epochs of 40k sampled positive pairs (of the 200k mined) keep fusion training ~1 CPU-minute
             "fusid.pairs_per_epoch": 40_000}
# The T5 preset must finish in a few CPU minutes: one target per row, so the encoder-decoder sees each
# user's last 30 train items with 10-item histories (MovieLens users average ~165 ratings).
_QUICK_GEN = {**_CPU_GEN, "train.epochs": 8, "train.patience": 2, "data.train_tail": 30, "t5.max_history": 10}
# The README's job: GPT-2 over ALL train positions (~100k targets as ~5k 21-item windows, 32 per step).
# Validation did not separate this from "last 30 items, 10-item histories" (NDCG@10 0.0191 vs 0.0208,
# 3 seeds, 610 users); all of the train data is the setting without a CPU shortcut.
# All 8 epochs run (patience 0) and the best epoch on validation is kept: with 610 users a valid-sample NDCG@10
# of ~0.015 has a standard error of ~0.004, and patience 2 stopped runs at epochs 3-4 while the LR was still
# high (2026-11-30), whereas runs that went on peaked at epoch 7 of 8 on validation (2026-11-23).
_QUICK_GPT2 = {**_CPU_GEN, "train.epochs": 8, "train.patience": 0, "train.batch_size": 32,
               "gpt2.objective": "sequence", "gpt2.max_history": 20}
# The quickstart itself is sized to finish within 5 minutes on two idle cores, measured in one
# session against the recipe above (benchmarks/RESULTS.md, "quickstart in 5 minutes"): fusion hidden 1024 and
# 25k pairs an epoch (tokenizer ~3x faster), 4-token IDs with conflicts reassigned to the nearest free code
# instead of a fifth digit (a fifth fewer tokens to train on and decode), and no GPT-2 dropout (on CPU the
# dropout masks cost ~25% of a 2x128 step; 8 epochs underfit rather than overfit).
_QUICK_FAST = {"fusid.fusion.hidden": 1024, "fusid.pairs_per_epoch": 25_000, "fusid.pq.resolve": "reassign",
               "gpt2.dropout": 0.0}
# SASRec: constant LR 1e-3, no warmup, no weight decay (RecBole's optimiser), ~2,048 targets per step as RecBole
# (windows of stride max_len / 2: 20 windows of 100 targets at max_len 200, 80 of 25 at max_len 50). On MovieLens
# validation (5 epochs, max_len 50, `benchmarks/bench_recbole.py`) this beat warmup + cosine + weight decay
# (best NDCG@10 0.0161 vs 0.0128), and stride 25 beat stride 10 (0.0161 vs 0.0144).
_SASREC_OPT = {"train.warmup_steps": 0, "train.min_lr_ratio": 1.0, "train.weight_decay": 0.0}
_SASREC_50 = {"name": "sasrec", "tokenizer": "none", "model": "sasrec", **_SASREC_OPT, "train.batch_size": 80}
# MQL4GRec Instruments: the text (LLaMA) and image (CLIP) code tuples are the two modalities.
_MQL = {"data.dataset": "../shared/data/amazon-mql4grec/Instruments", "data.max_history": 50}
_MQL_MUSICREC = {**_MQL, "features": ("cf=sasrec",), "model": "musicrec_gen"}


def _tok(name: str, *, text: str, image: str, **fields) -> dict:
    """Overrides selecting tokenizer preset ``name`` (``semid.tokenizers.presets``) with this dataset's
    modality names and extra ``fields`` on whichever config it resolves to (RQ-VAE or MusicRec)."""
    from semid.tokenizers.musicrec import MusicRecConfig
    from semid.tokenizers.presets import preset

    c = preset(name).tokenizer.config
    if isinstance(c, MusicRecConfig):
        section, mods = "musicrec", {"musicrec.text_modality": text, "musicrec.image_modality": image}
    else:  # one RQ-VAE space: the text modality, or the image one for "w/o T-Sem"
        section, mods = "rqvae", {"rqvae.modality": image if c.modality == "image" else text}
    return {"tokenizer_preset": name, **mods, **{f"{section}.{k}": v for k, v in fields.items()}}


_MQL_TOK = {"text": "lemb", "image": "vitemb"}

# LC-Rec/LETTER Amazon splits (no item text in the shared copies): FusID fuses item2vec co-occurrence only.
# GPT-2 trains on all positions of 21-item windows; 64 windows (~400 targets) per step.
_GPT2_SEQ = {"model": "gpt2", "gpt2.objective": "sequence", "gpt2.max_history": 20, "train.batch_size": 64,
             "train.epochs": 10, "train.patience": 2, "train.lr": 1e-3, "train.warmup_steps": 100}
_LCREC = {"data.max_history": 50, "tokenizer": "fusid", "fusid.pairs_per_epoch": 40_000}
# TIGER / LETTER / MusicRec on built-in MovieLens (issue 5's table): "text" = title + user tags through the
# text encoder, "genre" = genre multi-hot as MusicRec's second modality, "cf" = SASRec item embeddings.
# CPU-sized like movielens-fusid-t5: each user's last 30 train targets, 10-item histories; tokenizers
# 100 epochs; SASRec z_cf 20 epochs; MusicRec's 6 tasks take 10 targets per user each.
_ML_RQ = {**_ML, "model": "musicrec_gen", **_CPU_GEN, "train.epochs": 6, "train.patience": 2,
          "data.train_tail": 30, "musicrec_gen.t5.max_history": 10, "sasrec_cf_epochs": 20}
_ML_TOK = {"text": "text", "image": "genre", "epochs": 100}
_ML_TEXT, _ML_GENRE, _ML_CF = "text=text:title,tags", "genre=multihot:genres", "cf=sasrec"
_ML_MUSICREC = {**_ML_RQ, "features": (_ML_TEXT, _ML_GENRE, _ML_CF), "train.epochs": 3,
                "musicrec_gen.max_targets_per_user": 10}

PRESETS: dict[str, RunPreset] = {
    "quickstart": RunPreset(
        "FusID IDs (title text, genre/tag multi-hot, co-occurrence) + GPT-2 on built-in MovieLens; ~5 min on 2 CPU cores",
        {**_ML, "name": "fusid+gpt2", **_FUSID_ML, "model": "gpt2", **_QUICK_GPT2, **_QUICK_FAST,
         "baseline_popular": True},
        references=(
            Reference("SASRec 5 ep *", 0.0361, 0.0158, "3-seed mean, benchmarks/RESULTS.md 2026-12-02"),
            Reference("SASRec prefix 20 ep *", 0.0738, 0.0321,
                      "every prefix, 20 epochs, still rising, benchmarks/RESULTS.md 2026-11-30"),
        ),
    ),
    "movielens-fusid-t5": RunPreset(
        "FusID IDs (as quickstart) + T5 encoder-decoder on built-in MovieLens",
        {**_ML, "name": "fusid+t5", **_FUSID_ML, "model": "t5", **_QUICK_GEN},
    ),
    "movielens-popular": RunPreset("MostPopular on built-in MovieLens",
                                   {**_ML, "name": "popular", "tokenizer": "none", "model": "popular"}),
    "movielens-sasrec": RunPreset("SASRec on built-in MovieLens",
                                  {**_ML, **_SASREC_50, "train.batch_size": 20,
                                   "data.max_history": 200, "sasrec.max_len": 200}),
    # GRU4Rec windows hold stride = max_len / 2 targets each; the batch sizes give ~2,000 targets per step
    # (RecBole's default of 2,048 one-target examples): 20 windows of 100 here, 80 of 25 on MQL4GRec.
    "movielens-gru4rec": RunPreset("GRU4Rec on built-in MovieLens (same split as movielens-sasrec)",
                                   {**_ML, "name": "gru4rec", "tokenizer": "none", "model": "gru4rec",
                                    "data.max_history": 200, "gru4rec.max_len": 200, "train.batch_size": 20}),
    "movielens-tiger": RunPreset("TIGER (RQ-VAE over title+tags text) + T5, built-in MovieLens",
                                 {**_ML_RQ, "name": "tiger", **_tok("tiger", **_ML_TOK), "features": (_ML_TEXT,)}),
    "movielens-letter": RunPreset("LETTER (TIGER + SASRec alignment + diversity) + T5, built-in MovieLens",
                                  {**_ML_RQ, "name": "letter", **_tok("letter", **_ML_TOK),
                                   "features": (_ML_TEXT, _ML_CF)}),
    "movielens-musicrec": RunPreset("MusicRec (title+tags text, genre multi-hot, SASRec alignment, multi-task T5), "
                                    "built-in MovieLens",
                                    {**_ML_MUSICREC, "name": "musicrec", **_tok("musicrec", **_ML_TOK)}),
    "mql4grec-popular": RunPreset("MostPopular, MQL4GRec Instruments",
                                  {**_MQL, "name": "popular", "tokenizer": "none", "model": "popular"}),
    "mql4grec-sasrec": RunPreset("SASRec, MQL4GRec Instruments",
                                 {**_MQL, **_SASREC_50}),
    "mql4grec-gru4rec": RunPreset("GRU4Rec (all-targets windows, full softmax), MQL4GRec Instruments",
                                  {**_MQL, "name": "gru4rec", "tokenizer": "none", "model": "gru4rec",
                                   "train.batch_size": 80}),
    "mql4grec-tiger": RunPreset("TIGER (RQ-VAE over text codes) + T5, MQL4GRec Instruments",
                                {**_MQL_MUSICREC, "name": "tiger", **_tok("tiger", **_MQL_TOK), "features": ()}),
    "mql4grec-letter": RunPreset("LETTER (TIGER + SASRec alignment) + T5, MQL4GRec Instruments",
                                 {**_MQL_MUSICREC, "name": "letter", **_tok("letter", **_MQL_TOK)}),
    "mql4grec-musicrec": RunPreset("MusicRec (text+image codes, SASRec alignment, multi-task T5), MQL4GRec Instruments",
                                   {**_MQL_MUSICREC, "name": "musicrec", **_tok("musicrec", **_MQL_TOK)}),
    "mql4grec-fusid-gpt2": RunPreset("FusID (text codes, image codes, co-occurrence) + GPT-2, MQL4GRec Instruments",
                                     {**_MQL, "name": "fusid+gpt2", "tokenizer": "fusid", **_GPT2_SEQ}),
    "mql4grec-fusid-t5": RunPreset("FusID (text codes, image codes, co-occurrence) + T5, MQL4GRec Instruments",
                                   {**_MQL, "name": "fusid+t5", "tokenizer": "fusid", "model": "t5"}),
    "mql4grec-text-ids-t5": RunPreset("MQL4GRec's own text IDs (precomputed) + T5",
                                      {**_MQL, "name": "text-ids+t5", "tokenizer": "precomputed",
                                       "precomputed": "lemb", "model": "t5"}),
    "mql4grec-image-ids-t5": RunPreset("MQL4GRec's own image IDs (precomputed) + T5",
                                       {**_MQL, "name": "image-ids+t5", "tokenizer": "precomputed",
                                        "precomputed": "vitemb", "model": "t5"}),
}
# The ID-source ablation: one generator (the all-position GPT-2 of mql4grec-fusid-gpt2), five ID sources.
# "cf" = RQ-KMeans over the item embeddings of a SASRec trained as mql4grec-sasrec (width 64, RecBole's
# optimiser), i.e. collaborative IDs; "random" = unique random tuples of the same shape (the control).
# 8 epochs, no early stop, best epoch on the full validation set: with every valid user scored each epoch,
# validation NDCG@10 rose through all 8 epochs of the cosine schedule for cf and text IDs (2026-12-02), so
# patience 2 on a sampled validation (where the earlier rows "peaked at epoch 2") stopped too early.
_ID_ABLATION = {**_GPT2_SEQ, "train.epochs": 8, "train.patience": 0}
_CF_IDS = {"features": ("cf=sasrec",), "tokenizer": "rqkmeans", "rqkmeans.modality": "cf",
           "cf_sasrec.sasrec.hidden": 64, "cf_sasrec.train.epochs": 20,
           **{f"cf_sasrec.{k}": v for k, v in {**_SASREC_OPT, "train.batch_size": 80}.items()}}
for _src, _desc, _ov in (
    ("random", "unique random IDs (3 x 256; the control)", {"tokenizer": "random"}),
    ("text", "MQL4GRec's text IDs (LLaMA RQ-VAE codes, precomputed)", {"tokenizer": "precomputed",
                                                                       "precomputed": "lemb"}),
    ("image", "MQL4GRec's image IDs (CLIP RQ-VAE codes, precomputed)", {"tokenizer": "precomputed",
                                                                        "precomputed": "vitemb"}),
    ("cf", "collaborative IDs (RQ-KMeans 3 x 256 over SASRec item embeddings)", _CF_IDS),
):
    PRESETS[f"mql4grec-{_src}-ids-gpt2"] = RunPreset(
        f"{_desc} + GPT-2 (as mql4grec-fusid-gpt2), MQL4GRec Instruments",
        {**_MQL, "name": f"{_src}-ids+gpt2", **_ov, **_ID_ABLATION})
# The same collaborative IDs under the quickstart's generator on the built-in MovieLens.
PRESETS["movielens-cf-ids-gpt2"] = RunPreset(
    "collaborative IDs (RQ-KMeans 3 x 256 over SASRec item embeddings) + the quickstart's GPT-2, built-in MovieLens",
    {**_ML, "name": "cf-ids+gpt2", **_CF_IDS, "model": "gpt2", **_QUICK_GPT2, "baseline_popular": True})
for _ds in ("Instruments", "Games"):
    PRESETS[f"lcrec-{_ds.lower()}-fusid-gpt2"] = RunPreset(
        f"FusID (item2vec) + GPT-2 (all-position training), amazon-lcrec/{_ds}",
        {**_LCREC, "data.dataset": f"../shared/data/amazon-lcrec/{_ds}", "name": "fusid+gpt2", **_GPT2_SEQ},
    )
    # T5 trains one target per row (an encoder pass per prefix: ~2 s per 256 rows of 20-item histories on one
    # CPU thread, 30+ min per Instruments epoch), so the preset is CPU-sized like the MQL4GRec T5 rows:
    # each user's last 20 train targets, 10-item histories, 256 rows per step, 3 epochs.
    PRESETS[f"lcrec-{_ds.lower()}-fusid-t5"] = RunPreset(
        f"FusID (item2vec) + T5 encoder-decoder (CPU-sized), amazon-lcrec/{_ds}",
        {**_LCREC, "data.dataset": f"../shared/data/amazon-lcrec/{_ds}", "name": "fusid+t5", "model": "t5",
         **_CPU_GEN, "train.epochs": 3, "train.patience": 2, "data.train_tail": 20, "t5.max_history": 10},
    )
# TIGER / LETTER / MusicRec on the LC-Rec splits (issue 5's table). The shared copies carry no item text, so
# co-occurrence stands in for content: "cooc" = item2vec over a 5-item window (neighbours in time) is TIGER's
# and LETTER's input and MusicRec's first modality; "basket" = item2vec over a 50-item window (a user's whole
# train sequence, i.e. global co-purchase) is MusicRec's second; "cf" = SASRec item embeddings (z_cf).
# Users who pass <D>.item.json put text=text:title,description in place of cooc. CPU-sized like the
# mql4grec rows: T5 on each user's last 20 train targets, 10-item histories, 2 epochs (MusicRec: 1 epoch,
# 1 target per user per task). Model selection validates on every valid user (beam 10, ~6 ms a user per ID
# space on one CPU thread: ~2.5 min an epoch on Instruments, ~5 on Games); no second valid pass at the end.
_LCREC_RQ = {"data.max_history": 50, "model": "musicrec_gen", **_CPU_GEN, "train.epochs": 2, "train.patience": 2,
             "data.train_tail": 20, "musicrec_gen.t5.max_history": 10,
             "sasrec_cf_epochs": 10, "eval_valid": False}
_LC_TOK = {"text": "cooc", "image": "basket", "epochs": 100}
_LC_COOC, _LC_BASKET = "cooc=item2vec", "basket=item2vec:window=50"
for _ds in ("Instruments", "Games"):
    _d = {"data.dataset": f"../shared/data/amazon-lcrec/{_ds}"}
    PRESETS[f"lcrec-{_ds.lower()}-popular"] = RunPreset(
        f"MostPopular, amazon-lcrec/{_ds}", {**_d, "name": "popular", "tokenizer": "none", "model": "popular"})
    PRESETS[f"lcrec-{_ds.lower()}-sasrec"] = RunPreset(
        f"SASRec, amazon-lcrec/{_ds}", {**_d, "data.max_history": 50, **_SASREC_50})
    PRESETS[f"lcrec-{_ds.lower()}-tiger"] = RunPreset(
        f"TIGER (RQ-VAE over item2vec) + T5 (CPU-sized), amazon-lcrec/{_ds}",
        {**_LCREC_RQ, **_d, "name": "tiger", **_tok("tiger", **_LC_TOK), "features": (_LC_COOC,)})
    PRESETS[f"lcrec-{_ds.lower()}-letter"] = RunPreset(
        f"LETTER (TIGER + SASRec alignment + diversity) + T5 (CPU-sized), amazon-lcrec/{_ds}",
        {**_LCREC_RQ, **_d, "name": "letter", **_tok("letter", **_LC_TOK), "features": (_LC_COOC, "cf=sasrec")})
    PRESETS[f"lcrec-{_ds.lower()}-musicrec"] = RunPreset(
        f"MusicRec (item2vec window 5 and window 50 as the two modalities, SASRec alignment, multi-task T5; "
        f"CPU-sized), amazon-lcrec/{_ds}",
        {**_LCREC_RQ, **_d, "name": "musicrec", **_tok("musicrec", **_LC_TOK),
         "features": (_LC_COOC, _LC_BASKET, "cf=sasrec"), "train.epochs": 1, "musicrec_gen.max_targets_per_user": 1})
for _abl in ("wo_isem", "wo_tsem", "wo_align", "wo_rel", "wo_mmg", "wo_mma"):
    PRESETS[f"mql4grec-musicrec-{_abl}"] = RunPreset(
        f"MusicRec Table-3 ablation {_abl}, MQL4GRec Instruments",
        {**_MQL_MUSICREC, "name": f"musicrec-{_abl}", **_tok(f"musicrec_{_abl}", **_MQL_TOK)},
    )
    PRESETS[f"movielens-musicrec-{_abl}"] = RunPreset(
        f"MusicRec Table-3 ablation {_abl} (text = title+tags, image = genres), built-in MovieLens",
        {**_ML_MUSICREC, "name": f"musicrec-{_abl}", **_tok(f"musicrec_{_abl}", **_ML_TOK)},
    )


# Cornell / Yes.com radio playlists (yes_small: 3,168 songs, 41,480 playlists, mean length 4.2). Playlist
# continuation: 10% of the playlists with >= 2 songs hold out their last min(5, len - 1) songs (half valid,
# half test); every playlist's remaining songs are train. Research-use data: pass its folder, never copy it.
_YES = {"data.dataset": "../shared/data/yes-playlists", "data.split": "continuation", "data.holdout": 5,
        "data.holdout_frac": 0.1, "data.min_history": 1}
# FusID's three available modalities (no lyrics, no audio): "meta" = title + artist through the text
# encoder (one metadata text, as the paper), "tags" = Last.fm tag multi-hot (564 songs have none: mask
# off, a real missing modality), "cooc" = item2vec on the TRAIN playlists only.
# K and n scaled to 3,168 songs: K=64 centroids (~50 songs each; the paper's K=1024 over 537k songs is
# ~520 each, and K near N/3 would leave most codes seen a handful of times by GPT-2); n=4 positions give
# 64^4 = 16.8M tuples, >5,000x the catalog, so raw conflicts come from the quantizer, not from a full space.
# alpha = 10 (the paper's 0.2 times 50): a radio station replays one catalogue, so the contrastive loss alone
# packs a station's songs onto one tuple; chosen on the tokenizer's conflict rate over train data (0.2: 57%,
# 1: 17.5%, 3: 9.9%, 10: 5.7%), never on test.
_FUSID_YES = {"tokenizer": "fusid", "features": ("meta=text:title,artist",),
              "fusid.features.fields": ({"field": "tags", "encoder": "multihot"},),
              "fusid.pq.n_sub": 4, "fusid.pq.K": 64, "fusid.pairs_per_epoch": 40_000, "fusid.loss.alpha": 10.0}
# GPT-2 over all positions of 21-song windows; best epoch on validation kept (patience 0). 24 epochs at lr 3e-3,
# validated every 3: chosen on validation over 12 epochs at 3e-3 and 8 at 2e-3 (benchmarks/RESULTS.md).
_YES_GPT2 = {"model": "gpt2", "gpt2.objective": "sequence", "gpt2.max_history": 20, "train.batch_size": 64,
             "train.epochs": 24, "train.patience": 0, "train.lr": 3e-3, "train.warmup_steps": 100,
             "train.eval_every": 3}
# TIGER / LETTER over the same content: title, artist and tags rendered into one text (their RQ-VAE takes
# one content embedding); LETTER adds its SASRec alignment (co-occurrence through CF). CPU-sized T5.
_YES_RQ = {**_YES, "model": "musicrec_gen", **_CPU_GEN, "train.epochs": 6, "train.patience": 2,
           "musicrec_gen.t5.max_history": 10, "rqvae.epochs": 100, "sasrec_cf_epochs": 20}
_YES_TEXT = "text=text:title,artist,tags"
PRESETS.update({
    "yes-fusid-gpt2": RunPreset("FusID (title+artist text, tag multi-hot, item2vec) + GPT-2, yes-playlists continuation",
                                {**_YES, "name": "fusid+gpt2", **_FUSID_YES, **_YES_GPT2}),
    "yes-popular": RunPreset("MostPopular, yes-playlists continuation",
                             {**_YES, "name": "popular", "tokenizer": "none", "model": "popular"}),
    "yes-sasrec": RunPreset("SASRec, yes-playlists continuation",
                            {**_YES, **_SASREC_50}),
    "yes-item2vec-knn": RunPreset("item2vec (train playlists) nearest neighbours of the last song, yes-playlists",
                                  {**_YES, "name": "item2vec-knn", "tokenizer": "none", "model": "item2vec_knn"}),
    "yes-tiger": RunPreset("TIGER (RQ-VAE over title+artist+tags text) + T5, yes-playlists continuation",
                           {**_YES_RQ, "name": "tiger", "tokenizer_preset": "tiger", "features": (_YES_TEXT,)}),
    "yes-letter": RunPreset("LETTER (TIGER + SASRec alignment + diversity) + T5, yes-playlists continuation",
                            {**_YES_RQ, "name": "letter", "tokenizer_preset": "letter",
                             "features": (_YES_TEXT, "cf=sasrec")}),
})
# FusID ablations on this data: no regularisation (the paper's alpha = 0 row), no contrastive loss, and each
# modality removed (open question 2).
for _name, _desc, _ov in (
    ("alpha0", "without L_cov + L_var (alpha = 0)", {"fusid.loss.alpha": 0.0}),
    ("no-contrastive", "without the contrastive loss", {"fusid.loss.contrastive": False}),
    ("no-meta", "without the title+artist text", {"fusid.modalities": ("tags", "cooc")}),
    ("no-tags", "without the tag multi-hot", {"fusid.modalities": ("cooc", "meta")}),
    ("no-cooc", "without item2vec co-occurrence", {"fusid.modalities": ("tags", "meta")}),
):
    PRESETS[f"yes-fusid-gpt2-{_name}"] = RunPreset(
        f"FusID + GPT-2 {_desc}, yes-playlists continuation",
        {**PRESETS["yes-fusid-gpt2"].overrides, "name": f"fusid+gpt2-{_name}", **_ov})


def resolve(name: str | None, overrides: dict | None = None, base: RunConfig | None = None) -> RunConfig:
    """The complete RunConfig of a preset name (or of ``base`` / the defaults) with ``overrides`` applied as
    a second layer (``semid.pipeline.overrides.apply``): a kind the overrides select starts from its defaults,
    and every other key must name a field of the config the preset resolved to."""
    cfg = base if base is not None else RunConfig()
    if name:
        if name not in PRESETS:
            raise ConfigError(f"unknown preset {name!r}; valid: {sorted(PRESETS)}")
        try:
            cfg = apply(cfg, PRESETS[name].overrides)
        except ConfigError as e:
            raise ConfigError(f"preset {name!r}: {e}") from None
    return apply(cfg, overrides or {})
