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
