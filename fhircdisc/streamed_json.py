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


def write_streamed(handle: IO[bytes], document: dict[str, Any],
                   streams: dict[str, Iterable[Any]]) -> None:
    """Write ``document`` with each top-level key of ``streams`` holding the list of what
    that iterable gives, indented two spaces a level, as orjson writes it."""
    missing = [key for key in streams if key not in document]
    if missing:
        raise ValueError(f"{missing[0]!r} is not a top-level key of the document")
    text = orjson.dumps({**document, **{key: [] for key in streams}}, option=_OPTION)
    places = []
    for key in streams:
        # top-level keys are the only ones indented by two spaces: JSON text holds no
        # raw line break, so this is the key's own line
        marker = b'\n  ' + orjson.dumps(key) + b': []'
        place = text.find(marker)
        if place < 0 or text.find(marker, place + 1) >= 0:
            raise ValueError(f"{key!r} is not a top-level key of the document")
        places.append((place + len(marker) - 2, key))
    start = 0
    for place, key in sorted(places):
        handle.write(text[start:place])
        _write_list(handle, streams[key])
        start = place + 2                                   # past the empty "[]"
    handle.write(text[start:])


def _write_list(handle: IO[bytes], items: Iterable[Any]) -> None:
    """A list that is the value of a top-level key (its items at four spaces)."""
    first = True
    for batch in _batches(iter(items)):
        # the batch as a list of its own, then indented one level deeper
        body = orjson.dumps(batch, option=_OPTION)[2:-2].replace(b"\n", b"\n  ")
        handle.write(b"[\n  " if first else b",\n  ")
        handle.write(body)
        first = False
    handle.write(b"[]" if first else b"\n  ]")


def _batches(items: Iterator[Any]) -> Iterator[list[Any]]:
    while batch := list(islice(items, _BATCH)):
        yield batch
