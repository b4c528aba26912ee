"""Features of unaugmented splits, cached on disk by (split content key, front-end digest).

Validation and test features never change between trials of a search, so they are computed once per
front end and read back as one ``.npy`` (memory-mapped) by every later trial.
"""

from __future__ import annotations

import numpy as np

from nas.data.dataset import SplitData
from nas.data.wav import to_float
from nas.features import FrontEndConfig, features_numpy
from nas.files import atomic_save_npy, cache_dir

_CHUNK_CLIPS = 512  # bounds the float64 working set of the numpy front end (~0.5 GB at FFT 1024)


def split_features(data: SplitData, frontend: FrontEndConfig, use_cache: bool = True) -> np.ndarray:
    """float32 [N, frames, coeffs] features of ``data``'s clips as they are (no augmentation)."""
    path = cache_dir("features") / f"{data.key}-{frontend.digest()}.npy"
    if use_cache and path.is_file():
        return np.load(path, mmap_mode="r")
    out = np.empty((len(data), *frontend.feature_shape), np.float32)
    for start in range(0, len(data), _CHUNK_CLIPS):
        chunk = to_float(np.asarray(data.audio[start : start + _CHUNK_CLIPS]))
        out[start : start + len(chunk)] = features_numpy(chunk, frontend)
    if use_cache:
        atomic_save_npy(path, out)
    return out
