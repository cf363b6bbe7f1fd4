"""Synthetic tables in the statistics schema, for the figure and report tests.

They imitate the default experiment: three deep networks (a saturating
sigmoid, a Glorot sigmoid, a He ReLU) whose back-propagated signal shrinks by
a fixed factor per layer. The numbers are made up; only their shapes and the
schema are real.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

VARIANTS = {
    # name: (decay of |delta| per layer, update ratio, activation)
    "sigmoid-normal": (0.2, 2e-5, "sigmoid"),
    "sigmoid-glorot": (0.55, 2e-4, "sigmoid"),
    "relu-he": (0.95, 1.2e-3, "relu"),
}
LAYERS = ["dense_0", "dense_1", "dense_2", "dense_3", "dense_4"]
STEPS_PER_EPOCH = 60
QUANTILES = {"q05": -1.645, "q25": -0.674, "q50": 0.0, "q75": 0.674, "q95": 1.645}


@dataclass
class Tables:
    stats: pd.DataFrame
    histograms: pd.DataFrame
    spectra: pd.DataFrame
    metrics: pd.DataFrame


def synthetic_tables(
    rng: np.random.Generator,
    variants: dict[str, tuple[float, float, str]] | None = None,
    steps: int = 600,
    every: int = 5,
    layers: list[str] | None = None,
) -> Tables:
    """Statistics, histogram, spectra and metrics tables for a few variants."""
    variants = variants or VARIANTS
    layers = layers or LAYERS
    recorded = np.arange(0, steps + 1, every)
    epochs = recorded // STEPS_PER_EPOCH
    n = recorded.size
    t = recorded / max(steps, 1)
    frames = []

    def add(variant: str, layer: str, stage: str, quantity: str, values) -> None:
        frames.append(
            pd.DataFrame(
                {
                    "step": recorded,
                    "epoch": epochs,
                    "variant": variant,
                    "layer": layer,
                    "stage": stage,
                    "quantity": quantity,
                    "value": np.asarray(values, dtype=float),
                }
            )
        )

    for variant, (decay, ratio, activation) in variants.items():
        depth = len(layers)
        # Forward stages first (collectors record the forward pass in order).
        for i, layer in enumerate(layers):
            noise = rng.lognormal(0.0, 0.05, n)
            if activation == "sigmoid":
                spread = 0.45 if decay < 0.3 else 0.2
                centre = 0.5 + 0.05 * np.sin(3 * t + i)
                for q, z in QUANTILES.items():
                    add(
                        variant,
                        layer,
                        "post_activation",
                        q,
                        np.clip(centre + z * spread * noise / 1.645 * 0.9, 0, 1),
                    )
                sat = (0.7 if decay < 0.3 else 0.08) * (1 + 0.1 * t)
                add(
                    variant,
                    layer,
                    "post_activation",
                    "saturated_fraction",
                    np.clip(sat + rng.normal(0, 0.02, n), 0, 1),
                )
            else:
                scale = 0.6 * (1 + 0.3 * t) * noise
                for q, z in QUANTILES.items():
                    add(
                        variant,
                        layer,
                        "post_activation",
                        q,
                        np.maximum(0.0, scale * (z + 0.3)),
                    )
                dead = np.clip(
                    0.02 + 0.25 * t * (i / depth) + rng.normal(0, 0.01, n), 0, 1
                )
                add(variant, layer, "post_activation", "dead_fraction", dead)
            add(variant, layer, "post_activation", "mean", 0.5 * noise)
            sv = 1.0 + 0.5 * t * noise
            add(variant, layer, "param:W", "sv_max", sv * 2)
            add(variant, layer, "param:W", "sv_min", sv * 0.05)
            add(variant, layer, "param:W", "l2", 4 * sv)
        # Backward stages, output layer first.
        for i, layer in reversed(list(enumerate(layers))):
            level = 0.05 * decay ** (depth - 1 - i) * np.exp(-1.5 * t)
            noise = rng.lognormal(0.0, 0.25, n)
            add(variant, layer, "delta", "mean_abs", level * noise)
            add(variant, layer, "grad_output", "mean_abs", 1.3 * level * noise)
            add(variant, layer, "gradient:W", "l2", 8 * level * noise)
            add(
                variant,
                layer,
                "update:W",
                "update_ratio",
                ratio * decay ** (0.5 * (depth - 1 - i)) * np.exp(-t) * noise,
            )
        loss = 2.3 * np.exp(-3 * t * decay) + 0.1 + rng.normal(0, 0.05, n)
        add(variant, "model", "model", "loss", np.abs(loss))
        add(variant, "model", "model", "accuracy", np.clip(1 - loss / 2.4, 0, 1))
    stats = pd.concat(frames, ignore_index=True)

    histograms = []
    edges = np.linspace(-3, 3, 31)
    centres = (edges[:-1] + edges[1:]) / 2
    for variant in variants:
        for layer in layers:
            for stage, width0 in (("param:W", 0.6), ("gradient:W", 0.2)):
                for step in sorted({0, steps // 10, steps // 2, steps}):
                    width = width0 * (1 + step / max(steps, 1))
                    count = np.round(1000 * np.exp(-0.5 * (centres / width) ** 2))
                    histograms.append(
                        pd.DataFrame(
                            {
                                "step": step,
                                "epoch": step // STEPS_PER_EPOCH,
                                "variant": variant,
                                "layer": layer,
                                "stage": stage,
                                "bin_lo": edges[:-1],
                                "bin_hi": edges[1:],
                                "count": count.astype(np.int64),
                            }
                        )
                    )

    spectra = []
    for variant, (decay, _, _) in variants.items():
        for layer in layers:
            for step in range(0, steps + 1, max(steps // 4, 1)):
                k = np.arange(16)
                values = 2.0 * np.exp(-k * (0.1 + 0.2 * step / max(steps, 1)) / decay)
                spectra.append(
                    pd.DataFrame(
                        {
                            "step": step,
                            "epoch": step // STEPS_PER_EPOCH,
                            "variant": variant,
                            "layer": layer,
                            "param": "W",
                            "index": k,
                            "value": values,
                        }
                    )
                )

    metrics = []
    n_epochs = max(steps // STEPS_PER_EPOCH, 3)
    for variant, (decay, _, _) in variants.items():
        for epoch in range(1, n_epochs + 1):
            for split, gap in (("train", 0.0), ("val", 0.08)):
                loss = 2.3 * np.exp(-0.4 * epoch * decay) + 0.05 + gap
                accuracy = float(np.clip(1 - loss / 2.4, 0, 1))
                for metric, value in (("loss", loss), ("accuracy", accuracy)):
                    metrics.append(
                        {
                            "variant": variant,
                            "epoch": epoch,
                            "split": split,
                            "metric": metric,
                            "value": value,
                        }
                    )

    return Tables(
        stats=stats,
        histograms=pd.concat(histograms, ignore_index=True),
        spectra=pd.concat(spectra, ignore_index=True),
        metrics=pd.DataFrame(metrics),
    )
