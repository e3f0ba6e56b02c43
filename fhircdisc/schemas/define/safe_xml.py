"""Parse untrusted XML without resolving or fetching anything.

Define-XML never needs a document type declaration, so any document that has one is
refused before it is parsed: that rules out entity expansion (billion laughs), external
entities (``SYSTEM "file:///etc/passwd"``) and external DTDs (``SYSTEM "http://..."``)
at once. The parse itself also runs with entity resolution, DTD loading and network
access switched off, and the result is checked again for a DTD.
"""

from __future__ import annotations

import codecs
import re
from pathlib import Path

from lxml import etree

from fhircdisc.errors import InputError

_HINT = "Define-XML needs no DOCTYPE; remove it (nothing in it is read, resolved or fetched)"
_BOMS = ((codecs.BOM_UTF8, "utf-8"),
         (codecs.BOM_UTF32_LE, "utf-32-le"), (codecs.BOM_UTF32_BE, "utf-32-be"),
         (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"))


def safe_parser() -> etree.XMLParser:
    """An lxml parser that never loads a DTD, resolves an entity or touches the network."""
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                           dtd_validation=False, huge_tree=False)


def _read(xml: bytes | str | Path, source: str | None) -> tuple[bytes, str]:
    if isinstance(xml, bytes):
        return xml, source or "<bytes>"
    path = Path(xml)
    name = source or str(path)
    try:
        return path.read_bytes(), name
    except OSError as exc:
        raise InputError(f"cannot read the file: {exc.strerror or exc}", source=name) from exc


def _prolog_text(data: bytes) -> str:
    """The document as text, enough of it to scan the prolog (ASCII-compatible or UTF-16/32)."""
    for bom, codec in _BOMS:
        if data.startswith(bom):
            return data[len(bom):].decode(codec, errors="replace")
    if data[:4] in (b"<\0?\0", b"\0<\0?"):
        return data.decode("utf-16-le" if data[0] == 0x3C else "utf-16-be", errors="replace")
    return data.decode("latin-1")


def _doctype_position(text: str) -> int | None:
    """Offset of ``<!DOCTYPE`` in the prolog (before the root element), or None."""
    pos, end = 0, len(text)
    while pos < end:
        if text[pos] in " \t\r\n\ufeff":
            pos += 1
        elif text.startswith("<?", pos):
            close = text.find("?>", pos + 2)
            pos = end if close < 0 else close + 2
        elif text.startswith("<!--", pos):
            close = text.find("-->", pos + 4)
            pos = end if close < 0 else close + 3
        elif text.startswith("<!", pos):
            return pos if text.startswith("<!DOCTYPE", pos) else None
        else:
            return None
    return None


def _refusal(text: str, pos: int, name: str) -> InputError:
    line = text.count("\n", 0, pos) + 1
    head = text[pos:].split(">", 1)[0]
    if "[" in head:  # internal subset: the declaration runs to "]>"
        close = text.find("]>", pos)
        declaration = text[pos:] if close < 0 else text[pos:close + 2]
    else:
        declaration = head
    what = ["a document type declaration (DOCTYPE)"]
    if "<!ENTITY" in declaration:
        what.append("an ENTITY declaration")
    if re.search(r"\b(SYSTEM|PUBLIC)\b", declaration):
        what.append("an external reference")
    return InputError("refused: the XML has " + ", ".join(what), source=name,
                      location=f"line {line}", hint=_HINT)


def parse_xml_safely(xml: bytes | str | Path, source: str | None = None) -> etree._ElementTree:
    """Parse ``xml`` (bytes, or a path) into an lxml tree, refusing anything unsafe.

    Raises :class:`InputError` naming ``source`` (default: the path) and the line when the
    document has a DOCTYPE (so also any ENTITY declaration or external DTD reference), and
    with line and column when it is not well-formed XML. Nothing is ever fetched.
    """
    data, name = _read(xml, source)
    text = _prolog_text(data)
    pos = _doctype_position(text)
    if pos is not None:
        raise _refusal(text, pos, name)
    try:
        root = etree.fromstring(data, safe_parser())
    except etree.XMLSyntaxError as exc:
        line, column = exc.position if exc.position else (exc.lineno, 0)
        message = (exc.msg or str(exc)).strip()
        raise InputError(f"not well-formed XML: {message}", source=name,
                         location=f"line {line}, column {column}") from exc
    tree = root.getroottree()
    info = tree.docinfo
    if info.doctype or info.internalDTD is not None or info.externalDTD is not None \
            or info.system_url or info.public_id:
        # unreachable for the encodings the prolog scan understands; kept as a backstop
        raise InputError("refused: the XML has a document type declaration (DOCTYPE)",
                         source=name, location="line 1", hint=_HINT)
    return tree
