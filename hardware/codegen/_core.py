"""The int8 core of a graph: what the generated C computes.

A float-IO graph (QUANTIZE after a float32 input, DEQUANTIZE before a float32 output) runs its
int8 core on the device; the host quantizes inputs and dequantizes outputs with the scales the
generated header exports. Anything else the C code cannot run is rejected here with the op or
tensor named.
"""

from __future__ import annotations

from dataclasses import dataclass

from hardware.graph import DType, GraphError, Int8Graph, OpKind

SUPPORTED = (OpKind.CONV_2D, OpKind.DEPTHWISE_CONV_2D, OpKind.FULLY_CONNECTED, OpKind.AVERAGE_POOL_2D,
             OpKind.MAX_POOL_2D, OpKind.MEAN, OpKind.ADD, OpKind.MUL, OpKind.RESHAPE, OpKind.SOFTMAX, OpKind.PAD)


@dataclass(frozen=True)
class Core:
    graph: Int8Graph      # same tensor indices as the original; edge QUANTIZE/DEQUANTIZE removed
    float_input: bool
    float_output: bool
    op_index: tuple[int, ...]  # index in the original graph of each core op


def int8_core(graph: Int8Graph) -> Core:
    if graph.is_float:
        raise GraphError("float32 graph: the C code generator supports int8 graphs only (quantize it first)")
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise GraphError(f"the C code generator needs exactly one input and one output, the graph has "
                         f"{len(graph.inputs)} and {len(graph.outputs)}")
    drop: set[int] = set()
    inp, out = graph.inputs[0], graph.outputs[0]
    float_in = graph.tensors[inp].dtype == DType.FLOAT32
    if float_in:
        users = graph.consumers(inp)
        if len(users) != 1 or graph.ops[users[0]].kind != OpKind.QUANTIZE:
            raise GraphError(f"float32 input tensor {inp} must feed exactly one QUANTIZE op (the host quantizes)")
        drop.add(users[0])
        inp = graph.ops[users[0]].outputs[0]
    float_out = graph.tensors[out].dtype == DType.FLOAT32
    if float_out:
        k = graph.producer(out)
        if k is None or graph.ops[k].kind != OpKind.DEQUANTIZE:
            raise GraphError(f"float32 output tensor {out} must come from a DEQUANTIZE op (the host dequantizes)")
        drop.add(k)
        out = graph.ops[k].inputs[0]
    ops, index = [], []
    for k, op in enumerate(graph.ops):
        if k in drop:
            continue
        if op.kind not in SUPPORTED:
            where = "inside the graph (only at its float edges)" if op.kind in (OpKind.QUANTIZE, OpKind.DEQUANTIZE) \
                else "by the C code generator"
            raise GraphError(f"op {k} ({op.kind.value}) is not supported {where}")
        for t in (*op.inputs, *op.outputs):
            if graph.tensors[t].dtype == DType.FLOAT32:
                raise GraphError(f"op {k} ({op.kind.value}) computes in float32; the C code generator is int8 only")
        ops.append(op)
        index.append(k)
    if not ops:
        raise GraphError("the graph's int8 core has no ops: nothing to generate")
    core = Int8Graph(graph.tensors, tuple(ops), (inp,), (out,), {})
    return Core(core, float_in, float_out, tuple(index))
