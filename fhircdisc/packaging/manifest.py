"""The manifest of a submission package: a SHA-256 checksum of every file handed over.

Two files at the package root describe everything else under it:

* ``manifest.json``: ``{"format", "version", "tool": {"name", "version"}, "created",
  "study_id", "algorithm": "sha256", "files": [{"path", "sha256", "bytes"}, ...]}``,
  files sorted by path (POSIX, relative to the root);
* ``checksums.sha256``: the same checksums as ``sha256sum`` writes them
  (``<hex>  <path>``), so that ``cd ROOT && sha256sum -c checksums.sha256`` checks the
  package without fhircdisc.

Neither file lists itself nor the other. :func:`verify_package` recomputes every
checksum and reports files that are missing, changed (content, size, or no longer a
regular file) or extra (present but not listed); it also checks that
``checksums.sha256`` still agrees with ``manifest.json``.

A manifest proves integrity, not origin: whoever can change a file can also rewrite the
manifest. Record :attr:`Manifest.sha256` (the checksum of ``manifest.json``, which the
command line prints) wherever the handover is documented to close that gap.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import orjson

from fhircdisc import __version__
from fhircdisc.converters.atomic import write_bytes_atomic
from fhircdisc.errors import InputError, OutputError

MANIFEST_NAME = "manifest.json"
CHECKSUMS_NAME = "checksums.sha256"
MANIFEST_FORMAT = "fhircdisc-package-manifest"
MANIFEST_VERSION = 1
CHUNK = 1 << 20

_OWN_FILES = frozenset({MANIFEST_NAME, CHECKSUMS_NAME})
_HEX64 = re.compile(r"[0-9a-f]{64}\Z")
# characters that sha256sum would escape (or that break one-line-per-file formats)
_UNSAFE_NAME = re.compile(r"[\\\n\r]")


@dataclass(frozen=True)
class FileEntry:
    """One file of the package: POSIX path relative to the root, checksum and size."""

    path: str
    sha256: str
    bytes: int

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "sha256": self.sha256, "bytes": self.bytes}


@dataclass(frozen=True)
class Manifest:
    """What :func:`write_manifest` wrote."""

    root: Path
    files: tuple[FileEntry, ...]
    created: str | None
    study_id: str | None
    sha256: str
    """Checksum of ``manifest.json`` itself, to record outside the package."""

    @property
    def path(self) -> Path:
        return self.root / MANIFEST_NAME


@dataclass
class VerifyResult:
    """Outcome of :func:`verify_package`: every list holds root-relative POSIX paths."""

    root: Path
    checked: int
    missing: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    study_id: str | None = None
    created: str | None = None
    manifest_sha256: str = ""

    @property
    def ok(self) -> bool:
        return not (self.missing or self.changed or self.extra)


# ----------------------------------------------------------------------------- hashing


def sha256_file(path: Path) -> tuple[str, int]:
    """(hex SHA-256, size in bytes) of ``path``, read in chunks."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _walk(root: Path) -> Iterator[tuple[str, Path]]:
    """Every non-directory entry under ``root`` (symlinks not followed), as (posix, path)."""
    for current, dirs, files in os.walk(root, followlinks=False):
        base = Path(current)
        # a symlink to a folder shows up in ``dirs`` but is not walked: report it as a file
        entries = list(files) + [d for d in dirs if (base / d).is_symlink()]
        for name in entries:
            path = base / name
            yield path.relative_to(root).as_posix(), path


def _is_own(rel: str) -> bool:
    return rel in _OWN_FILES


def _checksums_text(entries: tuple[FileEntry, ...] | list[FileEntry]) -> str:
    return "".join(f"{e.sha256}  {e.path}\n" for e in entries)


# ----------------------------------------------------------------------------- writing


def write_manifest(root: Path | str, *, creation_datetime: str | None = None,
                   study_id: str | None = None) -> Manifest:
    """Checksum every file under ``root``; write ``manifest.json`` and ``checksums.sha256``.

    Any earlier manifest files at the root are replaced, never listed. Raises
    :class:`~fhircdisc.errors.OutputError` for entries that cannot be listed faithfully
    (symlinks, special files, names with a backslash or line break).
    """
    root = Path(root)
    if not root.is_dir():
        raise OutputError(f"{root}: not a folder, cannot write a manifest")
    entries: list[FileEntry] = []
    for rel, path in sorted(_walk(root)):
        if _is_own(rel):
            continue
        if path.is_symlink() or not path.is_file():
            raise OutputError(f"{path}: not a regular file; a package holds only files")
        if _UNSAFE_NAME.search(rel):
            raise OutputError(f"{path}: file names with a backslash or line break cannot be "
                              "listed in checksums.sha256")
        digest, size = sha256_file(path)
        entries.append(FileEntry(rel, digest, size))
    document = {
        "format": MANIFEST_FORMAT,
        "version": MANIFEST_VERSION,
        "tool": {"name": "fhircdisc", "version": __version__},
        "created": creation_datetime,
        "study_id": study_id,
        "algorithm": "sha256",
        "files": [e.to_dict() for e in entries],
    }
    data = orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)
    write_bytes_atomic(root / CHECKSUMS_NAME, _checksums_text(entries).encode("utf-8"))
    write_bytes_atomic(root / MANIFEST_NAME, data)
    return Manifest(root, tuple(entries), creation_datetime, study_id,
                    hashlib.sha256(data).hexdigest())


# ----------------------------------------------------------------------------- reading


def _safe_relative(value: object, where: str, source: str) -> str:
    """A manifest path, refused unless it is a plain relative path inside the package."""
    if not isinstance(value, str) or not value:
        raise InputError("a file entry has no path", source, where)
    pure = PurePosixPath(value)
    if (pure.is_absolute() or value != pure.as_posix() or "\\" in value
            or any(part in ("..", ".") for part in value.split("/"))
            or re.match(r"[A-Za-z]:", value) or _UNSAFE_NAME.search(value)):
        raise InputError(f"unsafe path {value!r}: must be relative and inside the package",
                         source, where)
    return value


def read_manifest(root: Path | str) -> tuple[dict[str, Any], list[FileEntry], str]:
    """The parsed ``manifest.json`` of ``root``, its file entries and its own checksum.

    Raises :class:`~fhircdisc.errors.InputError` when it is absent, not JSON, or lists
    an entry that is malformed or points outside the package.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError("not a folder", str(root))
    path = root / MANIFEST_NAME
    source = str(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"no {MANIFEST_NAME} here", str(root),
                         hint="give the folder `fhircdisc package -o` wrote") from None
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", source) from exc
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise InputError(f"not valid JSON: {exc}", source) from exc
    if not isinstance(document, dict) or document.get("format") != MANIFEST_FORMAT:
        raise InputError(f"not a fhircdisc package manifest (format is not "
                         f"{MANIFEST_FORMAT!r})", source)
    if document.get("algorithm") != "sha256":
        raise InputError(f"unsupported checksum algorithm {document.get('algorithm')!r}",
                         source)
    files = document.get("files")
    if not isinstance(files, list):
        raise InputError("'files' is not a list", source)
    entries: list[FileEntry] = []
    seen: set[str] = set()
    for index, item in enumerate(files):
        where = f"files[{index}]"
        if not isinstance(item, dict):
            raise InputError("file entry is not an object", source, where)
        rel = _safe_relative(item.get("path"), where, source)
        digest, size = item.get("sha256"), item.get("bytes")
        if not isinstance(digest, str) or not _HEX64.match(digest):
            raise InputError("sha256 is not 64 lower-case hex digits", source, where)
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise InputError("bytes is not a non-negative integer", source, where)
        if rel in seen:
            raise InputError(f"{rel} is listed twice", source, where)
        if _is_own(rel):
            raise InputError(f"{rel} cannot list itself", source, where)
        seen.add(rel)
        entries.append(FileEntry(rel, digest, size))
    return document, entries, hashlib.sha256(data).hexdigest()


def _matches(path: Path, entry: FileEntry) -> bool:
    if path.is_symlink() or not path.is_file():
        return False
    try:
        if path.stat().st_size != entry.bytes:
            return False
        digest, size = sha256_file(path)
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", str(path)) from exc
    return digest == entry.sha256 and size == entry.bytes


def verify_package(root: Path | str) -> VerifyResult:
    """Check every file under ``root`` against its ``manifest.json``.

    Missing: listed but absent. Changed: content or size differs, or the entry is no
    longer a regular file (also ``checksums.sha256`` when it disagrees with the
    manifest). Extra: present but not listed (the two manifest files excepted).
    """
    root = Path(root)
    document, entries, own_digest = read_manifest(root)
    result = VerifyResult(root=root, checked=len(entries),
                          study_id=document.get("study_id"), created=document.get("created"),
                          manifest_sha256=own_digest)
    listed = {e.path for e in entries}
    for entry in entries:
        path = root.joinpath(*entry.path.split("/"))
        if not path.exists() and not path.is_symlink():
            result.missing.append(entry.path)
        elif not _matches(path, entry):
            result.changed.append(entry.path)
    checksums = root / CHECKSUMS_NAME
    if not checksums.is_file():
        result.missing.append(CHECKSUMS_NAME)
    else:
        try:
            text = checksums.read_bytes()
        except OSError as exc:
            raise InputError(f"cannot read: {exc.strerror}", str(checksums)) from exc
        if text != _checksums_text(entries).encode("utf-8"):
            result.changed.append(CHECKSUMS_NAME)
    result.extra = sorted(rel for rel, _ in _walk(root) if rel not in listed and not _is_own(rel))
    result.missing.sort()
    result.changed.sort()
    return result
