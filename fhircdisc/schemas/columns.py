"""Per-variable metadata that every dataset writer and reader speaks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

SdtmType = Literal["Char", "Num"]


@dataclass(frozen=True)
class ColumnMeta:
    """One SDTM variable as a writer needs it: name, label, type and (for Char) length."""

    name: str
    label: str
    type: SdtmType = "Char"
    length: int | None = None


@dataclass(frozen=True)
class DatasetMeta:
    """One SDTM dataset: its name (the domain, e.g. ``LB``), label and ordered columns."""

    name: str
    label: str
    columns: tuple[ColumnMeta, ...]

    def column(self, name: str) -> ColumnMeta | None:
        for col in self.columns:
            if col.name == name:
                return col
        return None
