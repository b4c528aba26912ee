"""Compute, then render: the Pareto front and hypervolume of a study as plain data.

`pareto_front(study)` returns `FrontRow`s (feasible, trained, non-dominated trials with their figures);
`hypervolume_history(study, cfg)` the hypervolume after each completed trial, in a box bounded by the
reference point of `hypervolume_reference` (budgets where given, else the board's capacity or worst seen).
`dominates` and `non_dominated` are the one definition of Pareto dominance (all objectives minimised).
Tables and plots only draw these.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from nas.study.config import SearchConfig
from nas.study.objectives import OBJECTIVES, is_feasible

COLUMNS = ("trial", "int8_val_accuracy", "flash_bytes", "ram_bytes", "latency_ms", "macs", "params")


@dataclass(frozen=True)
class FrontRow:
    trial: int
    values: tuple[float, ...]  # objective values in the config's order
    figures: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"trial": self.trial, "values": list(self.values), **self.figures}


def usable_trials(study: optuna.Study, cfg: SearchConfig) -> list[FrozenTrial]:
    """Completed, trained trials within every budget."""
    return _usable(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)), cfg)


def _usable(trials: list[FrozenTrial], cfg: SearchConfig) -> list[FrozenTrial]:
    return [t for t in trials if t.state == TrialState.COMPLETE and t.user_attrs.get("trained")
            and is_feasible(cfg.budgets, t.user_attrs) and t.values is not None
            and all(math.isfinite(v) for v in t.values)]


def weakly_dominates(a: Any, b: Any) -> Any:
    """``a`` is no worse than ``b`` in every objective (all minimised). ``a`` may be a stack of points
    (one per row): then one answer per row."""
    return np.all(np.asarray(a) <= np.asarray(b), axis=-1)


def dominates(a: Any, b: Any) -> Any:
    """``a`` Pareto-dominates ``b``: no worse in every objective (all minimised) and better in one. ``a`` may
    be a stack of points (one per row): then one answer per row."""
    return weakly_dominates(a, b) & np.any(np.asarray(a) < np.asarray(b), axis=-1)


def non_dominated(points: Any) -> np.ndarray:
    """Mask of the rows of ``points`` (all objectives minimised) that no other row dominates."""
    points = np.asarray(points, float)
    keep = np.ones(len(points), bool)
    for i, p in enumerate(points):
        keep[i] = not dominates(points, p).any()
    return keep


def pareto_front(study: optuna.Study, cfg: SearchConfig) -> list[FrontRow]:
    """The feasible, trained, non-dominated trials, sorted by error then by the next objective."""
    return _front(usable_trials(study, cfg))


def _front(trials: list[FrozenTrial]) -> list[FrontRow]:
    if not trials:
        return []
    pts = np.array([t.values for t in trials], float)
    rows = [FrontRow(t.number, tuple(t.values), dict(t.user_attrs))
            for t, keep in zip(trials, non_dominated(pts), strict=True) if keep]
    return sorted(rows, key=lambda r: r.values)


def hypervolume_reference(cfg: SearchConfig, worst: np.ndarray | None = None) -> np.ndarray:
    """Per objective: error 1.0; a budget when set; else the worst value seen x 1.1 (or 1.0)."""
    ref = []
    for i, name in enumerate(cfg.objectives):
        key = OBJECTIVES[name]
        if name == "error":
            ref.append(1.0)
        elif key in cfg.budgets:
            ref.append(float(cfg.budgets[key]))
        elif worst is not None and len(worst):
            ref.append(float(worst[i]) * 1.1 or 1.0)
        else:
            ref.append(1.0)
    return np.array(ref, float)


def hypervolume(points: np.ndarray, ref: np.ndarray) -> float:
    """The volume the ``points`` (all objectives minimised) dominate inside the box up to ``ref``."""
    from optuna._hypervolume import compute_hypervolume

    inside = points[np.all(points < ref, axis=1)]
    if len(inside) == 0:
        return 0.0
    return float(compute_hypervolume(inside, ref, assume_pareto=False))


def _normalised(trials: list[FrozenTrial], cfg: SearchConfig,
                ref: np.ndarray | None = None) -> tuple[list[FrozenTrial], np.ndarray]:
    """Trials by number and their values divided by the reference point (every axis counts alike)."""
    trials = sorted(trials, key=lambda t: t.number)
    pts = np.array([t.values for t in trials], float)
    return trials, pts / (hypervolume_reference(cfg, pts.max(axis=0)) if ref is None else ref)


def hypervolume_history(study: optuna.Study, cfg: SearchConfig,
                        ref: np.ndarray | None = None) -> list[tuple[int, float]]:
    """(trial number, hypervolume of the usable trials up to it), objectives normalised by the reference
    point so every axis counts alike. Pass ``ref`` (raw objective units) to compare several studies in
    one box; by default unbudgeted objectives are bounded by this study's own worst value."""
    usable = usable_trials(study, cfg)
    if not usable:
        return []
    trials, norm = _normalised(usable, cfg, ref)
    ones = np.ones(norm.shape[1])
    return [(t.number, hypervolume(norm[: i + 1], ones)) for i, t in enumerate(trials)]


def trained_count(trials: list[FrozenTrial]) -> int:
    """Trained candidates among ``trials``: complete, or stopped early by successive halving (what a
    search's ``trials`` target counts)."""
    return sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) and bool(t.user_attrs.get("trained"))
               for t in trials)


def study_summary(study: optuna.Study, cfg: SearchConfig) -> dict[str, Any]:
    """Counts, front size and the current hypervolume, from one read of the storage (the progress bar
    calls this after every trial)."""
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    usable = _usable(complete, cfg)
    hv = 0.0
    if usable:
        _, norm = _normalised(usable, cfg)
        hv = hypervolume(norm, np.ones(norm.shape[1]))
    return {
        "study": cfg.name,
        "trials": len(trials),
        "complete": len(complete),
        "failed": sum(t.state == TrialState.FAIL for t in trials),
        "running": sum(t.state == TrialState.RUNNING for t in trials),
        "pruned": sum(t.state == TrialState.PRUNED for t in trials),  # stopped at a rung of successive halving
        # candidates the static check put over a budget: trials it refused (any sampler) plus the ones the
        # evolution sampler refused before they became trials
        "refused": sum("static_reject" in t.user_attrs for t in complete)
        + sum((t.system_attrs.get("kwsnas:evolution") or {}).get("refused", 0) for t in trials),
        "trained": trained_count(trials),
        "feasible": len(usable),
        "pareto_size": len(_front(usable)),
        "hypervolume": hv,
    }


def render_front(rows: list[FrontRow], cfg: SearchConfig) -> str:
    """A text table of the front: accuracy, flash, RAM, latency (with its kind), MACs, params."""
    if not rows:
        return "no feasible trained trial yet"
    head = f"{'trial':>5}  {'int8 acc':>8}  {'float acc':>9}  {'flash B':>9}  {'RAM B':>8}  {'latency ms':>12}  " \
           f"{'MACs':>11}  {'params':>8}  arch"
    lines = [head]
    for r in rows:
        f = r.figures
        lat = f.get("latency_ms")
        kind = "~" if f.get("latency_kind") == "estimated" else " "
        lines.append(f"{r.trial:>5}  {100 * f.get('int8_val_accuracy', math.nan):7.2f}%  "
                     f"{100 * f.get('float_val_accuracy', math.nan):8.2f}%  {f.get('flash_bytes', 0):>9,}  "
                     f"{f.get('ram_bytes', 0):>8,}  {kind}{lat:>11.2f}  {f.get('macs', 0):>11,}  "
                     f"{f.get('params', 0):>8,}  {_arch_line(f.get('spec'))}")
    how = {"emulator": "from emulated instruction counts x the board's CPI / clock",
           "analytic": "from the analytic model (no board)"}.get(rows[0].figures.get("hw_evaluator", ""), "")
    lines.append(f"accuracy: int8 on the validation split; ~ latency estimated {how} on {cfg.board}".rstrip())
    return "\n".join(lines)


def _arch_line(spec: dict | None) -> str:
    if not spec:
        return ""
    parts = []
    for layer in spec.get("layers", []):
        kind = layer.get("kind", "?")
        if kind in ("conv", "ds"):
            parts.append(f"{kind}{layer.get('filters')}")
        elif kind == "dense":
            parts.append(f"fc{layer.get('units')}")
    return " ".join(parts)
