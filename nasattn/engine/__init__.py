"""Training engine: the fast on-device training loop (a nasattn.recipe.Recipe says how), the paper's metrics and run folders."""

from nasattn.engine.adapt import adapt_to_dataset
from nasattn.engine.io import read_run, write_run
from nasattn.engine.metrics import classification_metrics, expected_calibration_error
from nasattn.engine.trainer import (
    EpochCallback,
    StopTraining,
    TrainingDivergedError,
    TrainResult,
    TrainState,
    resolve_device,
    train,
)

__all__ = [
    "EpochCallback",
    "StopTraining",
    "TrainResult",
    "TrainState",
    "TrainingDivergedError",
    "adapt_to_dataset",
    "classification_metrics",
    "expected_calibration_error",
    "read_run",
    "resolve_device",
    "train",
    "write_run",
]
