"""Comparing two models trained with several seeds on the same test clips: means, and a paired bootstrap.

    diff = paired_bootstrap(pick_correct, preset_correct)   # arrays [seeds, clips] of 0/1
    diff.mean_points, diff.low_points, diff.high_points     # pick minus preset, in accuracy points

Each model's per-clip score is its correctness averaged over its training seeds (so seed noise is in
the score, not in the resampling); the bootstrap resamples the *clips*, the same indices for both
models (paired: a clip that is hard for one is usually hard for the other), and the interval is the
percentile interval of the mean difference. GUIDE §5: on ~900 test clips one standard error of an
accuracy is ~1.1 points, so a difference inside such an interval is not evidence either way.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

BOOTSTRAP_RESAMPLES = 10_000  # percentile intervals settle to ~0.05 points at this count
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Difference:
    mean_points: float  # mean accuracy of a minus b, in points
    low_points: float  # the bootstrap interval of that difference
    high_points: float
    clips: int
    seeds_a: int
    seeds_b: int
    confidence: float = CONFIDENCE

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    def __str__(self) -> str:
        return (f"{self.mean_points:+.2f} points ({100 * self.confidence:.0f} % interval "
                f"{self.low_points:+.2f} .. {self.high_points:+.2f})")


def _per_clip(correct: np.ndarray) -> np.ndarray:
    c = np.asarray(correct, float)
    if c.ndim == 1:
        c = c[None]
    if c.ndim != 2 or c.shape[1] == 0:
        raise ValueError(f"expected correctness as [seeds, clips], got shape {np.shape(correct)}")
    return c.mean(axis=0)


def paired_bootstrap(a: np.ndarray, b: np.ndarray, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0,
                     confidence: float = CONFIDENCE) -> Difference:
    """The accuracy difference a - b (per-clip correctness, [seeds, clips], same clips in the same order)."""
    pa, pb = _per_clip(a), _per_clip(b)
    if pa.shape != pb.shape:
        raise ValueError(f"the two models were scored on different clips ({pa.shape[0]} vs {pb.shape[0]})")
    d = pa - pb
    idx = np.random.default_rng(seed).integers(0, len(d), size=(resamples, len(d)))
    means = d[idx].mean(axis=1)
    tail = (1.0 - confidence) / 2
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return Difference(100 * float(d.mean()), 100 * float(low), 100 * float(high), len(d),
                      np.atleast_2d(a).shape[0], np.atleast_2d(b).shape[0], confidence)
