"""What any `.tflite` holds, computed from its bytes: ops, shapes, parameters, MACs, peak activation memory.

    summary = inspect_tflite(Path("model.tflite").read_bytes())
    summary.total_macs, summary.peak_activation_bytes, summary.metadata_keys  # plain data; render elsewhere

Any model `hardware.read_tflite` accepts (int8, or float32 with ``allow_float``) can be inspected; a
damaged or unsupported file raises its `ValueError` (`hardware.TfliteError`, `hardware.GraphError`).

Peak activation memory is a liveness estimate: ops run in `Int8Graph.topological_order()`, every
activation tensor (graph inputs and op outputs, constants excluded) occupies its ``nbytes`` from the op
that writes it to the last op that reads it, and the peak is the largest sum of live tensors at one op.
A real arena planner may need more (fragmentation, scratch buffers) or less (in-place RESHAPE).

Metadata entries are listed by name only; kwsnas reads its own entry (labels, front end) in
``nas.export.metadata``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hardware.graph import Int8Graph, Tensor
from hardware.tflite_io import read_tflite


@dataclass(frozen=True)
class TensorSummary:
    """A graph input or output as a runtime sees it."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    scale: tuple[float, ...] | None  # None: not quantized (float32)
    zero_point: tuple[int, ...] | None

    @classmethod
    def of(cls, t: Tensor) -> TensorSummary:
        q = t.quantization
        return cls(t.name, t.shape, t.dtype.value, None if q is None else q.scale, None if q is None else q.zero_point)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype,
                "scale": None if self.scale is None else list(self.scale),
                "zero_point": None if self.zero_point is None else list(self.zero_point)}


@dataclass(frozen=True)
class OpSummary:
    """One op, at its position in execution (topological) order."""

    index: int  # position in the file's operator list
    kind: str
    input_shapes: tuple[tuple[int, ...], ...]  # activation inputs only (constants are in param_bytes)
    output_shape: tuple[int, ...]
    activation: str  # the fused activation (NONE for ops without one)
    macs: int
    param_bytes: int  # constant inputs: weights, biases, other constant operands
    live_bytes: int  # activation bytes held while this op runs (its inputs, its output, everything kept alive)

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "kind": self.kind, "input_shapes": [list(s) for s in self.input_shapes],
                "output_shape": list(self.output_shape), "activation": self.activation, "macs": self.macs,
                "param_bytes": self.param_bytes, "live_bytes": self.live_bytes}


@dataclass(frozen=True)
class ModelSummary:
    file_bytes: int
    is_float: bool  # the ops compute in float32
    tensor_count: int
    ops: tuple[OpSummary, ...]  # in execution order
    inputs: tuple[TensorSummary, ...]
    outputs: tuple[TensorSummary, ...]
    param_count: int  # elements of all constant tensors
    param_bytes: int  # bytes of all constant tensors (weights + biases + other constants)
    weight_bytes: int  # conv, depthwise and fully-connected weights
    bias_bytes: int
    total_macs: int
    peak_activation_bytes: int  # liveness estimate, see the module docstring
    peak_op: int | None  # file index of the op at the peak (None for a graph without ops)
    metadata_keys: tuple[str, ...]  # every metadata entry's name (e.g. min_runtime_version)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "file_bytes": self.file_bytes, "is_float": self.is_float, "tensor_count": self.tensor_count,
            "op_count": len(self.ops), "inputs": [t.to_dict() for t in self.inputs],
            "outputs": [t.to_dict() for t in self.outputs], "param_count": self.param_count,
            "param_bytes": self.param_bytes, "weight_bytes": self.weight_bytes, "bias_bytes": self.bias_bytes,
            "total_macs": self.total_macs, "peak_activation_bytes": self.peak_activation_bytes,
            "peak_op": self.peak_op, "metadata_keys": list(self.metadata_keys), "ops": [op.to_dict() for op in self.ops],
        }


def live_bytes_by_position(graph: Int8Graph) -> list[int]:
    """Bytes of activation tensors live at each position of ``graph.topological_order()``."""
    live = [0] * len(graph.ops)
    for t, (first, last) in graph.tensor_lifetimes().items():
        for pos in range(first, last + 1):
            live[pos] += graph.tensors[t].nbytes
    return live


def summarize(graph: Int8Graph, file_bytes: int) -> ModelSummary:
    """The `ModelSummary` of a graph read from a file of ``file_bytes``."""
    order = graph.topological_order()
    live = live_bytes_by_position(graph)
    ops = []
    for pos, i in enumerate(order):
        op = graph.ops[i]
        ins = [graph.tensors[t] for t in op.inputs]
        ops.append(OpSummary(
            index=i, kind=op.kind.value, input_shapes=tuple(t.shape for t in ins if not t.is_constant),
            output_shape=graph.tensors[op.outputs[0]].shape, activation=op.activation.value,
            macs=graph.op_macs(i), param_bytes=sum(t.nbytes for t in ins if t.is_constant), live_bytes=live[pos]))
    peak_pos = max(range(len(live)), key=live.__getitem__) if live else None
    return ModelSummary(
        file_bytes=file_bytes, is_float=graph.is_float, tensor_count=len(graph.tensors), ops=tuple(ops),
        inputs=tuple(TensorSummary.of(graph.tensors[t]) for t in graph.inputs),
        outputs=tuple(TensorSummary.of(graph.tensors[t]) for t in graph.outputs),
        param_count=graph.param_count(), param_bytes=graph.param_bytes(), weight_bytes=graph.weight_bytes(),
        bias_bytes=graph.bias_bytes(), total_macs=graph.macs(),
        peak_activation_bytes=live[peak_pos] if peak_pos is not None else 0,
        peak_op=order[peak_pos] if peak_pos is not None else None,
        metadata_keys=tuple(sorted(graph.metadata)))


def inspect_tflite(data: bytes) -> ModelSummary:
    """The `ModelSummary` of a `.tflite` (int8 or float32). Raises `ValueError` subclasses for a file the
    reader rejects (`hardware.ModelFormatError`, `hardware.UnsupportedModelError`)."""
    return summarize(read_tflite(data, allow_float=True), len(data))
