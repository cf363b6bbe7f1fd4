"""One process at a time runs or resumes a run directory; a killed one blocks none."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from annlens.errors import ConfigError, RunLockedError
from annlens.experiment import run_experiment
from annlens.io import RunDir, RunLock
from experiment_support import assert_same_run, manifest, only_run_dir, tiny

# A child that takes the lock of a run directory, says so by writing its PID
# to a file, and holds the lock until a second file appears (at most 120 s):
# argv is the run directory, the file to write and the file to wait for.
HOLDING_SCRIPT = """
import os, pathlib, sys, time
from annlens.io import RunDir

folder, ready, go = sys.argv[1], pathlib.Path(sys.argv[2]), pathlib.Path(sys.argv[3])
with RunDir(folder).lock():
    ready.write_text(str(os.getpid()))
    deadline = time.monotonic() + 120
    while not go.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
"""

# A child that runs an experiment and pauses after the first epoch until a
# file appears (at most 120 s), having written its PID to another: argv is
# the config as JSON, the output folder, the file to write, the file to wait for.
PAUSING_SCRIPT = """
import json, os, pathlib, sys, time
from annlens.experiment import callbacks, run_experiment

config, out = json.loads(sys.argv[1]), sys.argv[2]
ready, go = pathlib.Path(sys.argv[3]), pathlib.Path(sys.argv[4])
original = callbacks.EndEpoch.on_epoch_end

def pause(self, trainer, logs):
    original(self, trainer, logs)
    if not ready.exists():
        ready.write_text(str(os.getpid()))
        deadline = time.monotonic() + 120
        while not go.exists() and time.monotonic() < deadline:
            time.sleep(0.02)

callbacks.EndEpoch.on_epoch_end = pause
run_experiment(config, out=out)
"""

# A child that resumes a run directory; a refusal exits with status 3.
RESUMING_SCRIPT = """
import sys
from annlens.errors import RunLockedError
from annlens.experiment import resume_experiment

try:
    resume_experiment(sys.argv[1])
except RunLockedError as error:
    print(error, file=sys.stderr)
    sys.exit(3)
"""


@pytest.fixture
def run(tmp_path) -> RunDir:
    return RunDir.create(tmp_path / "runs", "locked")


def start(tmp_path: Path, script: str, *args: str) -> subprocess.Popen[str]:
    path = tmp_path / "child.py"
    path.write_text(script)
    return subprocess.Popen(
        [sys.executable, str(path), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(path: Path, child: subprocess.Popen[str]) -> int:
    """The PID the child wrote to ``path`` once it wrote it."""
    deadline = time.monotonic() + 120
    while not path.exists():
        if child.poll() is not None:
            pytest.fail(f"the child ended early: {child.communicate()[1]}")
        if time.monotonic() > deadline:
            child.kill()
            pytest.fail("the child did not take the lock within 120 s")
        time.sleep(0.02)
    return int(path.read_text())


# -- in one process -------------------------------------------------------------------


def test_the_holder_is_recorded_while_the_lock_is_held(run):
    with run.lock() as lock:
        holder = lock.holder()
        assert lock.held
        assert holder is not None and holder["pid"] == os.getpid()

    assert not lock.held and lock.holder() is None
    assert not (run.path / ".lock.json").exists()


def test_a_second_lock_on_the_same_directory_is_refused_at_once(run):
    with run.lock(), pytest.raises(RunLockedError) as caught:
        run.lock().acquire()

    message = str(caught.value)
    assert str(run.path) in message
    assert f"in use by process {os.getpid()}" in message
    assert "may run, resume, compare, report on or export a run directory" in message


def test_the_lock_is_released_when_the_block_raises(run):
    with pytest.raises(KeyError), run.lock():
        raise KeyError("the run failed")

    with run.lock() as lock:
        assert lock.held


def test_taking_a_held_lock_again_through_the_same_object_is_refused(run):
    lock = RunLock(run.path)
    with lock, pytest.raises(RunLockedError, match="already locked by this"):
        lock.acquire()


def test_releasing_a_lock_that_is_not_held_does_nothing(run):
    lock = RunLock(run.path)
    lock.release()

    assert not lock.held and repr(lock).endswith("free)")


def test_locking_a_missing_folder_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="not a folder"):
        RunLock(tmp_path / "missing").acquire()


# -- across processes -----------------------------------------------------------------


def test_a_lock_held_by_another_process_is_refused_naming_its_pid(tmp_path, run):
    ready, go = tmp_path / "ready", tmp_path / "go"
    child = start(tmp_path, HOLDING_SCRIPT, str(run.path), str(ready), str(go))
    try:
        pid = wait_for(ready, child)

        with pytest.raises(RunLockedError) as caught:
            run.lock().acquire()
    finally:
        go.write_text("")
        child.wait(timeout=120)

    message = str(caught.value)
    assert f"run directory {str(run.path)!r} is in use by process {pid}" in message
    assert child.returncode == 0
    with run.lock() as lock:
        assert lock.held


def test_a_killed_holder_does_not_block_the_next_lock(tmp_path, run):
    ready = tmp_path / "ready"
    child = start(tmp_path, HOLDING_SCRIPT, str(run.path), str(ready), "never")
    pid = wait_for(ready, child)
    assert child.pid == pid

    child.kill()  # SIGKILL to that PID: no clean-up runs in the child
    child.wait(timeout=120)

    lock = run.lock()
    assert lock.holder()["pid"] == pid  # the stale record stays behind
    with lock:
        assert lock.holder()["pid"] == os.getpid()


def test_a_second_process_cannot_resume_a_running_run(tmp_path):
    config = tiny(training={"epochs": 3})
    out, ready, go = tmp_path / "runs", tmp_path / "ready", tmp_path / "go"
    first = start(
        tmp_path, PAUSING_SCRIPT, json.dumps(config), str(out), str(ready), str(go)
    )
    try:
        pid = wait_for(ready, first)
        folder = only_run_dir(out)

        script = tmp_path / "resume.py"
        script.write_text(RESUMING_SCRIPT)
        second = subprocess.run(
            [sys.executable, str(script), str(folder)],
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        go.write_text("")
        first.wait(timeout=120)

    assert second.returncode == 3, second.stderr
    assert f"{str(folder)!r} is in use by process {pid}" in second.stderr
    assert first.returncode == 0, first.stderr
    assert "resumed" not in manifest(folder)
    assert manifest(folder)["status"] == "completed"
    reference = run_experiment(config, out=tmp_path / "reference").directory
    assert_same_run(reference, folder, ["base"])


def test_a_run_directory_that_cannot_be_locked_is_refused_in_one_line(
    tmp_path, monkeypatch
):
    import errno

    import filelock

    class ReadOnly:
        def __init__(self, path: str, timeout: float) -> None:
            self.path = path

        def acquire(self) -> None:
            raise OSError(errno.EROFS, "Read-only file system", self.path)

    monkeypatch.setattr(filelock, "FileLock", ReadOnly)
    with pytest.raises(ConfigError) as caught:
        RunLock(tmp_path).acquire()

    message = str(caught.value)
    assert message.startswith(f"cannot lock run directory {str(tmp_path)!r}")
    assert "Read-only file system" in message
    assert "help: copy the run directory somewhere writable" in message
