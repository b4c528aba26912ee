"""The numpy reference is bit-exact with TFLM: zero mismatching values at every intermediate tensor.

TFLM's own Python interpreter (``tflite-micro``, preserve-all-tensors mode) is the judge. Graphs:
(a) DS-CNN-S with random weights and calibrated quantization, (b) seeded random graphs covering
every op kind, fused activation, stride, padding and quantization corner, (c) `.tflite` files
written here with the `tflite` schema builders in TensorFlow converter style (not by our writer).
Every model our writer produces also loads and runs in LiteRT with XNNPACK off.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pytest
import tflite

from hardware import fixedpoint as fx
from hardware import reference
from hardware.graph import DType, Int8Graph
from hardware.tflite_io import read_tflite, write_tflite
from tests.helpers.int8_graphs import ds_cnn_s, random_graph
from tests.helpers.tflite_builder import ConverterStyle
from tests.helpers.tflm import compare_with_tflm  # skips this module without tflite-micro

litert = pytest.importorskip("ai_edge_litert.interpreter")

log = logging.getLogger(__name__)


def _random_inputs(g: Int8Graph, rng: np.random.Generator, n: int) -> np.ndarray:
    t = g.tensors[g.inputs[0]]
    if t.dtype == DType.INT8:
        return rng.integers(-128, 128, size=(n, *t.shape)).astype(np.int8)
    q = g.tensors[g.ops[0].outputs[0]].quantization  # the QUANTIZE that follows a float input
    codes = rng.integers(-140, 140, size=(n, *t.shape))  # a little outside the int8 range: saturation
    return ((codes - q.zero_point[0]) * q.scale[0] * rng.uniform(0.9, 1.1, size=codes.shape)).astype(np.float32)


def litert_run(data: bytes, x: np.ndarray) -> np.ndarray:
    interp = litert.Interpreter(model_content=data, experimental_op_resolver_type=litert.OpResolverType.BUILTIN_REF)
    interp.allocate_tensors()
    interp.set_tensor(interp.get_input_details()[0]["index"], x)
    interp.invoke()
    return interp.get_tensor(interp.get_output_details()[0]["index"])


# ---- (a) DS-CNN-S ----

@pytest.mark.parametrize("float_io", [False, True], ids=["int8-io", "float-io"])
def test_ds_cnn_s_every_tensor_bit_exact(float_io: bool) -> None:
    g = ds_cnn_s(np.random.default_rng(7), softmax=True, float_io=float_io)
    data = write_tflite(g)
    assert read_tflite(data) == g
    xs = _random_inputs(g, np.random.default_rng(8), 150)
    compared, differing = compare_with_tflm(g, data, xs)
    log.info("DS-CNN-S (%s): %d inputs, %d values compared, %d differ", "float IO" if float_io else "int8 IO",
             len(xs), compared, differing)
    print(f"DS-CNN-S float_io={float_io}: {len(xs)} inputs x {len(g.tensors)} tensors, {compared} values, "
          f"{differing} mismatches")
    assert differing == 0
    # LiteRT (reference kernels, no XNNPACK) runs the same file.
    assert litert_run(data, xs[0]).shape == g.tensors[g.outputs[0]].shape


def test_reference_speed_ds_cnn_s() -> None:
    g = ds_cnn_s(np.random.default_rng(0), softmax=True)
    xs = np.random.default_rng(1).integers(-128, 128, size=(500, 1, 49, 10, 1)).astype(np.int8)
    reference.run(g, xs[:16])  # warm up
    t0 = time.perf_counter()
    reference.run(g, xs)
    ms = (time.perf_counter() - t0) * 1000 / len(xs)
    print(f"reference: {ms:.2f} ms per input for {g.macs() / 1e6:.2f} M MACs (batch of {len(xs)})")
    assert ms < 50


# ---- (b) random graphs ----

@pytest.mark.parametrize("block", range(8))
def test_random_graphs_bit_exact(block: int) -> None:
    graphs = compared = differing = litert_equal = 0
    for seed in range(block * 25, block * 25 + 25):
        rng = np.random.default_rng(seed)
        g = random_graph(rng)
        data = write_tflite(g)
        assert read_tflite(data) == g, f"seed {seed}: read back differs"
        xs = _random_inputs(g, rng, 12)
        c, d = compare_with_tflm(g, data, xs)
        assert d == 0, f"seed {seed}: {d} of {c} values differ from TFLM ({[op.kind.value for op in g.ops]})"
        out = litert_run(data, xs[0])
        litert_equal += int(np.array_equal(out, reference.run(g, xs[0])[0]))
        graphs, compared, differing = graphs + 1, compared + c, differing + d
    print(f"random graphs block {block}: {graphs} graphs x 12 inputs, {compared} values compared, {differing} "
          f"mismatches; LiteRT (reference kernels) output identical on {litert_equal}/{graphs}")


# ---- (c) files written with the schema builders, converter style ----

def _conv_opts(m: ConverterStyle, padding, sh, sw, act, depthwise=False, mult=1):
    if depthwise:
        return tflite.BuiltinOptions.DepthwiseConv2DOptions, m.options(tflite.DepthwiseConv2DOptionsStart, [
            (tflite.DepthwiseConv2DOptionsAddPadding, padding), (tflite.DepthwiseConv2DOptionsAddStrideH, sh),
            (tflite.DepthwiseConv2DOptionsAddStrideW, sw), (tflite.DepthwiseConv2DOptionsAddDepthMultiplier, mult),
            (tflite.DepthwiseConv2DOptionsAddFusedActivationFunction, act)], tflite.DepthwiseConv2DOptionsEnd)
    return tflite.BuiltinOptions.Conv2DOptions, m.options(tflite.Conv2DOptionsStart, [
        (tflite.Conv2DOptionsAddPadding, padding), (tflite.Conv2DOptionsAddStrideH, sh),
        (tflite.Conv2DOptionsAddStrideW, sw), (tflite.Conv2DOptionsAddFusedActivationFunction, act)],
        tflite.Conv2DOptionsEnd)


def _model_float_io(rng) -> bytes:
    """float32 in -> QUANTIZE -> CONV 5x3 stride (3,2) VALID -> DEPTHWISE x2 stride 2 SAME -> AVG_POOL SAME ->
    MEAN keep_dims -> RESHAPE (options only) -> FC -> SOFTMAX -> DEQUANTIZE -> float32 out."""
    B, T, A, P = tflite.BuiltinOperator, tflite.TensorType, tflite.ActivationFunctionType, tflite.Padding
    m = ConverterStyle()
    x = m.tensor("serving_default_input:0", (1, 13, 7, 3), T.FLOAT32, signature=(-1, 13, 7, 3))
    xq = m.act("model/quantize_input", (1, 13, 7, 3), 0.02, 37)
    m.op(B.QUANTIZE, [x], [xq])
    w1, s1 = m.weights("model/conv2d/Conv2D", rng, (6, 5, 3, 3), 0)
    b1 = m.bias("model/conv2d/BiasAdd/ReadVariableOp", rng, 0.02, s1, 6)
    y1 = m.act("model/conv2d/Relu6;model/conv2d/BiasAdd", (1, 3, 3, 6), 0.03, -128)
    m.op(B.CONV_2D, [xq, w1, b1], [y1], *_conv_opts(m, P.VALID, 3, 2, A.RELU6))
    w2, s2 = m.weights("model/depthwise/depthwise", rng, (1, 3, 3, 12), 3)
    b2 = m.bias("model/depthwise/BiasAdd", rng, 0.03, s2, 12)
    y2 = m.act("model/depthwise/BiasAdd;model/depthwise/depthwise", (1, 2, 2, 12), 0.05, 11)
    m.op(B.DEPTHWISE_CONV_2D, [y1, w2, b2], [y2], *_conv_opts(m, P.SAME, 2, 2, A.NONE, True, 2))
    y3 = m.act("model/average_pooling2d/AvgPool", (1, 2, 2, 12), 0.05, 11)
    m.op(B.AVERAGE_POOL_2D, [y2], [y3], tflite.BuiltinOptions.Pool2DOptions, m.options(tflite.Pool2DOptionsStart, [
        (tflite.Pool2DOptionsAddPadding, P.SAME), (tflite.Pool2DOptionsAddStrideH, 1),
        (tflite.Pool2DOptionsAddStrideW, 1), (tflite.Pool2DOptionsAddFilterHeight, 2),
        (tflite.Pool2DOptionsAddFilterWidth, 2)], tflite.Pool2DOptionsEnd))
    axes = m.const_i32("model/global_average_pooling2d/Mean/reduction_indices", [1, 2])
    y4 = m.act("model/global_average_pooling2d/Mean", (1, 1, 1, 12), 0.02, -3)
    m.op(B.MEAN, [y3, axes], [y4], tflite.BuiltinOptions.ReducerOptions, m.options(
        tflite.ReducerOptionsStart, [(tflite.ReducerOptionsAddKeepDims, True)], tflite.ReducerOptionsEnd))
    y5 = m.act("model/flatten/Reshape", (1, 12), 0.02, -3)
    shape_vec = m.b.CreateNumpyVector(np.asarray([1, 12], dtype=np.int32))
    m.op(B.RESHAPE, [y4], [y5], tflite.BuiltinOptions.ReshapeOptions, m.options(
        tflite.ReshapeOptionsStart, [(tflite.ReshapeOptionsAddNewShape, shape_vec)], tflite.ReshapeOptionsEnd))
    w6, s6 = m.weights("model/dense/MatMul", rng, (5, 12), 0, per_channel=False)
    b6 = m.bias("model/dense/BiasAdd", rng, 0.02, s6, 5)
    y6 = m.act("model/dense/MatMul;model/dense/BiasAdd", (1, 5), 0.1, 20)
    m.op(B.FULLY_CONNECTED, [y5, w6, b6], [y6], tflite.BuiltinOptions.FullyConnectedOptions,
         m.options(tflite.FullyConnectedOptionsStart, [], tflite.FullyConnectedOptionsEnd))
    y7 = m.act("model/softmax/Softmax", (1, 5), 1 / 256, -128)
    m.op(B.SOFTMAX, [y6], [y7], tflite.BuiltinOptions.SoftmaxOptions,
         m.options(tflite.SoftmaxOptionsStart, [(tflite.SoftmaxOptionsAddBeta, 1.0)], tflite.SoftmaxOptionsEnd))
    out = m.tensor("StatefulPartitionedCall:0", (1, 5), T.FLOAT32)
    m.op(B.DEQUANTIZE, [y7], [out])
    return m.finish([x], [out])


def _model_int8_branches(rng) -> bytes:
    """int8 in (zp -100) -> PAD -> MAX_POOL 3x3 stride 2 VALID -> two 1x1 convs (one without bias, inputs
    [x, w, -1]) -> ADD of the differently scaled branches with RELU -> FC keep_num_dims, per channel."""
    B, A, P = tflite.BuiltinOperator, tflite.ActivationFunctionType, tflite.Padding
    m = ConverterStyle()
    x = m.act("input_1", (1, 9, 9, 2), 0.07, -100, signature=(-1, 9, 9, 2))
    pads = m.const_i32("pad/paddings", [[0, 0], [1, 2], [2, 1], [0, 0]])
    xp = m.act("pad", (1, 12, 12, 2), 0.07, -100)
    m.op(B.PAD, [x, pads], [xp], tflite.BuiltinOptions.PadOptions,
         m.options(tflite.PadOptionsStart, [], tflite.PadOptionsEnd))
    y1 = m.act("max_pooling2d/MaxPool", (1, 5, 5, 2), 0.07, -100)
    m.op(B.MAX_POOL_2D, [xp], [y1], tflite.BuiltinOptions.Pool2DOptions, m.options(tflite.Pool2DOptionsStart, [
        (tflite.Pool2DOptionsAddPadding, P.VALID), (tflite.Pool2DOptionsAddStrideH, 2),
        (tflite.Pool2DOptionsAddStrideW, 2), (tflite.Pool2DOptionsAddFilterHeight, 3),
        (tflite.Pool2DOptionsAddFilterWidth, 3)], tflite.Pool2DOptionsEnd))
    wa, _ = m.weights("branch_a/kernel", rng, (4, 1, 1, 2), 0, per_channel=False)
    ya = m.act("branch_a/Conv2D", (1, 5, 5, 4), 0.04, 5)
    m.op(B.CONV_2D, [y1, wa, -1], [ya], *_conv_opts(m, P.SAME, 1, 1, A.NONE))
    wb, sb = m.weights("branch_b/kernel", rng, (4, 1, 1, 2), 0)
    bb = m.bias("branch_b/bias", rng, 0.07, sb, 4)
    yb = m.act("branch_b/Relu", (1, 5, 5, 4), 0.011, -128)
    m.op(B.CONV_2D, [y1, wb, bb], [yb], *_conv_opts(m, P.SAME, 1, 1, A.RELU))
    ys = m.act("add/add", (1, 5, 5, 4), 0.03, -128)
    m.op(B.ADD, [ya, yb], [ys], tflite.BuiltinOptions.AddOptions,
         m.options(tflite.AddOptionsStart, [(tflite.AddOptionsAddFusedActivationFunction, A.RELU)],
                   tflite.AddOptionsEnd))
    wf, sf = m.weights("dense/kernel", rng, (3, 4), 0)
    bf = m.bias("dense/bias", rng, 0.03, sf, 3)
    yf = m.act("dense/BiasAdd", (1, 5, 5, 3), 0.05, 0)
    m.op(B.FULLY_CONNECTED, [ys, wf, bf], [yf], tflite.BuiltinOptions.FullyConnectedOptions,
         m.options(tflite.FullyConnectedOptionsStart, [(tflite.FullyConnectedOptionsAddKeepNumDims, True)],
                   tflite.FullyConnectedOptionsEnd))
    return m.finish([x], [yf])


@pytest.mark.parametrize("make", [_model_float_io, _model_int8_branches])
def test_converter_style_files_bit_exact(make) -> None:
    data = make(np.random.default_rng(3))
    g = read_tflite(data)
    # The reader folds constant operands (MEAN axes, PAD paddings) into options and renumbers the
    # remaining tensors, so match graph tensors to the file's by name.
    sg = tflite.Model.GetRootAsModel(data, 0).Subgraphs(0)
    file_names = [sg.Tensors(i).Name().decode() for i in range(sg.TensorsLength())]
    file_index = {i: file_names.index(t.name) for i, t in enumerate(g.tensors)}
    xs = _random_inputs(g, np.random.default_rng(4), 100)
    compared, differing = compare_with_tflm(g, data, xs, file_index)
    print(f"{make.__name__}: {len(xs)} inputs, {compared} values, {differing} mismatches")
    assert differing == 0
    # Written back by our writer, it is the same graph and still bit-exact.
    again = write_tflite(g)
    assert read_tflite(again) == g
    assert compare_with_tflm(g, again, xs[:10])[1] == 0
    assert litert_run(again, xs[0]).shape == g.tensors[g.outputs[0]].shape


# ---- primitives ----

def test_quantize_multiplier_matches_frexp_rounding() -> None:
    assert fx.quantize_multiplier(0.0) == (0, 0)
    assert fx.quantize_multiplier(0.5) == (1 << 30, 0)
    assert fx.quantize_multiplier(1.0) == (1 << 30, 1)
    assert fx.quantize_multiplier(2.0**-40) == (0, 0)  # flushed to zero below 2^-31
    m, s = fx.quantize_multiplier(1 - 2.0**-33)  # rounds up to 2^31: renormalised
    assert (m, s) == (1 << 30, 1)
    m, s = fx.quantize_multiplier(0.0123)
    assert abs(m * 2.0 ** (s - 31) - 0.0123) < 1e-11


def test_fixed_point_primitives_edge_cases() -> None:
    srdhm = fx.saturating_rounding_doubling_high_mul
    assert int(srdhm(fx.INT32_MIN, fx.INT32_MIN)) == fx.INT32_MAX  # the one overflow case
    assert int(srdhm(1 << 30, 1 << 30)) == 1 << 29
    assert int(srdhm(3, 1 << 30)) == 2 and int(srdhm(-3, 1 << 30)) == -1  # ties round up (VQRDMULH)
    rdbpot = fx.rounding_divide_by_pot
    assert [int(v) for v in rdbpot(np.array([5, -5, 6, -6, 7, -7]), 1)] == [3, -3, 3, -3, 4, -4]
    # Double rounding: 5 * 0.5 = 2.5 -> 3, then 3 / 2 = 1.5 -> 2 (a single rounding of 1.25 gives 1).
    assert int(fx.multiply_by_quantized_multiplier(5, 1 << 30, -1)) == 2
    assert int(fx.count_leading_zeros32(1)) == 31 and int(fx.count_leading_zeros32(0)) == 32
    x = -np.arange(0, 32 << 26, 1 << 22)
    e = fx.exp_on_negative_values(x, 5) / 2.0**31
    assert np.max(np.abs(e - np.exp(x / 2.0**26))) < 1e-6
