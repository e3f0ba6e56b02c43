"""Exceptions for problems in the user's input, carrying the file and the place in it."""

from __future__ import annotations


class FhircdiscError(Exception):
    """Base class of every error the command line reports as one clean line."""


class InputError(FhircdiscError):
    """Input that cannot be read or understood.

    ``source`` names the file (or other origin); ``location`` the place inside it:
    a line number for NDJSON, an entry index or JSON path for a Bundle, a row and
    variable for a dataset.
    """

    def __init__(self, message: str, source: str | None = None, location: str | None = None,
                 hint: str | None = None) -> None:
        self.message = message
        self.source = source
        self.location = location
        self.hint = hint
        super().__init__(str(self))

    def __reduce__(self) -> tuple[type, tuple[str, str | None, str | None, str | None]]:
        # keeps the parts when the error crosses a process boundary
        return (InputError, (self.message, self.source, self.location, self.hint))

    def __str__(self) -> str:
        where = ""
        if self.source:
            where = self.source + (f" [{self.location}]" if self.location else "") + ": "
        elif self.location:
            where = f"[{self.location}]: "
        text = where + self.message
        if self.hint:
            text += f" ({self.hint})"
        return text


class ConversionError(FhircdiscError):
    """The input was read but cannot be converted as asked (e.g. a dataset breaks XPT limits)."""


class OutputError(FhircdiscError):
    """An output could not be written."""
