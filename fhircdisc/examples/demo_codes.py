"""Codes used by the built-in demo trial (FHIR side), in one place.

Every LOINC, UCUM, SNOMED CT and HL7 code here must have a row in the terminology
tables under ``fhircdisc/mappings/terminology/`` mapping it to the CDISC value named
beside it; a test checks that.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

#: The terminology file the demo's conversion adds to the built-in tables.
DEMO_TERMINOLOGY = Path(__file__).with_name("demo_terminology.csv")


LOINC = "http://loinc.org"
#: The demo laboratory's own code system, for a test without a confirmed LOINC code; its
#: rows live in ``demo_terminology.csv`` (a user terminology file, as a site would write).
LOCAL_LAB = "urn:fhircdisc:demo:lab"


class DemoTest(NamedTuple):
    testcd: str          # CDISC --TESTCD expected after conversion
    loinc: str           # the test code (a LOINC code unless ``system`` says otherwise)
    display: str         # LOINC display
    ucum: str            # UCUM unit code of the result
    unit_display: str
    system: str = LOINC


UCUM = "http://unitsofmeasure.org"
SNOMED = "http://snomed.info/sct"

# Serum cytokines and CRP (LB): 8 tests, measured on days 0, 5, 10 and 17.
LAB_TESTS: tuple[DemoTest, ...] = (
    DemoTest("CRP", "1988-5", "C reactive protein [Mass/volume] in Serum or Plasma",
             "mg/L", "mg/L"),
    DemoTest("INTLK6", "26881-3", "Interleukin 6 [Mass/volume] in Serum or Plasma",
             "pg/mL", "pg/mL"),
    DemoTest("IFNG", "27415-9", "Interferon gamma [Mass/volume] in Serum or Plasma",
             "pg/mL", "pg/mL"),
    DemoTest("TNF", "3074-2", "Tumor necrosis factor.alpha [Mass/volume] in Serum or Plasma",
             "pg/mL", "pg/mL"),
    DemoTest("INTLK17", "IL17A", "Interleukin 17A [Mass/volume] in Serum", "pg/mL", "pg/mL",
             LOCAL_LAB),
    DemoTest("TGFB1", "49853-5",
             "Transforming growth factor beta 1 [Mass/volume] in Serum or Plasma",
             "pg/mL", "pg/mL"),
    DemoTest("INTLK1B", "13629-1", "Interleukin 1 beta [Mass/volume] in Serum or Plasma",
             "pg/mL", "pg/mL"),
    DemoTest("INTLK10", "26848-2", "Interleukin 10 [Mass/volume] in Serum or Plasma",
             "pg/mL", "pg/mL"),
)

# Vital signs (VS) on days 0, 5, 10 and 17; weight at baseline only.
OXYSAT = DemoTest("OXYSAT", "59408-5",
                  "Oxygen saturation in Arterial blood by Pulse oximetry", "%", "%")
FIO2 = DemoTest("FIO2", "3150-0", "Inhaled oxygen concentration", "%", "%")
PULSE = DemoTest("HR", "8867-4", "Heart rate", "/min", "beats/minute")
TEMP = DemoTest("TEMP", "8310-5", "Body temperature", "Cel", "C")
SYSBP = DemoTest("SYSBP", "8480-6", "Systolic blood pressure", "mm[Hg]", "mmHg")
DIABP = DemoTest("DIABP", "8462-4", "Diastolic blood pressure", "mm[Hg]", "mmHg")
WEIGHT = DemoTest("WEIGHT", "29463-7", "Body weight", "kg", "kg")
BP_PANEL_LOINC = "85354-9"
BP_PANEL_DISPLAY = "Blood pressure panel with all children optional"

# Exposure: UC-MSC, 1 x 10^6 cells/kg, intravenous infusion on days 1, 3 and 5.
ROUTE_IV_SNOMED = "47625008"          # Intravenous route -> EXROUTE INTRAVENOUS
DOSE_UCUM = "10*6{cells}/kg"          # -> EXDOSU, see units table
FORM_SNOMED = "385219001"             # Solution for injection -> EXDOSFRM, see exposure table
EUTRT = "UMBILICAL CORD MESENCHYMAL STROMAL CELLS"
