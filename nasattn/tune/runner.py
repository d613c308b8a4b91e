"""Running a fixed list of trial configs (an ablation grid) through Ray Tune, resumably."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from nasattn.schema import EXPERIMENT
from nasattn.tune.trainable import train_trial


def trial_resources(cpus: float = 1, gpus: float = 0) -> dict[str, float]:
    """Per-trial resources for ``tune.with_resources`` (fractional GPUs allowed, e.g. 0.25)."""
    res = {"cpu": float(cpus)}
    if gpus:
        res["gpu"] = float(gpus)
    return res


def _indexed_trial(config: dict[str, Any], configs: Sequence[dict[str, Any]] = ()) -> None:
    """Trainable for a grid: ``config["index"]`` picks the full config from ``configs``."""
    full = dict(configs[int(config["index"])])
    full.update({k: v for k, v in config.items() if k != "index"})
    train_trial(full)


def grid_trainable(configs: Sequence[dict[str, Any]], cpus: float = 1, gpus: float = 0):
    """The trainable used by :func:`run_grid` (also needed by ``Tuner.restore``)."""
    from ray import tune

    return tune.with_resources(tune.with_parameters(_indexed_trial, configs=list(configs)), trial_resources(cpus, gpus))


def run_grid(
    configs: Sequence[dict[str, Any]],
    *,
    storage_path: str | Path,
    name: str = EXPERIMENT,
    cpus_per_trial: float = 1,
    gpus_per_trial: float = 0,
    max_concurrent: int | None = None,
    callbacks: Sequence[Any] = (),
    resume: bool = False,
    max_failures: int = 0,
    progress_reporter: Any = None,
    verbose: int = 0,
):
    """Run every config (a :func:`train_trial` config) once as a Tune trial; returns the ResultGrid.

    ``storage_path`` must be absolute (Tune's experiment state lives in ``storage_path/name``).
    ``resume=True`` restores an interrupted run from there (finished trials are skipped, unfinished
    ones resume from their last checkpoint); without an existing experiment it starts afresh.
    Call inside :func:`nasattn.tune.ray_session`.
    """
    from ray import tune

    storage_path = Path(storage_path).resolve()
    trainable = grid_trainable(configs, cpus_per_trial, gpus_per_trial)
    exp_path = storage_path / name
    if resume and tune.Tuner.can_restore(str(exp_path)):
        tuner = tune.Tuner.restore(str(exp_path), trainable=trainable, resume_unfinished=True, resume_errored=False)
    else:
        tuner = tune.Tuner(
            trainable,
            param_space={"index": tune.grid_search(list(range(len(configs))))},
            tune_config=tune.TuneConfig(max_concurrent_trials=max_concurrent or None, reuse_actors=False),
            run_config=tune.RunConfig(
                name=name,
                storage_path=str(storage_path),
                callbacks=list(callbacks),
                failure_config=tune.FailureConfig(max_failures=max_failures),
                verbose=verbose,
                progress_reporter=progress_reporter,
            ),
        )
    return tuner.fit()


def unfinished_with_checkpoint(grid: Any) -> int:
    """How many trials of a ResultGrid stopped without an error before their last epoch, with a checkpoint
    to resume from (what an interrupted grid reports as "checkpointed")."""
    return sum(1 for r in grid if r.checkpoint is not None and r.error is None and not (r.metrics or {}).get("final"))
