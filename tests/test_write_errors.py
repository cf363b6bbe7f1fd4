"""A file annlens cannot write (a full disk) is named in the error."""

from __future__ import annotations

import errno
import os

import pytest

from annlens.io import atomic, save_checkpoint
from annlens.io import checkpoint as checkpoint_module
from annlens.io.tables import TableWriter
from annlens.layers import Dense
from annlens.model import Sequential


def disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_full_disk_names_the_file_being_written(tmp_path, monkeypatch):
    monkeypatch.setattr(atomic.os, "fsync", disk_full)
    target = tmp_path / "config.toml"
    with pytest.raises(OSError) as caught:
        atomic.write_text(target, "name = 'x'\n")
    assert caught.value.errno == errno.ENOSPC
    assert caught.value.filename == str(target)
    assert str(target) in str(caught.value)
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_names_the_checkpoint_file(tmp_path, monkeypatch):
    model = Sequential([Dense(3, 2)], seed=0)
    monkeypatch.setattr(checkpoint_module.os, "fsync", disk_full)
    with pytest.raises(OSError) as caught:
        save_checkpoint(tmp_path / "base-last", model)
    assert caught.value.filename == str(tmp_path / "base-last" / "tensors.safetensors")
    assert not (tmp_path / "base-last").exists()


def test_an_error_without_errno_still_names_the_file(tmp_path):
    target = tmp_path / "metrics.parquet"
    with pytest.raises(OSError, match="cannot write .*metrics.parquet.*broken"):
        with atomic.naming(target):
            raise OSError("broken pipe to the device")


def test_a_full_disk_names_the_streamed_table(tmp_path, monkeypatch):
    target = tmp_path / "statistics.parquet"
    writer = TableWriter(target, statistics=False)
    writer.write({"a": [1.0, 2.0]})
    monkeypatch.setattr(writer._writer, "close", disk_full, raising=False)
    with pytest.raises(OSError) as caught:
        writer.close()
    assert caught.value.filename == str(target)


def test_a_folder_where_a_file_goes_is_named_not_the_temporary(tmp_path):
    (tmp_path / "report.html").mkdir()
    with pytest.raises(IsADirectoryError) as caught:
        atomic.write_text(tmp_path / "report.html", "<html></html>")
    assert caught.value.filename == str(tmp_path / "report.html")
    assert list(tmp_path.iterdir()) == [tmp_path / "report.html"]
