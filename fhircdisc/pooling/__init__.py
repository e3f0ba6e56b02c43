"""Pool several studies (SDTM folders or FHIR input) into one harmonized SDTM set.

>>> from fhircdisc.pooling import load_inputs, pool_studies
>>> pooled = pool_studies(load_inputs(["study-a/sdtm", "study-b/bundle.json"]))
>>> pooled.write("pooled/", ["xpt"])

``pool_studies`` returns a :class:`PooledStudy`: ``domains`` (one DataFrame per
dataset, rows of every study with their STUDYID), ``report`` (a :class:`PoolingReport`
whose ``to_dict()`` lists every harmonization step: the USUBJID map, unit conversions,
unconvertible results, test-code reconciliations, CT versions, variables added per study
and the conflicts left) and ``write(out_dir, formats)``.
"""

from __future__ import annotations

from fhircdisc.pooling.inputs import PoolInput, load_fhir, load_inputs, load_sdtm_folder
from fhircdisc.pooling.pool import PooledStudy, pool_studies
from fhircdisc.pooling.report import Conflict, PoolingReport, print_report
from fhircdisc.pooling.units import Conversion, NotConvertible, UnitConverter

__all__ = [
    "Conflict",
    "Conversion",
    "NotConvertible",
    "PoolInput",
    "PooledStudy",
    "PoolingReport",
    "UnitConverter",
    "load_fhir",
    "load_inputs",
    "load_sdtm_folder",
    "pool_studies",
    "print_report",
]
