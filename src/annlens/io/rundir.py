"""The run directory: one folder per run holding everything needed to reread it.

Layout::

    <root>/<YYYYmmdd-HHMMSS>-<name>/
      config.toml          the resolved config (config.json without tomli-w)
      manifest.json        versions, host, seed, git commit, times, command,
                           the sha256 of config.toml
      metrics.parquet      one row per epoch
      statistics.parquet   the long table: step, epoch, variant, layer, stage,
                           quantity, value
      <other>.parquet      any further table (histograms, spectra, ...)
      checkpoints/last/    the latest checkpoint
      checkpoints/best/    the best one so far
      figures/             images
      report.html          the report
      export/              tables converted by annlens.io.export
      .lock, .lock.json    the lock a run or resumption holds, and its holder

Every file is written atomically (see :mod:`annlens.io.atomic`). One process
at a time runs or resumes a run directory: it holds :meth:`RunDir.lock` (see
:mod:`annlens.io.lock`). The config is
TOML, which has no null: keys whose value is None are left out, which reads
back as "not set", the meaning None has in a resolved config.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from annlens.errors import ConfigError
from annlens.io.atomic import write_json, write_text
from annlens.io.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from annlens.io.lock import RunLock
from annlens.io.manifest import build_manifest, finish_manifest
from annlens.io.tables import TableWriter, read_parquet, statistics_frame, write_parquet

logger = logging.getLogger("annlens")

CONFIG_TOML = "config.toml"
CONFIG_JSON = "config.json"
MANIFEST = "manifest.json"
REPORT = "report.html"
CHECKPOINTS = "checkpoints"
FIGURES = "figures"
EXPORT = "export"
CONFIG_SHA256 = "config_sha256"


def _tomli_w() -> Any:
    try:
        import tomli_w
    except ImportError:
        return None
    return tomli_w


class RunDir:
    """A run's folder and the paths and writers of everything in it.

    Parameters
    ----------
    path : path-like
        An existing run directory (use :meth:`create` for a new one).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    # -- making and opening ---------------------------------------------------

    @classmethod
    def create(
        cls,
        root: str | os.PathLike[str],
        name: str = "run",
        when: dt.datetime | None = None,
    ) -> RunDir:
        """Make a new, uniquely named run directory under ``root``.

        The folder is ``<YYYYmmdd-HHMMSS>-<name>`` in local time, with ``-2``,
        ``-3``, ... appended when that exists already. ``name`` keeps letters,
        digits, ``.``, ``_`` and ``-``; other characters become ``_``, and
        only its first 100 characters are kept, so that a long experiment
        name still makes a folder name the file system takes.
        """
        base = Path(root)
        try:
            base.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise ConfigError(
                f"cannot make a run directory under {str(base)!r}: it, or a "
                "folder above it, is a file"
            ) from None
        stamp = (when or dt.datetime.now()).strftime("%Y%m%d-%H%M%S")
        label = re.sub(r"[^A-Za-z0-9._-]", "_", name)[:100].strip(".") or "run"
        for count in range(1, 10_000):
            suffix = "" if count == 1 else f"-{count}"
            path = base / f"{stamp}-{label}{suffix}"
            try:
                path.mkdir()
            except FileExistsError:
                continue
            run = cls(path)
            run.checkpoints_dir.mkdir()
            run.figures_dir.mkdir()
            logger.info("run directory %s", path)
            return run
        raise ConfigError(f"no free run directory name under {str(base)!r}")

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> RunDir:
        """Open an existing run directory; it must hold a manifest."""
        run = cls(path)
        if not run.manifest_path.is_file():
            raise ConfigError(
                f"{str(run.path)!r} is not an annlens run directory (no {MANIFEST})"
            )
        return run

    def require_completed(self, action: str) -> None:
        """Refuse a run whose manifest does not say it completed.

        A run that is still running, was interrupted or failed has no final
        tables yet; ``action`` (``"compare"``, ``"export"``...) names what
        was asked, for the message.

        Raises
        ------
        ConfigError
            The manifest's status is not ``"completed"``; the message says how
            to finish the run.
        """
        status = self.read_manifest().get("status")
        if status == "completed":
            return
        state = {
            "running": "is still running (or was killed before it could say so)",
            "interrupted": "was interrupted",
            "failed": "failed",
        }.get(str(status), "has not completed")
        raise ConfigError(
            f"cannot {action} run directory {str(self.path)!r}: it {state} "
            f"({MANIFEST} says status {status!r}, expected 'completed'), so its "
            f"tables are not written yet; help: finish it with `annlens resume "
            f"{self.path}`, then {action} it"
        )

    def lock(self) -> RunLock:
        """The directory's exclusive lock, to hold in a ``with`` block.

        Taking it raises :class:`~annlens.errors.RunLockedError` at once when
        another process holds it; see :class:`annlens.io.lock.RunLock`.
        """
        return RunLock(self.path)

    # -- paths --------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The folder's name."""
        return self.path.name

    @property
    def config_path(self) -> Path:
        """``config.toml``, or ``config.json`` when that is what was written."""
        if (self.path / CONFIG_JSON).exists() and not (
            self.path / CONFIG_TOML
        ).exists():
            return self.path / CONFIG_JSON
        return self.path / (CONFIG_TOML if _tomli_w() else CONFIG_JSON)

    @property
    def manifest_path(self) -> Path:
        return self.path / MANIFEST

    @property
    def metrics_path(self) -> Path:
        return self.table_path("metrics")

    @property
    def statistics_path(self) -> Path:
        return self.table_path("statistics")

    @property
    def checkpoints_dir(self) -> Path:
        return self.path / CHECKPOINTS

    @property
    def figures_dir(self) -> Path:
        return self.path / FIGURES

    @property
    def report_path(self) -> Path:
        return self.path / REPORT

    @property
    def export_dir(self) -> Path:
        return self.path / EXPORT

    def table_path(self, name: str) -> Path:
        """``<name>.parquet`` in the run directory."""
        if not re.fullmatch(r"[A-Za-z0-9_-]+", name):
            raise ConfigError(f"a table name is letters, digits, _ and -; got {name!r}")
        return self.path / f"{name}.parquet"

    def checkpoint_path(self, which: str = "last") -> Path:
        """``checkpoints/<which>`` (``"last"``, ``"best"``, or any other tag)."""
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", which) or which.startswith("."):
            raise ConfigError(f"a checkpoint tag is a plain name, got {which!r}")
        return self.checkpoints_dir / which

    def figure_path(self, name: str) -> Path:
        """A path for a figure file in ``figures/`` (the folder is created)."""
        if Path(name).name != name or name.startswith("."):
            raise ConfigError(f"a figure name is a plain file name, got {name!r}")
        self.figures_dir.mkdir(exist_ok=True)
        return self.figures_dir / name

    # -- config and manifest ------------------------------------------------------

    def write_config(self, config: Any) -> Path:
        """Write the resolved config (a mapping or a pydantic model)."""
        plain = _plain_config(config)
        tomli_w = _tomli_w()
        if tomli_w is None:
            return write_json(self.path / CONFIG_JSON, plain)
        return write_text(self.path / CONFIG_TOML, tomli_w.dumps(_drop_none(plain)))

    def read_config(self) -> dict[str, Any]:
        """The config as written, as a dict."""
        toml_path, json_path = self.path / CONFIG_TOML, self.path / CONFIG_JSON
        if toml_path.exists():
            try:
                import tomllib
            except ImportError:  # Python 3.10
                import tomli as tomllib  # type: ignore[no-redef]
            try:
                return tomllib.loads(toml_path.read_text(encoding="utf-8"))
            except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
                raise ConfigError(_damaged(toml_path, "TOML", error)) from error
        if json_path.exists():
            return dict(read_json(json_path))
        raise ConfigError(f"run directory {str(self.path)!r} holds no config")

    def start(
        self,
        seed: int | None,
        command: Sequence[str] | None = None,
        source_dir: str | os.PathLike[str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Write the manifest of a run starting now; return it.

        See :func:`annlens.io.manifest.build_manifest` for the arguments.
        When the config is written already, its sha256 is recorded as
        ``config_sha256``, for :meth:`check_config_unchanged`.
        """
        extra = dict(extra or {})
        if self.config_path.is_file():
            extra[CONFIG_SHA256] = self.config_digest()
        manifest = build_manifest(seed, command, source_dir, extra)
        write_json(self.manifest_path, manifest)
        return manifest

    def finish(self, status: str = "completed") -> dict[str, Any]:
        """Record the end time, duration and status in the manifest; return it."""
        manifest = finish_manifest(self.read_manifest(), status)
        write_json(self.manifest_path, manifest)
        return manifest

    def config_digest(self) -> str:
        """The sha256 of the config file as it is now, in hex."""
        return hashlib.sha256(self.config_path.read_bytes()).hexdigest()

    def check_config_unchanged(self) -> None:
        """Refuse a config file that changed since the run started.

        A run continues only with the config it started with: checkpoints,
        tables and the manifest all describe that one. Runs made before the
        manifest recorded ``config_sha256`` are not checked.

        Raises
        ------
        ConfigError
            The config file's sha256 differs from the one in the manifest.
        """
        recorded = self.read_manifest().get(CONFIG_SHA256)
        if recorded is None:
            return
        now = self.config_digest()
        if now == recorded:
            return
        path = self.config_path
        raise ConfigError(
            f"{str(path)!r} was edited after the run started (its sha256 is "
            f"{now[:12]}..., {MANIFEST} recorded {recorded[:12]}...): a run "
            "continues only with the config it started with, which its "
            "checkpoints and tables were made by; help: to train with the "
            f"edited config, start a new run: `annlens run {path}`; to continue "
            "this one, put the file back as it was"
        )

    def read_manifest(self) -> dict[str, Any]:
        """The manifest as a dict."""
        if not self.manifest_path.is_file():
            raise ConfigError(f"run directory {str(self.path)!r} has no {MANIFEST}")
        manifest = read_json(self.manifest_path)
        if not isinstance(manifest, dict):
            raise ConfigError(
                f"{str(self.manifest_path)!r} holds {type(manifest).__name__}, "
                "not a JSON object; help: the file is damaged or was edited"
            )
        return manifest

    # -- tables -------------------------------------------------------------------

    def write_metrics(self, table: Any) -> Path:
        """Write the per-epoch metrics (rows of ``epoch``, ``loss``, ...)."""
        return write_parquet(self.metrics_path, table)

    def read_metrics(self) -> Any:
        """The per-epoch metrics as a DataFrame."""
        return read_parquet(self.metrics_path)

    def write_statistics(self, table: Any) -> Path:
        """Write the long statistics table (checked against its columns)."""
        return write_parquet(self.statistics_path, statistics_frame(table))

    def statistics_writer(self) -> TableWriter:
        """A writer that streams the statistics table in chunks (see TableWriter)."""
        return TableWriter(self.statistics_path, statistics=True)

    def read_statistics(self) -> Any:
        """The statistics table as a DataFrame."""
        return read_parquet(self.statistics_path)

    def write_table(self, name: str, table: Any) -> Path:
        """Write any other table as ``<name>.parquet``."""
        if name == "statistics":
            return self.write_statistics(table)
        return write_parquet(self.table_path(name), table)

    def read_table(self, name: str) -> Any:
        """Read ``<name>.parquet`` as a DataFrame."""
        return read_parquet(self.table_path(name))

    def tables(self) -> list[str]:
        """The names of the tables stored, sorted."""
        return sorted(p.stem for p in self.path.glob("*.parquet"))

    # -- checkpoints and report ------------------------------------------------------

    def save_checkpoint(
        self,
        model: Any,
        which: str = "last",
        optimizer: Any = None,
        schedule: Any = None,
        extra: Mapping[str, Any] | None = None,
    ) -> Path:
        """Save ``checkpoints/<which>`` (see :func:`annlens.io.save_checkpoint`)."""
        self.checkpoints_dir.mkdir(exist_ok=True)
        return save_checkpoint(
            self.checkpoint_path(which), model, optimizer, schedule, extra
        )

    def load_checkpoint(self, which: str = "last") -> Checkpoint:
        """Load and verify ``checkpoints/<which>``."""
        return load_checkpoint(self.checkpoint_path(which))

    def write_report(self, html: str) -> Path:
        """Write ``report.html``."""
        return write_text(self.report_path, html)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"


def _plain_config(config: Any) -> Any:
    """Plain dicts, lists, strings and numbers from a config (pydantic or mapping)."""
    if hasattr(config, "model_dump"):
        config = config.model_dump(mode="json")
    if isinstance(config, Mapping):
        out = {}
        for key, value in config.items():
            if not isinstance(key, str):
                raise ConfigError(f"config keys must be strings, got {key!r}")
            out[key] = _plain_config(value)
        return out
    if isinstance(config, (list, tuple)):
        return [_plain_config(value) for value in config]
    if isinstance(config, os.PathLike):
        return os.fspath(config)
    if hasattr(config, "item") and not isinstance(config, (str, bytes)):
        return config.item()
    if config is None or isinstance(config, (bool, int, float, str)):
        return config
    raise ConfigError(
        f"cannot write {type(config).__name__} {config!r} into a config file"
    )


def _drop_none(value: Any, where: str = "config") -> Any:
    """Leave out None values of tables; refuse None inside lists (TOML has no null)."""
    if isinstance(value, dict):
        return {
            key: _drop_none(item, f"{where}.{key}")
            for key, item in value.items()
            if item is not None
        }
    if isinstance(value, list):
        if any(item is None for item in value):
            raise ConfigError(f"{where} holds None in a list, which TOML cannot write")
        return [_drop_none(item, f"{where}[{i}]") for i, item in enumerate(value)]
    return value


def read_json(path: Path) -> Any:
    """The JSON value of a file of a run directory, or a ConfigError naming it."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(_damaged(path, "JSON", error)) from error


def _damaged(path: Path, kind: str, error: Exception) -> str:
    return (
        f"{str(path)!r} is not valid {kind} ({error}); help: the file is damaged "
        "or was edited by hand; put it back as annlens wrote it"
    )
