"""SDTM conformance: a rule table (data) run by a small engine over named checks.

    from fhircdisc.schemas.conformance import validate_sdtm
    result = validate_sdtm({"DM": dm, "LB": lb}, metas={"DM": dm_meta, "LB": lb_meta})

Rules live in ``fhircdisc/schemas/rules/sdtm_rules.csv`` (id, severity, domains, check,
params, message, CORE/FDA/CG ids, SDTMIG citation); checks in ``checks/``, one module per
family, registered by name. Findings and rule runs are the records of
:mod:`fhircdisc.schemas.findings`.
"""

from fhircdisc.schemas.conformance.checks import CHECKS
from fhircdisc.schemas.conformance.engine import run_rule, validate_sdtm
from fhircdisc.schemas.conformance.rules import Rule, RuleTableError, load_rules

__all__ = ["CHECKS", "Rule", "RuleTableError", "load_rules", "run_rule", "validate_sdtm"]
