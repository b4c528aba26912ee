"""Constant matrices of the front ends, built once in float64 numpy: window, mel weights, DCT basis.

Two mel filterbanks, each reproducing a TensorFlow implementation (the formulas are restated here from
TF's behaviour; HTK's mel scale ``mel(f) = 1127 ln(1 + f / 700)`` in both):

- ``"tf-mfcc-op"`` (``tensorflow/core/kernels/mfcc_mel_filterbank.cc``): ``n_mels + 1`` centres spaced
  evenly in mel from ``mel(lower) + spacing`` up to ``mel(upper)``, spacing ``(mel(upper) - mel(lower)) /
  (n_mels + 1)``. Only bins ``start..end`` *inclusive* contribute, with ``start = int(1.5 + lower / hz_per_bin)``
  (DC always excluded) and ``end = int(upper / hz_per_bin)``, where ``hz_per_bin = (sr / 2) / (n_bins - 1)``.
  A bin with mel ``m`` belongs to channel ``c`` = (number of the first ``n_mels`` centres strictly below
  ``m``) - 1, and gives weight ``w = (centre[c+1] - m) / (centre[c+1] - centre[c])`` to channel ``c``
  (descending side; for ``c = -1`` the left end is ``mel(lower)`` instead of ``centre[-1]``) and
  ``1 - w`` to channel ``c + 1`` when that exists (rising side). The op applies it to the *square root*
  of its input.
- ``"tf-signal"`` (``tf.signal.linear_to_mel_weight_matrix``): ``n_mels + 2`` edges ``linspace(mel(lower),
  mel(upper))``; triangle ``c`` rises from edge ``c`` to ``c + 1`` and falls to ``c + 2``; the weight of
  bin ``k`` (frequency ``linspace(0, sr / 2, n_bins)[k]``) is ``max(0, min(rising, falling))``; the DC
  row is zero.

Both TF pipelines use the same DCT: ``D[j, k] = sqrt(2 / n_mels) * cos(pi * k * (j + 0.5) / n_mels)``
(the Mfcc op's ``mfcc_dct.cc``; ``mfccs_from_log_mel_spectrograms`` computes the unnormalised DCT-II
times ``rsqrt(2 n_mels)``, which is the same basis). Coefficient 0 is *not* given the orthonormal
``1 / sqrt(2)``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from search_spaces.frontend import FrontEndConfig


def hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    """HTK mel scale, as both TF filterbanks use it."""
    return 1127.0 * np.log1p(np.asarray(hz, dtype=np.float64) / 700.0)


def hann_window(window_samples: int, filterbank: str) -> np.ndarray:
    """The periodic Hann window of the pipeline named by ``filterbank`` (float64, read-only).

    ``0.5 - 0.5 cos(2 pi n / L)``. AudioSpectrogram uses ``L = window_samples`` always;
    ``tf.signal.hann_window(periodic=True)`` uses ``L = window_samples`` only for even lengths and
    ``window_samples - 1`` (the symmetric window) for odd ones, a TF quirk reproduced here.
    """
    period = window_samples
    if filterbank == "tf-signal" and window_samples % 2 == 1:
        period = window_samples - 1
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(window_samples) / period)
    window.setflags(write=False)
    return window


def _mfcc_op_matrix(
    sample_rate_hz: int, n_bins: int, n_mels: int, lower_hz: float, upper_hz: float
) -> np.ndarray:
    # The op's frequency limits are float32 attributes: round them as TF does before using them in double.
    lower_hz, upper_hz = float(np.float32(lower_hz)), float(np.float32(upper_hz))
    hz_per_bin = 0.5 * sample_rate_hz / (n_bins - 1)
    mel_lower, mel_upper = float(hz_to_mel(lower_hz)), float(hz_to_mel(upper_hz))
    spacing = (mel_upper - mel_lower) / (n_mels + 1)
    centres = mel_lower + spacing * np.arange(1, n_mels + 2)  # n_mels + 1 values; the last is mel(upper)
    start = int(1.5 + lower_hz / hz_per_bin)
    end = min(int(upper_hz / hz_per_bin), n_bins - 1)
    bins = np.arange(start, end + 1)  # inclusive bounds, as the op's loop
    bin_mel = hz_to_mel(bins * hz_per_bin)
    channel = np.searchsorted(centres[:n_mels], bin_mel, side="left") - 1  # count of centres < mel, minus 1
    left = np.where(channel >= 0, centres[np.maximum(channel, 0)], mel_lower)
    right = centres[channel + 1]
    descending = (right - bin_mel) / (right - left)
    weights = np.zeros((n_bins, n_mels))
    has_falling = channel >= 0
    weights[bins[has_falling], channel[has_falling]] = descending[has_falling]
    has_rising = channel + 1 < n_mels
    weights[bins[has_rising], channel[has_rising] + 1] = 1.0 - descending[has_rising]
    return weights


def _tf_signal_matrix(
    sample_rate_hz: int, n_bins: int, n_mels: int, lower_hz: float, upper_hz: float
) -> np.ndarray:
    bin_mel = hz_to_mel(np.linspace(0.0, sample_rate_hz / 2.0, n_bins))[1:, None]  # DC row zeroed below
    edges = np.linspace(hz_to_mel(lower_hz), hz_to_mel(upper_hz), n_mels + 2)
    lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (bin_mel - lower) / (centre - lower)
    falling = (upper - bin_mel) / (upper - centre)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    return np.concatenate([np.zeros((1, n_mels)), weights], axis=0)


@functools.lru_cache(maxsize=64)
def mel_matrix(
    filterbank: str, sample_rate_hz: int, n_bins: int, n_mels: int, lower_hz: float, upper_hz: float
) -> np.ndarray:
    """Mel weights ``[n_bins, n_mels]`` (float64, read-only): ``mel = filterbank_input @ weights``."""
    if filterbank == "tf-mfcc-op":
        weights = _mfcc_op_matrix(sample_rate_hz, n_bins, n_mels, lower_hz, upper_hz)
    elif filterbank == "tf-signal":
        weights = _tf_signal_matrix(sample_rate_hz, n_bins, n_mels, lower_hz, upper_hz)
    else:
        raise ValueError(f"unknown filterbank {filterbank!r}")
    weights.setflags(write=False)
    return weights


def mel_centres_hz(filterbank: str, n_mels: int, lower_hz: float, upper_hz: float) -> np.ndarray:
    """Centre frequency of each mel channel in Hz (where its triangle peaks)."""
    mel_lower, mel_upper = float(hz_to_mel(lower_hz)), float(hz_to_mel(upper_hz))
    mels = mel_lower + (mel_upper - mel_lower) / (n_mels + 1) * np.arange(1, n_mels + 1)
    return 700.0 * np.expm1(mels / 1127.0)  # the same centres for both filterbanks


@functools.lru_cache(maxsize=64)
def dct_matrix(n_mels: int, n_coeffs: int) -> np.ndarray:
    """DCT basis ``[n_mels, n_coeffs]`` (float64, read-only): ``coeffs = log_mel @ basis``."""
    j = np.arange(n_mels)[:, None] + 0.5
    k = np.arange(n_coeffs)[None, :]
    basis = np.sqrt(2.0 / n_mels) * np.cos(np.pi / n_mels * k * j)
    basis.setflags(write=False)
    return basis


@dataclass(frozen=True, eq=False)
class FrontEndConstants:
    """What a front end closes over; the spectrum is only needed for bins ``bin_lo:bin_hi``."""

    window: np.ndarray  # [window_samples]
    mel_weights: np.ndarray  # [bin_hi - bin_lo, n_mels], the nonzero rows of `mel_matrix`
    bin_lo: int
    bin_hi: int
    dct: np.ndarray | None  # [n_mels, n_coeffs], or None for log-mel output
    # The filterbank weights |X| ** magnitude_exponent: power (2) or magnitude (1), halved by the Mfcc op's sqrt.
    magnitude_exponent: float


@functools.lru_cache(maxsize=64)
def frontend_constants(cfg: FrontEndConfig) -> FrontEndConstants:
    """The precomputed float64 constants of ``cfg`` (cached per config)."""
    weights = mel_matrix(
        cfg.filterbank, cfg.sample_rate_hz, cfg.fft_bins, cfg.n_mels, cfg.lower_hz, cfg.upper_hz
    )
    empty = [int(c) for c in (weights.sum(axis=0) == 0).nonzero()[0]]
    if empty:  # a channel no FFT bin reaches would be a constant feature
        raise ValueError(
            f"{cfg.name}: mel channels {empty} receive no FFT bin: n_mels={cfg.n_mels} is too many for "
            f"{cfg.sample_rate_hz / cfg.fft_length:.3g} Hz bins between {cfg.lower_hz} and {cfg.upper_hz} Hz"
        )
    used = np.flatnonzero(weights.any(axis=1))
    bin_lo, bin_hi = int(used[0]), int(used[-1]) + 1
    exponent = 2.0 if cfg.spectrum == "power" else 1.0
    if cfg.filterbank == "tf-mfcc-op":
        exponent /= 2.0  # the op filters sqrt(input)
    sliced = np.ascontiguousarray(weights[bin_lo:bin_hi])
    sliced.setflags(write=False)
    return FrontEndConstants(
        window=hann_window(cfg.window_samples, cfg.filterbank),
        mel_weights=sliced,
        bin_lo=bin_lo,
        bin_hi=bin_hi,
        dct=dct_matrix(cfg.n_mels, cfg.n_coeffs) if cfg.n_coeffs is not None else None,
        magnitude_exponent=exponent,
    )
