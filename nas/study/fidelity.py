"""Successive halving across a study's trials, in one objective or several.

    rungs = rung_epochs(min_epochs=4, max_epochs=36, reduction_factor=3)     # (4, 12)
    halving = Halving(study, trial, rungs, 3, objectives, figures)
    train(spec, data, cfg, after_eval=halving)      # stops the run at a rung where it ranks too low

Every trained candidate trains on the schedule of the full epoch budget; at each rung (``min_epochs``,
``min_epochs`` x ``reduction_factor``, ... below the full budget) it records its best validation accuracy
so far in the trial's user attribute ``val_accuracy_at_epoch`` and compares itself with every other trial
of the study that reached the same rung (on any worker: the figures live in the study's storage). It goes
on while it ranks among the best ``max(1, n // reduction_factor)`` of the ``n`` trials there, and stops
otherwise (the trial is then recorded as PRUNED). This is the asynchronous successive halving of Li et
al. (ASHA, MLSys 2020), the rule of Optuna's ``SuccessiveHalvingPruner``, which Optuna offers for one
objective only (``Trial.report`` raises in multi-objective studies). Here the rank is by accuracy with one
objective, and with several by non-dominated sorting of (error at the rung, the other objectives), which
are hardware figures already measured before training, then by accuracy within a front.

A candidate that reaches the full budget has been trained exactly as if it had never been compared: the
decisions only stop runs, they never change one.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import optuna

from nas.study.objectives import OBJECTIVES

log = logging.getLogger(__name__)

RUNG_ATTR = "val_accuracy_at_epoch"  # {"4": 0.81, "12": 0.86}: best validation accuracy by each rung


def rung_epochs(min_epochs: int | None, max_epochs: int | None, reduction_factor: int) -> tuple[int, ...]:
    """The rungs below the full budget: ``min_epochs``, x factor, ... (empty without halving)."""
    if min_epochs is None or max_epochs is None:
        return ()
    rungs, e = [], min_epochs
    while e < max_epochs:
        rungs.append(e)
        e *= reduction_factor
    return tuple(rungs)


def _fronts(points: np.ndarray) -> np.ndarray:
    """Non-dominated sorting (minimised): the front index of every row, 0 for the Pareto front."""
    front = np.full(len(points), -1)
    level = 0
    while (front < 0).any():
        left = np.flatnonzero(front < 0)
        sub = points[left]
        for j, i in enumerate(left):
            dominated = np.all(sub <= sub[j], axis=1) & np.any(sub < sub[j], axis=1)
            if not dominated.any():
                front[i] = level
        level += 1
    return front


def _crowding(points: np.ndarray, front: np.ndarray) -> np.ndarray:
    """NSGA-II's crowding distance within each front: a front's extremes are infinitely far from crowded."""
    dist = np.zeros(len(points))
    for level in np.unique(front):
        idx = np.flatnonzero(front == level)
        for k in range(points.shape[1]):
            order = idx[np.argsort(points[idx, k], kind="stable")]
            span = points[order[-1], k] - points[order[0], k]
            dist[order[0]] = dist[order[-1]] = np.inf
            if span > 0 and len(order) > 2:
                dist[order[1:-1]] += (points[order[2:], k] - points[order[:-2], k]) / span
    return dist


def keeps_going(value: float, costs: Sequence[float], peers: Sequence[tuple[float, Sequence[float]]],
                reduction_factor: int) -> bool:
    """Whether a trial with accuracy ``value`` (and hardware ``costs``) ranks among the best
    ``max(1, n // reduction_factor)`` of itself and ``peers`` (their accuracy and costs at the same rung):
    by accuracy alone, or with costs by front, then crowding distance (NSGA-II's order), then accuracy."""
    everyone = [(value, tuple(costs)), *((v, tuple(c)) for v, c in peers)]
    keep = max(1, len(everyone) // reduction_factor)
    points = np.array([(1.0 - v, *c) for v, c in everyone], float)
    if points.shape[1] > 1:
        front = _fronts(points)
        crowd = _crowding(points, front)
    else:
        front, crowd = np.zeros(len(points), int), np.zeros(len(points))
    order = sorted(range(len(everyone)), key=lambda i: (front[i], -crowd[i], -everyone[i][0], i))  # ties: this trial
    return order.index(0) < keep


class Halving:
    """``after_eval`` hook of one trial's training (see the module docstring)."""

    def __init__(self, study: optuna.Study, trial: optuna.Trial, rungs: Sequence[int], reduction_factor: int,
                 objectives: Sequence[str], figures: Mapping[str, Any]) -> None:
        self.study, self.trial, self.rungs, self.factor = study, trial, tuple(rungs), reduction_factor
        self.cost_keys = [OBJECTIVES[o] for o in objectives if o != "error"]
        self.costs = [float(figures[k]) for k in self.cost_keys]
        self.single = len(objectives) == 1
        self.record: dict[str, float] = {}
        self.stopped_at: int | None = None

    def __call__(self, entry: Mapping[str, Any]) -> bool:
        epoch = entry["epoch"]
        if epoch not in self.rungs:
            return False
        epoch = int(epoch)
        value = float(entry["best_val_accuracy"])
        self.record[str(epoch)] = value
        self.trial.set_user_attr(RUNG_ATTR, dict(self.record))
        if self.single:  # Optuna's own view of the learning curve (dashboard, TPE's pruned-trial ranking)
            self.trial.report(1.0 - value, epoch)
        peers = []
        for t in self.study.get_trials(deepcopy=False):
            at = t.user_attrs.get(RUNG_ATTR, {})
            if t.number != self.trial.number and str(epoch) in at:
                peers.append((at[str(epoch)], [float(t.user_attrs.get(k, np.inf)) for k in self.cost_keys]))
        if keeps_going(value, self.costs, peers, self.factor):
            return False
        self.stopped_at = epoch
        log.info("trial %d stops at epoch %d: validation %.4f is not among the best 1/%d of %d", self.trial.number,
                 epoch, value, self.factor, len(peers) + 1)
        return True
