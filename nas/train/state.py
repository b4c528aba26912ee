"""The train state (a pytree), the optimizer, the learning-rate schedule and the keys of a run.

The schedule's numbers (peak, warm-up and total steps) live in the state as scalars rather than in the
compiled step, so trials that differ only in learning rate or budget share one compilation, and a
time-budgeted run can re-estimate its total step count while it runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from nas.data.augment import AugmentConfig
from nas.train.config import TrainConfig
from search_spaces.frontend import FrontEndConfig

_SEED_SALT_MODEL = 0x6D6F64  # distinct streams from one (seed, trial): model init ...
_SEED_SALT_STEP = 0x737470  # ... and the per-step keys (augmentation, dropout)


@struct.dataclass
class TrainState:
    params: Any  # nnx.State of nnx.Param
    batch_stats: Any  # nnx.State of nnx.BatchStat
    opt_state: Any
    step: jax.Array  # int32 scalar: steps taken
    key: jax.Array  # PRNG key of the run; step ``s`` uses fold_in(key, s)
    peak_lr: jax.Array  # float32 scalar
    warmup_steps: jax.Array  # int32 scalar
    total_steps: jax.Array  # int32 scalar: the schedule's length (an estimate under a time budget)


@dataclass(frozen=True)
class StepSettings:
    """What the compiled step depends on besides the model (hashable: a static argument of `jax.jit`)."""

    frontend: FrontEndConfig
    augment: AugmentConfig
    label_smoothing: float
    weight_decay: float
    grad_clip_norm: float | None
    distill_temperature: float = 4.0
    distill_weight: float = 0.0  # 0 without teachers: one compiled step for every plain training

    @classmethod
    def of(cls, frontend: FrontEndConfig, cfg: TrainConfig) -> StepSettings:
        distilling = bool(cfg.teachers)
        return cls(frontend, cfg.augment, float(cfg.label_smoothing), float(cfg.weight_decay),
                   None if cfg.grad_clip_norm is None else float(cfg.grad_clip_norm),
                   float(cfg.distill_temperature) if distilling else 4.0,
                   float(cfg.distill_weight) if distilling else 0.0)


def model_seed(seed: int, trial: int) -> int:
    """The integer seed of the model's initial weights for (seed, trial)."""
    return int(np.random.SeedSequence([seed, trial, _SEED_SALT_MODEL]).generate_state(1)[0] % 2**31)


def run_key(seed: int, trial: int) -> jax.Array:
    """The PRNG key of the run's steps for (seed, trial)."""
    return jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), trial), _SEED_SALT_STEP)


def _decay_mask(params: Any) -> Any:
    # Decay kernels only (ndim > 1); batch-norm scales and biases are not weights to shrink.
    return jax.tree.map(lambda p: p.ndim > 1, params)


def make_optimizer(settings: StepSettings) -> optax.GradientTransformation:
    """Clipping, then AdamW at unit learning rate; the step multiplies its updates by the schedule.

    ``adamw(1.0)`` followed by a multiplication with ``lr(step)`` is exactly ``adamw(schedule)``
    (optax scales the decoupled weight decay by the learning rate too).
    """
    parts = []
    if settings.grad_clip_norm is not None:
        parts.append(optax.clip_by_global_norm(settings.grad_clip_norm))
    parts.append(optax.adamw(1.0, weight_decay=settings.weight_decay, mask=_decay_mask))
    return optax.chain(*parts)


def learning_rate(step: jax.Array, peak_lr: jax.Array, warmup_steps: jax.Array,
                  total_steps: jax.Array) -> jax.Array:
    """Linear warm-up to ``peak_lr`` over ``warmup_steps`` (step 0 already at peak/warmup), then cosine to 0
    at ``total_steps``."""
    s = step.astype(jnp.float32)
    warm = jnp.maximum(warmup_steps, 1).astype(jnp.float32)
    decay_len = jnp.maximum(total_steps - warmup_steps, 1).astype(jnp.float32)
    progress = jnp.clip((s - warmup_steps.astype(jnp.float32)) / decay_len, 0.0, 1.0)
    cosine = 0.5 * (1.0 + jnp.cos(jnp.pi * progress))
    return peak_lr * jnp.where(step < warmup_steps, (s + 1.0) / warm, cosine)


def create_train_state(params: Any, batch_stats: Any, settings: StepSettings, cfg: TrainConfig,
                       total_steps: int) -> TrainState:
    """A fresh state for ``total_steps`` scheduled steps; keys from ``(cfg.seed, cfg.trial)``."""
    state = TrainState(
        params=params,
        batch_stats=batch_stats,
        opt_state=make_optimizer(settings).init(params),
        step=jnp.zeros((), jnp.int32),
        key=run_key(cfg.seed, cfg.trial),
        peak_lr=jnp.asarray(cfg.peak_lr, jnp.float32),
        warmup_steps=jnp.zeros((), jnp.int32),
        total_steps=jnp.zeros((), jnp.int32),
    )
    return with_schedule(state, total_steps, warmup_steps_for(total_steps, cfg.warmup_fraction))


def warmup_steps_for(total_steps: int, warmup_fraction: float) -> int:
    return round(warmup_fraction * max(int(total_steps), 1))


def with_schedule(state: TrainState, total_steps: int, warmup_steps: int) -> TrainState:
    """The state with its schedule set to ``total_steps`` steps, the first ``warmup_steps`` warming up."""
    return state.replace(total_steps=jnp.asarray(max(int(total_steps), 1), jnp.int32),
                         warmup_steps=jnp.asarray(max(int(warmup_steps), 0), jnp.int32))
