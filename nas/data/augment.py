"""Training-time augmentation of the standard protocol, in numpy (seeded ``np.random.Generator``).

As in the reference pipeline: a random time shift of up to ±100 ms with zero fill; with probability 0.8
a random one-second segment of a random background-noise file mixed in at a volume uniform in [0, 0.1];
silence items are noise alone at a volume uniform in [0, 1]; the sum clipped to [-1, 1].
The JAX version used inside the training step draws the same distributions from a PRNG key.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nas.data.wav import BadClipError, read_wav, to_float

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AugmentConfig:
    time_shift_samples: int = 1600  # ±100 ms at 16 kHz (the reference's --time_shift_ms 100)
    background_probability: float = 0.8  # the reference's --background_frequency
    background_volume: float = 0.1  # the reference's --background_volume: noise gain drawn in [0, 0.1]
    silence_volume: float = 1.0  # silence items: noise gain drawn in [0, 1]


@dataclass(frozen=True)
class NoiseBank:
    """All background-noise recordings, concatenated (float32 in [-1, 1]) with their start and length."""

    samples: np.ndarray
    starts: np.ndarray
    lengths: np.ndarray
    names: tuple[str, ...]

    @property
    def empty(self) -> bool:
        return len(self.names) == 0

    def segment(self, rng: np.random.Generator, length: int) -> np.ndarray:
        k = rng.integers(len(self.names))
        offset = rng.integers(0, self.lengths[k] - length + 1)
        s = self.starts[k] + offset
        return self.samples[s : s + length]


def load_noise_bank(files: tuple[Path, ...] | list[Path], clip_samples: int = 16_000) -> NoiseBank:
    """Read noise files; a bad one is skipped with a warning naming it. Short files are tiled to one clip."""
    parts, names = [], []
    for path in files:
        try:
            x = to_float(read_wav(path))
        except BadClipError as e:
            log.warning("skipping background noise file: %s", e)
            continue
        if len(x) < clip_samples:
            x = np.tile(x, -(-clip_samples // len(x)))
        parts.append(x)
        names.append(Path(path).name)
    lengths = np.array([len(p) for p in parts], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64) if parts else lengths
    samples = np.concatenate(parts).astype(np.float32) if parts else np.zeros(0, np.float32)
    return NoiseBank(samples, starts, lengths, tuple(names))


def time_shift(x: np.ndarray, shift: int) -> np.ndarray:
    """Shift a clip right (positive) or left (negative) by ``shift`` samples, filling with zeros."""
    out = np.zeros_like(x)
    if shift >= 0:
        out[shift:] = x[: len(x) - shift]
    else:
        out[:shift] = x[-shift:]
    return out


def augment_numpy(audio: np.ndarray, silence: np.ndarray, bank: NoiseBank, rng: np.random.Generator,
                  cfg: AugmentConfig = AugmentConfig()) -> np.ndarray:
    """Augment a float32 batch [B, T] in [-1, 1]; ``silence`` [B] marks items made of noise alone."""
    batch, length = audio.shape
    out = np.empty_like(audio, dtype=np.float32)
    for i in range(batch):
        shift = int(rng.integers(-cfg.time_shift_samples, cfg.time_shift_samples + 1))
        fg = np.zeros(length, np.float32) if silence[i] else time_shift(audio[i], shift)
        if not bank.empty:
            if silence[i]:
                volume = rng.uniform(0.0, cfg.silence_volume)
            elif rng.uniform() < cfg.background_probability:
                volume = rng.uniform(0.0, cfg.background_volume)
            else:
                volume = 0.0
            fg = fg + np.float32(volume) * bank.segment(rng, length)
        out[i] = np.clip(fg, -1.0, 1.0)
    return out
