"""Export of the recorder's tables to TensorBoard event files, read back."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from annlens.analysis.collectors import Histograms, Recorder
from test_collectors import make_data, make_model, train

pytest.importorskip("tensorboardX")

from annlens.io.tensorboard import (  # noqa: E402
    read_histogram_tags,
    read_scalars,
    write_tensorboard,
)


@pytest.fixture
def recorded(rng):
    model = make_model()
    recorder = Recorder(
        model, stats=["summary", "loss", Histograms(every=1)], variant="base"
    ).attach()
    train(model, recorder, [make_data(rng) for _ in range(3)])
    return recorder


def test_event_files_appear_in_a_run_directory_per_variant(tmp_path, recorded):
    written = write_tensorboard(tmp_path, recorded.to_dataframe())
    assert written == [tmp_path / "base"]
    files = list((tmp_path / "base").glob("events.out.tfevents*"))
    assert len(files) == 1 and files[0].stat().st_size > 0


def test_scalars_read_back_equal_the_statistics(tmp_path, recorded):
    frame = recorded.to_dataframe()
    write_tensorboard(tmp_path, frame)
    scalars = read_scalars(tmp_path)
    assert set(scalars.run) == {"base"}
    assert len(scalars) == len(frame)
    loss = scalars[scalars.tag == "model/loss"].sort_values("step")
    expected = frame[frame.quantity == "loss"].sort_values("step")
    np.testing.assert_allclose(loss.value, expected.value, rtol=1e-6)
    delta = scalars[scalars.tag == "dense_1/delta/rms"].sort_values("step")
    assert list(delta.step) == [0, 1, 2]


def test_histograms_and_metrics_are_written_too(tmp_path, recorded):
    metrics = pd.DataFrame(
        {"epoch": [0, 1], "train_loss": [1.2, 0.9], "val_loss": [1.3, 1.0]}
    ).assign(variant="base")
    write_tensorboard(
        tmp_path, recorded.to_dataframe(), metrics, histograms=recorded.histograms()
    )
    tags = {(tag, step) for _, tag, step in read_histogram_tags(tmp_path)}
    assert ("dense_0/pre_activation", 2) in tags
    scalars = read_scalars(tmp_path)
    val = scalars[scalars.tag == "metrics/val_loss"].sort_values("step")
    np.testing.assert_allclose(val.value, [1.3, 1.0], rtol=1e-6)


def test_a_single_run_writes_into_the_log_directory_itself(tmp_path, rng):
    model = make_model()
    recorder = Recorder(model, stats=["loss"]).attach()
    train(model, recorder, [make_data(rng)])
    assert write_tensorboard(tmp_path, recorder.to_dataframe()) == [tmp_path]
    assert set(read_scalars(tmp_path).run) == {""}


def test_missing_tensorboardx_gives_a_clear_error(tmp_path, monkeypatch, recorded):
    import builtins

    real_import = builtins.__import__

    def refuse(name, *args, **kwargs):
        if name == "tensorboardX":
            raise ImportError("no tensorboardX")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", refuse)
    with pytest.raises(ImportError, match=r"pip install 'annlens\[tensorboard\]'"):
        write_tensorboard(tmp_path, recorded.to_dataframe())


def test_a_run_writes_the_statistics_and_histograms_it_stored(tmp_path, caplog):
    from annlens.experiment import run_experiment
    from experiment_support import tiny

    run = run_experiment(tiny(output={"tensorboard": True}), out=tmp_path)

    log_dir = run.directory / "tensorboard"
    scalars = read_scalars(log_dir)
    statistics = scalars[~scalars.tag.str.startswith("metrics/")]
    assert len(statistics) == len(run.statistics)
    np.testing.assert_allclose(
        np.sort(statistics.value), np.sort(run.statistics.value), rtol=1e-6
    )
    stored = pd.read_parquet(run.directory / "histograms.parquet")
    written = read_histogram_tags(log_dir)
    assert len(stored) and len(written) == len(
        stored.drop_duplicates(["variant", "layer", "stage", "step"])
    )
    assert "NaN or Inf" not in caplog.text
