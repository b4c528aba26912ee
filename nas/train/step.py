"""The pure, jitted training step and the inference-mode prediction.

    step = make_train_step(graphdef, settings, noise)
    state, metrics = step(state, {"audio": int16 [B, T], "labels": int32 [B], "silence": bool [B]})

One step: augmentation in JAX from ``fold_in(state.key, state.step)``, MFCC features of the spec's own
front end, forward and backward through `apply_model` (training mode: batch statistics update),
label-smoothed cross-entropy (mixed with the distillation loss when teachers are bound: `nas.train.distill`),
clipping + AdamW scaled by the schedule. The state is donated (its buffers
are reused for the new state), so a caller must not touch a state after passing it in. The compiled
step is shared by every call with an equal (graphdef, settings, shapes): trials of one architecture
compile once.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax

from nas.features import make_features_jax
from nas.models import apply_model
from nas.train.augment import DeviceNoise, augment_batch
from nas.train.distill import TeacherDef, Teachers, distillation_loss, soft_targets
from nas.train.state import StepSettings, TrainState, learning_rate, make_optimizer

Batch = dict[str, jax.Array]
Metrics = dict[str, jax.Array]


def smoothed_cross_entropy(logits: jax.Array, labels: jax.Array, smoothing: float) -> jax.Array:
    """Mean softmax cross-entropy against one-hot targets mixed with ``smoothing`` of a uniform one."""
    classes = logits.shape[-1]
    targets = optax.smooth_labels(jax.nn.one_hot(labels, classes), smoothing) if smoothing else \
        jax.nn.one_hot(labels, classes)
    return jnp.mean(optax.softmax_cross_entropy(logits, targets))


@functools.partial(jax.jit, static_argnames=("graphdef", "settings", "teacher_defs"), donate_argnames=("state",))
def _train_step(state: TrainState, batch: Batch, noise: DeviceNoise, teacher_weights: tuple = (), *,
                graphdef: Any, settings: StepSettings,
                teacher_defs: tuple[TeacherDef, ...] = ()) -> tuple[TrainState, Metrics]:
    key = jax.random.fold_in(state.key, state.step)
    k_augment, k_dropout = jax.random.split(key)
    audio = augment_batch(k_augment, batch["audio"], batch["silence"], noise, settings.augment)
    features = make_features_jax(settings.frontend)(audio)
    labels = batch["labels"]
    targets = None
    if teacher_defs:  # inference mode, on the same augmented audio, through each teacher's own front end
        teacher_logits = []
        for tdef, (t_params, t_stats) in zip(teacher_defs, teacher_weights, strict=True):
            t_features = features if tdef.frontend == settings.frontend else make_features_jax(tdef.frontend)(audio)
            teacher_logits.append(apply_model(tdef.graphdef, t_params, t_stats, t_features, False)[0])
        targets = soft_targets(teacher_logits, settings.distill_temperature)

    def loss_fn(params: Any) -> tuple[jax.Array, tuple[jax.Array, Any]]:
        logits, stats = apply_model(graphdef, params, state.batch_stats, features, True, k_dropout)
        loss = smoothed_cross_entropy(logits, labels, settings.label_smoothing)
        if targets is not None:
            w = settings.distill_weight
            loss = (1.0 - w) * loss + w * distillation_loss(logits, targets, settings.distill_temperature)
        return loss, (logits, stats)

    (loss, (logits, stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    updates, opt_state = make_optimizer(settings).update(grads, state.opt_state, state.params)
    lr = learning_rate(state.step, state.peak_lr, state.warmup_steps, state.total_steps)
    params = optax.apply_updates(state.params, jax.tree.map(lambda u: lr * u, updates))
    metrics = {
        "loss": loss,
        "accuracy": jnp.mean(jnp.argmax(logits, -1) == labels),
        "lr": lr,
        "grad_norm": optax.tree.norm(grads),
    }
    new_state = state.replace(params=params, batch_stats=stats, opt_state=opt_state, step=state.step + 1)
    return new_state, metrics


def make_train_step(graphdef: Any, settings: StepSettings, noise: DeviceNoise,
                    teachers: Teachers | None = None) -> Callable[[TrainState, Batch], tuple[TrainState, Metrics]]:
    """``train_step(state, batch) -> (state, metrics)`` with the model, the device noise bank and the
    distillation teachers (`nas.train.distill`; none: plain training) bound."""
    if teachers is None or not len(teachers):
        return functools.partial(_train_step, noise=noise, graphdef=graphdef, settings=settings)
    return functools.partial(_train_step, noise=noise, teacher_weights=teachers.weights, graphdef=graphdef,
                             settings=settings, teacher_defs=teachers.defs)


@functools.partial(jax.jit, static_argnames=("graphdef",))
def predict_logits(params: Any, batch_stats: Any, features: jax.Array, *, graphdef: Any) -> jax.Array:
    """Inference-mode logits [B, classes] of features [B, frames, coeffs] (running batch statistics)."""
    logits, _ = apply_model(graphdef, params, batch_stats, features, False)
    return logits
