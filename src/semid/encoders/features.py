"""Build the per-modality feature dict for a catalog: {modality: (float32 [N, D], mask bool [N])}.

Sources, in this order: catalog fields run through an encoder (text / multihot / image / audio; set
fields either rendered to text like ``"genres: Comedy, Drama"`` or multi-hot), item2vec
co-occurrence from the TRAIN sequences (modality ``"cooc"``), precomputed ``catalog.embeddings``
(modality = its name) and precomputed ``catalog.codes`` as concatenated one-hots (modality
``"codes:<name>"``). Every encoder output goes through the disk cache.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from semid.data.types import Catalog, Interactions
from semid.encoders import is_missing
from semid.encoders.audio import AudioEncoderConfig
from semid.encoders.cache import EmbeddingCache
from semid.encoders.cooc import Item2VecConfig
from semid.encoders.image import ImageEncoderConfig
from semid.encoders.multihot import MultiHotConfig
from semid.encoders.text import TextEncoderConfig, render
from semid.errors import ConfigError

ENCODERS = ("text", "multihot", "image", "audio")


@dataclass(frozen=True)
class FieldSpec:
    """One catalog field -> one modality."""

    field: str = ""  # catalog field name
    encoder: str = "text"  # text | multihot | image | audio (set fields under "text" are rendered first)
    modality: str = ""  # name of the resulting modality ("" = the field name)


@dataclass(frozen=True)
class FeaturesConfig:
    """Which fields become modalities and how each is encoded."""

    fields: tuple[
        FieldSpec, ...
    ] = ()  # explicit field specs; empty = every catalog field (see auto_set_encoder)
    auto_set_encoder: str = "text"  # with fields=(): set-valued fields use text (rendered) | multihot
    cooc: bool = True  # add item2vec co-occurrence from the train sequences as modality "cooc"
    use_embeddings: bool = True  # add every catalog.embeddings entry as a modality
    use_codes: bool = True  # add every catalog.codes entry as one-hots, modality "codes:<name>"
    # Level l's one-hot is scaled by decay**l: 1.0 = plain concatenated one-hots (default); < 1 makes
    # coarse levels dominate distances, like the residual structure the tuples came from (issue 7 ablation).
    code_level_decay: float = 1.0
    text: TextEncoderConfig = field(default_factory=TextEncoderConfig)  # text encoder settings
    multihot: MultiHotConfig = field(default_factory=MultiHotConfig)  # multi-hot settings
    item2vec: Item2VecConfig = field(default_factory=Item2VecConfig)  # co-occurrence settings
    image: ImageEncoderConfig = field(default_factory=ImageEncoderConfig)  # image encoder settings
    audio: AudioEncoderConfig = field(default_factory=AudioEncoderConfig)  # audio encoder settings
    cache: bool = True  # cache encoder outputs on disk
    cache_dir: str = ""  # cache root ("" = $SEMID_CACHE or ~/.cache/semid)
    dataset: str = "catalog"  # dataset name used in cache keys


def _is_set_field(values: list) -> bool:
    return any(isinstance(v, (list, tuple)) for v in values if v is not None)


def field_specs(catalog: Catalog, cfg: FeaturesConfig) -> list[FieldSpec]:
    """The explicit specs, or one per catalog field in auto mode."""
    if cfg.fields:
        for spec in cfg.fields:
            if spec.field not in catalog.fields:
                raise ConfigError(
                    f"features.fields names {spec.field!r}, which the catalog does not have; "
                    f"available: {sorted(catalog.fields)}"
                )
            if spec.encoder not in ENCODERS:
                raise ConfigError(
                    f"features.fields[{spec.field!r}].encoder must be one of {ENCODERS}, got {spec.encoder!r}"
                )
        return list(cfg.fields)
    specs = []
    for name, values in catalog.fields.items():
        if all(is_missing(v) for v in values):
            continue
        enc = cfg.auto_set_encoder if _is_set_field(values) else "text"
        specs.append(FieldSpec(field=name, encoder=enc))
    return specs


def interactions_hash(train: Interactions) -> bytes:
    h = hashlib.sha1(np.ascontiguousarray(train.offsets).tobytes())
    h.update(np.ascontiguousarray(train.items).tobytes())
    return h.hexdigest().encode()


def _codes_onehot(codes: np.ndarray, sizes: list[int], decay: float = 1.0) -> np.ndarray:
    """int [N, L] -> float32 [N, sum(sizes)]: level l's one-hot scaled by decay**l."""
    from semid.data.codes import codes_to_onehot, level_decay_weights

    return codes_to_onehot(codes, sizes, weights=level_decay_weights(decay, len(sizes)))


def build_features(
    catalog: Catalog,
    train: Interactions | None = None,
    config: FeaturesConfig = FeaturesConfig(),
    *,
    cache: EmbeddingCache | None = None,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Catalog (+ train sequences) -> {modality: (float32 [N, D], bool mask [N])}, deterministic order."""
    cfg = config
    if cache is None and cfg.cache:
        cache = EmbeddingCache(cfg.cache_dir or None)
    ids = catalog.item_ids
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    encoders: dict[str, object] = {}

    def run(field_name: str, enc, compute, extra: bytes = b""):
        if cache is None:
            return compute()
        return cache.get_or_compute(
            cfg.dataset, field_name, enc.name, enc.config_dict(), ids, compute, extra=extra
        )

    for spec in field_specs(catalog, cfg):
        values = catalog.fields[spec.field]
        modality = spec.modality or spec.field
        if spec.encoder == "text":
            from semid.encoders.text import TextEncoder

            enc = encoders.setdefault("text", TextEncoder(config=cfg.text))
            texts = [render(spec.field, v) for v in values]
            out[modality] = run(spec.field, enc, lambda enc=enc, texts=texts: enc.encode(texts))
        elif spec.encoder == "multihot":
            from semid.encoders.multihot import MultiHotEncoder

            enc = MultiHotEncoder(config=cfg.multihot)
            out[modality] = run(spec.field, enc, lambda enc=enc, values=values: enc.encode(values))
        elif spec.encoder == "image":
            from semid.encoders.image import ImageEncoder

            enc = encoders.setdefault("image", ImageEncoder(config=cfg.image))
            out[modality] = run(spec.field, enc, lambda enc=enc, values=values: enc.encode(values))
        else:
            from semid.encoders.audio import AudioEncoder

            enc = AudioEncoder(config=cfg.audio)
            out[modality] = run(spec.field, enc, lambda enc=enc, values=values: enc.encode(values))

    if cfg.cooc and train is not None and train.n_interactions > 0:
        from semid.encoders.cooc import Item2VecEncoder

        enc = Item2VecEncoder(config=cfg.item2vec)
        out["cooc"] = run(
            "cooc", enc, lambda: enc.fit_transform(train, catalog.n_items), extra=interactions_hash(train)
        )

    if cfg.use_embeddings:
        for name, emb in catalog.embeddings.items():
            out[name] = (np.asarray(emb, dtype=np.float32), np.asarray(catalog.masks[name], dtype=bool))
    if cfg.use_codes:
        for name, codes in catalog.codes.items():
            sizes = catalog.code_sizes.get(name) or [int(m) + 1 for m in np.asarray(codes).max(axis=0)]
            out[f"codes:{name}"] = (_codes_onehot(codes, sizes, cfg.code_level_decay), (np.asarray(codes) >= 0).all(axis=1))
    for name, (emb, mask) in out.items():
        if emb.shape[0] != catalog.n_items or mask.shape != (catalog.n_items,):
            raise RuntimeError(
                f"modality {name!r}: encoder returned {emb.shape}/{mask.shape} for {catalog.n_items} items"
            )
    return out
