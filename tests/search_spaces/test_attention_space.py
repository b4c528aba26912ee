"""Squeeze-and-excitation and attention pooling as search dimensions (``attention=True``): sampled specs carry
gates a quarter of their block's input channels wide and either pooling head, `params_of` inverts them, a space
without the option neither samples nor accepts them, and `gated_spec` puts a gate in every block of a preset."""

from __future__ import annotations

import optuna
import pytest

from nas.study.config import SearchConfig
from search_spaces import NotInSpace, get_preset, get_space
from search_spaces.base import gated_spec, se_width
from search_spaces.estimate import estimate
from search_spaces.spec import AttentionPool, DSConv


@pytest.mark.parametrize("name", ["ds-cnn", "micronet"])
def test_gated_samples_round_trip(name: str) -> None:
    space, plain = get_space(name, attention=True), get_space(name)
    gated = pooled = 0
    for seed in range(30):
        spec = space.sample(optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed)).ask())
        assert space.sample(optuna.trial.FixedTrial(space.params_of(spec))).digest() == spec.digest()
        channels = [shape[-1] for shape in (spec.input_shape, *spec.shapes())]
        gates = [(layer.se, channels[i]) for i, layer in enumerate(spec.layers) if getattr(layer, "se", None)]
        assert all(se == se_width(c) for se, c in gates)
        attention_head = isinstance(spec.layers[-1], AttentionPool)
        if gates or attention_head:
            gated += bool(gates)
            pooled += attention_head
            with pytest.raises(NotInSpace, match="attention=False"):
                plain.params_of(spec)
    assert gated >= 10 and 5 <= pooled <= 25  # both dimensions are really searched


def test_gated_spec_and_its_cost() -> None:
    spec = get_preset("ds-cnn-s")
    gated = gated_spec(spec)
    assert [layer.se for layer in gated.layers if isinstance(layer, DSConv)] == [16] * 4  # 64 channels / 4
    # per block: squeeze 64x16 + 16 biases, excite 16x64 + 64 biases
    assert estimate(gated).params - estimate(spec).params == 4 * (64 * 16 + 16 + 16 * 64 + 64)
    assert gated.digest() != spec.digest() and spec.digest() == "f62f574884d9d70b"  # older digests hold
    with pytest.raises(ValueError, match="no depthwise-separable block"):
        gated_spec(get_preset("dnn-s"))


def test_attention_is_refused_for_spaces_without_it() -> None:
    with pytest.raises(ValueError, match="no squeeze-and-excitation dimension"):
        SearchConfig(space="dnn", attention=True, trials=1)
