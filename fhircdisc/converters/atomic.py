"""Write files so that a failed run leaves no half-written output."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from fhircdisc.errors import OutputError


def cannot_write(place: str, exc: OSError) -> OutputError:
    """The output error of a system error (a full disk, a lost permission) met while
    writing ``place`` (``"FILE"`` or ``"in FOLDER"``)."""
    return OutputError(f"cannot write {place}: {exc.strerror or exc}")


@contextlib.contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` on success.

    On any exception the temporary file is removed and ``target`` is left untouched; a
    system error (a full disk, a lost permission) comes out as an :class:`OutputError`
    naming ``target``.
    """
    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part",
                                        dir=target.parent)
        os.close(fd)
    except OSError as exc:
        raise cannot_write(str(target), exc) from exc
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        if isinstance(exc, OSError):
            raise cannot_write(str(target), exc) from exc
        raise


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def write_bytes_atomic(target: Path, data: bytes) -> None:
    """Write ``data`` to ``target`` atomically."""
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


@contextlib.contextmanager
def staging_folder(out: Path) -> Iterator[Path]:
    """A new hidden folder in ``out`` (created if need be) to write a run's files into.

    The files reach ``out`` only through :func:`publish`; the staging folder is removed
    at the end, and so is ``out`` if it was created here and nothing was published. A
    system error inside (a full disk, a lost permission) comes out as an
    :class:`OutputError` naming ``out``.
    """
    out = Path(out)
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create output folder {out}: {exc.strerror}") from exc
    staging = Path(tempfile.mkdtemp(prefix=".fhircdisc-", dir=out))
    try:
        yield staging
    except OSError as exc:
        raise cannot_write(f"in {out}", exc) from exc
    except OutputError as exc:
        cause = exc.__cause__       # a file in the staging folder: the user knows ``out``
        if isinstance(cause, OSError):
            raise cannot_write(f"in {out}", cause) from cause
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if created and out.exists() and not any(out.iterdir()):
            out.rmdir()


def publish(staging: Path, out: Path) -> list[Path]:
    """Move every file of ``staging`` into ``out`` (folders in it are working space)."""
    written = []
    for item in sorted(staging.iterdir()):
        if item.is_file():
            target = Path(out) / item.name
            item.replace(target)
            written.append(target)
    return written
