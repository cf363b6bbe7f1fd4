"""``annlens inspect``: what a checkpoint or a run directory holds, as text.

Epochs are shown from 1 (``epoch 3`` is the third), as the progress bar, the
logs and the report's curves show them; checkpoints and tables store them
from 0.
"""

from __future__ import annotations

from pathlib import Path

from annlens.errors import ConfigError, RunLockedError
from annlens.io import RunDir, is_checkpoint, load_checkpoint
from annlens.io.architecture import build_model
from annlens.io.checkpoint_format import META_FILE
from annlens.io.manifest import end_label
from annlens.io.rundir import MANIFEST


def _checkpoint_text(path: Path) -> str:
    checkpoint = load_checkpoint(path)
    meta = checkpoint.meta
    model = build_model(checkpoint.architecture)
    lines = [f"checkpoint {path}", model.summary(), ""]
    # stored from 0, shown from 1 as everywhere annlens shows an epoch
    lines.append(f"step {checkpoint.step}, epoch {checkpoint.epoch + 1}")
    optimizer = meta.get("optimizer")
    if optimizer:
        settings = ", ".join(f"{k}={v}" for k, v in optimizer.get("base", {}).items())
        lines.append(f"optimizer {optimizer.get('type')} ({settings})")
    target = (checkpoint.extra.get("scaling") or {}).get("target")
    if target:
        lines.append(
            f"targets standardised: mean {target['mean']}, std {target['std']}; "
            "outputs * std + mean are in the target's own units"
        )
    trainer = checkpoint.extra.get("trainer") or {}
    rows = trainer.get("history") or []
    if rows:
        last = rows[-1]
        shown = ", ".join(
            f"{k}={v:.4g}" for k, v in last.items() if isinstance(v, float)
        )
        lines.append(f"last epoch: {shown}")
    return "\n".join(lines)


#: The manifest's end time and duration are those of training: figures and
#: the report come after the manifest says completed (the report shows it).
_LABELS = {"duration_s": "training time (s)"}


def _run_text(path: Path) -> str:
    run = RunDir.open(path)
    manifest = run.read_manifest()
    lines = [f"run {path}"]
    labels = {**_LABELS, "finished": end_label(manifest)}
    for key in ("status", "seed", "started", "finished", "duration_s", "git"):
        if manifest.get(key) is not None:
            lines.append(f"  {labels.get(key, key)}: {manifest[key]}")
    if manifest.get("status") == "running" and not _held(run):
        lines.append(
            "  but no process holds its lock: it was stopped without cleanup "
            f"(killed, say); help: continue it with: annlens resume {path}"
        )
    if run.metrics_path.exists():
        metrics = run.read_metrics()
        last = metrics.groupby("variant").tail(1).set_index("variant")
        if "epoch" in last.columns:  # stored from 0, shown from 1
            last = last.assign(epoch=last["epoch"] + 1)
        lines += ["", "last epoch of each variant:", last.to_string()]
    checkpoints = sorted(p.name for p in run.checkpoints_dir.iterdir() if p.is_dir())
    lines += ["", f"checkpoints: {', '.join(checkpoints) or 'none'}"]
    if run.report_path.exists():
        lines.append(f"report: {run.report_path}")
    return "\n".join(lines)


def _held(run: RunDir) -> bool:
    """Whether a process holds the run directory's lock (True when that cannot
    be told, a read-only folder say, so that nothing is claimed)."""
    try:
        with run.lock():
            return False
    except RunLockedError:
        return True
    except (ConfigError, OSError):
        return True


def inspect_path(path: str | Path) -> str:
    """A description of a checkpoint folder or a run directory."""
    target = Path(path)
    if not target.exists():
        raise ConfigError(f"{str(target)!r} does not exist")
    if target.is_file() and is_checkpoint(target.parent):
        target = target.parent  # meta.json or tensors.safetensors of one
    if is_checkpoint(target):
        return _checkpoint_text(target)
    if not (target / MANIFEST).is_file():
        what = "a file" if target.is_file() else f"a folder without {MANIFEST}"
        raise ConfigError(
            f"{str(target)!r} is {what}; annlens inspect expects a run directory "
            f"(a folder holding {MANIFEST}) or a checkpoint (a folder holding "
            f"{META_FILE}, such as RUN/checkpoints/<variant>-last)"
        )
    return _run_text(target)
