"""Features of unaugmented splits are computed once per (split content, front end) and read back."""

from __future__ import annotations

import numpy as np

from nas.data.dataset import load_split
from nas.data.featurize import split_features
from nas.data.label_sets import STANDARD_12
from nas.data.layout import scan_corpus
from nas.data.wav import to_float
from nas.features import features_numpy, get_frontend
from nas.files import cache_dir


def test_feature_cache_hits_and_keys(tiny_corpus):
    data = load_split(scan_corpus(tiny_corpus), STANDARD_12, "train")
    fe = get_frontend("hello-edge")
    first = split_features(data, fe)
    assert first.shape == (len(data), 49, 10) and first.dtype == np.float32
    np.testing.assert_array_equal(first[:5], features_numpy(to_float(np.asarray(data.audio[:5])), fe))
    files = sorted(cache_dir("features").glob(f"{data.key}-*.npy"))
    assert len(files) == 1
    again = split_features(data, fe)
    assert isinstance(again, np.memmap)  # read back, not recomputed
    np.testing.assert_array_equal(again, first)
    other = split_features(data, get_frontend("mlperf-tiny"))
    assert len(sorted(cache_dir("features").glob(f"{data.key}-*.npy"))) == 2
    assert not np.allclose(other, first)
