"""The conversion report's JSON: the same bytes whether its items are handed to orjson as
dicts or as the dataclasses themselves."""

from __future__ import annotations

import pickle

import orjson

from fhircdisc.report import ConversionReport, UnmappedItem, ValueIssueItem


def report() -> ConversionReport:
    rep = ConversionReport(sources=["a.ndjson"], terminology=["t.csv"], enrolment="all")
    rep.read("Observation", "Observation/o1@a.ndjson [line 1]")
    rep.mark("Observation/o1@a.ndjson [line 1]", "unmapped")
    rep.unmapped += [
        UnmappedItem("Observation", "Observation/o1", "a.ndjson", "line 1", "unknown-code",
                     "LBTEST has no row for code 'X' of system urn:x", "Observation.code",
                     "urn:x", "X"),
        UnmappedItem("Patient", "Patient/p\u00e9", "b.json", "$.entry[2]", "invalid-element",
                     'quote " and \\ backslash'),
    ]
    rep.value_issues.append(ValueIssueItem("LB", "Observation/o2", "LBORRESU", "unknown-unit",
                                           "unit kept as written", None, None, "[fur]"))
    return rep


def test_items_as_objects_write_the_same_json() -> None:
    rep = report()
    as_dicts = rep.to_dict()
    as_objects = rep.to_dict(objects=True)
    assert isinstance(as_dicts["unmapped"][0], dict)
    assert isinstance(as_objects["unmapped"][0], UnmappedItem)
    assert orjson.dumps(as_objects, option=orjson.OPT_INDENT_2) == \
        orjson.dumps(as_dicts, option=orjson.OPT_INDENT_2)
    assert orjson.loads(orjson.dumps(as_objects))["value_issues"][0] == {
        "domain": "LB", "resource": "Observation/o2", "variable": "LBORRESU",
        "reason_code": "unknown-unit", "message": "unit kept as written", "element": None,
        "system": None, "code": "[fur]"}


def test_items_keep_no_dict_of_their_own_and_travel_between_processes() -> None:
    item = report().unmapped[0]
    assert not hasattr(item, "__dict__")          # slots: about 110 bytes less an item
    assert pickle.loads(pickle.dumps(item)) == item
