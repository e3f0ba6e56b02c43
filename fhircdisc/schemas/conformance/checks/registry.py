"""The closed vocabulary of checks a rule may name, filled by the ``@check`` decorator.

A dataset-level check is ``f(ds, params, study) -> Iterable[Hit]`` and runs once per
dataset the rule applies to; a study-level check is ``f(study, params) -> Iterable[Hit]``
and runs once, its hits naming their dataset.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from fhircdisc.schemas.conformance.context import Hit

Level = Literal["dataset", "study"]
CheckFunc = Callable[..., Iterable[Hit]]

COMMON_FIELDS: tuple[str, ...] = ("dataset", "domain", "variable", "value", "row",
                                  "usubjid", "seq")
"""Message placeholders every finding can fill."""


@dataclass(frozen=True)
class CheckSpec:
    name: str
    func: CheckFunc
    level: Level = "dataset"
    required: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()
    fields: tuple[str, ...] = ()  # message placeholders this check adds


CHECKS: dict[str, CheckSpec] = {}


def check(name: str, *, level: Level = "dataset", required: tuple[str, ...] = (),
          optional: tuple[str, ...] = (), fields: tuple[str, ...] = ()
          ) -> Callable[[CheckFunc], CheckFunc]:
    """Register ``func`` under ``name`` (names are unique)."""

    def register(func: CheckFunc) -> CheckFunc:
        if name in CHECKS:
            raise RuntimeError(f"check {name!r} registered twice")
        CHECKS[name] = CheckSpec(name, func, level, required, optional, fields)
        return func

    return register


def text(value: Any) -> str | None:
    """A cell as finding text: None for missing, integral floats without ``.0``."""
    if value is None:
        return None
    if isinstance(value, float):
        if value != value:  # NaN
            return None
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    return str(value)


def number(value: Any) -> float | None:
    """A cell as a float, or None when missing or not a number."""
    try:
        result = float(value)
    except (TypeError, ValueError):
        return None
    return None if result != result else result


def rows(mask: Any) -> list[int]:
    """Positions (0-based) where a boolean mask (Series or array) is true."""
    return [int(i) for i in np.flatnonzero(np.asarray(mask, dtype=bool))]


def distinct(series: pd.Series) -> tuple[np.ndarray, list[Any]]:
    """Each cell as a code into the list of distinct values (-1: missing)."""
    try:
        codes, uniques = pd.factorize(series)
    except TypeError:  # unhashable cells: each cell its own value
        values = series.tolist()
        return np.arange(len(values)), values
    return codes, list(uniques)


def text_mask(series: pd.Series, test: Callable[[str], bool]) -> np.ndarray:
    """Where a cell is text that passes ``test``, asked once per distinct text."""
    return texts_mask(series, lambda texts: [test(text) for text in texts])


def texts_mask(series: pd.Series, test: Callable[[list[str]], Any]) -> np.ndarray:
    """``text_mask`` with a test of all the distinct texts at once (a verdict each)."""
    codes, values = distinct(series)
    if pd.api.types.infer_dtype(values, skipna=False) == "string":
        places = list(range(len(values)))
    else:
        places = [place for place, value in enumerate(values) if isinstance(value, str)]
    verdicts = np.zeros(len(values) + 1, dtype=bool)
    if places:
        verdicts[places] = np.asarray(test([values[place] for place in places]), dtype=bool)
    return verdicts[codes]
