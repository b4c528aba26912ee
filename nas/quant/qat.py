"""Quantization-aware fine-tuning (QAT) of a float graph: a few epochs against the int8 rounding.

    ranges = calibrate(fg, features)                               # PTQ's ranges: held fixed while training
    new_fg, new_ranges = qat_finetune(fg, ranges, data, spec.frontend, epochs=2)
    q = quantize_graph(new_fg, new_ranges)                         # as after PTQ

The trainable parameters are the folded weights and biases of the float graph (batch norm is already
folded: there is nothing else to train). The forward pass is `_fake_quant.forward`, an interpreter of the
graph's own ops with fake quantization on the deployed int8 grids (weights per channel from the current
weights, activations from ``ranges``) and straight-through gradients. The step is that of
`nas.train.step`: augmentation and MFCC inside one pure jitted step, label-smoothed cross-entropy,
clipping + Adam, cosine decay, keys from ``fold_in(key(seed, salt), step)``, seeded epoch permutations of
full batches. Deterministic given ``seed``. At the end the ranges are calibrated again on the new weights.
"""

from __future__ import annotations

import functools
import logging
import math
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from hardware.graph import Int8Graph
from nas.data.augment import AugmentConfig
from nas.features import make_features_jax
from nas.quant._fake_quant import (
    Grid,
    Params,
    Plan,
    activation_grid,
    forward,
    graph_params,
    graph_plan,
    with_params,
)
from nas.quant.ptq import Ranges, calibrate
from nas.train.augment import DeviceNoise, augment_batch
from nas.train.data import TrainData, epoch_batches, host_batch
from nas.train.state import StepSettings, learning_rate, make_optimizer
from nas.train.step import smoothed_cross_entropy
from search_spaces.frontend import FrontEndConfig

__all__ = ["qat_finetune", "qat_logits"]

log_ = logging.getLogger(__name__)

_SALT = 0x716174  # "qat": the fine-tune's keys and batch order, apart from the training run's streams
_CALIB_CLIPS = 300  # default re-calibration set: as many training clips as PTQ calibrates on
_EVAL_BATCH = 500  # `qat_logits` batch: one fixed shape compiles once (as `nas.train.evaluate`)
# The training defaults (`TrainConfig`) except weight decay: the folded weights carry the batch-norm
# scales, so decaying them is not the training's regulariser, and a fine-tune of a few epochs needs none.
_LABEL_SMOOTHING = 0.1
_GRAD_CLIP_NORM = 5.0


@struct.dataclass
class _State:
    params: Params
    opt_state: Any
    step: jax.Array  # int32 scalar
    key: jax.Array  # step ``s`` uses fold_in(key, s)
    peak_lr: jax.Array  # float32 scalar
    total_steps: jax.Array  # int32 scalar: the cosine decay reaches 0 here


@functools.partial(jax.jit, static_argnames=("plan", "settings"), donate_argnames=("state",))
def _qat_step(state: _State, batch: dict[str, jax.Array], noise: DeviceNoise, grid: Grid, *, plan: Plan,
              settings: StepSettings) -> tuple[_State, dict[str, jax.Array]]:
    key = jax.random.fold_in(state.key, state.step)
    audio = augment_batch(key, batch["audio"], batch["silence"], noise, settings.augment)
    features = make_features_jax(settings.frontend)(audio)
    labels = batch["labels"]

    def loss_fn(params: Params) -> tuple[jax.Array, jax.Array]:
        logits = forward(plan, params, features, grid)
        return smoothed_cross_entropy(logits, labels, settings.label_smoothing), logits

    (loss, logits), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    updates, opt_state = make_optimizer(settings).update(grads, state.opt_state, state.params)
    lr = learning_rate(state.step, state.peak_lr, jnp.zeros((), jnp.int32), state.total_steps)
    params = optax.apply_updates(state.params, jax.tree.map(lambda u: lr * u, updates))
    metrics = {"loss": loss, "accuracy": jnp.mean(jnp.argmax(logits, -1) == labels), "lr": lr,
               "grad_norm": optax.tree.norm(grads)}
    return state.replace(params=params, opt_state=opt_state, step=state.step + 1), metrics


def qat_finetune(fg: Int8Graph, ranges: Ranges, data: TrainData, frontend: FrontEndConfig, *, epochs: int,
                 peak_lr: float = 1e-4, batch_size: int = 100, seed: int = 0, calib_features: np.ndarray | None = None,
                 log: Callable[[dict[str, float]], None] | None = None) -> tuple[Int8Graph, Ranges]:
    """Fine-tune float graph ``fg`` (`float_graph`) for ``epochs`` passes over ``data``'s training split
    against its int8 fake quantization under ``ranges`` (`calibrate`; held fixed meanwhile).

    Returns ``(new_fg, new_ranges)``: the float graph with the same structure and new weights and biases,
    and its ranges calibrated again on ``calib_features`` [N, frames, coeffs] (default: 300 seeded clips
    of the training split); ``quantize_graph(new_fg, new_ranges)`` is the int8 model. ``peak_lr``: the
    Adam step size at the start of the cosine decay (no warm-up: the weights are already trained); the
    default 1e-4 is 1/50 of training's peak. Measured on DS-CNN-S and a log-mel DS-CNN (2 epochs, real
    speech): 1e-5 to 3e-4 stay within the test set's noise of PTQ and float, 1e-3 already costs ~1 point
    of validation accuracy. ``log`` is called after every epoch with its mean
    loss, accuracy (on the augmented, fake-quantized batches), learning rate and elapsed seconds.
    Same arguments, same result (bit for bit on one machine).
    """
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive integer, got {epochs!r}")
    if not (math.isfinite(peak_lr) and peak_lr >= 0):
        raise ValueError(f"peak_lr must be a finite number >= 0, got {peak_lr!r}")
    classes = fg.tensors[fg.outputs[0]].shape[-1]
    if classes != data.num_classes or frontend.clip_samples != data.clip_samples:
        raise ValueError(f"the graph ({classes} classes, {frontend.clip_samples}-sample clips) does not match "
                         f"the data ({data.num_classes} classes, {data.clip_samples}-sample clips)")
    t_start = time.perf_counter()
    plan, grid = graph_plan(fg), activation_grid(fg, ranges)
    params = graph_params(fg)
    settings = StepSettings(frontend, AugmentConfig(), _LABEL_SMOOTHING, 0.0, _GRAD_CLIP_NORM)
    indices = np.arange(len(data.train))
    batch_size = min(batch_size, len(indices))
    steps_per_epoch = len(indices) // batch_size
    state = _State(params=params, opt_state=make_optimizer(settings).init(params), step=jnp.zeros((), jnp.int32),
                   key=jax.random.fold_in(jax.random.key(seed), _SALT), peak_lr=jnp.float32(peak_lr),
                   total_steps=jnp.int32(epochs * steps_per_epoch))
    noise = data.device_noise()
    for epoch in range(epochs):
        sums = None
        for index in epoch_batches(indices, batch_size, seed, _SALT, epoch):
            state, metrics = _qat_step(state, host_batch(data.train, index), noise, grid, plan=plan,
                                       settings=settings)
            sums = metrics if sums is None else jax.tree.map(jnp.add, sums, metrics)
        means = {k: float(v) / steps_per_epoch for k, v in jax.device_get(sums).items()}
        if not math.isfinite(means["loss"]):
            raise FloatingPointError(f"QAT diverged in epoch {epoch}: mean loss {means['loss']}")
        report = {"epoch": epoch + 1, "loss": means["loss"], "accuracy": means["accuracy"], "lr": means["lr"],
                  "elapsed_s": time.perf_counter() - t_start}
        log_.info("QAT epoch %d: loss %.4f, accuracy %.4f", epoch + 1, report["loss"], report["accuracy"])
        if log is not None:
            log(report)
    new_fg = with_params(fg, jax.device_get(state.params))
    if calib_features is None:
        train_x = data.features("train", frontend)
        pick = np.random.default_rng([seed, _SALT]).choice(len(train_x), min(_CALIB_CLIPS, len(train_x)),
                                                           replace=False)
        calib_features = train_x[np.sort(pick)]
    return new_fg, calibrate(new_fg, calib_features)


_forward_jit = jax.jit(forward, static_argnames=("plan",))


def qat_logits(fg: Int8Graph, features: np.ndarray, ranges: Ranges | None = None) -> np.ndarray:
    """Logits [N, classes] (the SOFTMAX input) of float graph ``fg`` on ``features`` [N, frames, coeffs]:
    the float network, or with ``ranges`` the fake-quantized one QAT trains (close to the int8 graph's)."""
    plan, params = graph_plan(fg), graph_params(fg)
    grid = None if ranges is None else activation_grid(fg, ranges)
    x = np.asarray(features, np.float32)
    n = len(x)
    size = min(_EVAL_BATCH, max(n, 1))
    out = []
    for start in range(0, n, size):
        chunk = x[start:start + size]
        padded = np.concatenate([chunk, np.zeros((size - len(chunk), *x.shape[1:]), np.float32)])
        out.append(np.asarray(_forward_jit(plan, params, jnp.asarray(padded), grid))[:len(chunk)])
    return np.concatenate(out) if out else np.zeros((0, fg.tensors[fg.outputs[0]].shape[-1]), np.float32)
