"""Study files: one YAML that says everything about a search run, validated before anything starts."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator, model_validator

from nasattn.schema import STUDY_DB, VAL_ACCURACY_LAST
from nasattn.config import ConfigError, deep_merge, read_yaml, resolve_data_source, validate as validate_model
from nasattn.runfile import RunFile, StrictModel
from nasattn.examples import bundled_space
from nasattn.presets import get_preset, list_presets
from nasattn.search.space import grid_values, load_space, preset_points, Rejected, sample_spec, SearchSpace
from nasattn.recipe import check_recipe_fields

if TYPE_CHECKING:
    from nasattn.search.space import SearchSpace

OBJECTIVE_METRICS = {
    VAL_ACCURACY_LAST: "max", "params": "min", "flops": "min", "latency_ms": "min",
}


def parse_duration(value: Any) -> float | None:
    """``3600``, ``"90s"``, ``"45m"``, ``"2h"``, ``"1h30m"`` -> seconds (None stays None)."""
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value <= 0:
            raise ValueError(f"must be > 0, got {value}")
        return float(value)
    if isinstance(value, str):
        parts = re.fullmatch(r"\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*(?:(\d+(?:\.\d+)?)s?)?\s*", value)
        if parts and any(parts.groups()):
            h, m, s = (float(x) if x else 0.0 for x in parts.groups())
            total = 3600 * h + 60 * m + s
            if total > 0:
                return total
    raise ValueError(f"expected seconds or a duration like '45m', '2h', '1h30m'; got {value!r}")


class Budget(StrictModel):
    trials: int = Field(20, ge=1, description="Number of trials (seed presets included).")
    epochs: int = Field(10, ge=1, description="Epochs per trial (the maximum: early stopping may cut it).")
    time_limit: float | None = Field(None, description="Wall-clock limit for the whole search: seconds or '45m', '2h'.")
    max_steps_per_epoch: int | None = Field(None, ge=1, description="Cap on training batches per epoch (smoke tests).")
    abort_after_failures: int = Field(
        3, ge=1, description="Stop the search when this many trials failed and none succeeded yet."
    )

    _duration = field_validator("time_limit", mode="before")(classmethod(lambda cls, v: parse_duration(v)))


class Objective(StrictModel):
    metric: Literal["val_accuracy", "params", "flops", "latency_ms"]
    mode: Literal["max", "min"] | None = None

    @model_validator(mode="after")
    def _mode(self) -> Objective:
        natural = OBJECTIVE_METRICS[self.metric]
        if self.mode is None:
            self.mode = natural  # type: ignore[assignment]
        elif self.mode != natural:
            raise ValueError(f"{self.metric} can only be {'maximized' if natural == 'max' else 'minimized'} (mode: {natural})")
        return self


class Sampler(StrictModel):
    type: Literal["tpe", "random", "cmaes", "nsga2", "gp", "grid"] = "tpe"
    seed: int | None = 0
    n_startup_trials: int | None = Field(None, ge=0, description="tpe/gp/cmaes: random trials before modelling.")
    multivariate: bool = Field(True, description="tpe: model parameters jointly (group=True for conditionals).")
    population_size: int | None = Field(None, ge=2, description="nsga2: population size.")


class EarlyStopping(StrictModel):
    type: Literal["asha", "hyperband", "median", "none"] = "asha"
    grace_period: int = Field(1, ge=1, description="asha/median: epochs before a trial can be stopped.")
    reduction_factor: float = Field(3, gt=1, description="asha/hyperband: keep 1/reduction_factor per rung.")
    min_samples_required: int = Field(3, ge=1, description="median: trials needed before stopping any.")


class Seeds(StrictModel):
    presets: list[str] = Field(default_factory=list, description="Preset names to enqueue first (true: every preset).")
    points: list[dict[str, Any]] = Field(default_factory=list, description="More Optuna parameter dicts to enqueue.")
    recipe: Literal["own", "study"] = Field(
        "study", description="own: preset seed trials train with the preset's own recipe (the study's epochs); "
        "study: with the study's recipe and the space's sampled values.")

    @field_validator("presets", mode="before")
    @classmethod
    def _all(cls, v: Any) -> Any:
        if v is True:
            return list(list_presets())
        if v in (False, None):
            return []
        return v

    @field_validator("presets")
    @classmethod
    def _known(cls, v: list[str]) -> list[str]:
        unknown = [p for p in v if p not in list_presets()]
        if unknown:
            raise ValueError(f"unknown preset(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(list_presets())}")
        return v


class TrainSettings(StrictModel):
    recipe: dict[str, Any] = Field(default_factory=dict, description="Recipe fields fixed for every trial.")
    width_mult: float = Field(1.0, gt=0, description="Scale every width of every sampled network (CPU proxies).")
    seed: int = 0
    device: str = "auto"
    checkpoint_every: int = Field(1, ge=0, description="Epochs between trial checkpoints (0: none).")
    keep_checkpoints: int = Field(1, ge=1, description="Checkpoints kept per running trial.")
    keep_finished_checkpoints: bool = Field(
        False, description="Keep Tune's checkpoints of finished trials (removed at the end of the search by default)."
    )
    zero_cost: bool = Field(True, description="Score each initial network with the training-free predictors (zc_* columns).")

    @field_validator("recipe")
    @classmethod
    def _recipe(cls, v: dict[str, Any]) -> dict[str, Any]:
        check_recipe_fields(v, epochs_elsewhere="budget.epochs")
        return v


class StorageEnv(StrictModel):
    """A storage URL kept out of every file: read from an environment variable when the search runs."""

    url_env: str = Field(..., pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
                         description="Name of the environment variable holding the storage URL (e.g. NASATTN_STORAGE).")


class Study(RunFile):
    """Everything about one search run (README.md, section Search, describes the fields)."""

    name: str = "search"
    space: Any = Field(..., description="Path to a search-space YAML (relative to the study file) or an inline space.")
    budget: Budget = Field(default_factory=Budget)
    objectives: list[Objective] = Field(default_factory=lambda: [Objective(metric=VAL_ACCURACY_LAST)], min_length=1)
    sampler: Sampler = Field(default_factory=Sampler)
    early_stopping: EarlyStopping = Field(default_factory=EarlyStopping)
    storage: str | StorageEnv | None = Field(
        None, description=f"None: sqlite {STUDY_DB} in the output folder; an SQLAlchemy URL; journal:PATH; or "
        "{url_env: NAME}: the URL from that environment variable (no file keeps it; use this for passwords).")
    study_name: str | None = None
    seeds: Seeds = Field(default_factory=Seeds)
    train: TrainSettings = Field(default_factory=TrainSettings)
    output: str = Field("runs/search", description="Output folder (relative to the working directory).")

    @field_validator("objectives", mode="before")
    @classmethod
    def _objectives(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = [v]
        if isinstance(v, list):
            return [{"metric": o} if isinstance(o, str) else o for o in v]
        return v

    @field_validator("sampler", "early_stopping", mode="before")
    @classmethod
    def _shorthand(cls, v: Any) -> Any:
        if isinstance(v, str):
            return {"type": v}
        if v is None:
            return {"type": "none"}
        return v

    @model_validator(mode="after")
    def _consistent(self) -> Study:
        metrics = [o.metric for o in self.objectives]
        if len(set(metrics)) != len(metrics):
            raise ValueError(f"objectives: {metrics} lists a metric twice")
        if VAL_ACCURACY_LAST not in metrics:
            raise ValueError("objectives: val_accuracy must be one of the objectives (early stopping follows it)")
        if self.multi_objective and self.sampler.type in ("cmaes",):
            raise ValueError(f"sampler: {self.sampler.type} is single-objective; for several objectives use nsga2, tpe, gp or random")
        if self.early_stopping.type == "hyperband" and self.train.checkpoint_every == 0:
            raise ValueError("early_stopping: hyperband pauses and resumes trials; set train.checkpoint_every >= 1")
        return self

    @property
    def multi_objective(self) -> bool:
        return len(self.objectives) > 1

    @property
    def metric_names(self) -> list[str]:
        return [o.metric for o in self.objectives]

    @property
    def modes(self) -> list[str]:
        return [o.mode for o in self.objectives]  # type: ignore[misc]


class LoadedStudy:
    """A validated study plus its resolved space, paths and source name (for messages)."""

    def __init__(self, study: Study, space: Any, source: str, space_source: str, base_dir: Path) -> None:
        self.study = study
        self.space = space
        self.source = source
        self.space_source = space_source
        self.base_dir = base_dir

    @property
    def output(self) -> Path:
        return Path(self.study.output).expanduser().resolve()

    def resolved_data(self) -> str | None:
        """The data source as trials should see it: bundled names as they are, paths absolute."""
        return resolve_data_source(self.study.data, self.base_dir)


def load_study(path: str | Path, overrides: dict[str, Any] | None = None, output: str | Path | None = None) -> LoadedStudy:
    """Read, merge ``--set`` overrides into, and validate a study file and its search space.

    Every problem is a :class:`ConfigError` naming the file, the field path and what is allowed.
    """

    path = Path(path)
    raw = read_yaml(path)
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a study must be a mapping of fields, got {type(raw).__name__}")
    overrides = dict(overrides or {})
    source = f"{path} (with --set)" if overrides else str(path)
    space_overrides = overrides.pop("space", None) if isinstance(overrides.get("space"), dict) else None
    data = deep_merge(raw, overrides)
    if output is not None:
        data["output"] = str(output)
    study = validate_model(Study, data, source)

    base_dir = path.resolve().parent
    space_raw = study.space
    if isinstance(space_raw, str):
        space_path = Path(space_raw).expanduser()
        if not space_path.is_absolute():

            for candidate in (base_dir / space_path, Path.cwd() / space_path, base_dir.parent / space_path,
                              bundled_space(space_raw) or space_path):
                if candidate.is_file():
                    space_path = candidate.resolve()
                    break
            else:
                raise ConfigError(f"{source}: space: no such file {space_raw!r} "
                                  "(looked beside the study file and in the working directory)")
        space_source = str(space_path)
        space_dict = read_yaml(space_path)
        if not isinstance(space_dict, dict):
            raise ConfigError(f"{space_path}: a search space must be a mapping")
    elif isinstance(space_raw, dict):
        space_dict, space_source = space_raw, f"{source}: space"
    else:
        raise ConfigError(f"{source}: space: give a path to a search-space YAML or an inline space mapping")
    if space_overrides:
        space_dict = deep_merge(space_dict, space_overrides)
        space_source += " (with --set)"
    space = load_space(space_dict, space_source)
    assert isinstance(space, SearchSpace)
    if study.seeds.recipe == "own":  # seed trials of presets train with the preset's own recipe

        space.own_recipes = {n: dict(get_preset(n).recipe_dict) for n in study.seeds.presets if n not in space.points}
    loaded = LoadedStudy(study, space, source, space_source, base_dir)
    check_study(loaded)
    return loaded


def check_study(loaded: LoadedStudy) -> None:
    """Cross-checks between the study and its space that need both (seeds, grid, a samplable space)."""

    study, space = loaded.study, loaded.space
    try:
        preset_points(space, list(study.seeds.presets))
    except ConfigError as e:
        raise ConfigError(f"{loaded.source}: {e}") from None
    if study.sampler.type == "grid":
        try:
            grid_values(space)
        except ConfigError as e:
            raise ConfigError(f"{loaded.source}: {e}") from None
    check_samplable(space, loaded.space_source)


def check_samplable(space: SearchSpace, source: str, tries: int = 200) -> None:
    """Draw random points until one passes every constraint; else a ConfigError with the reasons."""
    import optuna  # lazy: optuna is a heavy optional package


    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    reasons: dict[str, int] = {}
    for _ in range(tries):
        trial = study.ask()
        try:
            sample_spec(trial, space)
            return
        except Rejected as e:
            key = str(e).split(":")[0] if str(e).startswith("constraint") else str(e)
            reasons[key] = reasons.get(key, 0) + 1
        finally:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    top = ", ".join(f"{r} ({n}x)" for r, n in sorted(reasons.items(), key=lambda kv: -kv[1])[:3])
    raise ConfigError(f"{source}: constraints: no valid architecture in {tries} random samples; most common reasons: {top}")
