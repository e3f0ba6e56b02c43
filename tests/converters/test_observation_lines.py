"""Plain Observation lines read straight from their JSON text (``map_line``) give what the
fast lane gives from the parsed resource (``map``): the same row and value issues, or
the line is handed over; typical lines are taken."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmarks.generate import CATEGORY, generate
from fhircdisc.converters import observation_lane, streaming
from fhircdisc.converters.chunk import ChunkResult, StudyContext, _reference, convert_lines
from fhircdisc.converters.fhir_reader import Origin, SourceResource
from fhircdisc.converters.lane_block import DERIVED_TEXT, derived_texts, object_array
from fhircdisc.converters.observation_batch import LineBatch, read_batch
from fhircdisc.converters.observation_lane import LineFailure, ObservationLane
from fhircdisc.mappings.algorithms import number_text
from fhircdisc.report import unmapped_order

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
FLAGS = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"


def new_context(folder: Path) -> StudyContext:
    """The context of a small study in ``folder``: 5 Patients, 10 Observations and the
    encounters of :data:`VISITS`."""
    files = generate(folder, 10, 5)
    files.append(folder / "Encounter.ndjson")
    files[-1].write_bytes(b"\n".join(orjson.dumps(visit) for visit in VISITS) + b"\n")
    with streaming.fewer_collections():
        setup = streaming.prepare(files, folder / "out", ("xpt",), study_id="S")
    return setup.context


def new_lane(folder: Path) -> ObservationLane:
    """A lane over the small study of :func:`new_context`."""
    ctx = new_context(folder)
    return ObservationLane(ctx.index, ctx.enrolment, ctx.terminology)


@pytest.fixture(scope="module")
def lanes(tmp_path_factory: pytest.TempPathFactory) -> tuple[ObservationLane, ObservationLane]:
    """Two lanes over the same study (5 patients): one per way in, so that neither's
    caches serve the other."""
    text_lane = new_lane(tmp_path_factory.mktemp("export"))
    return text_lane, ObservationLane(text_lane.index, text_lane.enrolment,
                                      text_lane.terminology)


#: encounters the lines may point at: a visit type and number, a number that is not one,
#: and a type that is a bare coding
VISITS = [{"resourceType": "Encounter", "id": "e1", "status": "finished",
           "type": [{"text": "Screening"}], "identifier": [{"value": "1"}]},
          {"resourceType": "Encounter", "id": "e2", "status": "finished",
           "identifier": [{"value": "week 2"}, {"value": "2.5"}]},
          {"resourceType": "Encounter", "id": "e3", "status": "finished",
           "type": {"coding": [{"code": "AMB", "display": "ambulatory"}]}},
          # e1's visit on another day: what the visit rules read is e1's
          {"resourceType": "Encounter", "id": "e4", "status": "finished",
           "type": [{"text": "Screening"}], "identifier": [{"value": "1"}],
           "period": {"start": "2021-03-04"}}]


def typical(n: int, **extra: Any) -> dict[str, Any]:
    obs: dict[str, Any] = {
        "resourceType": "Observation", "id": f"o{n}", "status": "final",
        "category": [{"coding": [{"system": CATEGORY, "code": "laboratory"}]}],
        "code": {"coding": [{"system": LOINC, "code": "2345-7", "display": "Glucose"}]},
        "subject": {"reference": f"Patient/p{n % 5:07d}"},
        "effectiveDateTime": "2021-05-06T07:08:00-05:00",
        "valueQuantity": {"value": 101.5, "unit": "mg/dL", "system": UCUM, "code": "mg/dL"},
        "referenceRange": [{"low": {"value": 70, "unit": "mg/dL"},
                            "high": {"value": 140, "unit": "mg/dL"}}],
        "interpretation": [{"coding": [{"system": FLAGS, "code": "N"}]}]}
    obs.update(extra)
    return obs


def dumps(obs: dict[str, Any]) -> bytes:
    """JSON text as an export has it (numbers of any size, text as is)."""
    return json.dumps(obs, separators=(",", ":"), ensure_ascii=False).encode()


def both(lanes: tuple[ObservationLane, ObservationLane], line: bytes
         ) -> tuple[Any, Any]:
    text_lane, parsed_lane = lanes
    text_issues: list[Any] = []
    parsed_issues: list[Any] = []
    from_text = text_lane.map_line(line, "f.ndjson", 3, text_issues)
    try:
        data = orjson.loads(line)
    except orjson.JSONDecodeError:
        return (from_text, text_issues), None
    from_parsed = parsed_lane.map(data, "f.ndjson", 3, parsed_issues)
    return (from_text, text_issues), (from_parsed, parsed_issues)


elements = {
    "code": st.sampled_from([
        {"coding": [{"system": LOINC, "code": "2345-7"}], "text": "Glucose"},
        {"coding": [{"system": LOINC, "code": "8867-4"}]},
        {"coding": [{"system": LOINC, "code": "99999-9"}]},
        {"text": "free text only"}, "not a concept", None]),
    "valueQuantity": st.one_of(st.none(), st.builds(
        lambda value, unit, comparator: {k: v for k, v in {
            "value": value, "unit": unit, "code": unit, "system": UCUM,
            "comparator": comparator}.items() if v is not None},
        st.one_of(st.integers(-(2**70), 2**70), st.floats(-1e6, 1e6), st.just(2.0),
                  st.sampled_from(["12", True, None])),
        st.sampled_from(["mg/dL", "/min", "furlongs", None, 7]),
        st.sampled_from([None, "<", ">=", 3]))),
    "status": st.sampled_from(["final", "cancelled", "entered-in-error", "preliminary",
                               "not-a-status", None, 5]),
    "effectiveDateTime": st.sampled_from(["2021-03-04T10:20:00-05:00", "2021-03",
                                          "2021-02-30", "", 5, None]),
    "subject": st.sampled_from([{"reference": "Patient/p0000001"},
                                {"reference": "Patient/nobody"}, {"display": "x"},
                                "Patient/p0000001", None]),
    "referenceRange": st.sampled_from([None, [{"low": {"value": 1}}], [{"low": "x"}], []]),
    "interpretation": st.sampled_from([None, [{"coding": [{"system": FLAGS, "code": "H"}]}],
                                       [None]]),
    "encounter": st.sampled_from([None, {"reference": "Encounter/e1"},
                                  {"reference": "Encounter/e2"}, {"reference": "Encounter/e3"},
                                  {"reference": "Encounter/e4"},
                                  {"reference": "Encounter/nowhere"}, {"display": "visit"},
                                  {"reference": 5}, "Encounter/e1", {}]),
    "effectivePeriod": st.sampled_from([None, {"start": "2021-01-01"}]),
    "valueString": st.sampled_from([None, "positive", "", " 12 "]),
    "valueCodeableConcept": st.sampled_from([
        None, {"text": "Positive"}, {"text": " trimmed "}, {"coding": []}, "not a concept",
        {"coding": [{"system": "http://snomed.info/sct", "code": "10828004",
                     "display": "Positive"}]}, {"coding": [{"code": "NEG"}]}]),
    "id": st.sampled_from(["o1", "", 17, None]),
    "note": st.sampled_from([None, [{"text": "caf\u00e9"}], [{"text": "x"}]]),
    "resourceType": st.sampled_from(["Observation", "Observation", "Patient"]),
}


PULSE = {"category": [{"coding": [{"system": CATEGORY, "code": "vital-signs"}]}],
         "code": {"coding": [{"system": LOINC, "code": "8867-4"}]},
         "valueQuantity": {"value": 70, "unit": "/min", "system": UCUM, "code": "/min"},
         "referenceRange": None, "interpretation": None}

@st.composite
def usual_lines(draw: st.DrawFn) -> bytes:
    """Lines of the usual kind: lab results and pulses, of any subject and value, at an
    encounter or not."""
    n = draw(st.integers(0, 9))
    obs = typical(n, id=f"u{n}", **(PULSE if draw(st.booleans()) else {}))
    obs["valueQuantity"] = {**obs["valueQuantity"],
                            "value": draw(st.sampled_from([70, 101.5, 0.25, 2**40, -3.0]))}
    visit = draw(st.sampled_from([None, None, "e1", "e4", "nowhere"]))
    if visit is not None:
        obs["encounter"] = {"reference": f"Encounter/{visit}"}
    return dumps(obs)


@st.composite
def lines(draw: st.DrawFn) -> bytes:
    obs = typical(draw(st.integers(0, 9)))
    for name, strategy in elements.items():
        if draw(st.booleans()):
            value = draw(strategy)
            if value is None and draw(st.booleans()):
                obs.pop(name, None)         # absent rather than null
            else:
                obs[name] = value
    line = dumps(obs)
    if draw(st.booleans()):            # the same element twice: the last one counts
        line = line[:-1] + b',"status":"cancelled"}'
    return line


@settings(max_examples=600, deadline=None, suppress_health_check=[
    HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.lists(lines(), min_size=1, max_size=8))
def test_lines_read_from_text_map_as_parsed(lanes: Any, batch: list[bytes]) -> None:
    for line in batch:
        from_text, from_parsed = both(lanes, line)
        if from_text[0] is None:
            continue                      # handed over: map (or the engine) takes it
        assert from_parsed is not None, line
        assert from_text == from_parsed, line


@pytest.mark.parametrize(("encounter", "visit"), [
    ({"reference": "Encounter/e1"}, (1.0, "Screening")),
    ({"reference": "Encounter/e2"}, (2.5, None)),
    ({"reference": "Encounter/e3"}, (None, "ambulatory")),
    ({"reference": "Encounter/nowhere"}, (None, None)),
    ({"display": "visit"}, (None, None)),
    (None, (None, None)),
])
def test_lines_at_an_encounter_are_read_from_text_with_its_visit(
        lanes: Any, encounter: Any, visit: tuple[Any, Any]) -> None:
    """An encounter gives VISITNUM (its first numeric identifier) and VISIT (its type's
    text), worked out once per encounter; one that does not resolve gives neither."""
    (from_text, _), (from_parsed, _) = both(lanes, dumps(typical(1, encounter=encounter)))
    assert from_text is not None and from_text == from_parsed
    assert (from_text[1]["VISITNUM"], from_text[1]["VISIT"]) == visit


@pytest.mark.parametrize(("result", "text"), [
    ({"valueString": "trace"}, "trace"),
    ({"valueCodeableConcept": {"text": "Positive"}}, "Positive"),
    ({"valueCodeableConcept": {"coding": [{"code": "NEG", "display": "Negative"}]}},
     "Negative"),
    ({"valueString": "first", "valueCodeableConcept": {"text": "second"}}, "first"),
])
def test_results_as_text_are_read_from_text(lanes: Any, result: dict[str, Any],
                                            text: str) -> None:
    """A string or coded result: the text the result rules give, no number, no unit."""
    line = dumps({**{k: v for k, v in typical(1).items() if k != "valueQuantity"}, **result})
    (from_text, _), (from_parsed, _) = both(lanes, line)
    assert from_text is not None and from_text == from_parsed
    row = from_text[1]
    assert (row["LBORRES"], row["LBSTRESC"], row["LBSTRESN"], row["LBORRESU"]) == (
        text, text, None, None)


def test_typical_lines_are_read_from_text(lanes: Any) -> None:
    taken = [both(lanes, dumps(typical(n)))[0] for n in range(10)]
    assert all(result is not None for result, _ in taken)
    domain, row = taken[1][0]
    assert (domain, row["USUBJID"], row["LBTESTCD"], row["LBORRES"], row["LBSTRESN"],
            row["LBDTC"], row["LBNRIND"], row["_source"], row["_location"]) == (
        "LB", "S-p0000001", "GLUC", "101.5", 101.5, "2021-05-06T07:08:00", "NORMAL",
        "Observation/o1", "line 3")


@pytest.mark.parametrize("change", [
    {"extension": []}, {"component": None}, {"dataAbsentReason": {"text": "lost"}},
    {"effectivePeriod": {"start": "2021-01-01"}}, {"valueInteger": 3},
    {"valueQuantity": {"value": 2**64, "unit": "mg/dL"}}, {"id": 7},
    {"code": "not a concept"},
    {"valueQuantity": {"value": "12", "unit": "mg/dL"}},
])
def test_lines_the_text_reader_hands_over(lanes: Any, change: dict[str, Any]) -> None:
    """Elements the plain lane does not take (even as null), numbers orjson reads as
    floats, and wrong shapes go the ordinary way."""
    from_text, _ = both(lanes, dumps(typical(1, **change)))
    assert from_text == (None, [])


def test_lines_of_other_types_and_statuses_are_handed_over(lanes: Any) -> None:
    """A line of another resource type, or of a status no FHIR version has, is not read
    from its text (the ordinary way maps or reports it); R5's statuses are."""
    lane = lanes[0]
    for change in ({"resourceType": "Patient"}, {"status": "not-a-status"},
                   {"status": "Final"}):
        line = dumps(typical(1, **change))
        assert lane.shape.decode(line) is None, change
        assert lane.read_line(line) is None, change
    for status in ("final", "appended", "cannot-be-obtained", "specimen-in-process"):
        decoded = lane.shape.decode(dumps(typical(1, status=status)))
        assert decoded is not None and decoded.status == status


def test_text_must_be_utf8(lanes: Any) -> None:
    line = dumps(typical(1, note=[{"text": "caf\u00e9 \u00b5mol"}]))
    assert both(lanes, line)[0][0] is not None
    broken = line.replace("\u00e9".encode(), b"\xe9")
    assert both(lanes, broken) == ((None, []), None)


@pytest.fixture(scope="module")
def context(tmp_path_factory: pytest.TempPathFactory) -> StudyContext:
    return new_context(tmp_path_factory.mktemp("context"))


_COMPONENTS = st.sampled_from([
    {"code": "8480-6", "value": 120}, {"code": "8462-4", "value": 80},
    {"code": "99999-9", "value": 1}, {"code": "8480-6", "value": "1"},
    {"code": "8480-6", "value": 1, "status": "cancelled"},
    {"code": "8462-4", "value": 70, "interpretation": [{"coding": [{"code": "L"}]}]}])


@st.composite
def panels(draw: st.DrawFn) -> bytes:
    """Blood pressure panels of enrolled patients and others, with components the lane
    takes and others it hands over."""
    from tests.converters.test_streaming import _panel

    extra: dict[str, Any] = {"subject": draw(elements["subject"])}
    for name in ("status", "effectiveDateTime", "encounter", "id", "interpretation"):
        if draw(st.booleans()):
            extra[name] = draw(elements[name])
    obs = _panel(f"bp{draw(st.integers(0, 9))}", *draw(st.lists(_COMPONENTS, max_size=3)),
                 **extra)
    if draw(st.booleans()):                 # a component of the wrong shape, read as text
        obs["component"].append(draw(st.sampled_from(_ODD_COMPONENTS)))
    return dumps(obs)


#: components whose code or range the lane keeps as JSON text: checked as a template
_ODD_COMPONENTS = [{"code": "not a concept", "valueQuantity": {"value": 1}},
                   {"code": {"coding": [{"system": LOINC, "code": "8462-4"}]},
                    "valueQuantity": {"value": 1}, "referenceRange": [{"low": "x"}]}]


@settings(max_examples=200, deadline=None, suppress_health_check=[
    HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.lists(lines() | panels(), min_size=1, max_size=10))
def test_lines_that_do_not_map_are_reported_as_the_general_engine_reports_them(
        context: StudyContext, batch: list[bytes]) -> None:
    """Whether the lane reports a line that does not map itself (it knows the reason from
    the line's template) or leaves it to the general engine, the chunk's unmapped items
    and outcomes are those of the general engine over every line."""
    numbered = list(enumerate(batch, 1))
    result = convert_lines(numbered, "f.ndjson", 0, context)
    reference = ChunkResult()
    _reference([SourceResource(orjson.loads(line), Origin("f.ndjson", f"line {n}"))
                for n, line in numbered], [(0, n, 0) for n, _ in numbered], context, {},
               reference, [])
    assert sorted([*result.unmapped, *result.failed.items()], key=unmapped_order) == \
        sorted(reference.unmapped, key=unmapped_order)
    assert result.outcomes == reference.outcomes


def test_the_lane_reports_what_a_line_s_template_tells(lanes: Any) -> None:
    """An unknown test code, or a category and code no table maps, is known from the
    line's template: the lane reports it (when the line's own values map; a line that
    also has a bad date is left to the general engine, which reports the first problem
    in the rules' order)."""
    text_lane = lanes[0]
    unknown = {"coding": [{"system": LOINC, "code": "99999-9"}]}
    survey = [{"coding": [{"system": CATEGORY, "code": "survey"}]}]
    found = [text_lane.read_line(dumps(typical(n, **extra))) for n, extra in enumerate([
        {"code": unknown}, {"code": unknown, "encounter": {"reference": "Encounter/e1"}},
        {"code": unknown, "id": None}, {"category": survey, "code": unknown},
        {"category": survey, "code": unknown, "effectiveDateTime": "2021-02-30"},
        {"code": unknown, "effectiveDateTime": "2021-02-30"}])]
    failures = [part for part in found if isinstance(part, LineFailure)]
    assert [(f.error.reason_code, f.rid) for f in failures] == [
        ("unknown-code", "o0"), ("unknown-code", "o1"), ("unknown-code", ""),
        ("unsupported-category", "o3"), ("unsupported-category", "o4")]
    assert "99999-9" in failures[0].error.message and failures[0].error.code == "99999-9"
    assert found[-1] is None


def test_lines_of_patients_not_enrolled_are_reported_by_the_lane(lanes: Any) -> None:
    """A hospital export converted for the trial's subjects only: the other patients'
    results are reported from their lines, worded as the general engine words them; a
    line with a bad element is left to the general engine, which checks that first."""
    text_lane = lanes[0]
    found = [text_lane.read_line(dumps(typical(n, **extra))) for n, extra in enumerate([
        {"subject": {"reference": "Patient/nobody"}},
        {"subject": {"reference": "Practitioner/x"}},
        {"subject": {"reference": "Patient/nobody"}, "referenceRange": [{"low": "x"}]},
        {"subject": {"reference": ""}}])]
    assert [(part.error.reason_code, part.error.message, part.rid) for part in found[:2]
            if isinstance(part, LineFailure)] == [
        ("subject-not-enrolled", "Patient/nobody is not enrolled in the study", "o0"),
        ("missing-subject", "subject 'Practitioner/x' is not a Patient reference", "o1")]
    assert found[2:] == [None, None]


def test_a_subjects_list_streams_like_memory(tmp_path: Path) -> None:
    """Six of forty patients enrolled from a subjects file: the other patients' results
    are reported as not enrolled, the same files as the in-memory engine."""
    from fhircdisc import to_sdtm

    files = generate(tmp_path / "export", 2000, 40, local_codes=0.1)
    subjects = tmp_path / "subjects.csv"
    subjects.write_text("patient_id,SITEID\n" + "".join(
        f"p{n:07d},S{n % 2}\n" for n in range(0, 40, 7)), encoding="utf-8")
    study = to_sdtm(files, study_id="BENCH", subjects=subjects)
    study.write(tmp_path / "memory", ("xpt",), creation_datetime="2026-01-02T03:04:05",
                validation=study.validate())
    streaming.stream_to_sdtm(files, tmp_path / "stream", ("xpt",), study_id="BENCH",
                             subjects=subjects, workers=2,
                             creation_datetime="2026-01-02T03:04:05", chunk_lines=400)
    for name in ("conversion-report.json", "lb.xpt", "vs.xpt", "dm.xpt", "provenance.csv"):
        assert (tmp_path / "stream" / name).read_bytes() == \
            (tmp_path / "memory" / name).read_bytes(), name
    reasons = orjson.loads((tmp_path / "stream" / "conversion-report.json").read_bytes())[
        "unmapped_reasons"]
    assert reasons["subject-not-enrolled"] > 1500 and reasons["unknown-code"] > 10


def test_every_enrolled_subject_stays_cached(monkeypatch: pytest.MonkeyPatch,
                                             tmp_path: Path) -> None:
    """More subjects than the lane's cache limit: each subject's reference is still
    resolved once, not again each time the cache would have been emptied."""
    monkeypatch.setattr(observation_lane, "_CACHE_LIMIT", 2)
    lane = new_lane(tmp_path)
    resolved: list[object] = []
    key_of = lane.index.key_of
    monkeypatch.setattr(lane.index, "key_of", lambda ref: resolved.append(ref) or key_of(ref))
    batch = [dumps(typical(n)) for n in range(20)]         # five subjects, four times each
    assert all(lane.read_line(line) is not None for line in batch)
    assert sorted(resolved) == [f"Patient/p{n:07d}" for n in range(5)]
    junk = [dumps(typical(n, subject={"reference": f"Patient/x{n}"})) for n in range(6)]
    assert [getattr(lane.read_line(line), "rid", None) for line in junk] == [
        f"o{n}" for n in range(6)]                         # reported: not enrolled
    assert len(lane.subjects) <= 2 + 5                     # unresolved ones stay bounded
    assert len(lane.subject_errors) <= 2 + 5


def test_every_encounter_stays_cached(monkeypatch: pytest.MonkeyPatch, tmp_path: Path
                                      ) -> None:
    """More encounters than the lane's cache limit (an export has one a visit): each one's
    visit is still worked out once a domain."""
    monkeypatch.setattr(observation_lane, "_CACHE_LIMIT", 2)
    lane = new_lane(tmp_path)
    resolved: list[object] = []
    resolve = lane.index.resolve
    monkeypatch.setattr(lane.index, "resolve", lambda ref: resolved.append(ref) or resolve(ref))
    batch = [dumps(typical(n, encounter={"reference": f"Encounter/e{n % 3 + 1}"}))
             for n in range(12)]                             # three encounters, four times
    assert all(lane.read_line(line) is not None for line in batch)
    assert sorted(ref for ref in resolved if str(ref).startswith("Encounter/")) == [
        "Encounter/e1", "Encounter/e2", "Encounter/e3"]


def test_encounters_of_one_visit_have_their_values_worked_out_once(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The visit rules read an encounter's identifier and type only: encounters equal in
    those (a visit's, on several days) share the values, worked out once a domain."""
    from fhircdisc.converters.fhir_to_sdtm import COMPILED

    lane = new_lane(tmp_path)
    assert lane.visit_reads == ("identifier", "type")
    worked: list[tuple[str, str]] = []
    for domain in ("LB", "VS"):
        visit_values = COMPILED[domain].visit_values
        monkeypatch.setattr(COMPILED[domain], "visit_values",
                            lambda enc, ctx, d=domain, f=visit_values:
                            worked.append((d, enc["id"])) or f(enc, ctx))
    pulse = {"category": [{"coding": [{"system": CATEGORY, "code": "vital-signs"}]}],
             "code": {"coding": [{"system": LOINC, "code": "8867-4"}]},
             "valueQuantity": {"value": 70, "unit": "/min", "system": UCUM, "code": "/min"}}
    lines = [dumps(typical(n, encounter={"reference": f"Encounter/{enc}"}, **extra))
             for n, (enc, extra) in enumerate([("e1", {}), ("e4", {}), ("e2", {}),
                                                ("e4", pulse), ("e1", pulse), ("e4", {})])]
    parts = [part for line in lines if (part := lane.read_line(line)) is not None]
    assert [part[0] for part in parts] == ["LB", "LB", "LB", "VS", "VS", "LB"]
    assert [part[5] for part in parts] == [(1.0, "Screening")] * 2 + [(2.5, None)] + [
        (1.0, "Screening")] * 3
    assert worked == [("LB", "e1"), ("LB", "e2"), ("VS", "e4")]


def test_panels_are_read_from_text_a_row_a_component(lanes: Any) -> None:
    """A blood pressure panel (components, no value of its own) gives a row per
    component; one the lane cannot finish alone goes the parsed way whole."""
    from tests.converters.test_streaming import _panel

    text_lane = lanes[0]
    parts = text_lane.read_panel(dumps(_panel("bp1", encounter={"reference": "Encounter/e1"})))
    assert parts is not None
    assert [(part[0], part[1].row["VSTESTCD"], part[3][-2], part[5], part[6])
            for part in parts] == [("VS", "SYSBP", "120", (1.0, "Screening"), 0),
                                   ("VS", "DIABP", "80", (1.0, "Screening"), 1)]
    flag = [{"coding": [{"system": FLAGS, "code": "H"}]}]
    for declined in (_panel("x", {"code": "8480-6", "value": 1}, {"code": "99999-9", "value": 1}),
                     _panel("y", interpretation=flag),
                     _panel("z", {"code": "8480-6", "value": 1, "status": "cancelled"}),
                     _panel("w", {"code": "8480-6", "value": "1"}),
                     _panel("v", component=[]), typical(1)):
        assert text_lane.read_panel(dumps(declined)) is None, declined


def test_panels_of_patients_not_enrolled_are_reported_by_the_lane(lanes: Any) -> None:
    """A hospital export's blood pressure panels of other patients: reported from their
    lines as the general engine reports them (once, for the whole resource); one with a
    component of a bad shape is left to the general engine, which checks that first."""
    from tests.converters.test_streaming import _panel

    text_lane = lanes[0]
    found = [text_lane.read_panel(dumps(panel)) for panel in (
        _panel("bp1", subject={"reference": "Patient/nobody"},
               effectiveDateTime="2021-02-30"),
        _panel("bp2", subject={"reference": "Practitioner/x"}),
        _panel("bp3", {"code": "8480-6", "value": "1"}, subject={"reference": "Patient/nobody"}),
        _panel("bp5", subject={"reference": "Patient/nobody"},
               component=[{"code": "not a concept", "valueQuantity": {"value": 1}}]),
        _panel("bp4", subject={"reference": ""}))]
    assert [(part.error.reason_code, part.error.message, part.rid) for part in found[:2]
            if isinstance(part, LineFailure)] == [
        ("subject-not-enrolled", "Patient/nobody is not enrolled in the study", "bp1"),
        ("missing-subject", "subject 'Practitioner/x' is not a Patient reference", "bp2")]
    assert found[2:] == [None, None, None]


def _as_read(batch: LineBatch, at: int) -> tuple[Any, ...]:
    """Row ``at`` of a batch as ``read_line`` gives a line's parts (a result text the batch
    leaves to make, :data:`DERIVED_TEXT`, made from the row's number)."""
    *own, text, number = (column[at] for column in batch.own)
    if text is DERIVED_TEXT:
        text = number_text(number)
    return (batch.domains[at], batch.templates[at], batch.subjects[at],
            (*own, text, number), batch.ids[at] or "", batch.visits[at])


@settings(max_examples=400, deadline=None, suppress_health_check=[
    HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.lists(lines() | usual_lines(), min_size=1, max_size=20))
def test_a_batch_of_lines_reads_each_as_read_line_does(lanes: Any, batch: list[bytes]
                                                       ) -> None:
    """Every line a batch takes is what ``read_line`` reads of it, read before the lane has
    seen the lines and again after (its caches then warm); a line left out with what it
    decoded to holds what ``LineShape.decode`` gives, one reported as not mapping
    (subject not enrolled, no domain) what ``read_line`` reports."""
    lane = lanes[0]
    for _ in range(2):
        read = read_batch(lane, batch)
        assert read.taken == sorted(set(read.taken))
        assert len({len(column) for column in (read.domains, read.templates, read.subjects,
                                               read.ids, read.visits, *read.own)}) == 1
        for at, place in enumerate(read.taken):
            assert lane.read_line(batch[place]) == _as_read(read, at), batch[place]
        assert set(read.decoded).isdisjoint(read.taken)
        assert set(read.failures).isdisjoint(read.taken)
        for place, failure in read.failures.items():
            found = lane.read_line(batch[place])
            assert isinstance(found, LineFailure), batch[place]
            assert (found.rid, found.error.reason_code, str(found.error),
                    found.error.element) == (failure.rid, failure.error.reason_code,
                                             str(failure.error), failure.error.element)
        for place, decoded in read.decoded.items():
            assert decoded == lane.shape.decode(batch[place])
            assert lane.read_line(batch[place], decoded) == lane.read_line(batch[place])


def test_a_batch_takes_the_typical_lines_once_seen(lanes: Any) -> None:
    """Typical lines (of subjects and line keys read before) are read by the batch, and
    their values are those of the lines; an unusual one is left in its place."""
    lane = lanes[0]
    typical_lines = [dumps(typical(n, id=f"t{n}")) for n in range(10)]
    for line in typical_lines:
        lane.read_line(line)
    odd = dumps(typical(3, valueQuantity={"value": 5, "comparator": "<", "unit": "mg/dL",
                                          "system": UCUM, "code": "mg/dL"}))
    read = read_batch(lane, [*typical_lines[:4], odd, *typical_lines[4:]])
    assert read.taken == [0, 1, 2, 3, 5, 6, 7, 8, 9, 10]
    assert read.domains == ["LB"] * 10
    assert read.ids == [f"t{n}" for n in range(10)]
    flags, dates, texts, numbers = read.own
    # the result as text is left to make from the number, where the rows are put in a
    # dataset piece
    assert (flags[0], dates[0], texts[0], numbers[0]) == (
        None, "2021-05-06T07:08:00", DERIVED_TEXT, 101.5)
    assert read.subjects[1].usubjid == "S-p0000001"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.floats(allow_nan=False), st.integers(-(2**70), 2**70),
                          st.integers(-2000, 2000), st.sampled_from([0.0, -0.0, 1e15, 1e16]),
                          st.none()), max_size=12))
def test_a_batch_s_results_are_each_result_s_own_values(values: list[Any]) -> None:
    """The result text and number of every value of a batch at once are those
    ``own_values`` gives each (ints, whole floats, big and infinite numbers, none)."""
    from fhircdisc.converters.fhir_to_sdtm import COMPILED
    from fhircdisc.converters.observation_batch import _results

    spec = COMPILED["LB"]
    dates = {"effectiveDateTime": "2021-05-06"}.get
    expected = []
    for value in values:
        own = spec.own_values(value, None, "final", dates) if observation_lane.orjson_number(
            value) else None
        expected.append((None, None) if own is None else own[2:])
    texts, numbers = _results(values)
    # the texts left to make (DERIVED_TEXT), made as a dataset piece makes them
    made, _ = derived_texts(object_array(texts, len(texts)),
                            object_array(numbers, len(numbers)))
    assert list(zip(made.tolist(), numbers, strict=True)) == expected
    assert [type(number) for number in numbers] == [type(number) for _, number in expected]


def test_a_batch_reports_lines_of_other_patients_and_unknown_tests(lanes: Any) -> None:
    """Lines of a Patient not enrolled, and lines whose test code no table maps, are
    reported from the batch as ``read_line`` reports them; the others are read."""
    lane = lanes[0]
    unknown = {"coding": [{"system": LOINC, "code": "99999-9"}]}
    batch = [dumps(typical(1, id="a")),
             dumps(typical(2, id="b", subject={"reference": "Patient/nobody"})),
             dumps(typical(3, id="c", code=unknown)),
             dumps(typical(4, id="d"))]
    for _ in range(2):
        read = read_batch(lane, batch)
        assert read.taken == [0, 3]
        assert sorted(read.failures) == [1, 2]
        assert (read.failures[1].rid, read.failures[1].error.reason_code) == (
            "b", "subject-not-enrolled")
        failure = lane.read_line(batch[2])
        assert isinstance(failure, LineFailure)
        assert (read.failures[2].rid, read.failures[2].error.reason_code) == (
            "c", failure.error.reason_code)



@settings(max_examples=300, deadline=None, suppress_health_check=[
    HealthCheck.function_scoped_fixture])
@given(st.integers(0, 10**6), st.sampled_from([b"\x1f", b"\x00", b"\x01"]))
def test_no_line_the_lane_decodes_holds_the_key_separator(
        lanes: tuple[ObservationLane, ObservationLane], place: int, control: bytes) -> None:
    """The keyed elements' texts are joined with a control character: a line holding one
    anywhere (in a keyed element, a skipped one, a string, between tokens) does not
    decode, so a key's texts split back as they were."""
    lane = lanes[0]
    line = dumps(typical(1, note=[{"text": "n"}]))
    assert lane.shape.decode(line) is not None
    at = place % (len(line) + 1)
    assert lane.shape.decode(line[:at] + control + line[at:]) is None
    objs = [lane.shape.decode(dumps(typical(n))) for n in range(3)]
    keys = lane.shape.unit_keys(objs)
    assert keys == [lane.shape.key(obj) for obj in objs]
    assert all(b"\x1f".join(lane.shape._keyed(obj)).count(b"\x1f") ==
               len(lane.shape._keyed(obj)) - 1 for obj in objs)
