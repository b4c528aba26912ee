"""The evaluator contract (see :mod:`hardware.evaluators`) and the ``measure`` every evaluator shares."""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Protocol, runtime_checkable

from hardware.boards import Board, get_board
from hardware.evaluators.cache import MeasurementCache
from hardware.evaluators.result import Measurement
from hardware.graph import Int8Graph
from hardware.tflite_io import TfliteError, read_tflite


@runtime_checkable
class Evaluator(Protocol):
    """``measure(model_bytes, board) -> Measurement``; see the module docstring for the contract."""

    name: str

    def measure(self, model_bytes: bytes, board: Board | str | None = None) -> Measurement: ...


class CachingEvaluator:
    """The shared ``measure``: board lookup, the disk cache, parsing the model (a bad one is an answer,
    not an exception); subclasses give ``name``, ``_settings(board)`` (what the cache key covers
    besides the model and the board) and ``_measure(model_bytes, graph, board)``."""

    name = "base"

    def __init__(self, *, cache: bool | MeasurementCache = True) -> None:
        self.cache = MeasurementCache() if cache is True else cache or None

    def _settings(self, board: Board) -> dict[str, Any]:
        raise NotImplementedError

    def _measure(self, model_bytes: bytes, graph: Int8Graph, board: Board) -> Measurement:
        raise NotImplementedError

    def measure(self, model_bytes: bytes, board: Board | str | None = None) -> Measurement:
        t0 = time.perf_counter()
        board = get_board(board)
        key = None
        if self.cache is not None:
            key = MeasurementCache.key(model_bytes, board, {"evaluator": self.name, **self._settings(board)})
            hit = self.cache.get(key)
            if hit is not None:
                return dataclasses.replace(hit, cached=True, wall_s=time.perf_counter() - t0)
        try:
            graph = read_tflite(bytes(model_bytes))
        except (TfliteError, TypeError) as e:
            return Measurement(board.name, "", self.name, ok=False, error=f"model: {e}",
                               wall_s=time.perf_counter() - t0)
        m = self._measure(bytes(model_bytes), graph, board)
        m = dataclasses.replace(m, wall_s=time.perf_counter() - t0)
        if key is not None and (m.ok or m.feasible is False):  # transient failures are not kept
            self.cache.put(key, m)
        return m


def failed(name: str, board: Board, graph: Int8Graph, error: str, **kw) -> Measurement:
    """A Measurement that says why it has no figures."""
    return Measurement(board.name, graph.digest()[:16], name, ok=False, error=error, **kw)
