"""Named checks, one module per family; importing this package registers them all."""

from fhircdisc.schemas.conformance.checks import dates as dates
from fhircdisc.schemas.conformance.checks import derivations as derivations
from fhircdisc.schemas.conformance.checks import keys as keys
from fhircdisc.schemas.conformance.checks import metadata as metadata
from fhircdisc.schemas.conformance.checks import presence as presence
from fhircdisc.schemas.conformance.checks import terminology as terminology
from fhircdisc.schemas.conformance.checks import xpt as xpt
from fhircdisc.schemas.conformance.checks.registry import CHECKS, COMMON_FIELDS, CheckSpec, check

__all__ = ["CHECKS", "COMMON_FIELDS", "CheckSpec", "check"]
