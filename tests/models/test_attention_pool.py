"""Attention pooling (`AttentionPool`): the float graph is the model, the int8 graph (a SOFTMAX inside the network
and a MUL broadcast over channels) is bit-exact with TFLM and with the generated C (host, both kernel variants),
the static estimate counts what the graph holds, the untrained probe builds the same ops, a training step runs,
and a spec that cannot fold the pool's scale is refused."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hardware import reference
from hardware.graph import OpKind
from nas.quant.float_graph import float_graph
from nas.quant.ptq import as_graph_input
from search_spaces.base import attention_pooled_spec, gated_spec
from search_spaces.estimate import estimate
from search_spaces.presets import get_preset
from search_spaces.spec import ArchSpec, AttentionPool, Dense, Dropout, Flatten, GlobalAvgPool, SpecError
from tests.helpers.deploy_checks import check_estimate_and_probe, check_int8_bit_exact  # needs tflite-micro
from tests.helpers.models import random_features, randomised_model
from tests.helpers.one_step import check_build_and_one_step

SPECS = {
    "ds-cnn-s": lambda: attention_pooled_spec(get_preset("ds-cnn-s")),
    "micronet-kws-s+se": lambda: attention_pooled_spec(gated_spec(get_preset("micronet-kws-s"))),
}


@pytest.mark.parametrize("which", SPECS)
def test_float_graph_is_the_model_with_attention(which: str) -> None:
    spec = SPECS[which]()
    model = randomised_model(spec, 3)
    x = random_features(spec, 6, 0)
    fg = float_graph(spec, model.folded())
    kinds = [op.kind for op in fg.ops]
    assert kinds.count(OpKind.SOFTMAX) == 2  # the attention weights and the classifier's
    got = reference.run(fg, as_graph_input(x))[0].reshape(len(x), -1)
    want = np.asarray(jax.nn.softmax(model(jnp.asarray(x), train=False), -1))
    np.testing.assert_allclose(got, want, atol=2e-5)


def test_int8_attention_is_bit_exact_with_tflm_and_the_generated_c() -> None:
    spec = SPECS["ds-cnn-s"]()
    check_int8_bit_exact(spec, randomised_model(spec, 4))


@pytest.mark.parametrize("which", SPECS)
def test_estimate_and_probe_match_the_graph(which: str) -> None:
    spec = SPECS[which]()
    check_estimate_and_probe(spec)
    averaged = dataclasses.replace(spec, layers=tuple(GlobalAvgPool() if isinstance(layer, AttentionPool) else layer
                                                       for layer in spec.layers))
    assert estimate(spec).params - estimate(averaged).params == spec.shapes()[-2][0] + 1  # scores and a bias


def test_the_next_dense_layer_takes_the_pools_scale() -> None:
    """Trained, the pool sums its weighted map; deployed, it averages it: the classifier's weights are
    the trained ones times the number of positions (25 x 5 for DS-CNN-S), its bias unchanged."""
    spec = SPECS["ds-cnn-s"]()
    model = randomised_model(spec, 5)
    folded = model.folded()
    dense = folded[-1]
    trained = np.asarray(model.layers[-1].kernel[...]).T
    np.testing.assert_allclose(dense.weights, trained * 125, rtol=1e-6)
    np.testing.assert_array_equal(dense.bias, np.asarray(model.layers[-1].bias[...]))


def test_a_training_step_with_attention_pooling() -> None:
    check_build_and_one_step(SPECS["ds-cnn-s"]())  # deployed parameters == estimate, one real step


def test_a_pool_that_cannot_fold_its_scale_is_refused() -> None:
    base = get_preset("ds-cnn-s")
    body = tuple(AttentionPool() if layer.kind == "gap" else layer for layer in base.layers)
    ArchSpec("ok", "ds-cnn", base.frontend, (*body, Dropout(0.2), Dense(32)), 12)  # dropout between is fine
    with pytest.raises(SpecError, match="attention pooling must feed a dense layer"):
        ArchSpec("bad", "ds-cnn", base.frontend, (*body, Flatten()), 12)
    with pytest.raises(ValueError, match="no global average pooling"):
        attention_pooled_spec(get_preset("dnn-s"))
