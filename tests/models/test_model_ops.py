"""The CPU-fast model ops (`nas.models._depthwise`, `_bn`, `ops`) against their plain formulations.

Every hand-written backward is checked in float64 against autodiff of the plain formulation (XLA's
grouped convolution for the depthwise, the textbook batch norm), so the tolerances below are float64
rounding: 1e-9 absolute on values and gradients of order 1 (the observed differences are ~1e-13).
`jax.test_util.check_grads` (finite differences, float64) checks the custom VJPs on their own too.
The whole model is compared the same way, and ``folded()`` against a small numpy interpreter of the
deployed ops (float64 weights, so 1e-9 again; the model itself runs in float32 there: 1e-4).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax
from jax.test_util import check_grads

from nas.models import _bn, _depthwise, apply_model, build_model, layers, merge_model, ops, split_model
from search_spaces.frontend import get_frontend
from search_spaces.spec import ArchSpec, AvgPool, Conv, Dense, DSConv, Flatten, GlobalAvgPool, MaxPool

TOL = 1e-9  # float64 comparisons of hand-written vs autodiff gradients (observed ~1e-13)


@pytest.fixture(autouse=True)
def x64():
    with jax.enable_x64(True):
        yield


def _rand(rng: np.random.Generator, *shape: int) -> jax.Array:
    return jnp.asarray(rng.standard_normal(shape))


def grouped_conv(x, kernel, stride, padding):
    """The plain depthwise: XLA's grouped convolution, TF SAME padding."""
    pads = _depthwise.paddings(x.shape, kernel.shape[:2], stride, padding)
    return lax.conv_general_dilated(x, kernel[:, :, None, :], stride, pads,
                                    dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                    feature_group_count=kernel.shape[2])


def plain_bn_act(x, scale, bias, eps, activation):
    """The textbook training-mode batch norm + activation, differentiated by JAX."""
    axes = tuple(range(x.ndim - 1))
    mean = jnp.mean(x, axis=axes)
    var = jnp.mean(jnp.square(x - mean), axis=axes)
    y = ops.activation((x - mean) * lax.rsqrt(var + eps) * scale + bias, activation)
    return y, lax.stop_gradient(mean), lax.stop_gradient(var)


def _max_diff(a, b) -> float:
    return max(float(jnp.max(jnp.abs(u - v))) for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


# --- depthwise ---------------------------------------------------------------------------------------------------
DW_CASES = [
    # (H, W, C), kernel, stride, padding
    ((25, 5, 4), (3, 3), (1, 1), "same"),
    ((24, 6, 3), (3, 3), (2, 2), "same"),  # even sizes: TF puts the extra padding at the end
    ((10, 8, 3), (3, 3), (2, 2), "valid"),
    ((11, 9, 2), (5, 5), (1, 1), "same"),
    ((12, 9, 2), (5, 5), (2, 1), "valid"),
    ((13, 5, 3), (3, 1), (1, 1), "same"),
    ((13, 5, 3), (3, 1), (2, 2), "valid"),
    ((49, 10, 2), (10, 4), (2, 2), "same"),
    ((20, 9, 2), (10, 4), (1, 1), "valid"),
    ((3, 2, 2), (3, 3), (3, 3), "same"),  # stride larger than the map
]


@pytest.mark.parametrize("hwc,kernel,stride,padding", DW_CASES)
def test_depthwise_matches_grouped_conv(hwc, kernel, stride, padding):
    rng = np.random.default_rng(hash((hwc, kernel, stride, padding)) % 2**32)
    x, k = _rand(rng, 3, *hwc), _rand(rng, *kernel, hwc[2])
    g = _rand(rng, 3, *_out_shape(hwc, kernel, stride, padding))
    y, grads = _value_and_vjp(lambda a, b: _depthwise.depthwise_conv(a, b, stride, padding), (x, k), g)
    y_ref, grads_ref = _value_and_vjp(lambda a, b: grouped_conv(a, b, stride, padding), (x, k), g)
    assert y.shape == y_ref.shape
    assert _max_diff(y, y_ref) < TOL
    assert _max_diff(grads, grads_ref) < TOL


def _out_shape(hwc, kernel, stride, padding):
    return (*(ops.output_size(n, k, s, padding) for n, k, s in zip(hwc[:2], kernel, stride, strict=True)),
            hwc[2])


def _value_and_vjp(fn, args, g):
    """(fn(*args), vjp of g), compiled once: eager float64 op-by-op dispatch is what makes tests slow."""
    def both(args, g):
        y, vjp = jax.vjp(fn, *args)
        return y, vjp(g)
    return jax.jit(both)(args, g)


@pytest.mark.parametrize("hwc,kernel,stride,padding", DW_CASES[:: 4])
def test_depthwise_check_grads(hwc, kernel, stride, padding):
    rng = np.random.default_rng(1)
    x, k = _rand(rng, 2, *hwc), _rand(rng, *kernel, hwc[2])
    check_grads(jax.jit(lambda a, b: _depthwise.depthwise_conv(a, b, stride, padding)), (x, k), order=1,
                modes=("rev",))


def test_depthwise_float32_matches_float32_reference():
    rng = np.random.default_rng(2)
    x = _rand(rng, 4, 25, 5, 64).astype(jnp.float32)
    k = _rand(rng, 3, 3, 64).astype(jnp.float32)
    y = _depthwise.depthwise_conv(x, k, (1, 1), "same")
    assert y.dtype == jnp.float32
    np.testing.assert_allclose(y, grouped_conv(x, k, (1, 1), "same"), atol=1e-5)


# --- batch norm + activation -------------------------------------------------------------------------------------
@pytest.mark.parametrize("activation", ["relu", "relu6", "none"])
@pytest.mark.parametrize("shape", [(6, 5, 3, 4), (7, 9)])
def test_bn_act_matches_plain(activation, shape):
    rng = np.random.default_rng(3)
    x = 3.0 * _rand(rng, *shape) + 1.0
    scale, bias = _rand(rng, shape[-1]), _rand(rng, shape[-1])

    def run(fn):
        def f(x, s, b):
            y, mean, var = fn(x, s, b, layers.BN_EPSILON, activation)
            return jnp.sum(y * w), (y, mean, var)
        return jax.jit(jax.value_and_grad(f, argnums=(0, 1, 2), has_aux=True))(x, scale, bias)

    w = _rand(rng, *shape)
    (loss, aux), grads = run(_bn.bn_act_train)
    (loss_ref, aux_ref), grads_ref = run(plain_bn_act)
    assert _max_diff(aux, aux_ref) < TOL
    assert _max_diff(grads, grads_ref) < TOL


@pytest.mark.parametrize("activation", ["relu", "none"])
def test_bn_act_check_grads(activation):
    rng = np.random.default_rng(4)
    x, scale, bias = _rand(rng, 5, 4, 3), _rand(rng, 3), _rand(rng, 3)
    check_grads(jax.jit(lambda a, s, b: _bn.bn_act_train(a, s, b, 1e-3, activation)[0]), (x, scale, bias),
                order=1, modes=("rev",))


def test_batchnorm_running_stats_update():
    rng = np.random.default_rng(5)
    bn = layers.BatchNorm(3)
    bn.mean[...], bn.var[...] = jnp.asarray([0.5, -1.0, 2.0]), jnp.asarray([1.0, 2.0, 0.5])
    x = 2.0 * _rand(rng, 8, 4, 3) + 1.0
    y = bn.with_activation(x, True, "relu")
    mean, var = np.mean(np.asarray(x), axis=(0, 1)), np.var(np.asarray(x), axis=(0, 1))
    np.testing.assert_allclose(bn.mean[...], 0.9 * np.array([0.5, -1.0, 2.0]) + 0.1 * mean, atol=TOL)
    np.testing.assert_allclose(bn.var[...], 0.9 * np.array([1.0, 2.0, 0.5]) + 0.1 * var, atol=TOL)
    np.testing.assert_allclose(y, np.maximum((np.asarray(x) - mean) / np.sqrt(var + 1e-3), 0), atol=TOL)
    # inference mode uses the running statistics and leaves them alone
    before = (bn.mean[...], bn.var[...])
    y_inf = bn(x, False)
    # the statistics are stored as float32 (the variables' dtype), so compare at float32 precision
    np.testing.assert_allclose(y_inf, (np.asarray(x) - before[0]) / np.sqrt(np.asarray(before[1]) + 1e-3), atol=1e-6)
    assert _max_diff((bn.mean[...], bn.var[...]), before) == 0


# --- standard convolution (the stem) -----------------------------------------------------------------------------
@pytest.mark.parametrize("kernel,stride,padding,cin", [((10, 4), (2, 2), "same", 1), ((10, 4), (1, 1), "same", 1),
                                                       ((3, 3), (2, 2), "valid", 3), ((1, 1), (1, 1), "same", 4),
                                                       ((5, 3), (2, 1), "same", 2)])
def test_conv2d_matches_lax_conv(kernel, stride, padding, cin):
    rng = np.random.default_rng(6)
    x, k = _rand(rng, 3, 49, 10, cin), _rand(rng, *kernel, cin, 5)

    def ref(x, k):
        pads = _depthwise.paddings(x.shape, kernel, stride, padding)
        return lax.conv_general_dilated(x, k, stride, pads, dimension_numbers=("NHWC", "HWIO", "NHWC"))

    g = _rand(rng, 3, *_out_shape((49, 10, 5), kernel, stride, padding))
    y, grads = _value_and_vjp(lambda a, b: ops.conv2d(a, b, stride, padding), (x, k), g)
    y_ref, grads_ref = _value_and_vjp(ref, (x, k), g)
    assert _max_diff(y, y_ref) < TOL
    assert _max_diff(grads, grads_ref) < TOL


# --- whole models ------------------------------------------------------------------------------------------------
def _spec(name: str, layers_: tuple) -> ArchSpec:
    return ArchSpec(name, "test", get_frontend("hello-edge"), layers_, num_classes=5)


SPECS = {
    "ds-cnn-s-like": _spec("ds", (Conv(8, (10, 4), (2, 2)), DSConv(8), DSConv(8), GlobalAvgPool())),
    "residual": _spec("res", (Conv(6, (10, 4), (2, 2), activation="relu6"),
                              DSConv(6, (5, 5), residual=True, activation="relu6"),
                              DSConv(7, (3, 1), (2, 2), padding="valid", activation="none"),
                              MaxPool((2, 1)), Flatten(), Dense(9, batch_norm=True))),
    "micronet-like": _spec("mn", (Conv(6, (10, 4), activation="relu6"), DSConv(8, stride=(2, 2), activation="relu6"),
                                  AvgPool((5, 2)), Flatten())),
}


@functools.cache
def _built(name: str, seed: int):
    """(graphdef, params, stats) of a spec, built once per test session (model init is slow to dispatch)."""
    return split_model(build_model(SPECS[name], seed=seed))


def _to64(tree):
    return jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), tree)


@pytest.fixture()
def plain_formulation(monkeypatch):
    """Switch the model to the plain ops (grouped conv, textbook batch norm) while active."""
    def use_plain():
        monkeypatch.setattr(ops, "depthwise_conv", grouped_conv)
        monkeypatch.setattr(layers, "bn_act_train", plain_bn_act)
    return use_plain


@pytest.mark.parametrize("name", list(SPECS))
def test_model_gradient_matches_plain_formulation(name, plain_formulation):
    spec = SPECS[name]
    graphdef, params, stats = _built(name, 1)
    params, stats = _to64(params), _to64(stats)
    rng = np.random.default_rng(7)
    x = _rand(rng, 4, *spec.frontend.feature_shape)
    labels = jnp.asarray([0, 1, 2, 3])

    def loss_and_grad():
        def loss(p):
            logits, new_stats = apply_model(graphdef, p, stats, x, True)
            return -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(4), labels]), (logits, new_stats)
        return jax.jit(jax.value_and_grad(loss, has_aux=True))(params)

    (loss, (logits, new_stats)), grads = loss_and_grad()
    plain_formulation()
    (loss_ref, (logits_ref, stats_ref)), grads_ref = loss_and_grad()
    assert logits.dtype == jnp.float64
    assert _max_diff(logits, logits_ref) < TOL
    assert _max_diff(new_stats, stats_ref) < TOL
    assert _max_diff(grads, grads_ref) < TOL
    assert _max_diff(new_stats, stats) > 0  # training mode moved the running statistics


# --- folded export -----------------------------------------------------------------------------------------------
def _np_pad(x, kernel, stride, padding):
    ph, pw = _depthwise.paddings(x.shape, kernel, stride, padding)
    return np.pad(x, ((0, 0), ph, pw, (0, 0)))


def _np_windows(x, kernel, stride):
    """[B, oh, ow, kh, kw, C] windows of an already padded NHWC array."""
    kh, kw = kernel
    oh, ow = (x.shape[1] - kh) // stride[0] + 1, (x.shape[2] - kw) // stride[1] + 1
    out = np.empty((x.shape[0], oh, ow, kh, kw, x.shape[3]), x.dtype)
    for i in range(kh):
        for j in range(kw):
            out[:, :, :, i, j] = x[:, i: i + stride[0] * (oh - 1) + 1: stride[0],
                                   j: j + stride[1] * (ow - 1) + 1: stride[1]]
    return out


def _np_act(x, name):
    return np.maximum(x, 0) if name == "relu" else np.clip(x, 0, 6) if name == "relu6" else x


def run_folded(folded: list[layers.FoldedOp], features: np.ndarray) -> np.ndarray:
    """A tiny numpy interpreter of the deployed float graph (TFLite layouts, TF SAME padding)."""
    x = features[..., None].astype(np.float64)
    block_input = None
    for op in folded:
        if op.op in ("conv", "depthwise"):
            if op.op == "depthwise":
                block_input = x
            kernel = op.weights.shape[1:3]
            win = _np_windows(_np_pad(x, kernel, op.stride, op.padding), kernel, op.stride)
            if op.op == "conv":
                y = np.einsum("bhwijc,oijc->bhwo", win, op.weights)
            else:
                y = np.einsum("bhwijc,ijc->bhwc", win, op.weights[0])
            x = _np_act(y + op.bias, op.activation)
        elif op.op == "dense":
            x = _np_act(x @ op.weights.T + op.bias, op.activation)
        elif op.op == "add":
            x = x + block_input
        elif op.op in ("avgpool", "maxpool"):
            win = _np_windows(x, op.size, op.stride)
            x = win.max(axis=(3, 4)) if op.op == "maxpool" else win.mean(axis=(3, 4))
        elif op.op == "mean":
            x = x.mean(axis=(1, 2))
        elif op.op == "reshape":
            x = x.reshape(x.shape[0], -1)
        else:
            raise AssertionError(f"unknown folded op {op.op}")
    return x


@pytest.mark.parametrize("name", list(SPECS))
def test_folded_reproduces_inference(name):
    spec = SPECS[name]
    graphdef, params, stats = _built(name, 2)
    rng = np.random.default_rng(8)
    # a few training steps' worth of statistics so the running mean/var are not the initial 0/1
    train = jax.jit(lambda p, s, x: apply_model(graphdef, p, s, x, True)[1])
    for _ in range(3):
        stats = train(params, stats, jnp.asarray(rng.standard_normal((8, 49, 10)), jnp.float32))
    x = rng.standard_normal((5, 49, 10))
    params64, stats64 = _to64(params), _to64(stats)
    infer = jax.jit(lambda p, s, x: apply_model(graphdef, p, s, x, False)[0])
    logits64 = infer(params64, stats64, jnp.asarray(x))
    folded = merge_model(graphdef, params64, stats64).folded()
    assert [op.op for op in folded].count("depthwise") == sum(isinstance(layer, DSConv) for layer in spec.layers)
    for op in folded:
        if op.op == "depthwise":
            assert op.weights.shape[0] == 1 and op.weights.ndim == 4  # TFLite [1, kh, kw, C]
    np.testing.assert_allclose(run_folded(folded, x), np.asarray(logits64), atol=TOL, rtol=0)
    logits32 = infer(params, stats, jnp.asarray(x, jnp.float32))
    np.testing.assert_allclose(run_folded(folded, x), np.asarray(logits32), atol=1e-4, rtol=1e-4)
