"""Quantization-aware fine-tuning: the JAX interpreter of the float graph is the graph (to float32
rounding), its fake quantization tracks the int8 reference, and `qat_finetune` returns a deterministic
float graph of the same structure whose int8 graph is valid and no worse than PTQ on the tiny corpus."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hardware import reference
from hardware.graph import DType
from nas.features import get_frontend
from nas.quant._fake_quant import fake_quant_activation, fake_quant_weights
from nas.quant.float_graph import float_graph
from nas.quant.ptq import as_graph_input, calibrate, quantize_features, quantize_graph, run_int8
from nas.quant.qat import qat_finetune, qat_logits
from nas.train import TrainConfig, prepare_train_data, train
from search_spaces.spec import ArchSpec, AttentionPool, Conv, Dense, DSConv, Flatten, GlobalAvgPool, MaxPool
from tests.helpers.corpus import TINY_WORDS, make_tiny_corpus
from tests.helpers.models import random_features, randomised_model

FRONTEND = get_frontend("hello-edge")
TINY = ArchSpec("tiny", "ds-cnn", FRONTEND, (Conv(8, (10, 4), (2, 2)), DSConv(8), GlobalAvgPool()), 12)
# every op kind the interpreter knows: ADD, MAX_POOL_2D, RESHAPE (flatten), FULLY_CONNECTED, RELU6, VALID
RESIDUAL = ArchSpec("res", "test", FRONTEND, (
    Conv(6, (10, 4), (2, 2), activation="relu6"), DSConv(6, (5, 5), residual=True, activation="relu6"),
    DSConv(7, (3, 1), (2, 2), padding="valid", activation="none"), MaxPool((2, 1)), Flatten(),
    Dense(9, batch_norm=True)), 5)
# a squeeze-and-excitation gate: AVERAGE_POOL_2D, FULLY_CONNECTED twice, RESHAPE to [1, 1, 1, C], MUL
GATED = ArchSpec("gated", "ds-cnn", FRONTEND, (Conv(8, (10, 4), (2, 2)), DSConv(16, se=8), GlobalAvgPool()), 12)
# attention pooling: a 1x1 CONV_2D to one channel, SOFTMAX inside the network, MUL by [1, H, W, 1]
ATTENTION = ArchSpec("attention", "ds-cnn", FRONTEND, (Conv(8, (10, 4), (2, 2)), DSConv(16), AttentionPool()), 12)
QAT_BATCH = 32  # a few steps per epoch on the tiny corpus's ~200 training clips


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory: pytest.TempPathFactory):
    """`tiny_corpus` (conftest) at module scope: prepared once for every test here."""
    with pytest.MonkeyPatch.context() as mp:  # module scope: set the per-session cache dir by hand
        mp.setenv("KWSNAS_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "kwsnas-cache"))
        root = make_tiny_corpus(tmp_path_factory.mktemp("qat") / "corpus", TINY_WORDS)
        yield prepare_train_data(root, "12")


@pytest.fixture(scope="module")
def trained(tiny_data):
    """(float graph, PTQ ranges) of TINY after a short training run (~3 s: validation accuracy ~1)."""
    result = train(TINY, tiny_data, TrainConfig(batch_size=16, epochs=40, peak_lr=2e-2))
    fg = float_graph(TINY, result.model().folded())
    train_x = tiny_data.features("train", FRONTEND)
    return fg, calibrate(fg, train_x[:100])


def _logits_tensor(fg) -> int:
    return fg.ops[fg.topological_order()[-1]].inputs[0]


def _int8_logits(fg, ranges, x: np.ndarray) -> np.ndarray:
    """The int8 graph's dequantized SOFTMAX input on float features ``x``."""
    q = quantize_graph(fg, ranges)
    t = _logits_tensor(fg)
    values = reference.run_all(q, quantize_features(as_graph_input(x), q.tensors[q.inputs[0]].quantization))
    lq = q.tensors[t].quantization
    return (values[t].reshape(len(x), -1).astype(np.float64) - lq.zero_point[0]) * lq.scale[0]


def _graphs(trained):
    fg, _ = trained
    return {"tiny-trained": fg, "residual": float_graph(RESIDUAL, randomised_model(RESIDUAL, 5).folded()),
            "gated": float_graph(GATED, randomised_model(GATED, 6).folded()),
            "attention": float_graph(ATTENTION, randomised_model(ATTENTION, 7).folded())}


def test_forward_is_the_float_graph_and_fake_quant_tracks_int8(trained) -> None:
    for name, fg in _graphs(trained).items():
        x = random_features(TINY, 48, 1)
        want = reference.run_all(fg, as_graph_input(x))[_logits_tensor(fg)].reshape(len(x), -1)
        got = qat_logits(fg, x)
        np.testing.assert_allclose(got, want, atol=1e-4 * max(1.0, np.abs(want).max()), err_msg=name)
        ranges = calibrate(fg, x)
        fq, int8 = qat_logits(fg, x, ranges), _int8_logits(fg, ranges, x)
        step = quantize_graph(fg, ranges).tensors[_logits_tensor(fg)].quantization.scale[0]
        lsb = np.abs(fq - int8) / step  # float32 vs fixed-point requantization: an LSB here and there
        print(f"{name}: fake-quant vs int8 logits: mean {lsb.mean():.3f} LSB, max {lsb.max():.1f} LSB, "
              f"argmax equal {np.mean(fq.argmax(1) == int8.argmax(1)):.3f}")
        # a gate's LSB scales a whole channel of the map, an attention weight's LSB (1/256, exp in fixed point)
        # a whole position of it: those graphs' errors come in larger steps
        assert lsb.mean() < 0.5 and lsb.max() <= (8 if name in ("gated", "attention") else 4), name
        assert np.mean(fq.argmax(1) == int8.argmax(1)) >= 0.9, name


def test_straight_through_gradients() -> None:
    scale, zp = jnp.float32(0.1), jnp.float32(-28.0)  # grid [-10, 15.5]
    x = jnp.array([-11.0, -3.04, 0.0, 2.56, 15.6], jnp.float32)
    grad = jax.grad(lambda v: jnp.sum(fake_quant_activation(v, scale, zp)))(x)
    np.testing.assert_allclose(fake_quant_activation(x, scale, zp), [-10.0, -3.0, 0.0, 2.6, 15.5], atol=1e-5)
    assert grad.tolist() == [0.0, 1.0, 1.0, 1.0, 0.0]
    w = jnp.asarray(np.random.default_rng(0).normal(size=(3, 3, 4)), jnp.float32).at[..., 2].set(0.0)
    wq, wgrad = fake_quant_weights(w), jax.grad(lambda v: jnp.sum(fake_quant_weights(v) * 2.0))(w)
    steps = np.abs(np.asarray(w)).max(axis=(0, 1)) / 127.0
    assert np.all(np.abs(np.asarray(wq) - np.asarray(w)) <= steps / 2 + 1e-6) and not np.asarray(wq)[..., 2].any()
    assert np.all(np.asarray(wgrad) == 2.0)


def test_qat_finetune_is_deterministic_valid_and_not_worse_than_ptq(trained, tiny_data) -> None:
    fg, ranges = trained
    logs: list[dict] = []
    new_fg, new_ranges = qat_finetune(fg, ranges, tiny_data, FRONTEND, epochs=1, batch_size=QAT_BATCH,
                                      seed=3, log=logs.append)
    assert len(logs) == 1 and np.isfinite(logs[0]["loss"])
    # same structure, new weights
    assert new_fg.ops == fg.ops and new_fg.inputs == fg.inputs and new_fg.outputs == fg.outputs
    assert [(t.name, t.shape, t.dtype, t.is_constant) for t in new_fg.tensors] == \
        [(t.name, t.shape, t.dtype, t.is_constant) for t in fg.tensors]
    assert any(not np.array_equal(a.data, b.data) for a, b in zip(new_fg.tensors, fg.tensors, strict=True)
               if a.is_constant)
    assert set(new_ranges.bounds) == set(ranges.bounds) and new_ranges.clips == min(300, len(tiny_data.train))
    # the int8 graph is valid and runs
    q = quantize_graph(new_fg, new_ranges)
    assert q.tensors[q.inputs[0]].dtype == DType.INT8 and q.tensors[q.outputs[0]].dtype == DType.INT8
    val_x, val_y = tiny_data.features("validation", FRONTEND), tiny_data.validation.labels
    qat_acc = float(np.mean(run_int8(q, val_x).argmax(1) == val_y))
    ptq_acc = float(np.mean(run_int8(quantize_graph(fg, ranges), val_x).argmax(1) == val_y))
    print(f"tiny corpus validation ({len(val_y)} clips): PTQ int8 {ptq_acc:.4f}, QAT int8 {qat_acc:.4f}")
    assert qat_acc >= ptq_acc - 0.05  # a few clips of ~80: training noise, not a regression
    # same seed, same result (the compiled step is reused); another seed, another result
    again, again_ranges = qat_finetune(fg, ranges, tiny_data, FRONTEND, epochs=1, batch_size=QAT_BATCH, seed=3)
    assert again.digest() == new_fg.digest() and again_ranges == new_ranges
    other, _ = qat_finetune(fg, ranges, tiny_data, FRONTEND, epochs=1, batch_size=QAT_BATCH, seed=4)
    assert other.digest() != new_fg.digest()


def test_qat_finetune_rejects_bad_arguments(trained, tiny_data) -> None:
    fg, ranges = trained
    with pytest.raises(ValueError, match="epochs"):
        qat_finetune(fg, ranges, tiny_data, FRONTEND, epochs=0)
    five = float_graph(RESIDUAL, randomised_model(RESIDUAL, 0).folded())
    with pytest.raises(ValueError, match="classes"):
        qat_finetune(five, calibrate(five, random_features(RESIDUAL, 4, 0)), tiny_data, FRONTEND, epochs=1)
    with pytest.raises(ValueError, match="float graph"):
        qat_logits(quantize_graph(fg, ranges), random_features(TINY, 2, 0))
