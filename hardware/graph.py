"""The in-memory int8 graph: the one language of the hardware side.

An :class:`Int8Graph` is frozen data: tensors (shape, dtype, quantization, constant data), ops of a
small supported set with typed options, graph inputs/outputs and string metadata. The `.tflite`
reader and writer, the golden numpy reference, and later the C code generator and the memory
planner all walk this one structure. Constructing a graph validates it (indices, producers, shapes,
dtypes, the quantization TFLM's int8 kernels require) and raises :class:`GraphError` with the tensor
or op at fault named.

Conventions (those of TFLite): activations are NHWC; conv weights are ``[O, kh, kw, I]`` quantized
per channel along axis 0; depthwise weights ``[1, kh, kw, C*m]`` along axis 3; fully-connected
weights ``[O, I]`` along axis 0; biases int32 ``[O]`` with scale ``in_scale * w_scale[c]`` and zero
point 0. A float32 graph (same ops, float32 tensors, no quantization) is allowed too, for the
float `.tflite` the exporter writes beside the int8 one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import heapq
import json
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum

import numpy as np

from hardware import _validate
from hardware.graph_types import (
    WEIGHTED_OPS,
    Activation,
    AddOptions,
    Conv2DOptions,
    DepthwiseConv2DOptions,
    DType,
    FullyConnectedOptions,
    GraphError,
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
    canonical_bias_quantization,
)

__all__ = [
    "Activation", "AddOptions", "Conv2DOptions", "DType", "DepthwiseConv2DOptions",
    "FullyConnectedOptions", "GraphError", "Int8Graph", "MeanOptions", "MulOptions", "NoOptions", "Op", "OpKind",
    "PadOptions", "Padding", "Pool2DOptions", "Quantization", "ReshapeOptions", "SoftmaxOptions",
    "Tensor", "canonical_bias_quantization",
]


@dataclass(frozen=True, eq=False)
class Int8Graph:
    """A validated graph; see the module docstring. Equality compares every field (tensor data
    included); ``digest()`` is a stable content hash."""

    tensors: tuple[Tensor, ...]
    ops: tuple[Op, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    metadata: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "tensors", tuple(self.tensors))
        object.__setattr__(self, "ops", tuple(self.ops))
        object.__setattr__(self, "inputs", tuple(int(i) for i in self.inputs))
        object.__setattr__(self, "outputs", tuple(int(i) for i in self.outputs))
        meta = dict(self.metadata)
        for k, v in meta.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise GraphError(f"metadata must map str to str, got {type(k).__name__} -> {type(v).__name__}")
        object.__setattr__(self, "metadata", types.MappingProxyType(meta))
        _validate.check_structure(self)
        object.__setattr__(self, "tensors", _validate.fill_bias_quantization(self))
        _validate.check_ops(self)

    # ---- equality and identity ----
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Int8Graph):
            return NotImplemented
        return (self.tensors == other.tensors and self.ops == other.ops and self.inputs == other.inputs
                and self.outputs == other.outputs and dict(self.metadata) == dict(other.metadata))

    def __hash__(self) -> int:
        return hash(self.digest())

    def replace(self, **changes) -> Int8Graph:
        """A modified copy (validated again)."""
        return dataclasses.replace(self, **changes)

    def digest(self) -> str:
        """SHA-256 (hex) of the graph's full content, stable across processes and versions of numpy."""
        h = hashlib.sha256()

        def enc(obj) -> str:
            if isinstance(obj, Enum):
                return obj.value
            if dataclasses.is_dataclass(obj):
                return [type(obj).__name__, {f.name: enc(getattr(obj, f.name)) for f in dataclasses.fields(obj)}]
            if isinstance(obj, tuple | list):
                return [enc(x) for x in obj]
            return obj

        for t in self.tensors:
            h.update(json.dumps([t.name, list(t.shape), t.dtype.value, enc(t.quantization)]).encode())
            if t.data is not None:
                h.update(np.ascontiguousarray(t.data).astype(t.data.dtype.newbyteorder("<")).tobytes())
            h.update(b"\x00")
        for op in self.ops:
            h.update(json.dumps([op.kind.value, list(op.inputs), list(op.outputs), enc(op.options)]).encode())
        h.update(json.dumps([list(self.inputs), list(self.outputs), sorted(self.metadata.items())]).encode())
        return h.hexdigest()

    # ---- structure queries ----
    @property
    def is_float(self) -> bool:
        """True when the ops compute in float32 (a float model, possibly with float IO only)."""
        compute = [op for op in self.ops if op.kind not in (OpKind.QUANTIZE, OpKind.DEQUANTIZE)]
        return bool(compute) and all(self.tensors[op.outputs[0]].dtype == DType.FLOAT32 for op in compute)

    def producer(self, tensor: int) -> int | None:
        """Index of the op writing ``tensor`` (None for inputs and constants)."""
        for i, op in enumerate(self.ops):
            if tensor in op.outputs:
                return i
        return None

    def consumers(self, tensor: int) -> list[int]:
        return [i for i, op in enumerate(self.ops) if tensor in op.inputs]

    def topological_order(self) -> tuple[int, ...]:
        """Op indices so that every op follows the producers of its inputs; ties keep list order."""
        producer = {t: i for i, op in enumerate(self.ops) for t in op.outputs}
        deps = [{producer[t] for t in op.inputs if t in producer} for op in self.ops]
        users: dict[int, list[int]] = {i: [] for i in range(len(self.ops))}
        for i, d in enumerate(deps):
            for j in d:
                users[j].append(i)
        pending = [len(d) for d in deps]
        ready = [i for i, n in enumerate(pending) if n == 0]
        heapq.heapify(ready)
        order: list[int] = []
        while ready:
            i = heapq.heappop(ready)
            order.append(i)
            for u in users[i]:
                pending[u] -= 1
                if pending[u] == 0:
                    heapq.heappush(ready, u)
        if len(order) != len(self.ops):
            raise GraphError("the graph has a cycle")
        return tuple(order)

    def tensor_lifetimes(self) -> dict[int, tuple[int, int]]:
        """For each activation (non-constant) tensor: (first, last) positions in
        ``topological_order()`` during which it must be held, inclusive. Graph inputs start at 0;
        graph outputs last until the final op."""
        order = self.topological_order()
        last_pos = len(order) - 1
        life: dict[int, list[int]] = {t: [0, 0] for t in self.inputs}
        for pos, i in enumerate(order):
            op = self.ops[i]
            for t in op.inputs:
                if not self.tensors[t].is_constant:
                    life.setdefault(t, [pos, pos])[1] = pos
            for t in op.outputs:
                life.setdefault(t, [pos, pos])
        for t in self.outputs:
            if t in life:
                life[t][1] = last_pos
        return {t: (a, b) for t, (a, b) in sorted(life.items())}

    # ---- cost figures ----
    def weight_tensors(self) -> list[int]:
        """Constant weight tensors (input 1 of conv, depthwise and fully-connected ops)."""
        return sorted({op.inputs[1] for op in self.ops if op.kind in WEIGHTED_OPS})

    def bias_tensors(self) -> list[int]:
        return sorted({op.inputs[2] for op in self.ops if op.kind in WEIGHTED_OPS and len(op.inputs) > 2})

    def weight_bytes(self) -> int:
        return sum(self.tensors[t].nbytes for t in self.weight_tensors())

    def bias_bytes(self) -> int:
        return sum(self.tensors[t].nbytes for t in self.bias_tensors())

    def param_bytes(self) -> int:
        """Bytes of all constant tensors the ops read (weights, biases)."""
        return sum(t.nbytes for t in self.tensors if t.is_constant)

    def param_count(self) -> int:
        return sum(t.size for t in self.tensors if t.is_constant)

    def op_macs(self, index: int) -> int:
        """Multiply-accumulates of one op: conv, depthwise and fully-connected only (pools, MEAN
        and ADD do additions and count 0)."""
        op = self.ops[index]
        out = self.tensors[op.outputs[0]]
        if op.kind == OpKind.CONV_2D:
            w = self.tensors[op.inputs[1]].shape
            return out.size * w[1] * w[2] * w[3]
        if op.kind == OpKind.DEPTHWISE_CONV_2D:
            w = self.tensors[op.inputs[1]].shape
            return out.size * w[1] * w[2]
        if op.kind == OpKind.FULLY_CONNECTED:
            return out.size * self.tensors[op.inputs[1]].shape[1]
        return 0

    def macs(self) -> int:
        return sum(self.op_macs(i) for i in range(len(self.ops)))
