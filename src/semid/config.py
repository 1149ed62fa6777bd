"""Frozen-dataclass configs: dotted overrides (``train.lr=3e-4``), JSON round-trip, tagged unions, field docs.

A field typed ``Annotated[A | B | None, TaggedUnion({"a": A, "b": B, "none": None})]`` holds one of several
component configs; its JSON form is ``{"kind": "a", ...A's fields}`` (or null), and a dotted override of the
field itself (``tokenizer=b``) selects the kind B with its defaults.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import io
import json
import textwrap
import tokenize
import types
import typing
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from semid.errors import ConfigError

T = TypeVar("T")
KIND = "kind"  # key naming the selected member of a tagged union in JSON


@dataclasses.dataclass(frozen=True)
class TaggedUnion:
    """Metadata of an ``Annotated`` union field: kind name -> config class (None = nothing selected)."""

    kinds: dict[str, type | None]
    what: str = "component"  # noun used in error messages ("tokenizer", "model")
    # string sugar: parse(s) -> a member instance for any string value (the features' "name=kind:args");
    # None = a string names a kind, selected with its defaults
    parse: Callable[[str], Any] | None = None

    def kind_of(self, value: Any) -> str:
        for name, cls in self.kinds.items():
            if (value is None and cls is None) or (cls is not None and type(value) is cls):
                return name
        raise ConfigError(f"{type(value).__name__} is not a {self.what} config; valid kinds: {list(self.kinds)}")

    def cls(self, kind: str, where: str) -> type | None:
        if kind not in self.kinds:
            raise ConfigError(f"{where}: unknown {self.what} {kind!r}; valid: {list(self.kinds)}")
        return self.kinds[kind]

    def default(self, kind: str, where: str) -> Any:
        cls = self.cls(kind, where)
        return None if cls is None else cls()


def _tagged(tp: Any) -> TaggedUnion | None:
    if typing.get_origin(tp) is typing.Annotated:
        return next((m for m in tp.__metadata__ if isinstance(m, TaggedUnion)), None)
    return None


def _strip(tp: Any) -> Any:
    return typing.get_args(tp)[0] if typing.get_origin(tp) is typing.Annotated else tp


def _tagged_items(tp: Any) -> TaggedUnion | None:
    """The union of a ``tuple[Annotated[..., TaggedUnion], ...]`` field's items (a run's feature specs)."""
    tp = _strip(tp)
    if typing.get_origin(tp) in (tuple, list) and typing.get_args(tp):
        return _tagged(typing.get_args(tp)[0])
    return None


def to_dict(cfg: Any) -> Any:
    """Nested dataclass -> plain JSON-ready dict (tuples become lists, tagged unions carry their ``kind``)."""
    if dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
        hints = _hints(type(cfg))
        out = {}
        for f in dataclasses.fields(cfg):
            v = getattr(cfg, f.name)
            tu, items = _tagged(hints[f.name]), _tagged_items(hints[f.name])
            if tu is not None and v is not None:
                out[f.name] = {KIND: tu.kind_of(v), **to_dict(v)}
            elif items is not None and v is not None:
                out[f.name] = [{KIND: items.kind_of(x), **to_dict(x)} for x in v]
            else:
                out[f.name] = to_dict(v)
        return out
    if isinstance(cfg, tuple | list):
        return [to_dict(v) for v in cfg]
    if isinstance(cfg, dict):
        return {k: to_dict(v) for k, v in cfg.items()}
    return cfg


def _coerce_tagged(value: Any, tu: TaggedUnion, name: str) -> Any:
    if isinstance(value, str) and tu.parse is not None:
        return tu.parse(value)
    if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
        return tu.default("none", name)
    if isinstance(value, str):
        return tu.default(value, name)
    if isinstance(value, dict):
        if KIND not in value:
            raise ConfigError(f"config field {name!r} needs a {KIND!r} key; valid kinds: {list(tu.kinds)}")
        cls = tu.cls(value[KIND], name)
        rest = {k: v for k, v in value.items() if k != KIND}
        if cls is None:
            if rest:
                raise ConfigError(f"config field {name!r}: kind 'none' takes no fields, got {sorted(rest)}")
            return None
        return from_dict(cls, rest)
    tu.kind_of(value)  # an instance of one of the members passes through
    return value


def _coerce(value: Any, tp: Any, name: str) -> Any:
    tu = _tagged(tp)
    if tu is not None:
        return _coerce_tagged(value, tu, name)
    tp = _strip(tp)
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            return None
        return _coerce(value, args[0], name)
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
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


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls, include_extras=True)


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
    if not isinstance(data, dict):
        raise ConfigError(f"{cls.__name__} expects a mapping, got {type(data).__name__}")
    hints = _hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ConfigError(f"unknown field(s) {sorted(unknown)} for {cls.__name__}; valid: {sorted(names)}")
    kwargs = {k: _coerce(v, hints[k], f"{cls.__name__}.{k}") for k, v in data.items()}
    return cls(**kwargs)


def override(cfg: T, dotted: dict[str, Any]) -> T:
    """Return a copy of ``cfg`` with dotted-path fields replaced, e.g. {"train.lr": "3e-4"}."""
    return set_paths(cfg, [(key, value, key) for key, value in dotted.items()])


def set_path(cfg: T, key: str, value: Any, *, label: str | None = None) -> T:
    """``cfg`` with the field at dotted ``key`` set to ``value``; errors quote ``label`` (default ``key``)."""
    return _set_many(cfg, [(key.split("."), value, label or key)])


def set_paths(cfg: T, items: list[tuple[str, Any, str]]) -> T:
    """``cfg`` with every ``(dotted path, value, label)`` applied, each config object rebuilt once with all its
    new values, so checks that tie fields together (``__post_init__``) see the final combination, never an
    intermediate one (``n_codes=6`` before ``diversity_groups=2``). A later item for the same path wins."""
    return _set_many(cfg, [(key.split("."), value, label) for key, value, label in items])


def _set_many(obj: Any, items: list[tuple[list[str], Any, str]]) -> Any:
    changes: dict[str, Any] = {}
    groups: dict[str, list] = {}
    for path, value, label in items:
        if obj is None:
            raise ConfigError(f"override {label!r}: that section is not selected (kind 'none')")
        if not dataclasses.is_dataclass(obj):
            raise ConfigError(f"override {label!r}: {path[0]!r} is not a config section")
        names = {f.name for f in dataclasses.fields(obj)}
        head = path[0]
        if head not in names:
            raise ConfigError(
                f"override {label!r}: {type(obj).__name__} has no field {head!r}; valid: {sorted(names)}")
        if len(path) == 1:
            groups.pop(head, None)  # a whole-field value replaces earlier nested edits of it
            tp, current = _hints(type(obj))[head], changes.get(head, getattr(obj, head))
            tu = _tagged(tp)
            if tu is not None and isinstance(value, str) and value in tu.kinds and tu.kinds[value] is type(current):
                changes[head] = current  # selecting the kind already selected keeps its settings
            else:
                changes[head] = _coerce(value, tp, label)
        else:
            groups.setdefault(head, []).append((path[1:], value, label))
    for head, sub in groups.items():
        changes[head] = _set_many(changes.get(head, getattr(obj, head)), sub)
    return dataclasses.replace(obj, **changes) if changes else obj


def replace_everywhere(cfg: T, name: str, value: Any, *, where: Callable[[Any], bool] = lambda obj: True) -> T:
    """``cfg`` with every field called ``name`` in its dataclass tree (unions included) set to ``value``.

    ``where(obj)`` picks which dataclass instances are touched; found by walking the tree, not by a list.
    """
    if not dataclasses.is_dataclass(cfg) or isinstance(cfg, type):
        return cfg
    changes = {}
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        if f.name == name and where(cfg):
            changes[f.name] = value
        elif dataclasses.is_dataclass(v):
            new = replace_everywhere(v, name, value, where=where)
            if new is not v:
                changes[f.name] = new
        elif isinstance(v, tuple) and any(dataclasses.is_dataclass(x) for x in v):  # e.g. the feature specs
            items = tuple(replace_everywhere(x, name, value, where=where) for x in v)
            if any(a is not b for a, b in zip(items, v, strict=True)):
                changes[f.name] = items
    return dataclasses.replace(cfg, **changes) if changes else cfg


def find_all(cfg: Any, name: str, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted path, value) of every field called ``name`` in ``cfg``'s dataclass tree."""
    if not dataclasses.is_dataclass(cfg):
        return
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        path = f"{prefix}{f.name}"
        if f.name == name:
            yield path, v
        elif dataclasses.is_dataclass(v):
            yield from find_all(v, name, path + ".")
        elif isinstance(v, tuple):
            for i, x in enumerate(v):
                yield from find_all(x, name, f"{path}[{i}].")


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


# ---- field documentation: the trailing ``# comment`` of each field (or the comment block above it) ----


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """{field name: one-line doc} parsed from the class source's comments; '' where a field has none."""
    docs = {f.name: "" for f in dataclasses.fields(cls)}
    try:
        src = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return docs
    comments: dict[int, str] = {}
    for tok in tokenize.generate_tokens(io.StringIO(src).readline):
        if tok.type == tokenize.COMMENT:
            comments[tok.start[0]] = tok.string.lstrip("#").strip()
    lines = src.splitlines()
    body = ast.parse(src).body[0].body
    for node in body:
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        name = node.target.id
        if name not in docs:
            continue
        doc = comments.get(node.end_lineno) or comments.get(node.lineno, "")
        if not doc:  # a comment block right above the field
            above, ln = [], node.lineno - 1
            while ln >= 1 and lines[ln - 1].strip().startswith("#"):
                above.insert(0, comments.get(ln, ""))
                ln -= 1
            doc = " ".join(above)
        docs[name] = doc
    return docs


def type_name(tp: Any) -> str:
    """Readable name of a field type: int, tuple[str, ...], RQVAEConfig | MusicRecConfig, ..."""
    tu, items = _tagged(tp), _tagged_items(tp)
    if tu is not None:
        return " | ".join(k for k in tu.kinds)
    if items is not None:
        return f"tuple[{' | '.join(items.kinds)}, ...]"
    tp = _strip(tp)
    if not typing.get_args(tp) and isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "")


@dataclasses.dataclass(frozen=True)
class FieldInfo:
    """One row of ``semid config fields``."""

    path: str  # dotted override path
    type: str  # readable type
    default: Any  # the value in the config it was listed from
    doc: str  # one-line doc from the source comment


def describe(cfg: Any, prefix: str = "") -> list[FieldInfo]:
    """Every leaf field under ``cfg`` (an instance: its values are shown as defaults), walked depth-first."""
    rows: list[FieldInfo] = []
    hints, docs = _hints(type(cfg)), field_docs(type(cfg))
    for f in dataclasses.fields(cfg):
        v, tp = getattr(cfg, f.name), hints[f.name]
        path = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(v) and _tagged(tp) is None:
            rows.append(FieldInfo(path, type_name(tp), "(section)", docs[f.name]))
            rows += describe(v, path + ".")
        else:
            items = _tagged_items(tp)
            shown = (_tagged(tp).kind_of(v) if _tagged(tp) is not None
                     else [{KIND: items.kind_of(x), **to_dict(x)} for x in v] if items is not None else to_dict(v))
            rows.append(FieldInfo(path, type_name(tp), shown, docs[f.name]))
    return rows
