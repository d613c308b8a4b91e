"""Ablation files: one YAML that says everything about an ablation study, validated before anything runs.

::

    name: ablation-eurosat
    base: {preset: balanced}          # or {arch: my_arch.yaml} (a spec, or a file with arch: and recipe:)
    include: [no_attention, se_only]  # built-in variants to run (default: every applicable one)
    exclude: [paper_baseline]
    variants:                         # your own: overrides deep-merged into the base
      se_r8: {arch: {stages: {"*": {attention: {type: se, reduction: 8}}}}}
    seeds: [0, 1, 2]
    split_seeds: null                 # e.g. [1, 2, 3]: repeated train/val/test splits, every seed on each
    correction: holm                  # multiple-comparison correction of the p-values: holm, bh or none
    primary_metric: test_accuracy     # the verdict's metric: test_accuracy, kappa or macro_f1 (others: secondary)
    data: eurosat-mini                # folder, .zip or eurosat-mini; relative to this file; null: $NASATTN_DATA
    epochs: 3                         # overrides every variant's recipe.epochs
    recipe: {batch_size: 128}         # fields set in the base's recipe (paper_* variants keep their own)
    width_mult: 0.25
    subset: null
    max_steps_per_epoch: null
    resources: {cpus_per_trial: 1, gpus_per_trial: 0, max_concurrent: 2}
    ray: {address: null}              # null: an embedded Ray; "auto" / "host:port": a running cluster
                                      # (storage: s3://... or shared_fs: true for checkpoints on several nodes)
    output: runs/ablation/eurosat     # relative to the working directory
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from nasattn.config import ConfigError, deep_merge, format_validation_error, read_yaml, resolve_data_source, validate
from nasattn.runfile import RunFile, StrictModel
from nasattn.ablation.variants import plan_variants
from nasattn.presets import list_presets, load_arch_source
from nasattn.recipe import Recipe, check_recipe_fields


def path_component_problem(name: str) -> str | None:
    """Why ``name`` cannot be one plain folder name (None when it can): empty, ``.``/``..``, a leading dot,
    a path separator or a control character."""
    if not name.strip():
        return "is empty"
    if name.startswith("."):
        return "starts with a dot (., .. and hidden folders are not allowed)"
    if any(c in name for c in "/\\") or any(ord(c) < 32 for c in name):
        return "holds a path separator or a control character"
    return None


class BaseChoice(StrictModel):
    """The network every variant is derived from: a preset or an architecture file (exactly one)."""

    preset: str | None = Field(None, description="A preset name (nasattn.presets.list_presets()).")
    arch: str | None = Field(None, description="An ArchSpec YAML, or a file with arch: and recipe: (relative to the ablation file).")

    @field_validator("preset")
    @classmethod
    def _known(cls, v: str | None) -> str | None:
        if v is not None and v not in list_presets():
            raise ValueError(f"unknown preset {v!r}; allowed: {', '.join(list_presets())}")
        return v

    @model_validator(mode="after")
    def _one(self) -> BaseChoice:
        if (self.preset is None) == (self.arch is None):
            raise ValueError("give exactly one of preset: NAME or arch: FILE")
        return self


class CustomVariant(StrictModel):
    arch: dict[str, Any] = Field(default_factory=dict, description="Overrides deep-merged into the base spec.")
    recipe: dict[str, Any] = Field(default_factory=dict, description="Overrides deep-merged into the base recipe.")
    description: str | None = None


class Ablation(RunFile):
    """Everything about one ablation run."""

    name: str = "ablation"
    base: BaseChoice = Field(default_factory=lambda: BaseChoice(preset="balanced"))
    include: list[str] | None = Field(None, description="Built-in variants to run (default: all that apply).")
    exclude: list[str] | None = Field(None, description="Variants not to run.")
    variants: dict[str, CustomVariant] = Field(default_factory=dict, description="Custom variants: name -> overrides.")
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2], min_length=1)
    split_seeds: list[int] | None = Field(
        None, min_length=1, description="Repeated splits: every variant and seed runs on each (recipe.split_seed); "
        "pairs are (seed, split_seed). None: the recipes' split.")
    correction: Literal["holm", "bh", "none"] = Field(
        "holm", description="Multiple-comparison correction over the variants, per metric: holm, bh (Benjamini-Hochberg) or none.")
    primary_metric: Literal["test_accuracy", "kappa", "macro_f1"] = Field(
        "test_accuracy", description="The metric of the verdicts and of the corrected family; the others are secondary.")
    epochs: int | None = Field(None, ge=1, description="Epochs of every variant (overrides the recipes).")
    recipe: dict[str, Any] = Field(default_factory=dict, description="Recipe fields set in the base's recipe "
                                   "(and so in the variants derived from it); paper_* variants keep their preset's own.")
    width_mult: float = Field(1.0, gt=0)
    max_steps_per_epoch: int | None = Field(None, ge=1, description="Cap on training batches per epoch (smoke tests).")
    device: str = "auto"
    checkpoint_every: int = Field(1, ge=0, description="Epochs between trial checkpoints (0: none); resume continues from them.")
    zero_cost: bool = Field(True, description="Score each initial network with the training-free predictors (zc_* columns).")
    output: str = Field("runs/ablation", description="Output folder (relative to the working directory).")

    @field_validator("base", mode="before")
    @classmethod
    def _base_shorthand(cls, v: Any) -> Any:
        if isinstance(v, str):  # base: balanced  /  base: my_arch.yaml
            return {"arch": v} if v.endswith((".yaml", ".yml", ".json")) else {"preset": v}
        return v

    @field_validator("include", "exclude", mode="before")
    @classmethod
    def _names(cls, v: Any) -> Any:
        if isinstance(v, str):
            return [x.strip() for x in v.split(",") if x.strip()]
        return v

    @field_validator("seeds", "split_seeds", mode="before")
    @classmethod
    def _seeds(cls, v: Any) -> Any:
        if isinstance(v, int) and not isinstance(v, bool):
            return [v]
        if isinstance(v, str):
            try:
                return [int(x) for x in v.split(",") if x.strip()]
            except ValueError:
                raise ValueError(f"expected integers like 0,1,2, got {v!r}") from None
        return v

    @field_validator("seeds", "split_seeds")
    @classmethod
    def _unique(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and len(set(v)) != len(v):
            raise ValueError(f"seeds {v} repeat a seed")
        return v

    @field_validator("variants")
    @classmethod
    def _folder_names(cls, v: dict[str, CustomVariant]) -> dict[str, CustomVariant]:
        for name in v:
            if problem := path_component_problem(name):
                raise ValueError(f"variant name {name!r} {problem}: each variant's runs go into OUT/<name>/")
        return v

    @field_validator("recipe")
    @classmethod
    def _recipe(cls, v: dict[str, Any]) -> dict[str, Any]:
        check_recipe_fields(v, epochs_elsewhere="the top-level field epochs")
        return v


@dataclass
class LoadedAblation:
    """A validated ablation plus where it came from (for messages and relative paths)."""

    ablation: Ablation
    source: str
    base_dir: Path

    @property
    def output(self) -> Path:
        return Path(self.ablation.output).expanduser().resolve()

    def resolved_data(self) -> str | None:
        """The data source as trials should see it: bundled names as they are, paths absolute."""
        return resolve_data_source(self.ablation.data, self.base_dir)

    def base(self) -> tuple[Any, Any]:
        """The base (ArchSpec, Recipe) with the file's recipe fields and epochs applied."""

        choice = self.ablation.base
        if choice.preset is not None:
            spec, recipe_dict = load_arch_source(preset=choice.preset)
        else:
            path = Path(choice.arch).expanduser()  # type: ignore[arg-type]
            if not path.is_absolute():
                path = self.base_dir / path if (self.base_dir / path).is_file() or not path.is_file() else path
            if not path.is_file():
                raise ConfigError(f"{self.source}: base.arch: no such file {choice.arch!r} (looked beside the ablation file)")
            spec, recipe_dict = load_arch_source(path=path)
        recipe = validate(Recipe, deep_merge(recipe_dict, self.recipe_overrides()), f"{self.source}: recipe")
        return spec, recipe

    def recipe_overrides(self) -> dict[str, Any]:
        out = dict(self.ablation.recipe)
        if self.ablation.epochs is not None:
            out["epochs"] = self.ablation.epochs
        return out

    def plan(self):
        """The variants (see :func:`nasattn.ablation.variants.plan_variants`); errors name this file."""

        a = self.ablation
        spec, recipe = self.base()
        custom = {k: v.model_dump(exclude_none=True) for k, v in a.variants.items()}
        try:
            return plan_variants(spec, recipe, a.include, a.exclude or None, custom, base_preset=a.base.preset,
                                 recipe_overrides={} if a.epochs is None else {"epochs": a.epochs})
        except ConfigError as e:
            msg = str(e)
            raise ConfigError(msg if msg.startswith(self.source) else f"{self.source}: {msg}") from None


def load_ablation(
    path: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    *,
    base_dir: str | Path | None = None,
) -> LoadedAblation:
    """Read an ablation file (or start from defaults when ``path`` is None), merge ``overrides``
    (``--set`` and flags) into it, validate it and its variants.

    Every problem is a :class:`ConfigError` naming the file and the field path (an unknown field
    with the allowed names).
    """
    overrides = dict(overrides or {})
    if path is not None:
        path = Path(path)
        raw = read_yaml(path)
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: an ablation file must be a mapping of fields, got {type(raw).__name__}")
        source = str(path)
        where = path.resolve().parent
    else:
        raw, source = {}, "ablation (command line)"
        where = Path(base_dir or Path.cwd()).resolve()
    if overrides and path is not None:
        source += " (with --set)"
    if isinstance(overrides.get("base"), dict) and overrides["base"]:
        raw = dict(raw)
        raw.pop("base", None)  # --preset / --arch replace the file's base rather than merge into it
    data = deep_merge(raw, overrides)
    try:
        ablation = Ablation.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_with_seed_hint(format_validation_error(e, source, Ablation), source)) from None
    loaded = LoadedAblation(ablation, source, where)
    loaded.plan()  # validate include/exclude/custom variants now, before anything starts
    return loaded


def _with_seed_hint(message: str, source: str) -> str:
    """A ``seed: unknown field`` line also says how seeds are written."""
    line = f"{source}: seed: unknown field"
    return message.replace(line, f"{line} (a list of seeds: seeds: [0, 1, 2])")
