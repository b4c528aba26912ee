"""Accuracy, per-class accuracy and the confusion matrix of a model on precomputed features.

Features come from `nas.data.featurize.split_features` (unaugmented clips, cached per front end); the
model runs in inference mode in jitted batches of a fixed size (the last one padded), so one split
compiles once per architecture.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import jax.numpy as jnp
import numpy as np

from nas.train.step import predict_logits

EVAL_BATCH = 500  # a fixed shape to compile once; 500 x 49 x 10 features and DS-CNN activations stay ~20 MB


@dataclass(frozen=True)
class EvalReport:
    labels: tuple[str, ...]
    confusion: np.ndarray  # int64 [classes, classes]: rows are true classes, columns predictions

    @property
    def count(self) -> int:
        return int(self.confusion.sum())

    @property
    def accuracy(self) -> float:
        """Fraction of items predicted right; NaN for an empty split."""
        n = self.count
        return float(np.trace(self.confusion) / n) if n else math.nan

    @property
    def per_class(self) -> tuple[float, ...]:
        """Recall of every class in label order; NaN for a class with no items."""
        rows = self.confusion.sum(axis=1)
        return tuple(float(self.confusion[i, i] / r) if r else math.nan for i, r in enumerate(rows))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (NaN becomes None)."""
        def clean(x: float) -> float | None:
            return None if math.isnan(x) else x

        return {
            "accuracy": clean(self.accuracy),
            "count": self.count,
            "per_class": {name: clean(a) for name, a in zip(self.labels, self.per_class, strict=True)},
            "labels": list(self.labels),
            "confusion": self.confusion.tolist(),
        }


def predict(graphdef: Any, params: Any, batch_stats: Any, features: np.ndarray,
            batch_size: int = EVAL_BATCH) -> np.ndarray:
    """Predicted class [N] of every row of ``features`` [N, frames, coeffs]."""
    n = len(features)
    if n == 0:
        return np.zeros(0, np.int64)
    size = min(batch_size, n)
    out = []
    for start in range(0, n, size):
        chunk = np.asarray(features[start : start + size], np.float32)
        real = len(chunk)
        if real < size:  # pad to the compiled shape; padded rows are dropped below
            chunk = np.concatenate([chunk, np.zeros((size - real, *chunk.shape[1:]), np.float32)])
        logits = predict_logits(params, batch_stats, jnp.asarray(chunk), graphdef=graphdef)
        out.append(np.asarray(jnp.argmax(logits, -1))[:real])
    return np.concatenate(out)


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, classes: int) -> np.ndarray:
    out = np.zeros((classes, classes), np.int64)
    np.add.at(out, (np.asarray(labels, np.int64), np.asarray(predictions, np.int64)), 1)
    return out


def evaluate(graphdef: Any, params: Any, batch_stats: Any, features: np.ndarray, labels: np.ndarray,
             label_names: tuple[str, ...]) -> EvalReport:
    """The `EvalReport` of a model (inference mode) on ``features`` with true ``labels``."""
    predictions = predict(graphdef, params, batch_stats, features)
    return EvalReport(tuple(label_names), confusion_matrix(labels, predictions, len(label_names)))
