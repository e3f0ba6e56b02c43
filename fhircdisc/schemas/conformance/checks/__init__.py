"""Named checks, one module per family; importing this package registers them all."""

from fhircdisc.schemas.conformance.checks import (  # noqa: F401 - imported to register
    dates,
    derivations,
    keys,
    metadata,
    presence,
    terminology,
    xpt,
)
from fhircdisc.schemas.conformance.checks.registry import CHECKS, COMMON_FIELDS, CheckSpec, check

__all__ = ["CHECKS", "COMMON_FIELDS", "CheckSpec", "check"]
