"""Plain Observation NDJSON lines decoded straight into what the fast lane reads.

For a plain Observation the fast lane needs a handful of elements: the subject, the
status, the date, the ``valueQuantity`` and, as a cache key, the exact text of the
elements its grouped rules read (code, category, reference range, interpretation ...).
msgspec decodes just those from the line, checking their JSON shapes as
:mod:`fhircdisc.mappings.element_types` defines them, keeping the keyed elements as
raw JSON text and refusing any line that has an element the plain lane does not take.
That is about half the cost of building the whole resource as Python objects and then
checking it. A line it refuses is not an error: it goes the ordinary way.
"""

from __future__ import annotations

from collections.abc import Callable
from operator import attrgetter
from typing import Annotated, Any, Literal

import msgspec

from fhircdisc.mappings.element_types import RESOURCES, element_type

#: an element type no JSON value satisfies (not even null): the element must be absent
_ABSENT = Annotated[int, msgspec.Meta(ge=1, le=0)]
_NO_TEXT = msgspec.Raw()
#: what joins the texts of a line's keyed elements: a control character, which msgspec
#: refuses anywhere in a line (in strings, raw and skipped elements too), so the texts
#: of a line it decodes never hold it and their join splits back unambiguously
_SEPARATOR = b"\x1f"
#: what keys a Quantity's unit
_UNIT = attrgetter("code", "system", "unit")
_OBSERVATION = Literal["Observation"]
#: the codes of Observation.status in FHIR R4 and R5
_STATUS = Literal["registered", "specimen-in-process", "preliminary", "final", "amended",
                  "corrected", "appended", "cancelled", "entered-in-error", "unknown",
                  "cannot-be-obtained"]
#: integers orjson keeps as integers; beyond them it reads a float
_INT_RANGE = (-(2**63), 2**64)


class LineShape:
    """The msgspec decoder of plain Observation lines for a lane keyed on ``keyed``
    (kept as JSON text), reading ``typed`` (shape-checked values) and the Quantity
    elements ``units``; every other Observation element the mappings know, and each of
    ``absent``, must not be in the line."""

    def __init__(self, keyed: tuple[str, ...], typed: tuple[str, ...],
                 units: tuple[str, ...], absent: frozenset[str],
                 extra: tuple[tuple[str, Any], ...] = ()) -> None:
        overlap = set(keyed) & set(typed) | set(keyed) & set(units)
        if overlap:
            raise ValueError(f"elements both keyed and read as values: {sorted(overlap)}")
        self._keyed = tuple_getter(keyed)
        self._units = tuple_getter(units)
        #: the one Quantity element's getter, when there is one (most lanes: valueQuantity)
        self._unit = attrgetter(units[0]) if len(units) == 1 else None
        known = set(RESOURCES["Observation"])
        # a resource of another type, or of a status no FHIR version has, is refused here
        # (the ordinary way takes it): the type and status of the others are the
        # literals themselves, not a text made for each line
        fields: list[tuple[str, Any, Any]] = [("resourceType", _OBSERVATION | None, None),
                                              ("id", str | None, None)]
        fields += [(name, _STATUS | None if name == "status"
                    else element_type("Observation", name), None)
                   for name in dict.fromkeys((*typed, *units))]
        fields += [(name, msgspec.Raw, _NO_TEXT) for name in keyed]
        fields += [(name, kind, None) for name, kind in extra]
        taken = {name for name, _, _ in fields}
        fields += [(name, _ABSENT, None) for name in sorted((known | absent) - taken)]
        # decoded lines are trees, never in a reference cycle: the garbage collector
        # need not track them (creating and freeing a line's objects is what it saves)
        self.struct = msgspec.defstruct("PlainObservationLine", fields, gc=False)
        self.decoder = msgspec.json.Decoder(self.struct)

    def decode(self, line: bytes) -> Any | None:
        """The line's elements, or None when the lane does not take it as is: not valid
        JSON or UTF-8, an element of the wrong shape or one the lane does not take."""
        if not line.isascii():
            try:                 # msgspec does not look at the text of skipped elements
                line.decode()
            except UnicodeDecodeError:
                return None
        try:
            return self.decoder.decode(line)
        except msgspec.DecodeError:
            return None

    def decode_all(self, lines: list[bytes]) -> list[Any | None]:
        """:meth:`decode` of each line."""
        if not all(map(bytes.isascii, lines)):
            return list(map(self.decode, lines))
        decoded: list[Any | None] = []
        rest = iter(lines)
        while True:
            try:
                # extend keeps what it took before a line fails; the next one is next
                decoded.extend(map(self.decoder.decode, rest))
            except msgspec.DecodeError:
                decoded.append(None)
                continue
            return decoded

    @property
    def one_unit(self) -> bool:
        """Whether the shape has one Quantity element (:meth:`unit_keys` keys its lines)."""
        return self._unit is not None

    def unit_keys(self, objs: list[Any]) -> list[tuple[Any, ...]] | None:
        """:meth:`key` of each decoded line (``objs``, none of them None) of a shape with
        one Quantity element; None for a shape with several."""
        if self._unit is None:
            return None
        heads = list(map(_SEPARATOR.join, map(self._keyed, objs)))
        # the tuples :meth:`key` makes, spelled out here: a call a line is what batches save
        return [(head, None) if quantity is None
                else (head, quantity.code, quantity.system, quantity.unit)
                for head, quantity in zip(heads, map(self._unit, objs), strict=True)]

    def key(self, obs: Any) -> tuple[Any, ...]:
        """The exact text of the keyed elements, and the code, system and unit of each
        Quantity element: lines with equal keys have equal values there."""
        head = _SEPARATOR.join(self._keyed(obs))
        if self._unit is not None:
            # one Quantity element (most lanes): its parts in the key itself, a tuple
            # less to make and hash on every line
            quantity = self._unit(obs)
            if quantity is None:
                return (head, None)
            return (head, quantity.code, quantity.system, quantity.unit)
        return (head, *(None if quantity is None else _UNIT(quantity)
                        for quantity in self._units(obs)))


def component_type(keyed: tuple[str, ...], absent: frozenset[str]) -> Any:
    """The msgspec type of an Observation's ``component`` array for the panel lane: each
    component's ``keyed`` elements as JSON text, its ``valueQuantity`` shape-checked, and
    none of ``absent`` (elements that, copied over the panel's, would change more than
    its test and result)."""
    fields: list[tuple[str, Any, Any]] = [
        ("valueQuantity", element_type("Observation", "valueQuantity"), None)]
    fields += [(name, msgspec.Raw, _NO_TEXT) for name in keyed]
    taken = {name for name, _, _ in fields}
    fields += [(name, _ABSENT, None) for name in sorted(absent - taken)]
    return list[msgspec.defstruct("PanelComponent", fields,  # type: ignore[misc]
                                  gc=False)] | None


def tuple_getter(names: tuple[str, ...]) -> Callable[[Any], tuple[Any, ...]]:
    """A function giving the attributes ``names`` of an object, as a tuple (of one, or
    none, too)."""
    if len(names) > 1:
        return attrgetter(*names)
    if names:
        one = attrgetter(names[0])
        return lambda obj: (one(obj),)
    return lambda obj: ()


def orjson_number(value: Any) -> bool:
    """Whether orjson reads this decoded number as the same Python value."""
    return value.__class__ is not int or _INT_RANGE[0] <= value < _INT_RANGE[1]
