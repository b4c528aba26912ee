"""TFLM arena measurement: found by binary search, sufficient, and tight."""

from __future__ import annotations

import numpy as np
import pytest

from hardware.tflite_io import write_tflite
from tests.helpers.int8_graphs import ds_cnn_s

pytest.importorskip("tflite_micro.python.tflite_micro.runtime")

from hardware.arena import tflm_arena_bytes, tflm_runs_with  # noqa: E402


def test_ds_cnn_s_arena_is_found_and_tight() -> None:
    data = write_tflite(ds_cnn_s(np.random.default_rng(0), softmax=True))
    arena = tflm_arena_bytes(data)
    print(f"DS-CNN-S TFLM arena: {arena} bytes")
    assert 16 * 1024 <= arena <= 40 * 1024  # GUIDE: ~24 KB
    assert tflm_runs_with(data, arena)
    assert not tflm_runs_with(data, arena - 4)
    assert not tflm_runs_with(data, 0)  # crashes the host interpreter: the probe survives it


def test_float_io_needs_more_arena() -> None:
    int8 = tflm_arena_bytes(write_tflite(ds_cnn_s(np.random.default_rng(0))))
    float_io = tflm_arena_bytes(write_tflite(ds_cnn_s(np.random.default_rng(0), float_io=True)))
    print(f"arena int8 IO {int8} B, float32 IO {float_io} B")
    assert float_io > int8  # the float32 input (49*10*4 bytes) lives beside its int8 copy
