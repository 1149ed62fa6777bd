"""The typed item-feature spec: one frozen config per feature kind, a tagged union of them, and the legacy
``name=kind[:args]`` strings (``--features='["cf=sasrec"]'``) as sugar that parses to it.

A run's ``features`` is a tuple of these specs (JSON ``{"kind": "text", "name": "text", "fields": [...]}``);
``semid.encoders.features.build_features`` turns each into float32 [n_items, d] plus a bool mask [n_items],
and tokenizers select their inputs by the spec's ``name`` (``rqvae.modality=text``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from dataclasses import field as dc_field
from pathlib import Path
from typing import Annotated

from semid.config import TaggedUnion
from semid.encoders.audio import AudioEncoderConfig
from semid.encoders.cooc import Item2VecConfig
from semid.encoders.image import ImageEncoderConfig
from semid.encoders.multihot import MultiHotConfig
from semid.encoders.text import TextEncoderConfig
from semid.errors import ConfigError


def _default_name(spec, name: str) -> None:
    """Frozen dataclasses set a derived default name through object.__setattr__ (once, in __post_init__)."""
    if not spec.name:
        object.__setattr__(spec, "name", name)


@dataclass(frozen=True)
class TextFeature:
    """Sentence-transformers embedding of catalog fields rendered to one text per item."""

    name: str = ""  # modality name ("" = the fields joined by "+")
    fields: tuple[str, ...] = ()  # catalog fields, each rendered ("genres: a, b" for sets), joined by ". "
    encoder: TextEncoderConfig = dc_field(default_factory=TextEncoderConfig)  # model, batch size, device

    def __post_init__(self):
        _default_name(self, "+".join(self.fields))


@dataclass(frozen=True)
class MultiHotFeature:
    """Multi-hot vector of a set-valued catalog field (genres, categories, tags)."""

    name: str = ""  # modality name ("" = the field name)
    field: str = ""  # the set-valued catalog field
    encoder: MultiHotConfig = dc_field(default_factory=MultiHotConfig)  # vocabulary and optional projection

    def __post_init__(self):
        _default_name(self, self.field)


@dataclass(frozen=True)
class ImageFeature:
    """Image embedding of a catalog field holding image paths or URLs."""

    name: str = ""  # modality name ("" = the field name)
    field: str = ""  # catalog field with one image path per item
    encoder: ImageEncoderConfig = dc_field(default_factory=ImageEncoderConfig)  # image model settings

    def __post_init__(self):
        _default_name(self, self.field)


@dataclass(frozen=True)
class AudioFeature:
    """Audio embedding of a catalog field holding audio file paths."""

    name: str = ""  # modality name ("" = the field name)
    field: str = ""  # catalog field with one audio path per item
    encoder: AudioEncoderConfig = dc_field(default_factory=AudioEncoderConfig)  # audio features settings

    def __post_init__(self):
        _default_name(self, self.field)


@dataclass(frozen=True)
class Item2VecFeature:
    """Skip-gram co-occurrence embeddings learned on the TRAIN split only."""

    name: str = "cooc"  # modality name
    encoder: Item2VecConfig = dc_field(default_factory=Item2VecConfig)  # window, dim, epochs, seed

    def __post_init__(self):
        if self.encoder.window < 1 or self.encoder.dim < 1:
            raise ConfigError(f"feature {self.name!r} (item2vec): window and dim must be >= 1, got "
                              f"window={self.encoder.window}, dim={self.encoder.dim}")


@dataclass(frozen=True)
class SASRecFeature:
    """SASRec item embeddings (z_cf) trained on the TRAIN split; its settings are the run's ``cf_sasrec``."""

    name: str = "cf"  # modality name (LETTER / MusicRec read it as cf_embedding)


@dataclass(frozen=True)
class CodesFeature:
    """Precomputed code tuples ``catalog.codes[source]`` as concatenated per-level one-hots."""

    name: str = ""  # modality name ("" = "codes:<source>")
    source: str = ""  # catalog.codes key (MQL4GRec's lemb, vitemb, ...)
    decay: float = 1.0  # level l's one-hot scaled by decay**l; 1 = plain one-hots, < 1 = coarse levels dominate

    def __post_init__(self):
        if not 0.0 < self.decay <= 1.0:
            raise ConfigError(f"feature {self.name or self.source!r} (codes): decay must be in (0, 1], "
                              f"got {self.decay}")
        _default_name(self, f"codes:{self.source}" if self.source else "")


@dataclass(frozen=True)
class PrecomputedFeature:
    """An embedding given as it is: a ``catalog.embeddings`` key, or a float .npy file [n_items, d] in catalog
    order (rows of NaN = item without it)."""

    name: str = ""  # modality name ("" = the source, a file's stem)
    source: str = ""  # catalog.embeddings key or path to a .npy file
    dim: int = 0  # expected width d (0 = any); a file of another width is an error

    def __post_init__(self):
        _default_name(self, Path(self.source).stem if self.source.endswith(".npy") else self.source)


FEATURE_KINDS: dict[str, type] = {
    "text": TextFeature,
    "multihot": MultiHotFeature,
    "image": ImageFeature,
    "audio": AudioFeature,
    "item2vec": Item2VecFeature,
    "sasrec": SASRecFeature,
    "codes": CodesFeature,
    "precomputed": PrecomputedFeature,
}
FeatureSpec = TextFeature | MultiHotFeature | ImageFeature | AudioFeature | Item2VecFeature | SASRecFeature | \
    CodesFeature | PrecomputedFeature
SYNTAX = ("name=kind[:args] with kind text:f1,f2 | multihot:f | image:f | audio:f | item2vec[:window=w,dim=d] | "
          "sasrec | codes:k[,decay=d] | precomputed:key_or_file.npy[,dim=d], or a JSON object {\"kind\": ...}")


def feature_kind(spec) -> str:
    """``text``, ``item2vec``, ... for a spec instance."""
    return FEATURE_UNION.kind_of(spec)


def _options(spec: str, args: list[str], allowed: dict[str, type]) -> tuple[list[str], dict]:
    """Split ``args`` into positional names and ``key=value`` options of the ``allowed`` types."""
    opts = dict(a.split("=", 1) for a in args if "=" in a)
    names = [a for a in args if "=" not in a]
    if set(opts) - set(allowed):
        raise ConfigError(f"feature {spec!r}: unknown option(s) {sorted(set(opts) - set(allowed))}; "
                          f"valid: {sorted(allowed)}")
    try:
        return names, {k: allowed[k](v) for k, v in opts.items()}
    except ValueError:
        raise ConfigError(f"feature {spec!r}: options {sorted(opts)} must be {[t.__name__ for t in allowed.values()]}"
                          ) from None


def parse_legacy(spec: str, *, seed: int = 0):
    """A ``name=kind[:args]`` string (or a bare arg-less kind: ``item2vec``, ``sasrec``) -> its typed spec.

    ``seed`` seeds item2vec (the run seed, as the string specs always used) and multi-hot, as ``--seed`` would."""
    spec = spec.strip()
    if "=" not in spec.partition(":")[0]:
        if spec in ("item2vec", "sasrec"):
            spec = f"{Item2VecFeature.name if spec == 'item2vec' else SASRecFeature.name}={spec}"
        else:
            raise ConfigError(f"feature spec {spec!r} must look like {SYNTAX}; valid kinds: {list(FEATURE_KINDS)}")
    name, rest = (s.strip() for s in spec.split("=", 1))
    kind, _, argstr = rest.partition(":")
    kind, args = kind.strip(), [a.strip() for a in argstr.split(",") if a.strip()]
    if not name:
        raise ConfigError(f"feature spec {spec!r}: the name before '=' is empty")
    if kind == "text":
        names, _ = _options(spec, args, {})
        if not names:
            raise ConfigError(f"feature {spec!r}: text needs at least one catalog field, e.g. {name}=text:title,tags")
        return TextFeature(name=name, fields=tuple(names))
    if kind in ("multihot", "image", "audio"):
        names, _ = _options(spec, args, {})
        if len(names) != 1:
            raise ConfigError(f"feature {spec!r}: {kind} needs exactly one catalog field, e.g. {name}={kind}:genres")
        if kind == "multihot":  # the seed only drives a projection (dim > 0), which the strings cannot ask for
            return MultiHotFeature(name=name, field=names[0], encoder=MultiHotConfig(seed=seed))
        return FEATURE_KINDS[kind](name=name, field=names[0])
    if kind == "item2vec":
        names, opts = _options(spec, args, {"window": int, "dim": int})
        if names:
            raise ConfigError(f"feature {spec!r}: use item2vec[:window=<int>,dim=<int>]")
        return Item2VecFeature(name=name, encoder=Item2VecConfig(seed=seed, **opts))
    if kind == "sasrec":
        if args:
            raise ConfigError(f"feature {spec!r}: sasrec takes no arguments (its settings are --cf_sasrec.*)")
        return SASRecFeature(name=name)
    if kind == "codes":
        names, opts = _options(spec, args, {"decay": float})
        if len(names) != 1:
            raise ConfigError(f"feature {spec!r}: use codes:<catalog code name>[,decay=<d>]")
        return CodesFeature(name=name, source=names[0], **opts)
    if kind == "precomputed":
        names, opts = _options(spec, args, {"dim": int})
        if len(names) != 1:
            raise ConfigError(f"feature {spec!r}: use precomputed:<catalog embedding name or file.npy>[,dim=<d>]")
        return PrecomputedFeature(name=name, source=names[0], **opts)
    raise ConfigError(f"feature {spec!r}: unknown kind {kind!r}; valid kinds: {list(FEATURE_KINDS)} ({SYNTAX})")


FEATURE_UNION = TaggedUnion(FEATURE_KINDS, what="feature", parse=parse_legacy)
FeatureSection = Annotated[object, FEATURE_UNION]


def check_names(specs) -> None:
    """Every spec has a non-empty name and no two share one (a later one would overwrite the earlier)."""
    seen: set[str] = set()
    for s in specs:
        if not s.name:
            raise ConfigError(f"feature {s!r} has no name; set name=...")
        if s.name in seen:
            raise ConfigError(f"two features are named {s.name!r}; give each a distinct name")
        seen.add(s.name)


_NEW_SPEC = re.compile(rf"^\s*[^=:,\s]+\s*=\s*({'|'.join(FEATURE_KINDS)})\b|^\s*(item2vec|sasrec)\s*$")


def _split_specs(text: str) -> list[str]:
    """'a=item2vec,t=text:title,tags' -> ['a=item2vec', 't=text:title,tags']: a comma starts a new spec only
    where ``name=<kind>`` follows (the pieces of one spec's argument list stay together)."""
    out: list[str] = []
    for piece in text.split(","):
        if out and not _NEW_SPEC.match(piece):
            out[-1] += "," + piece
        elif piece.strip():
            out.append(piece)
    return out


def coerce_features(value, *, seed: int = 0) -> tuple:
    """A run's ``features`` in any accepted form -> a tuple of typed specs: spec instances, JSON objects
    ``{"kind": ...}``, legacy strings (item2vec seeded with ``seed``), a JSON list or comma-joined string."""
    from semid.config import _coerce_tagged

    if value is None:
        return ()
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except json.JSONDecodeError as e:
                raise ConfigError(f"features={value!r} is not a valid JSON list: {e}") from None
        else:
            value = _split_specs(text)
    if isinstance(value, dict) or not isinstance(value, list | tuple):
        value = [value]
    out = []
    for v in value:
        if isinstance(v, str):
            out.append(parse_legacy(v, seed=seed))
        elif isinstance(v, dict):
            out.append(_coerce_tagged(v, FEATURE_UNION, "features"))
        elif type(v) in FEATURE_KINDS.values():
            out.append(v)
        else:
            raise ConfigError(f"features: {v!r} is not a feature spec; valid kinds: {list(FEATURE_KINDS)} ({SYNTAX})")
    check_names(out)
    return tuple(out)


def upgrade_features(raw: dict) -> dict:
    """A stored config dict whose ``features`` are strings (layouts before the typed spec) -> the same dict with
    typed JSON specs, item2vec seeded with the dict's run seed as the string specs' runner did."""
    from semid.config import to_dict

    feats = raw.get("features") if isinstance(raw, dict) else None
    if not feats or not any(isinstance(f, str) for f in feats):
        return raw
    specs = coerce_features(list(feats), seed=int(raw.get("seed", 0)))
    return {**raw, "features": [{"kind": feature_kind(s), **to_dict(s)} for s in specs]}
