"""Finding strategies by name, and mapping `KEY=VALUE` strings onto their Backtrader params.

A strategy is any `bt.Strategy` subclass: a built-in by name, or the user's own as
``package.module:ClassName``, written exactly as Backtrader's docs write them.
"""

from __future__ import annotations

import importlib
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import backtrader as bt

from strategies.buy_and_hold import BuyAndHold
from strategies.engine import minimum_bars
from strategies.prophet_momentum import ProphetMomentum

BUILTIN_STRATEGIES: dict[str, type[bt.Strategy]] = {
    "buy_and_hold": BuyAndHold,
    "prophet_momentum": ProphetMomentum,
}


def strategy_class(name: str) -> type[bt.Strategy]:
    """A built-in strategy by name, or a user's as ``package.module:ClassName``."""
    if name in BUILTIN_STRATEGIES:
        return BUILTIN_STRATEGIES[name]
    if ":" in name:
        module_name, _, attr = name.partition(":")
        try:
            cls = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise ValueError(f"cannot load strategy {name!r}: {exc}") from exc
        if not (isinstance(cls, type) and issubclass(cls, bt.Strategy)):
            raise ValueError(
                f"{name!r} is not a Backtrader strategy: write it as a bt.Strategy subclass"
            )
        return cls
    known = ", ".join(sorted(BUILTIN_STRATEGIES))
    raise ValueError(
        f"unknown strategy {name!r}: built-in strategies are {known}; "
        "your own is named as package.module:ClassName"
    )


def strategy_name(cls: type[bt.Strategy]) -> str:
    """The name `strategy_class` finds `cls` by."""
    for name, builtin in BUILTIN_STRATEGIES.items():
        if builtin is cls:
            return name
    return f"{cls.__module__}:{cls.__qualname__}"


def param_defaults(cls: type[bt.Strategy]) -> dict[str, Any]:
    """Every Backtrader param of `cls` with its default, sorted by name."""
    return dict(sorted((str(k), v) for k, v in cls.params._getitems()))


def _coerce(name: str, default: Any, raw: Any, strategy: str) -> Any:
    kind = type(default)
    text = raw.strip() if isinstance(raw, str) else raw
    try:
        if kind is bool:
            if isinstance(text, bool):
                return text
            lowered = str(text).lower()
            if lowered not in {"true", "false", "1", "0", "yes", "no"}:
                raise ValueError(text)
            return lowered in {"true", "1", "yes"}
        if kind is int:
            if isinstance(text, float) and not text.is_integer():
                raise ValueError(text)
            return int(text)
        if kind is float:
            value = float(text)
            if not math.isfinite(value):
                raise ValueError(text)
            return value
    except (TypeError, ValueError):
        what = "finite number" if kind is float else kind.__name__
        raise ValueError(f"parameter {name} of {strategy} takes a {what}, got {raw!r}") from None
    if default is None or kind is str:
        return text
    return text


def parse_params(
    cls: type[bt.Strategy], given: Mapping[str, Any] | Iterable[str]
) -> dict[str, Any]:
    """Typed parameters from a mapping or from ``KEY=VALUE`` strings; unknown keys are errors.

    Values take the type of the param's default (int, float, bool, str).
    """
    if isinstance(given, Mapping):
        pairs = dict(given)
    else:
        pairs = {}
        for item in given:
            key, sep, value = str(item).partition("=")
            if not sep or not key.strip():
                raise ValueError(f"--param takes KEY=VALUE, got {item!r}")
            pairs[key.strip()] = value
    defaults = param_defaults(cls)
    name = strategy_name(cls)
    unknown = sorted(set(pairs) - set(defaults))
    if unknown:
        allowed = ", ".join(defaults) or "none"
        raise ValueError(f"{name} has no parameter {', '.join(unknown)} (it takes: {allowed})")
    return {key: _coerce(key, defaults[key], value, name) for key, value in sorted(pairs.items())}


def load_params_file(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        data = json.load(handle)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object of parameters")
    return data


@dataclass(frozen=True)
class StrategySpec:
    """A strategy class with every parameter typed: what a backtest or an export runs."""

    name: str
    cls: type[bt.Strategy]
    params: dict[str, Any] = field(default_factory=dict)

    def warmup_bars(self, symbols: list[str] | None = None) -> int:
        """Bars of history before its first next(): its indicators' minimum period."""
        return minimum_bars(self.cls, self.params, list(symbols or ["X"]))


def build_strategy(
    name: str | type[bt.Strategy], params: Mapping[str, Any] | Iterable[str] = ()
) -> StrategySpec:
    """The class `name` finds (or the class itself), with `params` parsed onto its defaults."""
    cls = name if isinstance(name, type) else strategy_class(name)
    if not issubclass(cls, bt.Strategy):
        raise ValueError(f"{cls.__qualname__} is not a Backtrader strategy (bt.Strategy)")
    typed = {**param_defaults(cls), **parse_params(cls, params)}
    return StrategySpec(strategy_name(cls), cls, dict(sorted(typed.items())))


def full_params(spec: StrategySpec) -> dict[str, Any]:
    """Every parameter with its value, defaults included, sorted by name."""
    return dict(spec.params)
