"""Pooling fixtures: the demo trial, the second synthetic study, a tiny FHIR study, the pilot."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from fhircdisc.converters.datasets import write_dataset
from fhircdisc.examples.second_study import second_study_sdtm
from fhircdisc.pooling import PoolInput, pool_studies
from fhircdisc.pooling.inputs import frame_meta

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
PILOT_XPT = SHARED_DATA / "cdisc-sdtm-example" / "xpt"
STAMP = "2024-01-01T00:00:00"
TINY_STUDY_ID = "TINY-3"


@pytest.fixture(scope="session")
def pilot_xpt() -> Path:
    if not PILOT_XPT.is_dir():
        pytest.skip(f"reference data not found: {PILOT_XPT} (CI provides ../shared/data)")
    return PILOT_XPT


@pytest.fixture(scope="session")
def demo_input(demo_study) -> PoolInput:
    return PoolInput.from_study(demo_study, source="demo trial")


@pytest.fixture(scope="session")
def second_frames(demo_study) -> dict[str, pd.DataFrame]:
    return second_study_sdtm(demo_study.domains)


@pytest.fixture(scope="session")
def second_input(second_frames) -> PoolInput:
    return PoolInput.from_frames(second_frames, source="second study", ct_version="2019-12-20")


@pytest.fixture(scope="session")
def demo_second(demo_input, second_input):
    return pool_studies([demo_input, second_input])


@pytest.fixture(scope="session")
def sdtm_folders(tmp_path_factory, demo_study, second_frames) -> tuple[Path, Path]:
    """The demo trial and the second study written as XPT folders (for the CLI)."""
    root = tmp_path_factory.mktemp("studies")
    demo_dir, second_dir = root / "demo", root / "second"
    demo_study.write(demo_dir, ["xpt"], creation_datetime=STAMP)
    second_dir.mkdir()
    for name, frame in second_frames.items():
        write_dataset(frame, second_dir, frame_meta(name, frame), "xpt", creation_datetime=STAMP)
    return demo_dir, second_dir


def _observation(oid: str, patient: str, loinc: str, display: str, value: float,
                 unit: str) -> dict:
    return {"resourceType": "Observation", "id": oid, "status": "final",
            "category": [{"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                "code": "laboratory"}]}],
            "code": {"coding": [{"system": "http://loinc.org", "code": loinc,
                                 "display": display}]},
            "subject": {"reference": f"Patient/{patient}"},
            "effectiveDateTime": "2021-03-01T08:00:00+01:00",
            "valueQuantity": {"value": value, "unit": unit,
                              "system": "http://unitsofmeasure.org", "code": unit}}


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory) -> Path:
    """A hospital export without ResearchSubject: glucose in mmol/L, IL-6 in pmol/L."""
    glucose = "Glucose [Moles/volume] in Serum or Plasma"
    entries = [
        {"resource": {"resourceType": "Patient", "id": "p1", "gender": "female",
                      "birthDate": "1970-01-01"}},
        {"resource": {"resourceType": "Patient", "id": "p2", "gender": "male",
                      "birthDate": "1965-05-05"}},
        {"resource": _observation("g1", "p1", "14749-6", glucose, 5.5, "mmol/L")},
        {"resource": _observation("g2", "p2", "14749-6", glucose, 7.2, "mmol/L")},
        {"resource": _observation("il6", "p1", "26881-3",
                                  "Interleukin 6 [Mass/volume] in Serum or Plasma", 2.1,
                                  "pmol/L")},
    ]
    path = tmp_path_factory.mktemp("tiny") / "tiny-bundle.json"
    path.write_text(json.dumps({"resourceType": "Bundle", "type": "collection",
                                "entry": entries}))
    return path
