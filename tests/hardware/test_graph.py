"""The int8 graph: validation with clear errors, structure queries and cost figures."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from hardware.graph import (
    Activation,
    Conv2DOptions,
    DType,
    GraphError,
    Int8Graph,
    Op,
    OpKind,
    Padding,
    Quantization,
    SoftmaxOptions,
    Tensor,
    canonical_bias_quantization,
)
from tests.helpers.int8_graphs import ds_cnn_s

Q = Quantization.per_tensor(0.1, 3)


def _conv_graph(**overrides) -> Int8Graph:
    """x[1,8,8,2] -> CONV 3x3 (4 channels, per-channel) -> y[1,8,8,4]."""
    w = np.ones((4, 3, 3, 2), dtype=np.int8)
    parts = dict(
        tensors=(Tensor("x", (1, 8, 8, 2), DType.INT8, Q),
                 Tensor("w", (4, 3, 3, 2), DType.INT8, Quantization.per_channel([0.01, 0.02, 0.03, 0.04], 0), w),
                 Tensor("b", (4,), DType.INT32, None, np.zeros(4, np.int32)),
                 Tensor("y", (1, 8, 8, 4), DType.INT8, Quantization.per_tensor(0.2, -5))),
        ops=(Op(OpKind.CONV_2D, (0, 1, 2), (3,), Conv2DOptions((1, 1), Padding.SAME, Activation.RELU)),),
        inputs=(0,), outputs=(3,))
    parts.update(overrides)
    return Int8Graph(**parts)


def test_valid_graph_and_implied_bias_quantization() -> None:
    g = _conv_graph()
    assert g.tensors[2].quantization == canonical_bias_quantization(g.tensors[0].quantization,
                                                                    g.tensors[1].quantization)
    assert g.tensors[2].quantization.scale[1] == pytest.approx(0.1 * 0.02, rel=1e-6)
    with pytest.raises(dataclasses.FrozenInstanceError):
        g.ops = ()  # type: ignore[misc]


@pytest.mark.parametrize("change, message", [
    (dict(outputs=(7,)), "graph output refers to tensor 7"),
    (dict(ops=(Op(OpKind.CONV_2D, (0, 1, 9), (3,), Conv2DOptions()),)), r"refers to tensor 9"),
    (dict(inputs=()), "dangling"),
    (dict(ops=(Op(OpKind.CONV_2D, (0, 1, 2), (3,), Conv2DOptions((2, 2))),)), r"has shape \(1, 8, 8, 4\), the op gives "
                                                                               r"\(1, 4, 4, 4\)"),
    (dict(ops=(Op(OpKind.CONV_2D, (0, 1, 2), (3,), Conv2DOptions()),
               Op(OpKind.CONV_2D, (0, 1, 2), (3,), Conv2DOptions()))), "written by ops 0 and 1"),
    (dict(ops=(Op(OpKind.CONV_2D, (0, 1, 2), (1,), Conv2DOptions()),)), "writes constant tensor"),
])
def test_structural_errors_are_clear(change, message) -> None:
    with pytest.raises(GraphError, match=message):
        _conv_graph(**change)


def test_tensor_level_errors_are_clear() -> None:
    g = _conv_graph()
    no_quant = Tensor("y", (1, 8, 8, 4), DType.INT8)
    with pytest.raises(GraphError, match=r"tensor 3 \('y'\): int8 tensor without quantization"):
        g.replace(tensors=g.tensors[:3] + (no_quant,))
    bad_w = Tensor("w", (4, 3, 3, 2), DType.INT8, Quantization.per_channel([0.1] * 3, 0), g.tensors[1].data)
    with pytest.raises(GraphError, match="3 per-channel scales along axis 0"):
        g.replace(tensors=(g.tensors[0], bad_w) + g.tensors[2:])
    asym = Tensor("w", (4, 3, 3, 2), DType.INT8, Quantization((0.1,), (5,)), g.tensors[1].data)
    with pytest.raises(GraphError, match="symmetric"):
        g.replace(tensors=(g.tensors[0], asym) + g.tensors[2:])
    with pytest.raises(GraphError, match="data has 3 elements"):
        Tensor("c", (2, 2), DType.INT8, Q, np.zeros(3, np.int8))
    with pytest.raises(GraphError, match="outside the int8 range"):
        Tensor("c", (2,), DType.INT8, Q, np.array([0, 200]))
    with pytest.raises(GraphError, match="float64 for a int8"):
        Tensor("c", (2,), DType.INT8, Q, np.array([0.5, 1.0]))
    with pytest.raises(GraphError, match="finite and positive"):
        Quantization.per_tensor(0.0)


def test_tflm_constraints_are_checked() -> None:
    x = Tensor("x", (1, 10), DType.INT8, Q)
    y = Tensor("y", (1, 10), DType.INT8, Quantization.per_tensor(1 / 255, -128))
    with pytest.raises(GraphError, match="scale 1/256 and zero point -128"):
        Int8Graph((x, y), (Op(OpKind.SOFTMAX, (0,), (1,), SoftmaxOptions()),), (0,), (1,))
    y = Tensor("y", (1, 10), DType.INT8, Quantization.per_tensor(1 / 256, -128))
    assert Int8Graph((x, y), (Op(OpKind.SOFTMAX, (0,), (1,), SoftmaxOptions()),), (0,), (1,)).macs() == 0


def test_cycle_is_rejected() -> None:
    t = lambda n: Tensor(n, (1, 4), DType.INT8, Q)  # noqa: E731
    ops = (Op(OpKind.SOFTMAX, (0,), (1,)), Op(OpKind.RESHAPE, (1,), (0,), None))
    with pytest.raises(GraphError):
        Int8Graph((t("a"), t("b")), ops, (), (1,))


def test_structure_queries_and_costs() -> None:
    g = ds_cnn_s(np.random.default_rng(0), softmax=True)
    assert g.topological_order() == tuple(range(len(g.ops)))
    shuffled = g.replace(ops=tuple(reversed(g.ops)))
    order = shuffled.topological_order()
    assert [shuffled.ops[i].kind for i in order] == [op.kind for op in g.ops]
    life = g.tensor_lifetimes()
    assert life[g.inputs[0]] == (0, 0)
    assert life[g.outputs[0]] == (len(g.ops) - 1, len(g.ops) - 1)
    assert all(a <= b for a, b in life.values())
    assert g.param_count() == 22604 and g.weight_bytes() == 22016 and g.bias_bytes() == 2352
    assert g.macs() == 25 * 5 * 64 * 40 + 4 * (25 * 5 * 64 * 9 + 25 * 5 * 64 * 64) + 64 * 12
    assert g.producer(g.outputs[0]) == len(g.ops) - 1 and g.consumers(g.inputs[0]) == [0]
    again = ds_cnn_s(np.random.default_rng(0), softmax=True)
    assert again == g and again.digest() == g.digest() and hash(again) == hash(g)
    assert g.replace(metadata={"labels": "a,b"}).digest() != g.digest()
