"""The output folder that holds run directories (``--out``, ``output.dir``).

It is checked before anything is built or trained, so that a run is not
refused only when its run directory is made: a file in its place, or a folder
this user may not write (a read-only file system named as such).
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from annlens.errors import ConfigError


def check_output_folder(root: Path) -> None:
    """Refuse an output folder that is a file, lies inside one, or is read-only.

    Run directories are made inside ``root`` (created when missing), so it
    must be a folder or a path where one can be made: its nearest existing
    folder must be writable. A folder that cannot be made for another reason
    (``/proc/x``) is refused when the run directory is made, before training.
    """
    for folder in (root, *root.parents):
        if not folder.exists():
            continue
        if folder.is_dir():
            if not os.access(folder, os.W_OK | os.X_OK):
                error = OSError(errno.EACCES, "Permission denied", folder)
                if _read_only(folder):
                    error = OSError(errno.EROFS, "Read-only file system", folder)
                raise ConfigError(unwritable(root, error))
            return
        inside = "" if folder == root else f", inside {str(folder)!r}, which"
        raise ConfigError(
            f"the output folder {str(root)!r} (--out, or output.dir in the "
            f"config){inside} is an existing file, not a folder; expected a "
            "folder to hold run directories, or a path where one can be made; "
            "help: choose another --out"
        )


def _read_only(folder: Path) -> bool:
    """Whether ``folder`` lies on a file system mounted read-only (POSIX)."""
    flag = getattr(os, "ST_RDONLY", 0)
    try:
        return bool(flag and os.statvfs(folder).f_flag & flag)
    except (AttributeError, OSError):  # no statvfs (Windows)
        return False


def unwritable(root: Path, error: OSError) -> str:
    """Why no run directory can be made under ``root``, in one line."""
    reason = error.strerror or str(error)
    at = f" at {str(error.filename)!r}" if error.filename else ""
    return (
        f"cannot write a run directory into the output folder {str(root)!r} "
        f"(--out, or output.dir in the config): {reason}{at}; expected a "
        "folder this user may write, or a path where one can be made; help: "
        "choose another --out"
    )
