"""Multiple testing: Holm or Benjamini-Hochberg over a family of p-values (statsmodels)."""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field

from statsmodels.stats.multitest import multipletests

CORRECTIONS: dict[str, str | None] = {"holm": "holm", "bh": "fdr_bh", "none": None}


def adjust_pvalues(pvalues: Sequence[float | None], correction: str = "holm") -> list[float | None]:
    """Adjusted p-values (``holm``, ``bh`` or ``none``) over the non-None entries, in input order."""
    if correction not in CORRECTIONS:
        raise ValueError(f"unknown correction {correction!r}; allowed: {', '.join(CORRECTIONS)}")
    method = CORRECTIONS[correction]
    idx = [i for i, p in enumerate(pvalues) if p is not None and math.isfinite(float(p))]
    out: list[float | None] = [None] * len(pvalues)
    if not idx:
        return out
    raw = [float(pvalues[i]) for i in idx]  # type: ignore[arg-type]
    adj = raw if method is None else multipletests(raw, method=method)[1]
    for i, p in zip(idx, adj):
        out[i] = float(p)
    return out


@dataclass
class Family:
    """p-values collected under labels, adjusted together by :meth:`adjusted`."""

    correction: str = "holm"
    labels: list[Hashable] = field(default_factory=list)
    pvalues: list[float | None] = field(default_factory=list)

    def add(self, label: Hashable, p: float | None) -> None:
        self.labels.append(label)
        self.pvalues.append(p)

    def adjusted(self) -> dict[Hashable, float | None]:
        return dict(zip(self.labels, adjust_pvalues(self.pvalues, self.correction)))
