"""Reading and writing the 16-bit mono PCM WAV clips of Speech Commands-style corpora.

Every problem with a file is a `BadClipError` that names the file and the cause, so a loader can skip
the clip, count it and go on.
"""

from __future__ import annotations

import struct
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SAMPLE_RATE_HZ = 16_000


class BadClipError(ValueError):
    """A clip that cannot be used; ``str()`` names the file and the cause."""

    def __init__(self, path: Path | str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = Path(path)
        self.reason = reason


@dataclass(frozen=True)
class WavInfo:
    channels: int
    sample_rate_hz: int
    sample_width_bytes: int
    frames: int

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate_hz if self.sample_rate_hz else 0.0


def _open(path: Path) -> wave.Wave_read:
    try:
        return wave.open(str(path), "rb")
    except FileNotFoundError as e:
        raise BadClipError(path, "no such file") from e
    except (wave.Error, EOFError, RuntimeError, ValueError, struct.error, OverflowError) as e:
        # the stdlib parser's own failures on a damaged header (a chunk size that seeks past the end
        # raises a bare RuntimeError; an odd field, struct.error): all mean "not a WAV we can read"
        raise BadClipError(path, f"not a PCM WAV file ({e or type(e).__name__})") from e
    except OSError as e:
        raise BadClipError(path, f"cannot read ({e.strerror or e})") from e


def read_wav_info(path: Path | str) -> WavInfo:
    """The header of a WAV file, without reading its samples."""
    path = Path(path)
    with _open(path) as w:
        return WavInfo(w.getnchannels(), w.getframerate(), w.getsampwidth(), w.getnframes())


def read_wav(path: Path | str, sample_rate_hz: int = SAMPLE_RATE_HZ) -> np.ndarray:
    """Samples of a 16-bit mono clip at ``sample_rate_hz`` as int16.

    Raises `BadClipError` for a missing, non-WAV, stereo, non-16-bit, wrong-rate, empty or truncated file.
    """
    path = Path(path)
    with _open(path) as w:
        info = WavInfo(w.getnchannels(), w.getframerate(), w.getsampwidth(), w.getnframes())
        if info.channels != 1:
            raise BadClipError(path, f"{info.channels} channels, expected mono")
        if info.sample_width_bytes != 2:
            raise BadClipError(path, f"{8 * info.sample_width_bytes}-bit samples, expected 16-bit PCM")
        if info.sample_rate_hz != sample_rate_hz:
            raise BadClipError(path, f"sample rate {info.sample_rate_hz} Hz, expected {sample_rate_hz} Hz")
        if info.frames == 0:
            raise BadClipError(path, "no samples")
        try:
            data = w.readframes(info.frames)
        except (wave.Error, EOFError, OSError, RuntimeError, ValueError, struct.error, OverflowError,
                MemoryError) as e:
            raise BadClipError(path, f"unreadable sample data ({e or type(e).__name__})") from e
    got = len(data) // 2
    if got < info.frames:
        raise BadClipError(path, f"truncated: header promises {info.frames} samples, file holds {got}")
    return np.frombuffer(data[: 2 * info.frames], dtype="<i2").astype(np.int16)


def write_wav(path: Path | str, samples: np.ndarray, sample_rate_hz: int = SAMPLE_RATE_HZ) -> None:
    """Write int16 mono samples (floats in [-1, 1] are scaled by 32767 and clipped)."""
    x = np.asarray(samples)
    if x.dtype != np.int16:
        x = np.clip(np.round(x.astype(np.float64) * 32767.0), -32768, 32767).astype(np.int16)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate_hz)
        w.writeframes(x.astype("<i2").tobytes())


def fit_length(samples: np.ndarray, length: int) -> np.ndarray:
    """Zero-pad at the end or crop to ``length`` samples (Speech Commands clips may be shorter than 1 s)."""
    if len(samples) >= length:
        return samples[:length]
    out = np.zeros(length, dtype=samples.dtype)
    out[: len(samples)] = samples
    return out


def to_float(samples: np.ndarray) -> np.ndarray:
    """int16 -> float32 in [-1, 1), as TensorFlow's ``decode_wav`` scales (divide by 32768)."""
    return samples.astype(np.float32) / 32768.0
