"""`validate` reads a FHIR export twice, a resource at a time (what references resolve to
and the version first, then the checks), holding none of it: the findings are those of
the checks over the whole input held in memory, whatever the order of the resources."""

from __future__ import annotations

from pathlib import Path

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fhircdisc.converters.fhir_reader import read_sources
from fhircdisc.mappings import terminology
from fhircdisc.schemas.fhir_checks import index_input, validate_fhir
from fhircdisc.validation import validate_fhir_path
from tests.conftest import shared

NAMES = ("Patient-example.json", "Patient-f201.json", "Observation-f001.json",
         "Observation-blood-pressure.json", "Encounter-example.json",
         "MedicationAdministration-medadmin0301.json", "AdverseEvent-example.json")
#: an Observation whose subject is the Patient of the official example, read before it
FORWARD = {"resourceType": "Observation", "id": "forward", "status": "final",
           "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7"}]},
           "subject": {"reference": "Patient/example"},
           "encounter": {"reference": "Encounter/nowhere"}}


def _resources() -> list[dict]:
    found = [orjson.loads(shared("fhir-r4-examples", name).read_bytes()) for name in NAMES]
    return [FORWARD, *found]


def _records(result) -> list[tuple]:
    return [(f.rule_id, f.variable, f.value, f.source, f.message) for f in result.findings]


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.permutations(range(len(NAMES) + 1)), st.booleans())
def test_streamed_checks_find_what_the_held_input_gives(tmp_path_factory, order, structure
                                                        ) -> None:
    resources = _resources()
    path = tmp_path_factory.mktemp("export") / "export.ndjson"
    path.write_bytes(b"".join(orjson.dumps(resources[i]) + b"\n" for i in order))
    streamed = validate_fhir_path(path, structure=structure)
    held = validate_fhir(list(read_sources([path])), "R4", terminology.load(()),
                         target=str(path), structure=structure)
    assert _records(streamed) == _records(held)
    assert [(r.rule_id, r.status, r.findings) for r in streamed.runs] \
        == [(r.rule_id, r.status, r.findings) for r in held.runs]
    broken = [f.value for f in streamed.findings if f.rule_id == "FC-FH-0002"]
    # the forward reference resolves wherever the Patient is; the missing Encounter not
    assert "Patient/example" not in broken and "Encounter/nowhere" in broken


def test_a_one_shot_stream_is_checked_with_its_index(tmp_path: Path) -> None:
    """Given the index of a first read, the checks read the items once more, as a
    generator: they need no list."""
    path = tmp_path / "export.ndjson"
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in _resources()))
    index = index_input(read_sources([path]))
    assert "Patient/example" in index.keys and not index.problems
    once = validate_fhir((item for item in read_sources([path])), "R4", terminology.load(()),
                         index=index)
    held = validate_fhir(list(read_sources([path])), "R4", terminology.load(()))
    assert _records(once) == _records(held) and once.findings


def test_validate_holds_a_few_resources_at_a_time(tmp_path: Path, monkeypatch) -> None:
    """However large the export, the resources read are let go as the reads go on."""
    import gc
    import weakref

    from fhircdisc import validation

    path = tmp_path / "export.ndjson"
    lines = [orjson.dumps({**FORWARD, "id": f"o{n}"}) for n in range(500)]
    path.write_bytes(b"\n".join([orjson.dumps(_resources()[1]), *lines]) + b"\n")
    alive: set[int] = set()
    peak = 0

    def tracked(sources):
        nonlocal peak
        for item in read_sources(sources):
            alive.add(id(item))
            weakref.finalize(item, alive.discard, id(item))
            peak = max(peak, len(alive))
            yield item

    monkeypatch.setattr(validation, "read_sources", tracked)
    gc.disable()                      # let go by reference counting, not by a collection
    try:
        result = validate_fhir_path(path, structure=False)
    finally:
        gc.enable()
    assert sum(f.value == "Encounter/nowhere" for f in result.findings) == 500
    assert peak <= 3


def test_a_code_met_again_is_reported_again(tmp_path: Path) -> None:
    """Whether the tables know a set of codings is worked out once a run; every resource
    holding an unknown one still gets its finding, in its own place."""
    def observation(rid: str, code: str, unit: str = "mg/dL") -> dict:
        return {"resourceType": "Observation", "id": rid, "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
                "valueQuantity": {"value": 1, "unit": unit, "code": unit,
                                  "system": "http://unitsofmeasure.org"}}

    resources = [observation("a", "LOCAL-1"), observation("b", "2345-7"),
                 observation("c", "LOCAL-1", "furlong"), observation("d", "LOCAL-1"),
                 {"resourceType": "Patient", "id": "p", "gender": "female"},
                 {"resourceType": "Patient", "id": "q", "gender": "robot"},
                 {"resourceType": "Patient", "id": "r", "gender": "robot"}]
    path = tmp_path / "export.ndjson"
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in resources))
    found = [(f.variable, f.value, f.source.split(" @ ")[0])
             for f in validate_fhir_path(path, structure=False).findings
             if f.rule_id == "FC-FH-0003"]
    assert found == [("Observation.code", "LOCAL-1", "Observation/a"),
                     ("Observation.code", "LOCAL-1", "Observation/c"),
                     ("Observation.valueQuantity", "furlong", "Observation/c"),
                     ("Observation.code", "LOCAL-1", "Observation/d"),
                     ("Patient.gender", "robot", "Patient/q"),
                     ("Patient.gender", "robot", "Patient/r")]
