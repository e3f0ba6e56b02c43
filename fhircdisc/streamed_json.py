"""A JSON document written with some of its lists streamed: the same bytes as
``orjson.dumps(document, option=OPT_INDENT_2)`` with those lists built, without building
them (a report's millions of items are written a batch at a time)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice
from typing import IO, Any

import orjson

_OPTION = orjson.OPT_INDENT_2
_BATCH = 2_000
#: stands in for a streamed list while the rest of the document is dumped; JSON text
#: holds a raw NUL nowhere, and orjson writes this one escaped
_PLACE = "\x00streamed list {}\x00"


def write_streamed(handle: IO[bytes], document: dict[str, Any],
                   streams: dict[str | tuple[str, ...], Iterable[Any]]) -> None:
    """Write ``document`` with each key of ``streams`` holding the list of what that
    iterable gives, indented two spaces a level, as orjson writes it. A key is a
    top-level key of the document, or the path of keys to a list in nested objects. An
    item may be given already written: an ``orjson.Fragment`` of its
    :func:`list_item_text`."""
    copy = dict(document)
    places: dict[bytes, tuple[int, Iterable[Any]]] = {}
    for number, (key, items) in enumerate(streams.items()):
        path = (key,) if isinstance(key, str) else key
        place = _PLACE.format(number)
        _put(copy, path, place)
        places[orjson.dumps(place)] = (len(path), items)
    text = orjson.dumps(copy, option=_OPTION)
    found = []
    for marker, (depth, items) in places.items():
        at = text.find(marker)
        if at < 0 or text.find(marker, at + 1) >= 0:
            raise ValueError("a document value holds the marker of a streamed list")
        found.append((at, marker, depth, items))
    start = 0
    for at, marker, depth, items in sorted(found, key=lambda place: place[0]):
        handle.write(text[start:at])
        _write_list(handle, items, depth)
        start = at + len(marker)
    handle.write(text[start:])


def list_item_text(value: Any) -> bytes:
    """``value`` written ahead of time as one item of a streamed list (where it is cheap:
    the worker process that made the item). Wrapped in an :class:`orjson.Fragment`, it is
    put in by :func:`write_streamed` as it is, with the bytes orjson would write for
    ``value`` there."""
    # an item of a list is one level in: its inner lines two spaces deeper
    return orjson.dumps(value, option=_OPTION).replace(b"\n", b"\n  ")


def _put(document: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    """Set the value at ``path``, copying each object on the way (``document`` is a
    copy already)."""
    at = document
    for depth, name in enumerate(path[:-1]):
        inner = at.get(name)
        if not isinstance(inner, dict):
            raise ValueError(f"{'.'.join(path[:depth + 1])!r} is not an object of the "
                             "document")
        at[name] = at = dict(inner)
    if path[-1] not in at:
        raise ValueError(f"{'.'.join(path)!r} is not a key of the document")
    at[path[-1]] = value


def _write_list(handle: IO[bytes], items: Iterable[Any], depth: int) -> None:
    """A list that is the value of a key ``depth`` objects deep (its items indented
    two spaces more)."""
    indent = b"\n" + b"  " * depth
    first = True
    for batch in _batches(iter(items)):
        # the batch as a list of its own, then indented ``depth`` levels deeper
        body = orjson.dumps(batch, option=_OPTION)[2:-2].replace(b"\n", indent)
        handle.write(b"[" + indent if first else b"," + indent)
        handle.write(body)
        first = False
    handle.write(b"[]" if first else indent + b"]")


def _batches(items: Iterator[Any]) -> Iterator[list[Any]]:
    while batch := list(islice(items, _BATCH)):
        yield batch
