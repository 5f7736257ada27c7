"""Finding strategies by name, and turning `KEY=VALUE` strings into their parameters."""

from __future__ import annotations

import dataclasses
import importlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

from strategies.base import Strategy
from strategies.buy_and_hold import BuyAndHold
from strategies.prophet_momentum import ProphetMomentum

BUILTIN_STRATEGIES: dict[str, type[Strategy]] = {
    cls.name: cls for cls in (BuyAndHold, ProphetMomentum)
}


def strategy_class(name: str) -> type[Strategy]:
    """A built-in strategy by name, or a user's as ``package.module:ClassName``."""
    if name in BUILTIN_STRATEGIES:
        return BUILTIN_STRATEGIES[name]
    if ":" in name:
        module_name, _, attr = name.partition(":")
        try:
            cls = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise ValueError(f"cannot load strategy {name!r}: {exc}") from exc
        if not (isinstance(cls, type) and issubclass(cls, Strategy)):
            raise ValueError(f"{name!r} is not a tradeship Strategy subclass")
        return cls
    known = ", ".join(sorted(BUILTIN_STRATEGIES))
    raise ValueError(
        f"unknown strategy {name!r}: built-in strategies are {known}; "
        "your own is named as package.module:ClassName"
    )


def _coerce(field: dataclasses.Field, raw: Any, strategy: str) -> Any:
    kind = (
        field.type
        if isinstance(field.type, type)
        else {"int": int, "float": float, "bool": bool, "str": str}.get(str(field.type), str)
    )
    if not isinstance(raw, str):
        return kind(raw)
    text = raw.strip()
    try:
        if kind is bool:
            lowered = text.lower()
            if lowered not in {"true", "false", "1", "0", "yes", "no"}:
                raise ValueError(text)
            return lowered in {"true", "1", "yes"}
        if kind is int:
            return int(text)
        if kind is float:
            return float(text)
    except ValueError:
        raise ValueError(
            f"parameter {field.name} of {strategy} takes a {kind.__name__}, got {raw!r}"
        ) from None
    return text


def parse_params(cls: type[Strategy], given: Mapping[str, Any] | Iterable[str]) -> dict[str, Any]:
    """Typed parameters from a mapping or from ``KEY=VALUE`` strings; unknown keys are errors."""
    if isinstance(given, Mapping):
        pairs = dict(given)
    else:
        pairs = {}
        for item in given:
            key, sep, value = str(item).partition("=")
            if not sep or not key.strip():
                raise ValueError(f"--param takes KEY=VALUE, got {item!r}")
            pairs[key.strip()] = value
    fields = {f.name: f for f in dataclasses.fields(cls.Params)}
    unknown = sorted(set(pairs) - set(fields))
    if unknown:
        allowed = ", ".join(sorted(fields)) or "none"
        raise ValueError(f"{cls.name} has no parameter {', '.join(unknown)} (it takes: {allowed})")
    return {key: _coerce(fields[key], value, cls.name) for key, value in sorted(pairs.items())}


def load_params_file(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        data = json.load(handle)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object of parameters")
    return data


def full_params(strategy: Strategy) -> dict[str, Any]:
    """Every parameter with its value, defaults included, sorted by name."""
    return dict(sorted(dataclasses.asdict(strategy.params).items()))
