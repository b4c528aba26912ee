"""Validation of an :class:`~hardware.graph.Int8Graph` (called by its constructor).

Three passes: structure (indices, one producer per tensor, nothing dangling, no cycle, quantization
present where integer arithmetic needs it), the implied bias quantization, and per-op rules (input
and output counts, dtypes, shapes against the shape each op infers, and the quantization TFLM's
``Prepare`` accepts, by deriving the op's integer parameters).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from hardware import op_params
from hardware.graph_types import (
    WEIGHTED_OPS,
    DType,
    GraphError,
    Op,
    OpKind,
    Tensor,
    canonical_bias_quantization,
)

if TYPE_CHECKING:
    from hardware.graph import Int8Graph

_INTS = (DType.INT8, DType.INT16)


def check_structure(g: Int8Graph) -> None:
    n = len(g.tensors)
    for i, t in enumerate(g.tensors):
        if not isinstance(t, Tensor):
            raise GraphError(f"tensors[{i}] is a {type(t).__name__}, not a Tensor")
        q = t.quantization
        if q is not None:
            if q.is_per_channel and not (0 <= q.axis < len(t.shape) and t.shape[q.axis] == len(q.scale)):
                raise GraphError(f"tensor {i} ({t.name!r}): {len(q.scale)} per-channel scales along axis "
                                 f"{q.axis} do not match shape {t.shape}")
            if t.dtype in _INTS:
                lo, hi = np.iinfo(t.dtype.numpy).min, np.iinfo(t.dtype.numpy).max
                if not all(lo <= z <= hi for z in q.zero_point):
                    raise GraphError(f"tensor {i} ({t.name!r}): zero point outside the {t.dtype.value} range")
        if t.dtype in _INTS and q is None:
            raise GraphError(f"tensor {i} ({t.name!r}): {t.dtype.value} tensor without quantization")
    for where, idx in (("graph input", g.inputs), ("graph output", g.outputs)):
        for t in idx:
            if not 0 <= t < n:
                raise GraphError(f"{where} refers to tensor {t}, but the graph has {n} tensors")
    producer: dict[int, int] = {}
    for k, op in enumerate(g.ops):
        if not isinstance(op, Op):
            raise GraphError(f"ops[{k}] is a {type(op).__name__}, not an Op")
        for t in op.inputs + op.outputs:
            if not 0 <= t < n:
                raise GraphError(f"op {k} ({op.kind.value}) refers to tensor {t}, but the graph has {n} tensors")
        for t in op.outputs:
            if t in producer:
                raise GraphError(f"tensor {t} ({g.tensors[t].name!r}) is written by ops {producer[t]} and {k}")
            if g.tensors[t].is_constant:
                raise GraphError(f"op {k} ({op.kind.value}) writes constant tensor {t} ({g.tensors[t].name!r})")
            if t in g.inputs:
                raise GraphError(f"op {k} ({op.kind.value}) writes graph input {t}")
            producer[t] = k
    for t in g.inputs:
        if g.tensors[t].is_constant:
            raise GraphError(f"graph input {t} ({g.tensors[t].name!r}) is a constant")
    available = set(g.inputs) | set(producer) | {i for i, t in enumerate(g.tensors) if t.is_constant}
    for k, op in enumerate(g.ops):
        for t in op.inputs:
            if t not in available:
                raise GraphError(f"op {k} ({op.kind.value}) reads tensor {t} ({g.tensors[t].name!r}), which is "
                                 "neither a graph input, a constant, nor written by any op (dangling)")
    for t in g.outputs:
        if t not in available:
            raise GraphError(f"graph output {t} ({g.tensors[t].name!r}) is never written")
    g.topological_order()  # raises on a cycle


def fill_bias_quantization(g: Int8Graph) -> tuple[Tensor, ...]:
    """Give int32 biases without quantization the implied one (``in_scale * w_scale[c]``), so a
    graph whose file omits it equals the graph that spelled it out."""
    tensors = list(g.tensors)
    for op in g.ops:
        if op.kind not in WEIGHTED_OPS or len(op.inputs) < 3:
            continue
        x, w, b = (tensors[i] for i in op.inputs[:3])
        if (b.dtype == DType.INT32 and b.quantization is None and x.quantization is not None
                and w.quantization is not None):
            q = canonical_bias_quantization(x.quantization, w.quantization)
            if q.is_per_channel and b.shape != (len(q.scale),):
                continue  # the shape check reports it
            tensors[op.inputs[2]] = Tensor(b.name, b.shape, b.dtype, q, b.data)
    return tuple(tensors)


# ---- per-op rules ----

_N_INPUTS = {
    OpKind.CONV_2D: (2, 3), OpKind.DEPTHWISE_CONV_2D: (2, 3), OpKind.FULLY_CONNECTED: (2, 3),
    OpKind.ADD: (2, 2), OpKind.MUL: (2, 2),
}


def _fail(k: int, op: Op, msg: str) -> GraphError:
    return GraphError(f"op {k} ({op.kind.value}): {msg}")


def check_ops(g: Int8Graph) -> None:
    for k, op in enumerate(g.ops):
        try:
            _check_op(g, k, op)
        except GraphError as e:
            if str(e).startswith(f"op {k} "):
                raise
            raise _fail(k, op, str(e)) from None


def _infer_shape(g: Int8Graph, k: int, op: Op) -> tuple[int, ...]:
    T = g.tensors
    x = T[op.inputs[0]]
    o = op.options
    kind = op.kind
    if kind in (OpKind.CONV_2D, OpKind.DEPTHWISE_CONV_2D, OpKind.AVERAGE_POOL_2D, OpKind.MAX_POOL_2D):
        if len(x.shape) != 4:
            raise _fail(k, op, f"input must be 4-D NHWC, got shape {x.shape}")
        if kind in (OpKind.AVERAGE_POOL_2D, OpKind.MAX_POOL_2D):
            (oh, ow), _ = op_params.window_geometry(o.padding, x.shape[1:3], o.filter_size, o.stride)
            channels = x.shape[3]
        else:
            w = T[op.inputs[1]]
            if len(w.shape) != 4:
                raise _fail(k, op, f"weights must be 4-D, got shape {w.shape}")
            if kind == OpKind.CONV_2D:
                if w.shape[3] != x.shape[3]:
                    raise _fail(k, op, f"weights {w.shape} expect {w.shape[3]} input channels, input has "
                                f"{x.shape[3]}")
                channels = w.shape[0]
            else:
                if w.shape[0] != 1:
                    raise _fail(k, op, f"depthwise weights must be [1, kh, kw, C*m], got {w.shape}")
                channels = w.shape[3]
                if channels != x.shape[3] * o.depth_multiplier:
                    raise _fail(k, op, f"weights have {channels} channels, input {x.shape[3]} x depth "
                                f"multiplier {o.depth_multiplier}")
            (oh, ow), _ = op_params.window_geometry(o.padding, x.shape[1:3], w.shape[1:3], o.stride, o.dilation)
        if oh <= 0 or ow <= 0:
            raise _fail(k, op, f"window does not fit the input {x.shape} (VALID padding)")
        if len(op.inputs) > 2 and kind != OpKind.FULLY_CONNECTED:
            b = T[op.inputs[2]]
            if b.shape != (channels,):
                raise _fail(k, op, f"bias shape {b.shape} != ({channels},)")
        return (x.shape[0], oh, ow, channels)
    if kind == OpKind.FULLY_CONNECTED:
        w = T[op.inputs[1]]
        if len(w.shape) != 2:
            raise _fail(k, op, f"weights must be [O, I], got {w.shape}")
        out_ch, depth = w.shape
        if depth == 0 or x.size % depth:
            raise _fail(k, op, f"input of {x.size} elements is not a multiple of the weights' depth {depth}")
        if len(op.inputs) > 2 and T[op.inputs[2]].shape != (out_ch,):
            raise _fail(k, op, f"bias shape {T[op.inputs[2]].shape} != ({out_ch},)")
        if o.keep_num_dims:
            if x.shape[-1] != depth:
                raise _fail(k, op, f"keep_num_dims needs the input's last dimension {x.shape[-1]} == {depth}")
            return x.shape[:-1] + (out_ch,)
        return (x.size // depth, out_ch)
    if kind == OpKind.MEAN:
        axes = set(op_params.mean_params(g, op).axes)
        if o.keep_dims:
            return tuple(1 if i in axes else d for i, d in enumerate(x.shape))
        return tuple(d for i, d in enumerate(x.shape) if i not in axes)
    if kind in (OpKind.ADD, OpKind.MUL):
        try:
            return tuple(np.broadcast_shapes(x.shape, T[op.inputs[1]].shape))
        except ValueError:
            raise _fail(k, op, f"shapes {x.shape} and {T[op.inputs[1]].shape} do not broadcast") from None
    if kind == OpKind.RESHAPE:
        shape = list(o.new_shape)
        if shape.count(-1) > 1 or any(d < -1 for d in shape):
            raise _fail(k, op, f"bad target shape {o.new_shape}")
        known = int(np.prod([d for d in shape if d != -1], dtype=np.int64))
        if -1 in shape:
            if known == 0 or x.size % known:
                raise _fail(k, op, f"cannot reshape {x.shape} to {o.new_shape}")
            shape[shape.index(-1)] = x.size // known
        if int(np.prod(shape, dtype=np.int64)) != x.size:
            raise _fail(k, op, f"cannot reshape {x.shape} ({x.size} elements) to {o.new_shape}")
        return tuple(shape)
    if kind == OpKind.PAD:
        if len(o.paddings) != len(x.shape) or any(a < 0 or b < 0 for a, b in o.paddings):
            raise _fail(k, op, f"paddings {o.paddings} do not fit rank {len(x.shape)} (non-negative pairs)")
        return tuple(d + a + b for d, (a, b) in zip(x.shape, o.paddings, strict=True))
    return x.shape  # SOFTMAX, QUANTIZE, DEQUANTIZE


def _check_op(g: Int8Graph, k: int, op: Op) -> None:
    T = g.tensors
    lo, hi = _N_INPUTS.get(op.kind, (1, 1))
    if not lo <= len(op.inputs) <= hi or len(op.outputs) != 1:
        raise _fail(k, op, f"takes {lo}..{hi} inputs and 1 output, got {len(op.inputs)} and {len(op.outputs)}")
    x, y = T[op.inputs[0]], T[op.outputs[0]]
    if x.size == 0:
        raise _fail(k, op, f"empty input shape {x.shape}")
    shape = _infer_shape(g, k, op)
    if tuple(y.shape) != tuple(shape):
        raise _fail(k, op, f"output tensor {op.outputs[0]} ({y.name!r}) has shape {y.shape}, the op gives {shape}")
    if op.kind == OpKind.QUANTIZE:
        if x.dtype != DType.FLOAT32 or y.dtype != DType.INT8:
            raise _fail(k, op, f"supported as float32 -> int8 only, got {x.dtype.value} -> {y.dtype.value}")
        return
    if op.kind == OpKind.DEQUANTIZE:
        if x.dtype != DType.INT8 or y.dtype != DType.FLOAT32:
            raise _fail(k, op, f"supported as int8 -> float32 only, got {x.dtype.value} -> {y.dtype.value}")
        return
    if x.dtype not in (DType.INT8, DType.FLOAT32) or y.dtype != x.dtype:
        raise _fail(k, op, f"needs int8 or float32 input and output of the same type, got {x.dtype.value} -> "
                    f"{y.dtype.value}")
    is_float = x.dtype == DType.FLOAT32
    if op.kind in WEIGHTED_OPS:
        w = T[op.inputs[1]]
        if not w.is_constant:
            raise _fail(k, op, f"weights tensor {op.inputs[1]} ({w.name!r}) must be constant")
        want_w, want_b = (DType.FLOAT32, DType.FLOAT32) if is_float else (DType.INT8, DType.INT32)
        if w.dtype != want_w:
            raise _fail(k, op, f"weights must be {want_w.value}, got {w.dtype.value}")
        if len(op.inputs) > 2:
            b = T[op.inputs[2]]
            if not b.is_constant or b.dtype != want_b:
                raise _fail(k, op, f"bias tensor {op.inputs[2]} ({b.name!r}) must be a constant {want_b.value}")
            if not is_float and b.quantization is not None and any(z != 0 for z in b.quantization.zero_point):
                raise _fail(k, op, "bias zero point must be 0")
        if not is_float:
            wq = w.quantization
            axis = 3 if op.kind == OpKind.DEPTHWISE_CONV_2D else 0
            if wq.is_per_channel and wq.axis != axis:
                raise _fail(k, op, f"per-channel weights must be quantized along axis {axis}, got {wq.axis}")
            if (wq.is_per_channel or op.kind != OpKind.FULLY_CONNECTED) and any(z != 0 for z in wq.zero_point):
                raise _fail(k, op, "weights must be symmetric (zero point 0)")
    elif op.kind in (OpKind.ADD, OpKind.MUL):
        if T[op.inputs[1]].dtype != x.dtype:
            raise _fail(k, op, "both inputs must have the same dtype")
    if is_float:
        for t in (x, y):
            if t.quantization is not None:
                raise _fail(k, op, f"float32 tensor {t.name!r} must not carry quantization")
        return
    for t in [T[i] for i in op.inputs if T[i].dtype == DType.INT8] + [y]:
        if t.quantization.is_per_channel and not (op.kind in WEIGHTED_OPS and t is T[op.inputs[1]]):
            raise _fail(k, op, f"tensor {t.name!r} must be quantized per tensor")
    _check_int8_params(g, k, op)


def _check_int8_params(g: Int8Graph, k: int, op: Op) -> None:
    T = g.tensors
    x, y = T[op.inputs[0]], T[op.outputs[0]]
    kind = op.kind
    if kind in (OpKind.CONV_2D, OpKind.DEPTHWISE_CONV_2D):
        op_params.conv_params(g, op)
    elif kind == OpKind.FULLY_CONNECTED:
        op_params.fc_params(g, op)
    elif kind == OpKind.ADD:
        op_params.add_params(g, op)
    elif kind == OpKind.MUL:
        op_params.mul_params(g, op)
    elif kind == OpKind.SOFTMAX:
        op_params.softmax_params(g, op)
    elif kind in (OpKind.AVERAGE_POOL_2D, OpKind.MAX_POOL_2D):
        if (abs(x.quantization.scale[0] - y.quantization.scale[0]) > 1e-6
                or x.quantization.zero_point != y.quantization.zero_point):
            raise _fail(k, op, "input and output must share scale and zero point (TFLM does not requantize here)")
