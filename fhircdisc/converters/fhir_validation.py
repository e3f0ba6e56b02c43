"""Structural validation of FHIR resources with fhir.resources (R4B models for R4, R5)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from pydantic import ValidationError

from fhircdisc.errors import ConversionError

_PARALLEL_FROM = 2000


def _model(resource_type: str, version: str) -> Any:
    if version == "R5":
        from fhir.resources import get_fhir_model_class
    else:
        from fhir.resources.R4B import get_fhir_model_class
    return get_fhir_model_class(resource_type)


def resource_errors(resource: dict[str, Any], version: str) -> Iterator[tuple[str, str]]:
    """(element path, message) for every structural error of one resource."""
    try:
        model = _model(str(resource.get("resourceType")), version)
    except (KeyError, ValueError) as exc:
        yield "resourceType", f"unknown resource type: {exc}"
        return
    try:
        model.model_validate(resource)
    except ValidationError as exc:
        for error in exc.errors():
            path = ".".join(str(p) for p in error.get("loc", ()) if p != "__root__")
            yield path or "(resource)", str(error.get("msg"))


def first_error(resources: list[dict[str, Any]], version: str) -> str | None:
    """The first structural error of a list of resources, as one line, or ``None``."""
    for resource in resources:
        for path, message in resource_errors(resource, version):
            return (f"{resource.get('resourceType')}/{resource.get('id')} is not valid FHIR "
                    f"{version} at {resource.get('resourceType')}.{path}: {message}")
    return None


def validate_resources(resources: Iterable[dict[str, Any]], version: str,
                       workers: int | None = None) -> None:
    """Raise ``ConversionError`` naming the resource and element of the first invalid one.

    Used on what we write ourselves: an invalid resource there is a bug in a mapping.
    Large sets are validated in chunks over the machine's cores (pydantic validation of
    FHIR models runs at about a thousand resources a second per core).
    """
    items = list(resources)
    workers = workers or os.cpu_count() or 1
    if workers > 1 and len(items) >= _PARALLEL_FROM:
        size = -(-len(items) // (workers * 4))
        chunks = [items[i:i + size] for i in range(0, len(items), size)]
        with ProcessPoolExecutor(max_workers=workers) as pool:
            errors = list(pool.map(first_error, chunks, [version] * len(chunks)))
        error = next((e for e in errors if e), None)
    else:
        error = first_error(items, version)
    if error:
        raise ConversionError(f"{error} (this is a bug in fhircdisc; please report it)")
