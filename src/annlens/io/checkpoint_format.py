"""The names a checkpoint folder is built from: format, version, file names.

Shared by saving (:mod:`annlens.io.checkpoint`, whose docstring describes the
layout) and loading (:mod:`annlens.io.checkpoint_load`).
"""

from __future__ import annotations

from typing import Any

from numpy.typing import NDArray

FORMAT = "annlens-checkpoint"
FORMAT_VERSION = 1
TENSORS_FILE = "tensors.safetensors"
META_FILE = "meta.json"

Arrays = dict[str, NDArray[Any]]
