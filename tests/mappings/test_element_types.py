"""The elements the mappings read are checked for their JSON shape, with the element's path."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fhircdisc.mappings.element_types import element_problem

GOOD: dict[str, Any] = {
    "resourceType": "Observation", "status": "final",
    "category": [{"coding": [{"system": "s", "code": "laboratory"}]}],
    "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7"}], "text": "Glucose"},
    "subject": {"reference": "Patient/p1"}, "effectiveDateTime": "2021-01-01",
    "valueQuantity": {"value": 5.5, "unit": "mg/dL", "code": "mg/dL"},
    "referenceRange": [{"low": {"value": 70}, "high": {"value": 140}}],
    "interpretation": [{"coding": [{"code": "N"}]}],
    "component": [{"code": {"text": "x"}, "valueInteger": 3}],
    "note": "not read by any mapping, so not checked",
}


def test_a_well_shaped_observation_has_no_problem() -> None:
    assert element_problem(GOOD) is None
    assert element_problem({"resourceType": "Device", "status": 3}) is None


@pytest.mark.parametrize(("patch", "path", "message"), [
    ({"valueQuantity": {"value": "abc"}}, "Observation.valueQuantity.value",
     "expected a number, found a string ('abc')"),
    ({"valueQuantity": {"value": True}}, "Observation.valueQuantity.value",
     "expected a number, found a boolean (True)"),
    ({"code": "2345-7"}, "Observation.code",
     "expected an object (CodeableConcept), found a string ('2345-7')"),
    ({"code": {"coding": {"code": "x"}}}, "Observation.code.coding",
     "expected an array, found an object"),
    ({"referenceRange": [{"low": {"value": 1}}, {"high": {"value": "9"}}]},
     "Observation.referenceRange[1].high.value", "expected a number, found a string ('9')"),
    ({"effectiveDateTime": 20210101}, "Observation.effectiveDateTime",
     "expected a string, found a number (20210101)"),
    ({"component": [{"valueInteger": 2.5}]}, "Observation.component[0].valueInteger",
     "expected an integer, found a number (2.5)"),
    ({"interpretation": [None]}, "Observation.interpretation[0]", "expected an item, found null"),
])
def test_a_wrong_shape_is_named_by_its_path(patch: dict[str, Any], path: str,
                                            message: str) -> None:
    assert element_problem({**GOOD, **patch}) == (path, message)


def test_null_reads_as_absent() -> None:
    assert element_problem({**GOOD, "valueQuantity": None, "method": None}) is None


primitive = st.one_of(st.text(max_size=5), st.integers(), st.floats(allow_nan=False),
                      st.booleans())


@given(st.dictionaries(st.sampled_from(["value", "unit", "code", "system", "comparator"]),
                       primitive, max_size=5))
def test_quantity_checked_field_by_field(quantity: dict[str, Any]) -> None:
    problem = element_problem({"resourceType": "Observation", "valueQuantity": quantity})
    wrong = [k for k in ("value", "comparator", "unit", "system", "code") if k in quantity and (
        (k == "value" and (isinstance(quantity[k], bool) or not isinstance(quantity[k],
                                                                           int | float)))
        or (k != "value" and not isinstance(quantity[k], str)))]
    if not wrong:
        assert problem is None
    else:
        assert problem is not None
        assert problem[0] == f"Observation.valueQuantity.{wrong[0]}"
