"""The official FHIR R4 examples (../shared/data/fhir-r4-examples), written as Bulk Data
NDJSON and repeated to many subjects, come out of the streaming engine as out of the
in-memory engine, byte for byte: the lines its fast lane reads from their text, the ones
it parses, and the ones only the general engine maps."""

from __future__ import annotations

import gzip
from pathlib import Path

import orjson
import pytest

from fhircdisc import to_sdtm
from fhircdisc.converters.streaming import stream_to_sdtm
from tests.conftest import shared

STAMP = "2026-01-02T03:04:05"
TYPES = ("Patient", "Observation", "Encounter", "MedicationAdministration", "AdverseEvent")


def _copies(resource: dict, copy: int) -> dict:
    """The resource as if from another patient: ids and patient references renamed."""
    text = orjson.dumps(resource).decode()
    for name in ("example", "f001", "f201", "pat1"):
        text = text.replace(f'"Patient/{name}"', f'"Patient/{name}-{copy}"')
    data = orjson.loads(text)
    data["id"] = f"{data.get('id', 'x')}-{copy}"
    return {"resourceType": data.pop("resourceType"), **data}


@pytest.mark.parametrize("gzipped", [False, True])
def test_fhir_examples_stream_as_in_memory(tmp_path: Path, gzipped: bool) -> None:
    folder = shared("fhir-r4-examples")
    export = tmp_path / "export"
    export.mkdir()
    for kind in TYPES:
        resources = [orjson.loads(path.read_bytes()) for path in
                     sorted(folder.glob(f"{kind}-*.json"))]
        lines = [orjson.dumps(_copies(r, copy)) for copy in range(40) for r in resources]
        text = b"\n".join(lines) + b"\n"
        if gzipped:
            (export / f"{kind}.ndjson.gz").write_bytes(gzip.compress(text))
        else:
            (export / f"{kind}.ndjson").write_bytes(text)
    study = to_sdtm([export], study_id="EX")
    memory = tmp_path / "memory"
    study.write(memory, ("xpt", "csv"), creation_datetime=STAMP, validation=study.validate())
    streamed = tmp_path / "streamed"
    stream_to_sdtm([export], streamed, ("xpt", "csv"), study_id="EX", workers=2,
                   creation_datetime=STAMP, chunk_lines=300, bucket_rows=200)
    expected = {p.name: p.read_bytes() for p in memory.iterdir()}
    assert {p.name for p in streamed.iterdir()} == set(expected)
    for name, data in expected.items():
        assert (streamed / name).read_bytes() == data, name
    report = orjson.loads(expected["conversion-report.json"])
    assert report["rows"]["VS"] >= 40 * 8 and report["rows"]["LB"] >= 40
    assert report["unmapped"]                 # the examples the mappings cannot take
