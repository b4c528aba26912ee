"""Reading WAV clips of any common format as the 16-bit mono PCM the front ends expect, and writing them.

`read_wav` accepts 8/16/24/32-bit PCM and 32/64-bit float WAV, mono or multi-channel, at any sample rate:
channels are averaged, the rate is converted by polyphase resampling (`scipy.signal.resample_poly`) and
the result rounded to int16. A 16-bit mono clip already at the rate is returned untouched (bit-exact).
Every problem with a file is a `BadClipError` that names the file and the cause, so a loader can skip
the clip, count it and go on.
"""

from __future__ import annotations

import math
import warnings
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SAMPLE_RATE_HZ = 16_000
# Rates a recording can plausibly have; outside them a header field is damaged (and resampling from,
# say, 7 Hz would build a filter with millions of taps).
MIN_RATE_HZ, MAX_RATE_HZ = 4_000, 384_000


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
    encoding: str = "pcm"  # or "float"

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate_hz if self.sample_rate_hz else 0.0

    def is_native(self, sample_rate_hz: int = SAMPLE_RATE_HZ) -> bool:
        """Already 16-bit mono PCM at ``sample_rate_hz``: read without any conversion."""
        return (self.channels, self.sample_width_bytes, self.encoding, self.sample_rate_hz) == (
            1, 2, "pcm", sample_rate_hz)

    def describe(self) -> str:
        kind = "float" if self.encoding == "float" else "PCM"
        return f"{self.sample_rate_hz} Hz {8 * self.sample_width_bytes}-bit {kind}, {self.channels} channel(s)"


def _load(path: Path) -> tuple[WavInfo, np.ndarray]:
    """The header and the raw samples ([frames] or [frames, channels], the file's own dtype)."""
    from scipy.io import wavfile

    if not path.exists():
        raise BadClipError(path, "no such file")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            rate, data = wavfile.read(path)
    except OSError as e:
        raise BadClipError(path, f"cannot read ({e.strerror or e})") from e
    except Exception as e:  # noqa: BLE001 - scipy's parser fails in many ways on a damaged header
        raise BadClipError(path, f"not a WAV file we can read ({e or type(e).__name__})") from e
    for w in caught:
        text = str(w.message)
        if "EOF" in text or "premature" in text.lower():
            raise BadClipError(path, f"truncated: {text}")
    data = np.asarray(data)
    if data.ndim not in (1, 2) or (data.ndim == 2 and data.shape[1] == 0):
        raise BadClipError(path, f"unexpected sample layout {data.shape}")
    if data.dtype.kind == "f":
        encoding, width = "float", data.dtype.itemsize
    elif data.dtype in (np.uint8, np.int16, np.int32):
        encoding, width = "pcm", data.dtype.itemsize
        if data.dtype == np.int32 and _declared_bits(path) == 24:
            width = 3  # scipy returns 24-bit PCM left-justified in int32
    else:
        raise BadClipError(path, f"unsupported sample type {data.dtype}")
    info = WavInfo(1 if data.ndim == 1 else data.shape[1], int(rate), width, data.shape[0], encoding)
    if not MIN_RATE_HZ <= info.sample_rate_hz <= MAX_RATE_HZ:
        raise BadClipError(path, f"sample rate {info.sample_rate_hz} Hz (readable: {MIN_RATE_HZ}-{MAX_RATE_HZ} Hz)")
    if info.frames == 0:
        raise BadClipError(path, "no samples")
    return info, data


def _declared_bits(path: Path) -> int | None:
    """Bits per sample from the ``fmt `` chunk (only to tell 24-bit from 32-bit PCM; both arrive as int32)."""
    with open(path, "rb") as f:
        head = f.read(4096)
    at = head.find(b"fmt ")
    if at < 0 or at + 24 > len(head):
        return None
    return int.from_bytes(head[at + 22: at + 24], "little")


def read_wav_info(path: Path | str) -> WavInfo:
    """The format of a WAV file (raises `BadClipError` exactly where `read_wav` would)."""
    return _load(Path(path))[0]


def _as_float(data: np.ndarray) -> np.ndarray:
    """Samples in [-1, 1) as float64, whatever the file's integer width or float type."""
    if data.dtype == np.uint8:
        return (data.astype(np.float64) - 128.0) / 128.0
    if data.dtype == np.int16:
        return data.astype(np.float64) / 32768.0
    if data.dtype == np.int32:
        return data.astype(np.float64) / 2147483648.0
    return data.astype(np.float64)


def convert(data: np.ndarray, rate_hz: int, sample_rate_hz: int = SAMPLE_RATE_HZ) -> np.ndarray:
    """Raw samples (any dtype, [frames] or [frames, channels]) at ``rate_hz`` -> int16 mono at ``sample_rate_hz``."""
    x = _as_float(data)
    if x.ndim == 2:
        x = x.mean(axis=1)  # down-mix: the average keeps a mono clip's level when both channels agree
    if rate_hz != sample_rate_hz:
        from scipy.signal import resample_poly

        g = math.gcd(rate_hz, sample_rate_hz)
        x = resample_poly(x, sample_rate_hz // g, rate_hz // g)
    return np.clip(np.round(x * 32768.0), -32768, 32767).astype(np.int16)


def read_wav_converted(path: Path | str, sample_rate_hz: int = SAMPLE_RATE_HZ) -> tuple[np.ndarray, WavInfo]:
    """`read_wav` and the file's own format (so a loader can count what it converted)."""
    path = Path(path)
    info, data = _load(path)
    if info.is_native(sample_rate_hz):
        return data.astype(np.int16, copy=False), info
    if not np.all(np.isfinite(data)):
        raise BadClipError(path, "non-finite float samples")
    return convert(data, info.sample_rate_hz, sample_rate_hz), info


def read_wav(path: Path | str, sample_rate_hz: int = SAMPLE_RATE_HZ) -> np.ndarray:
    """Samples of a clip as int16 mono at ``sample_rate_hz`` (see the module docstring for the formats).

    Raises `BadClipError` for a missing, non-WAV, empty, truncated or otherwise unreadable file.
    """
    return read_wav_converted(path, sample_rate_hz)[0]


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
