"""Optuna inside Ray Tune: the seeded sampler, the define-by-run space with rejection, seed points.

:class:`SpaceSearch` is a Ray Tune :class:`~ray.tune.search.Searcher` (public interface: suggest,
on_trial_result, on_trial_complete, save, restore) around an in-memory Optuna study driven by ask/tell.
Each suggested point is also opened as a RUNNING trial in the persistent study
(:class:`nasattn.search.recorder.StudyLedger`), keyed by the run id and the sampler's trial number.
Nothing is pickled: a resumed search builds a new searcher from the persistent study's records of the
run (``records``): finished trials are added to the in-memory study, unfinished ones are suggested
again first, with their params, their record and their folder.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

from ray.tune.search import Searcher

from nasattn.search.space import Rejected, SearchSpace, grid_values, sample_spec

MAX_REJECTIONS = 2000


def make_sampler(study: Any, space: SearchSpace, resumed: int = 0):
    """The Optuna sampler named by the study (seeded).

    ``resumed``: the number of trials a resumed search continues from. Its sampler starts a stream of
    its own, derived from the seed and that number (numpy's SeedSequence), so that it does not draw the
    points the first session drew first again; model-based samplers also learn from the replayed trials.
    """
    import numpy as np
    import optuna  # lazy: optuna is a heavy optional package


    cfg = study.sampler
    seed = cfg.seed
    if resumed and seed is not None:
        seed = int(np.random.SeedSequence([seed, resumed]).generate_state(1)[0])
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
        from optuna.distributions import distribution_to_json  # lazy: optuna is a heavy optional package

        spec, recipe = sample_spec(trial, self.space)
        full_recipe = {**self.fixed_recipe, **recipe, "epochs": self.epochs}
        return {
            **self.constants,
            "arch": spec.to_dict(),
            "recipe": full_recipe,
            "optuna": {
                "number": trial.number,  # replaced by the persistent study's number when recorded
                "sampler_number": trial.number,
                "params": dict(trial.params),
                "distributions": {k: distribution_to_json(d) for k, d in trial.distributions.items()},
                "seed_point": trial.user_attrs.get("seed_point"),
                "seed_recipe": _seed_recipe(self.space, trial.user_attrs.get("seed_point")),
            },
        }


def _seed_recipe(space: SearchSpace, seed_point: str | None) -> str | None:
    """Which recipe a seed trial trains with: own (the preset's, seeds.recipe: own) or study; None for others."""
    return None if not seed_point else ("own" if seed_point in space.own_recipes else "study")


class SpaceSearch(Searcher):
    """Optuna ask/tell over a :class:`SearchSpace`, resampling points rejected by its constraints.

    A rejected sample is told to the in-memory study as PRUNED (user attribute ``rejected`` holds the
    reason), so model-based samplers learn to avoid the region; it costs no Tune trial and no budget.
    ``seed_points`` (name -> params) are enqueued first, in order. Every accepted point is opened in
    the persistent study through ``ledger`` (when given) and its number names the trial's run folder.
    Trials stopped early are told PRUNED with their intermediate values (single objective), trials
    trained to the end COMPLETE, failed or non-finite ones FAIL.

    ``records`` (a resume: this run's FrozenTrials from the persistent study) are replayed before the
    seed points; seed points already recorded are not enqueued again. ``resume_from`` maps a study
    number to the checkpoint folder its trial continues from (``config["resume_from"]``).
    """

    def __init__(self, factory: TrialConfigFactory, metric: str | list[str], mode: str | list[str], sampler: Any,
                 seed_points: dict[str, dict[str, Any]] | None = None, ledger: Any = None,
                 runs_root: Path | None = None, records: list[Any] | None = None,
                 resume_from: dict[int, str] | None = None) -> None:
        import optuna  # lazy: optuna is a heavy optional package

        super().__init__(metric=metric, mode=mode)
        self.factory = factory
        self.metrics = [metric] if isinstance(metric, str) else list(metric)
        modes = [mode] if isinstance(mode, str) else list(mode)
        self.study = optuna.create_study(
            sampler=sampler, directions=["maximize" if m == "max" else "minimize" for m in modes]
        )
        self.ledger = ledger
        self.runs_root = runs_root
        self.live: dict[str, Any] = {}  # Tune trial id -> its asked (in-memory) Optuna trial
        self.configs: dict[str, dict[str, Any]] = {}
        self.rejected = 0
        self.last_rejection: str | None = None
        self.pending: list[int] = []  # sampler numbers of unfinished records, suggested again first
        self.key_offset = 0  # sampler number = in-memory trial number + key_offset (0 for a new search)
        self.resume_from = dict(resume_from or {})
        used = self.replay(records or [])
        for name, params in (seed_points or {}).items():
            if name not in used:
                self.study.enqueue_trial(params, user_attrs={"seed_point": name})

    def replay(self, records: list[Any]) -> set[str]:
        """Continue from recorded trials: finished ones join the in-memory study, unfinished ones are
        enqueued to be suggested again first. Returns the seed-point names the records used."""
        import optuna  # lazy: optuna is a heavy optional package

        State = optuna.trial.TrialState
        ordered = sorted(records, key=lambda t: int(t.user_attrs["sampler_number"]))
        for t in ordered:
            seed_point = t.user_attrs.get("seed_point")
            if t.state.is_finished():
                self.study.add_trial(optuna.trial.create_trial(
                    state=t.state, values=t.values if t.state == State.COMPLETE else None, params=t.params,
                    distributions=t.distributions, intermediate_values=dict(t.intermediate_values),
                    user_attrs={"seed_point": seed_point},
                ))
            else:
                self.pending.append(int(t.user_attrs["sampler_number"]))
                self.study.enqueue_trial(t.params, user_attrs={"seed_point": seed_point})
        if ordered:  # new draws get sampler numbers after every recorded one
            self.key_offset = int(ordered[-1].user_attrs["sampler_number"]) + 1 - len(self.study.trials)  # queued included
        return {t.user_attrs["seed_point"] for t in ordered if t.user_attrs.get("seed_point")}

    # ------------------------------------------------------------------ Searcher interface
    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
        """The space and the objectives are fixed at construction; Tune's ``param_space`` is not used."""
        return not config

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        import optuna  # lazy: optuna is a heavy optional package

        if trial_id in self.configs:  # asked again for the same Tune trial: same point
            return self.configs[trial_id]
        for _ in range(MAX_REJECTIONS):
            ot_trial = self.study.ask()
            key = self.pending.pop(0) if self.pending else ot_trial.number + self.key_offset
            try:
                config = self.factory(ot_trial)
                config["optuna"]["sampler_number"] = key
            except Rejected as e:
                self.rejected += 1
                self.last_rejection = str(e)
                ot_trial.set_user_attr("rejected", str(e))
                self.study.tell(ot_trial, state=optuna.trial.TrialState.PRUNED)
                continue
            config = self.open_record(trial_id, config)
            self.live[trial_id] = ot_trial
            self.configs[trial_id] = config
            return config
        raise RuntimeError(
            f"the search space's constraints rejected {MAX_REJECTIONS} samples in a row "
            f"(last: {self.last_rejection}); widen the constraints"
        )

    def open_record(self, trial_id: str, config: dict[str, Any]) -> dict[str, Any]:
        """Open (or find again) the trial's persistent record; its number names ``runs_root/<number>``."""
        if self.ledger is None:
            return config
        meta = config["optuna"]
        number = self.ledger.open(meta["sampler_number"], meta["params"], meta["distributions"], {
            "tune_trial_id": trial_id, "seed_point": meta.get("seed_point"),
            "arch": config["arch"], "recipe": config["recipe"],
        })
        config = {**config, "optuna": {**meta, "number": number}}
        if number in self.resume_from:
            config["resume_from"] = self.resume_from[number]
        if self.runs_root is not None:
            config["run_dir"] = str(Path(self.runs_root) / str(number))
            self.ledger.report(number, None, None, {"run_dir": config["run_dir"]})
        return config

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        ot_trial = self.live.get(trial_id)
        if ot_trial is None or len(self.metrics) > 1:  # Optuna keeps intermediate values for one objective only
            return
        value, step = result.get(self.metrics[0]), result.get("epoch") or result.get("training_iteration")
        if isinstance(value, (int, float)) and math.isfinite(value) and step is not None:
            ot_trial.report(float(value), int(step))

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        import optuna  # lazy: optuna is a heavy optional package

        State = optuna.trial.TrialState
        ot_trial = self.live.pop(trial_id, None)
        self.configs.pop(trial_id, None)
        if ot_trial is None:
            return
        number = ot_trial.number
        result = result or {}
        values = [result.get(m) for m in self.metrics]
        finite = all(isinstance(v, (int, float)) and math.isfinite(v) for v in values)
        if error or (result.get("final") and not finite):
            self.study.tell(number, state=State.FAIL, skip_if_finished=True)
        elif result.get("final"):
            self.study.tell(number, [float(v) for v in values], skip_if_finished=True)
        else:  # stopped early by the scheduler: PRUNED with its last intermediate value
            self.study.tell(number, state=State.PRUNED, skip_if_finished=True)

    def save(self, checkpoint_path: str) -> None:
        """Writes nothing: a resumed search is rebuilt from the persistent study, never from Tune's files."""

    def restore(self, checkpoint_path: str) -> None:
        raise NotImplementedError("a nasattn search is resumed from its Optuna study, not from a saved searcher")


def trial_dirname(trial: Any) -> str:
    """Tune's folder of a trial: ``<study number>-<Tune trial id>`` (Tune's default embeds the whole config)."""
    number = ((trial.config or {}).get("optuna") or {}).get("number")
    return trial.trial_id if number is None else f"{number}-{trial.trial_id}"


def trial_runs_root(output: Path) -> Path:
    return output / "trials"
