"""The numpy probe build (`nas.models.probe`) is the flax model's deployed op sequence, without JAX."""

from __future__ import annotations

import dataclasses

import numpy as np
import optuna
import pytest

from nas.models import build_model
from nas.models.probe import probe_folded
from search_spaces import SPACES, get_preset, get_space
from search_spaces.spec import Dense


def _structure(ops) -> list[tuple]:
    def extra(o) -> dict:  # a gate's weights by shape
        return {k: tuple(np.shape(a) for a in v) if o.op == "se" else v for k, v in o.extra.items()}

    return [(o.op, None if o.weights is None else o.weights.shape, None if o.bias is None else o.bias.shape,
             o.stride, o.padding, o.activation, o.size, extra(o)) for o in ops]


def _specs():
    # every layer kind and option (the small member of each family; the large ones only repeat them, and each
    # flax build compiles its initialisers: seconds per new shape)
    out = [get_preset(n) for n in ("dnn-s", "cnn-s", "ds-cnn-s", "mlperf-tiny-ds-cnn", "micronet-kws-s", "ei-conv1d")]
    for name in SPACES:
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=5))
        out.append(get_space(name, tune_frontend=True).sample(study.ask()))
    residual = get_space("ds-cnn").params_of(get_preset("ds-cnn-s"))
    residual["b1_residual"] = True
    out.append(get_space("ds-cnn").sample(optuna.trial.FixedTrial(residual)))
    # low-rank 1x1 and dense layers, squeeze-and-excitation gates (with a low rank after one)
    ds = get_preset("ds-cnn-s")
    out.append(dataclasses.replace(ds, name="ds-cnn-s-options", layers=(
        ds.layers[0], dataclasses.replace(ds.layers[1], se=16), dataclasses.replace(ds.layers[2], rank=8),
        dataclasses.replace(ds.layers[3], se=8, rank=16), *ds.layers[4:])))
    dnn = get_preset("dnn-s")
    out.append(dataclasses.replace(dnn, name="dnn-s-low-rank", layers=tuple(
        dataclasses.replace(layer, rank=16) if isinstance(layer, Dense) else layer for layer in dnn.layers)))
    return out


@pytest.mark.parametrize("spec", _specs(), ids=lambda s: s.name)
def test_probe_has_the_models_deployed_structure(spec) -> None:
    probe = probe_folded(spec)
    assert _structure(probe) == _structure(build_model(spec, 0).folded())
    for op in probe:
        if op.weights is not None:  # Glorot-uniform range, like the model's initialiser
            fan = np.prod(op.weights.shape[1:]) if op.op != "depthwise" else np.prod(op.weights.shape[1:3])
            assert np.abs(op.weights).max() <= np.sqrt(6.0 / fan) + 1e-6
    assert _structure(probe_folded(spec, 1)) == _structure(probe)
    assert all(np.array_equal(a.weights, b.weights) for a, b in zip(probe, probe_folded(spec), strict=True)
               if a.weights is not None)  # a pure function of (spec, seed): the measurement cache keys on it


def test_probe_biases_are_distinct_so_the_generator_shares_nothing_a_trained_model_would_not() -> None:
    """The code generator stores equal constant arrays once; all-zero biases would shrink an untrained
    build's flash below the trained model's (DS-CNN-S: by 2 KB)."""
    biases = [op.bias.tobytes() for op in probe_folded(get_preset("ds-cnn-s")) if op.bias is not None]
    assert len(set(biases)) == len(biases) and all(np.any(b) for b in map(np.frombuffer, biases))
