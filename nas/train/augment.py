"""The training-time augmentation of `nas.data.augment` in JAX, drawn from a PRNG key inside the step.

Same distributions as `augment_numpy` (tested statistically against it): a time shift uniform in
``[-time_shift_samples, +time_shift_samples]`` with zero fill; with probability ``background_probability``
a uniformly chosen noise file, a uniformly placed one-clip segment of it, mixed in at a gain uniform in
``[0, background_volume]``; silence items are noise alone at a gain uniform in ``[0, silence_volume]``
(their stored audio is ignored, so every epoch hears fresh silence); the sum clipped to [-1, 1].
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from nas.data.augment import AugmentConfig, NoiseBank

_INT16_SCALE = 32768.0  # decode_wav's int16 -> float scale, as `nas.data.wav.to_float`


@struct.dataclass
class DeviceNoise:
    """A `NoiseBank` on the device: all files concatenated (float32), with each file's start and length."""

    samples: jax.Array  # float32 [total samples]
    starts: jax.Array  # int32 [files]
    lengths: jax.Array  # int32 [files]

    @property
    def empty(self) -> bool:
        return self.starts.shape[0] == 0  # static: known while tracing

    @classmethod
    def from_bank(cls, bank: NoiseBank) -> DeviceNoise:
        if len(bank.samples) >= 2**31:
            raise ValueError(f"background noise bank too large for int32 offsets ({len(bank.samples)} samples)")
        return cls(
            samples=jnp.asarray(bank.samples, jnp.float32),
            starts=jnp.asarray(np.asarray(bank.starts, np.int32)),
            lengths=jnp.asarray(np.asarray(bank.lengths, np.int32)),
        )


def time_shift_jax(audio: jax.Array, shift: jax.Array) -> jax.Array:
    """Shift each row of ``audio`` [B, T] right by ``shift[b]`` samples (left if negative), zero fill."""
    length = audio.shape[1]
    src = jnp.arange(length)[None, :] - shift[:, None]
    valid = (src >= 0) & (src < length)
    return jnp.where(valid, jnp.take_along_axis(audio, jnp.clip(src, 0, length - 1), axis=1), 0.0)


def noise_segments(key: jax.Array, noise: DeviceNoise, batch: int, length: int) -> jax.Array:
    """``batch`` segments [B, length] of the bank: a uniform file, then a uniform offset inside it."""
    k_file, k_offset = jax.random.split(key)
    files = jax.random.randint(k_file, (batch,), 0, noise.starts.shape[0])
    offsets = jax.random.randint(k_offset, (batch,), 0, noise.lengths[files] - length + 1)
    first = noise.starts[files] + offsets
    return noise.samples[first[:, None] + jnp.arange(length)[None, :]]


def augment_batch(key: jax.Array, audio: jax.Array, silence: jax.Array, noise: DeviceNoise,
                  cfg: AugmentConfig) -> jax.Array:
    """Augmented float32 audio [B, T] in [-1, 1] from int16 (or float) ``audio`` [B, T] and ``silence`` [B]."""
    batch, length = audio.shape
    k_shift, k_noise, k_use, k_volume = jax.random.split(key, 4)
    x = audio.astype(jnp.float32) / _INT16_SCALE if audio.dtype == jnp.int16 else audio.astype(jnp.float32)
    if cfg.time_shift_samples > 0:
        shift = jax.random.randint(k_shift, (batch,), -cfg.time_shift_samples, cfg.time_shift_samples + 1)
        x = time_shift_jax(x, shift)
    x = jnp.where(silence[:, None], 0.0, x)
    if not noise.empty:
        use = silence | (jax.random.uniform(k_use, (batch,)) < cfg.background_probability)
        ceiling = jnp.where(silence, cfg.silence_volume, cfg.background_volume)
        volume = jnp.where(use, jax.random.uniform(k_volume, (batch,)) * ceiling, 0.0)
        x = x + volume[:, None] * noise_segments(k_noise, noise, batch, length)
    return jnp.clip(x, -1.0, 1.0)
