"""Greedy ablation paths (``nasattn ablate --path FROM TO``): which decisions carry the gap between two designs.

``DECISIONS`` (decisions.py) names the top-level choices a path flips; ``greedy_path`` (greedy.py) walks
the path given any ``evaluate``; ``plan_path`` / ``run_path`` (run.py) train it through Ray like an
ablation; ``resolve_endpoint`` (endpoints.py) reads FROM and TO.
"""

from nasattn.ablation.path.decisions import DECISION_NAMES, DECISIONS, compose, decompose, differing, flip
from nasattn.ablation.path.endpoints import Endpoint, resolve_endpoint
from nasattn.ablation.path.greedy import PathInterrupted, PathPoint, PathResult, greedy_path, trainings

__all__ = [
    "DECISIONS", "DECISION_NAMES", "Endpoint", "PathInterrupted", "PathPoint", "PathResult", "compose", "decompose",
    "differing", "flip", "greedy_path", "resolve_endpoint", "trainings",
]
