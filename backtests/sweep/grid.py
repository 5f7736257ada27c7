"""The grid of a sweep: ``--grid KEY=V1,V2`` parsed and typed, its points, their keys."""

from __future__ import annotations

import json
import math
import random as random_module
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from backtests.sweep_common import scalar
from strategies.registry import parse_params, strategy_class


def parse_grid(
    strategy: str, grid: Iterable[str] | Mapping[str, Sequence[Any]]
) -> dict[str, list[Any]]:
    """``["KEY=v1,v2", ...]`` (or ``{KEY: [v1, v2]}``) as typed, sorted, distinct values.

    Each value is typed like ``--param KEY=VALUE`` (the strategy's Params field type);
    unknown keys and values of the wrong type are errors.
    """
    cls = strategy_class(strategy)
    raw: dict[str, list[Any]] = {}
    if isinstance(grid, Mapping):
        for key, values in grid.items():
            if isinstance(values, str) or not isinstance(values, Iterable):
                values = [values]
            raw[str(key).strip()] = list(values)
    else:
        for item in grid:
            key, sep, text = str(item).partition("=")
            key = key.strip()
            if not sep or not key:
                raise ValueError(f"--grid takes KEY=V1,V2,..., got {item!r}")
            if key in raw:
                raise ValueError(f"--grid {key} is given twice: list all its values in one")
            raw[key] = [part.strip() for part in text.split(",") if part.strip()]
    if not raw:
        raise ValueError("a sweep needs at least one --grid KEY=V1,V2,...")
    typed: dict[str, list[Any]] = {}
    for key in sorted(raw):
        if not raw[key]:
            raise ValueError(f"--grid {key}= has no values")
        values = {parse_params(cls, {key: value})[key] for value in raw[key]}
        typed[key] = sorted(values)
    return typed


def point_key(params: Mapping[str, Any]) -> str:
    """The identity of a point in the results: its parameters as canonical JSON."""
    return json.dumps(
        {k: scalar(v) for k, v in params.items()}, sort_keys=True, separators=(",", ":")
    )


def grid_points(
    grid: Mapping[str, Sequence[Any]], random: int | None = None, seed: int = 0
) -> list[dict[str, Any]]:
    """Every point of `grid` (or `random` of them, drawn with `seed`), sorted by parameters.

    The draw depends only on the grid's (sorted) values, `random` and `seed`, so the same
    command samples the same points, which is what lets a random sweep resume.
    """
    keys = sorted(grid)
    values = [sorted(grid[key]) for key in keys]
    total = math.prod(len(v) for v in values)
    if random is not None and int(random) < 1:
        raise ValueError(f"--random takes a positive number of points, got {random}")
    if random is None or int(random) >= total:
        indices: Iterable[int] = range(total)
    else:
        indices = random_module.Random(int(seed)).sample(range(total), int(random))
    points = []
    for index in indices:
        point = {}
        for key, choices in zip(reversed(keys), reversed(values), strict=True):
            index, digit = divmod(index, len(choices))
            point[key] = choices[digit]
        points.append(dict(sorted(point.items())))
    return sorted(points, key=lambda p: tuple(p[k] for k in keys))
