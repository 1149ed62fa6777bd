"""Frozen-dataclass configs: dotted overrides (``train.lr=3e-4``), JSON round-trip, clear errors."""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from typing import Any, TypeVar

from semid.errors import ConfigError

T = TypeVar("T")


def to_dict(cfg: Any) -> dict:
    """Nested dataclass -> plain dict (JSON-ready)."""
    return dataclasses.asdict(cfg)


def _coerce(value: Any, tp: Any, name: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            return None
        return _coerce(value, args[0], name)
    if dataclasses.is_dataclass(tp):
        if isinstance(value, dict):
            return from_dict(tp, value)
        raise ConfigError(f"config field {name!r} expects a mapping for {tp.__name__}")
    if origin in (tuple, list):
        (inner, *_) = typing.get_args(tp) or (str,)
        if isinstance(value, str):
            value = json.loads(value) if value.strip().startswith("[") else [v for v in value.split(",") if v]
        seq = [_coerce(v, inner, name) for v in value]
        return tuple(seq) if origin is tuple else seq
    if tp is bool:
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("1", "true", "yes", "on"):
            return True
        if str(value).lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"config field {name!r} expects a bool, got {value!r}")
    if tp in (int, float, str):
        try:
            if tp is int and isinstance(value, str):
                return int(float(value)) if "e" in value.lower() else int(value)
            return tp(value)
        except (TypeError, ValueError):
            raise ConfigError(f"config field {name!r} expects {tp.__name__}, got {value!r}") from None
    return value


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def differences(a: Any, b: Any, path: str = "") -> list[str]:
    """Dotted paths where two JSON config dicts differ, as 'path: a != b' (sorted keys, nested dicts walked)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for k in sorted(set(a) | set(b)):
            out += differences(a.get(k), b.get(k), f"{path}.{k}" if path else k)
        return out
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


def from_dict(cls: type[T], data: dict) -> T:
    """Build ``cls`` from a (possibly partial) dict; unknown keys are an error naming the valid ones."""
    hints = _hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ConfigError(f"unknown field(s) {sorted(unknown)} for {cls.__name__}; valid: {sorted(names)}")
    kwargs = {k: _coerce(v, hints[k], f"{cls.__name__}.{k}") for k, v in data.items()}
    return cls(**kwargs)


def override(cfg: T, dotted: dict[str, Any]) -> T:
    """Return a copy of ``cfg`` with dotted-path fields replaced, e.g. {"train.lr": "3e-4"}."""
    for key, value in dotted.items():
        cfg = _set(cfg, key.split("."), value, key)
    return cfg


def _set(obj: Any, path: list[str], value: Any, full: str) -> Any:
    if not dataclasses.is_dataclass(obj):
        raise ConfigError(f"override {full!r}: {path[0]!r} is not a config section")
    names = {f.name for f in dataclasses.fields(obj)}
    head = path[0]
    if head not in names:
        raise ConfigError(f"override {full!r}: {type(obj).__name__} has no field {head!r}; valid: {sorted(names)}")
    if len(path) == 1:
        new = _coerce(value, _hints(type(obj))[head], full)
    else:
        new = _set(getattr(obj, head), path[1:], value, full)
    return dataclasses.replace(obj, **{head: new})


def parse_overrides(args: list[str]) -> dict[str, str]:
    """['--train.lr=3e-4', 'model.n_layer=2'] -> {'train.lr': '3e-4', 'model.n_layer': '2'}."""
    out: dict[str, str] = {}
    for a in args:
        a = a[2:] if a.startswith("--") else a
        if "=" not in a:
            raise ConfigError(f"override {a!r} must look like section.field=value")
        k, v = a.split("=", 1)
        out[k] = v
    return out
