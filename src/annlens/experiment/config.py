"""Reading, overriding, validating and resolving experiment files.

``load_config(path, overrides)`` reads TOML (the standard library's tomllib),
applies ``--set key=value`` overrides, and validates against the schema,
turning pydantic's errors into one message per problem that names the key,
the value and what is allowed, with a did-you-mean for misspelt keys.
``resolve_variants(experiment)`` gives one complete experiment per variant.
"""

from __future__ import annotations

import copy
import sys
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from annlens.errors import ConfigError, did_you_mean
from annlens.experiment.schema import Experiment

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


def default_experiment_text() -> str:
    """The embedded default experiment, as TOML text."""
    return resources.files("annlens.experiment").joinpath("default.toml").read_text()


def read_toml(path: str | Path | None) -> dict[str, Any]:
    """Parse an experiment file (the embedded default when ``path`` is None)."""
    if path is None:
        return tomllib.loads(default_experiment_text())
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"experiment file {str(file)!r} does not exist")
    try:
        return tomllib.loads(file.read_text())
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(
            f"experiment file {str(file)!r} is not valid TOML: {error}"
        ) from None


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split ``"optimizer.lr=0.01"`` into a key path and a TOML-typed value."""
    if "=" not in text:
        raise ConfigError(f"--set takes key=value, got {text!r}")
    key, raw = text.split("=", 1)
    path = [part for part in key.strip().split(".") if part]
    if not path:
        raise ConfigError(f"--set {text!r} names no key")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return path, value


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """A copy of ``raw`` with every ``key=value`` of ``overrides`` set."""
    result = copy.deepcopy(raw)
    for text in overrides:
        path, value = parse_override(text)
        node = result
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"--set {text!r}: {part!r} is not a section")
            node = child
        node[path[-1]] = value
    return result


def validate(raw: dict[str, Any], source: str = "experiment") -> Experiment:
    """Validate ``raw`` against the schema, with readable errors."""
    try:
        return Experiment.model_validate(raw)
    except ValidationError as error:
        problems = [_describe(item, raw) for item in error.errors()]
        raise ConfigError(
            f"{source} has {len(problems)} problem(s):\n  " + "\n  ".join(problems)
        ) from None


def _describe(item: Any, raw: dict[str, Any]) -> str:
    """One validation problem as ``key: what is wrong``."""
    location = [str(part) for part in item["loc"]]
    key = ".".join(location)
    if item["type"] == "extra_forbidden":
        known = _known_keys(location[:-1])
        hint = did_you_mean(location[-1], known)
        listing = f"; allowed: {', '.join(known)}" if known else ""
        return f"{key}: unknown key{hint}{listing}"
    return f"{key}: {item['msg']} (got {item.get('input')!r})"


def _known_keys(location: list[str]) -> list[str]:
    """The field names of the section at ``location`` in the schema."""
    model: Any = Experiment
    for part in location:
        if part.isdigit():
            continue
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return []
        model = _model_in(field.annotation)
        if model is None:
            return []
    return list(getattr(model, "model_fields", {}))


def _model_in(annotation: Any) -> Any:
    """The pydantic model inside an annotation like ``list[X] | None``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in getattr(annotation, "__args__", ()):
        found = _model_in(argument)
        if found is not None:
            return found
    return None


def load_config(
    path: str | Path | None = None, overrides: list[str] | None = None
) -> Experiment:
    """Read, override and validate an experiment (the default one when no path)."""
    source = str(path) if path is not None else "the default experiment"
    raw = apply_overrides(read_toml(path), overrides or [])
    return validate(raw, source)


def _deep_merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            if "name" in value and value.get("name") != merged[key].get("name"):
                merged[key] = copy.deepcopy(value)  # another object: start afresh
            else:
                merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def resolve_variants(experiment: Experiment) -> list[tuple[str, Experiment]]:
    """One complete experiment per variant (just the base when there are none)."""
    base = experiment.model_dump(exclude={"variants"})
    if not experiment.variants:
        return [("base", experiment)]
    resolved = []
    for variant in experiment.variants:
        changes = variant.model_dump(exclude_none=True, exclude={"name", "description"})
        merged = _deep_merge(base, changes)
        resolved.append((variant.name, validate(merged, f"variant {variant.name!r}")))
    return resolved
