"""Atomic file writes: a file is either its old self or complete, never half.

Every file annlens writes goes through :func:`atomic_write`: the content goes
to a temporary file in the same folder, is flushed and ``fsync``-ed, and then
:func:`os.replace` puts it in place in one step; the folder is ``fsync``-ed so
that the rename itself survives a power cut. A crash at any moment leaves the
old file (or none) plus, at worst, a stray ``.<name>.tmp-*`` file.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


def temporary_sibling(path: Path, tag: str = "tmp") -> Path:
    """A fresh hidden name next to ``path``: ``.<name>.<tag>-<random>``."""
    return path.with_name(f".{path.name}.{tag}-{secrets.token_hex(4)}")


def fsync_dir(folder: Path) -> None:
    """Flush a folder's entries (renames, new files) to disk, where possible."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:  # some platforms cannot open folders; nothing more to do
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


@contextlib.contextmanager
def naming(path: str | os.PathLike[str]) -> Iterator[None]:
    """Name ``path`` in an OSError raised inside the block that names no file.

    A full disk or a failing device raises from ``write`` or ``fsync``, whose
    errors carry no file name ("[Errno 28] No space left on device"); the
    message then says which file could not be written.
    """
    try:
        yield
    except OSError as error:
        if error.filename is not None:
            raise
        if error.errno is None:
            raise OSError(f"cannot write {str(path)!r}: {error}") from error
        raise OSError(error.errno, error.strerror, str(path)) from error


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str], mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary file that replaces ``path`` when the block ends cleanly.

    Parameters
    ----------
    path : path-like
        The final file; its folder must exist.
    mode : {"wb", "w"}
        Binary or text (UTF-8).

    Examples
    --------
    >>> with atomic_write(folder / "notes.txt", "w") as handle:  # doctest: +SKIP
    ...     handle.write("complete or absent")
    """
    final = Path(path)
    if final.is_dir():  # os.replace would fail naming the hidden temporary file
        raise IsADirectoryError(
            errno.EISDIR, "a folder is where annlens writes a file", str(final)
        )
    temporary = temporary_sibling(final)
    encoding = None if "b" in mode else "utf-8"
    try:
        with naming(final), open(temporary, mode, encoding=encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, final)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise
    fsync_dir(final.parent)


def write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; return the path."""
    with atomic_write(path, "wb") as handle:
        handle.write(data)
    return Path(path)


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically; return the path."""
    with atomic_write(path, "w") as handle:
        handle.write(text)
    return Path(path)


def write_json(path: str | os.PathLike[str], value: Any) -> Path:
    """Write ``value`` as indented JSON to ``path`` atomically; return the path."""
    return write_text(path, json.dumps(value, indent=2, sort_keys=False) + "\n")
