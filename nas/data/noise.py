"""Generated background noise for the built-in corpus's ``_background_noise_`` folder.

Levels follow Speech Commands' own files: its ``white_noise.wav`` and ``pink_noise.wav`` are
unit-variance noise divided by 3 (RMS about -9.5 dBFS, a few peaks clipped); its recordings of
dishes, a tap and an exercise bike sit at about -33 to -23 dBFS RMS. The coloured noises here use
the first level, the babble and the machine hum the second. Every function returns float64 samples
in [-1, 1] at 16 kHz and is a pure function of its ``rng``.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from scipy import signal

from nas.data._espeak import Espeak
from nas.data.wav import SAMPLE_RATE_HZ

COLOURED_RMS = 1.0 / 3.0  # Speech Commands: acoustics.generator.noise(...) / 3
AMBIENT_RMS_DBFS = -27.0  # between its running_tap (-23) and exercise_bike (-33) recordings


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x)))) if len(x) else 0.0


def _to_rms(x: np.ndarray, rms: float) -> np.ndarray:
    return np.clip(x * (rms / max(_rms(x), 1e-12)), -1.0, 1.0)


def coloured_noise(n: int, rng: np.random.Generator, exponent: float, floor_hz: float = 10.0) -> np.ndarray:
    """Gaussian noise with power spectral density ~ 1/f**exponent (0 white, 1 pink, 2 brown).

    Below ``floor_hz`` the spectrum is flat and DC is removed, so brown noise does not wander off.
    """
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1.0 / SAMPLE_RATE_HZ)
    spec *= np.maximum(f, floor_hz) ** (-exponent / 2.0)
    spec[0] = 0.0
    return _to_rms(np.fft.irfft(spec, n), COLOURED_RMS)


def machine_hum(n: int, rng: np.random.Generator) -> np.ndarray:
    """Mains hum with harmonics, a motor whine whose speed wanders, and broadband rumble."""
    t = np.arange(n) / SAMPLE_RATE_HZ
    mains_hz = float(rng.choice([50.0, 60.0]))
    hum = np.zeros(n)
    for k in range(1, 9):
        # Odd harmonics dominate transformer hum; each drifts a little in phase.
        amp = (1.0 if k % 2 else 0.4) * rng.uniform(0.3, 1.0) / k
        hum += amp * np.sin(2 * np.pi * mains_hz * k * t + rng.uniform(0, 2 * np.pi))
    # Motor: fundamental 90..300 Hz, speed modulated slowly (a bike pedalled, a fan labouring).
    speed = 1.0 + 0.08 * np.sin(2 * np.pi * rng.uniform(0.05, 0.3) * t + rng.uniform(0, 2 * np.pi))
    phase = 2 * np.pi * np.cumsum(rng.uniform(90.0, 300.0) * speed) / SAMPLE_RATE_HZ
    motor = sum(rng.uniform(0.1, 0.6) / k * np.sin(k * phase) for k in range(1, 6))
    motor *= 1.0 + 0.5 * np.sin(2 * np.pi * rng.uniform(0.5, 2.0) * t)  # load cycle
    rumble = signal.sosfilt(signal.butter(2, 400.0, fs=SAMPLE_RATE_HZ, output="sos"), rng.standard_normal(n))
    hiss = rng.standard_normal(n)
    x = 0.5 * hum / _rms(hum) + 0.6 * motor / _rms(motor) + 0.5 * rumble / _rms(rumble) + 0.1 * hiss
    return _to_rms(x, 10 ** (AMBIENT_RMS_DBFS / 20))


_ONSETS = ("b", "d", "f", "g", "h", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w", "z", "sh", "ch", "br", "st")  # fmt: skip
_NUCLEI = ("a", "e", "i", "o", "u", "ai", "ee", "oo", "ou", "ar", "er", "or")


def _pseudo_word(rng: np.random.Generator, avoid: frozenset[str]) -> str:
    while True:
        syllables = int(rng.integers(1, 4))
        w = "".join(str(rng.choice(_ONSETS)) + str(rng.choice(_NUCLEI)) for _ in range(syllables))
        if w not in avoid:
            return w


def babble(
    n: int, rng: np.random.Generator, voices: Iterable[str], avoid_words: Iterable[str] = (), talkers: int = 7
) -> np.ndarray:
    """Several espeak talkers at once saying pseudo-words (never a word in ``avoid_words``).

    Each talker is one voice with its own pitch and rate, speaking phrases of 2..7 pseudo-words with
    pauses between them; the talkers are summed with random levels so no single one stays intelligible.
    """
    voices = list(voices)
    avoid = frozenset(w.lower() for w in avoid_words)
    out = np.zeros(n)
    with Espeak(seed=int(rng.integers(2**31))) as engine:
        sr = engine.sample_rate_hz
        need = int(np.ceil(n * sr / SAMPLE_RATE_HZ))
        for _ in range(talkers):
            voice = voices[int(rng.integers(len(voices)))]
            pitch, rate = int(rng.integers(20, 80)), int(rng.integers(140, 230))
            parts, have = [np.zeros(int(rng.integers(0, sr)), np.int16)], 0
            while have < need:
                phrase = " ".join(_pseudo_word(rng, avoid) for _ in range(int(rng.integers(2, 8))))
                speech = engine.synth(phrase + ".", voice, rate_wpm=rate, pitch=pitch, volume=60)
                pause = np.zeros(int(rng.uniform(0.05, 0.6) * sr), np.int16)
                parts += [speech, pause]
                have += len(speech) + len(pause)
            stream = np.concatenate(parts)[:need].astype(np.float64)
            stream = signal.resample_poly(stream, SAMPLE_RATE_HZ, sr)[:n]  # one long call: design cost is nil
            out[: len(stream)] += rng.uniform(0.4, 1.0) * stream / max(_rms(stream), 1e-12)
    return _to_rms(out, 10 ** (AMBIENT_RMS_DBFS / 20))
