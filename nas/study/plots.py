"""Render a study: Pareto fronts for each pair of objectives (PNG with matplotlib, HTML with plotly),
the hypervolume history, and labelled reference points (published or preset models measured the same
way). Only draws what `nas.study.pareto` computed.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nas.study.config import SearchConfig
from nas.study.objectives import LABELS, OBJECTIVES
from nas.study.pareto import FrontRow, hypervolume_history, pareto_front, usable_trials


@dataclass(frozen=True)
class ReferencePoint:
    """A model drawn as a labelled point: its figures keyed like a trial's (error, flash_bytes, ...)."""

    label: str
    figures: dict[str, Any]


@dataclass(frozen=True)
class PlotData:
    objectives: tuple[str, ...]
    all_points: np.ndarray  # [n, objectives] of usable trials
    all_trials: tuple[int, ...]
    front: tuple[FrontRow, ...]
    hypervolume: tuple[tuple[int, float], ...]
    references: tuple[ReferencePoint, ...]
    title: str


def plot_data(study, cfg: SearchConfig, references: list[ReferencePoint] | None = None) -> PlotData:
    trials = usable_trials(study, cfg)
    pts = np.array([t.values for t in trials], float).reshape(len(trials), len(cfg.objectives))
    return PlotData(tuple(cfg.objectives), pts, tuple(t.number for t in trials), tuple(pareto_front(study, cfg)),
                    tuple(hypervolume_history(study, cfg)), tuple(references or ()),
                    f"{cfg.name}: {cfg.space} on {cfg.board}")


def _axis(values: np.ndarray, name: str) -> np.ndarray:
    return 100.0 * (1.0 - values) if name == "error" else values


def _axis_label(name: str) -> str:
    return "int8 accuracy (%)" if name == "error" else LABELS[name]


def _ref_value(ref: ReferencePoint, name: str) -> float | None:
    v = ref.figures.get(OBJECTIVES[name])
    return None if v is None else float(v)


def write_plots(data: PlotData, out_dir: Path) -> list[Path]:
    """PNG and HTML per objective pair, plus the hypervolume history; returns the files written."""
    import plotly.graph_objects as go

    from nas.plotting import pyplot, save_png

    plt = pyplot()

    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    front_idx = {r.trial for r in data.front}
    for i, j in itertools.combinations(range(len(data.objectives)), 2):
        a, b = data.objectives[i], data.objectives[j]
        x, y = _axis(data.all_points[:, i], a), _axis(data.all_points[:, j], b)
        on = np.array([t in front_idx for t in data.all_trials], bool)
        fig, ax = plt.subplots(figsize=(6, 4.5))
        ax.scatter(x[~on], y[~on], s=18, c="0.7", label="trials")
        ax.scatter(x[on], y[on], s=30, c="C0", label="Pareto front (all objectives)")
        for t, xi, yi in zip(np.array(data.all_trials)[on], x[on], y[on], strict=True):
            ax.annotate(f"#{t}", (xi, yi), fontsize=7, xytext=(3, 3), textcoords="offset points")
        for ref in data.references:
            rx, ry = _ref_value(ref, a), _ref_value(ref, b)
            if rx is None or ry is None:
                continue
            rx, ry = _axis(np.array([rx]), a)[0], _axis(np.array([ry]), b)[0]
            ax.scatter([rx], [ry], marker="*", s=90, c="C3")
            ax.annotate(ref.label, (rx, ry), fontsize=8, color="C3", xytext=(4, -8), textcoords="offset points")
        ax.set_xlabel(_axis_label(a))
        ax.set_ylabel(_axis_label(b))
        ax.set_title(data.title, fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        written.append(save_png(fig, out_dir / f"pareto_{a}_vs_{b}.png"))

        g = go.Figure()
        g.add_trace(go.Scatter(x=x, y=y, mode="markers", name="trials",
                               text=[f"trial {t}" for t in data.all_trials],
                               marker={"color": ["#1f77b4" if o else "#bbbbbb" for o in on]}))
        refs = [(r.label, _ref_value(r, a), _ref_value(r, b)) for r in data.references]
        refs = [(lab, _axis(np.array([p]), a)[0], _axis(np.array([q]), b)[0]) for lab, p, q in refs
                if p is not None and q is not None]
        if refs:
            g.add_trace(go.Scatter(x=[r[1] for r in refs], y=[r[2] for r in refs], mode="markers+text",
                                   name="reference models", text=[r[0] for r in refs], textposition="top center",
                                   marker={"symbol": "star", "size": 12, "color": "#d62728"}))
        g.update_layout(title=data.title, xaxis_title=_axis_label(a), yaxis_title=_axis_label(b))
        html = out_dir / f"pareto_{a}_vs_{b}.html"
        g.write_html(str(html), include_plotlyjs=True, full_html=True)  # offline: plotly.js embedded
        written.append(html)

    fig, ax = plt.subplots(figsize=(6, 3.5))
    if data.hypervolume:
        ax.step([n for n, _ in data.hypervolume], [h for _, h in data.hypervolume], where="post")
    ax.set_xlabel("trial")
    ax.set_ylabel("hypervolume (normalised)")
    ax.set_title(data.title, fontsize=9)
    ax.grid(alpha=0.3)
    written.append(save_png(fig, out_dir / "hypervolume.png"))
    summary = out_dir / "front.json"
    summary.write_text(json.dumps({"front": [r.to_dict() for r in data.front],
                                   "references": [{"label": r.label, **r.figures} for r in data.references],
                                   "hypervolume": data.hypervolume}, indent=2, default=str) + "\n")
    written.append(summary)
    return written
