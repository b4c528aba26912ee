"""Front-end configurations: frozen data naming every number that shapes the features.

A `FrontEndConfig` is part of every `ArchSpec` (so it lives with the spec language, in
`search_spaces`); it is interpreted by `nas.features.features_numpy` (float64 reference) and
`nas.features.make_features_jax` (float32, jittable); both follow the same arithmetic, which reproduces one of two TensorFlow pipelines:

- ``filterbank="tf-mfcc-op"``: ``tf.raw_ops.AudioSpectrogram`` + ``tf.raw_ops.Mfcc``, the front end of
  ARM's ML-KWS-for-MCU ("Hello Edge") and the ARM ML-zoo KWS models.
- ``filterbank="tf-signal"``: ``tf.signal.stft`` + ``linear_to_mel_weight_matrix`` +
  ``mfccs_from_log_mel_spectrograms``, the MLPerf Tiny KWS reference pipeline.

The pipeline, stage by stage (``x`` is one clip of float samples, int16 / 32768):

1. optional peak normalisation (``peak_normalize``): ``x / max(x)`` as MLPerf Tiny does (the largest
   *signed* sample, TF ``reduce_max``); if ``max(x) <= 0`` the largest absolute value is used instead, and
   an all-zero clip is left unchanged;
2. ``n_frames = 1 + (clip_samples - window_samples) // stride_samples`` frames (no padding), each
   multiplied by a periodic Hann window and zero-padded to ``fft_size`` for a real FFT (for an odd
   ``window_samples`` the ``"tf-signal"`` pipeline uses TF's symmetric window; see `hann_window`);
3. ``spectrum``: ``"power"`` (``|X|**2``) or ``"magnitude"`` (``|X|``), the input of the filterbank;
4. mel filterbank: ``"tf-mfcc-op"`` takes the square root of its input first (as TF's Mfcc op does, so
   ``power`` feeds it magnitudes), ``"tf-signal"`` weights its input as is;
5. log: ``log_style="floor"`` is ``log(max(mel, log_epsilon))``, ``"offset"`` is ``log(mel + log_epsilon)``;
6. optional DCT-II scaled by ``sqrt(2 / n_mels)`` (both TF pipelines use this same basis), first
   ``n_coeffs`` kept; ``n_coeffs=None`` returns the log-mel spectrogram.

Output shape per clip: ``feature_shape == (n_frames, n_coeffs or n_mels)``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any

SPECTRA = ("power", "magnitude")
FILTERBANKS = ("tf-mfcc-op", "tf-signal")
LOG_STYLES = ("floor", "offset")

# Part of every digest: bump it when the arithmetic of either front end changes, so that cached features
# computed by the old code are never reused.
FEATURE_ALGORITHM_VERSION = 1


def _next_power_of_two(n: int) -> int:
    return 1 << (n - 1).bit_length()


@dataclass(frozen=True, kw_only=True)
class FrontEndConfig:
    """One MFCC / log-mel front end (see the module docstring for the arithmetic).

    Every field is plain JSON data; equal configs have equal `digest()`s and any field change changes it.
    Construction validates and raises `ValueError` naming the bad field.
    """

    name: str
    sample_rate_hz: int = 16_000  # Speech Commands
    clip_samples: int = 16_000  # one-second clips
    window_samples: int
    stride_samples: int
    fft_size: int | None = None  # None: the next power of two >= window_samples (what both TF ops do)
    spectrum: str = "power"
    filterbank: str = "tf-mfcc-op"
    n_mels: int = 40  # the Mfcc op's default channel count, which MLPerf Tiny copied
    lower_hz: float = 20.0  # Mfcc op default
    upper_hz: float = 4000.0  # Mfcc op default: speech energy above 4 kHz adds little for keywords
    log_style: str = "floor"
    log_epsilon: float = 1e-12  # TF Mfcc op's kFilterbankFloor
    n_coeffs: int | None = 10
    peak_normalize: bool = False

    def __post_init__(self) -> None:
        # Normalise numbers so that 20 and 20.0 give the same JSON and digest.
        for field in ("lower_hz", "upper_hz", "log_epsilon"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise ValueError(f"{field} must be a finite number, got {value!r}")
            object.__setattr__(self, field, float(value))
        self._validate()

    def _validate(self) -> None:
        # (Whether every mel channel receives an FFT bin is checked where the filterbank is built,
        # nas.features.filterbanks.frontend_constants.)
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"name must be a non-empty string, got {self.name!r}")
        for field in ("sample_rate_hz", "clip_samples", "window_samples", "stride_samples", "n_mels"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{field} must be an int, got {value!r}")
            if value <= 0:
                raise ValueError(f"{field} must be > 0, got {value}")
        if self.window_samples < 2:
            raise ValueError(
                f"window_samples must be >= 2 (a Hann window needs two points), got {self.window_samples}"
            )
        if self.window_samples > self.clip_samples:
            raise ValueError(
                f"window_samples ({self.window_samples}) is longer than the clip ({self.clip_samples} samples)"
            )
        if self.fft_size is not None:
            if isinstance(self.fft_size, bool) or not isinstance(self.fft_size, int):
                raise ValueError(f"fft_size must be an int or None, got {self.fft_size!r}")
            if self.fft_size < self.window_samples:
                raise ValueError(
                    f"fft_size ({self.fft_size}) must be >= window_samples ({self.window_samples})"
                )
            # Powers of two only: what CMSIS-DSP's real FFT (the device side) supports.
            if self.fft_size & (self.fft_size - 1):
                raise ValueError(f"fft_size must be a power of two, got {self.fft_size}")
        for field, allowed in (("spectrum", SPECTRA), ("filterbank", FILTERBANKS), ("log_style", LOG_STYLES)):
            if getattr(self, field) not in allowed:
                raise ValueError(f"unknown {field} {getattr(self, field)!r}; expected one of {list(allowed)}")
        nyquist_hz = self.sample_rate_hz / 2
        if not 0.0 <= self.lower_hz < self.upper_hz:
            raise ValueError(
                f"need 0 <= lower_hz < upper_hz, got lower_hz={self.lower_hz}, upper_hz={self.upper_hz}"
            )
        if self.upper_hz > nyquist_hz:
            raise ValueError(f"upper_hz ({self.upper_hz}) is above the Nyquist frequency ({nyquist_hz} Hz)")
        if self.log_epsilon <= 0.0:
            raise ValueError(f"log_epsilon must be > 0, got {self.log_epsilon}")
        if self.n_coeffs is not None:
            if isinstance(self.n_coeffs, bool) or not isinstance(self.n_coeffs, int):
                raise ValueError(f"n_coeffs must be an int or None, got {self.n_coeffs!r}")
            if not 1 <= self.n_coeffs <= self.n_mels:
                raise ValueError(f"n_coeffs must be in [1, n_mels={self.n_mels}], got {self.n_coeffs}")
        if not isinstance(self.peak_normalize, bool):
            raise ValueError(f"peak_normalize must be a bool, got {self.peak_normalize!r}")

    # ---- derived sizes -------------------------------------------------------------------------------
    @property
    def fft_length(self) -> int:
        """The FFT size actually used (``fft_size`` or the next power of two >= window)."""
        return self.fft_size if self.fft_size is not None else _next_power_of_two(self.window_samples)

    @property
    def fft_bins(self) -> int:
        """Bins of the one-sided spectrum, DC to Nyquist inclusive."""
        return self.fft_length // 2 + 1

    @property
    def n_frames(self) -> int:
        """Frames per clip: ``1 + (clip_samples - window_samples) // stride_samples`` (no end padding)."""
        return 1 + (self.clip_samples - self.window_samples) // self.stride_samples

    @property
    def n_features(self) -> int:
        """Values per frame: ``n_coeffs``, or ``n_mels`` for a log-mel front end."""
        return self.n_coeffs if self.n_coeffs is not None else self.n_mels

    @property
    def feature_shape(self) -> tuple[int, int]:
        """Shape of one clip's features: ``(n_frames, n_coeffs or n_mels)``."""
        return (self.n_frames, self.n_features)

    # ---- data ------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Every field, JSON-ready."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FrontEndConfig:
        """Inverse of `to_dict`; missing optional fields take their defaults, unknown keys raise `ValueError`."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown FrontEndConfig fields {unknown}")
        return cls(**data)

    def to_json(self) -> str:
        """Canonical JSON (sorted keys, no spaces): the text that `digest` hashes."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    def digest(self) -> str:
        """Stable 16-hex-digit content hash of the canonical JSON and the algorithm version: the cache key."""
        payload = f"kwsnas-frontend-v{FEATURE_ALGORITHM_VERSION}:{self.to_json()}"
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]

    def replace(self, **changes: Any) -> FrontEndConfig:
        """A copy with ``changes`` applied (validated again)."""
        return dataclasses.replace(self, **changes)


_HELLO_EDGE = FrontEndConfig(
    name="hello-edge",
    window_samples=640,  # 40 ms: ML-KWS-for-MCU's --window_size_ms 40 for its CNN / DS-CNN models
    stride_samples=320,  # 20 ms: --window_stride_ms 20 -> 49 frames
    spectrum="power",  # AudioSpectrogram(magnitude_squared=True); the Mfcc op takes its square root
    filterbank="tf-mfcc-op",
    log_style="floor",
    log_epsilon=1e-12,  # Mfcc op: log(max(x, 1e-12))
    n_coeffs=10,  # --dct_coefficient_count 10
    peak_normalize=False,  # ML-KWS feeds decode_wav's int16 / 32768 directly
)

_MLPERF_TINY = FrontEndConfig(
    name="mlperf-tiny",
    window_samples=480,  # 30 ms: MLPerf Tiny KWS window_size_ms=30
    stride_samples=320,  # 20 ms -> 49 frames
    spectrum="magnitude",  # tf.abs(stft)
    filterbank="tf-signal",
    log_style="offset",
    log_epsilon=1e-6,  # tf.math.log(mel + 1e-6)
    n_coeffs=10,
    peak_normalize=True,  # get_dataset.py divides each clip by tf.reduce_max
)

PRESETS: dict[str, FrontEndConfig] = {
    "hello-edge": _HELLO_EDGE,
    # The Hello Edge / ML-zoo DNN models: non-overlapping 40 ms frames, 25 x 10.
    "hello-edge-dnn": _HELLO_EDGE.replace(name="hello-edge-dnn", stride_samples=640),
    "mlperf-tiny": _MLPERF_TINY,
    # The MLPerf Tiny pipeline stopped before the DCT: 49 x 40 log-mel magnitudes.
    "log-mel": _MLPERF_TINY.replace(name="log-mel", n_coeffs=None),
    # Edge Impulse's MFCC block defaults as its KWS tutorials use them: 20 ms frames, 20 ms stride, 32 filters,
    # 13 coefficients -> 50 x 13. Their pre-emphasis and 300 Hz low cut are not modelled (our MFCC is TF's).
    "edge-impulse": _HELLO_EDGE.replace(name="edge-impulse", window_samples=320, stride_samples=320, n_mels=32,
                                        n_coeffs=13),
}


def get_frontend(name: str, **overrides: Any) -> FrontEndConfig:
    """The preset ``name`` with ``overrides`` applied (e.g. ``window_samples=480``).

    The preset's name is kept (rename with ``.replace(name=...)``); `digest()` tells overridden configs apart.
    Raises `ValueError` for an unknown preset (listing the known ones) or an invalid override.
    """
    if name not in PRESETS:
        raise ValueError(f"unknown front end {name!r}; known presets: {sorted(PRESETS)}")
    return PRESETS[name].replace(**overrides) if overrides else PRESETS[name]
