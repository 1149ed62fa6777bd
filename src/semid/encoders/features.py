"""The one item-feature builder: typed feature specs (``semid.encoders.feature_spec``) -> per-item arrays.

``build_features(specs, catalog, train)`` returns ``{spec.name: (float32 [n_items, d], bool mask [n_items])}``
(mask False = the item lacks that modality: a missing field, an item never seen in train). Encoder outputs
(text, multi-hot, image, audio, item2vec) go through the disk cache. Every path builds features here:
``semid run`` / ``semid tokenize`` (``attach_features`` over the run's ``features``, results attached to
``catalog.embeddings`` under the spec names the quantising tokenizers select), and FusID, whose
``FeaturesConfig`` is a policy that expands to specs (``fusid_feature_specs``: every catalog field, item2vec,
the catalog's own embeddings and codes).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from semid.config import to_dict
from semid.data.types import Catalog, Interactions
from semid.encoders import is_missing
from semid.encoders.audio import AudioEncoderConfig
from semid.encoders.cache import EmbeddingCache
from semid.encoders.cooc import Item2VecConfig
from semid.encoders.feature_spec import (
    FEATURE_KINDS,
    AudioFeature,
    CodesFeature,
    ImageFeature,
    Item2VecFeature,
    MultiHotFeature,
    PrecomputedFeature,
    SASRecFeature,
    TextFeature,
    check_names,
    feature_kind,
)
from semid.encoders.image import ImageEncoderConfig
from semid.encoders.multihot import MultiHotConfig
from semid.encoders.text import TextEncoderConfig, render
from semid.errors import ConfigError, DataError

log = logging.getLogger(__name__)
ENCODERS = ("text", "multihot", "image", "audio")


@dataclass(frozen=True)
class FieldSpec:
    """One catalog field -> one FusID modality."""

    field: str = ""  # catalog field name
    encoder: str = "text"  # text | multihot | image | audio (set fields under "text" are rendered first)
    modality: str = ""  # name of the resulting modality ("" = the field name)


@dataclass(frozen=True)
class FeaturesConfig:
    """Which modalities FusID builds itself and how each is encoded (expanded to feature specs)."""

    fields: tuple[
        FieldSpec, ...
    ] = ()  # explicit field specs; empty = every catalog field (see auto_set_encoder)
    auto_set_encoder: str = "text"  # with fields=(): set-valued fields use text (rendered) | multihot
    cooc: bool = True  # add item2vec co-occurrence from the train sequences as modality "cooc"
    use_embeddings: bool = True  # add every catalog.embeddings entry (the run's features too) as a modality
    use_codes: bool = True  # add every catalog.codes entry as one-hots, modality "codes:<name>"
    # Level l's one-hot is scaled by decay**l: 1.0 = plain concatenated one-hots (default); < 1 makes
    # coarse levels dominate distances, like the residual structure the tuples came from.
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


def _field_feature(cfg: FeaturesConfig, spec: FieldSpec):
    name = spec.modality or spec.field
    if spec.encoder == "text":
        return TextFeature(name=name, fields=(spec.field,), encoder=cfg.text)
    cls, enc = {"multihot": (MultiHotFeature, cfg.multihot), "image": (ImageFeature, cfg.image),
                "audio": (AudioFeature, cfg.audio)}[spec.encoder]
    return cls(name=name, field=spec.field, encoder=enc)


def fusid_feature_specs(catalog: Catalog, cfg: FeaturesConfig, train: Interactions | None = None) -> tuple:
    """FusID's modalities as feature specs, in this order: the catalog fields (explicit ``cfg.fields``, or
    every non-empty field: set fields per ``auto_set_encoder``, others as text), item2vec "cooc" (with train
    sequences), every ``catalog.embeddings`` entry, every ``catalog.codes`` entry as "codes:<name>"."""
    from semid.data.codes import level_decay_weights

    for spec in cfg.fields:
        if spec.encoder not in ENCODERS:
            raise ConfigError(
                f"features.fields[{spec.field!r}].encoder must be one of {ENCODERS}, got {spec.encoder!r}")
    fields = list(cfg.fields) or [
        FieldSpec(field=n, encoder=cfg.auto_set_encoder if _is_set_field(v) else "text")
        for n, v in catalog.fields.items() if not all(is_missing(x) for x in v)]
    specs = [_field_feature(cfg, s) for s in fields]
    if cfg.cooc and train is not None and train.n_interactions > 0:
        specs.append(Item2VecFeature(name="cooc", encoder=cfg.item2vec))
    if cfg.use_embeddings:
        specs += [PrecomputedFeature(name=n, source=n) for n in catalog.embeddings]
    if cfg.use_codes and catalog.codes:
        level_decay_weights(cfg.code_level_decay, 1)  # names code_level_decay when out of range
        specs += [CodesFeature(name=f"codes:{n}", source=n, decay=cfg.code_level_decay) for n in catalog.codes]
    try:
        check_names(specs)
    except ConfigError as e:
        raise ConfigError(f"FusID modalities {[s.name for s in specs]}: {e} (a catalog field, 'cooc' or a "
                          "run feature share a name; rename the run feature)") from None
    return tuple(specs)


def build_fusid_features(catalog: Catalog, train: Interactions | None, cfg: FeaturesConfig) -> dict:
    """FusID's modalities: ``build_features`` over ``fusid_feature_specs``, cached as ``cfg`` says."""
    cache = EmbeddingCache(cfg.cache_dir or None) if cfg.cache else False
    return build_features(fusid_feature_specs(catalog, cfg, train), catalog, train, dataset=cfg.dataset, cache=cache)


def interactions_hash(train: Interactions) -> bytes:
    h = hashlib.sha1(np.ascontiguousarray(train.offsets).tobytes())
    h.update(np.ascontiguousarray(train.items).tobytes())
    return h.hexdigest().encode()


def _fields(spec, catalog: Catalog, names: tuple[str, ...]) -> None:
    kind = feature_kind(spec)
    if not names or any(not n for n in names):
        raise ConfigError(f"feature {spec.name!r} ({kind}) names no catalog field; available: {sorted(catalog.fields)}")
    missing = [n for n in names if n not in catalog.fields]
    if missing:
        raise ConfigError(f"feature {spec.name!r} ({kind}): catalog field(s) {missing} not in this dataset; "
                          f"available: {sorted(catalog.fields)}")


def _precomputed(spec: PrecomputedFeature, catalog: Catalog) -> tuple[np.ndarray, np.ndarray]:
    """A catalog embedding as it is, or a .npy file [n_items, d] (all-NaN rows: mask False, zeroed)."""
    n = catalog.n_items
    from_file = spec.source not in catalog.embeddings
    if not from_file:
        emb = np.asarray(catalog.embeddings[spec.source], dtype=np.float32)
        mask = np.asarray(catalog.masks.get(spec.source, np.ones(n, dtype=bool)), dtype=bool)
        where = f"catalog.embeddings[{spec.source!r}]"
    else:
        path = Path(spec.source).expanduser().resolve()
        if not spec.source or path.suffix != ".npy" or not path.is_file():
            raise ConfigError(f"feature {spec.name!r} (precomputed): source {spec.source!r} is neither a catalog "
                              f"embedding {sorted(catalog.embeddings)} nor an existing .npy file ({path})")
        try:
            emb = np.load(path, allow_pickle=False)
        except ValueError as e:
            raise DataError(f"{path}: feature {spec.name!r} needs a plain numeric .npy array ({e})") from None
        if not np.issubdtype(emb.dtype, np.number):
            raise DataError(f"{path}: feature {spec.name!r} needs a numeric array, got dtype {emb.dtype}")
        where, emb = str(path), emb.astype(np.float32)
        mask = ~np.isnan(emb).all(axis=1) if emb.ndim == 2 else np.ones(n, dtype=bool)
    if emb.ndim != 2 or emb.shape[0] != n or (spec.dim and emb.shape[1] != spec.dim):
        raise DataError(f"{where}: feature {spec.name!r} expects shape ({n}, {spec.dim or 'd'}) (one row per "
                        f"catalog item, in catalog order), got {emb.shape}")
    if from_file:  # missing rows become zeros
        if not np.isfinite(emb[mask]).all():
            raise DataError(f"{where}: feature {spec.name!r} has NaN/inf in rows that are not all NaN")
        emb = np.where(mask[:, None], emb, 0.0).astype(np.float32)
    return emb, mask


def build_features(specs, catalog: Catalog, train: Interactions | None = None, *, dataset: str = "catalog",
                   cache: EmbeddingCache | bool = True, sasrec_fn=None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Typed feature specs -> ``{spec.name: (float32 [n_items, d], bool mask [n_items])}``, in spec order.

    ``dataset`` names the cache entries; ``cache`` is an EmbeddingCache, True ($SEMID_CACHE) or False (none);
    ``sasrec_fn(train, catalog) -> float32 [n_items, d]`` trains the z_cf SASRec for ``sasrec`` specs
    (``semid.pipeline.runner`` passes one fitted on the train split)."""
    from semid.data.codes import codes_to_onehot, level_decay_weights

    specs = tuple(specs)
    for s in specs:
        if type(s) not in FEATURE_KINDS.values():
            raise ConfigError(f"feature spec {s!r} is not a feature config; valid kinds: {list(FEATURE_KINDS)} "
                              "(strings: semid.encoders.feature_spec.parse_legacy)")
    check_names(specs)
    if cache is True:
        cache = EmbeddingCache()
    ids = catalog.item_ids
    text_encoders: dict = {}

    def cached(key_field: str, enc, compute, extra: bytes = b""):
        if not cache:
            return compute()
        return cache.get_or_compute(dataset, key_field, enc.name, enc.config_dict(), ids, compute, extra=extra)

    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for spec in specs:
        if isinstance(spec, TextFeature):
            from semid.encoders.text import TextEncoder

            _fields(spec, catalog, spec.fields)
            enc = text_encoders.setdefault(spec.encoder, TextEncoder(config=spec.encoder))  # one model load
            texts = []
            for i in range(catalog.n_items):
                parts = [p for p in (render(f, catalog.fields[f][i]) for f in spec.fields) if p]
                texts.append(". ".join(parts) if parts else None)
            # cache key field "title+tags": the key the string specs and FusID used, so old caches stay valid
            res = cached("+".join(spec.fields), enc, lambda enc=enc, texts=texts: enc.encode(texts))
        elif isinstance(spec, MultiHotFeature | ImageFeature | AudioFeature):
            _fields(spec, catalog, (spec.field,))
            enc = _media_encoder(spec)
            values = catalog.fields[spec.field]
            res = cached(spec.field, enc, lambda enc=enc, values=values: enc.encode(values))
        elif isinstance(spec, Item2VecFeature):
            from semid.encoders.cooc import Item2VecEncoder

            if train is None:
                raise ConfigError(f"feature {spec.name!r} (item2vec) learns from the train sequences; pass train")
            enc = Item2VecEncoder(config=spec.encoder)
            res = cached("cooc", enc, lambda enc=enc: enc.fit_transform(train, catalog.n_items),
                         extra=interactions_hash(train))
        elif isinstance(spec, SASRecFeature):
            if sasrec_fn is None or train is None:
                raise ConfigError(f"feature {spec.name!r} (sasrec) needs the train sequences and a z_cf SASRec "
                                  "trainer: build it through semid.pipeline.runner.build_features (semid run / "
                                  "semid tokenize), or attach catalog.embeddings yourself")
            emb = np.asarray(sasrec_fn(train, catalog), dtype=np.float32)
            seen = np.zeros(catalog.n_items, dtype=bool)
            seen[train.items] = True
            res = (emb, seen)
        elif isinstance(spec, CodesFeature):
            if spec.source not in catalog.codes:
                raise ConfigError(f"feature {spec.name!r} (codes): {spec.source!r} is not a catalog code tuple; "
                                  f"available: {sorted(catalog.codes)}")
            codes = np.asarray(catalog.codes[spec.source])
            sizes = catalog.code_sizes.get(spec.source) or [int(m) + 1 for m in codes.max(axis=0)]
            # int [N, L] -> float32 [N, sum(sizes)], level l's one-hot scaled by decay**l; rows with a -1: zeros
            res = (codes_to_onehot(codes, sizes, weights=level_decay_weights(spec.decay, len(sizes))),
                   (codes >= 0).all(axis=1))
        else:
            res = _precomputed(spec, catalog)
        emb, mask = np.asarray(res[0], dtype=np.float32), np.asarray(res[1], dtype=bool)
        if emb.ndim != 2 or emb.shape[0] != catalog.n_items or mask.shape != (catalog.n_items,):
            raise DataError(f"feature {spec.name!r} ({feature_kind(spec)}): built {emb.shape} / mask {mask.shape} "
                            f"for {catalog.n_items} items")
        out[spec.name] = (emb, mask)
    return out


def _media_encoder(spec):
    if isinstance(spec, MultiHotFeature):
        from semid.encoders.multihot import MultiHotEncoder

        return MultiHotEncoder(config=spec.encoder)
    if isinstance(spec, ImageFeature):
        from semid.encoders.image import ImageEncoder

        return ImageEncoder(config=spec.encoder)
    from semid.encoders.audio import AudioEncoder

    return AudioEncoder(config=spec.encoder)


def attach_features(specs, catalog: Catalog, train: Interactions | None = None, *, dataset: str = "catalog",
                    cache: EmbeddingCache | bool = True, sasrec_fn=None) -> dict[str, dict]:
    """``build_features`` with each result put in ``catalog.embeddings[name]`` / ``catalog.masks[name]``
    (where the tokenizers' modality fields find them); returns ``{name: {kind, spec, dim, coverage}}``."""
    built = build_features(specs, catalog, train, dataset=dataset, cache=cache, sasrec_fn=sasrec_fn)
    summary: dict[str, dict] = {}
    for spec in specs:
        emb, mask = built[spec.name]
        catalog.embeddings[spec.name], catalog.masks[spec.name] = emb, mask
        kind = feature_kind(spec)
        summary[spec.name] = {"kind": kind, "spec": {"kind": kind, **to_dict(spec)}, "dim": int(emb.shape[1]),
                              "coverage": float(np.mean(mask))}
        log.info("feature %s: %s -> %s dims, coverage %.3f", spec.name, kind, emb.shape[1], np.mean(mask))
    return summary
