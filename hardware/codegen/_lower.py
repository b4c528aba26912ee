"""Lowering of each int8 op to one kernel call with literal arguments, its constant arrays, its
scratch need and its streaming model (for in-place planning).

Constants come from :mod:`hardware.op_params`, the derivation the golden reference uses, so the
C and the reference cannot drift apart. The DSP variant uses the DSP kernels where their
preconditions hold (see each ``_*_dsp`` below) and the plain kernels elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hardware import op_params
from hardware.codegen import _inplace
from hardware.graph import GraphError, Int8Graph, Op, OpKind

MAX_SCRATCH_BYTES = 4096  # larger im2col/row buffers fall back to the plain kernel (RAM over speed)
MIN_GEMM_CHANNELS = 4     # below this, im2col costs more than the GEMM saves (measured: 1-channel conv
                          # 2.7x slower than the plain kernel on the emulated M4)
MAX_DW_SCRATCH_BYTES = 8192  # depthwise scratch allowed where it does not grow the arena (the generator
                             # plans both; the plain depthwise kernel is ~5x slower)
MAX_DW_KH = 16            # KWS_MAX_KH in kws_kernels_dsp.h


@dataclass
class CArray:
    suffix: str
    ctype: str            # int8_t, int16_t or int32_t
    values: np.ndarray


@dataclass
class Lowered:
    kind: OpKind
    inputs: tuple[int, ...]           # activation tensors read: {in0}, {in1}
    output: int                       # {out}
    call: str | None                  # C statement with {in0} {in1} {out} {scratch} {rev} and array suffixes
    arrays: list[CArray] = field(default_factory=list)
    scratch_bytes: int = 0
    stream: _inplace.Stream | None = None  # None: the output never overlaps an input
    alias: bool = False               # RESHAPE: the output is the input
    kernel: str = ""


def _ceil(x: int, m: int) -> int:
    return -(-x // m) * m


def _lit(v) -> str:
    v = int(v)
    return "(-2147483647 - 1)" if v == -(1 << 31) else str(v)


def _args(*vals) -> str:
    return ", ".join(_lit(v) for v in vals)


def _acc_bound(wmat: np.ndarray, in_off: int, w_off: int, bias: np.ndarray | None) -> np.ndarray:
    """Largest |accumulator| per output channel over all int8 inputs (weights [oc, K])."""
    xmax = max(abs(-128 + in_off), abs(127 + in_off))
    bound = np.abs(wmat.astype(np.int64) + w_off).sum(axis=1) * xmax
    return bound + (np.abs(bias.astype(np.int64)) if bias is not None else 0)


def _requant_mode(label: int, op: Op, bound: np.ndarray, p) -> int:
    """The DSP kernels' requantization mode (see kws_rq in kws_kernels_dsp.h): 2 (SMMULR) when
    |acc| < 2^30, 1 (64-bit SRDHM) otherwise, both only for right shifts whose rounding sum with
    the folded zero point cannot overflow; else 0 (the general path). Raises where even the int32
    accumulator could overflow (TFLM would wrap silently)."""
    if bound.size and bound.max() >= 1 << 31:
        raise GraphError(f"op {label} ({op.kind.value}): accumulators can reach {int(bound.max())}, beyond int32")
    shift = np.asarray(p.shift, np.int64)
    if not bound.size or shift.max() > -1:
        return 0
    right = -shift
    y_max = (bound * np.asarray(p.multiplier, np.int64) >> 31) + 1
    rnd_max = (1 << (right - 1)) + 128 * (1 << right)
    if (y_max + rnd_max + 1 >= 1 << 31).any():
        return 0
    return 2 if bound.max() < 1 << 30 else 1


def _plain_arrays(bias, p) -> list[CArray]:
    arrays = [CArray("m", "int32_t", np.asarray(p.multiplier)), CArray("s", "int8_t", np.asarray(p.shift))]
    if bias is not None:
        arrays.append(CArray("b", "int32_t", bias))
    return arrays


def _dsp_arrays(bias, p, mode: int, pad_even: bool, rounding: bool = True) -> list[CArray]:
    """Requantization pairs {m, rnd} with int8 right shifts (mode 1/2) or {m, 0} with int8 shifts
    (mode 0), and the bias. ``rounding=False``: multipliers only, for kernels that derive rnd from
    the shift (kws_rq_rnd): 4 bytes less flash per channel."""
    oc = len(p.multiplier)
    n = oc + (oc & 1) if pad_even else oc
    q = np.zeros((n, 2), np.int64)
    sh = np.full(n, 1 if mode else -1, np.int64)  # padding channels: computed, never written
    m, shift = np.asarray(p.multiplier, np.int64), np.asarray(p.shift, np.int64)
    q[:oc, 0] = m
    if mode:
        right = -shift
        q[:oc, 1] = (1 << (right - 1)) + (p.output_offset << right)
        sh[:oc] = right
    else:
        sh[:oc] = shift
    arrays = [CArray("q", "int32_t", q if rounding else q[:, 0]), CArray("r", "int8_t", sh)]
    if bias is not None:
        b = np.zeros(n, np.int64)
        b[:oc] = bias
        arrays.append(CArray("b", "int32_t", b))
    return arrays


def gemm_weights(wmat: np.ndarray, wide: bool = False, w_off: int = 0) -> CArray:
    """[oc, K] int8 -> the DSP GEMM layout [ceil(oc/2)][k4/4][2][4], zero padded; ``wide``: int16
    with the weight offset added, taps of each group in the order (t0, t2, t1, t3)."""
    oc, k = wmat.shape
    ocp, k4 = oc + (oc & 1), _ceil(k, 4)
    a = np.zeros((ocp, k4), np.int16)
    a[:oc, :k] = wmat.astype(np.int16) + (w_off if wide else 0)
    a = a.reshape(ocp // 2, 2, k4 // 4, 4).transpose(0, 2, 1, 3)
    if wide:
        return CArray("w", "int16_t", a[..., [0, 2, 1, 3]].ravel())
    return CArray("w", "int8_t", a.ravel())


def dw_weights(w: np.ndarray, wide: bool = True, scale: int = 1) -> CArray:
    """[kh, kw, C] int8 (C % 4 == 0) -> the DSP depthwise layout (see kws_kernels_dsp.h): ``wide``
    int16 pairs ready for SMLAD, else int8 words that SXTB16 (and SXTB16 ror 8) widen to them."""
    kh, kw, c = w.shape
    out = []
    for g in range(0, c, 4):
        for kx in range(kw):
            for ky in range(0, kh - 1, 2):
                for j in range(4):
                    out += [w[ky, kx, g + j], w[ky + 1, kx, g + j]]
            if kh % 2:
                r = w[kh - 1, kx, g:g + 4]
                out += [r[0], r[2], r[1], r[3]]
    v = np.asarray(out, np.int64)
    if wide:
        return CArray("w", "int16_t", v * scale)
    # int16 words (a, b), (c, d) <- int8 word [a c b d]: SXTB16 takes bytes 0, 2; ror 8 bytes 1, 3
    return CArray("w", "int8_t", v.reshape(-1, 4)[:, [0, 2, 1, 3]].ravel())


def dwplane_rows(ih: int, kh: int, pt: int) -> int:
    """Rows per column of kws_dwplane_dsp's int16 planes (even): the padded input rows, and every
    row word the last pair of output rows loads (whole LDRD pairs)."""
    m = kh // 2
    words = 2 * ((m + 2) // 2)              # pair words loaded per filter column
    last = 2 * ((ih + 1) // 2 - 1)          # first row of the last output pair
    return max(_ceil(pt + ih, 2), last + 2 * words, _ceil(ih, 4) + 2 if kh == 3 else 0)  # kws_dwp3: groups of 4


def lower(graph: Int8Graph, op: Op, variant: str, label: int, wide: bool = False,
          dw_scratch: int = MAX_SCRATCH_BYTES) -> Lowered:
    """Lower ``op`` of ``graph``; ``label`` is the op's index in the caller's graph (for messages);
    ``wide``: int16 weights in the DSP variant; ``dw_scratch``: the DSP depthwise kernel's scratch
    limit."""
    fn = _LOWER.get(op.kind)
    if fn is None:
        raise GraphError(f"op {label} ({op.kind.value}): not supported by the C code generator")
    if op.kind == OpKind.DEPTHWISE_CONV_2D:
        return fn(graph, label, op, variant, wide, dw_scratch)
    if op.kind in (OpKind.CONV_2D, OpKind.FULLY_CONNECTED):
        return fn(graph, label, op, variant, wide)
    return fn(graph, label, op, variant)


def _window(graph, op):
    x, y = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    return x.shape, y.shape


def _conv(graph: Int8Graph, k: int, op: Op, variant: str, wide: bool = False) -> Lowered:
    (n, ih, iw, ic), (_, oh, ow, oc) = _window(graph, op)
    w = graph.tensors[op.inputs[1]].data
    bias = graph.tensors[op.inputs[2]].data if len(op.inputs) > 2 else None
    p = op_params.conv_params(graph, op)
    _, kh, kw, _ = w.shape
    wmat = w.reshape(oc, -1)
    mode = _requant_mode(k, op, _acc_bound(wmat, p.input_offset, 0, bias), p)
    geo = (n, ih, iw, ic, oh, ow, oc, kh, kw, *p.stride, *p.dilation, *p.pad)
    tail = _args(p.input_offset, p.output_offset, p.act_min, p.act_max)
    b = "{b}" if bias is not None else "0"
    k4 = _ceil(kh * kw * ic, 4)
    if variant == "dsp" and not wide and 3 * k4 * 2 <= MAX_SCRATCH_BYTES and 2 * k4 * 2 <= 1020 \
            and oc >= MIN_GEMM_CHANNELS:
        # three pixels per weight load (kws_gemm3: its LDRD offsets reach 2 * k4 * 2 bytes)
        if mode == 2 and oc % 2 == 0:  # constants as one record per pair of channels
            m = np.asarray(p.multiplier, np.int64).reshape(-1, 2)
            right = -np.asarray(p.shift, np.int64).reshape(-1, 2)
            rnd = (1 << (right - 1)) + (p.output_offset << right)
            rec = np.stack([m[:, 0], rnd[:, 0], m[:, 1], rnd[:, 1], right[:, 0] | right[:, 1] << 8], axis=1)
            arrays = [gemm_weights(wmat), CArray("g", "int32_t", rec)]
            if bias is not None:
                arrays.append(CArray("b", "int32_t", bias))
            call = (f"kws_conv3r_dsp({{in0}}, {{out}}, {{w}}, {b}, {{g}}, (int16_t *)({{scratch}}), {_args(*geo)}, "
                    f"{_args(p.input_offset, p.act_min, p.act_max)}, {{rev}});")
            stream = _inplace.window_stream(*_window(graph, op), (kh, kw), p.stride, p.dilation, p.pad, 3, True)
            return Lowered(op.kind, (op.inputs[0],), op.outputs[0], call, arrays, 3 * k4 * 2 + _ceil(3 * oc, 4),
                           stream, kernel="conv_dsp")
        arrays = [gemm_weights(wmat)] + _dsp_arrays(bias, p, mode, True)
        call = (f"kws_conv3_dsp({{in0}}, {{out}}, {{w}}, {b}, {{q}}, {{r}}, (int16_t *)({{scratch}}), "
                f"{_args(*geo)}, {tail}, {{rev}}, {mode});")
        stream = _inplace.window_stream(*_window(graph, op), (kh, kw), p.stride, p.dilation, p.pad, 3, True)
        return Lowered(op.kind, (op.inputs[0],), op.outputs[0], call, arrays, 3 * k4 * 2, stream,
                       kernel="conv_dsp")
    if variant == "dsp" and 2 * k4 * 2 <= MAX_SCRATCH_BYTES and oc >= MIN_GEMM_CHANNELS:
        arrays = [gemm_weights(wmat, wide)] + _dsp_arrays(bias, p, mode, True)
        call = (f"kws_conv_dsp({{in0}}, {{out}}, {{w}}, {int(wide)}, {b}, {{q}}, {{r}}, (int16_t *)({{scratch}}), "
                f"{_args(*geo)}, {tail}, {{rev}}, {mode});")
        stream = _inplace.window_stream(*_window(graph, op), (kh, kw), p.stride, p.dilation, p.pad, 2, True)
        return Lowered(op.kind, (op.inputs[0],), op.outputs[0], call, arrays, 2 * k4 * 2, stream,
                       kernel="conv_dsp")
    kr4, ocp = _ceil(kw * ic, 4), oc + (oc & 1)
    row_scratch = ocp * 2 * 4 + 2 * kr4 * 2  # accumulators of two pixels, then their window row (int16)
    if variant == "dsp" and not wide and kh > 1 and row_scratch <= MAX_SCRATCH_BYTES and oc >= MIN_GEMM_CHANNELS:
        # the im2col of two pixels does not fit: the GEMM one window row at a time (kws_convrow_dsp)
        rows = [gemm_weights(w[:, ky].reshape(oc, -1)).values for ky in range(kh)]
        arrays = [CArray("w", "int8_t", np.concatenate(rows))] + _dsp_arrays(bias, p, mode, True)
        call = (f"kws_convrow_dsp({{in0}}, {{out}}, {{w}}, {b}, {{q}}, {{r}}, (int32_t *)({{scratch}}), "
                f"{_args(*geo)}, {tail}, {{rev}}, {mode});")
        stream = _inplace.window_stream(*_window(graph, op), (kh, kw), p.stride, p.dilation, p.pad, 2, True)
        return Lowered(op.kind, (op.inputs[0],), op.outputs[0], call, arrays, row_scratch, stream, kernel="conv_dsp")
    arrays = [CArray("w", "int8_t", w.ravel())] + _plain_arrays(bias, p)
    call = f"kws_conv({{in0}}, {{out}}, {{w}}, {b}, {{m}}, {{s}}, {_args(*geo)}, {tail}, {{rev}});"
    stream = _inplace.window_stream(*_window(graph, op), (kh, kw), p.stride, p.dilation, p.pad)
    return Lowered(op.kind, (op.inputs[0],), op.outputs[0], call, arrays, 0, stream, kernel="conv")


def _depthwise(graph: Int8Graph, k: int, op: Op, variant: str, wide: bool = False,
               limit: int = MAX_SCRATCH_BYTES) -> Lowered:
    (n, ih, iw, ic), (_, oh, ow, oc) = _window(graph, op)
    w = graph.tensors[op.inputs[1]].data[0]   # [kh, kw, oc]
    bias = graph.tensors[op.inputs[2]].data if len(op.inputs) > 2 else None
    p = op_params.conv_params(graph, op)
    kh, kw, _ = w.shape
    dm = op.options.depth_multiplier
    mode = _requant_mode(k, op, _acc_bound(w.reshape(-1, oc).T, p.input_offset, 0, bias), p)
    tail = _args(p.input_offset, p.output_offset, p.act_min, p.act_max)
    b = "{b}" if bias is not None else "0"
    stream = _inplace.window_stream(*_window(graph, op), (kh, kw), p.stride, p.dilation, p.pad)
    if (variant == "dsp" and dm == 1 and ic % 4 == 0 and (oh, ow) == (ih, iw) and tuple(p.stride) == (1, 1)
            and tuple(p.dilation) == (1, 1) and kh <= MAX_DW_KH and kw <= MAX_DW_KH):
        ph = dwplane_rows(ih, kh, p.pad[0])
        scratch = 4 * (iw + kw - 1) * ph * 2
        if scratch <= limit:
            dbl = 2 if mode == 2 else 1
            arrays = _dsp_arrays(None if bias is None else bias.astype(np.int64) * dbl, p, mode, False, False)
            arrays.append(CArray("w", "int8_t", np.ascontiguousarray(w.transpose(2, 0, 1)).ravel()))
            geo = (n, ih, iw, ic, kh, kw, *p.pad, ph)
            call = (f"kws_dwplane_dsp({{in0}}, {{out}}, {{w}}, {b}, {{q}}, {{r}}, {{scratch}}, "
                    f"{_args(*geo)}, {tail}, {mode});")
            return Lowered(op.kind, (op.inputs[0],), op.outputs[0], call, arrays, scratch, _inplace.ExactStream(),
                           kernel="dwplane_dsp")
    dh, dw = p.dilation
    pw = max(iw + p.pad[1], (ow - 1) * p.stride[1] + (kw - 1) * dw + 1)  # window row width, padded
    window = ((kh - 1) * dh + 1) * pw * ic                                 # rows under one output row
    ncols = (ow - 1) * p.stride[1] + (kw - 1) * dw + 1
    window = _ceil(window, 8) + ncols * kh * 8                             # + int16 pairs of 4 channels
    # int8 weights are widened in scratch: all at once (0), else one group per output row (2)
    wmode = 1 if wide else 0 if window + kh * kw * ic * 2 <= limit else 2
    window += {1: 0, 0: kh * kw * ic * 2, 2: kh * kw * 8}[wmode]
    if variant == "dsp" and dm == 1 and ic % 4 == 0 and kh <= MAX_DW_KH and window <= limit:
        # requantization mode 2: doubled bias and (int16) weights, see kws_rq_dw
        dbl = 2 if mode == 2 else 1
        arrays = _dsp_arrays(None if bias is None else bias.astype(np.int64) * dbl, p, mode, False)
        arrays.append(dw_weights(w, wide, dbl if wide else 1))
        geo = (n, ih, iw, ic, oh, ow, kh, kw, *p.stride, *p.dilation, *p.pad, pw)
        call = (f"kws_dwconv_dsp({{in0}}, {{out}}, {{w}}, {wmode}, {b}, {{q}}, {{r}}, {{scratch}}, "
                f"{_args(*geo)}, {tail}, {{rev}}, {mode});")
        rows = _inplace.window_rows_stream((n, ih, iw, ic), (n, oh, ow, oc), kh, p.stride[0], dh, p.pad[0])
        return Lowered(op.kind, (op.inputs[0],), op.outputs[0], call, arrays, window, rows, kernel="dwconv_dsp")
    pairs = ncols * 2 * kh * 4 + ow * ic                                   # pair words + one output row
    # its point is a small scratch: int8 weights widened a group at a time (~7 % more instructions on
    # MicroNet-KWS-M's strided layer, 2.5 KB less arena), all at once only under the larger limit
    wmode = 1 if wide else 0 if limit > MAX_SCRATCH_BYTES and pairs + kh * kw * ic * 2 <= limit else 2
    scratch = pairs + {1: 0, 0: kh * kw * ic * 2, 2: kh * kw * 8}[wmode]
    if variant == "dsp" and dm == 1 and ic % 4 == 0 and kh <= MAX_DW_KH and scratch <= limit:
        # the window of whole input rows does not fit: pairs straight from the input, a row at a time
        dbl = 2 if mode == 2 else 1
        arrays = _dsp_arrays(None if bias is None else bias.astype(np.int64) * dbl, p, mode, False)
        arrays.append(dw_weights(w, wide, dbl if wide else 1))
        geo = (n, ih, iw, ic, oh, ow, kh, kw, *p.stride, *p.dilation, *p.pad)
        call = (f"kws_dwrow_dsp({{in0}}, {{out}}, {{w}}, {wmode}, {b}, {{q}}, {{r}}, {{scratch}}, "
                f"{_args(*geo)}, {tail}, {{rev}}, {mode});")
        rows = _inplace.window_stream(*_window(graph, op), (kh, kw), p.stride, p.dilation, p.pad, ow, True)
        return Lowered(op.kind, (op.inputs[0],), op.outputs[0], call, arrays, scratch, rows, kernel="dwrow_dsp")
    arrays = _plain_arrays(bias, p) + [CArray("w", "int8_t", w.ravel())]
    geo = (n, ih, iw, ic, dm, oh, ow, kh, kw, *p.stride, *p.dilation, *p.pad)
    call = f"kws_dwconv({{in0}}, {{out}}, {{w}}, {b}, {{m}}, {{s}}, {_args(*geo)}, {tail}, {{rev}});"
    return Lowered(op.kind, (op.inputs[0],), op.outputs[0], call, arrays, 0, stream, kernel="dwconv")


def _fully_connected(graph: Int8Graph, k: int, op: Op, variant: str, wide: bool = False) -> Lowered:
    x = graph.tensors[op.inputs[0]]
    w = graph.tensors[op.inputs[1]].data
    bias = graph.tensors[op.inputs[2]].data if len(op.inputs) > 2 else None
    p = op_params.fc_params(graph, op)
    oc, depth = w.shape
    rows = x.size // depth
    mode = _requant_mode(k, op, _acc_bound(w, p.input_offset, p.weight_offset, bias), p)
    tail = _args(p.input_offset, p.weight_offset, p.output_offset, p.act_min, p.act_max)
    b = "{b}" if bias is not None else "0"
    k4 = _ceil(depth, 4)
    scratch = (1 if rows == 1 else 2) * k4 * 2
    if variant == "dsp" and scratch <= MAX_SCRATCH_BYTES and (oc >= MIN_GEMM_CHANNELS or depth % 4 == 0):
        arrays = [gemm_weights(w, wide, p.weight_offset)] + _dsp_arrays(bias, p, mode, True)
        call = (f"kws_fc_dsp({{in0}}, {{out}}, {{w}}, {int(wide)}, {b}, {{q}}, {{r}}, (int16_t *)({{scratch}}), "
                f"{_args(rows, depth, oc)}, {tail}, {{rev}}, {mode});")
        stream = _inplace.rows_stream(rows, depth, oc, 2 if rows > 1 else 1, True)
        return Lowered(op.kind, (op.inputs[0],), op.outputs[0], call, arrays, scratch, stream, kernel="fc_dsp")
    arrays = [CArray("w", "int8_t", w.ravel())] + _plain_arrays(bias, p)
    call = f"kws_fc({{in0}}, {{out}}, {{w}}, {b}, {{m}}, {{s}}, {_args(rows, depth, oc)}, {tail}, {{rev}});"
    return Lowered(op.kind, (op.inputs[0],), op.outputs[0], call, arrays, 0,
                   _inplace.rows_stream(rows, depth, oc), kernel="fc")


def _pool(graph: Int8Graph, k: int, op: Op, variant: str) -> Lowered:
    (n, ih, iw, c), (_, oh, ow, _) = _window(graph, op)
    o = op.options
    y = graph.tensors[op.outputs[0]]
    pad = _inplace.conv_geometry((n, ih, iw, c), o.filter_size, o)
    lo, hi = op_params.activation_range(o.activation, y.quantization, y.dtype)
    is_max = int(op.kind == OpKind.MAX_POOL_2D)
    geo = (is_max, n, ih, iw, c, oh, ow, *o.filter_size, *o.stride, *pad, lo, hi)
    stream = _inplace.window_stream((n, ih, iw, c), (n, oh, ow, c), o.filter_size, o.stride, (1, 1), pad)
    return Lowered(op.kind, (op.inputs[0],), op.outputs[0], f"kws_pool({{in0}}, {{out}}, {_args(*geo)}, {{rev}});",
                   [], 0, stream, kernel="pool")


def _collapse(shape, flags) -> tuple[list[int], list[bool]]:
    """Merge adjacent dimensions with equal flags (size-1 dimensions join anything)."""
    dims, fl = [], []
    for d, f in zip(shape, flags, strict=True):
        if d == 1:
            continue
        if fl and fl[-1] == f:
            dims[-1] *= d
        else:
            dims.append(d)
            fl.append(f)
    return dims or [1], fl or [False]


def _mean(graph: Int8Graph, k: int, op: Op, variant: str) -> Lowered:
    x = graph.tensors[op.inputs[0]]
    p = op_params.mean_params(graph, op)
    dims, flags = _collapse(x.shape, [i in p.axes for i in range(len(x.shape))])
    if len(dims) > 4:
        raise GraphError(f"op {k} (MEAN): more than 4 alternating reduced/kept dimension runs in {x.shape}")
    dims = [1] * (4 - len(dims)) + dims
    flags = [False] * (4 - len(flags)) + flags
    args = _args(*dims, *[int(f) for f in flags], p.input_zero_point, p.count, p.multiplier, p.shift,
                 p.output_zero_point)
    return Lowered(op.kind, (op.inputs[0],), op.outputs[0], f"kws_mean({{in0}}, {{out}}, {args});", kernel="mean")


def _broadcast_4d(graph: Int8Graph, k: int, op: Op) -> tuple[tuple[int, ...], list[int]]:
    """An elementwise op's output dims as 4-D and both inputs' element strides (0 where broadcast)."""
    y = graph.tensors[op.outputs[0]]
    if len(y.shape) > 4:
        raise GraphError(f"op {k} ({op.kind.value}): rank {len(y.shape)} > 4 is not supported")
    out4 = (1,) * (4 - len(y.shape)) + y.shape
    strides = []
    for t in op.inputs[:2]:
        s = graph.tensors[t].shape
        s4 = (1,) * (4 - len(s)) + s
        st = np.cumprod((1,) + s4[:0:-1])[::-1]          # row-major element strides
        strides += [int(st[i]) if s4[i] > 1 else 0 for i in range(4)]
    return out4, strides


def _add(graph: Int8Graph, k: int, op: Op, variant: str) -> Lowered:
    y = graph.tensors[op.outputs[0]]
    out4, strides = _broadcast_4d(graph, k, op)
    pr = op_params.add_params(graph, op)
    args = _args(*out4, *strides, pr.left_shift, pr.input1_offset, pr.input1_multiplier, pr.input1_shift,
                 pr.input2_offset, pr.input2_multiplier, pr.input2_shift, pr.output_offset, pr.output_multiplier,
                 pr.output_shift, pr.act_min, pr.act_max)
    stream = _inplace.elementwise_stream(y.shape, [graph.tensors[t].shape for t in op.inputs[:2]], reversible=False)
    call = f"kws_add({{in0}}, {{in1}}, {{out}}, {args}, {{rev}});"
    return Lowered(op.kind, tuple(op.inputs[:2]), op.outputs[0], call, [], 0, stream, kernel="add")


def _mul(graph: Int8Graph, k: int, op: Op, variant: str) -> Lowered:
    y = graph.tensors[op.outputs[0]]
    out4, strides = _broadcast_4d(graph, k, op)
    pr = op_params.mul_params(graph, op)
    args = _args(*out4, *strides, pr.input1_offset, pr.input2_offset, pr.output_offset, pr.output_multiplier,
                 pr.output_shift, pr.act_min, pr.act_max)
    stream = _inplace.elementwise_stream(y.shape, [graph.tensors[t].shape for t in op.inputs[:2]], reversible=False)
    call = f"kws_mul({{in0}}, {{in1}}, {{out}}, {args}, {{rev}});"
    return Lowered(op.kind, tuple(op.inputs[:2]), op.outputs[0], call, [], 0, stream, kernel="mul")


def _softmax(graph: Int8Graph, k: int, op: Op, variant: str) -> Lowered:
    x = graph.tensors[op.inputs[0]]
    depth = x.shape[-1]
    p = op_params.softmax_params(graph, op)
    lim = int(min(255, -p.diff_min))  # the largest difference (row max - x) with a nonzero share
    call = (f"kws_softmax({{in0}}, {{out}}, {_args(x.size // depth, depth, p.input_multiplier, p.input_left_shift)}, "
            f"{lim}, {{rev}});")
    return Lowered(op.kind, (op.inputs[0],), op.outputs[0], call, [], 0, _inplace.softmax_stream(x.shape),
                   kernel="softmax")


def _pad(graph: Int8Graph, k: int, op: Op, variant: str) -> Lowered:
    x, y = graph.tensors[op.inputs[0]], graph.tensors[op.outputs[0]]
    if len(x.shape) > 4:
        raise GraphError(f"op {k} (PAD): rank {len(x.shape)} > 4 is not supported")
    extra = 4 - len(x.shape)
    in4 = (1,) * extra + x.shape
    out4 = (1,) * extra + y.shape
    before = (0,) * extra + tuple(a for a, _ in op.options.paddings)
    args = _args(*in4, *out4, *before, y.quantization.zero_point[0])
    return Lowered(op.kind, (op.inputs[0],), op.outputs[0], f"kws_pad({{in0}}, {{out}}, {args}, {{rev}});", [], 0,
                   _inplace.pad_stream(in4, out4, before), kernel="pad")


def _reshape(graph: Int8Graph, k: int, op: Op, variant: str) -> Lowered:
    return Lowered(op.kind, (op.inputs[0],), op.outputs[0], None, alias=True, kernel="alias")


_LOWER = {
    OpKind.CONV_2D: _conv,
    OpKind.DEPTHWISE_CONV_2D: _depthwise,
    OpKind.FULLY_CONNECTED: _fully_connected,
    OpKind.AVERAGE_POOL_2D: _pool,
    OpKind.MAX_POOL_2D: _pool,
    OpKind.MEAN: _mean,
    OpKind.ADD: _add,
    OpKind.MUL: _mul,
    OpKind.SOFTMAX: _softmax,
    OpKind.PAD: _pad,
    OpKind.RESHAPE: _reshape,
}
