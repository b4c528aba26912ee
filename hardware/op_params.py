"""Per-op integer parameters, derived the way TFLM's kernel ``Prepare`` functions derive them.

Everything a kernel needs beyond the tensors (window padding, requantization multipliers and
shifts, clamping range, softmax and mean constants) comes from here, so the numpy reference, the C
code generator and the validator agree on one derivation. Each function raises
:class:`~hardware.graph.GraphError` where TFLM's ``Prepare`` would fail.

Facts matched (TFLM ``kernels/*_common.cc``, ``kernels/kernel_util.cc``, ``quantization_util.cc``):

- conv / depthwise: always the per-channel kernel; per-tensor weights are broadcast.
  ``effective = double(in_scale) * double(w_scale[c]) / double(out_scale)``.
- fully connected with per-tensor weights: ``double(float(in_scale * w_scale)) / double(out_scale)``
  (the product is rounded to float32 first); with per-channel weights the conv formula.
- activation clamp: ``zp + roundf(f / scale)`` in float32 for 0 and 6, intersected with [-128, 127].
- padding: output size from SAME/VALID, ``pad_before = max(0, (out-1)*stride + eff_filter - in) // 2``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from hardware.fixedpoint import quantize_multiplier, round_half_away
from hardware.graph_types import (
    Activation,
    DType,
    GraphError,
    Op,
    OpKind,
    Padding,
    Quantization,
)

if TYPE_CHECKING:
    from hardware.graph import Int8Graph

__all__ = [
    "AddParams", "ConvParams", "MeanParams", "SoftmaxParams", "activation_range", "add_params",
    "conv_params", "fc_params", "mean_params", "softmax_params", "window_geometry", "window_out_size",
]

_QRANGE = {DType.INT8: (-128, 127), DType.INT16: (-32768, 32767)}


def window_out_size(padding: Padding, in_size: int, filter_size: int, stride: int, dilation: int = 1) -> int:
    """TFLite's windowed output size (``ComputeOutSize``); may be <= 0 for an impossible window."""
    eff = (filter_size - 1) * dilation + 1
    if padding == Padding.SAME:
        return (in_size + stride - 1) // stride
    return (in_size + stride - eff) // stride


def window_geometry(padding: Padding, in_hw: tuple[int, int], filter_hw: tuple[int, int],
                    stride: tuple[int, int], dilation: tuple[int, int] = (1, 1)
                    ) -> tuple[tuple[int, int], tuple[int, int]]:
    """((out_h, out_w), (pad_top, pad_left)). Extra odd padding goes to the bottom/right."""
    out, pad = [], []
    for i in range(2):
        if filter_hw[i] <= 0 or stride[i] <= 0 or dilation[i] <= 0:
            raise GraphError(f"window needs positive filter, stride and dilation, got {filter_hw}, {stride}, "
                             f"{dilation}")
        o = window_out_size(padding, in_hw[i], filter_hw[i], stride[i], dilation[i])
        eff = (filter_hw[i] - 1) * dilation[i] + 1
        out.append(o)
        pad.append(max(0, (o - 1) * stride[i] + eff - in_hw[i]) // 2)
    return (out[0], out[1]), (pad[0], pad[1])


def _quantize_float_const(value: float, q: Quantization) -> int:
    """TFLM ``Quantize``: zp + roundf(f / scale), the division and rounding in float32."""
    tmp = round_half_away(np.float32(value) / np.float32(q.scale[0]))
    return q.zero_point[0] + int(tmp)


def activation_range(act: Activation, q: Quantization | None, dtype: DType) -> tuple[float, float]:
    """Clamp range of a fused activation: quantized ints for int8/int16 outputs, floats for float32."""
    if dtype == DType.FLOAT32:
        return {Activation.NONE: (-np.inf, np.inf), Activation.RELU: (0.0, np.inf),
                Activation.RELU6: (0.0, 6.0)}[act]
    qmin, qmax = _QRANGE[dtype]
    if act == Activation.NONE:
        return qmin, qmax
    lo = max(qmin, _quantize_float_const(0.0, q))
    hi = qmax if act == Activation.RELU else min(qmax, _quantize_float_const(6.0, q))
    return lo, hi


@dataclass(frozen=True)
class ConvParams:
    """Requantization of a conv, depthwise or fully-connected op (per output channel)."""

    input_offset: int            # -input zero point
    weight_offset: int           # -weight zero point (only the per-tensor FC kernel applies it)
    output_offset: int           # output zero point
    multiplier: np.ndarray       # int64 array [O] of Q0.31 significands
    shift: np.ndarray            # int64 array [O], > 0 means left shift
    act_min: int
    act_max: int
    stride: tuple[int, int] = (1, 1)
    dilation: tuple[int, int] = (1, 1)
    pad: tuple[int, int] = (0, 0)


def _multipliers(reals: list[float]) -> tuple[np.ndarray, np.ndarray]:
    ms = [quantize_multiplier(r) for r in reals]
    return np.array([m for m, _ in ms], dtype=np.int64), np.array([s for _, s in ms], dtype=np.int64)


def conv_params(graph: Int8Graph, op: Op) -> ConvParams:
    """Parameters of an int8 CONV_2D or DEPTHWISE_CONV_2D (TFLM ``CalculateOpDataConv``)."""
    x, w, y = graph.tensors[op.inputs[0]], graph.tensors[op.inputs[1]], graph.tensors[op.outputs[0]]
    o = op.options
    channels = w.shape[0] if op.kind == OpKind.CONV_2D else w.shape[3]
    wq = w.quantization
    ws = wq.scale if wq.is_per_channel else wq.scale * channels
    reals = [float(x.quantization.scale[0]) * float(s) / float(y.quantization.scale[0]) for s in ws]
    mult, shift = _multipliers(reals)
    _, pad = window_geometry(o.padding, x.shape[1:3], w.shape[1:3], o.stride, o.dilation)
    lo, hi = activation_range(o.activation, y.quantization, y.dtype)
    return ConvParams(-x.quantization.zero_point[0], 0, y.quantization.zero_point[0], mult, shift,
                      int(lo), int(hi), o.stride, o.dilation, pad)


def fc_params(graph: Int8Graph, op: Op) -> ConvParams:
    """Parameters of an int8 FULLY_CONNECTED (TFLM ``CalculateOpDataFullyConnected``)."""
    x, w, y = graph.tensors[op.inputs[0]], graph.tensors[op.inputs[1]], graph.tensors[op.outputs[0]]
    wq, in_s, out_s = w.quantization, x.quantization.scale[0], y.quantization.scale[0]
    if wq.is_per_channel:
        reals = [float(in_s) * float(s) / float(out_s) for s in wq.scale]
        weight_offset = 0
    else:
        product = float(np.float32(in_s) * np.float32(wq.scale[0]))  # float32 product, as TFLM
        reals = [product / float(out_s)] * w.shape[0]
        weight_offset = -wq.zero_point[0]
        if len(op.inputs) > 2:
            bq = graph.tensors[op.inputs[2]].quantization
            bias_scale = bq.scale[0] if bq is not None else 0.0
            if abs(float(in_s) * float(wq.scale[0]) - bias_scale) / float(out_s) > 0.02:
                raise GraphError("FULLY_CONNECTED: bias scale differs from input_scale*weight_scale "
                                 "(TFLM rejects more than 2% of an output step)")
    mult, shift = _multipliers(reals)
    lo, hi = activation_range(op.options.activation, y.quantization, y.dtype)
    return ConvParams(-x.quantization.zero_point[0], weight_offset, y.quantization.zero_point[0],
                      mult, shift, int(lo), int(hi))


def _smaller_than_one(real: float, what: str) -> tuple[int, int]:
    if not 0.0 < real < 1.0:
        raise GraphError(f"{what}: multiplier {real:g} must be in (0, 1) for TFLM")
    m, s = quantize_multiplier(real)
    if s > 0:
        raise GraphError(f"{what}: multiplier {real:g} rounds up to 1")
    return m, s


@dataclass(frozen=True)
class AddParams:
    """TFLM int8 ADD: inputs shifted left by 20 bits, each rescaled to twice the larger input
    scale, summed, then rescaled to the output."""

    left_shift: int
    input1_offset: int
    input2_offset: int
    input1_multiplier: int
    input1_shift: int
    input2_multiplier: int
    input2_shift: int
    output_offset: int
    output_multiplier: int
    output_shift: int
    act_min: int
    act_max: int


def add_params(graph: Int8Graph, op: Op) -> AddParams:
    a, b, y = (graph.tensors[i] for i in (*op.inputs[:2], op.outputs[0]))
    left_shift = 15 if y.dtype == DType.INT16 else 20
    sa, sb, so = (float(t.quantization.scale[0]) for t in (a, b, y))
    twice_max = 2.0 * max(sa, sb)
    m1, s1 = _smaller_than_one(sa / twice_max, "ADD input 1")
    m2, s2 = _smaller_than_one(sb / twice_max, "ADD input 2")
    mo, so_ = _smaller_than_one(twice_max / ((1 << left_shift) * so), "ADD output")
    lo, hi = activation_range(op.options.activation, y.quantization, y.dtype)
    return AddParams(left_shift, -a.quantization.zero_point[0], -b.quantization.zero_point[0], m1, s1, m2, s2,
                     y.quantization.zero_point[0], mo, so_, int(lo), int(hi))


@dataclass(frozen=True)
class MulParams:
    """TFLM int8 MUL: the product of the offset inputs, rescaled once by in1_scale * in2_scale / out_scale
    (``MultiplyByQuantizedMultiplier``, which takes multipliers above 1 too)."""

    input1_offset: int
    input2_offset: int
    output_offset: int
    output_multiplier: int
    output_shift: int
    act_min: int
    act_max: int


def mul_params(graph: Int8Graph, op: Op) -> MulParams:
    a, b, y = (graph.tensors[i] for i in (*op.inputs[:2], op.outputs[0]))
    if y.dtype != DType.INT8:
        raise GraphError(f"MUL: {y.dtype.value} output is not supported (int8 only)")
    # TFLM forms the real multiplier in double from the float32 scales, in this order
    real = float(a.quantization.scale[0]) * float(b.quantization.scale[0]) / float(y.quantization.scale[0])
    mult, shift = quantize_multiplier(real)
    lo, hi = activation_range(op.options.activation, y.quantization, y.dtype)
    return MulParams(-a.quantization.zero_point[0], -b.quantization.zero_point[0], y.quantization.zero_point[0],
                     mult, shift, int(lo), int(hi))


@dataclass(frozen=True)
class MeanParams:
    """TFLM int8 MEAN: the sum's rescale folds 1/n into the multiplier (``QuantizedMeanOrSum``)."""

    axes: tuple[int, ...]        # resolved, non-negative, unique
    count: int                   # elements averaged per output
    input_zero_point: int
    output_zero_point: int
    multiplier: int
    shift: int


def mean_params(graph: Int8Graph, op: Op) -> MeanParams:
    x, y = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    axes: list[int] = []
    for a in op.options.axes:
        r = a + len(x.shape) if a < 0 else a
        if not 0 <= r < len(x.shape):
            raise GraphError(f"MEAN: axis {a} out of range for rank {len(x.shape)}")
        if r not in axes:
            axes.append(r)
    count = int(np.prod([x.shape[a] for a in axes], dtype=np.int64))
    if x.dtype == DType.FLOAT32:
        return MeanParams(tuple(axes), count, 0, 0, 0, 0)
    mult, shift = quantize_multiplier(float(x.quantization.scale[0]) / float(y.quantization.scale[0]))
    if count > 0:
        # Fold 1/count in: shift the significand up by floor(log2(count)) (at most 32, and keeping
        # the final shift >= -31), then integer-divide by count.
        s = min(count.bit_length() - 1, 32, 31 + shift)
        mult = (mult << s) // count
        shift -= s
    return MeanParams(tuple(axes), count, x.quantization.zero_point[0], y.quantization.zero_point[0], mult, shift)


@dataclass(frozen=True)
class SoftmaxParams:
    """TFLM int8 softmax: input differences (x - row max) are scaled into Q5.26 by
    ``input_multiplier << input_left_shift``; differences below ``diff_min`` contribute 0."""

    input_multiplier: int
    input_left_shift: int
    diff_min: int


_SOFTMAX_INTEGER_BITS = 5  # Q5.26 input to exp(): differences down to -32 after beta scaling


def softmax_params(graph: Int8Graph, op: Op) -> SoftmaxParams:
    x, y = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    if y.quantization.zero_point[0] != -128 or y.quantization.scale[0] != 1.0 / 256:
        raise GraphError("SOFTMAX: TFLM needs an int8 output with scale 1/256 and zero point -128, got "
                         f"scale {y.quantization.scale[0]!r}, zero point {y.quantization.zero_point[0]}")
    real = min(float(op.options.beta) * float(x.quantization.scale[0]) * (1 << (31 - _SOFTMAX_INTEGER_BITS)),
               float((1 << 31) - 1))
    if real <= 1.0:
        raise GraphError(f"SOFTMAX: beta*input_scale = {real / (1 << 26):g} is too small for TFLM (<= 2^-26)")
    mult, shift = quantize_multiplier(real)
    radius = np.floor(((1 << _SOFTMAX_INTEGER_BITS) - 1) * float(1 << (31 - _SOFTMAX_INTEGER_BITS))
                      / float(1 << shift))
    return SoftmaxParams(mult, shift, -int(radius))
