"""Write FHIR resources as a Bundle (collection or transaction) or Bulk Data NDJSON."""

from __future__ import annotations

import shutil
import tempfile
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from fhircdisc.converters.atomic import write_bytes_atomic
from fhircdisc.converters.sdtm_to_fhir import full_url
from fhircdisc.json_text import dumps_kept

BUNDLE_TYPES = ("collection", "transaction")


def _rewrite_references(node: Any, urls: dict[str, str]) -> Any:
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "reference" and isinstance(value, str) and value in urls:
                out[key] = urls[value]
            else:
                out[key] = _rewrite_references(value, urls)
        return out
    if isinstance(node, list):
        return [_rewrite_references(item, urls) for item in node]
    return node


def make_bundle(resources: list[dict[str, Any]], bundle_type: str = "collection", *,
                timestamp: str | None = None, bundle_id: str = "sdtm-to-fhir") -> dict[str, Any]:
    """A Bundle whose entries have ``urn:uuid`` fullUrls that references point at.

    A transaction's entries carry ``request`` PUT ``Type/id`` so that loading the Bundle
    twice updates rather than duplicates.
    """
    if bundle_type not in BUNDLE_TYPES:
        raise ValueError(f"bundle type must be one of {BUNDLE_TYPES}")
    urls = {f"{r['resourceType']}/{r['id']}": full_url(r) for r in resources}
    entries = []
    for resource in resources:
        entry: dict[str, Any] = {"fullUrl": urls[f"{resource['resourceType']}/{resource['id']}"],
                                 "resource": _rewrite_references(resource, urls)}
        if bundle_type == "transaction":
            entry["request"] = {"method": "PUT",
                                "url": f"{resource['resourceType']}/{resource['id']}"}
        entries.append(entry)
    stamp = timestamp or datetime.now(UTC).replace(microsecond=0).isoformat()
    bundle: dict[str, Any] = {"resourceType": "Bundle", "id": bundle_id, "type": bundle_type,
                              "entry": entries}
    if bundle_type == "collection":
        bundle["timestamp"] = stamp
    return bundle


def write_bundle(resources: list[dict[str, Any]], path: str | Path,
                 bundle_type: str = "collection", *, timestamp: str | None = None) -> Path:
    """Write one Bundle JSON file atomically."""
    path = Path(path)
    bundle = make_bundle(resources, bundle_type, timestamp=timestamp)
    write_bytes_atomic(path, orjson.dumps(bundle, option=orjson.OPT_INDENT_2))
    return path


def write_ndjson(resources: list[dict[str, Any]], out_dir: str | Path) -> list[Path]:
    """One ``<Type>.ndjson`` file per resource type, as a Bulk Data export lays them out."""
    out = Path(out_dir)
    by_type: dict[str, list[bytes]] = defaultdict(list)
    for resource in resources:
        by_type[resource["resourceType"]].append(dumps_kept(resource))
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".fhircdisc-", dir=out))
    try:
        written = []
        for rtype in sorted(by_type):
            write_bytes_atomic(staging / f"{rtype}.ndjson", b"\n".join(by_type[rtype]) + b"\n")
        for item in sorted(staging.iterdir()):
            target = out / item.name
            item.replace(target)
            written.append(target)
        return written
    finally:
        shutil.rmtree(staging, ignore_errors=True)
