"""``annlens run`` stopped by SIGTERM, as a scheduler or ``kill`` stops it.

The run is a child process, stopped by its PID once it has written a
checkpoint; it must mark its manifest interrupted, release its lock, say how
to continue, and exit with 128 + 15 as a process that signal ends does.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from experiment_support import manifest, only_run_dir, tiny, write_experiment

pytestmark = pytest.mark.skipif(
    sys.platform == "win32", reason="SIGTERM cannot be handled on Windows"
)


def test_a_run_stopped_by_sigterm_is_marked_interrupted_and_exits_143(tmp_path):
    experiment = write_experiment(
        tmp_path / "long.toml", tiny(training={"epochs": 100_000})
    )
    out = tmp_path / "runs"
    child = subprocess.Popen(
        [sys.executable, "-m", "annlens.cli.main", "run", str(experiment)]
        + ["--out", str(out), "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not list(out.glob("*/checkpoints/base-last")):
            assert child.poll() is None, child.communicate()
            assert time.monotonic() < deadline, "no checkpoint was written"
            time.sleep(0.05)
        child.send_signal(signal.SIGTERM)
        _, stderr = child.communicate(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()

    assert child.returncode == 128 + signal.SIGTERM, stderr
    stopped = only_run_dir(out)
    assert manifest(stopped)["status"] == "interrupted"
    assert not (stopped / ".lock.json").exists()
    assert f"annlens resume {stopped}" in stderr
    assert "Traceback" not in stderr
