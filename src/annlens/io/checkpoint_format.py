"""The names a checkpoint folder is built from: format, version, file names.

Shared by saving (:mod:`annlens.io.checkpoint`, whose docstring describes the
layout) and loading (:mod:`annlens.io.checkpoint_load`).
"""

from __future__ import annotations

from typing import Any

from numpy.typing import NDArray

FORMAT = "annlens-checkpoint"
# 2: meta.json carries the sha256 of its own content (annlens.io.checkpoint_integrity);
# version 1 had none and is loaded only after annlens.io.upgrade_checkpoint
FORMAT_VERSION = 2
TENSORS_FILE = "tensors.safetensors"
META_FILE = "meta.json"

Arrays = dict[str, NDArray[Any]]
