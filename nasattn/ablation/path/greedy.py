"""The greedy ablation path (Fawcett & Hoos, 2016), separate from how points are trained.

From FROM, every decision still differing from TO is flipped on its own; the flip with the largest
mean score over the seeds is kept; this repeats until no decision is left (the last point is TO).
``evaluate(step, points)`` trains (or looks up) the points of one step and returns each point's
score per seed; it may raise :class:`PathInterrupted` to stop the path where it is.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from statistics import fmean

from nasattn.ablation.path.decisions import DECISION_NAMES, point_key
from nasattn.config import NasattnError
from nasattn.schema import ExitCode


@dataclass(frozen=True)
class PathPoint:
    """A point on (or tried for) the path: the decisions flipped so far, the one flipped last, its step."""

    step: int
    flipped: frozenset[str]
    decision: str | None = None  # None for FROM (step 0)

    @property
    def key(self) -> str:
        return point_key(self.flipped)


Scores = Mapping[str, Mapping[int, float]]  # point key -> {seed: score}
Evaluate = Callable[[int, Sequence[PathPoint]], Scores]


class PathInterrupted(Exception):
    """Raised by an ``evaluate`` that was stopped (a signal): the path ends at its last finished step."""

    def __init__(self, signum: int | None = None) -> None:
        super().__init__(f"interrupted (signal {signum})")
        self.signum = signum


class PathError(NasattnError, RuntimeError):
    """No candidate of a step could be scored (every run failed or every candidate is invalid): exit 1."""

    exit_code = ExitCode.FAILED


@dataclass
class PathResult:
    """The chosen points (FROM first), every point tried per step, and their scores."""

    chosen: list[PathPoint] = field(default_factory=list)
    tried: dict[int, list[PathPoint]] = field(default_factory=dict)
    scores: dict[str, dict[int, float]] = field(default_factory=dict)
    invalid: dict[int, dict[str, str]] = field(default_factory=dict)  # step -> {decision: why}
    complete: bool = False
    interrupted: int | None = None  # the signal that stopped the walk, if any


def trainings(k: int) -> int:
    """Trainings per seed of a path over ``k`` differing decisions: FROM plus k + (k-1) + ... + 1."""
    return 1 + k * (k + 1) // 2


def greedy_path(decisions: Sequence[str], evaluate: Evaluate,
                invalid: Callable[[frozenset[str]], str | None] = lambda _f: None) -> PathResult:
    """Walk the greedy path over ``decisions`` (names from the registry, flipped FROM -> TO).

    ``invalid(flipped)`` gives why a point cannot be built (None: it can); such candidates are skipped
    at that step. Ties go to the decision listed first in the registry. Returns what was reached; a
    :class:`PathInterrupted` from ``evaluate`` ends the walk early (``complete`` False).
    """
    order = [n for n in DECISION_NAMES if n in decisions]
    result = PathResult()
    current = PathPoint(0, frozenset())
    try:
        result.scores.update({k: dict(v) for k, v in evaluate(0, [current]).items()})
        if not result.scores.get(current.key):
            raise PathError("FROM has no finished run to start the path from")
        result.chosen.append(current)
        result.tried[0] = [current]
        while len(current.flipped) < len(order):
            step = current.step + 1
            remaining = [d for d in order if d not in current.flipped]
            why = {d: invalid(current.flipped | {d}) for d in remaining}
            result.invalid[step] = {d: w for d, w in why.items() if w}
            candidates = [PathPoint(step, current.flipped | {d}, d) for d in remaining if not why[d]]
            result.tried[step] = candidates
            if not candidates:
                raise PathError(f"step {step}: no flip gives a valid point ({'; '.join(f'{d}: {w}' for d, w in why.items())})")
            result.scores.update({k: dict(v) for k, v in evaluate(step, candidates).items()})
            scored = [c for c in candidates if result.scores.get(c.key)]
            if not scored:
                raise PathError(f"step {step}: no candidate finished a run")
            current = max(scored, key=lambda c: (fmean(result.scores[c.key].values()), -order.index(c.decision)))
            result.chosen.append(current)
    except PathInterrupted as e:
        result.interrupted = e.signum
        return result
    result.complete = True
    return result
