"""Sweep grids: a file mapping 03_training's parameters to a value (shared by every run) or a list of values
(swept), checked as a whole and run by run before anything runs, and expanded into runs with folder names."""

import itertools
import math
import re
from pathlib import Path

from utils.config import PARAMETERS, check_params
from utils.errors import ParameterError, UserError

import yaml


class SweepError(UserError, ValueError):
    """A grid or a sweep command cannot work as given; the message names the problem and the fix."""


def read_grid(path) -> dict:
    """The grid in a YAML or JSON file."""
    try:
        return yaml.safe_load(Path(path).read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise SweepError(
            f"{path}: cannot be read as YAML or JSON ({str(err).splitlines()[0]}); fix the file or give another one"
        ) from None


def expand_grid(grid: dict) -> list[dict]:
    """Every combination of the list-valued entries, each with the scalar entries added."""
    values = [v if isinstance(v, list) else [v] for v in grid.values()]
    return [dict(zip(grid, combo, strict=True)) for combo in itertools.product(*values)]


def swept(grid: dict) -> list[str]:
    return [k for k, v in grid.items() if isinstance(v, list)]


def run_name(params: dict, names: list[str]) -> str:
    """A run's folder name: its swept values (`lr=0.05-seed=2`), with anything but letters, digits and . = , + -
    replaced, so a value can never reach another folder."""
    return re.sub(r"[^\w.=,+-]", "_", "-".join(f"{k}={params[k]}" for k in names)) or "run"


def check_grid(grid, source) -> list[dict]:
    """The runs of `grid` (read from `source`), or SweepError with one line naming what cannot work: not a
    non-empty mapping, a name that is not a parameter (or output_dir, set per run), a nested mapping or list, an
    empty list, a repeated value, a run whose parameters TrainParams refuses."""

    def refuse(problem):
        raise SweepError(f"{source}: {problem}")

    if not isinstance(grid, dict) or not grid:
        refuse("expected a mapping of notebook parameters to values or lists of values")
    unknown = [str(k) for k in grid if k not in PARAMETERS or k == "output_dir"]
    if unknown:
        refuse(
            f"{', '.join(unknown)} not a parameter of 03_training.ipynb (output_dir is set per run); "
            f"parameters: {', '.join(p for p in PARAMETERS if p != 'output_dir')}"
        )
    for name, value in grid.items():
        values = value if isinstance(value, list) else [value]
        if not values:
            refuse(f"{name}: an empty list gives no runs; give a value or a list of values")
        if any(isinstance(v, (dict, list)) for v in values):
            refuse(f"{name}: {value!r} holds a mapping or a list; give a value or a list of plain values")
        if len({_key(v) for v in values}) < len(values):
            refuse(f"{name}: {value!r} repeats a value (two runs would share a folder); give each value once")
    runs = expand_grid(grid)
    for params in runs:
        try:
            check_params(params)
        except ParameterError as err:
            where = run_name(params, swept(grid))
            refuse(f"{err}" + (f" (run {where})" if where != "run" else ""))
    names = [run_name(p, swept(grid)) for p in runs]
    if len(set(names)) < len(names):
        refuse("two runs would get the same folder name; give values that differ in more than punctuation")
    return runs


def _key(value):
    """A value as a grid compares them: 1, 1.0 and True are different runs, nan equals nan."""
    return (type(value).__name__, "nan" if isinstance(value, float) and math.isnan(value) else value)
