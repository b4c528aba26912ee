"""Every preset (and DS-CNN-S with gates and attention pooling), quantized, runs bit-exact with the golden reference: as generated C on the host (both
kernel variants) and in the firmware on all four emulated boards (the DSP variant where the core has it)."""

from __future__ import annotations

import numpy as np
import pytest

from hardware import reference
from hardware.boards import get_board
from hardware.codegen.host import HostModel
from hardware.tflite_io import write_tflite
from nas.quant.float_graph import float_graph
from nas.quant.ptq import calibrate, quantize_graph
from search_spaces.base import attention_pooled_spec, gated_spec
from search_spaces.presets import PRESET_NAMES, get_preset
from tests.helpers.models import random_features, randomised_model

EMULATED = ("mps2-an385", "mps2-an386", "mps2-an500", "mps2-an505")


def _int8(spec):
    fg = float_graph(spec, randomised_model(spec, 7).folded())
    return quantize_graph(fg, calibrate(fg, random_features(spec, 32, 5)))


@pytest.fixture(scope="module")
def graphs():
    # every preset, and DS-CNN-S with a squeeze-and-excitation gate in every block (MUL broadcast over positions)
    # and attention pooling (a SOFTMAX inside the network, MUL broadcast over channels)
    specs = {name: get_preset(name) for name in PRESET_NAMES} | {
        "ds-cnn-s-se-attnpool": attention_pooled_spec(gated_spec(get_preset("ds-cnn-s")))}
    return {name: _int8(spec) for name, spec in specs.items()}


@pytest.mark.parametrize("variant", ["plain", "dsp"])
def test_every_preset_on_the_host(graphs, variant: str) -> None:
    rng = np.random.default_rng(0)
    for name, g in graphs.items():
        x = rng.integers(-128, 128, size=(4, *g.tensors[g.inputs[0]].shape)).astype(np.int8)
        got = HostModel(g, variant).run(x)
        want = reference.run(g, x)[0]
        assert np.array_equal(np.asarray(got).reshape(want.shape), want), f"{name} ({variant}) differs on the host"


@pytest.mark.parametrize("board", EMULATED)
def test_every_preset_on_every_emulated_board(graphs, board: str, tmp_path) -> None:
    from hardware.emulator import have_qemu
    from hardware.evaluators import EmulatorEvaluator, MeasurementCache
    from hardware.firmware import have_toolchain

    if not (have_qemu() and have_toolchain()):
        pytest.skip("qemu-system-arm or arm-none-eabi-gcc missing (scripts/bootstrap.sh installs them)")
    # On the M4 (the DSP kernels, inline asm included) a debug build keeps every intermediate tensor
    # in the arena and the check compares them all; elsewhere the tensors a normal build leaves intact
    # (the logits, the pooled features) are compared beside the output.
    debug = board == "mps2-an386"
    ev = EmulatorEvaluator(checks=1 if debug else 2, per_op=False, cache=MeasurementCache(tmp_path), debug=debug)
    budget = get_board(board)
    failures = []
    for name, g in graphs.items():
        m = ev.measure(write_tflite(g), budget)
        activations = sum(t.data is None for t in g.tensors) - 2  # less the input and the output
        compared = m.tensors_checked == activations if debug else m.tensors_checked >= 1
        if not (m.ok and m.output_match and compared):
            failures.append(f"{name}: ok={m.ok} match={m.output_match} tensors {m.tensors_checked}/{activations} "
                            f"{m.error}")
    assert not failures, "\n".join(failures)
