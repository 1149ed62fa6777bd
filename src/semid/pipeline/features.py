"""Attach modality embeddings named by RunConfig.features to a catalog (cached, train-split only for CF)."""

from __future__ import annotations

import logging

import numpy as np

from semid.data.codes import codes_to_onehot, level_decay_weights
from semid.data.types import Catalog, Interactions
from semid.encoders.features import interactions_hash
from semid.errors import ConfigError

log = logging.getLogger(__name__)


def parse_spec(spec: str) -> tuple[str, str, list[str]]:
    """'text=text:title,tags' -> ('text', 'text', ['title', 'tags'])."""
    if "=" not in spec:
        raise ConfigError(f"feature spec {spec!r} must look like name=kind[:args], e.g. text=text:title,tags")
    name, rest = spec.split("=", 1)
    kind, _, args = rest.partition(":")
    return name.strip(), kind.strip(), [a.strip() for a in args.split(",") if a.strip()]


def attach_features(catalog: Catalog, train: Interactions, specs: tuple[str, ...], *, dataset: str,
                    seed: int = 0, sasrec_fn=None) -> dict[str, dict]:
    """Compute each spec into ``catalog.embeddings[name]`` / ``catalog.masks[name]``; returns a summary.

    ``sasrec_fn(train, catalog) -> float32 [n_items, d]`` trains the CF model when a spec asks for it.
    """
    from semid.encoders.cache import EmbeddingCache

    cache = EmbeddingCache()
    summary: dict[str, dict] = {}
    for spec in specs:
        name, kind, args = parse_spec(spec)
        if kind == "text":
            from semid.encoders.text import TextEncoder, render

            missing = [f for f in args if f not in catalog.fields]
            if not args or missing:
                raise ConfigError(f"feature {spec!r}: unknown field(s) {missing or '(none given)'}; "
                                  f"catalog has {sorted(catalog.fields)}")
            texts = []
            for i in range(catalog.n_items):
                parts = [render(f, catalog.fields[f][i]) for f in args]
                parts = [p for p in parts if p]
                texts.append(". ".join(parts) if parts else None)
            enc = TextEncoder()
            emb, mask = cache.get_or_compute(dataset, "+".join(args), enc.name, enc.config_dict(), catalog.item_ids,
                                             lambda enc=enc, texts=texts: enc.encode(texts))
        elif kind == "multihot":
            from semid.encoders.multihot import MultiHotEncoder

            if len(args) != 1 or args[0] not in catalog.fields:
                raise ConfigError(f"feature {spec!r}: multihot needs one field of {sorted(catalog.fields)}")
            emb, mask = MultiHotEncoder().encode(catalog.fields[args[0]])
        elif kind == "codes":
            # codes:<name>[,decay=<d>]: concatenated per-level one-hots, level l scaled by d**l
            opts = dict(a.split("=", 1) for a in args if "=" in a)
            names = [a for a in args if "=" not in a]
            if len(names) != 1 or names[0] not in catalog.codes or set(opts) - {"decay"}:
                raise ConfigError(f"feature {spec!r}: use codes:<one of {sorted(catalog.codes)}>[,decay=<d>]")
            c = catalog.codes[names[0]]
            sizes = catalog.code_sizes[names[0]]
            try:
                weights = level_decay_weights(float(opts.get("decay", 1.0)), len(sizes))
            except ConfigError as e:
                raise ConfigError(f"feature {spec!r}: {e}") from None
            emb = codes_to_onehot(c, sizes, weights=weights)
            mask = (c >= 0).all(axis=1)
        elif kind == "item2vec":
            from semid.encoders.cooc import Item2VecConfig, Item2VecEncoder

            # item2vec[:window=<w>,dim=<d>]: a long window sees a user's whole basket (global co-purchase),
            # the default 5 its neighbours in time; two windows give two co-occurrence views of one catalog
            opts = dict(a.split("=", 1) for a in args if "=" in a)
            if set(opts) - {"window", "dim"} or any("=" not in a for a in args):
                raise ConfigError(f"feature {spec!r}: use item2vec[:window=<int>,dim=<int>]")
            try:
                i2v = {k: int(v) for k, v in opts.items()}
            except ValueError:
                raise ConfigError(f"feature {spec!r}: window and dim must be integers") from None
            if any(v < 1 for v in i2v.values()):
                raise ConfigError(f"feature {spec!r}: window and dim must be >= 1")
            enc = Item2VecEncoder(config=Item2VecConfig(seed=seed, **i2v))
            emb, mask = cache.get_or_compute(dataset, "cooc", "item2vec", enc.config, catalog.item_ids,
                                             lambda enc=enc: enc.fit_transform(train, catalog.n_items),
                                             extra=interactions_hash(train))
        elif kind == "sasrec":
            if sasrec_fn is None:
                raise ConfigError("feature 'sasrec' needs a SASRec trainer")
            emb = np.asarray(sasrec_fn(train, catalog), dtype=np.float32)
            seen = np.zeros(catalog.n_items, dtype=bool)
            seen[train.items] = True
            mask = seen
        else:
            raise ConfigError(f"feature {spec!r}: unknown kind {kind!r}; use text, multihot, codes, item2vec or sasrec")
        catalog.embeddings[name] = np.asarray(emb, dtype=np.float32)
        catalog.masks[name] = np.asarray(mask, dtype=bool)
        summary[name] = {"kind": kind, "args": args, "dim": int(emb.shape[1]), "coverage": float(np.mean(mask))}
        log.info("feature %s: %s %s -> %s dims, coverage %.3f", name, kind, args, emb.shape[1], np.mean(mask))
    return summary
