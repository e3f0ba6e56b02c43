"""Unit conversion of SDTM results through UCUM.

A CDISC UNIT submission value (``mg/dL``, ``mEq/L``, ``C``) is first mapped to its UCUM
code through the project's terminology tables (``reverse("UNIT", value)``: the preferred
UCUM row); the UCUM code is parsed by ``ucumvert`` (a maintained UCUM grammar that yields
``pint`` quantities), and ``pint`` gives the conversion. Nothing here holds a unit factor.

Conversions between molar and mass units need the analyte's molecular weight and
conversions between equivalents and moles its valence: both come from
``fhircdisc/mappings/analytes.csv``. A conversion that cannot be made raises
:class:`NotConvertible` with a reason code; the caller reports it, it never guesses.

Conversions are affine, ``to = from * factor + offset`` (the offset is 0 except for
temperatures), and factors and offsets are cleaned to 14 significant digits, so that a
factor of 10 reads 10, not 10.000000000000002, after pint's trip through SI units.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import numpy as np

from fhircdisc.mappings.terminology import Terminology

UCUM_SYSTEM = "http://unitsofmeasure.org"
FACTOR_DIGITS = 14
"""Significant digits kept of a conversion factor (pint's float noise is ~1e-16)."""

ANALYTES_FILE = "analytes.csv"


class NotConvertible(Exception):
    """A unit conversion that cannot be made; ``reason`` is a short code for the report."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class Analyte:
    """One row of ``mappings/analytes.csv``."""

    testcd: str
    analyte: str
    molecular_weight: float
    valence: int | None
    source: str


@dataclass(frozen=True)
class Conversion:
    """``to = from * factor + offset`` between two CDISC units (and their UCUM codes)."""

    from_unit: str
    to_unit: str
    from_ucum: str
    to_ucum: str
    factor: float
    offset: float = 0.0
    molecular_weight: float | None = None
    valence: int | None = None

    def apply(self, values: Any) -> np.ndarray:
        """Convert an array (or scalar) of values; NaN stays NaN."""
        array = np.asarray(values, dtype="float64")
        out: np.ndarray = array * self.factor + self.offset
        return out


@cache
def load_analytes() -> dict[str, Analyte]:
    """LBTESTCD -> analyte row of the package's ``mappings/analytes.csv``."""
    text = (resources.files("fhircdisc.mappings") / ANALYTES_FILE).read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    out: dict[str, Analyte] = {}
    for row in csv.DictReader(io.StringIO("\n".join(lines))):
        valence = (row.get("valence") or "").strip()
        out[row["LBTESTCD"].strip()] = Analyte(
            testcd=row["LBTESTCD"].strip(), analyte=row["analyte"].strip(),
            molecular_weight=float(row["molecular_weight"]),
            valence=int(valence) if valence else None, source=(row.get("source") or "").strip())
    return out


class _Ucum:
    """The UCUM registry: ucumvert's parser feeding one pint registry (built once, ~1.5 s)."""

    def __init__(self) -> None:
        from ucumvert import PintUcumRegistry, UcumToPintTransformer, get_ucum_parser

        self.registry = PintUcumRegistry()
        self._parser = get_ucum_parser()
        # ucumvert's own ``from_ucum`` builds quantities in pint's *application* registry,
        # not in the registry it is called on; bind the transformer to ours instead, so
        # that every quantity here shares one registry.
        self._transform = UcumToPintTransformer(ureg=self.registry).transform
        self._cache: dict[str, Any] = {}

    def parse(self, code: str) -> Any:
        """The pint quantity of one UCUM code (cached); NotConvertible if it is not UCUM."""
        if code in self._cache:
            return self._cache[code]
        try:
            quantity = self._transform(self._parser.parse(code))
        except Exception as exc:  # lark and pint raise many kinds of errors
            raise NotConvertible("invalid-ucum", f"{code!r} is not a UCUM unit the "
                                 f"converter understands ({type(exc).__name__})") from exc
        if not hasattr(quantity, "dimensionality"):
            # an annotation alone ({INR}, {ratio}) is the unit 1 in UCUM
            quantity = self.registry.Quantity(1, "dimensionless")
        self._cache[code] = quantity
        return quantity


@cache
def ucum_registry() -> _Ucum:
    """The shared UCUM parser and pint registry (built on first use)."""
    return _Ucum()


def clean_factor(value: float, digits: int = FACTOR_DIGITS) -> float:
    """``value`` rounded to ``digits`` significant digits."""
    if value == 0 or not math.isfinite(value):
        return 0.0 if value == 0 else value
    return float(f"{value:.{digits}g}")


class UnitConverter:
    """Conversions between CDISC units for one set of terminology tables (cached)."""

    def __init__(self, terminology: Terminology,
                 analytes: dict[str, Analyte] | None = None) -> None:
        self.terminology = terminology
        self.analytes = load_analytes() if analytes is None else analytes
        self._ucum: dict[str, str | None] = {}
        self._conversions: dict[tuple[str, str, str | None], Conversion | NotConvertible] = {}

    # -- CDISC -> UCUM ---------------------------------------------------------------------
    def ucum_code(self, cdisc_unit: str) -> str | None:
        """The preferred UCUM code of a CDISC UNIT submission value, from the terminology."""
        if cdisc_unit not in self._ucum:
            term = self.terminology.reverse("UNIT", cdisc_unit)
            self._ucum[cdisc_unit] = term.code if term is not None and \
                term.system == UCUM_SYSTEM else None
        return self._ucum[cdisc_unit]

    def cdisc_unit(self, ucum_code: str) -> str | None:
        """The CDISC UNIT submission value of a UCUM code, from the terminology."""
        term = self.terminology.lookup("UNIT", UCUM_SYSTEM, ucum_code)
        return term.submission_value if term is not None else None

    # -- conversions -------------------------------------------------------------------------
    def conversion(self, from_unit: str, to_unit: str, testcd: str | None = None) -> Conversion:
        """The conversion of results of ``testcd`` from one CDISC unit to another.

        ``testcd`` (an LBTESTCD) is needed only for molar <-> mass and eq <-> mol
        conversions. Raises :class:`NotConvertible`.
        """
        key = (from_unit, to_unit, testcd)
        cached = self._conversions.get(key)
        if cached is None:
            try:
                cached = self._make(from_unit, to_unit, testcd)
            except NotConvertible as exc:
                cached = exc
            self._conversions[key] = cached
        if isinstance(cached, NotConvertible):
            raise cached
        return cached

    def _make(self, from_unit: str, to_unit: str, testcd: str | None) -> Conversion:
        codes = []
        for unit in (from_unit, to_unit):
            code = self.ucum_code(unit)
            if code is None:
                raise NotConvertible("unit-not-in-terminology",
                                     f"CDISC unit {unit!r} has no UCUM code in the "
                                     "terminology tables (mappings/terminology/units.csv)")
            codes.append(code)
        from_ucum, to_ucum = codes
        ucum = ucum_registry()
        src, dst = ucum.parse(from_ucum), ucum.parse(to_ucum)
        if from_unit == to_unit or from_ucum == to_ucum:
            return Conversion(from_unit, to_unit, from_ucum, to_ucum, 1.0)

        analyte = self.analytes.get(testcd or "")
        molecular_weight: float | None = None
        valence: int | None = None
        scale = 1.0
        src_eq, dst_eq = _is_equivalents(src), _is_equivalents(dst)
        if src_eq != dst_eq:
            if analyte is None or analyte.valence is None:
                raise NotConvertible(
                    "no-valence", f"{from_unit} -> {to_unit} needs the valence of "
                    f"{testcd or 'the analyte'} (mEq <-> mmol), which analytes.csv lacks")
            valence = analyte.valence
            # n(mol) = n(eq) / |z|; UCUM's eq equals its mol, so divide going eq -> mol
            scale = 1.0 / valence if src_eq else float(valence)

        registry = ucum.registry
        source_dims, target_dims = src.dimensionality, dst.dimensionality
        molar_to_mass: bool | None = None      # None: no molecular weight involved
        if source_dims != target_dims:
            substance_per_mass = registry.Quantity(1, "mole/gram").dimensionality
            ratio = source_dims / target_dims
            if ratio not in (substance_per_mass, 1 / substance_per_mass):
                raise NotConvertible(
                    "incompatible-units", f"{from_unit} ({source_dims}) and {to_unit} "
                    f"({target_dims}) measure different quantities")
            if analyte is None:
                raise NotConvertible(
                    "no-molecular-weight", f"{from_unit} -> {to_unit} needs the molecular "
                    f"weight of {testcd or 'the analyte'}, which analytes.csv lacks")
            molecular_weight = analyte.molecular_weight
            molar_to_mass = ratio == substance_per_mass
        weight = registry.Quantity(molecular_weight or 1.0, "gram/mole")

        def convert(value: float) -> float:
            quantity = registry.Quantity(value * _magnitude(src) * scale, src.units)
            if molar_to_mass is not None:
                quantity = quantity * weight if molar_to_mass else quantity / weight
            return float(quantity.to(dst.units).magnitude) / _magnitude(dst)

        try:
            offset = convert(0.0)       # 0 for every unit but temperatures
            if offset == 0:
                factor = convert(1.0)
            else:
                # an affine scale: take the factor from the difference units (delta_degC ...)
                # so that it is as exact as a multiplicative one, not f(1) - f(0)
                step = registry.Quantity(1.0, src.units) - registry.Quantity(0.0, src.units)
                unit_step = (registry.Quantity(1.0, dst.units)
                             - registry.Quantity(0.0, dst.units)).units
                factor = float(step.to(unit_step).magnitude) * _magnitude(src) * scale \
                    / _magnitude(dst)
        except Exception as exc:  # pint: DimensionalityError, OffsetUnitCalculusError ...
            raise NotConvertible("incompatible-units", f"{from_unit} -> {to_unit}: "
                                 f"{type(exc).__name__}: {exc}") from exc
        return Conversion(from_unit, to_unit, from_ucum, to_ucum, clean_factor(factor),
                          clean_factor(offset), molecular_weight, valence)


def _magnitude(quantity: Any) -> float:
    return float(quantity.magnitude)


def _is_equivalents(quantity: Any) -> bool:
    return "equivalent" in str(quantity.units)
