"""A JAX interpreter of a float graph (`float_graph`), optionally with int8 fake quantization.

    plan, params = graph_plan(fg), graph_params(fg)
    logits = forward(plan, params, features)                        # the float network, before SOFTMAX
    logits = forward(plan, params, features, activation_grid(fg, ranges))   # as the int8 graph computes it

``params`` are the folded weights and biases of the weighted ops, in the layouts `nas.models.ops` takes
(conv HWIO ``[kh, kw, I, O]``, depthwise ``[kh, kw, C]``, fully connected ``[I, O]``: the output channel
is always the last axis), keyed by op index; `with_params` writes them back into a float graph in the
TFLite layouts. The plan is hashable (a static argument of `jax.jit`): graphs of one architecture share
a compilation whatever their weights.

Fake quantization mirrors `nas.quant.ptq.quantize_graph` (the grids come from it, so they are the
deployed graph's): weights symmetric per output channel with the scale of the current weights
(``max |w| / 127``); the input, every weighted op's output (its fused ReLU/ReLU6 range) and every ADD
output snapped to their asymmetric int8 grid and clipped to it; average-pool outputs snapped to their
input's grid too (the int8 kernel rounds the mean); max pool and reshape are exact on the grid; a SOFTMAX
inside the network (attention pooling) snaps to int8's fixed 1/256 softmax grid. Biases
stay float (their int32 rounding is ~1e-9 of an activation step). Gradients pass straight through
(identity) the rounding, and are zero where a value was clipped.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from hardware.graph import WEIGHTED_OPS, Activation, Int8Graph, Op, OpKind, Padding, Tensor
from nas.models import ops
from nas.quant.ptq import Ranges, quantize_graph

Params = dict[str, dict[str, jax.Array]]  # op index (as text) -> {"w": weights, "b": bias}
Grid = dict[int, tuple[jax.Array, jax.Array]]  # tensor index -> (scale, zero point), float32 scalars

_ACT = {Activation.NONE: "none", Activation.RELU: "relu", Activation.RELU6: "relu6"}
_QMIN, _QMAX = -128.0, 127.0  # int8 activations
_WMAX = 127.0  # symmetric int8 weights use [-127, 127] (TFLite's specification)


@dataclass(frozen=True)
class Plan:
    """The ops of a float graph up to its SOFTMAX, in topological order, with the shapes they need."""

    ops: tuple[tuple[int, Op], ...]  # (op index, op)
    input: int  # the graph input's tensor index
    logits: int  # the tensor SOFTMAX reads
    shapes: tuple[tuple[int, ...], ...]  # every tensor's graph shape (batch 1)


def graph_plan(fg: Int8Graph) -> Plan:
    """The plan of float graph ``fg``; raises ValueError for an op or option the interpreter lacks."""
    if not fg.is_float:
        raise ValueError("the fake-quant interpreter needs the float graph (float_graph)")
    order = fg.topological_order()
    last = fg.ops[order[-1]]
    if last.kind != OpKind.SOFTMAX or len(fg.inputs) != 1 or last.outputs != tuple(fg.outputs):
        raise ValueError("expected one input and a graph that ends in its only SOFTMAX")
    for i in order[:-1]:
        op = fg.ops[i]
        o = op.options
        if op.kind not in (*WEIGHTED_OPS, OpKind.AVERAGE_POOL_2D, OpKind.MAX_POOL_2D, OpKind.RESHAPE, OpKind.ADD,
                           OpKind.MUL, OpKind.SOFTMAX):
            raise ValueError(f"op {i}: {op.kind} is not interpreted")
        if op.kind in (OpKind.CONV_2D, OpKind.DEPTHWISE_CONV_2D) and o.dilation != (1, 1):
            raise ValueError(f"op {i}: dilated convolution is not interpreted")
        if op.kind == OpKind.DEPTHWISE_CONV_2D and o.depth_multiplier != 1:
            raise ValueError(f"op {i}: depth multiplier {o.depth_multiplier} is not interpreted")
        if op.kind in (OpKind.AVERAGE_POOL_2D, OpKind.MAX_POOL_2D) and (
                o.padding != Padding.VALID or o.activation != Activation.NONE):
            raise ValueError(f"op {i}: only VALID pooling without activation is interpreted")
        if op.kind == OpKind.FULLY_CONNECTED and (len(fg.tensors[op.inputs[0]].shape) != 2 or o.keep_num_dims):
            raise ValueError(f"op {i}: a fully connected op needs a [1, features] input")
    return Plan(tuple((i, fg.ops[i]) for i in order[:-1]), fg.inputs[0], last.inputs[0],
                tuple(t.shape for t in fg.tensors))


def graph_params(fg: Int8Graph) -> Params:
    """The trainable weights and biases of ``fg``'s weighted ops (float32, `ops` layouts)."""
    out: Params = {}
    for i, op in enumerate(fg.ops):
        if op.kind not in WEIGHTED_OPS:
            continue
        w = np.asarray(fg.tensors[op.inputs[1]].data, np.float32)
        if op.kind == OpKind.CONV_2D:
            w = w.transpose(1, 2, 3, 0)  # [O, kh, kw, I] -> [kh, kw, I, O]
        elif op.kind == OpKind.DEPTHWISE_CONV_2D:
            w = w[0]  # [1, kh, kw, C] -> [kh, kw, C]
        else:
            w = w.T  # [O, I] -> [I, O]
        n_out = w.shape[-1]
        b = fg.tensors[op.inputs[2]].data if len(op.inputs) > 2 else np.zeros(n_out)
        out[str(i)] = {"w": jnp.asarray(w), "b": jnp.asarray(np.asarray(b, np.float32))}
    return out


def with_params(fg: Int8Graph, params: Params) -> Int8Graph:
    """``fg`` with its weights and biases replaced by ``params`` (same structure, TFLite layouts)."""
    tensors = list(fg.tensors)

    def put(t: int, data: np.ndarray) -> None:
        old = tensors[t]
        tensors[t] = Tensor(old.name, old.shape, old.dtype, None, np.asarray(data, np.float32).reshape(old.shape))

    for key, p in params.items():
        op = fg.ops[int(key)]
        w = np.asarray(p["w"], np.float32)
        if op.kind == OpKind.CONV_2D:
            w = w.transpose(3, 0, 1, 2)
        elif op.kind == OpKind.FULLY_CONNECTED:
            w = w.T
        put(op.inputs[1], w)
        if len(op.inputs) > 2:
            put(op.inputs[2], np.asarray(p["b"]))
    return fg.replace(tensors=tuple(tensors))


def activation_grid(fg: Int8Graph, ranges: Ranges) -> Grid:
    """(scale, zero point) of every activation tensor of the int8 graph ``quantize_graph(fg, ranges)``
    that an op writes with its own parameters or snaps to (all but the SOFTMAX output)."""
    q = quantize_graph(fg, ranges)
    softmax_out = fg.outputs[0]
    grid: Grid = {}
    for t, tensor in enumerate(q.tensors):
        if tensor.data is None and tensor.quantization is not None and t != softmax_out:
            grid[t] = (jnp.float32(tensor.quantization.scale[0]), jnp.float32(tensor.quantization.zero_point[0]))
    return grid


def fake_quant_activation(x: jax.Array, scale: jax.Array, zero_point: jax.Array) -> jax.Array:
    """``x`` clipped to the int8 grid ``scale * (q - zero_point)``, q in [-128, 127], and rounded onto it;
    the gradient is 1 inside the grid's range and 0 outside (clipped)."""
    lo, hi = scale * (_QMIN - zero_point), scale * (_QMAX - zero_point)
    xc = jnp.clip(x, lo, hi)
    return xc + jax.lax.stop_gradient(scale * jnp.round(xc / scale) - xc)


def fake_quant_weights(w: jax.Array) -> jax.Array:
    """``w`` rounded to symmetric int8 per output channel (the last axis), scale ``max |w| / 127`` as
    `weight_quantization` computes it; straight-through gradient (the scale is held constant)."""
    peak = jnp.max(jnp.abs(w.reshape(-1, w.shape[-1])), axis=0)
    scale = jax.lax.stop_gradient(jnp.where(peak > 0, peak / _WMAX, 1.0))
    return w + jax.lax.stop_gradient(scale * jnp.clip(jnp.round(w / scale), -_WMAX, _WMAX) - w)


def forward(plan: Plan, params: Params, features: jax.Array, grid: Grid | None = None) -> jax.Array:
    """Logits [B, classes] (the SOFTMAX input) of features [B, frames, coeffs]; with ``grid``
    (`activation_grid`) fake-quantized as the int8 graph computes them."""
    def snap(t: int, x: jax.Array) -> jax.Array:
        return x if grid is None else fake_quant_activation(x, *grid[t])

    def weights(i: int) -> jax.Array:
        w = params[str(i)]["w"]
        return w if grid is None else fake_quant_weights(w)

    batch = features.shape[0]
    env = {plan.input: snap(plan.input, features.reshape(batch, *plan.shapes[plan.input][1:]))}
    for i, op in plan.ops:
        x, o, out = env[op.inputs[0]], op.options, op.outputs[0]
        if op.kind in WEIGHTED_OPS:
            w = weights(i)
            if op.kind == OpKind.CONV_2D:
                y = ops.conv2d(x, w, o.stride, o.padding.lower())
            elif op.kind == OpKind.DEPTHWISE_CONV_2D:
                y = ops.depthwise_conv(x, w, o.stride, o.padding.lower())
            else:
                y = jnp.dot(x, w)
            y = snap(out, ops.activation(y + params[str(i)]["b"], _ACT[o.activation]))
        elif op.kind == OpKind.ADD:
            y = snap(out, ops.activation(x + env[op.inputs[1]], _ACT[o.activation]))
        elif op.kind == OpKind.MUL:  # a gate broadcast over the map: per channel (SE) or per position (attention)
            y = snap(out, ops.activation(x * env[op.inputs[1]], _ACT[o.activation]))
        elif op.kind == OpKind.SOFTMAX:  # attention weights, on the int8 softmax's fixed 1/256 grid
            y = snap(out, jax.nn.softmax(o.beta * x, axis=-1))
        elif op.kind == OpKind.AVERAGE_POOL_2D:
            y = snap(out, ops.pool2d(x, o.filter_size, o.stride, "avg"))  # out shares its input's grid
        elif op.kind == OpKind.MAX_POOL_2D:
            y = ops.pool2d(x, o.filter_size, o.stride, "max")
        else:  # RESHAPE: the graph's shape with the batch in front of it
            y = x.reshape(batch, *plan.shapes[out][1:])
        env[out] = y
    return env[plan.logits]
