"""Free static checks of a candidate against a search's budgets, before anything is measured.

    check = StaticCheck(cfg)            # the study's budgets, board and evaluator
    reason = check.reason(spec)         # None, or why the spec cannot fit ("flash ~41,200 B > 35,796 B")

Two tiers, both without a board, compiler or data:

1. `search_spaces.estimate` (microseconds): the ``params`` and ``macs`` budgets exactly; flash can hold no
   fewer bytes than the parameters (int8 weights, int32 biases); RAM no fewer than the largest activation
   tensor (every tensor exists at some point, in place or not).
2. The analytic evaluator on an untrained int8 build (`nas.models.probe`; 20-300 ms): its fitted flash,
   RAM and latency, each with a tolerance (`TOLERANCE`) at least as wide as the analytic model ever erred
   on the optimistic side against the emulator, so a candidate that would fit is never refused; the
   evaluator then measures the rest exactly. The latency check applies where latency is an estimate
   from instructions (emulated boards, the analytic evaluator), not to cycles measured on a real board.

The search uses it to refuse candidates before they become trials (`EvolutionSampler`) or before they
are measured (any other sampler), so a tight budget does not burn trials or board time.

With ``floors`` (a share of a budget per key, e.g. ``{"latency_ms": 0.6}``), ``check.below_floor(spec)`` says
when a spec uses less than that share of a budget (by the same estimates). The evolution sampler neither
proposes such a candidate nor breeds from one, so its line stays near the budget corner, where the accurate
networks are (TinyNAS's observation: under a memory limit, the design space with more computation holds
the more accurate models), instead of drifting to the cheap networks that lead at successive halving's
early rungs. A floor is a preference of the sampler, not a limit: the search's seeds and a user's own
architectures are trained whatever they cost.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import numpy as np

from search_spaces.estimate import estimate
from search_spaces.spec import ArchSpec

# Analytic estimate / emulator measurement on mps2-an386 over 84 specs (the ds-cnn and micronet presets,
# uniform samples, chains of 1-4 morphisms of DS-CNN-S and MicroNet-KWS-S; experiments/benchmarks/
# bench_static_check.py): flash 0.97-1.15 (kernel code is estimated per op, shared code is not seen),
# RAM 0.92-1.01, latency 0.43-1.00 (strided, 5x5 and 3x1 depthwise run slower kernels than fitted). A
# candidate is refused only when the estimate exceeds the budget by more than the estimate ever
# over-shot the measurement there (the bench checks that no spec that fits would have been refused).
TOLERANCE = {"flash_bytes": 1.20, "ram_bytes": 1.10, "latency_ms": 1.05}
_CALIBRATION_CLIPS = 4  # an untrained build needs plausible activation ranges, not real ones
_FEATURE_SCALE = 5.0  # ~ the spread of MFCC features, so every activation range is well above zero


class StaticCheck:
    """The budgets of a search checked on a spec, free of measurement (see the module docstring)."""

    def __init__(self, budgets: Mapping[str, float], board: str, evaluator: str = "emulator",
                 floors: Mapping[str, float] | None = None) -> None:
        self.budgets = dict(budgets)
        self.floors = {k: v for k, v in (floors or {}).items() if k in self.budgets}
        self.board = board
        self.latency_is_estimate = evaluator in ("emulator", "analytic")
        self.tolerance = {k: (1.0 if evaluator == "analytic" else v) for k, v in TOLERANCE.items()}

    @classmethod
    def of(cls, cfg: Any) -> StaticCheck:
        """The check of a `SearchConfig` (its budgets, board, evaluator and budget floors)."""
        return cls(cfg.budgets, cfg.board, cfg.evaluator, cfg.budget_floor)

    def reason(self, spec: ArchSpec) -> str | None:
        """Why ``spec`` certainly breaks a budget, or None when it may fit (then measure it)."""
        if not self.budgets:
            return None
        est = estimate(spec)
        static = {"params": est.params, "macs": est.macs}
        for key, value in static.items():
            if key in self.budgets and value > self.budgets[key]:
                return f"{key} {value:,} > {self.budgets[key]:,.0f}"
        least = {"flash_bytes": est.weight_bytes,
                 "ram_bytes": max((layer.output_bytes for layer in est.layers), default=0)}
        for key, bound in least.items():
            if key in self.budgets and bound > self.budgets[key]:
                return f"{key} at least {bound:,} B > {self.budgets[key]:,.0f} B"
        hardware = [k for k in ("flash_bytes", "ram_bytes", "latency_ms") if k in self.budgets]
        if not self.latency_is_estimate and "latency_ms" in hardware:
            hardware.remove("latency_ms")
        if not hardware:
            return None
        m = analytic_figures(spec, self.board)
        for key in hardware:
            if m[key] > self.budgets[key] * self.tolerance[key]:
                unit = "ms" if key == "latency_ms" else "B"
                return f"{key} ~{m[key]:,.1f} {unit} (analytic) > {self.budgets[key]:,.1f} {unit} x {self.tolerance[key]}"
        return None

    def below_floor(self, spec: ArchSpec) -> str | None:
        """Why ``spec`` uses less than a floor's share of its budget (estimated), or None."""
        if not self.floors:
            return None
        est = estimate(spec)
        figures: dict[str, float] = {"params": est.params, "macs": est.macs}
        if any(k not in figures for k in self.floors):
            figures.update(analytic_figures(spec, self.board))
        for key, share in self.floors.items():
            if figures[key] < share * self.budgets[key]:
                return f"{key} ~{figures[key]:,.1f} < {share} x its budget {self.budgets[key]:,.1f} (the floor)"
        return None

    def __call__(self, spec: ArchSpec) -> str | None:
        return self.reason(spec)


@functools.lru_cache(maxsize=4096)
def analytic_figures(spec: ArchSpec, board: str) -> dict[str, float]:
    """The analytic evaluator's flash, RAM and latency of an untrained int8 build of ``spec``."""
    from hardware.evaluators import AnalyticEvaluator
    from hardware.tflite_io import write_tflite
    from nas.models.probe import probe_folded
    from nas.quant.float_graph import float_graph
    from nas.quant.ptq import calibrate, quantize_graph

    fg = float_graph(spec, probe_folded(spec, 0))
    features = _FEATURE_SCALE * np.random.default_rng(0).standard_normal(
        (_CALIBRATION_CLIPS, *spec.frontend.feature_shape)).astype(np.float32)
    m = AnalyticEvaluator().measure(write_tflite(quantize_graph(fg, calibrate(fg, features, clip_percent=0))), board)
    return {"flash_bytes": float(m.flash_bytes), "ram_bytes": float(m.ram_bytes), "latency_ms": float(m.latency_ms_est)}
