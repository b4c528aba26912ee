"""MFCC and log-mel front ends as named presets, computed in numpy (float64) and in JAX (float32).

cfg = get_frontend("hello-edge")               # 49 x 10, TF AudioSpectrogram + Mfcc (ML-KWS-for-MCU)
feats = features_numpy(audio, cfg)             # [N, 49, 10] float32, reference
fn = jax.jit(make_features_jax(cfg))           # same features inside a jitted training step
"""

from nas.features.filterbanks import dct_matrix, hann_window, mel_centres_hz, mel_matrix
from nas.features.jax_frontend import make_features_jax, peak_normalize_jax
from nas.features.numpy_frontend import features_numpy, peak_normalize_numpy
from search_spaces.frontend import FILTERBANKS, LOG_STYLES, PRESETS, SPECTRA, FrontEndConfig, get_frontend

__all__ = [
    "FILTERBANKS",
    "LOG_STYLES",
    "PRESETS",
    "SPECTRA",
    "FrontEndConfig",
    "dct_matrix",
    "features_numpy",
    "get_frontend",
    "hann_window",
    "make_features_jax",
    "mel_centres_hz",
    "mel_matrix",
    "peak_normalize_jax",
    "peak_normalize_numpy",
]
