"""SDTMIG 3.4 variable metadata of the domains we write (derived by tools/build_tables.py)."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from fhircdisc.schemas.columns import ColumnMeta, DatasetMeta

SDTMIG_VERSION = "3.4"
CT_VERSION = "2025-03-28"


@dataclass(frozen=True)
class VariableSpec:
    dataset: str
    order: int
    name: str
    label: str
    type: str
    core: str
    codelist: str
    role: str


def _read(name: str) -> list[dict[str, str]]:
    text = (resources.files("fhircdisc.schemas") / name).read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    return list(csv.DictReader(io.StringIO("\n".join(lines))))


@lru_cache(maxsize=1)
def variables() -> dict[str, list[VariableSpec]]:
    """Dataset name -> its SDTMIG variables in standard order."""
    out: dict[str, list[VariableSpec]] = {}
    for row in _read("sdtmig_3_4_variables.csv"):
        spec = VariableSpec(row["dataset"], int(row["order"]), row["name"], row["label"],
                            row["type"], row["core"], row.get("codelist") or "",
                            row.get("role") or "")
        out.setdefault(spec.dataset, []).append(spec)
    for specs in out.values():
        specs.sort(key=lambda v: v.order)
    return out


@lru_cache(maxsize=1)
def dataset_labels() -> dict[str, str]:
    """Dataset name -> SDTMIG dataset label."""
    return {row["dataset"]: row["label"] for row in _read("sdtmig_3_4_datasets.csv")}


def variable(domain: str, name: str) -> VariableSpec | None:
    for spec in variables().get(domain, []):
        if spec.name == name:
            return spec
    return None


def order_columns(domain: str, names: list[str]) -> list[str]:
    """``names`` in SDTMIG order; names the IG does not list go last, as given."""
    order = {v.name: v.order for v in variables().get(domain, [])}
    return sorted(names, key=lambda n: (order.get(n, 10_000), names.index(n)))


def dataset_meta(domain: str, names: list[str]) -> DatasetMeta:
    """Writer metadata for a dataset holding ``names`` (labels and types from SDTMIG)."""
    columns = []
    for name in order_columns(domain, names):
        spec = variable(domain, name)
        columns.append(ColumnMeta(name=name, label=spec.label if spec else name,
                                  type="Num" if spec and spec.type == "Num" else "Char"))
    return DatasetMeta(domain, dataset_labels().get(domain, domain), tuple(columns))
