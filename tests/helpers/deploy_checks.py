"""Contract checks for an architecture option's deployment (squeeze and excitation, attention pooling): the
int8 graph bit-exact with TFLM and the generated C, and `estimate` / `probe_folded` against the float graph."""

from __future__ import annotations

import numpy as np

from hardware import reference
from hardware.codegen.host import HostModel
from hardware.graph import OpKind
from hardware.tflite_io import read_tflite, write_tflite
from nas.models import build_model
from nas.models.probe import probe_folded
from nas.quant.float_graph import float_graph
from nas.quant.ptq import as_graph_input, calibrate, quantize_features, quantize_graph
from search_spaces.estimate import estimate
from tests.helpers.models import random_features
from tests.helpers.tflm import compare_with_tflm  # skips the importing module without tflite-micro


def check_int8_bit_exact(spec, model) -> None:
    """``model`` of ``spec`` quantized: its ``.tflite`` round-trips, TFLM computes every tensor as the golden
    reference does, the generated C (plain and DSP) gives the same outputs, and the int8 probabilities stay
    near the float ones."""
    fg = float_graph(spec, model.folded())
    q = quantize_graph(fg, calibrate(fg, random_features(spec, 64, 1), clip_percent=0))
    data = write_tflite(q)
    assert read_tflite(data) == q
    xs = quantize_features(as_graph_input(random_features(spec, 8, 2)), q.tensors[q.inputs[0]].quantization)
    compared, differing = compare_with_tflm(q, data, xs)
    assert compared > 0 and differing == 0
    for variant in ("plain", "dsp"):
        got = HostModel(q, variant).run(xs)
        want = reference.run(q, xs)[0]
        assert np.array_equal(np.asarray(got).reshape(want.shape), want), variant
    probs = reference.run(fg, as_graph_input(random_features(spec, 8, 2)))[0].reshape(8, -1)
    int8 = (reference.run(q, xs)[0].reshape(8, -1).astype(np.float64) + 128) / 256
    assert np.abs(int8 - probs).max() < 0.25  # random weights: a loose check, as for the presets


def check_estimate_and_probe(spec) -> None:
    """`estimate` counts the weights the float graph holds; the untrained probe folds to the same ops and
    shapes, and to the same graph."""
    fg = float_graph(spec, build_model(spec, 0).folded())
    weights = sum(fg.tensors[i].data.size for op in fg.ops if op.kind in (OpKind.CONV_2D, OpKind.DEPTHWISE_CONV_2D,
                                                                         OpKind.FULLY_CONNECTED)
                  for i in op.inputs[1:])
    assert estimate(spec).params == weights
    trained, probed = build_model(spec, 0).folded(), probe_folded(spec)
    assert [(f.op, None if f.weights is None else f.weights.shape) for f in trained] == \
        [(f.op, None if f.weights is None else f.weights.shape) for f in probed]
    assert [op.kind for op in float_graph(spec, probed).ops] == [op.kind for op in fg.ops]
