from hypothesis import given
from hypothesis import strategies as st

from fhircdisc.mappings import paths

OBS = {
    "resourceType": "Observation",
    "code": {"coding": [{"system": "http://acme.org", "code": "X1"},
                        {"system": "http://loinc.org", "code": "1988-5", "display": "CRP"}]},
    "valueQuantity": {"value": 12.5, "unit": "mg/L"},
    "extension": [{"url": "http://hl7.org/fhir/5.0/StructureDefinition/extension-AdverseEvent"
                          ".occurrence[x]", "valuePeriod": {"end": "2020-05-01"}}],
}


def test_filter_selects_the_matching_coding():
    assert paths.get(OBS, "code.coding[system=http://loinc.org].code") == "1988-5"
    assert paths.get(OBS, "code.coding.code") == "X1"
    assert paths.get_all(OBS, "code.coding.code") == ["X1", "1988-5"]


def test_filter_value_may_contain_brackets_and_dots():
    path = ("extension[url=http://hl7.org/fhir/5.0/StructureDefinition/"
            "extension-AdverseEvent.occurrence[x]].valuePeriod.end")
    assert paths.get(OBS, path) == "2020-05-01"


def test_missing_and_empty_values_give_none():
    assert paths.get(OBS, "valueString") is None
    assert paths.get({"a": ""}, "a") is None
    assert paths.first(OBS, ("valueString", "valueQuantity.value")) == ("valueQuantity.value", 12.5)


def test_put_creates_filtered_items_and_reads_back():
    node: dict = {}
    paths.put(node, "code.coding[system=http://loinc.org].code", "8480-6")
    paths.put(node, "code.coding[system=http://loinc.org].display", "Systolic")
    paths.put(node, "valueQuantity.value", 120)
    assert node == {"code": {"coding": [{"system": "http://loinc.org", "code": "8480-6",
                                         "display": "Systolic"}]},
                    "valueQuantity": {"value": 120}}


def test_malformed_path_is_refused():
    import pytest
    with pytest.raises(ValueError):
        paths.parse("code..coding")


_names = st.sampled_from(["code", "value", "system", "unit", "text"])
_values = st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=20)


@given(steps=st.lists(_names, min_size=1, max_size=4), value=_values)
def test_put_then_get_round_trips(steps, value):
    node: dict = {}
    path = ".".join(steps)
    paths.put(node, path, value)
    assert paths.get(node, path) == value


def test_list_steps_create_lists_when_writing():
    node: dict = {}
    paths.put(node, "referenceRange[].low.value", 3.5)
    paths.put(node, "referenceRange[].high.value", 5.0)
    paths.put(node, "interpretation[]", {"text": "H"})
    assert node == {"referenceRange": [{"low": {"value": 3.5}, "high": {"value": 5.0}}],
                    "interpretation": [{"text": "H"}]}
    assert paths.get(node, "referenceRange[].high.value") == 5.0
    assert paths.get(node, "referenceRange.low.value") == 3.5
