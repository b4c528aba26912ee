"""`search_spaces.estimate` on small specs whose figures can be checked by hand."""

from __future__ import annotations

import pytest

from search_spaces.estimate import estimate
from search_spaces.frontend import FrontEndConfig
from search_spaces.spec import ArchSpec, AvgPool, Conv, Dense, Dropout, DSConv, Flatten, GlobalAvgPool


def tiny_frontend(frames: int, coeffs: int) -> FrontEndConfig:
    """A front end whose features are ``frames x coeffs`` (a short clip, 20 ms windows, 10 ms stride)."""
    window, stride = 320, 160
    return FrontEndConfig(name=f"tiny-{frames}x{coeffs}", clip_samples=window + (frames - 1) * stride,
                          window_samples=window, stride_samples=stride, n_coeffs=coeffs)


def spec_of(*layers, frames: int = 4, coeffs: int = 4, num_classes: int = 2) -> ArchSpec:
    return ArchSpec(name="t", family="test", frontend=tiny_frontend(frames, coeffs), layers=layers,
                    num_classes=num_classes)


def test_tiny_frontend_shape() -> None:
    assert spec_of(GlobalAvgPool()).input_shape == (4, 4, 1)


def test_single_conv() -> None:
    # input 4x4x1 (16 B) -> conv 3x3 SAME, 8 filters -> 4x4x8 (128 B) -> gap 8 -> dense 2
    est = estimate(spec_of(Conv(8, (3, 3)), GlobalAvgPool()))
    assert [layer.op for layer in est.layers] == ["conv 3x3/1x1", "avgpool 4x4 (global)", "reshape", "dense"]
    conv, gap, reshape, dense = est.layers
    assert (conv.params, conv.macs, conv.output_shape, conv.output_bytes) == (3 * 3 * 8 + 8, 4 * 4 * 8 * 9, (4, 4, 8), 128)
    assert conv.live_bytes == 16 + 128  # the model input and the conv output
    assert gap.live_bytes == 128 + 8 and gap.macs == 0
    assert reshape.alias and reshape.live_bytes == 8
    assert (dense.params, dense.macs, dense.live_bytes) == (8 * 2 + 2, 16, 8 + 2)
    assert est.params == 80 + 18
    assert est.macs == 1152 + 16
    assert est.peak_activation_bytes == 144
    assert est.weight_bytes == (72 + 16) * 1 + (8 + 2) * 4  # int8 weights, int32 biases
    assert est.input_shape == (4, 4, 1)


def test_valid_conv_with_stride() -> None:
    # 4x4x1 -> conv 3x3 stride 1 VALID -> 2x2x2: MACs 2*2*2*9
    est = estimate(spec_of(Conv(2, (3, 3), padding="valid"), Flatten()))
    assert est.layers[0].output_shape == (2, 2, 2)
    assert est.layers[0].macs == 72


def test_ds_block_lowers_to_depthwise_then_pointwise() -> None:
    # stem 1x1 -> 4x4x4; DS 3x3 stride 2 -> depthwise 2x2x4, pointwise 2x2x8
    est = estimate(spec_of(Conv(4, (1, 1)), DSConv(8, (3, 3), (2, 2)), GlobalAvgPool()))
    ops = [(layer.op, layer.spec_layer) for layer in est.layers]
    assert ops == [("conv 1x1/1x1", 0), ("dwconv 3x3/2x2", 1), ("conv 1x1/1x1", 1),
                   ("avgpool 2x2 (global)", 2), ("reshape", 2), ("dense", 3)]
    _, dw, pw, *_ = est.layers
    assert (dw.params, dw.macs, dw.output_shape) == (9 * 4 + 4, 2 * 2 * 4 * 9, (2, 2, 4))
    assert (pw.params, pw.macs, pw.output_shape) == (4 * 8 + 8, 2 * 2 * 4 * 8, (2, 2, 8))
    assert dw.live_bytes == 64 + 16  # 4x4x4 in, 2x2x4 out
    assert pw.live_bytes == 16 + 32
    assert est.peak_activation_bytes == 16 + 64  # the stem: input 16 B + output 64 B


def test_residual_skip_raises_the_peak() -> None:
    plain = estimate(spec_of(Conv(8, (1, 1)), DSConv(8), GlobalAvgPool()))
    skip = estimate(spec_of(Conv(8, (1, 1)), DSConv(8, residual=True), GlobalAvgPool()))
    # the block input (4x4x8 = 128 B) stays live through depthwise, pointwise and the ADD
    assert [layer.op for layer in skip.layers][1:4] == ["dwconv 3x3/1x1", "conv 1x1/1x1", "add"]
    assert plain.peak_activation_bytes == 128 + 128
    assert skip.layers[2].live_bytes == 128 * 3  # skip source + depthwise out + pointwise out
    assert skip.layers[3].live_bytes == 128 * 3  # skip source + pointwise out + sum
    assert skip.peak_activation_bytes == 384
    add = skip.layers[3]
    assert (add.params, add.macs) == (0, 0)
    assert skip.params == plain.params and skip.macs == plain.macs


def test_flatten_is_an_alias() -> None:
    # conv 1x1 -> 4x4x2 (32 B); flatten renames it; dense 32 -> 4
    est = estimate(spec_of(Conv(2, (1, 1)), Flatten(), Dense(4)))
    conv, reshape, dense, _ = est.layers
    assert reshape.alias and reshape.params == 0 and reshape.output_shape == (32,)
    assert reshape.live_bytes == 32  # only the renamed tensor: nothing new is allocated
    assert dense.live_bytes == 32 + 4  # not 32 + 32 + 4
    assert conv.live_bytes == 16 + 32
    assert est.peak_activation_bytes == 48


def test_flatten_of_the_model_input_keeps_the_input_live() -> None:
    est = estimate(spec_of(Flatten(), Dense(4)))
    assert [layer.live_bytes for layer in est.layers] == [16, 16 + 4, 4 + 2]


def test_dropout_is_nothing() -> None:
    a = estimate(spec_of(Conv(4, (3, 3)), GlobalAvgPool()))
    b = estimate(spec_of(Conv(4, (3, 3)), Dropout(0.3), GlobalAvgPool(), Dropout(0.5)))
    def strip(est):  # the spec layer indices shift by the dropouts; everything else is equal
        return [(x.op, x.output_shape, x.params, x.macs, x.output_bytes, x.live_bytes) for x in est.layers]

    assert strip(a) == strip(b)
    assert (a.params, a.macs, a.peak_activation_bytes, a.weight_bytes) == (b.params, b.macs, b.peak_activation_bytes,
                                                                           b.weight_bytes)


def test_pooling_is_a_new_tensor_with_no_macs() -> None:
    est = estimate(spec_of(Conv(4, (1, 1)), AvgPool((2, 2)), Flatten()))
    pool = est.layers[1]
    assert (pool.op, pool.output_shape, pool.macs, pool.params) == ("avgpool 2x2/2x2", (2, 2, 4), 0, 0)
    assert pool.live_bytes == 64 + 16


def test_totals_are_the_sums_of_the_layers() -> None:
    est = estimate(spec_of(Conv(8, (3, 3), (2, 2)), DSConv(8, residual=True), DSConv(16, (5, 5)),
                           GlobalAvgPool(), Dense(8), frames=9, coeffs=6, num_classes=5))
    assert est.params == sum(layer.params for layer in est.layers)
    assert est.macs == sum(layer.macs for layer in est.layers)
    assert est.peak_activation_bytes == max(layer.live_bytes for layer in est.layers) == est.peak_op.live_bytes
    assert est.layers[-1].output_shape == (5,)
    assert est.to_dict()["layers"][0]["op"] == "conv 3x3/2x2"


@pytest.mark.parametrize("classes", [2, 12, 35])
def test_classifier_follows_num_classes(classes: int) -> None:
    est = estimate(spec_of(Conv(4, (1, 1)), GlobalAvgPool(), num_classes=classes))
    assert est.layers[-1].params == 4 * classes + classes
