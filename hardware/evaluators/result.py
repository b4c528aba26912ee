"""What a measurement gives: :class:`Measurement` (one model on one board) and its per-op counts."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class OpCount:
    name: str
    kind: str
    macs: int
    count: int | None      # in the Measurement's counter unit; None when not measured


@dataclass(frozen=True)
class Measurement:
    """One model on one board. Sizes in bytes; ``ram_bytes`` = static RAM + peak stack."""

    board: str
    model_digest: str                    # Int8Graph.digest()[:16] ("" if the model did not parse)
    evaluator: str                       # "emulator", "serial" or "analytic"
    ok: bool
    error: str | None = None
    feasible: bool | None = None         # False: over the board's flash or RAM budget
    estimated: bool = False              # True: every figure is an estimate (AnalyticEvaluator)
    variant: str = ""                    # code generator variant ("plain" or "dsp")
    counter: str = ""                    # "instructions" or "cycles"
    instructions: int | None = None
    cycles: int | None = None
    run_counts: tuple[int, ...] = ()     # every timed run, in the counter unit
    latency_ms: float | None = None      # measured on a real board
    latency_ms_est: float | None = None  # estimate (emulated instructions x CPI / clock, or analytic)
    flash_bytes: int | None = None
    flash_split: Mapping[str, int] = field(default_factory=dict)
    ram_bytes: int | None = None
    ram_static_bytes: int | None = None
    ram_arena_bytes: int | None = None
    ram_stack_bytes: int | None = None   # peak, measured by stack painting
    ram_harness_bytes: int | None = None  # protocol buffers and the staged input (not the model's)
    ops: tuple[OpCount, ...] = ()
    output_match: bool | None = None
    outputs_checked: int = 0
    tensors_checked: int = 0             # intermediate tensors read from the board and compared too
    real_inputs_checked: int = 0         # of outputs_checked, inputs from real clips (the rest seeded random)
    toolchain_version: str | None = None
    firmware_version: str | None = None
    qemu_version: str | None = None
    wall_s: float = 0.0
    cached: bool = False

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["flash_split"] = dict(self.flash_split)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Measurement:
        d = dict(d)
        d["ops"] = tuple(OpCount(**o) for o in d.get("ops", ()))
        d["run_counts"] = tuple(d.get("run_counts", ()))
        return cls(**{k: v for k, v in d.items() if k in _FIELDS})


_FIELDS = {f.name for f in dataclasses.fields(Measurement)}
