"""``--set key=VALUE``: a VALUE that is not TOML, refused where it cannot be text.

``VALUE`` is read as TOML (``0.01``, ``true``, ``[8, 8]``, ``{name = "sgd"}``,
``"text"``); what is not valid TOML is taken as plain text, so that
``--set optimizer.name=adam`` needs no quotes. That convenience hides a typo
in a number, a list or a table (``1e-3.``, ``[8,``, ``True``) until the value
reaches the key as text. :func:`check_set_values` refuses such a value at
once, naming the key and what it expects:

- when the schema says the key takes no text (an integer, a number, true or
  false, a list or a table), whatever the value;
- when the value starts as a list or a table does (``[`` or ``{``);
- for a key the schema does not type (an optimizer's or a schedule's settings,
  a variant's sections), when the value looks like a number or true/false.

It leaves out what the schema checks anyway once the value is text: a word
where a name is expected is a name, right or wrong.
"""

from __future__ import annotations

import re
import sys
import typing
from typing import Any

from pydantic import BaseModel

from annlens.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

# what a number, true or false looks like when mistyped: 1e-3., .5, 0x1g, True
NUMBER_LIKE = re.compile(r"[+-]?(\d|\.\d|inf\b|nan\b)|(true|false)$", re.IGNORECASE)

KINDS = {
    bool: ("true or false", "true"),
    int: ("an integer", "3"),
    float: ("a number", "0.01"),
    list: ("a list", "[8, 8]"),
    dict: ("a table", '{name = "normal", std = 0.1}'),
}


def check_set_values(overrides: list[str]) -> None:
    """Refuse a ``--set`` whose value is not TOML where text cannot be meant.

    Raises
    ------
    ConfigError
        Naming the ``--set``, the key, what it expects and how to write it.
    """
    for text in overrides:
        if "=" not in text:
            continue  # load_config says what --set takes
        key, raw = (part.strip() for part in text.split("=", 1))
        try:
            tomllib.loads(f"v = {raw}")
            continue
        except tomllib.TOMLDecodeError as error:
            reason = str(error)
        path = [part for part in key.split(".") if part]
        kinds = _kinds(path)
        if kinds is None:  # a key the schema does not type
            refused = raw[:1] in "[{" or bool(NUMBER_LIKE.match(raw))
        else:
            refused = str not in kinds or raw[:1] in "[{"
        if not refused:
            continue
        raise ConfigError(_message(text, key, raw, kinds, reason))


def _message(
    text: str, key: str, raw: str, kinds: set[type] | None, reason: str
) -> str:
    if kinds is None or str in kinds:
        # the value's own look says what it was meant to be
        meant = {"[": list, "{": dict}.get(raw[:1])
        wanted = [KINDS[meant]] if meant else [KINDS[float], KINDS[bool]]
        expected = "it looks like " + " or ".join(name for name, _ in wanted)
    else:
        wanted = [KINDS[kind] for kind in KINDS if kind in kinds]
        expected = f"{key} expects " + " or ".join(name for name, _ in wanted)
    example = " or ".join(f"{key}={sample}" for _, sample in wanted)
    return (
        f"--set {text!r}: {raw!r} is not a valid TOML value ({reason}); "
        f"{expected}, but it would arrive as the text {raw!r}; help: write it in "
        f"TOML, as in {example}; text is written in quotes: "
        f"--set '{key}=\"...\"'"
    )


def _kinds(path: list[str]) -> set[type] | None:
    """The plain types the schema allows at ``path``; None where it is untyped."""
    from annlens.experiment.schema import Experiment

    model: Any = Experiment
    annotation: Any = None
    for depth, part in enumerate(path):
        if model is None:
            return None
        if part.isdigit():  # a position in a list of sections
            continue
        field = model.model_fields.get(part)
        if field is None:
            return None
        annotation = field.annotation
        if depth < len(path) - 1:
            model = _model_in(annotation)
    if annotation is None:
        return None
    return _plain(annotation)


def _plain(annotation: Any) -> set[type] | None:
    """``int | None`` -> {int}; a Literal of strings -> {str}; a model -> {dict}."""
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return {type(value) for value in typing.get_args(annotation)}
    if origin is typing.Annotated:
        return _plain(typing.get_args(annotation)[0])
    if origin in (list, tuple, set):
        return {list}
    if origin is dict:
        return {dict}
    if origin is not None:  # a union
        kinds: set[type] = set()
        for argument in typing.get_args(annotation):
            found = _plain(argument)
            if found is None:
                return None
            kinds |= found
        return kinds
    if annotation is type(None):
        return set()
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return {dict}
    if annotation in (bool, int, float, str):
        # an integer is also a number where a float is expected
        return {annotation}
    return None


def _model_in(annotation: Any) -> Any:
    """The pydantic model inside an annotation like ``list[X] | None``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in typing.get_args(annotation):
        found = _model_in(argument)
        if found is not None:
            return found
    return None
