"""Optuna inside Ray Tune: the seeded sampler, the define-by-run space with rejection, seed points.

The searcher keeps its Optuna study in memory (it is pickled with Tune's experiment state, so a
restored search continues exactly where the sampler was); finished trials are written into the
persistent Optuna study by :class:`nasattn.search.recorder.StudyRecorder` (see stack notes: an
OptunaSearch bound to a database diverges from Tune's snapshot after a ``kill -9``).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from ray.tune.search.optuna import OptunaSearch

from nasattn.search.space import Rejected, SearchSpace, sample_spec

MAX_REJECTIONS = 2000


def make_sampler(study: Any, space: SearchSpace):
    """The Optuna sampler named by the study (seeded)."""
    import optuna

    from nasattn.search.space import grid_values

    cfg = study.sampler
    seed = cfg.seed
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    if cfg.type == "grid":
        return optuna.samplers.GridSampler(grid_values(space), seed=seed)
    samplers = {"tpe": optuna.samplers.TPESampler, "random": optuna.samplers.RandomSampler,
                "cmaes": optuna.samplers.CmaEsSampler, "nsga2": optuna.samplers.NSGAIISampler,
                "gp": optuna.samplers.GPSampler}
    if cfg.type not in samplers:
        raise ValueError(f"unknown sampler {cfg.type!r}")
    kwargs: dict[str, Any] = {"seed": seed}
    if cfg.type == "tpe":
        kwargs.update(multivariate=cfg.multivariate, group=cfg.multivariate, constant_liar=True)
    if cfg.type in ("cmaes", "gp"):
        kwargs["warn_independent_sampling"] = False  # conditional spaces always sample some params independently
    if cfg.n_startup_trials is not None and cfg.type in ("tpe", "cmaes", "gp"):
        kwargs["n_startup_trials"] = cfg.n_startup_trials
    if cfg.population_size is not None and cfg.type == "nsga2":
        kwargs["population_size"] = cfg.population_size
    return samplers[cfg.type](**kwargs)


class TrialConfigFactory:
    """The define-by-run function: Optuna trial -> a :func:`nasattn.tune.train_trial` config.

    Picklable (Tune saves it with the searcher).
    """

    def __init__(self, space: SearchSpace, constants: dict[str, Any], fixed_recipe: dict[str, Any], epochs: int) -> None:
        self.space = space
        self.constants = constants
        self.fixed_recipe = fixed_recipe
        self.epochs = epochs

    def __call__(self, trial: Any) -> dict[str, Any]:
        from optuna.distributions import distribution_to_json

        spec, recipe = sample_spec(trial, self.space)
        full_recipe = {**self.fixed_recipe, **recipe, "epochs": self.epochs}
        return {
            **self.constants,
            "arch": spec.to_dict(),
            "recipe": full_recipe,
            "optuna": {
                "number": trial.number,
                "params": dict(trial.params),
                "distributions": {k: distribution_to_json(d) for k, d in trial.distributions.items()},
                "seed_point": trial.user_attrs.get("seed_point"),
                "seed_recipe": _seed_recipe(self.space, trial.user_attrs.get("seed_point")),
            },
        }


def _seed_recipe(space: SearchSpace, seed_point: str | None) -> str | None:
    """Which recipe a seed trial trains with: own (the preset's, seeds.recipe: own) or study; None for others."""
    return None if not seed_point else ("own" if seed_point in getattr(space, "own_recipes", {}) else "study")


class SpaceSearch(OptunaSearch):
    """OptunaSearch over a :class:`SearchSpace` that resamples points rejected by its constraints.

    A rejected sample is told to the in-memory Optuna study as PRUNED (user attribute ``rejected``
    holds the reason), so model-based samplers learn to avoid the region; it costs no Tune trial and
    no budget. ``seed_points`` (name -> params) are enqueued first, in order.
    """

    def __init__(self, factory: TrialConfigFactory, metric: str | list[str], mode: str | list[str], sampler: Any,
                 seed_points: dict[str, dict[str, Any]] | None = None) -> None:
        super().__init__(space=factory, metric=metric, mode=mode, sampler=sampler)
        self.rejected = 0
        self.last_rejection: str | None = None
        for name, params in (seed_points or {}).items():
            self._ot_study.enqueue_trial(params, user_attrs={"seed_point": name})

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        import optuna

        if trial_id in self._ot_trials:  # asked again for the same Tune trial: same point
            return self._space(self._ot_trials[trial_id])
        for _ in range(MAX_REJECTIONS):
            ot_trial = self._ot_study.ask()
            try:
                config = self._space(ot_trial)
            except Rejected as e:
                self.rejected += 1
                self.last_rejection = str(e)
                ot_trial.set_user_attr("rejected", str(e))
                self._ot_study.tell(ot_trial, state=optuna.trial.TrialState.PRUNED)
                continue
            self._ot_trials[trial_id] = ot_trial
            return config
        raise RuntimeError(
            f"the search space's constraints rejected {MAX_REJECTIONS} samples in a row "
            f"(last: {self.last_rejection}); widen the constraints"
        )


def trial_dirname(trial: Any) -> str:
    """Short trial folder names (Tune's default embeds the whole config)."""
    return trial.trial_id


def trial_runs_root(output: Path) -> Path:
    return output / "trials"
