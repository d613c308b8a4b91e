"""Loading the runs' test predictions (predictions.csv) for the statistics of an ablation or a fidelity study."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any

import pandas as pd

from nasattn.schema import PREDICTIONS_FILE
from nasattn.stats.study import PredictionsOf, finished, run_key, splits_vary


def predictions_from_run_dirs(rows: pd.DataFrame, locate: Callable[[Any], Any]) -> PredictionsOf:
    """A loader of predictions.csv by (variant, key) for :func:`nasattn.stats.analyze`; ``locate(run_dir)`` gives the
    folder (or None)."""
    ok = finished(rows)
    with_split = splits_vary(ok)
    where = {(r["variant"], run_key(r, with_split)): r.get("run_dir") for _, r in ok.iterrows()}
    cache: dict[tuple[str, Hashable], pd.DataFrame | None] = {}

    def load(variant: str, key: Hashable) -> pd.DataFrame | None:
        if (variant, key) not in cache:
            d = locate(where.get((variant, key)))
            f = Path(d) / PREDICTIONS_FILE if d is not None else None
            try:
                cache[(variant, key)] = pd.read_csv(f) if f is not None and f.is_file() else None
            except (OSError, ValueError):  # a half-written or foreign file: no predictions for this run
                cache[(variant, key)] = None
        return cache[(variant, key)]

    return load
