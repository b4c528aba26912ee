"""The evolution sampler's test setup: budgets of a preset, the fitness the sampler reads, and a stand-in
objective (imported by the tests and by the worker processes they start)."""

from __future__ import annotations

import optuna
from optuna.trial import TrialState

from nas.study.static_check import analytic_figures
from search_spaces import get_preset


def preset_budgets(preset: str) -> dict[str, float]:
    fig = analytic_figures(get_preset(preset), "mps2-an386")
    return {"flash_bytes": fig["flash_bytes"], "ram_bytes": fig["ram_bytes"], "latency_ms": fig["latency_ms"]}


def fitness(t):
    return {1.0: (float(t.values[0]),)} if t.state == TrialState.COMPLETE else None


def objective(space):
    def objective(trial: optuna.Trial) -> float:
        spec = space.sample(trial)
        trial.set_user_attr("spec_digest", spec.digest())
        # a stand-in for accuracy that likes capacity: the search should climb towards the budget
        return -float(analytic_figures(spec, "mps2-an386")["latency_ms"])
    return objective
