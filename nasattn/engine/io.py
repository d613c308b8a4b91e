"""Writing a TrainResult to a run folder (atomically) and reading it back."""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from nasattn.schema import ARCH_FILE, HISTORY_FILE, METRICS_FILE, MODEL_FILE, PREDICTIONS_FILE, RECIPE_FILE



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


def _umask() -> int:
    """The process's umask (read by setting and restoring it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _atomic(path: Path, write: Callable[[Path], None]) -> None:
    """Write via ``write(tmp)`` to a temporary file beside ``path``, then ``os.replace`` it into place."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a run's files follow the umask like any other
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_text(path: Path, text: str) -> None:
    _atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_run(out_dir: str | os.PathLike[str], result: Any) -> Path:
    """Write metrics.json, history.csv, arch.yaml, recipe.yaml, model.pt and predictions.csv into ``out_dir``."""
    import pandas as pd
    import torch

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    metrics = json_safe(result.metrics)
    _write_text(out / METRICS_FILE, json.dumps(metrics, indent=2, allow_nan=False) + "\n")
    history = pd.DataFrame([json_safe(r) for r in result.history])
    _atomic(out / HISTORY_FILE, lambda tmp: history.to_csv(tmp, index=False))
    if result.spec is not None and hasattr(result.spec, "to_yaml"):
        _write_text(out / ARCH_FILE, result.spec.to_yaml())
    if result.recipe is not None:
        _write_text(out / RECIPE_FILE, result.recipe.to_yaml())
    if result.model is not None:
        state = {k: v.detach().cpu() for k, v in result.model.state_dict().items()}
        _atomic(out / MODEL_FILE, lambda tmp: torch.save(state, tmp))
    pred = result.predictions or {}
    if "label" in pred and "pred" in pred:
        label, p = np.asarray(pred["label"]), np.asarray(pred["pred"])
        df = pd.DataFrame({
            "index": np.asarray(pred.get("index", np.arange(len(label)))),
            "label": label,
            "pred": p,
            "confidence": np.asarray(pred.get("confidence", np.full(len(label), np.nan))),
            "correct": label == p,
        })
        _atomic(out / PREDICTIONS_FILE, lambda tmp: df.to_csv(tmp, index=False))
    return out


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
