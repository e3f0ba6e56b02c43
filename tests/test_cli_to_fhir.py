"""``fhircdisc to-fhir`` on the CDISC pilot (XPT): Bundle, transaction, NDJSON, R5, stamps.

Each run converts the whole pilot (about 6,700 resources); ``--no-validate`` skips the
fhir.resources pass where validation is not what a test is about, and the R5 test
validates a sample itself.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from fhircdisc.cli import main
from fhircdisc.converters.sdtm_to_fhir import REPORT_NAME
from tests.conftest import shared

STAMP = "2024-05-01T12:00:00+00:00"
URN_UUID = re.compile(r"^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def to_fhir(out: Path, *options: str) -> Path:
    result = CliRunner().invoke(main, ["to-fhir", str(shared("cdisc-sdtm-example", "xpt")),
                                       "-o", str(out), "-q", *options])
    assert result.exit_code == 0, result.output
    return out


def references(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["reference"]] if isinstance(node.get("reference"), str) else []
        return found + [r for key, value in node.items() if key != "reference"
                        for r in references(value)]
    if isinstance(node, list):
        return [r for item in node for r in references(item)]
    return []


@pytest.fixture(scope="module")
def collection(tmp_path_factory) -> Path:
    return to_fhir(tmp_path_factory.mktemp("collection"), "--no-validate",
                   "--timestamp", STAMP)


@pytest.fixture(scope="module")
def report(collection) -> dict[str, Any]:
    return json.loads((collection / REPORT_NAME).read_text(encoding="utf-8"))


def test_collection_bundle_and_report_are_written(collection, report):
    assert sorted(p.name for p in collection.iterdir()) == ["bundle.json", REPORT_NAME]
    bundle = json.loads((collection / "bundle.json").read_text(encoding="utf-8"))
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "collection"
    assert bundle["timestamp"] == STAMP
    assert report["fhir_version"] == "R4" and report["reconciles"] is True
    assert report["rejected"] == []
    assert report["rows_in"] == report["rows_converted"]
    assert Counter(e["resource"]["resourceType"] for e in bundle["entry"]) == \
        report["resources_out"]
    assert all("request" not in e for e in bundle["entry"])


def test_full_urls_are_uuids_and_every_reference_resolves(collection):
    bundle = json.loads((collection / "bundle.json").read_text(encoding="utf-8"))
    urls = [e["fullUrl"] for e in bundle["entry"]]
    assert all(URN_UUID.match(u) for u in urls)
    assert len(set(urls)) == len(urls)
    keys = [f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in bundle["entry"]]
    assert len(set(keys)) == len(keys)
    checked = 0
    for entry in bundle["entry"]:
        resource = entry["resource"]
        contained = {c["id"] for c in resource.get("contained") or []}
        for ref in references(resource):
            if ref.startswith("#"):
                assert ref[1:] in contained, (entry["fullUrl"], ref)
            else:
                assert ref in urls, (entry["fullUrl"], ref)       # no Type/id left over
            checked += 1
    assert checked > len(bundle["entry"])        # every resource but the study refers on
    subjects = [e["resource"] for e in bundle["entry"]
                if e["resource"]["resourceType"] == "Observation"]
    assert all(o["subject"]["reference"] in urls for o in subjects)


def test_transaction_bundle_entries_carry_put_requests(tmp_path):
    out = to_fhir(tmp_path / "tx", "--no-validate", "--bundle", "transaction")
    bundle = json.loads((out / "bundle.json").read_text(encoding="utf-8"))
    assert bundle["type"] == "transaction" and "timestamp" not in bundle
    for entry in bundle["entry"]:
        resource = entry["resource"]
        assert entry["request"] == {"method": "PUT",
                                    "url": f"{resource['resourceType']}/{resource['id']}"}
        assert URN_UUID.match(entry["fullUrl"])


def test_ndjson_writes_one_file_per_type_with_the_reported_counts(tmp_path, report):
    out = to_fhir(tmp_path / "ndjson", "--no-validate", "--ndjson")
    files = {p.name for p in out.iterdir()}
    ours = json.loads((out / REPORT_NAME).read_text(encoding="utf-8"))
    assert files == {f"{t}.ndjson" for t in ours["resources_out"]} | {REPORT_NAME}
    assert ours["resources_out"] == report["resources_out"]
    for rtype, count in ours["resources_out"].items():
        lines = (out / f"{rtype}.ndjson").read_text(encoding="utf-8").splitlines()
        assert len(lines) == count, rtype
        resources = [json.loads(line) for line in lines]
        assert {r["resourceType"] for r in resources} == {rtype}


def test_r5_output_validates_with_r5_models(tmp_path):
    from fhir.resources import get_fhir_model_class

    out = to_fhir(tmp_path / "r5", "--no-validate", "--fhir-version", "R5")
    report = json.loads((out / REPORT_NAME).read_text(encoding="utf-8"))
    assert report["fhir_version"] == "R5"
    resources = [e["resource"] for e in json.loads(
        (out / "bundle.json").read_text(encoding="utf-8"))["entry"]]
    by_type: dict[str, list[dict[str, Any]]] = {}
    for resource in resources:
        by_type.setdefault(resource["resourceType"], []).append(resource)
    rng = random.Random(20240501)
    sample = [rng.choice(items) for items in by_type.values()]          # every type
    sample += rng.sample(resources, 50 - len(sample))
    for resource in sample:
        get_fhir_model_class(resource["resourceType"]).model_validate(resource)
    subject = by_type["ResearchSubject"][0]
    assert "subject" in subject and "individual" not in subject            # R5 shape
    administration = by_type["MedicationAdministration"][0]
    assert "medication" in administration and "medicationReference" not in administration


def test_fixed_timestamp_makes_runs_byte_identical(collection, tmp_path):
    again = to_fhir(tmp_path / "again", "--no-validate", "--timestamp", STAMP)
    for name in ("bundle.json", REPORT_NAME):
        assert (collection / name).read_bytes() == (again / name).read_bytes(), name
