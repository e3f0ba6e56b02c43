"""A small path language over FHIR JSON, readable and writable.

A path is a dot-separated list of steps. A step is an element name, optionally
followed by a filter ``[key=value]`` that selects the list items whose ``key``
equals ``value`` (``key`` may itself be a dotted path), or by ``[]`` marking a list
element (for writing: ``put`` creates a list there, reading ignores the mark). Lists
without a filter yield all their items. ``get`` returns the first value found; ``get_all`` every
value; ``put`` writes a value, creating the objects and list items the path
needs (a filter step creates an item carrying the filter's key and value).

Examples: ``code.coding[system=http://loinc.org].code``, ``valueQuantity.value``,
``identifier[system=urn:fhircdisc:demo:subjid].value``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

_STEP = re.compile(
    r"^(?P<name>[A-Za-z_][A-Za-z0-9_\-]*)"
    r"(?:(?P<list>\[\])|\[(?P<key>[A-Za-z0-9_.]+)=(?P<value>.*)\])?$")


@dataclass(frozen=True)
class Step:
    name: str
    key: str | None = None
    value: str | None = None
    is_list: bool = False


def _split(path: str) -> list[str]:
    parts: list[str] = []
    depth = 0
    current: list[str] = []
    for char in path:
        if char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
        if char == "." and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


@lru_cache(maxsize=4096)
def parse(path: str) -> tuple[Step, ...]:
    """Parse ``path`` into steps; a malformed path raises ``ValueError`` (a bug in a spec)."""
    steps = []
    for raw in _split(path):
        match = _STEP.match(raw)
        if not match:
            raise ValueError(f"malformed path step {raw!r} in {path!r}")
        steps.append(Step(match["name"], match["key"], match["value"],
                          bool(match["list"]) or match["key"] is not None))
    return tuple(steps)


def _collect(node: Any, steps: tuple[Step, ...], index: int, out: list[Any]) -> None:
    """Append to ``out`` every non-empty value at ``steps[index:]`` below ``node``."""
    # iterative down plain steps; recursion only where a list or filter branches
    while index < len(steps):
        if isinstance(node, list):
            for item in node:
                _collect(item, steps, index, out)
            return
        if not isinstance(node, dict):
            return
        step = steps[index]
        child = node.get(step.name)
        if child is None:
            return
        if step.key is None and not isinstance(child, list):
            node = child
            index += 1
            continue
        for item in child if isinstance(child, list) else (child,):
            if step.key is None or get(item, step.key) == step.value:
                _collect(item, steps, index + 1, out)
        return
    if node is not None and node != "" and node != [] and node != {}:
        out.append(node)


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def _first(node: Any, steps: tuple[Step, ...], index: int) -> Any:
    # iterative walk down plain steps; recursion only where a list or filter branches
    while index < len(steps):
        if isinstance(node, list):
            for item in node:
                found = _first(item, steps, index)
                if found is not None:
                    return found
            return None
        if not isinstance(node, dict):
            return None
        step = steps[index]
        child = node.get(step.name)
        if child is None:
            return None
        if step.key is not None:
            for item in child if isinstance(child, list) else (child,):
                if get(item, step.key) == step.value:
                    found = _first(item, steps, index + 1)
                    if found is not None:
                        return found
            return None
        node = child
        index += 1
    if isinstance(node, list):          # a repeating element: its first non-empty item
        return next((item for item in node if not _empty(item)), None)
    return None if _empty(node) else node


def get(node: Any, path: str) -> Any:
    """First non-empty value at ``path`` in ``node``, or ``None``."""
    return _first(node, parse(path), 0)


def get_all(node: Any, path: str) -> list[Any]:
    """Every non-empty value at ``path`` in ``node``."""
    out: list[Any] = []
    _collect(node, parse(path), 0, out)
    return out


def first(node: Any, paths: tuple[str, ...]) -> tuple[str | None, Any]:
    """The first of several alternative paths that holds a value: ``(path, value)``."""
    for path in paths:
        value = get(node, path)
        if value is not None:
            return path, value
    return None, None


def put(node: dict[str, Any], path: str, value: Any) -> None:
    """Write ``value`` at ``path`` in ``node``, creating what is missing."""
    steps = parse(path)
    current: dict[str, Any] = node
    for index, step in enumerate(steps):
        last = index == len(steps) - 1
        if step.key is None:
            if last:
                current[step.name] = [value] if step.is_list else value
                return
            child = current.get(step.name)
            if child is None and step.is_list:
                child = []
                current[step.name] = child
            if isinstance(child, list):
                if not child:
                    child.append({})
                child = child[0]
            elif child is None:
                child = {}
                current[step.name] = child
            current = child
            continue
        items = current.setdefault(step.name, [])
        if not isinstance(items, list):
            items = [items]
            current[step.name] = items
        match = next((item for item in items if get(item, step.key) == step.value), None)
        if match is None:
            match = {}
            put(match, step.key, step.value)
            items.append(match)
        if last:
            raise ValueError(f"path {path!r} ends in a filter step; it cannot hold a value")
        current = match
