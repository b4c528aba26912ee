"""Golden numpy interpreter of an :class:`~hardware.graph.Int8Graph`, bit-exact with TFLM.

``run(graph, inputs)`` returns the graph outputs; ``run_all`` every activation tensor. Inputs may
carry one extra leading axis: a batch of independent examples, evaluated together (the graph's own
batch dimension, normally 1, stays). Integer ops follow TFLM's reference kernels exactly (see
``hardware.op_params`` for how their constants are derived and ``hardware.fixedpoint`` for the
rounding); float32 ops are computed in float64 and rounded to float32, which is close to but not
bit-identical with any particular float runtime.

Speed: accumulations are float64 matrix products (exact: every partial sum of int8 products stays
far below 2**53), im2col for convolutions, shifted multiply-adds for depthwise and pools, all
vectorised over the batch (in chunks of 16 examples, which stay in cache). The DS-CNN-S graph
(~2.7 M MACs) takes about 1.5-5 ms per input on one core of these machines (the spread is load).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from hardware import fixedpoint as fx
from hardware import op_params
from hardware.graph import DType, Int8Graph, Op, OpKind, Quantization

__all__ = ["quantize", "run", "run_all"]

_CHUNK = 16  # examples evaluated together: small enough to stay in cache (measured ~2x faster than 128)
_MAX_COLS = 1 << 23  # elements of one im2col chunk (64 MiB of float64): bounds memory on big batches


def run(graph: Int8Graph, inputs) -> list[np.ndarray]:
    """Outputs of ``graph`` (in ``graph.outputs`` order) for ``inputs``: an array when the graph has
    one input, else a sequence in ``graph.inputs`` order or a mapping {tensor index: array}."""
    values = run_all(graph, inputs)
    return [values[t] for t in graph.outputs]


def run_all(graph: Int8Graph, inputs) -> dict[int, np.ndarray]:
    """Every activation tensor (graph inputs and op outputs) by tensor index."""
    env, batched = _feeds(graph, inputs)
    order = graph.topological_order()
    n = next(iter(env.values())).shape[0] if env else 1
    if n <= _CHUNK:
        env = _evaluate(graph, order, env)
    else:  # chunks keep the working set in cache (about 2x faster than one huge batch)
        parts = [_evaluate(graph, order, {t: v[s:s + _CHUNK] for t, v in env.items()}) for s in range(0, n, _CHUNK)]
        env = {t: np.concatenate([p[t] for p in parts]) for t in parts[0]}
    if not batched:
        env = {t: v[0] for t, v in env.items()}
    return env


def _evaluate(graph: Int8Graph, order, env: dict[int, np.ndarray]) -> dict[int, np.ndarray]:
    env = dict(env)
    for i in order:
        op = graph.ops[i]
        env[op.outputs[0]] = _KERNELS[op.kind](graph, op, env)
    return env


def _feeds(graph: Int8Graph, inputs) -> tuple[dict[int, np.ndarray], bool]:
    """Validated inputs with a leading evaluation-batch axis, and whether the caller gave one."""
    feeds = _normalise_inputs(graph, inputs)
    batched = None
    env: dict[int, np.ndarray] = {}
    for t, arr in feeds.items():
        tensor = graph.tensors[t]
        arr = np.asarray(arr)
        if arr.shape == tensor.shape and batched is not True:
            batched = False
            arr = arr[None]
        elif arr.shape[1:] == tensor.shape and arr.ndim == len(tensor.shape) + 1 and batched is not False:
            batched = True
        else:
            raise ValueError(f"input tensor {t} ({tensor.name!r}) has shape {tensor.shape}; got an array of "
                             f"shape {arr.shape} (use that shape, or a leading batch axis on every input)")
        if tensor.dtype == DType.FLOAT32:
            arr = arr.astype(np.float32)
        elif arr.dtype != tensor.dtype.numpy:
            info = np.iinfo(tensor.dtype.numpy)
            if not np.issubdtype(arr.dtype, np.integer) or arr.min() < info.min or arr.max() > info.max:
                raise ValueError(f"input tensor {t} ({tensor.name!r}) is {tensor.dtype.value}; got {arr.dtype} "
                                 "values that do not fit")
            arr = arr.astype(tensor.dtype.numpy)
        env[t] = arr
    if len({v.shape[0] for v in env.values()}) > 1:
        raise ValueError("batched inputs must share the batch size")
    return env, bool(batched)


def _normalise_inputs(graph: Int8Graph, inputs) -> dict[int, np.ndarray]:
    if isinstance(inputs, Mapping):
        feeds = {int(k): v for k, v in inputs.items()}
        if set(feeds) != set(graph.inputs):
            raise ValueError(f"inputs given for tensors {sorted(feeds)}, the graph's inputs are {list(graph.inputs)}")
        return feeds
    if isinstance(inputs, np.ndarray) or not isinstance(inputs, Sequence):
        inputs = [inputs]
    if len(inputs) != len(graph.inputs):
        raise ValueError(f"{len(inputs)} inputs given, the graph has {len(graph.inputs)}")
    return dict(zip(graph.inputs, inputs, strict=True))


# ---- helpers ----

def _const(graph: Int8Graph, op: Op, k: int) -> np.ndarray | None:
    return graph.tensors[op.inputs[k]].data if len(op.inputs) > k else None


def _requantize(acc: np.ndarray, mult, shift, offset: int, lo: int, hi: int) -> np.ndarray:
    """int32 accumulator -> int8: TFLM MultiplyByQuantizedMultiplier, add zero point, clamp."""
    y = fx.multiply_by_quantized_multiplier(acc, mult, shift) + offset
    return np.clip(y, lo, hi).astype(np.int8)


def _float_act(y: np.ndarray, graph: Int8Graph, op: Op) -> np.ndarray:
    lo, hi = op_params.activation_range(op.activation, None, DType.FLOAT32)
    return np.clip(y, lo, hi).astype(np.float32)


def _windows(x: np.ndarray, kh: int, kw: int, stride, dilation, pad, out_hw, fill):
    """Yield (ky, kx, view) for each filter tap: view[m, oy, ox, c] = padded x at the tap."""
    (sh, sw), (dh, dw), (pt, pl), (oh, ow) = stride, dilation, pad, out_hw
    m, h, w, c = x.shape
    need_h = (oh - 1) * sh + (kh - 1) * dh + 1
    need_w = (ow - 1) * sw + (kw - 1) * dw + 1
    pb, pr = max(0, need_h - h - pt), max(0, need_w - w - pl)
    if pt or pb or pl or pr:
        x = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)), constant_values=fill)
    for ky in range(kh):
        for kx in range(kw):
            y0, x0 = ky * dh, kx * dw
            yield ky, kx, x[:, y0:y0 + (oh - 1) * sh + 1:sh, x0:x0 + (ow - 1) * sw + 1:sw, :]


def _as_nhwc(arr: np.ndarray) -> np.ndarray:
    """Fold the evaluation batch into the tensor's N axis: (B, N, H, W, C) -> (B*N, H, W, C)."""
    return arr.reshape((-1,) + arr.shape[2:])


# ---- kernels: each takes (graph, op, env) and returns the batched output array ----

def _conv(graph: Int8Graph, op: Op, env) -> np.ndarray:
    x = env[op.inputs[0]]
    out_t = graph.tensors[op.outputs[0]]
    w = _const(graph, op, 1)
    bias = _const(graph, op, 2)
    o = op.options
    kh, kw = w.shape[1:3]
    xb = _as_nhwc(x)
    quant = out_t.dtype == DType.INT8
    if quant:
        p = op_params.conv_params(graph, op)
        xs, fill = xb.astype(np.float64) + p.input_offset, 0.0  # padded taps contribute 0, as TFLM skips them
        pad, stride, dilation = p.pad, p.stride, p.dilation
    else:
        xs, fill = xb.astype(np.float64), 0.0
        _, pad = op_params.window_geometry(o.padding, x.shape[2:4], (kh, kw), o.stride, o.dilation)
        stride, dilation = o.stride, o.dilation
    oh, ow = out_t.shape[1:3]
    wmat = w.reshape(w.shape[0], -1).astype(np.float64).T  # (kh*kw*I, O)
    m = xs.shape[0]
    chunk = max(1, _MAX_COLS // max(1, oh * ow * wmat.shape[0]))
    acc = np.empty((m, oh, ow, w.shape[0]), dtype=np.float64)
    for s in range(0, m, chunk):
        part = xs[s:s + chunk]
        taps = [v for _, _, v in _windows(part, kh, kw, stride, dilation, pad, (oh, ow), fill)]
        cols = taps[0] if len(taps) == 1 else np.concatenate(taps, axis=-1)
        acc[s:s + chunk] = cols @ wmat
    return _finish_weighted(graph, op, acc, bias, x.shape[0])


def _finish_weighted(graph: Int8Graph, op: Op, acc: np.ndarray, bias, batch: int) -> np.ndarray:
    out_t = graph.tensors[op.outputs[0]]
    if out_t.dtype == DType.INT8:
        p = op_params.fc_params(graph, op) if op.kind == OpKind.FULLY_CONNECTED else op_params.conv_params(graph, op)
        acc = np.rint(acc).astype(np.int64)
        if bias is not None:
            acc = acc + bias.astype(np.int64)
        acc = fx.wrap_int32(acc)  # TFLM accumulates in int32
        y = _requantize(acc, p.multiplier, p.shift, p.output_offset, p.act_min, p.act_max)
    else:
        if bias is not None:
            acc = acc + bias.astype(np.float64)
        y = _float_act(acc, graph, op)
    return y.reshape((batch,) + out_t.shape)


def _depthwise(graph: Int8Graph, op: Op, env) -> np.ndarray:
    x = env[op.inputs[0]]
    out_t = graph.tensors[op.outputs[0]]
    w = _const(graph, op, 1)[0]  # (kh, kw, C*m)
    bias = _const(graph, op, 2)
    o = op.options
    xb = _as_nhwc(x)
    quant = out_t.dtype == DType.INT8
    if quant:
        p = op_params.conv_params(graph, op)
        xs = xb.astype(np.int32) + np.int32(p.input_offset)
        wk = w.astype(np.int32)
        pad = p.pad
    else:
        xs = xb.astype(np.float64)
        wk = w.astype(np.float64)
        _, pad = op_params.window_geometry(o.padding, x.shape[2:4], w.shape[:2], o.stride, o.dilation)
    if o.depth_multiplier > 1:
        xs = np.repeat(xs, o.depth_multiplier, axis=-1)  # output channel c*m + j reads input channel c
    acc = None
    for ky, kx, view in _windows(xs, w.shape[0], w.shape[1], o.stride, o.dilation, pad, out_t.shape[1:3], 0):
        term = view * wk[ky, kx]
        acc = term if acc is None else acc + term
    if quant:
        acc = acc.astype(np.int64)
    return _finish_weighted(graph, op, acc, bias, x.shape[0])


def _fully_connected(graph: Int8Graph, op: Op, env) -> np.ndarray:
    x = env[op.inputs[0]]
    w = _const(graph, op, 1)
    bias = _const(graph, op, 2)
    depth = w.shape[1]
    out_t = graph.tensors[op.outputs[0]]
    rows = x.reshape(-1, depth)
    if out_t.dtype == DType.INT8:
        p = op_params.fc_params(graph, op)
        xs = rows.astype(np.float64) + p.input_offset
        wm = w.astype(np.float64) + p.weight_offset
    else:
        xs, wm = rows.astype(np.float64), w.astype(np.float64)
    acc = xs @ wm.T
    return _finish_weighted(graph, op, acc, bias, x.shape[0])


def _trunc_div(n: np.ndarray, d) -> np.ndarray:
    """C integer division (truncates toward zero)."""
    return np.where(n >= 0, n // d, -((-n) // d))


def _pool(graph: Int8Graph, op: Op, env) -> np.ndarray:
    x = env[op.inputs[0]]
    out_t = graph.tensors[op.outputs[0]]
    o = op.options
    xb = _as_nhwc(x)
    kh, kw = o.filter_size
    _, pad = op_params.window_geometry(o.padding, x.shape[2:4], o.filter_size, o.stride)
    out_hw = out_t.shape[1:3]
    quant = out_t.dtype == DType.INT8
    lo, hi = op_params.activation_range(o.activation, out_t.quantization, out_t.dtype)
    if op.kind == OpKind.MAX_POOL_2D:
        fill = -128 if quant else -np.inf  # TFLM starts the max at the type's lowest value
        y = None
        for _, _, v in _windows(xb, kh, kw, o.stride, (1, 1), pad, out_hw, fill):
            y = v if y is None else np.maximum(y, v)
        y = np.clip(y, lo, hi).astype(out_t.dtype.numpy)
    else:
        xs = xb.astype(np.int32 if quant else np.float64)
        ones = np.ones((1,) + xb.shape[1:3] + (1,), dtype=np.int32)
        acc = cnt = None
        for (_, _, v), (_, _, c) in zip(_windows(xs, kh, kw, o.stride, (1, 1), pad, out_hw, 0),
                                        _windows(ones, kh, kw, o.stride, (1, 1), pad, out_hw, 0), strict=True):
            acc = v if acc is None else acc + v
            cnt = c if cnt is None else cnt + c
        if quant:
            acc = acc.astype(np.int64)
            half = cnt // 2
            # Round half away from zero: (acc +- count/2) / count with C truncating division.
            y = _trunc_div(np.where(acc > 0, acc + half, acc - half), cnt)
            y = np.clip(y, lo, hi).astype(np.int8)
        else:
            y = np.clip(acc / cnt, lo, hi).astype(np.float32)
    return y.reshape((x.shape[0],) + out_t.shape)


def _mean(graph: Int8Graph, op: Op, env) -> np.ndarray:
    x = env[op.inputs[0]]
    out_t = graph.tensors[op.outputs[0]]
    p = op_params.mean_params(graph, op)
    axes = tuple(a + 1 for a in p.axes)  # +1: the evaluation batch axis
    if out_t.dtype == DType.FLOAT32:
        y = x.astype(np.float64).mean(axis=axes).astype(np.float32)
    else:
        total = x.astype(np.int64).sum(axis=axes)
        shifted = fx.wrap_int32(total - p.input_zero_point * p.count)
        y = fx.multiply_by_quantized_multiplier(shifted, p.multiplier, p.shift) + p.output_zero_point
        y = np.clip(y, -128, 127).astype(np.int8)
    return y.reshape((x.shape[0],) + out_t.shape)


def _broadcastable(arr: np.ndarray, rank: int) -> np.ndarray:
    """Insert unit axes after the batch axis so ranks align for numpy broadcasting."""
    missing = rank - (arr.ndim - 1)
    return arr.reshape((arr.shape[0],) + (1,) * missing + arr.shape[1:]) if missing > 0 else arr


def _add(graph: Int8Graph, op: Op, env) -> np.ndarray:
    out_t = graph.tensors[op.outputs[0]]
    a, b = (_broadcastable(env[i], len(out_t.shape)) for i in op.inputs)
    if out_t.dtype == DType.FLOAT32:
        return _float_act(a.astype(np.float64) + b.astype(np.float64), graph, op)
    p = op_params.add_params(graph, op)
    sa = fx.multiply_by_quantized_multiplier_smaller_than_one(
        (a.astype(np.int64) + p.input1_offset) << p.left_shift, p.input1_multiplier, p.input1_shift)
    sb = fx.multiply_by_quantized_multiplier_smaller_than_one(
        (b.astype(np.int64) + p.input2_offset) << p.left_shift, p.input2_multiplier, p.input2_shift)
    y = fx.multiply_by_quantized_multiplier_smaller_than_one(
        fx.wrap_int32(sa + sb), p.output_multiplier, p.output_shift) + p.output_offset
    return np.clip(y, p.act_min, p.act_max).astype(np.int8)


def _mul(graph: Int8Graph, op: Op, env) -> np.ndarray:
    out_t = graph.tensors[op.outputs[0]]
    a, b = (_broadcastable(env[i], len(out_t.shape)) for i in op.inputs)
    if out_t.dtype == DType.FLOAT32:
        return _float_act(a.astype(np.float64) * b.astype(np.float64), graph, op)
    p = op_params.mul_params(graph, op)
    prod = (a.astype(np.int64) + p.input1_offset) * (b.astype(np.int64) + p.input2_offset)  # |.| < 2^16
    y = fx.multiply_by_quantized_multiplier(prod, p.output_multiplier, p.output_shift) + p.output_offset
    return np.clip(y, p.act_min, p.act_max).astype(np.int8)


def _softmax(graph: Int8Graph, op: Op, env) -> np.ndarray:
    x = env[op.inputs[0]]
    if x.dtype == np.float32:
        z = x.astype(np.float64) * float(op.options.beta)
        e = np.exp(z - z.max(axis=-1, keepdims=True))
        return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)
    p = op_params.softmax_params(graph, op)
    xi = x.astype(np.int64)
    diff = xi - xi.max(axis=-1, keepdims=True)            # in [-255, 0]
    # exp() of every possible difference, once: Q5.26 input, Q0.31 output.
    table_diff = -np.arange(256, dtype=np.int64)
    rescaled = fx.multiply_by_quantized_multiplier_greater_than_one(table_diff, p.input_multiplier,
                                                                    p.input_left_shift)
    exp_table = fx.exp_on_negative_values(rescaled, 5)
    exp_table = np.where(table_diff >= p.diff_min, exp_table, 0)
    exps = exp_table[-diff]
    used = diff >= p.diff_min
    # Accumulate in Q12.19: Rescale<12> of a Q0.31 value is a rounding shift right by 12.
    sum_of_exps = fx.wrap_int32(np.where(used, fx.rounding_divide_by_pot(exps, 12), 0).sum(axis=-1, keepdims=True))
    shifted_scale, bits_over_unit = fx.get_reciprocal(sum_of_exps, 12)
    exponent = bits_over_unit + 31 - 8
    if np.any(exponent > 31):  # TFLM's TFLITE_CHECK aborts here (sum of exps >= 2^28: ~512+ maxima)
        raise ValueError(f"SOFTMAX op writing tensor {op.outputs[0]}: the sum of exponentials overflows "
                         "TFLM's int8 softmax (it aborts on such a row)")
    unsat = fx.rounding_divide_by_pot(fx.saturating_rounding_doubling_high_mul(shifted_scale, exps), exponent)
    y = np.clip(unsat - 128, -128, 127)
    return np.where(used, y, -128).astype(np.int8)


def _reshape(graph: Int8Graph, op: Op, env) -> np.ndarray:
    x = env[op.inputs[0]]
    return x.reshape((x.shape[0],) + graph.tensors[op.outputs[0]].shape)


def _pad(graph: Int8Graph, op: Op, env) -> np.ndarray:
    x = env[op.inputs[0]]
    out_t = graph.tensors[op.outputs[0]]
    fill = out_t.quantization.zero_point[0] if out_t.dtype == DType.INT8 else 0.0
    return np.pad(x, ((0, 0),) + op.options.paddings, constant_values=fill)


def quantize(x: np.ndarray, q: Quantization, dtype: type = np.int8) -> np.ndarray:
    """TFLM's QUANTIZE of float values with a per-tensor quantization, saturating at ``dtype``'s range."""
    with np.errstate(invalid="ignore", over="ignore"):
        r = fx.round_half_away(np.asarray(x, np.float32) / np.float32(q.scale[0]))  # float32 division, roundf
    # Out-of-range and NaN casts are undefined in C; saturate (what Cortex-M's VCVT does), NaN -> 0.
    r = np.nan_to_num(np.clip(r, -2.0**31, 2.0**31 - 1), nan=0.0)
    info = np.iinfo(dtype)
    return np.clip(r.astype(np.int64) + q.zero_point[0], info.min, info.max).astype(dtype)


def _quantize(graph: Int8Graph, op: Op, env) -> np.ndarray:
    return quantize(env[op.inputs[0]], graph.tensors[op.outputs[0]].quantization)


def _dequantize(graph: Int8Graph, op: Op, env) -> np.ndarray:
    x = env[op.inputs[0]].astype(np.int64)
    q = graph.tensors[op.inputs[0]].quantization
    return (float(q.scale[0]) * (x - q.zero_point[0]).astype(np.float64)).astype(np.float32)


_KERNELS = {
    OpKind.CONV_2D: _conv,
    OpKind.DEPTHWISE_CONV_2D: _depthwise,
    OpKind.FULLY_CONNECTED: _fully_connected,
    OpKind.AVERAGE_POOL_2D: _pool,
    OpKind.MAX_POOL_2D: _pool,
    OpKind.MEAN: _mean,
    OpKind.ADD: _add,
    OpKind.MUL: _mul,
    OpKind.RESHAPE: _reshape,
    OpKind.SOFTMAX: _softmax,
    OpKind.PAD: _pad,
    OpKind.QUANTIZE: _quantize,
    OpKind.DEQUANTIZE: _dequantize,
}
