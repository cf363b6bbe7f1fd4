"""Nested state split into JSON and named arrays, and joined back.

Optimizer, schedule and collector state are nested dicts and lists whose
leaves are numbers, strings and NumPy arrays. :func:`split_arrays` moves every
numeric array into a flat ``{name: array}`` dict (for the safetensors file) and
leaves ``{"__tensor__": name}`` in its place in a JSON-ready tree;
:func:`join_arrays` undoes it. Names are the path of keys joined by dots,
``optimizer.state.dense_0.W.m``, made unique should two paths join alike.
Text arrays stay in the JSON as ``{"__text__": [...]}``. Nothing is pickled:
a leaf of any other type is refused, naming its path.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray

from annlens.errors import CheckpointError

TENSOR = "__tensor__"
TEXT = "__text__"
MARKERS = (TENSOR, TEXT)


def split_arrays(tree: Any, prefix: str) -> tuple[Any, dict[str, NDArray[Any]]]:
    """Return ``(json_tree, arrays)`` for a nested ``tree``.

    Parameters
    ----------
    tree : dict, list, tuple, array or scalar
        The state; dict keys must be strings. Tuples become lists.
    prefix : str
        The first part of every array name (``"optimizer"``).

    Raises
    ------
    CheckpointError
        A leaf that is neither a number, a string, None nor an array of
        numbers, booleans or text, or a key that is not a string.
    """
    arrays: dict[str, NDArray[Any]] = {}

    def visit(node: Any, path: tuple[str, ...]) -> Any:
        where = ".".join(path)
        if isinstance(node, Mapping):
            out = {}
            for key, value in node.items():
                if not isinstance(key, str) or key in MARKERS:
                    raise CheckpointError(
                        f"cannot store key {key!r} at {where!r}: keys must be "
                        f"strings other than {MARKERS}"
                    )
                out[key] = visit(value, (*path, key))
            return out
        if isinstance(node, (list, tuple)):
            return [visit(value, (*path, str(i))) for i, value in enumerate(node)]
        if isinstance(node, np.ndarray):
            if node.dtype.kind in "US":
                return {TEXT: node.astype(str).tolist()}
            if node.dtype.kind not in "biuf":
                raise CheckpointError(
                    f"cannot store the {node.dtype} array at {where!r}; "
                    "arrays must hold numbers, booleans or text"
                )
            name = _unique(where, arrays)
            # np.array, not np.ascontiguousarray, which turns a 0-d array 1-d
            arrays[name] = np.array(
                node.astype(node.dtype.newbyteorder("=")), order="C"
            )
            return {TENSOR: name}
        if isinstance(node, np.generic):
            return node.item()
        if node is None or isinstance(node, (bool, int, float, str)):
            return node
        raise CheckpointError(
            f"cannot store {type(node).__name__} at {where!r}: checkpoints hold "
            "numbers, strings, lists, dicts and arrays only (nothing is pickled)"
        )

    return visit(tree, (prefix,)), arrays


def _unique(name: str, taken: Mapping[str, Any]) -> str:
    candidate, count = name, 1
    while candidate in taken:
        candidate, count = f"{name}#{count}", count + 1
    return candidate


def join_arrays(tree: Any, arrays: Mapping[str, NDArray[Any]]) -> Any:
    """Put the arrays named in ``tree`` back in place (copies).

    Raises
    ------
    CheckpointError
        The tree names an array that ``arrays`` lacks.
    """
    if isinstance(tree, dict):
        if set(tree) == {TENSOR}:
            name = tree[TENSOR]
            if name not in arrays:
                raise CheckpointError(f"the tensors file lacks {name!r}")
            return np.array(arrays[name], copy=True)
        if set(tree) == {TEXT}:
            return np.array(tree[TEXT], dtype=str)
        return {key: join_arrays(value, arrays) for key, value in tree.items()}
    if isinstance(tree, list):
        return [join_arrays(value, arrays) for value in tree]
    return tree


def tensor_names(tree: Any) -> list[str]:
    """Every array name referred to in a JSON tree."""
    if isinstance(tree, dict):
        if set(tree) == {TENSOR}:
            return [tree[TENSOR]]
        return [name for value in tree.values() for name in tensor_names(value)]
    if isinstance(tree, list):
        return [name for value in tree for name in tensor_names(value)]
    return []
