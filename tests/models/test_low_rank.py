"""Low-rank (SVD-style) layers: a `DSConv`'s 1x1 convolution or a `Dense` layer as a rank-r projection then an
expansion. The spec, the estimate, training, the deployed graph and the int8 kernels all follow it, and specs
without a rank keep their digests (every cache and committed result is keyed by them)."""

from __future__ import annotations

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hardware import reference
from hardware.codegen.host import HostModel
from nas.models import build_model, merge_model, split_model
from nas.models.layers import DSBlock
from nas.quant.float_graph import float_graph
from nas.quant.ptq import as_graph_input, calibrate, quantize_graph
from nas.train.compress import factorize, low_rank_spec
from search_spaces.estimate import estimate
from search_spaces.frontend import get_frontend
from search_spaces.presets import get_preset
from search_spaces.spec import ArchSpec, Conv, Dense, DSConv, Flatten, GlobalAvgPool, SpecError
from tests.helpers.models import random_features, randomised_model
from tests.helpers.one_step import check_build_and_one_step


def _low_rank_ds_cnn() -> ArchSpec:
    return ArchSpec("lr-ds", "ds-cnn", get_frontend("hello-edge"),
                    (Conv(32, (10, 4), (2, 2)), DSConv(32, rank=8), DSConv(48, (3, 3), (2, 2), rank=12),
                     DSConv(48, rank=16, residual=True), GlobalAvgPool()))


def _low_rank_dnn() -> ArchSpec:
    return ArchSpec("lr-dnn", "dnn", get_frontend("hello-edge"), (Flatten(), Dense(64, rank=16), Dense(64)))


def test_specs_without_a_rank_keep_their_digest_and_json():
    spec = get_preset("ds-cnn-s")
    assert spec.digest() == "f62f574884d9d70b"  # as before ranks existed (results/ and caches are keyed by it)
    assert "rank" not in spec.to_json()
    low = _low_rank_ds_cnn()
    assert ArchSpec.from_json(low.to_json()) == low and low.digest() != dataclasses.replace(
        low, layers=tuple(dataclasses.replace(layer, rank=None) if hasattr(layer, "rank") else layer for layer in low.layers)).digest()


def test_a_rank_that_saves_nothing_is_refused():
    with pytest.raises(SpecError, match="rank 32 must be below"):
        ArchSpec("x", "ds-cnn", get_frontend("hello-edge"), (Conv(32, (10, 4), (2, 2)), DSConv(64, rank=32),
                                                             GlobalAvgPool()))
    with pytest.raises(SpecError, match="rank"):
        DSConv(64, rank=0)


def test_the_estimate_counts_projection_and_expansion():
    full = get_preset("ds-cnn-s")
    layers = list(full.layers)
    layers[1] = dataclasses.replace(layers[1], rank=16)  # 64 -> 16 -> 64 instead of 64 -> 64
    low = dataclasses.replace(full, layers=tuple(layers))
    saved = 64 * 64 - (64 * 16 + 16 * 64)
    assert estimate(full).params - estimate(low).params == saved - 16  # the projection's 16 (zero) biases
    assert estimate(full).macs - estimate(low).macs == 25 * 5 * saved
    assert [op.op for op in estimate(low).layers][2:4] == ["conv 1x1/1x1 (rank 16)", "conv 1x1/1x1"]


@pytest.mark.parametrize("make", [_low_rank_ds_cnn, _low_rank_dnn])
def test_low_rank_models_train_and_deploy_bit_exact(make):
    spec = make()
    check_build_and_one_step(spec)  # deployed parameters == estimate, one real training step
    model = randomised_model(spec, 3)
    folded = model.folded()
    assert len([op for op in folded if op.weights is not None]) == len(
        [op for op in estimate(spec).layers if op.params])
    x = random_features(spec, 16, 4)
    fg = float_graph(spec, folded)
    g = quantize_graph(fg, calibrate(fg, x))
    q = np.random.default_rng(0).integers(-128, 128, size=(3, *g.tensors[g.inputs[0]].shape)).astype(np.int8)
    want = reference.run(g, q)[0]
    for variant in ("plain", "dsp"):
        assert np.array_equal(np.asarray(HostModel(g, variant).run(q)).reshape(want.shape), want), variant
    # the deployed float graph (projection and expansion as two ops) computes the trained network
    probs = reference.run_all(fg, as_graph_input(x))[fg.outputs[0]]
    np.testing.assert_allclose(probs.reshape(len(x), -1), np.asarray(jax.nn.softmax(model(x))), atol=1e-5)


# --- nas compress: SVD of a trained model, then fine-tuning -------------------------------------------------------------
def test_factorize_is_exact_for_kernels_of_low_rank():
    spec = _low_rank_ds_cnn()
    full = dataclasses.replace(spec, layers=tuple(dataclasses.replace(layer, rank=None) if hasattr(layer, "rank")
                                                  else layer for layer in spec.layers))
    model = randomised_model(full, 1)
    rng = np.random.default_rng(2)
    for layer in model.layers:  # make every 1x1 kernel exactly rank 4
        if isinstance(layer, DSBlock):
            i, o = layer.pw[...].shape
            layer.pw[...] = jnp.asarray(rng.normal(size=(i, 4)) @ rng.normal(size=(4, o)) / 4, jnp.float32)
    low = low_rank_spec(full, 0.25)  # ranks 8, 8, 12: at least 4
    assert [getattr(layer, "rank", None) for layer in low.layers] == [None, 8, 8, 12, None]
    graphdef, _, _ = split_model(build_model(low, 0))
    params, stats = factorize(model, low)
    x = random_features(full, 4, 0)
    np.testing.assert_allclose(np.asarray(merge_model(graphdef, params, stats)(x)), np.asarray(model(x)),
                               rtol=1e-4, atol=1e-5)


def test_nas_compress_end_to_end(tiny_corpus, tmp_path, monkeypatch, capsys):
    from nas.cli import main
    from nas.train import TrainConfig, load_checkpoint, prepare_train_data, train

    monkeypatch.setenv("KWSNAS_NO_REEXEC", "1")
    data = prepare_train_data(tiny_corpus, "12")
    spec = dataclasses.replace(_low_rank_ds_cnn(), layers=(Conv(16, (10, 4), (2, 2)), DSConv(32), GlobalAvgPool()))
    train(spec, data, TrainConfig(batch_size=8, max_steps=2), out_dir=tmp_path / "full")
    assert main(["compress", str(tmp_path / "full"), "--rank-fraction", "0.25", "--data", str(tiny_corpus),
                 "--steps", "2", "--batch-size", "8", "--out", str(tmp_path / "low"), "--json"]) == 0
    captured = capsys.readouterr()
    assert "parameters" in captured.err and json.loads(captured.out)["steps"] == 2
    _, low, _ = load_checkpoint(tmp_path / "low")
    assert low.layers[1].rank == 4 and estimate(low).params < estimate(spec).params
    assert main(["compress", str(tmp_path / "full"), "--rank-fraction", "1.5", "--data", str(tiny_corpus)]) == 2
    assert "rank fraction" in capsys.readouterr().err


def test_factorize_keeps_layers_that_are_already_low_rank():
    spec = _low_rank_ds_cnn()  # blocks of ranks 8, 12, 16
    model = randomised_model(spec, 5)
    more = dataclasses.replace(spec, layers=(*spec.layers[:3], dataclasses.replace(spec.layers[3], rank=None),
                                             spec.layers[4]))
    same = low_rank_spec(more, 0.25)  # only the full-rank block is factorised again
    assert [getattr(layer, "rank", None) for layer in same.layers] == [None, 8, 12, 12, None]
    params, _ = factorize(model, low_rank_spec(spec, 0.25))  # nothing left to factorise: a copy
    _, ref, _ = split_model(model)
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(ref), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
