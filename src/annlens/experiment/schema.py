"""The experiment file's schema: every section, key, type, default and range.

An experiment file is TOML. Its sections are ``data``, ``model``, ``loss``,
``optimizer``, ``schedule``, ``regularization``, ``training``, ``collect``,
``output``, plus top-level ``name``, ``description``, ``seed`` and a list of
``variants``, each a name and partial sections that override the base. The
schema refuses unknown keys, wrong types and out-of-range values; the messages
are made readable by :mod:`annlens.experiment.config`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from annlens.errors import did_you_mean

NonNegative = Annotated[int, Field(ge=0)]


class Section(BaseModel):
    """A config section: unknown keys and values of another type are refused.

    Types are strict: ``epochs = "3"`` or ``epochs = true`` is an error, not 3
    or 1; only an integer where a float is expected is taken as it is.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True, strict=True)


class Named(BaseModel):
    """A section made of a ``name`` and free settings checked by the named object.

    The optimizer, schedule, loss and initialiser sections take the keyword
    arguments of the object they name; those objects refuse unknown ones with
    the known list, when the experiment is built, before anything runs.
    """

    model_config = ConfigDict(extra="allow", strict=True)

    name: str

    def settings(self) -> dict[str, Any]:
        """The keyword arguments after ``name``."""
        return dict(self.model_extra or {})


class DataSection(Section):
    name: str = "digits"
    path: str | None = None
    # a column name, or a column's index (from 0) where the file has no names
    # (a plain 2-D .npy array)
    target: str | int | None = None
    # a .npy file of targets, (samples,) or (samples, outputs), for the
    # features in path
    target_path: str | None = None
    drop_nan: bool = False
    n_samples: int | None = Field(default=None, gt=0)
    noise: float | None = Field(default=None, ge=0.0)
    task: Literal["classification", "regression"] | None = None
    val_fraction: float = Field(default=0.2, ge=0.0, lt=1.0)
    test_fraction: float = Field(default=0.2, ge=0.0, lt=1.0)
    standardize: bool = True
    # regression targets only: the loss is then in standardised units, the
    # metrics mae and rmse in the target's own units
    standardize_target: bool = True


class LayerSpec(Section):
    """One explicit layer of ``model.layers``.

    Each type takes only its own keys (:data:`LAYER_KEYS`); any other key,
    known to another type or to none, is refused rather than ignored.
    """

    # every key is checked against the type's own list in _keys_of_its_type
    model_config = ConfigDict(extra="allow", validate_assignment=True, strict=True)

    type: Literal["dense", "activation", "batchnorm", "dropout"]
    units: int | None = Field(default=None, gt=0)
    activation: str | None = None
    init: str | Named | None = None
    bias: bool = True
    rate: float | None = Field(default=None, ge=0.0, lt=1.0)
    momentum: float | None = Field(default=None, ge=0.0, le=1.0)
    name: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _known_type(cls, given: Any) -> Any:
        if not isinstance(given, dict):
            return given
        types = list(LAYER_KEYS)
        if "type" not in given:
            close = [key for key in given if did_you_mean(str(key), ["type"])]
            hint = f" ({close[0]!r} given: did you mean 'type'?)" if close else ""
            raise ValueError(f"a layer needs type = one of {', '.join(types)}{hint}")
        return given

    @field_validator("type", mode="before")
    @classmethod
    def _type_named(cls, kind: Any) -> Any:
        types = list(LAYER_KEYS)
        if isinstance(kind, str) and kind not in types:
            raise ValueError(
                f"unknown layer type{did_you_mean(kind, types)}; "
                f"allowed: {', '.join(types)}"
            )
        return kind

    @model_validator(mode="after")
    def _keys_of_its_type(self) -> LayerSpec:
        accepted = LAYER_KEYS[self.type]
        article = "an" if self.type == "activation" else "a"
        fields = [
            key for key in type(self).model_fields if key in self.model_fields_set
        ]
        given = [*fields, *(self.model_extra or {})]
        refused = [key for key in given if key not in accepted]
        if refused:
            keys = ", ".join(f"{key!r}{did_you_mean(key, accepted)}" for key in refused)
            raise ValueError(
                f"{article} {self.type} layer does not take {keys}; "
                f"it accepts {', '.join(accepted)}"
            )
        for key in REQUIRED_KEYS[self.type]:
            if key not in given:
                raise ValueError(f"{article} {self.type} layer needs {key}=")
        return self


# the keys each layer type of model.layers takes, and those it needs
LAYER_KEYS = {
    "dense": ("type", "units", "activation", "init", "bias", "name"),
    "activation": ("type", "activation", "name"),
    "batchnorm": ("type", "momentum", "name"),
    "dropout": ("type", "rate", "name"),
}
REQUIRED_KEYS = {
    "dense": (),
    "activation": ("activation",),
    "batchnorm": (),
    "dropout": ("rate",),
}

# the model keys that describe the stack of hidden widths, unused with layers
STACK_KEYS = (
    "hidden",
    "activation",
    "init",
    "output_activation",
    "batchnorm",
    "dropout",
)


class ModelSection(Section):
    """A stack of Dense layers (``hidden`` widths) or an explicit ``layers`` list."""

    dtype: Literal["float32", "float64"] = "float32"
    hidden: list[int] = Field(default_factory=lambda: [64, 64])
    activation: str = "relu"
    init: str | Named | None = None
    output_activation: str = "identity"
    batchnorm: bool = False
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    layers: list[LayerSpec] | None = None

    @field_validator("hidden")
    @classmethod
    def _positive_widths(cls, widths: list[int]) -> list[int]:
        if any(width < 1 for width in widths):
            raise ValueError("every hidden width must be >= 1")
        return widths

    @model_validator(mode="after")
    def _layers_or_stack(self) -> ModelSection:
        if self.layers is None:
            return self
        if not self.layers:
            raise ValueError(
                "model.layers is empty; help: list at least one layer, "
                "or leave layers out to build the stack of hidden widths"
            )
        unused = [key for key in STACK_KEYS if key in self.model_fields_set]
        if unused:
            raise ValueError(
                f"model.layers describes the whole model, so {', '.join(unused)} "
                "would be ignored; help: remove them, or set them on each layer"
            )
        return self


class LossSection(Named):
    name: str = "auto"


class OptimizerSection(Named):
    name: str = "adam"


class ScheduleSection(Named):
    name: str = "constant"


class RegularizationSection(Section):
    l1: float = Field(default=0.0, ge=0.0)
    l2: float = Field(default=0.0, ge=0.0)
    clip_norm: float | None = Field(default=None, gt=0.0)
    clip_value: float | None = Field(default=None, gt=0.0)
    max_norm: float | None = Field(default=None, gt=0.0)


class EarlyStoppingSection(Section):
    monitor: str = "val_loss"
    patience: int = Field(default=5, ge=1)
    min_delta: float = Field(default=0.0, ge=0.0)
    restore_best: bool = True


class TrainingSection(Section):
    epochs: int = Field(default=20, ge=1)
    batch_size: int = Field(default=32, ge=1)
    steps: int | None = Field(default=None, ge=1)
    early_stopping: EarlyStoppingSection | None = None
    nan_guard: bool = True


class CollectSection(Section):
    every: int = Field(default=1, ge=1)
    stats: str | list[str] = "default"
    layers: str = "*"
    tensor_steps: list[NonNegative] = Field(default_factory=list)
    tensor_budget_mb: float = Field(default=64.0, gt=0.0)
    # singular values at the recorded parameter steps that are multiples of
    # this; 0: at the start and the end of every epoch
    spectra_every: int = Field(default=0, ge=0)


class OutputSection(Section):
    dir: str = "runs"
    figures: bool = True
    report: bool = True
    checkpoint_every: int = Field(default=1, ge=1)
    tensorboard: bool = False


class Variant(BaseModel):
    """A named set of overrides of the base sections."""

    model_config = ConfigDict(extra="forbid", strict=True)

    # the name labels checkpoints and files, so it is a plain file name, short
    # enough that "<name>-best" fits a file system's 255-byte limit with room
    name: str = Field(pattern=r"^[A-Za-z0-9_-][A-Za-z0-9_.-]*$", max_length=100)
    description: str = ""
    seed: int | None = Field(default=None, ge=0)
    data: dict[str, Any] | None = None
    model: dict[str, Any] | None = None
    loss: dict[str, Any] | None = None
    optimizer: dict[str, Any] | None = None
    schedule: dict[str, Any] | None = None
    regularization: dict[str, Any] | None = None
    training: dict[str, Any] | None = None
    collect: dict[str, Any] | None = None


class Experiment(Section):
    """A whole experiment file."""

    name: str = "experiment"
    description: str = ""
    seed: int = Field(default=0, ge=0)
    data: DataSection = Field(default_factory=DataSection)
    model: ModelSection = Field(default_factory=ModelSection)
    loss: LossSection = Field(default_factory=LossSection)
    optimizer: OptimizerSection = Field(default_factory=OptimizerSection)
    schedule: ScheduleSection = Field(default_factory=ScheduleSection)
    regularization: RegularizationSection = Field(default_factory=RegularizationSection)
    training: TrainingSection = Field(default_factory=TrainingSection)
    collect: CollectSection = Field(default_factory=CollectSection)
    output: OutputSection = Field(default_factory=OutputSection)
    variants: list[Variant] = Field(default_factory=list)

    @field_validator("variants")
    @classmethod
    def _unique_names(cls, variants: list[Variant]) -> list[Variant]:
        names = [variant.name for variant in variants]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"variant names must be unique; repeated: {repeated}")
        return variants
