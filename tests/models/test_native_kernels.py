"""The compiled training kernels (`nas.models.native`) against the plain formulations they replace.

Each kernel runs in float32 (the only dtype it takes) and is compared with the plain formulation computed in
float64 on the same float32 inputs: values and gradients within float32 rounding of sums of a few hundred
terms (relative 1e-5 of the largest magnitude). Shapes are chosen to hit every code path: channel counts
with and without 64- and 16-lane blocks, rows spanning several work units, strides, both paddings. The
bootstrap builds the library (`python -m nas.models.native`); without a C++ compiler these tests fail
with the build's reason instead of silently testing the fallback.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from nas.models import _bn, _depthwise, _matmul, apply_model, build_model, native, ops, split_model
from search_spaces.frontend import get_frontend
from search_spaces.spec import ArchSpec, Conv, Dense, DSConv, GlobalAvgPool

REPO = Path(__file__).resolve().parents[2]
RTOL = 1e-5  # of the largest reference magnitude: float32 sums of <= ~1,000 terms (observed ~1e-7)


@pytest.fixture(scope="module", autouse=True)
def _kernels_built():
    assert native.available(), "the compiled training kernels did not build: run `python -m nas.models.native`"


def _f32(rng, *shape):
    return jnp.asarray(rng.standard_normal(shape), jnp.float32)


def _close(got, ref) -> None:
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(ref), strict=True):
        assert a.dtype == jnp.float32 and a.shape == b.shape
        b = np.asarray(b, np.float64)
        scale = max(float(np.max(np.abs(b))), 1.0)
        np.testing.assert_allclose(np.asarray(a, np.float64), b, rtol=0, atol=RTOL * scale)


def _value_and_vjp(fn, args, g):
    def both(args, g):
        y, vjp = jax.vjp(fn, *args)
        return y, vjp(g)
    return jax.jit(both)(args, g)


def _in64(fn, args, g):
    with jax.enable_x64(True):
        return _value_and_vjp(fn, tuple(a.astype(jnp.float64) for a in args), g.astype(jnp.float64))


# --- depthwise ------------------------------------------------------------------------------------------------------
def _grouped(x, k, stride, padding):
    pads = _depthwise.paddings(x.shape, k.shape[:2], stride, padding)
    return lax.conv_general_dilated(x, k[:, :, None, :], stride, pads, dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                    feature_group_count=k.shape[2])


@pytest.mark.parametrize("hwc,kernel,stride,padding", [
    ((25, 5, 64), (3, 3), (1, 1), "same"),    # DS-CNN-S: four 16-lane blocks, one 64-channel group
    ((25, 5, 84), (3, 3), (2, 2), "same"),    # 64 + 16 + 4 scalar channels, stride 2
    ((24, 6, 5), (3, 3), (2, 2), "same"),     # scalars only; even sizes (TF's extra padding at the end)
    ((12, 9, 20), (5, 5), (2, 1), "valid"),
    ((13, 5, 17), (3, 1), (1, 1), "same"),
    ((49, 10, 3), (10, 4), (2, 2), "same"),
    ((3, 2, 16), (3, 3), (3, 3), "same"),     # stride larger than the map
])
def test_depthwise_kernels_match_grouped_conv(hwc, kernel, stride, padding):
    rng = np.random.default_rng(sum(hwc) + sum(kernel) + sum(stride))
    x, k = _f32(rng, 3, *hwc), _f32(rng, *kernel, hwc[2])
    out = _grouped(x, k, stride, padding)
    g = _f32(rng, *out.shape)
    got = _value_and_vjp(lambda a, b: _depthwise.depthwise_conv(a, b, stride, padding), (x, k), g)
    _close(got, _in64(lambda a, b: _grouped(a, b, stride, padding), (x, k), g))


# --- batch norm + activation --------------------------------------------------------------------------------------------
def _plain_bn(x, scale, bias, activation):
    mean = jnp.mean(x, axis=0)
    var = jnp.mean(jnp.square(x - mean), axis=0)
    y = ops.activation((x - mean) * lax.rsqrt(var + 1e-3) * scale + bias, activation)
    return y, lax.stop_gradient(mean), lax.stop_gradient(var)


@pytest.mark.parametrize("activation", ["relu", "relu6", "none"])
@pytest.mark.parametrize("rows,channels", [(300, 20), (128, 64), (7, 3)])  # 3 units with a short last one; 1; 1
def test_bn_act_kernels_match_textbook_batch_norm(activation, rows, channels):
    rng = np.random.default_rng(rows + channels)
    x = 2.0 * _f32(rng, rows, channels) + 0.5  # an offset mean: the centred variance must not cancel
    scale, bias = 1.0 + 0.1 * _f32(rng, channels), 0.1 * _f32(rng, channels)
    g = _f32(rng, rows, channels)

    def fn(impl):
        return lambda a, s, b: impl(a, s, b, activation)[0]

    got = _value_and_vjp(fn(lambda a, s, b, act: _bn.bn_act_train(a, s, b, 1e-3, act)), (x, scale, bias), g)
    _close(got, _in64(fn(_plain_bn), (x, scale, bias), g))
    _, mean, var = jax.jit(lambda a: _bn.bn_act_train(a, scale, bias, 1e-3, activation))(x)
    _close((mean, var), (np.mean(np.float64(x), 0), np.var(np.float64(x), 0)))


# --- matrix products: the weight-gradient kernel and the im2col stem --------------------------------------------------
@pytest.mark.parametrize("rows,n_in,n_out", [(600, 37, 70), (12, 64, 64), (300, 3, 5)])
def test_matmul_weight_gradient_kernel_matches_autodiff(rows, n_in, n_out):
    rng = np.random.default_rng(rows)
    x, w, g = _f32(rng, rows, n_in), _f32(rng, n_in, n_out), _f32(rng, rows, n_out)
    _close(_value_and_vjp(_matmul.matmul, (x, w), g), _in64(jnp.dot, (x, w), g))


@pytest.mark.parametrize("cin,stride,padding", [(1, (2, 2), "same"), (3, (1, 2), "valid")])
def test_small_convolutions_run_as_patches_and_match_lax_conv(cin, stride, padding):
    rng = np.random.default_rng(cin)
    x, k = _f32(rng, 2, 49, 10, cin), _f32(rng, 10, 4, cin, 8)

    def plain(a, b):
        return lax.conv_general_dilated(ops.pad_for(a, (10, 4), stride, padding), b, stride, "VALID",
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))

    g = _f32(rng, *plain(x, k).shape)
    _close(_value_and_vjp(lambda a, b: ops.conv2d(a, b, stride, padding), (x, k), g), _in64(plain, (x, k), g))


# --- the whole model ---------------------------------------------------------------------------------------------------
def test_model_gradients_match_the_pure_jax_path(monkeypatch):
    spec = ArchSpec("t", "ds-cnn", get_frontend("hello-edge"),
                    (Conv(24, (10, 4), (2, 2)), DSConv(24), DSConv(40, (3, 3), (2, 2)),
                     DSConv(40, residual=True), GlobalAvgPool(), Dense(12, activation="none")))
    graphdef, params, stats = split_model(build_model(spec, seed=0))
    x = jax.random.normal(jax.random.key(0), (8, *spec.frontend.feature_shape))

    def grads():
        def loss(p):
            logits, _ = apply_model(graphdef, p, stats, x, True)
            return jnp.sum(jax.nn.log_softmax(logits)[:, 0])
        return jax.jit(jax.value_and_grad(loss))(params)

    fast = grads()
    monkeypatch.setattr(native, "available", lambda: False)
    plain = grads()
    _close(fast, plain)


# --- reproducibility -----------------------------------------------------------------------------------------------------
_DIGEST_SCRIPT = textwrap.dedent("""
    import hashlib, sys
    import jax, jax.numpy as jnp, numpy as np
    from nas.models import _bn, _depthwise, _matmul, native
    assert native.available()
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((64, 25, 5, 64)), jnp.float32)
    k = jnp.asarray(rng.standard_normal((3, 3, 64)), jnp.float32)
    w = jnp.asarray(rng.standard_normal((64, 64)), jnp.float32)
    def loss(x, k, w):
        y = _depthwise.depthwise_conv(x, k, (1, 1), "same").reshape(-1, 64)
        y, _, _ = _bn.bn_act_train(y, jnp.ones(64), jnp.zeros(64), 1e-3, "relu")
        return jnp.sum(jnp.sin(_matmul.matmul(y, w)))
    out = jax.jit(jax.grad(loss, argnums=(0, 1, 2)))(x, k, w)
    print(hashlib.sha256(b"".join(np.asarray(a).tobytes() for a in out)).hexdigest())
""")


def test_kernels_give_the_same_bits_on_one_or_two_threads():
    digests = []
    for flags in ("--xla_cpu_multi_thread_eigen=false", ""):
        env = {**os.environ, "XLA_FLAGS": flags, "PYTHONPATH": str(REPO)}
        done = subprocess.run([sys.executable, "-c", _DIGEST_SCRIPT], capture_output=True, text=True, env=env,
                              timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        digests.append(done.stdout.split()[-1])
    assert digests[0] == digests[1]


def test_kernels_can_be_switched_off():
    script = "from nas.models import native; print(native.available())"
    env = {**os.environ, "KWSNAS_NATIVE": "0", "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert done.stdout.strip() == "False"
