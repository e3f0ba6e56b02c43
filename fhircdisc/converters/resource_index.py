"""Resources indexed by type, id and fullUrl, with reference resolution."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from fhircdisc.converters.fhir_reader import SourceResource


class ResourceIndex:
    """Every resource read, findable by ``Type/id``, by fullUrl and by type."""

    def __init__(self, resources: Iterable[SourceResource] = ()) -> None:
        self.by_key: dict[str, SourceResource] = {}
        self.by_url: dict[str, SourceResource] = {}
        self.by_type: dict[str, list[SourceResource]] = defaultdict(list)
        for resource in resources:
            self.add(resource)

    def add(self, resource: SourceResource) -> None:
        self.by_type[resource.type].append(resource)
        if resource.id:
            self.by_key.setdefault(resource.key, resource)
        if resource.origin.full_url:
            self.by_url.setdefault(resource.origin.full_url, resource)

    def resolve(self, reference: object) -> SourceResource | None:
        """The resource a reference (a Reference object or its string) points at."""
        if isinstance(reference, dict):
            reference = reference.get("reference")
        if not isinstance(reference, str) or not reference:
            return None
        if reference in self.by_url:
            return self.by_url[reference]
        if reference in self.by_key:
            return self.by_key[reference]
        parts = reference.rstrip("/").split("/")
        if "_history" in parts:
            parts = parts[: parts.index("_history")]
        if len(parts) >= 2:
            return self.by_key.get(f"{parts[-2]}/{parts[-1]}")
        return None

    def key_of(self, reference: object) -> str | None:
        """``Type/id`` of the target of a reference, resolved or read from its text."""
        target = self.resolve(reference)
        if target is not None:
            return target.key
        if isinstance(reference, dict):
            reference = reference.get("reference")
        if isinstance(reference, str) and "/" in reference and not reference.startswith("#"):
            parts = reference.rstrip("/").split("/")
            return f"{parts[-2]}/{parts[-1]}"
        return None
