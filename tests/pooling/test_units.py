"""UCUM unit conversion: factors, molar <-> mass, valence, what cannot be converted, round trips."""

from __future__ import annotations

import math
from functools import cache
from importlib import resources

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fhircdisc.mappings.terminology import load_builtin
from fhircdisc.pooling.units import NotConvertible, UnitConverter, load_analytes
from fhircdisc.schemas import ct


@cache
def converter() -> UnitConverter:
    return UnitConverter(load_builtin())


def test_cdisc_units_go_through_the_terminology_to_ucum():
    c = converter()
    assert c.ucum_code("mg/dL") == "mg/dL"
    assert c.ucum_code("mEq/L") == "meq/L"
    assert c.ucum_code("C") == "Cel"
    assert c.ucum_code("ng/L") == "pg/mL"          # the preferred UCUM row of CDISC ng/L
    assert c.ucum_code("fmol") is None             # in CDISC CT, not in the UNIT table


def test_mass_concentration_factors():
    c = converter()
    assert c.conversion("mg/dL", "mg/L").factor == 10.0
    assert c.conversion("ug/L", "ng/L").factor == 1000.0
    assert c.conversion("g/dL", "g/L").factor == 10.0
    assert c.conversion("LB", "kg").factor == 0.45359237
    assert c.conversion("in", "cm").factor == 2.54
    assert c.conversion("beats/min", "/min").factor == 1.0


def test_glucose_molar_to_mass_uses_the_molecular_weight():
    conversion = converter().conversion("mmol/L", "mg/dL", "GLUC")
    assert conversion.molecular_weight == 180.156
    assert conversion.factor == pytest.approx(18.0156, rel=1e-12)
    back = converter().conversion("mg/dL", "mmol/L", "GLUC")
    assert back.factor == pytest.approx(1 / 18.0156, rel=1e-12)
    assert conversion.apply(5.5) == pytest.approx(99.0858, rel=1e-12)
    creat = converter().conversion("mg/dL", "umol/L", "CREAT")
    assert creat.factor == pytest.approx(10_000 / 113.12, rel=1e-12)   # 88.4 umol/L per mg/dL


def test_milliequivalents_need_the_valence():
    c = converter()
    assert c.conversion("mEq/L", "mmol/L", "SODIUM").factor == 1.0
    assert c.conversion("mEq/L", "mmol/L", "CA").factor == 0.5
    assert c.conversion("mmol/L", "mEq/L", "CA").factor == 2.0
    with pytest.raises(NotConvertible) as info:
        c.conversion("mEq/L", "mmol/L", "PHOS")
    assert info.value.reason == "no-valence"


def test_temperature_is_affine():
    conversion = converter().conversion("C", "F")
    assert (conversion.factor, conversion.offset) == (1.8, 32.0)
    assert conversion.apply(37.0) == pytest.approx(98.6, rel=1e-12)


@pytest.mark.parametrize(("source", "target", "testcd", "reason"), [
    ("nmol/L", "mg/L", "CRP", "no-molecular-weight"),          # a protein: no weight
    ("pmol/L", "ng/L", "INTLK6", "no-molecular-weight"),
    ("mmol/L", "mg/dL", None, "no-molecular-weight"),
    ("fmol", "pg", "MCH", "unit-not-in-terminology"),
    ("U/L", "IU/L", "ALT", "incompatible-units"),
    ("mg/dL", "kg", "GLUC", "incompatible-units"),
])
def test_what_cannot_be_converted_says_why(source, target, testcd, reason):
    with pytest.raises(NotConvertible) as info:
        converter().conversion(source, target, testcd)
    assert info.value.reason == reason


def test_analyte_table_is_documented_and_uses_cdisc_test_codes():
    text = (resources.files("fhircdisc.mappings") / "analytes.csv").read_text()
    header = "\n".join(line for line in text.splitlines() if line.startswith("#"))
    assert "PubChem" in header and "AVERAGE" in header and "monoisotopic" in header
    analytes = load_analytes()
    assert {"GLUC", "CREAT", "CHOL", "TRIG", "BILI", "URATE", "UREAN", "CA"} <= set(analytes)
    lbtestcd = ct.by_value("C65047")
    assert all(code in lbtestcd for code in analytes)
    assert all(a.molecular_weight > 0 and a.source for a in analytes.values())
    assert analytes["GLUC"].molecular_weight == 180.156
    assert analytes["UREAN"].molecular_weight == 28.014


#: multiplicative conversions (testcd for molar <-> mass and eq <-> mol)
PAIRS = [
    ("mg/dL", "mg/L", None), ("ng/L", "ug/L", None), ("g/dL", "g/L", None),
    ("mmol/L", "mg/dL", "GLUC"), ("umol/L", "mg/dL", "CREAT"), ("mmol/L", "mg/dL", "CHOL"),
    ("mmol/L", "mg/dL", "TRIG"), ("umol/L", "mg/dL", "BILI"), ("mmol/L", "mg/dL", "UREAN"),
    ("mEq/L", "mmol/L", "CA"), ("mEq/L", "mg/dL", "CA"), ("LB", "kg", None),
    ("in", "cm", None), ("10^9/L", "10^12/L", None), ("mIU/L", "IU/L", None),
]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pair=st.sampled_from(PAIRS),
       value=st.floats(min_value=1e-9, max_value=1e12, allow_nan=False, allow_infinity=False))
def test_converting_there_and_back_returns_the_value(pair, value):
    source, target, testcd = pair
    there = converter().conversion(source, target, testcd)
    back = converter().conversion(target, source, testcd)
    assert math.isclose(float(back.apply(there.apply(value))), value, rel_tol=1e-12)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=st.floats(min_value=-100, max_value=1000, allow_nan=False))
def test_temperature_there_and_back(value):
    there, back = converter().conversion("C", "F"), converter().conversion("F", "C")
    assert math.isclose(float(back.apply(there.apply(value))), value, rel_tol=1e-12,
                        abs_tol=1e-12)
