"""What a search can minimise, and the hard budgets it can impose.

Every objective is minimised and read from a candidate's figures (`CandidateFigures`, a flat dict kept
in the trial's user attributes):

=============  =============================================================================
error          1 - int8 validation accuracy (what the board computes, not the float model's)
flash_bytes    firmware flash: model data + kernels + runtime (measured from the ELF)
ram_bytes      static RAM + peak stack (the arena is static); measured
latency        ms per inference: measured on a real board; on an emulator an *estimate*
               (executed instructions x the board's CPI / clock), deterministic
macs           multiply-accumulates of one inference
params         parameters (weights and biases)
=============  =============================================================================

Budgets are upper bounds on ``flash_bytes``, ``ram_bytes``, ``latency_ms``, ``macs`` or ``params``;
they become Optuna constraints (``value - budget``, feasible when <= 0).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

OBJECTIVES: dict[str, str] = {
    "error": "error",
    "flash_bytes": "flash_bytes",
    "ram_bytes": "ram_bytes",
    "latency": "latency_ms",
    "macs": "macs",
    "params": "params",
}
BUDGET_KEYS = ("flash_bytes", "ram_bytes", "latency_ms", "macs", "params")
HARDWARE_KEYS = ("flash_bytes", "ram_bytes", "latency_ms")  # need a measurement (or an estimate)
LABELS = {"error": "error (1 - int8 accuracy)", "flash_bytes": "flash (bytes)", "ram_bytes": "RAM (bytes)",
          "latency": "latency (ms)", "macs": "MACs", "params": "parameters"}


def objective_values(objectives: tuple[str, ...], figures: Mapping[str, Any]) -> list[float]:
    """The values to report to Optuna, in ``objectives`` order; KeyError names a missing figure."""
    out = []
    for name in objectives:
        key = OBJECTIVES[name]
        value = figures.get(key)
        if value is None:
            raise KeyError(f"objective {name!r} needs the figure {key!r}, which this candidate lacks")
        out.append(float(value))
    return out


def constraint_values(budgets: Mapping[str, float], figures: Mapping[str, Any]) -> dict[str, float]:
    """``figure - budget`` per budget (<= 0 is feasible); a missing figure counts as infeasible."""
    out = {}
    for key, limit in budgets.items():
        value = figures.get(key)
        out[key] = float("inf") if value is None else float(value) - float(limit)
    return out


def is_feasible(budgets: Mapping[str, float], figures: Mapping[str, Any]) -> bool:
    return all(v <= 0 for v in constraint_values(budgets, figures).values())
