"""The streaming engine writes the same files as the in-memory engine: datasets in every
format, provenance and report (findings included), whatever the chunk, bucket and worker
counts; and a failure leaves nothing behind."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson
import pandas as pd
import pytest

from benchmarks.generate import CATEGORY, generate
from fhircdisc import to_sdtm
from fhircdisc.converters.streaming import stream_to_sdtm
from fhircdisc.errors import InputError
from fhircdisc.mappings.extensions import variable_extension

STAMP = "2026-01-02T03:04:05"
FORMATS = ("xpt", "json", "ndjson", "csv")
LOINC = "http://loinc.org"


def _obs(rid: str, patient: str = "p0000001", **extra: Any) -> dict[str, Any]:
    obs: dict[str, Any] = {
        "resourceType": "Observation", "id": rid, "status": "final",
        "category": [{"coding": [{"system": CATEGORY, "code": "laboratory"}]}],
        "code": {"coding": [{"system": LOINC, "code": "2345-7"}]},
        "subject": {"reference": f"Patient/{patient}"},
        "effectiveDateTime": "2021-05-06T07:08:00-05:00",
        "valueQuantity": {"value": 101, "unit": "mg/dL", "system": "http://unitsofmeasure.org",
                          "code": "mg/dL"}}
    obs.update(extra)
    return {k: v for k, v in obs.items() if v is not None}


def _panel(rid: str, *parts: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A blood pressure panel: its components, no value of its own."""
    def part(code: str, value: Any, **more: Any) -> dict[str, Any]:
        return {"code": {"coding": [{"system": LOINC, "code": code}]},
                "valueQuantity": {"value": value, "unit": "mm[Hg]", "code": "mm[Hg]",
                                  "system": "http://unitsofmeasure.org"}, **more}
    components = [part(**p) for p in parts] or [part("8480-6", 120), part("8462-4", 80)]
    fields = {"category": [{"coding": [{"system": CATEGORY, "code": "vital-signs"}]}],
              "code": {"coding": [{"system": LOINC, "code": "85354-9"}]},
              "valueQuantity": None, "component": components, **extra}
    return _obs(rid, **fields)


def _odd_observations() -> list[dict[str, Any]]:
    """What the fast lane must hand back to the general engine, and problems to report."""
    flag = [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/"
                                   "v3-ObservationInterpretation", "code": "H"}]}]
    return [
        _panel("bp1"),
        # panels the lane takes (at an encounter, without category, with a component's
        # flag, without id) and hands over (a component it cannot map, the panel's own
        # flag, a component without a value, a component with a status of its own)
        _panel("bp2", encounter={"reference": "Encounter/e1"}),
        _panel("bp3", category=None),
        _panel("bp4", {"code": "8480-6", "value": 150, "interpretation": flag},
               {"code": "8462-4", "value": 95.5}),
        _panel("", id=None),
        _panel("bp5", {"code": "8480-6", "value": 118}, {"code": "99999-9", "value": 1}),
        _panel("bp6", interpretation=flag),
        _panel("bp7", {"code": "8480-6", "value": None}, {"code": "8462-4", "value": 70}),
        _panel("bp8", {"code": "8480-6", "value": 121, "status": "cancelled"},
               {"code": "8462-4", "value": 71}),
        _obs("enc1", encounter={"reference": "Encounter/e1"},
             specimen={"reference": "Specimen/s1"}),
        _obs("gone", status="entered-in-error"),
        _obs("unknown", code={"coding": [{"system": LOINC, "code": "99999-9"}]}),
        _obs("baddate", effectiveDateTime="2021-02-30"),
        _obs("stranger", patient="nobody"),
        _obs("survey", category=[{"coding": [{"system": CATEGORY, "code": "survey"}]}],
             code={"coding": [{"system": LOINC, "code": "72133-2"}]}),
        _obs("carried", extension=[variable_extension("LBSEQ", 99.0),
                                   variable_extension("LBFAST", "Y")]),
        _obs("oddunit", valueQuantity={"value": 3, "unit": "furlongs", "code": "[fur]",
                                       "system": "http://unitsofmeasure.org"}),
        _obs("absent", valueQuantity=None, dataAbsentReason={"text": "lost"}),
        # results as text: a string, coded values, a string beside a code
        _obs("stringy", valueQuantity=None, valueString="trace"),
        _obs("coded", valueQuantity=None, valueCodeableConcept={"text": "Positive"}),
        _obs("coded2", valueQuantity=None, valueCodeableConcept={"coding": [
            {"system": "http://snomed.info/sct", "code": "260385009", "display": "Negative"}]}),
        _obs("both", valueQuantity=None, valueString="first",
             valueCodeableConcept={"text": "second"}),
        _obs("noid", id=None),
        # a USUBJID of its own, carried: the row sorts (and is bucketed) by it
        _obs("moved", extension=[variable_extension("USUBJID", "BENCH-p0000030X")]),
        _obs("first", extension=[variable_extension("USUBJID", "AAA-0")]),
    ]


def build_export(root: Path) -> Path:
    """A generated export plus the odd cases, a context file and a Bundle."""
    files = generate(root, 3000, 60)
    with files[-1].open("ab") as handle:
        for obs in _odd_observations():
            handle.write(orjson.dumps(obs) + b"\n")
        handle.write(b"\n")                                   # a blank line is skipped
    (root / "Context.ndjson").write_bytes(b"\n".join(orjson.dumps(r) for r in (
        {"resourceType": "Encounter", "id": "e1", "status": "finished",
         "identifier": [{"value": "3"}], "type": [{"text": "WEEK 2"}]},
        {"resourceType": "Specimen", "id": "s1", "type": {"coding": [
            {"system": "http://terminology.hl7.org/CodeSystem/v2-0487", "code": "SER"}]}},
        {"resourceType": "Device", "id": "d1"})) + b"\n")
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [
        {"fullUrl": "urn:uuid:b1", "resource": _obs("inbundle", patient="p0000002")},
        {"fullUrl": "urn:uuid:b2", "resource": _obs("inbundle2", patient="p0000059",
                                                    effectiveDateTime="2020-01-01")}]}
    (root / "bundle.json").write_bytes(orjson.dumps(bundle))
    return root


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_export(tmp_path_factory.mktemp("export"))


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def memory_output(export: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    study = to_sdtm([export], study_id="BENCH")
    out = tmp_path_factory.mktemp("memory") / "out"
    study.write(out, FORMATS, creation_datetime=STAMP, validation=study.validate())
    return _files(out)


@pytest.mark.parametrize(("workers", "chunk_lines", "bucket_rows"),
                         [(1, 700, 400), (2, 500, 900), (2, 100_000, 100_000)])
def test_stream_writes_the_same_files_as_memory(export: Path, memory_output: dict[str, bytes],
                                                tmp_path: Path, workers: int,
                                                chunk_lines: int, bucket_rows: int) -> None:
    start = time.perf_counter()
    result = stream_to_sdtm([export], tmp_path / "out", FORMATS, study_id="BENCH",
                            workers=workers, creation_datetime=STAMP, chunk_lines=chunk_lines,
                            bucket_rows=bucket_rows)
    elapsed = time.perf_counter() - start
    assert list(result.timings) == ["context", "observations", "datasets", "writing"]
    assert all(seconds > 0 for seconds in result.timings.values())
    assert sum(result.timings.values()) <= elapsed
    assert list(result.cpu) == list(result.timings)
    assert all(seconds >= 0 for seconds in result.cpu.values())
    streamed = _files(tmp_path / "out")
    assert sorted(streamed) == sorted(memory_output)
    for name, data in memory_output.items():
        assert streamed[name] == data, name
    report = orjson.loads(streamed["conversion-report.json"])
    assert report["reconciles"]
    assert report["rows"]["LB"] == result.datasets["LB"][0] > 1500
    # each bucket's subjects, counted from their codes, add up to the dataset's
    lb = pd.read_csv(tmp_path / "out" / "lb.csv", dtype=str)
    assert result.datasets["LB"][1] == lb["USUBJID"].nunique() > 1
    reasons = report["unmapped_reasons"]
    for reason in ("entered-in-error", "unknown-code", "invalid-date", "subject-not-enrolled",
                   "unsupported-category", "unsupported-resource-type"):
        assert reasons.get(reason), reason


def test_without_validation_the_datasets_are_the_same(export: Path,
                                                    memory_output: dict[str, bytes],
                                                    tmp_path: Path) -> None:
    """The datasets and the provenance do not depend on the conformance checks having
    coded the columns (only the report differs: it has no findings)."""
    stream_to_sdtm([export], tmp_path / "out", FORMATS, study_id="BENCH", workers=1,
                   creation_datetime=STAMP, chunk_lines=700, bucket_rows=400, validate=False)
    streamed = _files(tmp_path / "out")
    assert sorted(streamed) == sorted(memory_output)
    for name, data in memory_output.items():
        if name != "conversion-report.json":
            assert streamed[name] == data, name
    assert "validation" not in orjson.loads(streamed["conversion-report.json"])


def test_the_odd_cases_come_out_as_the_general_engine_says(export: Path, tmp_path: Path
                                                          ) -> None:
    import pandas as pd

    stream_to_sdtm([export], tmp_path / "out", ("csv",), study_id="BENCH", workers=2,
                   chunk_lines=400, bucket_rows=500, creation_datetime=STAMP)
    lb = pd.read_csv(tmp_path / "out" / "lb.csv", dtype=str)
    vs = pd.read_csv(tmp_path / "out" / "vs.csv", dtype=str)
    prov = pd.read_csv(tmp_path / "out" / "provenance.csv", dtype=str)
    pressures = vs[vs["VSTESTCD"].isin(["SYSBP", "DIABP"])]
    assert set(pressures["VSORRES"].dropna()) == {"120", "80", "150", "95.5", "118", "70",
                                                  "121", "71"}
    bp4 = prov[prov["SOURCE"] == "Observation/bp4"]
    assert sorted(bp4["LOCATION"]) == ["line 3004.component[0]", "line 3004.component[1]"]
    row = lb[lb["LBSPEC"] == "SERUM"]
    assert len(row) == 1 and row.iloc[0]["VISITNUM"] == "3"
    assert "Y" in set(lb["LBFAST"].dropna())
    # a carried --SEQ is kept only when every row carries one; here LB is renumbered
    carried = prov[prov["SOURCE"] == "Observation/carried"]
    assert len(carried) == 1 and carried.iloc[0]["SEQ"] != "99.0"
    assert "NOT DONE" in set(lb["LBSTAT"].dropna())
    assert set(prov[prov["DOMAIN"] == "LB"]["SOURCE"]) >= {"Observation/inbundle",
                                                           "Observation/inbundle2"}


def test_malformed_line_names_file_and_line_and_writes_nothing(export: Path, tmp_path: Path
                                                               ) -> None:
    bad = tmp_path / "in"
    bad.mkdir()
    for path in export.glob("*.ndjson"):
        (bad / path.name).write_bytes(path.read_bytes())
    with (bad / "Observation.000.ndjson").open("ab") as handle:
        handle.write(b'{"resourceType": "Observation", "id": \n')
    out = tmp_path / "out"
    with pytest.raises(InputError) as caught:
        stream_to_sdtm([bad], out, study_id="BENCH", workers=2, chunk_lines=500)
    assert "Observation.000.ndjson" in str(caught.value)
    assert f"line {3000 + len(_odd_observations()) + 2}" in str(caught.value)
    assert not out.exists()


def test_demo_bundle_streams_like_memory(demo_bundle_path: Path, tmp_path: Path) -> None:
    from fhircdisc.examples.demo_codes import DEMO_TERMINOLOGY

    study = to_sdtm([demo_bundle_path], terminology=[DEMO_TERMINOLOGY])
    study.write(tmp_path / "memory", ("xpt",), creation_datetime=STAMP,
                validation=study.validate())
    stream_to_sdtm([demo_bundle_path], tmp_path / "stream", ("xpt",),
                   terminology=[DEMO_TERMINOLOGY], creation_datetime=STAMP, workers=2)
    assert _files(tmp_path / "stream") == _files(tmp_path / "memory")


def test_dm_for_the_bucket_checks_is_made_once_and_not_shipped(tmp_path: Path) -> None:
    import pickle

    from fhircdisc.converters import streaming

    files = generate(tmp_path / "export", 30, 4)
    with streaming.fewer_collections():
        setup = streaming.prepare(files, tmp_path / "out", ("xpt",), study_id="S")
    plan = setup.plan
    dm = plan.dm_dataset()
    assert dm is plan.dm_dataset()                      # every bucket of a worker
    assert sorted(dm.column("USUBJID")) == sorted(setup.small.domains["DM"]["USUBJID"])
    shipped = pickle.loads(pickle.dumps(plan))          # Spark ships the plan: no caches
    assert "_dm_dataset" not in vars(shipped)
    assert shipped.dm_dataset() is not dm and shipped.dm.equals(plan.dm)


def _streams_as_memory(files: list[Path], tmp_path: Path, **options: Any) -> Any:
    """Stream ``files`` (XPT, 2 workers, ``options``) into ``tmp_path/stream`` and check
    that the files are those the in-memory engine writes into ``tmp_path/memory``."""
    study = to_sdtm(files, study_id="BENCH")
    study.write(tmp_path / "memory", ("xpt",), creation_datetime=STAMP,
                validation=study.validate())
    result = stream_to_sdtm(files, tmp_path / "stream", ("xpt",), study_id="BENCH",
                            workers=2, creation_datetime=STAMP, **options)
    assert _files(tmp_path / "stream") == _files(tmp_path / "memory")
    return result


def test_local_lab_codes_are_reported_unmapped_as_in_memory(tmp_path: Path) -> None:
    """The benchmark's long tail of local test codes: each such result is reported, the
    rest converted, the same files as the in-memory engine."""
    from benchmarks.generate import LOCAL_CODES

    files = generate(tmp_path / "export", 2400, 40, local_codes=0.3)
    local = sum(path.read_bytes().count(LOCAL_CODES.encode()) for path in files)
    assert 250 < local < 600
    result = _streams_as_memory(files, tmp_path, chunk_lines=500, bucket_rows=700)
    report = orjson.loads((tmp_path / "stream" / "conversion-report.json").read_bytes())
    assert report["unmapped_reasons"] == {"unknown-code": local}
    assert len(report["unmapped"]) == local
    # the items went to disk chunk by chunk and into the file: only their counts stay
    assert result.report.unmapped == [] and result.report.reasons() == {"unknown-code": local}
    assert report["rows"]["LB"] + report["rows"]["VS"] == 2400 - local


def test_observations_at_encounters_take_the_lane_and_write_what_memory_does(
        tmp_path: Path) -> None:
    """Exports where every Observation points at an Encounter (Synthea's, most EHRs'): the
    fast lane takes them, the visit worked out once per encounter, and the files are the
    in-memory engine's, for encounters that resolve, that do not, and whose identifier is
    not a number."""
    from fhircdisc.converters import streaming

    export = tmp_path / "export"
    files = generate(export, 2400, 40, local_codes=0.1, encounters=True)
    visits = [orjson.loads(line) for line in (export / "Encounter.ndjson").read_bytes()
              .splitlines()]
    assert len(visits) > 300
    visits[0]["identifier"] = [{"value": "V1"}]
    visits[1]["type"] = [{"coding": [{"code": "185349003"}]}]
    kept = [visit for number, visit in enumerate(visits) if number % 10 != 5]
    (export / "Encounter.ndjson").write_bytes(b"".join(orjson.dumps(v) + b"\n" for v in kept))
    study = to_sdtm(files, study_id="BENCH")
    study.write(tmp_path / "memory", ("xpt", "csv"), creation_datetime=STAMP,
                validation=study.validate())
    stream_to_sdtm(files, tmp_path / "stream", ("xpt", "csv"), study_id="BENCH", workers=2,
                   creation_datetime=STAMP, chunk_lines=500, bucket_rows=700)
    assert _files(tmp_path / "stream") == _files(tmp_path / "memory")
    lb = study.domains["LB"]
    assert set(lb["VISIT"].dropna()) == {"Outpatient visit", "185349003"}
    assert lb["VISIT"].isna().sum() > 50                 # encounters that do not resolve
    assert set(lb["VISITNUM"].dropna()) <= set(range(1, 13)) and lb["VISITNUM"].isna().any()
    with streaming.fewer_collections():
        setup = streaming.prepare(files, tmp_path / "out", ("xpt",), study_id="BENCH",
                                  chunk_lines=500)
        result = streaming.map_task(setup.tasks[0], setup.context)
    laned = sum(len(block) for block in result.blocks.values())
    parsed = sum(len(rows) for rows in result.rows.values())
    assert laned > 400 and parsed < 60                    # the parsed ones: local codes


def test_row_findings_go_to_disk_and_into_the_report_as_in_memory(tmp_path: Path) -> None:
    """A coded glucose result gives a conformance finding in its row: with one in every
    third lab row, over several buckets and both workers, the report lists them as the
    in-memory engine does, while the result holds only their counts."""
    files = generate(tmp_path / "export", 1800, 30)
    coded = {"coding": [{"system": "http://snomed.info/sct", "code": "167272000",
                         "display": "Trace"}], "text": "Trace"}
    for path in files:
        if path.name.startswith("Observation"):
            lines = [orjson.loads(line) for line in path.read_bytes().splitlines()]
            for number, obs in enumerate(lines):
                if number % 3 == 0 and obs["code"]["coding"][0]["code"] == "2345-7":
                    obs["valueCodeableConcept"] = coded
                    del obs["valueQuantity"]
            path.write_bytes(b"".join(orjson.dumps(obs) + b"\n" for obs in lines))
    result = _streams_as_memory(files, tmp_path, chunk_lines=400, bucket_rows=300)
    report = orjson.loads((tmp_path / "stream" / "conversion-report.json").read_bytes())
    findings = report["validation"]["findings"]
    in_rows = [f for f in findings if f["dataset"] == "LB" and f["row"] is not None]
    assert len({f["usubjid"] for f in in_rows}) > 10          # from several buckets
    assert [f["row"] for f in in_rows if f["rule_id"] == in_rows[0]["rule_id"]] == sorted(
        f["row"] for f in in_rows if f["rule_id"] == in_rows[0]["rule_id"])
    assert any(f["value"] == "Trace" for f in in_rows)
    validation = result.validation
    assert validation is not None
    assert not any(f.dataset == "LB" and f.row is not None for f in validation.findings)
    for severity, count in report["validation"]["counts"].items():
        assert validation.count(severity) == count
    assert sum(report["validation"]["counts"].values()) == len(findings)
    with pytest.raises(RuntimeError, match="report file"):
        validation.to_dict()


def test_progress_tells_the_resources_read_then_each_step(export: Path, tmp_path: Path
                                                          ) -> None:
    calls: list[tuple[str, int]] = []
    result = stream_to_sdtm([export], tmp_path / "out", ("xpt",), study_id="BENCH", workers=2,
                            chunk_lines=500, bucket_rows=900,
                            progress=lambda label, count: calls.append((label, count)))
    read = sum(result.report.read_counts.values())
    counts = [count for _, count in calls]
    assert counts == sorted(counts) and counts[-1] == read > 3000
    steps = [label for label, count in calls if not label.endswith((".ndjson", ".json"))]
    buckets = len(steps) - 2
    assert steps == [f"finishing datasets: {n} of {buckets} buckets"
                     for n in range(buckets + 1)] + ["writing the output files"]
    assert buckets >= 4                                  # LB and VS, two buckets or more each
    assert all(count == read for label, count in calls if label in steps)


def test_json_buckets_of_integral_results_are_written_from_their_frames(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The workers encode each bucket's Dataset-JSON rows with the bucket's own data
    types. Where some subjects have only integral results and others not, a bucket of
    the former is integer where the dataset is double: the writer reads its frame back
    from where it waited (and no more), and the files are the in-memory engine's."""
    from fhircdisc.converters import streaming

    files = generate(tmp_path / "export", 1200, 20)
    for path in files:
        if path.name.startswith("Observation"):
            lines = [orjson.loads(line) for line in path.read_bytes().splitlines()]
            for obs in lines:
                quantity = obs.get("valueQuantity")
                if quantity is not None:    # the first half of the Patients: whole numbers
                    whole = obs["subject"]["reference"] < "Patient/p0000010"
                    quantity["value"] = float(round(quantity["value"])) + (0 if whole else 0.5)
            path.write_bytes(b"".join(orjson.dumps(obs) + b"\n" for obs in lines))
    study = to_sdtm(files, study_id="BENCH")
    study.write(tmp_path / "memory", ("json", "xpt"), creation_datetime=STAMP,
                validation=study.validate())
    read_back: list[bool] = []
    loaded: list[str] = []
    whole, load = streaming.FinishedBucket.whole, streaming._load_bucket

    def counted(self: Any) -> Any:
        read_back.append(self.parked is not None)
        return whole(self)

    def loading(spill_dir: Path, piece: Any) -> Any:
        loaded.append(piece.domain)
        return load(spill_dir, piece)

    monkeypatch.setattr(streaming.FinishedBucket, "whole", counted)
    monkeypatch.setattr(streaming, "_load_bucket", loading)
    stream_to_sdtm(files, tmp_path / "stream", ("json", "xpt"), study_id="BENCH", workers=1,
                   creation_datetime=STAMP, bucket_rows=150)
    assert _files(tmp_path / "stream") == _files(tmp_path / "memory")
    # only the buckets the JSON writer turned down, each from its parked frame
    assert read_back and all(read_back) and len(read_back) < len(loaded)


def test_the_small_datasets_checked_ahead_fail_the_conversion_as_inline(
        export: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With several workers DM is checked on a thread while the buckets are finished: an
    error there stops the conversion as one in the main thread does, and no output is
    left behind."""
    from fhircdisc.study import Study

    threads: list[str] = []

    def broken(self: Study) -> Any:
        import threading

        threads.append(threading.current_thread().name)
        raise RuntimeError("rules table unreadable")

    monkeypatch.setattr(Study, "validate", broken)
    for workers in (2, 1):
        out = tmp_path / f"out{workers}"
        with pytest.raises(RuntimeError, match="rules table unreadable"):
            stream_to_sdtm([export], out, ("xpt",), study_id="BENCH", workers=workers,
                           creation_datetime=STAMP, chunk_lines=700, bucket_rows=400)
        assert not out.exists() or list(out.iterdir()) == []
    assert threads == ["check-ahead", "MainThread"]


def test_datasets_written_while_the_last_one_is_finished(
        export: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With several workers, LB is written on a thread of the main process once its last
    bucket is finished, while the workers finish VS: the output is the one-process
    output; an error there stops the conversion, and no output is left behind."""
    import threading

    from fhircdisc.converters import streaming

    writing = streaming._write_streamed
    threads: dict[str, str] = {}

    def spied(setup: Any, staging: Path, domain: str, *args: Any) -> None:
        threads[domain] = threading.current_thread().name
        writing(setup, staging, domain, *args)

    monkeypatch.setattr(streaming, "_write_streamed", spied)
    outputs = {}
    for workers in (1, 2):
        threads.clear()
        out = tmp_path / f"out{workers}"
        stream_to_sdtm([export], out, FORMATS, study_id="BENCH", workers=workers,
                       creation_datetime=STAMP, chunk_lines=700, bucket_rows=400)
        outputs[workers] = _files(out)
    # (VS is written in a forked worker, beside DM: its thread is not seen here)
    assert threads == {"LB": "early-writing"}
    assert outputs[1] == outputs[2]

    def broken(setup: Any, staging: Path, domain: str, *args: Any) -> None:
        if threading.current_thread().name == "early-writing":
            raise RuntimeError("cannot encode LB")
        writing(setup, staging, domain, *args)

    monkeypatch.setattr(streaming, "_write_streamed", broken)
    out = tmp_path / "broken"
    with pytest.raises(RuntimeError, match="cannot encode LB"):
        stream_to_sdtm([export], out, FORMATS, study_id="BENCH", workers=2,
                       creation_datetime=STAMP, chunk_lines=700, bucket_rows=400)
    assert not out.exists() or list(out.iterdir()) == []


def test_a_bucket_failing_while_a_dataset_is_written_early_stops_the_conversion(
        export: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A VS bucket failing in a worker while LB is written on the main process's thread:
    the conversion stops with that error, the thread is waited for, and no output is
    left behind."""
    import threading

    from fhircdisc.converters import streaming

    finish = streaming.finish_bucket

    def failing(domain: str, *args: Any) -> Any:
        if domain == "VS":
            raise RuntimeError("VS bucket cannot be finished")
        return finish(domain, *args)

    monkeypatch.setattr(streaming, "finish_bucket", failing)
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="VS bucket cannot be finished"):
        stream_to_sdtm([export], out, ("xpt",), study_id="BENCH", workers=2,
                       creation_datetime=STAMP, chunk_lines=700, bucket_rows=400)
    assert not out.exists() or list(out.iterdir()) == []
    assert "early-writing" not in [thread.name for thread in threading.enumerate()]
