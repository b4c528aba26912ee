"""Test helpers: build realistic int8 graphs with random weights.

:class:`GraphBuilder` adds one op at a time and calibrates each output's quantization from a float
"shadow" of the network run on calibration inputs (as post-training quantization would), so the
int8 arithmetic exercises its whole range without saturating everywhere. Per-channel weight scales
can be spread over decades on purpose.
"""

from __future__ import annotations

import numpy as np

from hardware import reference
from hardware.graph import (
    Activation,
    AddOptions,
    Conv2DOptions,
    DepthwiseConv2DOptions,
    DType,
    FullyConnectedOptions,
    Int8Graph,
    MeanOptions,
    MulOptions,
    NoOptions,
    Op,
    OpKind,
    Padding,
    PadOptions,
    Pool2DOptions,
    Quantization,
    ReshapeOptions,
    SoftmaxOptions,
    Tensor,
)


class GraphBuilder:
    """Adds ops to a graph under construction; ``float_io`` puts QUANTIZE/DEQUANTIZE at the edges."""

    def __init__(self, rng: np.random.Generator, input_shape, *, float_io: bool = False, calib: int = 48,
                 input_scale: float = 0.05, input_zero_point: int = 0, jitter: float = 0.0) -> None:
        self.rng = rng
        self.jitter = jitter  # probability of detuning a calibrated output scale/zero point
        self.tensors: list[Tensor] = []
        self.ops: list[Op] = []
        self.shadow: dict[int, np.ndarray] = {}  # float values on the calibration batch
        self.float_io = float_io
        qin = Quantization.per_tensor(input_scale, input_zero_point)
        lo, hi = input_scale * (-128 - input_zero_point), input_scale * (127 - input_zero_point)
        xs = rng.uniform(lo, hi, size=(calib, *input_shape))
        if float_io:
            self.graph_input = self._tensor("in", input_shape, DType.FLOAT32)
            self.shadow[self.graph_input] = xs
            x = self._tensor("in_q", input_shape, DType.INT8, qin)
            self.ops.append(Op(OpKind.QUANTIZE, (self.graph_input,), (x,), NoOptions()))
        else:
            x = self.graph_input = self._tensor("in", input_shape, DType.INT8, qin)
        self.shadow[x] = self._dequant(xs, qin)
        self.input = x

    # ---- plumbing ----
    def _tensor(self, name, shape, dtype, q=None, data=None) -> int:
        self.tensors.append(Tensor(f"{name}{len(self.tensors)}", tuple(shape), dtype, q, data))
        return len(self.tensors) - 1

    @staticmethod
    def _dequant(x: np.ndarray, q: Quantization) -> np.ndarray:
        qx = np.clip(np.round(x / q.scale[0]) + q.zero_point[0], -128, 127)
        return (qx - q.zero_point[0]) * q.scale[0]

    def _float_run(self, kind, inputs: list[np.ndarray], consts: list[np.ndarray | None], options, out_shape):
        """Run one float op of the same kind on the shadow values (the reference's float kernels)."""
        tensors, ins = [], []
        for v in inputs:
            tensors.append(Tensor(f"x{len(tensors)}", v.shape[1:], DType.FLOAT32))
            ins.append(len(tensors) - 1)
        for c in consts:
            if c is not None:
                tensors.append(Tensor(f"c{len(tensors)}", c.shape, DType.FLOAT32, None, c.astype(np.float32)))
                ins.append(len(tensors) - 1)
        tensors.append(Tensor("y", out_shape, DType.FLOAT32))
        g = Int8Graph(tuple(tensors), (Op(kind, tuple(ins), (len(tensors) - 1,), options),),
                      tuple(range(len(inputs))), (len(tensors) - 1,))
        return reference.run(g, [v.astype(np.float32) for v in inputs])[0].astype(np.float64)

    def _calibrated(self, y: np.ndarray, act: Activation) -> Quantization:
        lo, hi = float(np.percentile(y, 0.1)), float(np.percentile(y, 99.9))
        if act != Activation.NONE:
            lo = 0.0
        if act == Activation.RELU6:
            hi = min(hi, 6.0)
        lo, hi = min(lo, 0.0), max(hi, 1e-3)
        scale = (hi - lo) / 255.0
        zp = int(np.clip(round(-128 - lo / scale), -128, 127))
        if self.jitter and self.rng.random() < self.jitter:
            # Detuned on purpose: saturation, multipliers above 1 (left shifts), odd zero points.
            scale *= 10 ** self.rng.uniform(-1.3, 0.7)
            zp = int(np.clip(zp + self.rng.integers(-60, 61), -128, 127))
        return Quantization.per_tensor(scale, zp)

    def _emit(self, kind, ins: list[int], consts: list[tuple[np.ndarray, Quantization, DType] | None], options,
              out_shape, out_q: Quantization | None = None, act: Activation = Activation.NONE,
              float_consts: list[np.ndarray | None] | None = None) -> int:
        float_y = self._float_run(kind, [self.shadow[i] for i in ins], float_consts or [], options, out_shape)
        q = out_q or self._calibrated(float_y, act)
        if out_q is None and kind == OpKind.ADD and not self._legal_add(ins, q):
            jitter, self.jitter = self.jitter, 0.0  # a detuned output TFLM's ADD cannot rescale to: calibrate it
            q, self.jitter = self._calibrated(float_y, act), jitter
            if not self._legal_add(ins, q):  # inputs of huge range summing to ~0: the smallest legal scale
                sa, sb = (float(self.tensors[i].quantization.scale[0]) for i in ins)
                q = Quantization.per_tensor(2.0 * max(sa, sb) / (1 << 20) * 1.001, q.zero_point[0])
        idx = list(ins)
        for c in consts:
            if c is not None:
                idx.append(self._tensor("w" if c[2] == DType.INT8 else "b", c[0].shape, c[2], c[1], c[0]))
        y = self._tensor(kind.value[:4].lower(), out_shape, DType.INT8, q)
        self.ops.append(Op(kind, tuple(idx), (y,), options))
        self.shadow[y] = self._dequant(float_y, q)
        return y

    def _legal_add(self, ins: list[int], q: Quantization) -> bool:
        """Whether TFLM's ADD can rescale inputs ``ins`` to an output quantized as ``q`` (multipliers below 1)."""
        sa, sb = (float(self.tensors[i].quantization.scale[0]) for i in ins)
        return 2.0 * max(sa, sb) / ((1 << 20) * float(q.scale[0])) < 1.0

    def shape(self, x: int) -> tuple[int, ...]:
        return self.tensors[x].shape

    def _weights(self, shape, axis: int, per_channel: bool, fan_in: int, spread: float):
        """Random float weights, their int8 quantization, and the dequantized float weights."""
        channels = shape[axis]
        gain = np.exp(self.rng.uniform(-spread, spread, size=channels)) if spread else np.ones(channels)
        w = self.rng.normal(size=shape) / np.sqrt(fan_in)
        bshape = [1] * len(shape)
        bshape[axis] = channels
        w = w * gain.reshape(bshape)
        if per_channel:
            red = tuple(a for a in range(len(shape)) if a != axis)
            scales = np.maximum(np.abs(w).max(axis=red), 1e-8) / 127.0
            q = Quantization.per_channel(tuple(scales), axis)
        else:
            scales = np.full(channels, max(np.abs(w).max(), 1e-8) / 127.0)
            q = Quantization.per_tensor(float(scales[0]))
        s = np.asarray(q.scales, dtype=np.float64).reshape(bshape) if per_channel else q.scale[0]
        wq = np.clip(np.round(w / s), -127, 127).astype(np.int8)
        return wq, q, wq * s

    def _bias(self, x: int, wq: Quantization, channels: int):
        from hardware.graph import canonical_bias_quantization

        bq = canonical_bias_quantization(self.tensors[x].quantization, wq)
        bias_f = self.rng.normal(scale=0.1, size=channels)
        scales = np.asarray(bq.scale if bq.is_per_channel else bq.scale * channels, dtype=np.float64)
        b = np.clip(np.round(bias_f / scales), -(2**20), 2**20).astype(np.int32)
        return b, bq, b * scales

    # ---- ops ----
    def conv(self, x, out_ch, kernel=(3, 3), stride=(1, 1), padding=Padding.SAME, act=Activation.RELU,
             per_channel=True, bias=True, dilation=(1, 1), spread=0.0) -> int:
        n, h, w, c = self.shape(x)
        kh, kw = kernel
        wq, q, wf = self._weights((out_ch, kh, kw, c), 0, per_channel, kh * kw * c, spread)
        bq = self._bias(x, q, out_ch) if bias else None
        opts = Conv2DOptions(stride, padding, act, dilation)
        from hardware.op_params import window_geometry

        (oh, ow), _ = window_geometry(padding, (h, w), kernel, stride, dilation)
        return self._emit(OpKind.CONV_2D, [x], [(wq, q, DType.INT8), bq and (bq[0], bq[1], DType.INT32)], opts,
                          (n, oh, ow, out_ch), act=act, float_consts=[wf, bq[2] if bq else None])

    def depthwise(self, x, kernel=(3, 3), stride=(1, 1), padding=Padding.SAME, act=Activation.RELU, mult=1,
                  per_channel=True, bias=True, dilation=(1, 1), spread=0.0) -> int:
        n, h, w, c = self.shape(x)
        kh, kw = kernel
        wq, q, wf = self._weights((1, kh, kw, c * mult), 3, per_channel, kh * kw, spread)
        bq = self._bias(x, q, c * mult) if bias else None
        opts = DepthwiseConv2DOptions(stride, padding, act, dilation, mult)
        from hardware.op_params import window_geometry

        (oh, ow), _ = window_geometry(padding, (h, w), kernel, stride, dilation)
        return self._emit(OpKind.DEPTHWISE_CONV_2D, [x], [(wq, q, DType.INT8), bq and (bq[0], bq[1], DType.INT32)],
                          opts, (n, oh, ow, c * mult), act=act, float_consts=[wf, bq[2] if bq else None])

    def fc(self, x, out, act=Activation.NONE, per_channel=False, bias=True, keep_num_dims=False, spread=0.0) -> int:
        shape = self.shape(x)
        depth = shape[-1]
        wq, q, wf = self._weights((out, depth), 0, per_channel, depth, spread)
        bq = self._bias(x, q, out) if bias else None
        out_shape = shape[:-1] + (out,) if keep_num_dims else (int(np.prod(shape)) // depth, out)
        return self._emit(OpKind.FULLY_CONNECTED, [x], [(wq, q, DType.INT8), bq and (bq[0], bq[1], DType.INT32)],
                          FullyConnectedOptions(act, keep_num_dims), out_shape, act=act,
                          float_consts=[wf, bq[2] if bq else None])

    def pool(self, x, kind=OpKind.AVERAGE_POOL_2D, filter_size=(2, 2), stride=(2, 2), padding=Padding.VALID,
             act=Activation.NONE) -> int:
        from hardware.op_params import window_geometry

        n, h, w, c = self.shape(x)
        (oh, ow), _ = window_geometry(padding, (h, w), filter_size, stride)
        q = self.tensors[x].quantization  # TFLM pools keep the input's quantization
        return self._emit(kind, [x], [], Pool2DOptions(filter_size, stride, padding, act), (n, oh, ow, c), out_q=q)

    def mean(self, x, axes=(1, 2), keep_dims=False, requantize=True) -> int:
        shape = self.shape(x)
        ax = {a % len(shape) for a in axes}
        out = tuple(1 if i in ax else d for i, d in enumerate(shape)) if keep_dims else tuple(
            d for i, d in enumerate(shape) if i not in ax)
        q = None if requantize else self.tensors[x].quantization
        return self._emit(OpKind.MEAN, [x], [], MeanOptions(tuple(axes), keep_dims), out, out_q=q)

    def add(self, a, b, act=Activation.NONE) -> int:
        out = tuple(np.broadcast_shapes(self.shape(a), self.shape(b)))
        return self._emit(OpKind.ADD, [a, b], [], AddOptions(act), out, act=act)

    def mul(self, a, b, act=Activation.NONE) -> int:
        out = tuple(np.broadcast_shapes(self.shape(a), self.shape(b)))
        return self._emit(OpKind.MUL, [a, b], [], MulOptions(act), out, act=act)

    def reshape(self, x, new_shape) -> int:
        size = int(np.prod(self.shape(x)))
        resolved = list(new_shape)
        if -1 in resolved:
            resolved[resolved.index(-1)] = size // int(-np.prod(resolved))
        return self._emit(OpKind.RESHAPE, [x], [], ReshapeOptions(tuple(new_shape)), tuple(resolved),
                          out_q=self.tensors[x].quantization)

    def softmax(self, x, beta=1.0) -> int:
        return self._emit(OpKind.SOFTMAX, [x], [], SoftmaxOptions(beta), self.shape(x),
                          out_q=Quantization.per_tensor(1.0 / 256, -128))

    def pad(self, x, paddings) -> int:
        out = tuple(d + a + b for d, (a, b) in zip(self.shape(x), paddings, strict=True))
        return self._emit(OpKind.PAD, [x], [], PadOptions(tuple(paddings)), out, out_q=self.tensors[x].quantization)

    def finish(self, outputs, metadata=None) -> Int8Graph:
        outs = []
        for y in outputs:
            if self.float_io:
                f = self._tensor("out", self.shape(y), DType.FLOAT32)
                self.ops.append(Op(OpKind.DEQUANTIZE, (y,), (f,), NoOptions()))
                y = f
            outs.append(y)
        return Int8Graph(tuple(self.tensors), tuple(self.ops), (self.graph_input,), tuple(outs), metadata or {})


def ds_cnn_s(rng: np.random.Generator, *, float_io: bool = False, softmax: bool = False, spread: float = 1.0,
             per_channel: bool = True, metadata=None) -> Int8Graph:
    """DS-CNN-S: 49x10 MFCC input, stem 64x10x4 stride 2, 4x (depthwise 3x3 + pointwise 64), mean, FC 12."""
    b = GraphBuilder(rng, (1, 49, 10, 1), float_io=float_io, input_scale=0.35, input_zero_point=-20)
    x = b.conv(b.input, 64, (10, 4), (2, 2), spread=spread, per_channel=per_channel)
    for _ in range(4):
        x = b.depthwise(x, (3, 3), spread=spread, per_channel=per_channel)
        x = b.conv(x, 64, (1, 1), spread=spread, per_channel=per_channel)
    x = b.mean(x, (1, 2), keep_dims=False)
    x = b.fc(x, 12)
    if softmax:
        x = b.softmax(x)
    return b.finish([x], metadata)


def random_graph(rng: np.random.Generator) -> Int8Graph:
    """A random chain of 2-7 ops over a random NHWC input, then a random head (MEAN, FC, SOFTMAX,
    RESHAPE in various forms): random shapes, strides 1-3, SAME/VALID, kernels 1-5 and 10x4,
    per-tensor and per-channel weights (scales spread over decades), zero points across the int8
    range, every fused activation, ADD of differently scaled branches."""
    acts = (Activation.NONE, Activation.RELU, Activation.RELU6)
    pads = (Padding.SAME, Padding.VALID)
    h, w, c = int(rng.integers(4, 17)), int(rng.integers(4, 13)), int(rng.integers(1, 9))
    b = GraphBuilder(rng, (1, h, w, c), float_io=bool(rng.random() < 0.3), input_scale=10 ** rng.uniform(-2.5, 0),
                     input_zero_point=int(rng.integers(-128, 128)), jitter=0.25)
    x = b.input

    def kernel(hh, ww):
        if rng.random() < 0.1 and hh >= 10 and ww >= 4:
            return (10, 4)
        return int(rng.integers(1, min(5, hh) + 1)), int(rng.integers(1, min(5, ww) + 1))

    for _ in range(int(rng.integers(2, 8))):
        _, hh, ww, cc = b.shape(x)
        choice = rng.choice(["conv", "dw", "avg", "max", "add", "pad", "conv", "mul"])
        act, pad = acts[rng.integers(3)], pads[rng.integers(2)]
        stride = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
        if hh < 2 or ww < 2:
            stride, pad = (1, 1), Padding.SAME
        if choice == "conv":
            x = b.conv(x, int(rng.integers(1, 17)), kernel(hh, ww), stride, pad, act, per_channel=bool(rng.random() < 0.8),
                       bias=bool(rng.random() < 0.9), spread=float(rng.uniform(0, 4)))
        elif choice == "dw":
            dil = (2, 1) if rng.random() < 0.15 and hh >= 6 else (1, 1)
            x = b.depthwise(x, kernel(hh, ww) if dil == (1, 1) else (3, min(3, ww)), stride if dil == (1, 1) else (1, 1),
                            pad, act, mult=int(rng.choice([1, 1, 2, 3])), per_channel=bool(rng.random() < 0.8),
                            bias=bool(rng.random() < 0.9), dilation=dil, spread=float(rng.uniform(0, 4)))
        elif choice in ("avg", "max"):
            kind = OpKind.AVERAGE_POOL_2D if choice == "avg" else OpKind.MAX_POOL_2D
            f = (int(rng.integers(1, min(4, hh) + 1)), int(rng.integers(1, min(4, ww) + 1)))
            x = b.pool(x, kind, f, stride, pad, act)
        elif choice == "add":
            other = b.conv(x, cc, (1, 1), act=acts[rng.integers(3)], spread=float(rng.uniform(0, 2)))
            if rng.random() < 0.3:
                other = b.mean(other, (1, 2), keep_dims=True)  # broadcast over H and W
            x = b.add(x, other, act) if rng.random() < 0.5 else b.add(other, x, act)
        elif choice == "mul":  # a squeeze-and-excitation gate ([1, 1, 1, C] or a flat [1, C]), or two maps
            if rng.random() < 0.4:
                gate = b.fc(b.mean(x, (1, 2)), cc, acts[rng.integers(3)], spread=float(rng.uniform(0, 2)))
            else:
                gate = b.conv(x, cc, (1, 1), act=acts[rng.integers(3)], spread=float(rng.uniform(0, 2)))
                if rng.random() < 0.5:
                    gate = b.mean(gate, (1, 2), keep_dims=True)
            x = b.mul(x, gate, act) if rng.random() < 0.5 else b.mul(gate, x, act)
        else:
            x = b.pad(x, ((0, 0), (int(rng.integers(0, 3)), int(rng.integers(0, 3))),
                          (int(rng.integers(0, 3)), int(rng.integers(0, 3))), (0, 0)))
    head = rng.choice(["mean_fc_softmax", "mean", "reshape_fc", "softmax4d", "fc_keep"])
    if head == "mean_fc_softmax":
        x = b.mean(x, (1, 2), keep_dims=bool(rng.random() < 0.5), requantize=bool(rng.random() < 0.6))
        x = b.fc(x, int(rng.integers(2, 13)), acts[rng.integers(3)], per_channel=bool(rng.random() < 0.5),
                 spread=float(rng.uniform(0, 3)))
        x = b.softmax(x, beta=float(rng.choice([1.0, 0.5, 2.0])))
    elif head == "mean":
        axes = [(1, 2), (1,), (2,), (3,), (-1,), (1, 2, 3), (2, 1)][rng.integers(7)]
        x = b.mean(x, axes, keep_dims=bool(rng.random() < 0.5), requantize=bool(rng.random() < 0.6))
    elif head == "reshape_fc":
        x = b.reshape(x, (1, -1))
        x = b.fc(x, int(rng.integers(1, 11)), acts[rng.integers(3)], per_channel=bool(rng.random() < 0.5),
                 bias=bool(rng.random() < 0.8))
    elif head == "softmax4d":
        x = b.softmax(x, beta=float(rng.choice([1.0, 0.25, 3.0])))
    else:
        x = b.fc(x, int(rng.integers(1, 9)), acts[rng.integers(3)], per_channel=bool(rng.random() < 0.5),
                 keep_num_dims=True)
    return b.finish([x])


def float_twin(g: Int8Graph) -> Int8Graph:
    """The float32 graph of the same network: weights and biases dequantized, activations float32,
    QUANTIZE/DEQUANTIZE removed (what the exporter writes beside the int8 model for size comparisons)."""
    remap: dict[int, int] = {}
    for op in g.ops:
        if op.kind in (OpKind.QUANTIZE, OpKind.DEQUANTIZE):
            remap[op.outputs[0]] = remap.get(op.inputs[0], op.inputs[0])
    keep = [i for i in range(len(g.tensors)) if i not in remap]
    new = {old: j for j, old in enumerate(keep)}
    for a, b in remap.items():
        new[a] = new[b]
    tensors = []
    for i in keep:
        t = g.tensors[i]
        data = None
        if t.data is not None:
            q = t.quantization
            scales = np.asarray(q.scale, dtype=np.float64)
            if q.is_per_channel:
                shape = [1] * len(t.shape)
                shape[q.axis] = len(scales)
                scales = scales.reshape(shape)
            data = ((t.data.astype(np.float64) - np.asarray(q.zero_point[0])) * scales).astype(np.float32)
        tensors.append(Tensor(t.name, t.shape, DType.FLOAT32, None, data))
    ops = [Op(op.kind, tuple(new[i] for i in op.inputs), tuple(new[i] for i in op.outputs), op.options)
           for op in g.ops if op.kind not in (OpKind.QUANTIZE, OpKind.DEQUANTIZE)]
    return Int8Graph(tuple(tensors), tuple(ops), tuple(new[i] for i in g.inputs), tuple(new[i] for i in g.outputs),
                     dict(g.metadata))
