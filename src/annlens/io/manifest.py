"""The run manifest: what ran, where, when, from which code, with which seed.

A manifest is a JSON object:

- ``annlens``, ``numpy``, ``python``: versions;
- ``platform``, ``host``: :func:`platform.platform` and the host name;
- ``seed``: the run's seed;
- ``git``: ``{"commit": ..., "dirty": ...}`` of the folder given, or None when
  it is not inside a git work tree or git is not installed;
- ``command``: the command line, as a list of arguments;
- ``started``, ``finished``: ISO 8601 times in UTC (``finished`` None while
  running); ``duration_s``: seconds between them; ``status``: ``"running"``,
  then what :func:`finish_manifest` is told (``"completed"``, ``"failed"``...).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import platform
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from annlens.errors import ConfigError

logger = logging.getLogger("annlens")


def annlens_version() -> str:
    """The installed annlens version (read lazily, so importing this is cheap)."""
    import annlens

    version = getattr(annlens, "__version__", None)
    if version:
        return str(version)
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("annlens")
    except PackageNotFoundError:
        return "unknown"


def now_utc() -> dt.datetime:
    """The current time in UTC."""
    return dt.datetime.now(dt.timezone.utc)


def git_state(folder: str | os.PathLike[str] | None) -> dict[str, Any] | None:
    """``{"commit", "dirty"}`` of the git work tree holding ``folder``, or None.

    A missing ``git`` program, a folder outside any repository, or git taking
    more than a few seconds all give None: a manifest never fails for this.
    """
    if folder is None:
        return None

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(folder), *args],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError) as error:
        logger.debug("no git commit for %s: %s", folder, error)
        return None
    return {"commit": commit, "dirty": dirty}


def build_manifest(
    seed: int | None,
    command: Sequence[str] | None = None,
    source_dir: str | os.PathLike[str] | None = None,
    extra: Mapping[str, Any] | None = None,
    started: dt.datetime | None = None,
) -> dict[str, Any]:
    """A manifest for a run that starts now (see the module docstring).

    Parameters
    ----------
    seed : int or None
        The run's seed.
    command : sequence of str, optional
        The command line; ``sys.argv`` when omitted.
    source_dir : path-like, optional
        A folder whose git commit to record (the project, the config's folder).
    extra : mapping, optional
        More JSON-ready entries (they may not replace the standard ones).
    started : datetime, optional
        The start time; now when omitted.
    """
    manifest: dict[str, Any] = {
        "annlens": annlens_version(),
        "numpy": np.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "host": socket.gethostname(),
        "seed": seed,
        "git": git_state(source_dir),
        "command": list(command) if command is not None else list(sys.argv),
        "started": (started or now_utc()).isoformat(),
        "finished": None,
        "duration_s": None,
        "status": "running",
    }
    for key, value in (extra or {}).items():
        if key in manifest:
            raise ConfigError(
                f"manifest entry {key!r} is a standard one; give it another name"
            )
        manifest[key] = value
    return manifest


def finish_manifest(
    manifest: Mapping[str, Any],
    status: str = "completed",
    ended: dt.datetime | None = None,
) -> dict[str, Any]:
    """A copy of ``manifest`` with the end time, duration and status filled in."""
    ended = ended or now_utc()
    started = dt.datetime.fromisoformat(manifest["started"])
    return {
        **manifest,
        "finished": ended.isoformat(),
        "duration_s": round((ended - started).total_seconds(), 3),
        "status": status,
    }


def end_label(manifest: Mapping[str, Any]) -> str:
    """How to name the ``finished`` time: training finished, or stopped early.

    A run that failed or was interrupted has an end time too, which is when it
    stopped, not when its training finished.
    """
    if manifest.get("status") == "completed":
        return "training finished"
    return "training stopped"


def project_root() -> Path:
    """The folder annlens's own source lives in (for its git commit)."""
    return Path(__file__).resolve().parents[1]
