"""Mapping over several processes gives exactly the single-process output."""

from __future__ import annotations

import pandas as pd

from benchmarks.generate import generate
from fhircdisc import to_sdtm


def test_two_workers_give_the_same_study_and_report(tmp_path):
    files = generate(tmp_path, observations=6000, patients=150)
    # one unknown code and one resource without subject, so that the report has content
    extra = tmp_path / "Observation.extra.ndjson"
    extra.write_text(
        '{"resourceType":"Observation","id":"x1","status":"final","code":{"coding":'
        '[{"system":"http://loinc.org","code":"0000-0"}]},"category":[{"coding":[{"system":'
        '"http://terminology.hl7.org/CodeSystem/observation-category","code":"laboratory"}]}],'
        '"subject":{"reference":"Patient/p0000001"}}\n'
        '{"resourceType":"Observation","id":"x2","status":"final","code":{"coding":'
        '[{"system":"http://loinc.org","code":"2345-7"}]}}\n', encoding="utf-8")
    single = to_sdtm([*files, extra], study_id="P", workers=1)
    double = to_sdtm([*files, extra], study_id="P", workers=2)
    assert single.domains.keys() == double.domains.keys()
    for name in single.domains:
        pd.testing.assert_frame_equal(single[name], double[name])
    pd.testing.assert_frame_equal(single.provenance, double.provenance)
    assert single.report.to_dict() == double.report.to_dict()
    assert single.report.reasons() == {"unknown-code": 1, "missing-subject": 1}
    assert len(single["LB"]) + len(single["VS"]) == 6000
