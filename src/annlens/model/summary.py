"""The printed summary table of a model."""

from __future__ import annotations

from typing import Any


def summary_table(model: Any) -> str:
    """Layer, type, output shape, parameters, activation and init, one row a layer."""
    header = ("layer", "type", "output", "params", "activation", "init")
    rows = [header]
    width = model.in_features
    for layer in model.layers:
        width = layer.out_features(width)
        described = layer.describe()
        rows.append(
            (
                layer.name,
                type(layer).__name__,
                f"(batch, {width})",
                f"{layer.parameter_count():,}",
                described["activation"],
                described["init"],
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    rule = "-" * max(len(line) for line in lines)
    total = (
        f"{model.parameter_count():,} parameters, dtype {model.dtype.name}, "
        f"input (batch, {model.in_features})"
    )
    return "\n".join([lines[0], rule, *lines[1:], rule, total])
