"""The trials of a sweep: grids over any keys, their union, and the folder that names each trial.

A grid is {key: values} over training and evaluation keys (`config.grid_keys`); its trials are
the Cartesian product of the values. A sweep runs one grid or the union of several, each trial
once: a trial that two grids name (the shared baseline of alpha x seed and noise_std x seed,
alpha 0 and noise_std 0) runs once, in one folder.

Every trial has a value for every key that any of the sweep's grids names (its *swept keys*),
plus alpha and seed: a grid that does not name a swept key takes the sweep's value of that key,
and one that does not name seed takes the `seeds` list. A trial's folder names all of them, one
level per key, in a fixed order: the other swept keys in alphabetical order, then alpha, then
seed. A sweep of alpha x seed alone is therefore `alpha=<a>/seed=<s>`, as before grids existed:

    SWEEP_DIR/alpha=0.1/seed=3/
    SWEEP_DIR/lr=0.05/noise_std=0.1/alpha=0/seed=3/

A level is `key=text`, where `--set key=text` gives the value back exactly once percent-decoded
(floats in their shortest exact form, see `alpha_name`; radii and attack steps in grey levels
where exact, `adv_eps=4%2F255` for 4/255, see `catalog.format_eps`; true/false; none; words
percent-encoded where they hold a character a folder name cannot, such as `/`), so that two
values never share a folder. The name is a function of the value alone (not of how the user
wrote it), so a resumed sweep finds its folders however its values are written.

This module imports config, catalog and pandas only (no torch).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pandas as pd

from selectivity.catalog import format_eps, in_grey_levels
from selectivity.config import (
    ConfigError,
    EvalConfig,
    SweepConfig,
    TrainConfig,
    key_types,
    typed,
)

__all__ = [
    "ALPHA",
    "SEED",
    "alpha_name",
    "check_grid",
    "describe",
    "expand",
    "grid_keys",
    "layout",
    "load_config_file",
    "parse_grid",
    "sort_key",
    "split_grids",
    "sweep_grids",
    "trial_dir",
    "trial_frame",
    "trial_path",
    "value_name",
]

ALPHA, SEED = "alpha", "seed"


def alpha_name(alpha: float) -> str:
    """Text that reads back as `alpha` exactly: the short `:g` form where it is exact (-1, 0.1,
    10, 1e-05, 1e+30), else the shortest round-trip repr (0.1234567, where `:g` says 0.123457)."""
    short = f"{alpha:g}"
    return short if float(short) == alpha else repr(float(alpha))


def value_name(value: Any, key: str = "") -> str:
    """The text of one value in a folder name; `--set key=<text>` parses it back exactly once
    percent-decoded.

    Floats as `alpha_name`, or, for a key in grey levels (`catalog.in_grey_levels`: adv_eps,
    pgd_step_size, ...), as `catalog.format_eps` with its `/` as %2F (4/255 -> 4%2F255); ints
    in decimal, true/false, none, and words percent-encoded (`quote`, nothing kept: `/` becomes
    %2F, letters, digits and `_.-~` stay as they are).
    """
    if value is None or value is pd.NA:
        return "none"
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()  # a numpy scalar, from a table's row
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return format_eps(value).replace("/", "%2F") if in_grey_levels(key) else alpha_name(value)
    if isinstance(value, str):
        return quote(value, safe="")
    raise TypeError(f"a grid value is a number, a word, true/false or none, not {value!r}")


def layout(keys: Iterable[str]) -> tuple[str, ...]:
    """The folder levels of a sweep that sweeps `keys`: the others sorted, then alpha, then seed
    (both always present)."""
    others = sorted(set(keys) - {ALPHA, SEED})
    return (*others, ALPHA, SEED)


def trial_path(values: Mapping[str, Any]) -> Path:
    """The folder of a trial relative to its sweep folder; `values` holds every level's value."""
    return Path(*(f"{key}={value_name(values[key], key)}" for key in layout(values)))


def trial_dir(sweep_dir: str | Path, values: Mapping[str, Any]) -> Path:
    """SWEEP_DIR/<key>=<value>/.../alpha=<a>/seed=<s>: lossless, so no two trials share it."""
    return Path(sweep_dir) / trial_path(values)


def describe(values: Mapping[str, Any]) -> str:
    """'adv_eps=4/255 alpha=0 seed=3': a trial in one line, in folder order (as `--set` takes
    each value)."""
    return " ".join(f"{key}={_value_text(values[key], key)}" for key in layout(values))


def _value_text(value: Any, key: str) -> str:
    if isinstance(value, float) and in_grey_levels(key):
        return format_eps(value)
    return value_name(value, key)


def sweep_grids(
    grids: Sequence[Mapping[str, tuple[Any, ...]]] | None,
    alphas: tuple[float, ...],
    seeds: tuple[int, ...],
) -> tuple[dict[str, tuple[Any, ...]], ...]:
    """The grids a sweep runs: without grids, alphas x seeds (the papers' sweep); a grid that
    names no seed takes `seeds`. A grid that names no alpha keeps alpha at its key's value: a
    grid over noise_std asks for noise_std, not for noise_std at every alpha."""
    if not grids:
        return ({ALPHA: tuple(alphas), SEED: tuple(seeds)},)
    return tuple({**grid, SEED: tuple(grid.get(SEED, seeds))} for grid in grids)


def expand(
    grids: Sequence[Mapping[str, tuple[Any, ...]]], base: Mapping[str, Any]
) -> tuple[tuple[str, ...], list[dict[str, Any]]]:
    """(folder levels, every trial's values) of the union of `grids`, in run order: grid by grid,
    each as the product in folder order (so alpha x seed runs alpha by alpha, as before).

    base: the sweep's keys; a grid takes from it the value of each swept key it does not name.
    A trial that several grids name appears once (the first time).
    """
    levels = layout(key for grid in grids for key in grid)
    trials: dict[Path, dict[str, Any]] = {}
    for grid in grids:
        named = [key for key in levels if key in grid]
        for combination in itertools.product(*(grid[key] for key in named)):
            chosen = dict(zip(named, combination, strict=True))
            values = {key: chosen[key] if key in chosen else base[key] for key in levels}
            trials.setdefault(trial_path(values), values)
    return levels, list(trials.values())


def sort_key(values: Mapping[str, Any], keys: Sequence[str]) -> tuple[tuple[int, Any], ...]:
    """Order of trials in the tables: by each key in folder order; numbers before words before
    none, so that a key that takes a number or a word (pgd_step_size) still sorts."""
    return tuple(
        (2, "")
        if values[key] is None
        else (1, values[key])
        if isinstance(values[key], str)
        else (0, values[key])
        for key in keys
    )


_DTYPES = {float: ("float64", "Float64"), int: ("int64", "Int64"), bool: ("bool", "boolean")}


def _column(values: list[Any], hint: Any) -> pd.Series:
    """One trial column, typed by the key's declared type: float64, int64, bool, string, or the
    nullable kind (Float64, Int64, boolean) for a key that may be none. A key that takes a
    number or a word is a number column when every value is a number, else text as named."""
    args = (
        typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else ()
    )
    optional = type(None) in args
    kinds = [arg for arg in args if arg is not type(None)] or [hint]
    if str in kinds and len(kinds) > 1:
        if any(isinstance(value, str) for value in values):
            return pd.Series([None if v is None else value_name(v) for v in values], dtype="string")
        kinds.remove(str)
    if kinds[0] is str:
        return pd.Series(values, dtype="string")
    plain, nullable = _DTYPES[kinds[0]]
    return pd.Series(values, dtype=nullable if optional or None in values else plain)


def trial_frame(trials: Sequence[Mapping[str, Any]], keys: Sequence[str]) -> pd.DataFrame:
    """One row per trial, one typed column per key (alpha float64 and seed int64, as ever)."""
    types_ = key_types()
    return pd.DataFrame(
        {key: _column([trial[key] for trial in trials], types_[key]) for key in keys},
        index=pd.RangeIndex(len(trials)),
    )


# --- reading grids --------------------------------------------------------------------------
#
# From --grid text, a config file's `grid`/`grids` or Python: {key: typed values}, checked.


def _is_list_type(hint: Any) -> bool:
    return any(
        typing.get_origin(arg) is tuple for arg in (hint, *typing.get_args(hint)) if arg is not None
    )


def grid_keys() -> dict[str, Any]:
    """Key -> declared type of every key a grid may sweep: the training and evaluation keys that
    hold one value. List keys (milestones, fgsm_eps, corruptions, ...) hold a list per trial, and
    sweep keys say how the sweep runs, not what a trial is."""
    types_ = {
        name: hint
        for cls in (TrainConfig, EvalConfig)
        for name, hint in typing.get_type_hints(cls).items()
    }
    return {name: hint for name, hint in types_.items() if not _is_list_type(hint)}


_PLURALS = {"alphas": "alpha", "seeds": "seed"}


def _check_grid_key(key: str, option: str) -> Any:
    """The declared type of grid key `key`; ConfigError (one line) naming why it cannot be one."""
    known = grid_keys()
    if key in known:
        return known[key]
    if key in _PLURALS:
        raise ConfigError(
            f"{key} is a sweep key, not a grid key: sweep {_PLURALS[key]} ({option} "
            f"{_PLURALS[key]}=...)"
        )
    if key in {f.name for f in dataclasses.fields(SweepConfig)}:
        raise ConfigError(f"{key} is a sweep key (how the sweep runs), not a grid key")
    if key in key_types():
        raise ConfigError(
            f"{key} holds a list per trial and cannot be a grid key; run one sweep per list"
        )
    raise ConfigError(f"unknown grid key {key!r}; known keys: {', '.join(sorted(known))}")


def _grid_values(key: str, values: Iterable[Any]) -> tuple[Any, ...]:
    typed_values = tuple(typed({key: value})[key] for value in values)
    _require(len(typed_values) > 0, f"grid key {key} has no values")
    _require(
        all(not (isinstance(v, float) and v != v) for v in typed_values),
        f"grid key {key}: NaN is not a value to sweep",
    )
    _require(len(set(typed_values)) == len(typed_values), f"grid key {key} has duplicates")
    return typed_values


def check_grid(grid: Mapping[str, Any], option: str = "grid") -> dict[str, tuple[Any, ...]]:
    """{key: [values]} (a config file's `grid`, a preset's, Python's) -> {key: typed values}.

    ConfigError (one line) for a key a grid cannot sweep, values that are not a list, no values,
    duplicates or NaN. `option` names where the grid came from, for the messages.
    """
    if not isinstance(grid, Mapping) or not grid:
        raise ConfigError(f"{option} must map keys to lists of values, got {grid!r}")
    checked = {}
    for key, values in grid.items():
        _check_grid_key(key, option)
        if isinstance(values, (str, bytes, Mapping)) or not isinstance(values, Iterable):
            raise ConfigError(f"grid key {key}: expected a list of values, got {values!r}")
        checked[key] = _grid_values(key, values)
    return checked


def parse_grid(
    items: Iterable[str], assigned: Mapping[str, Any] | None = None
) -> dict[str, tuple[Any, ...]]:
    """--grid ['noise_std=0,0.1', 'seed=0,1'] -> {'noise_std': (0.0, 0.1), 'seed': (0, 1)}.

    Values are parsed as `--set` parses one value of the key (so `seed=0,1` gives ints and
    `pgd_eps=0,8/255` floats). ConfigError for a key given twice or also in `assigned` (the
    --set keys: one value for a key the grid sweeps would go unused), and as `check_grid`.
    """
    grid: dict[str, tuple[Any, ...]] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--grid expects key=value,value,..., got {item!r}")
        key, text = item.split("=", 1)
        key = key.strip().replace("-", "_")
        _check_grid_key(key, "--grid")
        _require(key not in grid, f"grid key {key} is given twice (--grid {key}=a,b,... lists all)")
        grid[key] = _grid_values(key, [v.strip() for v in text.split(",") if v.strip()])
    for key in sorted(assigned or {}):
        _require(
            key != "alphas",
            "alphas is the alpha list of a sweep without --grid; with --grid, sweep alpha as "
            "--grid alpha=...",
        )
        _require(key not in grid, f"{key} is given by both --set and --grid; give it in one place")
        _require(
            _PLURALS.get(key) not in grid,
            "seeds (--set) and seed (--grid) both give the seeds; give them in one place",
        )
    return grid


def split_grids(
    values: Mapping[str, Any], where: str = "keys"
) -> tuple[dict[str, Any], tuple[dict[str, tuple[Any, ...]], ...] | None]:
    """(the other keys, the grids) of a map of keys that may hold `grid` (one grid) or `grids`
    (a list of grids: the sweep runs their union); grids None when it holds neither."""
    rest = {k: v for k, v in values.items() if k not in ("grid", "grids")}
    if "grid" in values and "grids" in values:
        raise ConfigError(f"{where} give both grid and grids; give one")
    if "grid" in values:
        return rest, (check_grid(values["grid"], "grid"),)
    if "grids" not in values:
        return rest, None
    grids = values["grids"]
    if isinstance(grids, (str, bytes, Mapping)) or not isinstance(grids, Iterable):
        raise ConfigError(f"grids must be a list of grids ({{key: [values]}}), got {grids!r}")
    checked = tuple(check_grid(grid, "a grid in grids") for grid in grids)
    _require(len(checked) > 0, "grids is empty: it lists no grid")
    return rest, checked


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    twice = sorted({key for key in keys if keys.count(key) > 1})
    if twice:
        raise ConfigError(f"key {twice[0]!r} is given twice")
    return dict(pairs)


def load_config_file(path: str | Path) -> dict[str, Any]:
    """A JSON object of keys, as written in `config.json` or by hand, typed and checked. A
    sweep's may hold `grid` ({key: [values]}) or `grids` (a list of such maps: the sweep runs
    their union). ConfigError (one line) for a file that is missing, not JSON, not an object, or
    that gives a key twice."""
    try:
        values = json.loads(Path(path).read_text(encoding="utf-8"), object_pairs_hook=_unique_keys)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except UnicodeDecodeError as error:
        raise ConfigError(
            f"config file {path} is not UTF-8 text (byte {error.start}); JSON files are UTF-8"
        ) from None
    except json.JSONDecodeError as error:
        raise ConfigError(
            f"config file {path} is not valid JSON: {error.msg} at line {error.lineno}"
        ) from None
    except ConfigError as error:
        raise ConfigError(f"config file {path}: {error}") from None
    if not isinstance(values, dict):
        raise ConfigError(f"config file {path} must hold a JSON object of keys")
    try:
        rest, grids = split_grids(values, "the file")
        _require(
            grids is None or "alphas" not in rest,
            "alphas is the alpha list of a sweep without a grid; with a grid, name alpha in it",
        )
        typed_values = typed(rest)
    except ConfigError as error:
        raise ConfigError(f"config file {path}: {error}") from None
    return typed_values if grids is None else {**typed_values, "grids": grids}


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)
