"""The paper's evaluation metrics from labels, predictions and softmax probabilities."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np


def _np(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # torch tensor
        x = x.detach().float().cpu().numpy() if x.is_floating_point() else x.detach().cpu().numpy()
    return np.asarray(x)


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, n_bins: int = 15) -> float:
    """ECE with ``n_bins`` equal-width confidence bins (lo, hi]: sum over bins of |acc - conf| * n_bin / n."""
    confidence = np.asarray(confidence, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    if confidence.size == 0:
        return float("nan")
    bins = np.clip(np.ceil(confidence * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    conf_sum = np.bincount(bins, weights=confidence, minlength=n_bins)
    acc_sum = np.bincount(bins, weights=correct, minlength=n_bins)
    return float(np.abs(acc_sum - conf_sum).sum() / confidence.size)


def classification_metrics(
    labels: Any, preds: Any, probs: Any, class_names: Sequence[str]
) -> dict[str, Any]:
    """Accuracy, Cohen's kappa, macro-F1, per-class accuracy (recall), confusion matrix, confidence and ECE.

    ``probs`` is the [N, K] softmax; confidence is its row maximum. All accuracies are fractions in [0, 1];
    ``confidence_gap`` = mean confidence of correct minus of wrong predictions (None when none is wrong).
    A class without test samples has per-class accuracy None and is left out of ``min_class_accuracy``.
    """
    from sklearn.metrics import cohen_kappa_score, confusion_matrix, f1_score

    y, p, prob = _np(labels).astype(np.int64), _np(preds).astype(np.int64), _np(probs).astype(np.float64)
    k = len(class_names)
    if y.shape != p.shape or y.ndim != 1:
        raise ValueError(f"labels and preds must be 1-D of equal length, got {y.shape} and {p.shape}")
    if prob.shape != (len(y), k):
        raise ValueError(f"probs must have shape ({len(y)}, {k}), got {prob.shape}")
    correct = y == p
    conf = prob.max(axis=1) if len(y) else np.zeros(0)
    cm = confusion_matrix(y, p, labels=list(range(k)))
    support = cm.sum(axis=1)
    per_class = {
        name: (float(cm[i, i] / support[i]) if support[i] else None) for i, name in enumerate(class_names)
    }
    present = [v for v in per_class.values() if v is not None]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # kappa of a single-class sample is undefined (nan)
        kappa = float(cohen_kappa_score(y, p, labels=list(range(k)))) if len(y) else float("nan")
    n_wrong = int((~correct).sum())
    conf_correct = float(conf[correct].mean()) if correct.any() else None
    conf_wrong = float(conf[~correct].mean()) if n_wrong else None
    return {
        "accuracy": float(correct.mean()) if len(y) else float("nan"),
        "kappa": kappa,
        "macro_f1": float(f1_score(y, p, average="macro", zero_division=0)) if len(y) else float("nan"),
        "per_class_accuracy": per_class,
        "min_class_accuracy": min(present) if present else None,
        "confusion_matrix": cm.tolist(),
        "class_names": list(class_names),
        "n_samples": int(len(y)),
        "n_wrong": n_wrong,
        "confidence_correct": conf_correct,
        "confidence_wrong": conf_wrong,
        "confidence_gap": (conf_correct - conf_wrong) if conf_correct is not None and conf_wrong is not None else None,
        "ece": expected_calibration_error(conf, correct),
    }
