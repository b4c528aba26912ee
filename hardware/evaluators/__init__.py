"""What a model costs on a board: the :class:`Evaluator` protocol, its three implementations and
:func:`get_evaluator`, which picks one.

    from hardware.evaluators import EmulatorEvaluator
    m = EmulatorEvaluator().measure(open("model.tflite", "rb").read(), "mps2-an386")
    m.ok, m.flash_bytes, m.ram_bytes, m.instructions, m.latency_ms_est, m.output_match

Contract of ``Evaluator.measure(model_bytes, board) -> Measurement``:

- It never raises for a bad model, a model that does not fit, or a board that misbehaves: the
  Measurement says ``ok=False`` and why (``error``); ``feasible=False`` marks a model over the
  board's flash or RAM budget (found at link time), which is an answer, not a failure.
- Units are in the names: bytes, ms. Counts are named by kind: ``instructions`` (emulator:
  executed instructions, exact and deterministic) or ``cycles`` (real boards: DWT cycle counter,
  median over runs). ``latency_ms`` is measured (cycles / clock); ``latency_ms_est`` is an estimate
  (instructions x the board's CPI / clock, or the analytic model) and says so by its name.
- ``output_match`` is True when the device's outputs equal :func:`hardware.reference.run`'s, bit
  for bit, on ``checks`` seeded random inputs.
- Results are cached on disk keyed by the model's bytes, the board's fields, the evaluator's
  settings and the firmware, toolchain and QEMU versions; a cache hit has ``cached=True``.

:class:`EmulatorEvaluator` builds the firmware and runs it in QEMU; :class:`SerialBoardEvaluator`
talks to a board already running the firmware (optionally programming it first) over any pyserial
URL; :class:`AnalyticEvaluator` needs no toolchain and estimates everything from the graph
(``estimated=True``).

Modules: ``result`` (Measurement), ``base`` (the contract and the cached ``measure``), ``cache``,
``session`` (the dialogue with the firmware and the bit-exact check), ``building`` (generate C and
build firmware), ``emulator``, ``serial_board``, ``analytic``. Importing this package is light (the
CLI reads ``EVALUATORS`` when it starts): the classes load on first use.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hardware.boards import Board
    from hardware.evaluators.analytic import AnalyticEvaluator
    from hardware.evaluators.base import Evaluator
    from hardware.evaluators.cache import MeasurementCache
    from hardware.evaluators.emulator import EmulatorEvaluator, emulation_missing
    from hardware.evaluators.result import Measurement, OpCount
    from hardware.evaluators.serial_board import SerialBoardEvaluator
    from hardware.evaluators.session import CheckInputs

__all__ = [
    "EVALUATORS", "AnalyticEvaluator", "CheckInputs", "EmulatorEvaluator", "EvaluatorChoiceError", "Evaluator",
    "Measurement", "MeasurementCache", "OpCount", "SerialBoardEvaluator", "emulation_missing", "get_evaluator",
]

log = logging.getLogger(__name__)

EVALUATORS = ("emulator", "serial", "analytic")

# the public names and the module each lives in, loaded on first use (PEP 562)
_LAZY = {"AnalyticEvaluator": "analytic", "Evaluator": "base", "MeasurementCache": "cache",
         "EmulatorEvaluator": "emulator", "emulation_missing": "emulator", "Measurement": "result",
         "OpCount": "result", "SerialBoardEvaluator": "serial_board", "CheckInputs": "session"}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)


class EvaluatorChoiceError(ValueError):
    """The options given cannot make an evaluator (the message says which and why)."""


def get_evaluator(kind: str | None, board: Board | str | None = None, *, port: str | Callable[[], str] | None = None,
                  variant: str | None = None, cache: bool | MeasurementCache = True, flash: str | None = None,
                  probe: str | None = None, debug: bool = False, check_inputs: CheckInputs | None = None) -> Evaluator:
    """The evaluator ``kind`` names, for ``board``. ``kind=None`` picks: ``serial`` with a ``port`` or
    for a real board, else ``emulator``, or ``analytic`` (with a warning) when the emulator's tools
    are missing; a named ``emulator`` without them is an error. ``flash`` (``pyocd[:TARGET]`` or a
    command) programs a serial board first; ``check_inputs`` gives real inputs for the device check. Raises
    :class:`EvaluatorChoiceError` for contradictory options."""
    from hardware.boards import get_board
    from hardware.evaluators.analytic import AnalyticEvaluator
    from hardware.evaluators.emulator import EmulatorEvaluator, emulation_missing
    from hardware.evaluators.serial_board import SerialBoardEvaluator
    from hardware.flashing import make_programmer

    if kind is not None and kind not in EVALUATORS:
        raise EvaluatorChoiceError(f"evaluator must be one of {', '.join(EVALUATORS)}, got {kind!r}")
    board = get_board(board)
    missing = emulation_missing() if kind in (None, "emulator") else None
    if kind is None:
        kind = "serial" if port or not board.emulated else "emulator"
        if kind == "emulator" and missing:
            log.warning("estimating analytically: %s", missing)
            kind = "analytic"
    elif kind == "emulator" and missing:
        raise EvaluatorChoiceError(f"--evaluator emulator: {missing}")
    if port and kind != "serial":
        raise EvaluatorChoiceError(f"--port is for --evaluator serial, not {kind}")
    if kind == "emulator" and not board.emulated:
        raise EvaluatorChoiceError(f"board {board.name} is a real board: use --evaluator serial --port URL "
                                   "(or --evaluator analytic)")
    if flash and kind != "serial":
        raise EvaluatorChoiceError(f"--flash is for real boards (--evaluator serial), not {kind}")
    if kind == "analytic":
        return AnalyticEvaluator(variant=variant)  # pure and fast: not worth a disk cache
    if kind == "serial":
        return SerialBoardEvaluator(port, variant=variant, cache=cache, program=make_programmer(flash, probe=probe),
                                    debug=debug, check_inputs=check_inputs)
    return EmulatorEvaluator(variant=variant, cache=cache, debug=debug, check_inputs=check_inputs)
