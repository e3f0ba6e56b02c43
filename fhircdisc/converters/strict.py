"""``--strict``: every input resource validated with the fhir.resources models first.

The conversion itself checks the elements it reads (their JSON types, codes, dates)
and reports each failure at its resource and element. Strict mode adds the full
structural validation of each resource against the FHIR models (R4B models for R4
input, R5 models for R5), at about a thousand resources a second per core; resources
are validated in batches over worker processes as they are read, so memory stays
bounded.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from itertools import islice
from typing import Any

from fhircdisc.converters.fhir_reader import ReadProblem, SourceResource
from fhircdisc.converters.fhir_validation import resource_errors
from fhircdisc.converters.fhir_version import resource_version
from fhircdisc.errors import InputError

BATCH = 500
#: errors listed before the rest are counted
MAX_LISTED = 20

Located = tuple[str, str, str]
"""(where: file [place], resource Type/id, element: message)"""


def _batch_errors(batch: list[tuple[dict[str, Any], str, str]], requested: str
                  ) -> list[Located]:
    found: list[Located] = []
    for data, where, key in batch:
        version = requested.upper()
        if version == "AUTO":
            version = resource_version(data) or "R4"
        version = "R5" if version == "R5" else "R4"
        for path, message in resource_errors(data, version):
            found.append((where, key, f"{data.get('resourceType')}.{path}: {message}"))
    return found


def _batches(items: Iterable[SourceResource | ReadProblem]
             ) -> Iterator[list[tuple[dict[str, Any], str, str]]]:
    resources = ((item.data, str(item.origin), item.key) for item in items
                 if isinstance(item, SourceResource))
    while batch := list(islice(resources, BATCH)):
        yield batch


def strict_errors(items: Iterable[SourceResource | ReadProblem], fhir_version: str = "auto",
                  workers: int | None = None) -> list[Located]:
    """Every structural error of every resource, in read order."""
    workers = workers or os.cpu_count() or 1
    if workers <= 1:
        return [e for batch in _batches(items) for e in _batch_errors(batch, fhir_version)]
    found: list[Located] = []
    with ProcessPoolExecutor(max_workers=workers) as pool:
        pending = []
        for batch in _batches(items):
            pending.append(pool.submit(_batch_errors, batch, fhir_version))
            if len(pending) >= workers * 4:      # bounded: a few batches in flight
                found += pending.pop(0).result()
        for future in pending:
            found += future.result()
    return found


def check_resources(items: Iterable[SourceResource | ReadProblem], fhir_version: str = "auto",
                    workers: int | None = None) -> None:
    """Raise ``InputError`` listing the structural errors of the input, if any."""
    errors = strict_errors(items, fhir_version, workers)
    if not errors:
        return
    lines = [f"{where}: {key}: {message}" for where, key, message in errors[:MAX_LISTED]]
    if len(errors) > MAX_LISTED:
        lines.append(f"... and {len(errors) - MAX_LISTED} more")
    raise InputError(f"{len(errors)} structural error(s) against the FHIR models "
                     "(--strict):\n  " + "\n  ".join(lines))
