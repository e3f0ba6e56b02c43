"""fhircdisc: convert clinical-trial data between HL7 FHIR and CDISC SDTM."""

from __future__ import annotations

from fhircdisc.errors import ConversionError, FhircdiscError, InputError, OutputError

__version__ = "0.1.0"

__all__ = [
    "ConversionError",
    "FhircdiscError",
    "InputError",
    "OutputError",
    "Study",
    "__version__",
    "to_sdtm",
]


def __getattr__(name: str) -> object:
    # Lazy, so that ``import fhircdisc`` stays cheap for the CLI's --help.
    if name == "to_sdtm":
        from fhircdisc.converters.fhir_to_sdtm import to_sdtm
        return to_sdtm
    if name == "Study":
        from fhircdisc.study import Study
        return Study
    raise AttributeError(name)
