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


# -- get_all against a plain recursive reading of the path language ---------------------------
def reference_get_all(node, path):
    """Every non-empty value at ``path``: lists are walked through, a filter keeps the
    items whose ``key`` (read with ``get``) equals its value, the last step's value is
    taken whole."""
    def walk(node, steps):
        if not steps:
            if node is not None and node != "" and node != [] and node != {}:
                yield node
            return
        if isinstance(node, list):
            for item in node:
                yield from walk(item, steps)
            return
        if not isinstance(node, dict) or node.get(steps[0].name) is None:
            return
        child = node[steps[0].name]
        for item in child if isinstance(child, list) else [child]:
            if steps[0].key is None or paths.get(item, steps[0].key) == steps[0].value:
                yield from walk(item, steps[1:])
    return list(walk(node, paths.parse(path)))


_leaves = st.one_of(st.none(), st.just(""), st.just([]), st.just({}), st.booleans(),
                    st.integers(-3, 3), st.sampled_from(["a", "b", "x"]))
_keys = st.sampled_from(["a", "b", "code", "system"])
#: items a filter can tell apart
_items = st.fixed_dictionaries({"code": st.sampled_from(["x", "y"])}, optional={
    "b": st.one_of(_leaves, st.dictionaries(_keys, _leaves, max_size=2)),
    "system": st.sampled_from(["a", "b"]), "a": st.fixed_dictionaries({"b": _leaves})})
_value = st.one_of(_leaves, _items, st.lists(st.one_of(_items, _leaves), max_size=3))
_node = st.fixed_dictionaries({}, optional=dict.fromkeys(["a", "b", "code", "system"], _value))
_json = st.one_of(_node, st.lists(_node, max_size=2), st.fixed_dictionaries({"a": _node}),
                  _leaves)
_read_paths = st.sampled_from([
    "a", "a.b", "a.b.code", "code", "a[code=x].b", "a[system=a].code", "a.b[code=x]",
    "b[a.b=x].code", "a[].b", "a.a.a"])


@given(node=_json, path=_read_paths)
def test_get_all_reads_what_the_path_language_says(node, path):
    assert paths.get_all(node, path) == reference_get_all(node, path)


def test_get_all_keeps_a_final_list_value_whole_and_walks_lists_on_the_way():
    node = {"a": [{"b": [[1, 2], 3]}, {"b": {"c": 1}}, {"b": ""}], "x": []}
    assert paths.get_all(node, "a.b") == [[1, 2], 3, {"c": 1}]
    assert paths.get_all([node, node], "x") == []
    assert paths.get_all({"a": [{"code": "x", "b": 1}, {"code": "y", "b": 2}]},
                         "a[code=y].b") == [2]
