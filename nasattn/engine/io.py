"""Writing a TrainResult to a run folder (atomically) and reading it back."""

from __future__ import annotations

import io
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from nasattn.safewrite import replace_folder
from nasattn.schema import ARCH_FILE, HISTORY_FILE, METRICS_FILE, MODEL_FILE, PREDICTIONS_FILE, RECIPE_FILE, RUN_FILES



def json_safe(obj: Any) -> Any:
    """Recursively convert numpy/torch values, tuples and paths to JSON types; NaN and +-inf become None."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, (int, np.integer)) and not isinstance(obj, np.bool_):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return json_safe(obj.tolist())
    if hasattr(obj, "detach") and hasattr(obj, "tolist"):  # torch tensor
        return json_safe(obj.detach().cpu().tolist())
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if hasattr(obj, "model_dump"):  # pydantic
        return json_safe(obj.model_dump(mode="json"))
    return str(obj)


def run_files(result: Any) -> dict[str, bytes]:
    """The files of a run folder (names from RUN_FILES) rendered in memory: metrics.json, history.csv,
    arch.yaml, recipe.yaml, model.pt and predictions.csv (those the result has)."""
    import pandas as pd
    import torch

    files = {METRICS_FILE: (json.dumps(json_safe(result.metrics), indent=2, allow_nan=False) + "\n").encode()}
    files[HISTORY_FILE] = pd.DataFrame([json_safe(r) for r in result.history]).to_csv(index=False).encode()
    if result.spec is not None and hasattr(result.spec, "to_yaml"):
        files[ARCH_FILE] = result.spec.to_yaml().encode()
    if result.recipe is not None:
        files[RECIPE_FILE] = result.recipe.to_yaml().encode()
    if result.model is not None:
        buf = io.BytesIO()  # torch.save to a file reports a full disk as a RuntimeError; bytes written here cannot fail so
        torch.save({k: v.detach().cpu() for k, v in result.model.state_dict().items()}, buf)
        files[MODEL_FILE] = buf.getvalue()
    pred = result.predictions or {}
    if "label" in pred and "pred" in pred:
        label, p = np.asarray(pred["label"]), np.asarray(pred["pred"])
        files[PREDICTIONS_FILE] = pd.DataFrame({
            "index": np.asarray(pred.get("index", np.arange(len(label)))),
            "label": label,
            "pred": p,
            "confidence": np.asarray(pred.get("confidence", np.full(len(label), np.nan))),
            "correct": label == p,
        }).to_csv(index=False).encode()
    return files


def write_run(out_dir: str | os.PathLike[str], result: Any, hint: str = "run the command again") -> Path:
    """Write metrics.json, history.csv, arch.yaml, recipe.yaml, model.pt and predictions.csv into ``out_dir``, as a whole.

    The files are rendered first, written into a temporary folder beside ``out_dir`` and swapped in
    (:func:`nasattn.safewrite.replace_folder`): an earlier run's files are replaced only once the new ones
    are all on disk, and a failure leaves the earlier run intact (never a mix). Other entries of the
    folder (its lock file, a trial's placement record) are kept. A full or read-only disk raises DiskError
    (``hint`` says how to go on).
    """
    return replace_folder(out_dir, run_files(result), replaced=RUN_FILES, hint=hint)


def read_run(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """``{"dir", "metrics", "history" (DataFrame), "predictions" (DataFrame or None), "arch", "recipe" (text or None)}``."""
    import pandas as pd

    d = Path(run_dir)
    if not (d / METRICS_FILE).is_file():
        raise FileNotFoundError(f"{d}: not a run folder (no {METRICS_FILE})")

    def text(name: str) -> str | None:
        return (d / name).read_text(encoding="utf-8") if (d / name).is_file() else None

    return {
        "dir": d,
        "metrics": json.loads((d / METRICS_FILE).read_text(encoding="utf-8")),
        "history": pd.read_csv(d / HISTORY_FILE) if (d / HISTORY_FILE).is_file() else pd.DataFrame(),
        "predictions": pd.read_csv(d / PREDICTIONS_FILE) if (d / PREDICTIONS_FILE).is_file() else None,
        "arch": text(ARCH_FILE),
        "recipe": text(RECIPE_FILE),
    }
