"""The compiled LB/VS/DM specs give what the reference ``map_view`` gives: rows, value issues
and the reason a resource cannot map, on the demo trial, the official Patient examples and
on generated Observations and Patients."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fhircdisc.converters.enrolment import Subject
from fhircdisc.converters.fhir_to_sdtm import SPECS
from fhircdisc.mappings import terminology
from fhircdisc.mappings.algorithms import MapContext, map_view
from fhircdisc.mappings.compiled import (
    PLAIN_ABSENT,
    CompiledSpec,
    encounter_reads,
    plain_key,
    rule_inputs,
)
from fhircdisc.mappings.spec import Rule, Unmapped
from fhircdisc.mappings.vs import BODY_POSITION

TERMS = terminology.load()
SUBJECTS = [Subject(f"Patient/p{n}", "S1", f"S1-{n:03d}", f"{n:03d}") for n in range(3)]
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"


def outcome(mapper: Any, view: dict[str, Any]) -> tuple[Any, ...]:
    ctx = MapContext(TERMS, "Observation")
    try:
        row = mapper(view, ctx)
    except Unmapped as exc:
        return ("unmapped", exc.reason_code, exc.message, exc.element, exc.system, exc.code)
    return ("row", row, ctx.issues)


def plain_mapper(domain: str) -> Any:
    """The fast lane's way with a plain resource: its template plus its own rules; a
    resource whose template cannot map goes to the general engine, as in the lane."""
    spec = COMPILED[domain]

    def mapper(view: dict[str, Any], ctx: MapContext) -> dict[str, Any]:
        data = {k: v for k, v in view.items() if k != "_subject"}
        try:
            template = spec.plain_template(data, MapContext(TERMS, "Observation"))
        except Unmapped:
            return spec.map(view, ctx)
        return spec.complete(template, data, view["_subject"], ctx)
    return mapper


def reference(domain: str) -> Any:
    return lambda view, ctx: map_view(SPECS[domain], view, ctx)


codes = st.sampled_from([
    {"coding": [{"system": LOINC, "code": "2345-7"}], "text": "Glucose"},
    {"coding": [{"system": LOINC, "code": "718-7", "display": "Hemoglobin"}]},
    {"coding": [{"system": LOINC, "code": "8867-4"}]},
    {"coding": [{"system": LOINC, "code": "8480-6"}]},
    {"coding": [{"system": LOINC, "code": "99999-9"}]},
    {"coding": [{"system": "urn:local", "code": "X"}, {"system": LOINC, "code": "2951-2"}]},
    {"text": "free text only"},
    "not a concept",
])
units = st.sampled_from(["mg/dL", "g/dL", "/min", "mmol/L", "furlongs", None, 7])
numbers = st.one_of(st.integers(-5, 500), st.floats(allow_nan=True, allow_infinity=True),
                    st.sampled_from(["12.5", "abc", None, True]))
quantities = st.one_of(st.none(), st.builds(
    lambda value, unit, comparator, system: {k: v for k, v in {
        "value": value, "unit": unit, "code": unit, "system": system,
        "comparator": comparator}.items() if v is not None},
    numbers, units, st.sampled_from([None, "<", ">="]), st.sampled_from([UCUM, None, "x"])))
ranges = st.one_of(st.none(), st.lists(st.builds(
    lambda low, high: {k: {"value": v} for k, v in (("low", low), ("high", high))
                       if v is not None}, numbers, numbers), max_size=2))
flags = st.one_of(st.none(), st.sampled_from([
    [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation",
                  "code": c}]}] for c in ("H", "L", "N", "ZZ")]))
dates = st.sampled_from(["2021-03-04T10:20:00-05:00", "2021-03", "2021-02-30", "yesterday", 5,
                         None])
statuses = st.sampled_from(["final", "amended", "cancelled", None])
categories = st.sampled_from([None, "laboratory", "vital-signs", "survey"])


@st.composite
def views(draw: st.DrawFn) -> dict[str, Any]:
    view: dict[str, Any] = {"resourceType": "Observation", "_subject": draw(
        st.sampled_from([*SUBJECTS, None]))}
    for name, strategy in (("code", codes), ("valueQuantity", quantities),
                           ("referenceRange", ranges), ("interpretation", flags),
                           ("effectiveDateTime", dates), ("status", statuses)):
        value = draw(strategy)
        if value is not None:
            view[name] = value
    category = draw(categories)
    if category:
        view["category"] = [{"coding": [{"system": CATEGORY, "code": category}]}]
    if draw(st.booleans()):
        view["valueString"] = draw(st.sampled_from(["positive", " 12 ", ""]))
    if draw(st.booleans()):
        view["dataAbsentReason"] = {"text": "sample lost"}
    if draw(st.booleans()):
        view["method"] = draw(st.sampled_from([{"text": "HPLC"}, {"coding": [{"code": "m"}]}]))
    if draw(st.booleans()):
        view["extension"] = [{"url": BODY_POSITION, "valueCodeableConcept": {"coding": [
            {"system": "http://snomed.info/sct", "code": draw(st.sampled_from(
                ["33586001", "10904000", "0"]))}]}}]
    if draw(st.booleans()):
        view["bodySite"] = {"coding": [{"system": "http://snomed.info/sct", "code": "368209003"}]}
    return view


# one compiled spec per domain for the whole run: its caches must never leak between views
COMPILED = {domain: CompiledSpec(SPECS[domain]) for domain in ("LB", "VS")}


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(views(), min_size=1, max_size=6), st.sampled_from(["LB", "VS"]))
def test_compiled_matches_reference_on_generated_views(batch: list[dict[str, Any]],
                                                       domain: str) -> None:
    for view in batch:
        assert outcome(COMPILED[domain].map, view) == outcome(reference(domain), view), \
            orjson.dumps({k: v for k, v in view.items() if k != "_subject"}).decode()


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(views(), min_size=1, max_size=6), st.sampled_from(["LB", "VS"]))
def test_plain_mapping_matches_reference(batch: list[dict[str, Any]], domain: str) -> None:
    """plain_template + complete: the fast lane's fallback, for resources without the
    elements it excludes."""
    for view in batch:
        data = {k: v for k, v in view.items() if k not in PLAIN_ABSENT and k != "_subject"}
        subject = view["_subject"]
        plain = outcome(plain_mapper(domain), {**data, "_subject": subject})
        assert plain == outcome(reference(domain), {**data, "_subject": subject}), \
            orjson.dumps(data).decode()


# templates for the whole run, keyed as the fast lane keys them: a template made from one
# resource is reused for every later resource with the same key
TEMPLATES: dict[tuple[str, bytes], Any] = {}


def template_mapper(domain: str) -> Any:
    spec = COMPILED[domain]
    inputs, units = spec.plain_inputs()

    def mapper(view: dict[str, Any], ctx: MapContext) -> dict[str, Any] | None:
        data = {k: v for k, v in view.items() if k != "_subject"}
        key = (domain, plain_key(data, inputs, units))
        if key not in TEMPLATES:
            try:
                TEMPLATES[key] = spec.plain_template(data, MapContext(TERMS, "Observation"))
            except Unmapped as exc:
                TEMPLATES[key] = exc
        template = TEMPLATES[key]
        if isinstance(template, Unmapped):
            raise template
        row = spec.fill_plain(template, data, view["_subject"])
        if row is not None:
            ctx.issues.extend(template.issues)
        return row
    return mapper


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(views(), min_size=1, max_size=6), st.sampled_from(["LB", "VS"]))
def test_plain_templates_match_reference(batch: list[dict[str, Any]], domain: str) -> None:
    """plain_template + fill_plain: where fill_plain gives a row, it is the reference's row
    and issues; where the template cannot map, neither can the reference."""
    for view in batch:
        data = {k: v for k, v in view.items() if k not in PLAIN_ABSENT}
        fast = outcome(template_mapper(domain), data)
        if fast[0] == "row" and fast[1] is None:
            continue                        # left to complete, tested above
        slow = outcome(reference(domain), data)
        if fast[0] == "unmapped":
            assert slow[0] == "unmapped", orjson.dumps({**data, "_subject": None}).decode()
        else:
            assert fast == slow, orjson.dumps({**data, "_subject": None}).decode()


def test_plain_templates_fill_a_typical_lab_result() -> None:
    data = {"resourceType": "Observation", "id": "o1", "status": "final",
            "category": [{"coding": [{"system": CATEGORY, "code": "laboratory"}]}],
            "code": {"coding": [{"system": LOINC, "code": "2345-7"}]},
            "effectiveDateTime": "2021-03-04T10:20:00-05:00",
            "valueQuantity": {"value": 150.0, "unit": "mg/dL", "system": UCUM,
                              "code": "mg/dL"},
            "referenceRange": [{"low": {"value": 70}, "high": {"value": 140}}],
            "interpretation": [{"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation",
                "code": "H"}]}]}
    spec = COMPILED["LB"]
    row = spec.fill_plain(spec.plain_template(data, MapContext(TERMS, "Observation")), data,
                          SUBJECTS[1])
    assert row is not None
    assert (row["USUBJID"], row["LBTESTCD"], row["LBORRES"], row["LBSTRESN"], row["LBDTC"],
            row["LBNRIND"]) == ("S1-001", "GLUC", "150", 150.0, "2021-03-04T10:20:00", "HIGH")
    assert outcome(lambda v, c: row, {}) == outcome(reference("LB"),
                                                    {**data, "_subject": SUBJECTS[1]})


def test_compiled_matches_reference_on_the_demo_trial(demo_bundle_path) -> None:
    bundle = orjson.loads(demo_bundle_path.read_bytes())
    observations = [e["resource"] for e in bundle["entry"]
                    if e["resource"]["resourceType"] == "Observation"]
    assert len(observations) > 100
    compared = 0
    for data in observations:
        for domain in ("LB", "VS"):
            view = {**data, "_subject": SUBJECTS[0]}
            assert outcome(COMPILED[domain].map, view) == outcome(reference(domain), view)
            compared += 1
    assert compared == 2 * len(observations)


def test_cache_keys_tell_numbers_from_booleans() -> None:
    """True == 1 in Python: a cache keyed on raw values would confuse them."""
    spec = CompiledSpec(SPECS["LB"])
    first = {"resourceType": "Observation", "_subject": SUBJECTS[0], "code": {"coding": [
        {"system": LOINC, "code": "2345-7"}]}, "method": True}
    second = {**first, "method": 1}
    for view in (first, second, first):
        assert outcome(spec.map, view) == outcome(reference("LB"), view)


def test_rule_inputs_name_what_each_rule_reads() -> None:
    lb = SPECS["LB"]
    assert rule_inputs(lb.rule("LBTESTCD")) == ("code",)
    assert rule_inputs(lb.rule("LBSPEC")) == ("_specimen", "code")
    assert rule_inputs(lb.rule("LBSTAT")) is None          # reads every value[x]: run directly
    assert rule_inputs(SPECS["VS"].rule("VSORRESU")) == ("code", "valueQuantity")


def test_encounter_reads_name_the_elements_the_visit_rules_read() -> None:
    """Encounters equal in these elements get the same visit values; a rule that reads
    the encounter whole, or in a way not known, makes them unknown (None)."""
    assert CompiledSpec(SPECS["LB"]).visit_reads == ("identifier", "type")
    assert encounter_reads([Rule("VISITNUM", "visit_number", ())]) == ("identifier",)
    assert encounter_reads([Rule("VISIT", "text", ("_encounter.class.display",)),
                            Rule("VISITDY", "assign", ("_encounter.period.start",))]) \
        == ("class", "period")
    assert encounter_reads([Rule("VISIT", "text", ("_encounter",))]) is None
    assert encounter_reads([Rule("VISIT", "not_done", ("_encounter.type",))]) is None
    assert encounter_reads([Rule("LBTEST", "text", ("code",)),
                            Rule("DOMAIN", "hardcode", (), value="LB")]) == ()
    assert encounter_reads([Rule("LBSTRESU", "unit", ("valueQuantity",))]) is None


def test_a_cached_failure_keeps_nothing_of_its_callers_alive() -> None:
    """A resource that cannot map is cached as its error; the error must not carry the
    traceback of the call that raised it, or every frame up the stack (a streaming
    worker's whole chunk of resources) would live as long as the cache."""
    import gc
    import weakref

    spec = CompiledSpec(SPECS["LB"])
    view = {"resourceType": "Observation", "_subject": SUBJECTS[0],
            "category": [{"coding": [{"system": CATEGORY, "code": "laboratory"}]}],
            "code": {"coding": [{"system": LOINC, "code": "99999-9"}]}}

    class Chunk:
        pass

    def caller() -> tuple[weakref.ref[Chunk], Unmapped]:
        chunk = Chunk()                       # what a task's frame holds
        try:
            spec.map(view, MapContext(TERMS, "Observation"))
        except Unmapped as exc:
            return weakref.ref(chunk), exc
        raise AssertionError("an unknown test code maps")

    first, raised = caller()
    second, again = caller()                  # the second time from the cache
    assert (again.reason_code, again.code) == ("unknown-code", "99999-9")
    del raised, again                         # the errors handed out go; the cache stays
    gc.collect()
    assert first() is None and second() is None
    assert outcome(spec.map, view) == outcome(reference("LB"), view)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.floats(), st.integers(-10**20, 10**20),
                          st.sampled_from([0.0, -0.0, 1e15, -1e15, 5.0, 5])), max_size=30))
def test_result_texts_of_numbers_come_out_the_same_seen_again(values: list[Any]) -> None:
    """Float texts are kept once made: a value seen again (or its equal: 0.0 and -0.0,
    5.0 and 5) gets the text it would get the first time."""
    from fhircdisc.mappings.algorithms import number_text

    def text(value: Any) -> str:
        if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return str(value)

    assert [number_text(v) for v in values + values[::-1]] == \
        [text(v) for v in values + values[::-1]]


# -- DM: Patients -------------------------------------------------------------------------
OMB = "urn:oid:2.16.840.1.113883.6.238"
COMPILED_DM = CompiledSpec(SPECS["DM"])


def _race_or_ethnicity(url: str, code: str | None, text: str | None) -> dict[str, Any]:
    parts: list[dict[str, Any]] = []
    if code is not None:
        parts.append({"url": "ombCategory", "valueCoding": {"system": OMB, "code": code}})
    if text is not None:
        parts.append({"url": "text", "valueString": text})
    return {"url": url, "extension": parts}


@st.composite
def patient_views(draw: st.DrawFn) -> dict[str, Any]:
    from fhircdisc.mappings.dm import US_CORE_ETHNICITY, US_CORE_RACE

    view: dict[str, Any] = {"resourceType": "Patient", "id": "p1",
                            "_subject": draw(st.sampled_from([*SUBJECTS, None]))}
    choices: dict[str, Any] = {
        "gender": st.sampled_from(["male", "female", "other", "unknown", "M", 3, None]),
        "birthDate": st.sampled_from(["1970-01-31", "1970-02-30", "1970", "1970-05", "born",
                                      None]),
        "deceasedBoolean": st.sampled_from([True, False, "yes", None]),
        "deceasedDateTime": st.sampled_from(["2020-05-01T10:00:00Z", "2020", "later", None]),
        "address": st.sampled_from([[{"country": "US"}], [{"country": "DEU"}],
                                    [{"country": "Atlantis"}], [{"city": "Paris"}], "x",
                                    None]),
        "meta": st.sampled_from([{"lastUpdated": "2024-01-02T03:04:05Z"}, {"profile": []},
                                 None]),
    }
    for name, strategy in choices.items():
        value = draw(strategy)
        if value is not None:
            view[name] = value
    extension = [
        _race_or_ethnicity(US_CORE_RACE, code, text)
        for code, text in draw(st.lists(st.tuples(
            st.sampled_from(["2106-3", "2054-5", "2028-9", "9999-9", None]),
            st.sampled_from(["White", None])), max_size=2))]
    if draw(st.booleans()):
        extension.append(_race_or_ethnicity(
            US_CORE_ETHNICITY, draw(st.sampled_from(["2135-2", "2186-5", "0000-0"])), None))
    if extension:
        view["extension"] = extension
    return view


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(patient_views(), min_size=1, max_size=8))
def test_compiled_dm_matches_reference_on_generated_patients(batch: list[dict[str, Any]]
                                                             ) -> None:
    """A Patient's row (SEX, RACE, ETHNIC, dates, COUNTRY ...), value issues and errors
    are those of the reference engine, Patients repeating their codes or not."""
    for view in batch:
        assert outcome(COMPILED_DM.map, view) == outcome(reference("DM"), view), \
            orjson.dumps({k: v for k, v in view.items() if k != "_subject"}).decode()


def test_compiled_dm_matches_reference_on_the_official_patient_examples() -> None:
    from tests.conftest import shared

    patients = [orjson.loads(path.read_bytes())
                for path in sorted(shared("fhir-r4-examples").glob("Patient-*.json"))]
    assert len(patients) >= 4
    for data in patients * 2:       # the second time round, from the caches
        view = {**data, "_subject": SUBJECTS[2]}
        got = outcome(COMPILED_DM.map, view)
        assert got == outcome(reference("DM"), view)
        assert got[0] == "row" and got[1]["USUBJID"] == "S1-002"


def test_compiled_dm_works_out_the_repeating_codes_once() -> None:
    """gender and the race and ethnicity extensions repeat across Patients: their rules
    form the cached group; the per-Patient elements (birth date, address, meta) are read
    directly."""
    grouped = {rule.var for group in COMPILED_DM.groups for _, rule in group.rules}
    assert {"SEX", "RACE", "ETHNIC", "DTHFL"} <= grouped
    assert {"BRTHDTC", "COUNTRY", "DMDTC", "USUBJID"}.isdisjoint(grouped)

