"""Deterministic Bulk Data export generator: Patients + US Core shaped lab/vital Observations.

    python benchmarks/generate.py OUT_DIR --observations 1000000 [--patients 5000]
                                  [--local-codes 0.1]

About 600 bytes per Observation (LOINC code, UCUM quantity, reference range,
interpretation, category, effectiveDateTime with offset), split into one
``Observation.ndjson`` file per 250,000 resources so that files can be processed in
parallel, as Bulk Data servers do. ``--local-codes`` gives that share of the lab results
a hospital's local test code instead of LOINC: no terminology table knows them, so they
go through the general engine and into the report as unmapped, as a real export's
long tail of tests does.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import orjson

LAB = (("2345-7", "Glucose [Mass/volume] in Serum or Plasma", "mg/dL", 70, 140),
       ("2160-0", "Creatinine [Mass/volume] in Serum or Plasma", "mg/dL", 0.6, 1.3),
       ("718-7", "Hemoglobin [Mass/volume] in Blood", "g/dL", 11, 17),
       ("6690-2", "Leukocytes [#/volume] in Blood by Automated count", "10*3/uL", 4, 11),
       ("2951-2", "Sodium [Moles/volume] in Serum or Plasma", "mmol/L", 135, 145),
       ("1988-5", "C reactive protein [Mass/volume] in Serum or Plasma", "mg/L", 0, 5))
VITALS = (("8867-4", "Heart rate", "/min", 50, 110), ("8310-5", "Body temperature", "Cel", 36, 38),
          ("59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry", "%", 90, 100),
          ("9279-1", "Respiratory rate", "/min", 10, 24))
CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
PER_FILE = 250_000
US_CORE_PATIENT = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"
LOCAL_CODES = "urn:oid:1.2.36.146.595.217.0.1.9.1"


def patient(n: int, rng: random.Random) -> dict:
    born = f"{rng.randint(1935, 2000)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    return {"resourceType": "Patient", "id": f"p{n:07d}",
            "meta": {"profile": [US_CORE_PATIENT]},
            "identifier": [{"system": "urn:oid:1.2.36.146.595.217.0.1", "value": f"MRN{n:07d}"}],
            "gender": rng.choice(("male", "female")), "birthDate": born,
            "address": [{"country": "US"}]}


def observation(n: int, patients: int, rng: random.Random, local_codes: float = 0.0) -> dict:
    lab = rng.random() < 0.6
    code, display, unit, low, high = rng.choice(LAB if lab else VITALS)
    system = "http://loinc.org"
    if lab and local_codes and rng.random() < local_codes:
        system, code = LOCAL_CODES, f"L{code.replace('-', '')}"
    value = round(rng.uniform(low * 0.8, high * 1.2), 2)
    day = rng.randint(1, 28)
    obs = {"resourceType": "Observation", "id": f"o{n:08d}", "status": "final",
           "category": [{"coding": [{"system": CATEGORY,
                                     "code": "laboratory" if lab else "vital-signs"}]}],
           "code": {"coding": [{"system": system, "code": code, "display": display}],
                    "text": display},
           "subject": {"reference": f"Patient/p{rng.randrange(patients):07d}"},
           "effectiveDateTime": f"2021-{rng.randint(1, 12):02d}-{day:02d}T{rng.randint(0, 23):02d}:"
                                f"{rng.randint(0, 59):02d}:00-05:00",
           "valueQuantity": {"value": value, "unit": unit, "system": "http://unitsofmeasure.org",
                             "code": unit}}
    if lab:
        obs["referenceRange"] = [{"low": {"value": low, "unit": unit}, "high": {"value": high,
                                                                                "unit": unit}}]
        flag = "H" if value > high else "L" if value < low else "N"
        obs["interpretation"] = [{"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation",
            "code": flag}]}]
    return obs


def generate(out: Path, observations: int, patients: int, seed: int = 7,
             local_codes: float = 0.0) -> list[Path]:
    """Write the export; returns the files written. ``local_codes``: the share of lab
    results coded with a local code no terminology table has (0: the same files as ever)."""
    rng = random.Random(seed)
    out.mkdir(parents=True, exist_ok=True)
    files = [out / "Patient.ndjson"]
    with files[0].open("wb") as handle:
        for n in range(patients):
            handle.write(orjson.dumps(patient(n, rng)) + b"\n")
    for part in range(0, observations, PER_FILE):
        path = out / f"Observation.{part // PER_FILE:03d}.ndjson"
        files.append(path)
        with path.open("wb") as handle:
            for n in range(part, min(observations, part + PER_FILE)):
                handle.write(orjson.dumps(observation(n, patients, rng, local_codes)) + b"\n")
    return files


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out", type=Path)
    parser.add_argument("--observations", type=int, default=1_000_000)
    parser.add_argument("--patients", type=int, default=5_000)
    parser.add_argument("--local-codes", type=float, default=0.0,
                        help="share of lab results with a local code (unmapped)")
    args = parser.parse_args()
    written = generate(args.out, args.observations, args.patients,
                       local_codes=args.local_codes)
    print(f"wrote {len(written)} files to {args.out}")
