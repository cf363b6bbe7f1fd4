"""A data file whose content is not the format the data section names is
refused in one line naming the path, the format wanted and the one found."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from annlens.cli.main import app
from annlens.data import load_dataset
from annlens.errors import DataError
from experiment_support import tiny, write_experiment


@pytest.fixture
def npy(tmp_path):
    path = tmp_path / "d.npy"
    np.save(path, np.ones((10, 3)))
    return path


@pytest.fixture
def csv(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("a,b,y\n1,2,0\n3,4,1\n")
    return path


def _message(name, path, target="y"):
    with pytest.raises(DataError) as caught:
        load_dataset(name, path=path, target=target)
    message = str(caught.value)
    assert "\n" not in message
    assert str(path) in message
    return message


def test_npz_naming_an_npy_file_says_what_each_is(npy):
    message = _message("npz", npy)
    assert "name='npz' expects a NumPy .npz archive" in message
    assert "appears to be a NumPy .npy array" in message


def test_npz_naming_a_csv_file_says_it_is_text(csv):
    message = _message("npz", csv)
    assert "expects a NumPy .npz archive" in message
    assert "appears to be CSV text" in message
    assert "unpickle" not in message


def test_npy_naming_a_csv_file_says_it_is_text(csv):
    message = _message("npy", csv, target=0)
    assert "expects a NumPy .npy array, but the file appears to be CSV" in message


def test_csv_naming_an_npy_file_says_it_is_numpy(npy):
    message = _message("csv", npy)
    assert "expects CSV text, but the file appears to be a NumPy .npy" in message


def test_a_suffix_that_does_not_match_the_content_is_refused(tmp_path, csv):
    fake = tmp_path / "fake.npz"
    fake.write_bytes(csv.read_bytes())
    message = _message("file", fake)
    assert "suffix '.npz' means a NumPy .npz archive" in message


def test_binary_content_is_called_neither_text_nor_numpy(tmp_path):
    path = tmp_path / "blob.npz"
    path.write_bytes(b"\x00\x01\x02garbage")
    assert "neither text nor a NumPy file" in _message("npz", path)


def test_the_cli_refuses_a_mismatched_loader_with_status_2(tmp_path, npy):
    config = tiny(data={"name": "npz", "path": str(npy), "target": "y"})
    file = write_experiment(tmp_path / "exp.toml", config)
    out = tmp_path / "runs"
    result = CliRunner().invoke(app, ["run", str(file), "--out", str(out), "--quiet"])
    assert result.exit_code == 2, result.output
    assert "appears to be a NumPy .npy array" in result.output
    assert "Traceback" not in result.output
    assert not out.exists() or not any(out.iterdir())
