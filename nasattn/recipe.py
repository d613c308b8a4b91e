"""``Recipe``: every training hyper-parameter, validated (pydantic v2) and YAML round-trippable."""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from nasattn.config import ConfigError, format_validation_error, safe_yaml, to_yaml, validation_problems

NonNegFloat = Annotated[float, Field(ge=0)]


class Recipe(BaseModel):
    """How to train an architecture: optimiser, LR schedule, loss, augmentation, precision and split.

    Override fields with ``recipe.model_copy(update={...})`` (no re-validation) or
    ``Recipe.model_validate({**recipe.model_dump(), ...})`` (validated).
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    # --- budget
    epochs: int = Field(30, ge=1, description="Maximum number of epochs.")
    batch_size: int = Field(64, ge=1, description="Training batch size.")
    eval_batch_size: int = Field(512, ge=1, description="Batch size for validation/test inference.")
    # --- optimiser
    optimizer: Literal["adamw", "adam", "sgd"] = "adamw"
    lr: float = Field(1e-3, gt=0, description="Peak learning rate.")
    weight_decay: float = Field(1e-4, ge=0)
    no_weight_decay: list[Literal["fusion", "norm", "bias"]] = Field(
        default_factory=list,
        description="Parameters trained without weight decay: fusion (the fusion blocks' own, e.g. alpha), "
                    "norm (normalisation layers), bias.")
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum.")
    nesterov: bool = Field(True, description="SGD Nesterov momentum (only when momentum > 0).")
    grad_clip: float | None = Field(None, gt=0, description="Clip the global gradient norm to this value.")
    # --- schedule
    schedule: Literal["none", "cosine", "warm_restarts", "onecycle", "plateau"] = "cosine"
    warmup_epochs: int = Field(0, ge=0, description="Linear warm-up epochs (onecycle: sets pct_start).")
    t0: int = Field(15, ge=1, description="warm_restarts: epochs of the first cycle.")
    t_mult: int = Field(2, ge=1, description="warm_restarts: cycle length multiplier.")
    plateau_patience: int = Field(3, ge=0, description="plateau: epochs without val-accuracy gain before a cut.")
    plateau_factor: float = Field(0.5, gt=0, lt=1, description="plateau: LR multiplier on a cut.")
    early_stopping_patience: int | None = Field(
        None, ge=1, description="Stop after this many epochs without a val-accuracy gain (None: never)."
    )
    # --- loss
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    class_weights: Literal["none", "balanced", "effective_number"] | list[NonNegFloat] = Field(
        "none", description="Loss weights: computed from the training labels, or one weight per class."
    )
    effective_beta: float = Field(0.999, gt=0, lt=1, description="beta of the effective-number weights.")
    # --- data
    augment: Literal["dihedral", "flips", "paper", "none"] = "dihedral"
    crop_pad: int = Field(0, ge=0, description="Random-crop padding in pixels (0: no crop).")
    normalize: Literal["dataset", "imagenet"] = Field(
        "dataset", description="Per-channel mean/std: of the training split, or ImageNet's (the paper's)."
    )
    tta: bool = Field(False, description="Test-time augmentation: average softmax over identity/h-flip/v-flip.")
    split_ratios: tuple[float, float, float] = (0.7, 0.15, 0.15)
    split_seed: int = 42
    stratify: bool = Field(True, description=(
        "true: stratified by class (scikit-learn); false: the paper author's split, torch random_split with "
        "lengths int(r0*n), int(r1*n), rest and Generator().manual_seed(split_seed) over ImageFolder's order."))
    # --- speed
    amp: Literal["auto", "off", "bf16", "fp16"] = Field(
        "auto", description="auto: bf16 autocast on CUDA and on CPUs with native bf16 (AVX512-BF16/AMX), else off. "
                            "off: float32, with TF32 matmuls/convolutions on CUDA. fp16: autocast with a GradScaler "
                            "(also on the CPU, where it runs but is rarely faster than float32).")
    channels_last: Literal["auto", "on", "off"] = Field(
        "auto", description="auto: on for CUDA, and on a CPU under bf16 autocast (float32 CPU training stays NCHW).")
    compile: bool = Field(False, description="torch.compile the model (forward and backward of every training step).")
    compile_mode: Literal["default", "reduce-overhead", "max-autotune", "trace-only"] = Field(
        "default", description="With compile: torch.compile's mode. reduce-overhead: CUDA graphs replay each captured "
                               "step (for small batches where kernel launches dominate; on a CPU it falls back to "
                               "default with a warning). trace-only: TorchDynamo traces without generating code "
                               "(backend eager; checks graph breaks and recompiles quickly).")

    @field_validator("amp", "channels_last", mode="before")
    @classmethod
    def _yaml_switch(cls, v: Any) -> Any:
        """YAML reads a bare off/on as a boolean: amp: off and --set amp=off mean "off"."""
        return {False: "off", True: "on"}.get(v, v) if isinstance(v, bool) else v

    @field_validator("class_weights")
    @classmethod
    def _weights(cls, v: Any) -> Any:
        if isinstance(v, list):
            if not v:
                raise ValueError("class_weights list is empty; give one weight per class")
            if not any(w > 0 for w in v):
                raise ValueError("class_weights: at least one weight must be positive")
        return v

    @field_validator("split_ratios")
    @classmethod
    def _ratios(cls, v: tuple[float, float, float]) -> tuple[float, float, float]:
        if any(r <= 0 for r in v):
            raise ValueError(f"split_ratios must all be > 0 (train, val, test), got {list(v)}")
        if not math.isclose(sum(v), 1.0, abs_tol=1e-6):
            raise ValueError(f"split_ratios must sum to 1, got {list(v)} (sum {sum(v):g})")
        return v

    # ---------------------------------------------------------------- serialisation
    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def to_yaml(self) -> str:
        return to_yaml(self.to_dict())

    @classmethod
    def from_dict(cls, data: Any, source: str | None = None) -> Recipe:
        """Validate ``data``; problems raise ``ConfigError`` with one line per problem, each naming
        ``source`` and the field (an unknown field lists the recipe's fields)."""
        try:
            return cls.model_validate(data if data is not None else {})
        except ValidationError as e:
            raise ConfigError(format_validation_error(e, source, Recipe)) from None

    @classmethod
    def from_yaml(cls, text: str, source: str | None = None) -> Recipe:
        return cls.from_dict(safe_yaml(text, source), source)


def recipe_problems(error: ValidationError) -> list[str]:
    """``field: what is wrong`` for every problem of a Recipe validation; an unknown field lists the allowed ones."""
    return validation_problems(error, Recipe)


def check_recipe_fields(fields: dict[str, Any], epochs_elsewhere: str | None = None) -> None:
    """Raise ``ValueError("field: what is wrong; field: ...")`` listing every problem of ``fields`` (a partial
    recipe) that would not validate.

    ``epochs_elsewhere`` names the field that sets the epochs instead, for files where ``epochs`` is
    not a recipe field (``budget.epochs`` of a study, ``epochs`` of an ablation).
    """
    problems = []
    if epochs_elsewhere and "epochs" in fields:
        problems.append(f"epochs: set the epochs in {epochs_elsewhere}, not in the recipe")
        fields = {k: v for k, v in fields.items() if k != "epochs"}
    try:
        Recipe.model_validate(fields)
    except ValidationError as e:
        problems += recipe_problems(e)
    if problems:
        raise ValueError("; ".join(problems))
