"""Read FHIR resources from Bundles, Bulk Data NDJSON files and folders of them.

Every resource comes with its origin (file and place: ``entry[3]`` for a Bundle,
``line 12`` for NDJSON) so that reports and errors can point at it. Input that
cannot be parsed at all (malformed JSON, not FHIR) raises ``InputError``; a
single unusable entry (no resource, no resourceType) is yielded as a
``ReadProblem`` so that the rest still converts and the problem is reported.
"""

from __future__ import annotations

import gzip
import os
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar, overload

import orjson

from fhircdisc.converters.fhir_version import telling_element
from fhircdisc.errors import InputError

FHIR_SUFFIXES = (".json", ".ndjson", ".json.gz", ".ndjson.gz")
_T = TypeVar("_T")


class once(Generic[_T]):
    """``functools.cached_property`` without the lock Python 3.11 takes on each first read
    (about 2 µs; a resource read has four of them)."""

    def __init__(self, func: Callable[[Any], _T]) -> None:
        self.func = func
        self.name = func.__name__
        self.__doc__ = func.__doc__

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> once[_T]: ...

    @overload
    def __get__(self, obj: object, owner: type | None = None) -> _T: ...

    def __get__(self, obj: object | None, owner: type | None = None) -> once[_T] | _T:
        if obj is None:
            return self
        value = obj.__dict__[self.name] = self.func(obj)
        return value


@dataclass(frozen=True)
class Origin:
    """Where a resource came from."""

    file: str
    location: str
    full_url: str | None = None

    def __str__(self) -> str:
        return f"{self.file} [{self.location}]"


@dataclass(frozen=True)
class SourceResource:
    """A resource as read, with its origin."""

    data: dict[str, Any]
    origin: Origin

    @once
    def type(self) -> str:
        return str(self.data["resourceType"])

    @once
    def id(self) -> str | None:
        value = self.data.get("id")
        return str(value) if value is not None else None

    @once
    def key(self) -> str:
        """``Type/id`` (or the place in the file when the resource has no id)."""
        return f"{self.type}/{self.id}" if self.id else f"{self.type}@{self.origin}"

    @once
    def report_key(self) -> str:
        """A key unique across files: ``Type/id@file [place]``."""
        return f"{self.key}@{self.origin}"


class LineResource(SourceResource):
    """A resource read from an NDJSON line that keeps the line instead of its parsed form:
    :attr:`data` parses it again at each read. For resources held in great numbers and
    read a few times: a hospital export's Patients and Encounters take about 300 bytes
    each this way instead of about 1.5 kB parsed."""

    line: bytes
    #: the FHIR version its elements tell, and the element telling it
    #: (:func:`~fhircdisc.converters.fhir_version.telling_element`), found as it was read
    telling: tuple[str | None, str | None]

    @classmethod
    def read(cls, data: dict[str, Any], line: bytes, origin: Origin) -> LineResource:
        """The resource ``data`` parsed from ``line`` (a resource, not a Bundle), read at
        ``origin``, keeping the line; its type, id, keys and version vote are worked out
        now, as :class:`SourceResource` works them out."""
        rtype = str(data["resourceType"])
        rid = data.get("id")
        rid = str(rid) if rid is not None else None
        key = f"{rtype}/{rid}" if rid else f"{rtype}@{origin}"
        made = cls.__new__(cls)
        made.__dict__.update(origin=origin, line=line, type=rtype, id=rid, key=key,
                             report_key=f"{key}@{origin}", telling=telling_element(data))
        return made

    @property
    def data(self) -> dict[str, Any]:
        value: dict[str, Any] = orjson.loads(self.line)
        return value


@dataclass(frozen=True)
class ReadProblem:
    """An entry that could not be taken as a resource."""

    origin: Origin
    reason_code: str
    message: str
    resource_type: str | None = None


def expand_sources(sources: Iterable[str | Path]) -> list[Path]:
    """Files to read: each source file, and every FHIR file under each source folder."""
    files: list[Path] = []
    for source in sources:
        path = Path(source)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file()
                           and p.name.lower().endswith(FHIR_SUFFIXES)
                           and not p.name.startswith("."))
            if not found:
                raise InputError("folder holds no .json or .ndjson files", str(path))
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise InputError("no such file or folder", str(path))
    return files


#: what reading a file raises when it cannot be read: a system error, or a gzip stream
#: cut short (EOFError) or damaged (zlib.error, or OSError for a bad header or checksum)
GZIP_READ_ERRORS = (OSError, EOFError, zlib.error)


def _read_text(path: Path) -> bytes:
    try:
        if path.name.lower().endswith(".gz"):
            with gzip.open(path, "rb") as handle:
                return handle.read()
        return path.read_bytes()
    except GZIP_READ_ERRORS as exc:
        raise InputError(f"cannot read file: {exc}", str(path)) from exc


def text_size(path: Path) -> int:
    """The size of a file's text in bytes: a gzipped file's uncompressed size as its gzip
    trailer gives it (modulo 4 GiB, of its last member: never taken below the size on
    disk)."""
    size = path.stat().st_size
    if not path.name.lower().endswith(".gz") or size < 18:   # no room for a trailer
        return size
    try:
        with path.open("rb") as handle:
            handle.seek(-4, os.SEEK_END)
            stored = int.from_bytes(handle.read(4), "little")
    except OSError as exc:
        raise InputError(f"cannot read file: {exc}", str(path)) from exc
    return max(size, stored)


def is_ndjson(path: Path) -> bool:
    return path.name.lower().removesuffix(".gz").endswith(".ndjson")


def read_file(path: Path) -> Iterator[SourceResource | ReadProblem]:
    """Resources (and problems) of one file, in file order."""
    if is_ndjson(path):
        yield from _read_ndjson(path)
    else:
        yield from _read_json(path)


def read_sources(sources: Iterable[str | Path]) -> Iterator[SourceResource | ReadProblem]:
    """Resources (and problems) of every file of every source, in a stable order."""
    for path in expand_sources(sources):
        yield from read_file(path)


def _json_error(exc: orjson.JSONDecodeError, text: bytes) -> str:
    line = text.count(b"\n", 0, exc.pos) + 1
    column = exc.pos - (text.rfind(b"\n", 0, exc.pos) + 1) + 1
    return f"line {line}, column {column}"


def _read_json(path: Path) -> Iterator[SourceResource | ReadProblem]:
    text = _read_text(path)
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise InputError(f"malformed JSON: {exc.msg}", str(path), _json_error(exc, text)) from exc
    if not isinstance(data, dict):
        raise InputError("not a FHIR resource or Bundle (top level is not a JSON object)",
                         str(path), "$")
    if "resourceType" not in data:
        raise InputError("not a FHIR resource or Bundle: no resourceType", str(path), "$",
                         hint="a FHIR JSON file starts with {\"resourceType\": ...}")
    yield from _unpack(data, Origin(str(path), "$"), str(path), "$")


def _unpack(data: dict[str, Any], origin: Origin, file: str, json_path: str
            ) -> Iterator[SourceResource | ReadProblem]:
    if data.get("resourceType") != "Bundle":
        yield SourceResource(data, origin)
        return
    entries = data.get("entry") or []
    if not isinstance(entries, list):
        raise InputError("Bundle.entry is not a list", file, f"{json_path}.entry")
    for index, entry in enumerate(entries):
        place = f"{json_path}.entry[{index}]"
        full_url = entry.get("fullUrl") if isinstance(entry, dict) else None
        if not isinstance(full_url, str):
            full_url = None                 # not a URL: the resource is found by its id
        where = Origin(file, place, full_url)
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict):
            yield ReadProblem(where, "entry-without-resource", "Bundle entry has no resource")
            continue
        if not resource.get("resourceType"):
            yield ReadProblem(where, "missing-resourceType", "resource has no resourceType")
            continue
        if resource.get("resourceType") == "Bundle":
            yield from _unpack(resource, where, file, f"{place}.resource")
            continue
        yield SourceResource(resource, where)


def _read_ndjson(path: Path) -> Iterator[SourceResource | ReadProblem]:
    for number, line in ndjson_lines(path):
        yield from read_ndjson_line(line, number, str(path))


def ndjson_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """``(line number, line)`` of an NDJSON file (gzip or not), read as a stream; line
    ends are dropped."""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    number = 0
    try:
        with opener(path, "rb") as handle:
            for number, line in enumerate(handle, start=1):
                yield number, line.rstrip(b"\r\n")
    except GZIP_READ_ERRORS as exc:
        raise InputError(f"cannot read file: {exc}", str(path),
                         f"after line {number}" if number else None) from exc


def parse_ndjson_line(line: bytes, number: int, file: str) -> Any:
    """The JSON value of one NDJSON line; ``InputError`` naming file, line and column."""
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise InputError(f"malformed JSON: {exc.msg}", file,
                         f"line {number}, column {exc.colno}") from exc


def read_ndjson_line(line: bytes, number: int, file: str
                     ) -> Iterator[SourceResource | ReadProblem]:
    """The resource(s) of one NDJSON line (a Bundle line gives its entries)."""
    if not line.strip():
        return
    yield from line_items(parse_ndjson_line(line, number, file), number, file)


def line_items(data: Any, number: int, file: str) -> Iterator[SourceResource | ReadProblem]:
    """:func:`read_ndjson_line` of a line already parsed (``data``)."""
    origin = Origin(file, f"line {number}")
    if not isinstance(data, dict):
        yield ReadProblem(origin, "not-a-resource", "line is not a JSON object")
    elif not data.get("resourceType"):
        yield ReadProblem(origin, "missing-resourceType", "resource has no resourceType")
    else:
        yield from _unpack(data, origin, file, f"line {number}")
