"""An exclusive lock on a run directory, held while a run or a resumption writes it.

Two processes training into one run directory would overwrite each other's
checkpoints, tables and manifest, and a resumption would continue from a
checkpoint the other process is replacing. :class:`RunLock` lets one process
at a time in: the run (:func:`annlens.experiment.run_experiment`) and the
resumption (:func:`annlens.experiment.resume_experiment`) hold it from start
to end, and a second process is refused at once with
:class:`~annlens.errors.RunLockedError`, which names the run directory and the
process holding it.

Two hidden files in the run directory::

    .lock          the file the operating system locks (empty; it stays,
                   except when a transient lock made it, see RunLock)
    .lock.json     who holds the lock: PID, host, start time, command line

The lock is an OS file lock taken through the ``filelock`` library (``flock``
on POSIX, ``LockFileEx`` on Windows), not the presence of a file: the
operating system releases it when the holding process ends, however it ends,
so a killed run never blocks the next one. ``.lock.json`` only informs; it is
written just after the lock is taken and removed just before it is released.
A killed holder leaves it behind, stale, until the next holder replaces it.

Notes
-----
On a file system without OS locks (some network mounts) ``filelock`` falls
back to a lock file that a killed process leaves behind, with a warning; the
refusal message then names that file, to be removed by hand once no run is
using the directory.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import sys
from pathlib import Path
from types import TracebackType
from typing import Any

from annlens.errors import ConfigError, RunLockedError
from annlens.io.atomic import write_json
from annlens.io.manifest import now_utc

logger = logging.getLogger("annlens")

LOCK_FILE = ".lock"
HOLDER_FILE = ".lock.json"


class RunLock:
    """The exclusive lock of one run directory; a context manager.

    Parameters
    ----------
    folder : path-like
        The run directory, which must exist.
    transient : bool
        Remove ``.lock`` on release when this lock made it, as a command that
        also takes folders that are not run directories (export) does, so as
        to leave nothing behind there. ``.lock`` that was there stays.

    Examples
    --------
    >>> with RunDir.open(path).lock():  # doctest: +SKIP
    ...     ...  # only this process writes the run directory here
    """

    def __init__(
        self, folder: str | os.PathLike[str], *, transient: bool = False
    ) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_FILE
        self.holder_path = self.folder / HOLDER_FILE
        self.transient = transient
        self._lock: Any = None
        self._made = False

    @property
    def held(self) -> bool:
        """Whether this object holds the lock now."""
        return self._lock is not None

    def acquire(self) -> RunLock:
        """Take the lock, or raise at once when another holder has it.

        Raises
        ------
        RunLockedError
            Another process (or another RunLock in this one) holds it; the
            message names the run directory and the holder's PID and host.
        ConfigError
            The run directory does not exist, or its lock file cannot be
            made (a read-only file system).
        """
        from filelock import FileLock, Timeout

        if self.held:
            raise RunLockedError(f"{self._where()} is already locked by this RunLock")
        if not self.folder.is_dir():
            raise ConfigError(f"cannot lock {self._where()}: it is not a folder")
        made = not self.path.exists()
        lock = FileLock(str(self.path), timeout=0)
        try:
            lock.acquire()
        except Timeout:
            raise RunLockedError(self._refusal()) from None
        except OSError as error:  # a read-only or full file system, a folder
            # this user may not write
            raise ConfigError(
                f"cannot lock {self._where()}: {error.strerror or error} at "
                f"{str(self.path)!r}; runs, resumes, reports, exports and "
                "comparisons write into the run directory, so it must be "
                "writable; help: copy the run directory somewhere writable"
            ) from error
        self._made = made
        try:
            write_json(self.holder_path, _holder())
        except BaseException:
            self._remove_made()
            lock.release()
            raise
        self._lock = lock
        logger.debug("locked %s", self.folder)
        return self

    def release(self) -> None:
        """Give the lock back (nothing happens when it is not held)."""
        if self._lock is None:
            return
        try:
            # the record goes first: once the lock is free, the next holder's
            # record must not be removed
            with contextlib.suppress(FileNotFoundError):
                self.holder_path.unlink()
        finally:
            try:
                self._remove_made()
            finally:
                self._lock.release()
                self._lock = None
        logger.debug("unlocked %s", self.folder)

    def _remove_made(self) -> None:
        """Remove ``.lock`` when transient and made by this lock, still held.

        Removed before the release, so no other process holds it then; one
        that opened it just before finds it gone and opens a new one.
        """
        if self.transient and self._made:
            with contextlib.suppress(OSError):  # gone, or in use on Windows
                self.path.unlink()

    def holder(self) -> dict[str, Any] | None:
        """The holder recorded in ``.lock.json``, or None when there is none.

        The record may be stale: a killed holder leaves its record, which the
        next holder replaces.
        """
        try:
            record = json.loads(self.holder_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return record if isinstance(record, dict) else None

    def _where(self) -> str:
        return f"run directory {str(self.folder)!r}"

    def _refusal(self) -> str:
        record = self.holder()
        if record is None:
            who = "another process (it has not recorded its PID yet)"
        else:
            command = str(record.get("command", ""))
            if len(command) > 100:
                command = command[:97] + "..."
            who = (
                f"process {record.get('pid')} on host {record.get('host')!r} "
                f"(since {record.get('since')}, running {command!r})"
            )
        return (
            f"{self._where()} is in use by {who}: only one process at a time "
            "may run, resume, compare, report on or export a run directory, or "
            "their checkpoints, tables and files would mix; help: wait for "
            "that process to end, or stop it; its lock is released when it "
            "ends, even when killed (lock file "
            f"{str(self.path)!r})"
        )

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.release()

    def __repr__(self) -> str:
        state = "held" if self.held else "free"
        return f"RunLock({str(self.folder)!r}, {state})"


def _holder() -> dict[str, Any]:
    """This process, as ``.lock.json`` records it."""
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "since": now_utc().isoformat(),
        "command": " ".join(sys.argv),
    }
