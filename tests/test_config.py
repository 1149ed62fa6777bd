"""Dotted overrides on frozen dataclass configs, with errors that name the bad field."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from semid.config import from_dict, override, parse_overrides, to_dict
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
