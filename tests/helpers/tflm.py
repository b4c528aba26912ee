"""TFLM's own Python interpreter (``tflite-micro``, preserve-all-tensors mode) as the judge of the golden
reference: every activation tensor compared. Importing this module skips the importing test module when
``tflite-micro`` is not installed."""

from __future__ import annotations

import numpy as np
import pytest

from hardware import reference
from hardware.graph import Int8Graph

runtime = pytest.importorskip("tflite_micro.python.tflite_micro.runtime")

_ARENA = 4_000_000


def _tflm(data: bytes):
    return runtime.Interpreter.from_bytes(data, arena_size=_ARENA,
                                          intrepreter_config=runtime.InterpreterConfig.kPreserveAllTensors)


def compare_with_tflm(g: Int8Graph, data: bytes, xs: np.ndarray, file_index=None) -> tuple[int, int]:
    """(values compared, values differing) over every activation tensor of ``g`` and every input.
    ``file_index`` maps graph tensor indices to the file's (identity for our writer's files)."""
    ref = reference.run_all(g, xs)
    interp = _tflm(data)
    compared = differing = 0
    for n in range(len(xs)):
        interp.set_input(xs[n], 0)
        interp.invoke()
        for t, values in ref.items():
            got = interp.GetTensor(file_index[t] if file_index else t, 0)["tensor_data"]
            assert got.shape == values[n].shape, (t, got.shape, values[n].shape)
            compared += got.size
            differing += int(np.count_nonzero(got != values[n]))
    return compared, differing
