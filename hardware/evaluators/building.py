"""What the evaluators that generate C and build firmware share: settings, the build, check inputs,
the run timeout (:class:`EmulatorEvaluator` and :class:`SerialBoardEvaluator` build on it)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from hardware.boards import Board
from hardware.codegen import generate as default_generate
from hardware.evaluators.base import CachingEvaluator, failed
from hardware.evaluators.cache import MeasurementCache, sources_digest
from hardware.evaluators.session import CheckInputs
from hardware.firmware.build import (
    DEFAULT_STACK_BYTES,
    FIRMWARE_VERSION,
    BuildError,
    DoesNotFit,
    build_firmware,
    firmware_sources_digest,
    toolchain_version,
)
from hardware.graph import Int8Graph


class BuildingEvaluator(CachingEvaluator):
    """Common to the evaluators that generate C and build firmware."""

    def __init__(self, *, checks: int = 3, runs: int = 1, per_op: bool = True, seed: int = 0,
                 variant: str | None = None, stack_bytes: int | None = None, generate: Callable | None = None,
                 run_timeout_s: float | None = None, retries: int = 4,
                 cache: bool | MeasurementCache = True, debug: bool = False,
                 check_inputs: CheckInputs | None = None) -> None:
        super().__init__(cache=cache)
        if checks < 1 or runs < 1:
            raise ValueError("checks and runs must be at least 1")
        self.checks, self.runs, self.per_op, self.seed = checks, runs, per_op, seed
        self.variant = variant
        self.stack_bytes = stack_bytes
        self._generate = generate
        self.run_timeout_s = run_timeout_s  # None: from the model's MACs (_run_timeout_s)
        self.retries = retries              # per protocol request
        self.debug = debug                  # keep_all builds: every intermediate tensor compared (sizes are the debug build's)
        self.check_inputs = check_inputs    # real inputs for the check (random ones otherwise)

    def _variant(self, board: Board) -> str:
        return self.variant or ("dsp" if board.dsp else "plain")

    def _settings(self, board: Board) -> dict[str, Any]:
        gen = self._generate
        return {"checks": self.checks, "runs": self.runs, "per_op": self.per_op, "seed": self.seed,
                "variant": self._variant(board), "stack": self.stack_bytes, "firmware": FIRMWARE_VERSION,
                "firmware_sources": firmware_sources_digest(), "toolchain": toolchain_version(),
                "generator": f"{gen.__module__}.{gen.__qualname__}" if gen is not None else "default",
                "sources": sources_digest(), "debug": self.debug,
                "inputs": getattr(self.check_inputs, "id", None)}

    def _build(self, graph: Int8Graph, board: Board):
        """(gm, image, failed Measurement or None)."""
        variant = self._variant(board)
        try:
            generate = self._generate or default_generate
            gm = generate(graph, variant=variant, prefix="kws", **({"keep_all": True} if self.debug else {}))
        except Exception as e:  # the generator's own errors (unsupported op, ...) are answers
            return None, None, failed(self.name, board, graph, f"codegen: {e}", variant=variant)
        try:
            image = build_firmware(gm, board, stack_bytes=self.stack_bytes or DEFAULT_STACK_BYTES)
        except DoesNotFit as e:
            return gm, None, failed(self.name, board, graph, str(e), feasible=False, variant=variant)
        except BuildError as e:
            return gm, None, failed(self.name, board, graph, f"build: {e}", variant=variant)
        return gm, image, None

    def _real(self, graph: Int8Graph) -> np.ndarray | None:
        return None if self.check_inputs is None else self.check_inputs(graph)

    def _run_timeout_s(self, graph: Int8Graph) -> float:
        if self.run_timeout_s is not None:
            return self.run_timeout_s
        return 5.0 + 1e-6 * graph.macs()  # ~1 us per MAC: far slower than QEMU or any board here
