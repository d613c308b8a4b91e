"""Running an ablation path: each step's candidates x seeds are one Ray Tune experiment; resumable.

Output folder::

    OUT/path.json          FROM, TO, the differing decisions (FROM's and TO's value), settings, command, order
    OUT/path.csv           one row per (step, candidate, seed): step, decision, point, chosen, then ablation.csv's columns
    OUT/path_summary.csv   one row per chosen point (FROM first): mean and CI, the paired difference to the
                           previous point (see :func:`paired_vs_previous`), the candidates tried
    OUT/runs/<point>/seed<k>   run folders; a point is named by its flipped decisions (from+attention+head)
    OUT/tune-step<s>/      Ray Tune's experiment of step s (what --resume restores)
    OUT/report.html        the path drawn (nasattn.report.ablation_path)

The flip kept at each step is the one with the largest mean ``select_metric`` (validation accuracy
by default, so that the test accuracy reported is not the one that chose); ties go to the decision
listed first in :data:`nasattn.ablation.path.decisions.DECISIONS`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from pydantic import ValidationError

from nasattn.ablation.path.console import print_path
from nasattn.ablation.path.decisions import DECISIONS, Point, decompose, differing, flip
from nasattn.ablation.path.endpoints import Endpoint
from nasattn.ablation.path.greedy import PathInterrupted, PathPoint, PathResult, greedy_path, trainings
from nasattn.ablation.path.stats import paired_vs_previous
from nasattn.ablation.run import _columns, check_output, prepare_data, train_grid, trial_config
from nasattn.ablation.study import LoadedAblation
from nasattn.ablation.variants import diff_paths
from nasattn.config import ConfigError, deep_merge, validate
from nasattn.recipe import Recipe
from nasattn.report import render_report_safely
from nasattn.say import say
from nasattn.schema import PATH_CSV, PATH_JSON, PATH_SUMMARY_CSV, TrialStatus
from nasattn.spec import ArchSpec
from nasattn.tune.resources import preflight, start_ray, tune_storage

if TYPE_CHECKING:
    from rich.console import Console

SELECT_METRIC = "val_accuracy"
LEAD = ("step", "decision", "point", "chosen")


@dataclass
class PathPlan:
    """What a path will train: the two ends as points, the differing decisions, the ablation settings."""

    loaded: LoadedAblation
    start: Point
    target: Point
    from_label: str
    to_label: str
    decisions: list[str]

    @property
    def trainings_per_seed(self) -> int:
        return trainings(len(self.decisions))

    def point(self, flipped: frozenset[str]) -> Point:
        return flip(self.start, self.target, flipped)

    def invalid(self, flipped: frozenset[str]) -> str | None:
        """Why the point with ``flipped`` is not a valid network and recipe (None when it is)."""
        arch, recipe = self.point(flipped)
        try:
            ArchSpec.from_dict(arch, "path point")
            Recipe.model_validate(recipe)
        except (ConfigError, ValidationError) as e:
            return str(e).splitlines()[0]
        return None


@dataclass
class PathRunResult:
    output: Path
    path: PathResult
    rows: list[dict[str, Any]] = field(default_factory=list)
    summary: list[dict[str, Any]] = field(default_factory=list)
    report: Path | None = None
    report_error: str | None = None
    wall_s: float = 0.0
    checkpointed: int = 0  # the interrupted step's runs resume from their checkpoints through Tune's restore

    @property
    def interrupted(self) -> int | None:
        """The signal that stopped the path, if any."""
        return self.path.interrupted


def _point_of(end: Endpoint, loaded: LoadedAblation) -> Point:
    recipe = validate(Recipe, deep_merge(end.recipe, loaded.recipe_overrides()), f"{end.label}: recipe")
    return end.spec.to_dict(), recipe.to_dict()


def plan_path(loaded: LoadedAblation, start: Endpoint, target: Endpoint) -> PathPlan:
    """The path from ``start`` to ``target`` under the ablation settings (its recipe fields and epochs apply to both)."""
    a, b = _point_of(start, loaded), _point_of(target, loaded)
    names = differing(a, b)
    if not names:
        raise ConfigError(f"{start.label} and {target.label} do not differ in any decision: there is no path")
    return PathPlan(loaded, a, b, start.label, target.label, names)


def describe_decisions(plan: PathPlan) -> list[dict[str, str]]:
    """One row per differing decision: name, description, and what changes (``field: FROM -> TO``; JSON values)."""
    va, vb = decompose(plan.start), decompose(plan.target)
    about = {d.name: d.description for d in DECISIONS}

    def show(v: Any) -> str:
        return json.dumps(v, default=str)

    return [{"decision": n, "description": about[n],
             "change": "; ".join(f"{p or n}: {show(x)} -> {show(y)}" for p, x, y in diff_paths(va[n], vb[n]))}
            for n in plan.decisions]


def _info(plan: PathPlan, data: str | None, command: str | None) -> dict[str, Any]:
    a = plan.loaded.ablation
    return {"from": plan.from_label, "to": plan.to_label, "command": command or "nasattn ablate --path",
            "decisions": describe_decisions(plan), "trainings_per_seed": plan.trainings_per_seed,
            "seeds": list(a.seeds), "select_metric": SELECT_METRIC, "correction": a.correction, "data": data,
            "epochs": a.epochs, "width_mult": a.width_mult, "subset": a.subset,
            "max_steps_per_epoch": a.max_steps_per_epoch, "resources": a.resources.model_dump(),
            "output": str(plan.loaded.output)}


def run_path(plan: PathPlan, *, resume: bool = False, console: Console | None = None, live: bool | None = None,
             command: str | None = None) -> PathRunResult:
    """Walk the path, training every step's candidates with every seed through Ray; write the outputs."""
    t0 = time.time()
    loaded, a, out = plan.loaded, plan.loaded.ablation, plan.loaded.output
    check_output(out, resume, console, "an ablation path")
    checkpoints = "checkpoint_every" if a.checkpoint_every else None
    preflight(a.resources, a.ray, loaded.source, checkpoints, data=loaded.resolved_data())
    out.mkdir(parents=True, exist_ok=True)
    data = prepare_data(loaded, console)
    info = _info(plan, data, command)
    (out / PATH_JSON).write_text(json.dumps(info, indent=2, default=str) + "\n")
    rows: list[dict[str, Any]] = []
    with start_ray(a.resources, a.ray, loaded.source, home=out, checkpoints=checkpoints) as ray_started:
        say(console, f"{ray_started.summary}; {len(plan.decisions)} decisions: at most "
                     f"{plan.trainings_per_seed * len(a.seeds)} trainings, up to {ray_started.concurrency} at once")

        def evaluate(step: int, points: list[PathPoint]) -> dict[str, dict[int, float]]:
            configs = [{**trial_config(a, p.key, *plan.point(p.flipped), seed, out, data), "zero_cost_batch": 0}
                       for p in points for seed in a.seeds]  # no training-free scores: a path does not use them
            name = f"tune-step{step}"
            got, _grid, stop = train_grid(configs, out, name, a.resources, ray_started.concurrency,
                                          restoring=resume and (out / name).is_dir(),
                                          title=f"nasattn ablate --path: step {step}", live=live,
                                          storage=tune_storage(a.ray, out))
            decision = {p.key: p.decision for p in points}
            rows.extend({"step": step, "decision": decision[r["variant"]] or "(from)", "point": r["variant"], **r}
                        for r in got)
            if stop.signum is not None:
                raise PathInterrupted(stop.signum)
            return scores_of(got, SELECT_METRIC)

        walked = greedy_path(plan.decisions, evaluate, plan.invalid)
    result = write_path_outputs(out, plan, walked, rows, console=console, report=a.report)
    result.wall_s = time.time() - t0
    return result


def scores_of(rows: list[dict[str, Any]], metric: str) -> dict[str, dict[int, float]]:
    """``{point: {seed: metric}}`` of the finished rows."""
    out: dict[str, dict[int, float]] = {}
    for r in rows:
        if r.get("status") == TrialStatus.COMPLETE and isinstance(r.get(metric), (int, float)):
            out.setdefault(r["variant"], {})[int(r["seed"])] = float(r[metric])
    return out


def write_path_outputs(out: Path, plan: PathPlan, walked: PathResult, rows: list[dict[str, Any]], *,
                       console: Console | None = None, report: bool = True) -> PathRunResult:
    """path.csv, path_summary.csv and report.html from the rows of every step trained."""
    chosen = {p.key for p in walked.chosen}
    for r in rows:
        r["chosen"] = r["point"] in chosen
    cols = list(LEAD) + [c for c in _columns(rows) if c not in LEAD and c != "variant"]
    pd.DataFrame(rows, columns=cols).to_csv(out / PATH_CSV, index=False)
    summary = summarize_path(plan, walked, rows)
    pd.DataFrame(summary).to_csv(out / PATH_SUMMARY_CSV, index=False)
    result = PathRunResult(output=out, path=walked, rows=rows, summary=summary)
    if console is not None:
        print_path(summary, walked, console)
    if report:
        result.report, result.report_error = render_report_safely(out, warn=lambda m: say(console, f"[yellow]{m}[/]"))
    return result


def summarize_path(plan: PathPlan, walked: PathResult, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per chosen point: step, decision, statistics vs the previous point, the candidates and their mean selection score."""
    df = pd.DataFrame([{**r, "variant": r["point"]} for r in rows])
    chain = [p.key for p in walked.chosen]
    stats = {s["variant"]: s for s in paired_vs_previous(df, chain, plan.loaded.ablation.correction)} if chain else {}
    out = []
    for p in walked.chosen:
        tried = walked.tried.get(p.step, [])
        means = {c.decision: _mean(walked.scores.get(c.key)) for c in tried}
        out.append({
            "step": p.step, "decision": p.decision or "(from)", "point": p.key,
            f"{SELECT_METRIC}_mean": _mean(walked.scores.get(p.key)), "candidates": len(tried),
            "candidate_means": "; ".join(f"{d}: {m:.4f}" for d, m in means.items() if d and m is not None),
            "invalid": "; ".join(f"{d}: {w}" for d, w in walked.invalid.get(p.step, {}).items()),
            **{k: v for k, v in stats.get(p.key, {}).items() if k != "variant" and not k.startswith("mcnemar")},
        })
    return out


def _mean(scores: dict[int, float] | None) -> float | None:
    return sum(scores.values()) / len(scores) if scores else None
