"""The 12-class, 10-class and user-word protocols, and the decoded, cached splits."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nas.data.augment import AugmentConfig, augment_numpy, load_noise_bank
from nas.data.dataset import load_split
from nas.data.label_sets import KEYWORDS_ONLY_10, STANDARD_12, get_protocol
from nas.data.label_sets import build_split as build
from nas.data.labels import LABELS_12
from nas.data.layout import DataError, scan_corpus


def test_label_orders():
    assert STANDARD_12.labels == LABELS_12
    assert KEYWORDS_ONLY_10.labels == LABELS_12[2:]
    assert get_protocol("12") is STANDARD_12 and get_protocol("10") is KEYWORDS_ONLY_10
    assert get_protocol("cat,dog").labels == ("_silence_", "_unknown_", "cat", "dog")
    with pytest.raises(ValueError):
        get_protocol("cat")


@pytest.mark.parametrize("split", ["train", "validation", "test"])
def test_standard_12_adds_ten_percent_silence_and_unknown(tiny_corpus, split):
    corpus = scan_corpus(tiny_corpus)
    examples = build(corpus, STANDARD_12, split, seed=0)
    counts = np.bincount([e.label for e in examples], minlength=12)
    keywords = counts[2:].sum()
    assert counts[0] == math.ceil(keywords / 10)  # silence
    assert counts[1] == math.ceil(keywords / 10)  # unknown, drawn from bed/cat/dog
    assert all(e.rel_path is None for e in examples if e.label == 0)
    assert all(e.rel_path.split("/")[0] in ("bed", "cat", "dog") for e in examples if e.label == 1)


def test_unknown_draw_is_seeded(tiny_corpus):
    corpus = scan_corpus(tiny_corpus)
    a = build(corpus, STANDARD_12, "train", seed=1)
    assert a == build(corpus, STANDARD_12, "train", seed=1)
    assert a != build(corpus, STANDARD_12, "train", seed=2)


def test_keywords_only_and_user_words(tiny_corpus):
    corpus = scan_corpus(tiny_corpus)
    ten = build(corpus, KEYWORDS_ONLY_10, "train")
    assert {e.label for e in ten} <= set(range(10)) and all(e.rel_path for e in ten)
    user = build(corpus, get_protocol("cat,dog"), "train")
    names = {e.rel_path.split("/")[0] for e in user if e.label >= 2}
    assert names == {"cat", "dog"}
    with pytest.raises(DataError, match="marvin"):
        build(corpus, get_protocol("cat,marvin"), "train")


def test_test_set_layout_is_used_as_is(sc_test_set):
    corpus = scan_corpus(sc_test_set)
    examples = build(corpus, STANDARD_12, "test")
    assert len(examples) == 914
    assert sum(e.label == 0 for e in examples) == 80 and all(e.rel_path for e in examples)
    assert len(build(corpus, KEYWORDS_ONLY_10, "test")) == 914 - 80 - 67


def test_load_split_decodes_caches_and_skips_bad_clips(tiny_corpus):
    bad = tiny_corpus / "yes" / "deadbeef_nohash_0.wav"
    bad.write_bytes(b"garbage")
    corpus = scan_corpus(tiny_corpus)
    data = None
    for split in ("train", "validation", "test"):
        if any(e.rel_path == "yes/deadbeef_nohash_0.wav" for e in build(corpus, STANDARD_12, split)):
            data = load_split(corpus, STANDARD_12, split)
            break
    assert data is not None
    assert [s[0] for s in data.skipped] == [str(bad)]
    assert data.audio.shape == (len(data.labels), 16000) and data.audio.dtype == np.int16
    assert data.silence.sum() == (data.labels == 0).sum() > 0
    assert np.abs(data.audio[data.silence]).max() > 0  # silence is rendered from the noise file
    again = load_split(corpus, STANDARD_12, data_split := split)
    assert again.key == data.key and np.array_equal(np.asarray(again.audio), data.audio)
    assert again.skipped == data.skipped and data_split == split


def test_load_real_test_split(sc_test_set):
    data = load_split(scan_corpus(sc_test_set), STANDARD_12, "test")
    assert len(data) == 914 and not data.skipped and not data.silence.any()
    assert np.bincount(data.labels, minlength=12)[0] == 80


def test_augmentation_is_seeded_and_follows_the_protocol(tiny_corpus):
    corpus = scan_corpus(tiny_corpus)
    bank = load_noise_bank(corpus.noise_files)
    x = np.zeros((400, 16000), np.float32)
    x[:, 8000] = 0.5  # an impulse: where it lands shows the shift
    silence = np.zeros(400, bool)
    silence[:40] = True
    a = augment_numpy(x, silence, bank, np.random.default_rng(3))
    b = augment_numpy(x, silence, bank, np.random.default_rng(3))
    assert np.array_equal(a, b)
    noisy = (np.abs(a[40:]) > 0).sum(axis=1) > 100
    assert 0.7 < noisy.mean() < 0.9  # background mixed in with probability 0.8
    assert np.abs(a[40:]).max() <= 1.0
    assert (np.abs(a[:40]).sum(axis=1) > 0).all()  # silence items are noise alone, at a random volume
    assert np.isclose(a[:40], 0.5).sum() == 0
    no_noise = augment_numpy(x, np.zeros(400, bool), bank, np.random.default_rng(4),
                             AugmentConfig(background_probability=0.0))
    shifts = np.argmax(no_noise, axis=1) - 8000
    assert shifts.min() >= -1600 and shifts.max() <= 1600 and np.ptp(shifts) > 1600
