"""Reading, overriding, validating and resolving experiment files.

``load_config(path, overrides)`` reads TOML (the standard library's tomllib),
refusing a file that holds no settings at all, applies ``--set key=value``
overrides (a table value merges into the table it names), and validates
against the schema,
turning pydantic's errors into one message per problem that names the key,
the value and what is allowed, with a did-you-mean for misspelt keys.
``resolve_variants(experiment)`` gives one complete experiment per variant.
"""

from __future__ import annotations

import copy
import re
import sys
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from annlens.errors import ConfigError, did_you_mean
from annlens.experiment.overrides import check_set_values
from annlens.experiment.schema import Experiment

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


def default_experiment_text() -> str:
    """The embedded default experiment, as TOML text."""
    return resources.files("annlens.experiment").joinpath("default.toml").read_text()


def read_toml(path: str | Path | None) -> dict[str, Any]:
    """Parse an experiment file (the embedded default when ``path`` is None).

    A file without a single setting (empty, or only comments) is refused: it
    is far more often the wrong file, or one cut short, than a wish for the
    schema's defaults, which a file saying only ``name = "..."`` still gets.
    """
    if path is None:
        return tomllib.loads(default_experiment_text())
    file = Path(path)
    if file.is_dir():
        raise ConfigError(f"experiment file {str(file)!r} is a folder, not a file")
    if not file.is_file():
        raise ConfigError(f"experiment file {str(file)!r} does not exist")
    try:
        raw = tomllib.loads(file.read_text(encoding="utf-8"))
    except UnicodeDecodeError as error:
        raise ConfigError(
            f"experiment file {str(file)!r} is not UTF-8 text ({error.reason} "
            f"at byte {error.start}); help: save it as UTF-8"
        ) from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(
            f"experiment file {str(file)!r} is not valid TOML: {error}"
        ) from None
    if not raw:
        raise ConfigError(
            f"experiment file {str(file)!r} holds no settings (it is empty or "
            "only comments); expected at least one key, such as name = "
            '"..." or a [data] section; help: `annlens run` without a file '
            "runs the built-in experiment"
        )
    return raw


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
    """A copy of ``raw`` with every ``key=value`` of ``overrides`` set.

    A table value merges into the table already there, as a variant's does:
    ``model={hidden=[8]}`` changes ``model.hidden`` and keeps the other keys
    of ``[model]``; a table naming another object (``optimizer={name="sgd"}``
    when the file's optimizer is adam) replaces it, since the old object's
    settings would not fit the new one. Any other value replaces the key.
    A value that is not TOML is taken as text, except where text cannot be
    meant (see :mod:`annlens.experiment.overrides`).
    """
    check_set_values(overrides)
    result = copy.deepcopy(raw)
    for text in overrides:
        path, value = parse_override(text)
        node: Any = result
        for depth, part in enumerate(path[:-1]):
            if isinstance(node, dict) and part not in node:
                _check_missing(part, path, depth, text)
            node = _step(node, part, path[: depth + 1], text)
        key = path[-1]
        if isinstance(node, list):
            node[_index(node, key, path, text)] = value
        elif isinstance(value, dict) and isinstance(node.get(key), dict):
            node[key] = _deep_merge({key: node[key]}, {key: value})[key]
        else:
            node[key] = value
    return result


#: Keys whose value is an object's name or a table with its name and settings.
NAMED_KEYS = ("init",)


def _check_missing(part: str, path: list[str], depth: int, text: str) -> None:
    """Refuse a ``--set`` that reaches through ``part``, a key the file lacks,
    into what cannot be made from nothing: a position in a list, or a setting
    of a named object with no name."""
    key = ".".join(path[: depth + 1])
    below = path[depth + 1]
    if below.isdigit():
        raise ConfigError(
            f"--set {text!r}: {key} is not set, so it has no position {below}; "
            f"help: set the list whole, --set '{key}=[...]'"
        )
    if part in NAMED_KEYS and below != "name":
        raise ConfigError(
            f"--set {text!r}: {key} is not set, so there is no {part} to add "
            f"{below} to; help: name it first, --set {key}.name=normal --set {text}"
        )


def _step(node: Any, part: str, where: list[str], text: str) -> Any:
    """The child ``part`` of ``node`` for ``--set``, made a table when needed.

    An initialiser given by name (``init = "glorot_uniform"``) becomes the
    table ``{name = "glorot_uniform"}``, so that ``init.name`` replaces the
    name and ``init.std`` adds a setting to it.
    """
    key = ".".join(where)
    if isinstance(node, list):
        return node[_index(node, part, where, text)]
    child = node.setdefault(part, {})
    if isinstance(child, str) and part in NAMED_KEYS:
        child = node[part] = {"name": child}
    if isinstance(child, (dict, list)):
        return child
    raise ConfigError(
        f"--set {text!r}: {key} is {child!r} here, a single "
        f"{type(child).__name__} value, not a table with keys of its own; "
        f"help: set it whole, --set {key}=..."
    )


def _index(node: list[Any], part: str, where: list[str], text: str) -> int:
    """A list position of a dotted key (``model.layers.0.units``)."""
    key = ".".join(where[:-1])
    if not part.isdigit() or int(part) >= len(node):
        raise ConfigError(
            f"--set {text!r}: {key} is a list of {len(node)}; the part after it "
            f"must be a position 0..{len(node) - 1}, got {part!r}"
        )
    return int(part)


def validate(
    raw: dict[str, Any], source: str = "experiment", prefix: str = ""
) -> Experiment:
    """Validate ``raw`` against the schema, with readable errors.

    ``source`` names what is validated in the message, ``prefix`` goes in
    front of every key (``"variants.1."`` for a variant's overrides).

    Raises
    ------
    ConfigError
        One line per wrong key (the only line when there is one): its dotted
        path, what is wrong, the value that arrived and what is allowed (the
        known keys, with a did-you-mean, for an unknown one).
    """
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{source} must be a table of sections (a dict), got {type(raw).__name__}"
        )
    try:
        return Experiment.model_validate(raw)
    except ValidationError as error:
        problems = [prefix + line for line in _problems(error.errors())]
        if len(problems) == 1:
            raise ConfigError(f"{source}: {problems[0]}") from None
        raise ConfigError(
            f"{source} has {len(problems)} problems:\n  " + "\n  ".join(problems)
        ) from None


def _problems(items: list[Any]) -> list[str]:
    """One line per key; the alternatives of a union (``str | Named``) joined."""
    grouped: dict[str, list[Any]] = {}
    for item in items:
        loc = tuple(item["loc"])
        if item["type"] == "extra_forbidden":  # the last part is the key itself
            key = ".".join(filter(None, [_key_of(loc[:-1]), str(loc[-1])]))
        else:
            key = _key_of(loc)
        grouped.setdefault(key, []).append(item)
    lines = []
    for key, group in grouped.items():
        location = key.split(".") if key else []
        first = group[0]
        if first["type"] == "extra_forbidden":
            known = _known_keys(location[:-1])
            hint = did_you_mean(location[-1], known)
            listing = f"; allowed: {', '.join(known)}" if known else ""
            lines.append(f"{key}: unknown key{hint}{listing}")
            continue
        wanted = []
        for item in group:
            message = str(item["msg"]).removeprefix("Value error, ")
            if item["type"] == "string_pattern_mismatch":  # a variant's name
                message = (
                    "Input should be a plain name: letters, digits, '_', '-' "
                    "and '.' (not first), as it names checkpoints"
                )
            message = re.sub(
                r"a valid dictionary or instance of \w+",
                "a table (name = ..., with its settings)",
                message,
            )
            if message not in wanted:
                wanted.append(message)
        if len(wanted) > 1:
            alternatives = [m.removeprefix("Input should be ") for m in wanted]
            text = "Input should be " + " or ".join(alternatives)
        else:
            text = wanted[0]
        lines.append(f"{key or '(top level)'}: {text} (got {first.get('input')!r})")
    return lines


def _key_of(loc: tuple[Any, ...]) -> str:
    """The dotted key of an error location, without pydantic's union tags.

    An error inside ``init: str | Named`` is located at ``model.init.str`` and
    ``model.init.Named``; the schema tells the field names from the tags.
    """
    parts: list[str] = []
    model: Any = Experiment
    for part in loc:
        if isinstance(part, int):
            parts.append(str(part))
            continue
        fields = getattr(model, "model_fields", None)
        if fields is None:  # a free table (a variant's sections), or a value
            if part not in _TAGS:  # such as target: str | int, tagged "str", "int"
                parts.append(str(part))
            continue
        field = fields.get(part)
        if field is None:
            if not _is_tag(part):
                parts.append(str(part))
            continue
        parts.append(str(part))
        model = _model_in(field.annotation)
    return ".".join(parts)


def _is_tag(part: str) -> bool:
    """Whether a location part names a type of a union rather than a key."""
    return part in _TAGS or "[" in part or part[:1].isupper()


_TAGS = {"str", "int", "float", "bool", "none", "list", "dict"}


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
    """Read, override and validate an experiment (the default one when no path).

    Every variant is resolved and validated too, so that a wrong key anywhere
    is refused here. Names and settings checked by the objects they build
    (optimizer, loss, schedule, initialiser, activation, data set) are
    checked when the experiment is built, still before anything trains.
    """
    source = str(path) if path is not None else "the default experiment"
    raw = read_toml(path)
    if path is not None:
        raw = resolve_data_paths(raw, Path(path).resolve().parent)
    raw = resolve_data_paths(apply_overrides(raw, overrides or []), Path.cwd())
    experiment = validate(raw, source)
    resolve_variants(experiment)  # a bad key inside a variant is refused now too
    return experiment


def resolve_data_paths(raw: dict[str, Any], folder: Path) -> dict[str, Any]:
    """A copy of ``raw`` whose relative ``data.path`` (and ``target_path``)
    values are absolute.

    A relative path is taken against ``folder``: the experiment file's folder
    for the file's own paths, the working directory for a ``--set`` value.
    The absolute path goes into the run's config.toml, so that the run
    resumes from any directory. Variants' ``data.path`` values are resolved
    too; anything that is not a string is left for validation to refuse.
    """
    result = copy.deepcopy(raw)
    sections = [result.get("data")]
    variants = result.get("variants")
    if isinstance(variants, list):
        sections += [v.get("data") for v in variants if isinstance(v, dict)]
    for section in sections:
        for key in ("path", "target_path"):
            if isinstance(section, dict) and isinstance(section.get(key), str):
                file = Path(section[key]).expanduser()
                if not file.is_absolute():
                    section[key] = str((folder / file).resolve())
    return result


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
    # only the keys the file set, so that the schema still tells them from
    # defaults (model.layers refuses the stack keys only when they are set)
    base = experiment.model_dump(exclude={"variants"}, exclude_unset=True)
    if not experiment.variants:
        return [("base", experiment)]
    resolved = []
    for position, variant in enumerate(experiment.variants):
        changes = variant.model_dump(exclude_none=True, exclude={"name", "description"})
        merged = _deep_merge(base, changes)
        source = f"variant {variant.name!r}"
        resolved.append(
            (variant.name, validate(merged, source, f"variants.{position}."))
        )
    return resolved
