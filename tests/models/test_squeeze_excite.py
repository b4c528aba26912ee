"""Squeeze-and-excitation blocks (`DSConv.se`): the float graph is the model, the int8 graph is bit-exact with
TFLM and with the generated C (host, both kernel variants), the static estimate counts what the graph holds,
the untrained probe builds the same ops, and a training step runs with the option."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from hardware import reference
from hardware.graph import OpKind
from nas.models.layers import DSBlock
from nas.quant.float_graph import float_graph
from nas.quant.ptq import as_graph_input
from search_spaces.presets import get_preset
from search_spaces.spec import DSConv
from tests.helpers.deploy_checks import check_estimate_and_probe, check_int8_bit_exact  # needs tflite-micro
from tests.helpers.models import random_features, randomised_model
from tests.helpers.one_step import check_build_and_one_step


def with_se(name: str, se: int = 16, **changes) -> object:
    """A preset with a squeeze-and-excitation gate of ``se`` units in every DS block (and ``changes`` to each)."""
    spec = get_preset(name)
    layers = tuple(dataclasses.replace(layer, se=se, **changes) if isinstance(layer, DSConv) else layer
                   for layer in spec.layers)
    return dataclasses.replace(spec, name=f"{name}-se", layers=layers)


SPECS = {
    "ds-cnn-s": lambda: with_se("ds-cnn-s"),
    "residual+low-rank": lambda: dataclasses.replace(
        with_se("ds-cnn-s", 8), layers=tuple(dataclasses.replace(layer, residual=True, rank=16)
                                             if isinstance(layer, DSConv) and i > 1 else layer
                                             for i, layer in enumerate(with_se("ds-cnn-s", 8).layers))),
}


def _model(spec, seed: int):
    """Random batch norms, and gate biases spread so that the hard sigmoid saturates at both ends somewhere."""
    model = randomised_model(spec, seed)
    rng = np.random.default_rng(seed)
    for _, module in nnx.iter_modules(model):
        if isinstance(module, DSBlock) and module.spec.se is not None:
            n = module.se_out_bias[...].shape[0]
            module.se_out_bias[...] = jnp.asarray(rng.normal(0, 3.0, n), jnp.float32)
    return model


@pytest.mark.parametrize("which", SPECS)
def test_float_graph_is_the_model_with_gates(which: str) -> None:
    spec = SPECS[which]()
    model = _model(spec, 3)
    x = random_features(spec, 6, 0)
    fg = float_graph(spec, model.folded())
    assert sum(op.kind == OpKind.MUL for op in fg.ops) == sum(isinstance(layer, DSConv) for layer in spec.layers)
    got = reference.run(fg, as_graph_input(x))[0].reshape(len(x), -1)
    want = np.asarray(jax.nn.softmax(model(jnp.asarray(x), train=False), -1))
    np.testing.assert_allclose(got, want, atol=2e-5)


@pytest.mark.parametrize("which", SPECS)
def test_int8_gates_are_bit_exact_with_tflm_and_the_generated_c(which: str) -> None:
    spec = SPECS[which]()
    check_int8_bit_exact(spec, _model(spec, 4))  # the gate's clamp is exact in float and int8 alike


@pytest.mark.parametrize("which", SPECS)
def test_estimate_and_probe_match_the_graph(which: str) -> None:
    check_estimate_and_probe(SPECS[which]())


def test_a_training_step_with_gates() -> None:
    check_build_and_one_step(SPECS["residual+low-rank"]())  # deployed parameters == estimate, one real step
