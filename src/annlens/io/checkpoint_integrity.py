"""The integrity record of a checkpoint's ``meta.json``: its own sha256.

The tensors file is covered by the sha256 that ``meta.json`` records for it;
this module covers ``meta.json`` itself, so that an edited field (the epochs
done, a hyperparameter, the step, the tensors' recorded hash) is refused
instead of trusted. A saved ``meta.json`` ends with::

    "integrity": {
      "algorithm": "sha256",
      "canonical": "json, sorted keys, no spaces, UTF-8",
      "sha256": "<64 hex digits>",
      "parts": {"format": "<16 hex digits>", ..., "extra.trainer.epochs_done": ...}
    }

``sha256`` is the digest of every other field of ``meta.json`` written as
canonical JSON (:func:`canonical_json`), so it does not depend on indentation
or key order: a file reformatted by hand still loads, one whose content
changed does not. ``parts`` holds a short digest of each field down to three
levels (``extra``, ``extra.trainer``, ``extra.trainer.epochs_done``); it only
locates a change for the error message, the check is the full ``sha256``.

Notes
-----
A digest guards against edits and damage, not against a forger: whoever edits
``meta.json`` on purpose can recompute it, as there is no secret key. Writing
and reading the rest of a checkpoint is in :mod:`annlens.io.checkpoint` and
:mod:`annlens.io.checkpoint_load`.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from annlens.errors import CheckpointError
from annlens.io.checkpoint_format import META_FILE

INTEGRITY = "integrity"
ALGORITHM = "sha256"
CANONICAL = "json, sorted keys, no spaces, UTF-8"
PART_DEPTH = 3
PART_DIGITS = 16
SHOWN = 5


def canonical_json(value: Any) -> bytes:
    """``value`` as JSON with sorted keys and no spaces, encoded as UTF-8.

    Floats are written by Python's ``repr``, which reads back to the same
    float, so a value parsed from a file and written again gives the same
    bytes; NaN and Inf are written as ``NaN`` and ``Infinity``, as in the
    file itself.
    """
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8")


def sha256_of(value: Any) -> str:
    """The sha256 (hex) of :func:`canonical_json` of ``value``."""
    return hashlib.sha256(canonical_json(value)).hexdigest()


def part_digests(body: dict[str, Any]) -> dict[str, str]:
    """Short digests of each field down to :data:`PART_DEPTH` levels, by dotted name."""
    parts: dict[str, str] = {}

    def walk(value: Any, name: str, depth: int) -> None:
        parts[name] = sha256_of(value)[:PART_DIGITS]
        if isinstance(value, dict) and depth < PART_DEPTH:
            for key, item in value.items():
                walk(item, f"{name}.{key}", depth + 1)

    for key, value in body.items():
        walk(value, str(key), 1)
    return parts


def seal_meta(meta: dict[str, Any]) -> dict[str, Any]:
    """``meta`` with its integrity record last (replacing any record it had).

    ``meta`` must be what a reader will parse: plain JSON values, as
    ``json.loads(json.dumps(meta))`` gives.
    """
    body = {key: value for key, value in meta.items() if key != INTEGRITY}
    record = {
        "algorithm": ALGORITHM,
        "canonical": CANONICAL,
        "sha256": sha256_of(body),
        "parts": part_digests(body),
    }
    return {**body, INTEGRITY: record}


def verify_meta(meta: dict[str, Any], where: str) -> None:
    """Refuse a ``meta.json`` whose content does not match its integrity record.

    Raises
    ------
    CheckpointError
        The record is missing or damaged, or the content (or the record
        itself) changed after it was saved; the message names the fields that
        differ.
    """
    record = meta.get(INTEGRITY)
    if record is None:
        raise CheckpointError(
            f"{where}: {META_FILE} lacks its {INTEGRITY!r} record (the sha256 of "
            "its content), so an edit to it could not be detected; nothing was "
            "loaded"
        )
    if (
        not isinstance(record, dict)
        or record.get("algorithm") != ALGORITHM
        or not isinstance(record.get("sha256"), str)
        or not isinstance(record.get("parts"), dict)
    ):
        raise CheckpointError(
            f"{where}: the {INTEGRITY!r} record of {META_FILE} is damaged: "
            f"expected 'algorithm': {ALGORITHM!r}, a 'sha256' and 'parts', got "
            f"{_short(record)}; nothing was loaded"
        )

    body = {key: value for key, value in meta.items() if key != INTEGRITY}
    whole = sha256_of(body)
    parts = part_digests(body)
    if whole == record["sha256"] and parts == record["parts"]:
        return
    changed = _changed(parts, record["parts"])
    if whole != record["sha256"] and changed:
        detail = f"changed since it was saved: {changed}"
    elif whole != record["sha256"]:
        detail = (
            f"its content no longer gives the recorded sha256 "
            f"{_short(record['sha256'])}"
        )
    else:
        detail = f"the part digests of {changed or 'the record'} were altered"
    raise CheckpointError(
        f"{where}: {META_FILE} does not match the sha256 recorded in its "
        f"{INTEGRITY!r} record: {detail} (edited or damaged after saving); "
        "nothing was loaded"
    )


def _changed(parts: dict[str, str], recorded: dict[str, Any]) -> str:
    """The most specific names whose digests differ, as a short list."""
    names = [
        name if name in recorded else f"{name} (added)"
        for name in parts
        if recorded.get(name) != parts[name]
    ]
    names += [f"{name} (removed)" for name in recorded if name not in parts]
    deepest = [
        name
        for name in names
        if not any(other.startswith(f"{name}.") for other in names)
    ]
    shown = ", ".join(deepest[:SHOWN])
    more = len(deepest) - SHOWN
    return shown + (f" and {more} more" if more > 0 else "")


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
