"""Post-training quantization: the float graph is the trained network, and the int8 graph it becomes is
valid, bit-exact between our reference and TFLM, and close to the float network.

Every preset goes through float graph -> calibration -> int8 graph -> `.tflite` -> TFLM, with batch-norm
statistics randomised so folding matters.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hardware import reference
from hardware.graph import DType, OpKind
from hardware.tflite_io import read_tflite, write_tflite
from nas.models import build_model
from nas.quant.float_graph import float_graph
from nas.quant.ptq import (
    SOFTMAX_OUTPUT,
    activation_quantization,
    as_graph_input,
    calibrate,
    quantize_features,
    quantize_graph,
    run_int8,
    weight_quantization,
)
from search_spaces.presets import PRESET_NAMES, get_preset
from tests.helpers.models import random_features, randomised_model
from tests.helpers.tflm import compare_with_tflm  # skips this module without tflite-micro


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_float_graph_is_the_model(name: str) -> None:
    spec = get_preset(name)
    model = randomised_model(spec, 3)
    x = random_features(spec, 6, 0)
    fg = float_graph(spec, model.folded())
    got = reference.run(fg, as_graph_input(x))[0].reshape(len(x), -1)
    want = np.asarray(jax.nn.softmax(model(jnp.asarray(x), train=False), -1))
    np.testing.assert_allclose(got, want, atol=2e-5)
    assert fg.ops[-1].kind == OpKind.SOFTMAX and fg.tensors[fg.inputs[0]].shape == (1, *spec.frontend.feature_shape, 1)


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_quantized_preset_is_bit_exact_with_tflm_and_close_to_float(name: str) -> None:
    spec = get_preset(name)
    model = randomised_model(spec, 4)
    fg = float_graph(spec, model.folded())
    # min/max ranges: random networks have no outliers worth clipping, and 64 clips give few tail values
    q = quantize_graph(fg, calibrate(fg, random_features(spec, 64, 1), clip_percent=0))
    # int8 in and out, per-channel weights, int32 biases
    assert q.tensors[q.inputs[0]].dtype == DType.INT8 and q.tensors[q.outputs[0]].dtype == DType.INT8
    assert q.tensors[q.outputs[0]].quantization == SOFTMAX_OUTPUT
    for op in q.ops:
        if op.kind in (OpKind.CONV_2D, OpKind.DEPTHWISE_CONV_2D, OpKind.FULLY_CONNECTED):
            w, b = q.tensors[op.inputs[1]], q.tensors[op.inputs[2]]
            assert w.quantization.is_per_channel and b.dtype == DType.INT32
    data = write_tflite(q)
    assert read_tflite(data) == q
    x = random_features(spec, 16, 2)
    xq = quantize_features(as_graph_input(x[:3]), q.tensors[q.inputs[0]].quantization)
    compared, differing = compare_with_tflm(q, data, xq)
    assert compared > 0 and differing == 0
    # the int8 network agrees with the float one on most clips (random weights: a loose check)
    probs = reference.run(fg, as_graph_input(x))[0].reshape(len(x), -1)
    out = run_int8(q, x).astype(np.float64)
    deq = (out + 128) / 256.0
    assert np.abs(deq - probs).max() < 0.25
    assert np.mean(deq.argmax(1) == probs.argmax(1)) >= 0.75


def test_activation_quantization_includes_zero_and_covers_the_range() -> None:
    for lo, hi in [(-3.0, 5.0), (0.0, 6.0), (2.0, 7.0), (-4.0, -1.0), (0.0, 0.0)]:
        q = activation_quantization(lo, hi)
        s, z = q.scale[0], q.zero_point[0]
        assert -128 <= z <= 127 and s > 0
        # the range's ends are within one step of the representable interval
        assert s * (-128 - z) <= min(lo, 0) + s and s * (127 - z) >= max(hi, 0) - s
    assert activation_quantization(0.0, 6.0).zero_point == (-128,)


def test_weight_quantization_is_symmetric_per_channel() -> None:
    rng = np.random.default_rng(0)
    w = rng.normal(size=(5, 3, 3, 4)).astype(np.float32)
    w[2] = 0.0  # an all-zero channel still gets a valid (positive) scale
    q, quant = weight_quantization(w, 0)
    assert q.dtype == np.int8 and q.min() >= -127 and quant.axis == 0 and len(quant.scale) == 5
    assert np.all(np.abs(q.reshape(5, -1)).max(1)[[0, 1, 3, 4]] == 127) and not q[2].any()
    back = q * quant.scales.reshape(-1, 1, 1, 1)
    assert np.abs(back - w).max() <= quant.scales.max() / 2 + 1e-6
    dq, dquant = weight_quantization(w[:1].transpose(0, 1, 2, 3), 3)
    assert dquant.axis == 3 and len(dquant.scale) == 4


def test_feature_quantization_rounds_or_truncates() -> None:
    from hardware.graph import Quantization

    q = Quantization.per_tensor(0.5, 3)
    x = np.array([0.25, -0.25, 0.74, -0.76, 1000.0, -1000.0], np.float32)
    assert quantize_features(x, q).tolist() == [4, 2, 4, 1, 127, -128]
    # MLPerf Tiny truncates after adding the zero point: trunc(x / s + zp)
    assert quantize_features(x, q, truncate=True).tolist() == [3, 2, 4, 1, 127, -128]


def test_percentile_calibration_clips_the_tails() -> None:
    spec = get_preset("ds-cnn-s")
    fg = float_graph(spec, randomised_model(spec, 5).folded())
    x = random_features(spec, 50, 3)
    full, clipped = calibrate(fg, x, clip_percent=0), calibrate(fg, x)
    assert full.bounds.keys() == clipped.bounds.keys() and full.clips == clipped.clips == 50
    for t, (lo, hi) in clipped.bounds.items():
        assert full.bounds[t][0] <= lo <= hi <= full.bounds[t][1]
    assert any(clipped.bounds[t][1] < full.bounds[t][1] for t in full.bounds)
    assert calibrate(fg, x) == clipped  # seeded: the same ranges every time
    with pytest.raises(ValueError, match="clip_percent"):
        calibrate(fg, x, clip_percent=50)


def test_calibrate_rejects_int8_graphs_and_empty_sets() -> None:
    spec = get_preset("dnn-s")
    fg = float_graph(spec, build_model(spec, 0).folded())
    with pytest.raises(ValueError, match="at least one clip"):
        calibrate(fg, np.zeros((0, *spec.frontend.feature_shape), np.float32))
    q = quantize_graph(fg, calibrate(fg, random_features(spec, 4, 0)))
    with pytest.raises(ValueError, match="float graph"):
        calibrate(q, random_features(spec, 4, 0))
