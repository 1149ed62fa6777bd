"""Dotted overrides on frozen dataclass configs, with errors that name the bad field."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

import pytest

from semid.config import TaggedUnion, from_dict, override, parse_overrides, to_dict
from semid.errors import ConfigError


@dataclass(frozen=True)
class Inner:
    lr: float = 1e-3
    layers: int = 2
    mods: tuple[str, ...] = ("a", "b")
    flag: bool = False
    opt: int | None = None


@dataclass(frozen=True)
class Outer:
    name: str = "x"
    train: Inner = field(default_factory=Inner)


def test_override_and_round_trip():
    cfg = override(Outer(), parse_overrides(["--train.lr=3e-4", "train.layers=4", "--train.mods=a,c",
                                             "--train.flag=true", "--train.opt=none", "--name=y"]))
    assert cfg.train.lr == 3e-4 and cfg.train.layers == 4 and cfg.train.mods == ("a", "c")
    assert cfg.train.flag is True and cfg.train.opt is None and cfg.name == "y"
    assert from_dict(Outer, to_dict(cfg)) == cfg


def test_unknown_field_is_named():
    with pytest.raises(ConfigError, match="no field 'lrr'"):
        override(Outer(), {"train.lrr": "1"})
    with pytest.raises(ConfigError, match="expects int"):
        override(Outer(), {"train.layers": "two"})
    with pytest.raises(ConfigError, match="section.field=value"):
        parse_overrides(["--oops"])


def test_differences_names_every_changed_path():
    from semid.config import differences

    a = {"seed": 0, "train": {"epochs": 3, "lr": 1e-3}, "name": "x"}
    b = {"seed": 0, "train": {"epochs": 4, "lr": 1e-3}, "extra": True, "name": "x"}
    assert differences(a, b) == ["extra: None != True", "train.epochs: 3 != 4"]
    assert differences(a, a) == []


@dataclass(frozen=True)
class Paired:
    n: int = 8  # codes
    groups: int = 4  # must not exceed n

    def __post_init__(self):
        if self.groups > self.n:
            raise ConfigError(f"groups {self.groups} > n {self.n}")


@dataclass(frozen=True)
class WithPaired:
    p: Paired = field(default_factory=Paired)


def test_overrides_of_one_object_are_checked_together():
    """n=2 alone is invalid with groups=4; given with groups=2 in the same layer it must be accepted."""
    cfg = override(WithPaired(), {"p.n": "2", "p.groups": "2"})
    assert cfg.p == Paired(n=2, groups=2)
    with pytest.raises(ConfigError, match="groups 4 > n 2"):
        override(WithPaired(), {"p.n": "2"})


@dataclass(frozen=True)
class A:
    x: int = 1  # the x of A


@dataclass(frozen=True)
class B:
    y: str = "b"  # the y of B


UNION = TaggedUnion({"none": None, "a": A, "b": B}, what="part")


@dataclass(frozen=True)
class Holder:
    part: Annotated[object | None, UNION] = field(default_factory=A)  # which part


def test_tagged_union_round_trip_and_errors():
    from semid.config import describe, field_docs

    h = override(Holder(), {"part": "b", "part.y": "z"})
    assert h.part == B(y="z") and to_dict(h) == {"part": {"kind": "b", "y": "z"}}
    assert from_dict(Holder, to_dict(h)) == h
    assert override(h, {"part": "b"}).part == B(y="z")  # selecting the same kind keeps its settings
    assert override(h, {"part": "none"}).part is None and to_dict(Holder(part=None)) == {"part": None}
    with pytest.raises(ConfigError, match=r"unknown part 'c'; valid: \['none', 'a', 'b'\]"):
        override(h, {"part": "c"})
    with pytest.raises(ConfigError, match="needs a 'kind' key"):
        from_dict(Holder, {"part": {"x": 2}})
    with pytest.raises(ConfigError, match="B has no field 'x'"):
        override(h, {"part.x": 1})
    assert field_docs(A) == {"x": "the x of A"}
    assert [(r.path, r.type, r.default, r.doc) for r in describe(Holder())] == [
        ("part", "none | a | b", "a", "which part")]
