"""The CDISC pilot study validated as a data manager would: datasets + their define.xml."""

from __future__ import annotations

import shutil
from collections import Counter

from fhircdisc.validation import validate_path
from tests.conftest import shared

# Every remaining finding is real (looked at row by row):
EXPECTED = {
    # AEDECOD is null in every AE record: the sample ships without MedDRA coding
    "FC-SD-0002": 74,
    # AELLTCD, AEPTCD, AEHLTCD, AEHLGTCD, AEBDSYCD, AESOCCD are Char; SDTMIG 3.4 says Num
    "FC-SD-0004": 6,
    # TSVCDREF values not in CT 2025-03-28 ('CDISC' is now 'CDISC CT', ...)
    "FC-SD-0007": 25,
    # every HCT result standardised from % to a fraction with LBSTRESU left empty
    "FC-SD-0019": 105,
    # CDISC005: two INJECTION SITE REACTION records with the same start and severity
    "FC-SD-0024": 1,
    # define.xml: Standard Name 'STDTMIG' is a typo for SDTMIG (not in the enumeration)
    "FC-DF-XSD": 1,
    # define.xml describes DD, FT, OE, QSPH, QSSL, RS, FA, DI: not in this subset
    "FC-DF-0002": 8,
    # value-level Lengths too short: LBSTRESC '12.41' (3), 'NORMAL' (1); TSVAL 'BOTH' (1)
    "FC-DF-0006": 3,
    # TSVAL 'P50Y' (AGEMIN) under a where clause declaring integer
    "FC-DF-0007": 1,
    # TS SEXPOP 'BOTH' checked against the non-extensible SEX codelist
    "FC-DF-0009": 1,
    # DSDECOD 'INFORMED CONSENT OBTAINED' and LBTEST 'Anisocytes' outside extensible lists
    "FC-DF-0010": 2,
}


def test_pilot_with_its_define_gives_exactly_the_known_findings(tmp_path):
    folder = tmp_path / "sdtm"
    shutil.copytree(shared("cdisc-sdtm-example", "xpt"), folder)
    shutil.copy(shared("cdisc-sdtm-example", "define.xml"), folder / "define.xml")
    result = validate_path(folder)
    assert result.kind == "sdtm" and result.metadata["define"].endswith("define.xml")
    assert dict(Counter(f.rule_id for f in result.findings)) == EXPECTED
    assert [r for r in result.runs if r.status == "error"] == []
