"""Every unusable clip is a BadClipError naming the file and the cause."""

from __future__ import annotations

import wave

import numpy as np
import pytest

from nas.data.wav import BadClipError, fit_length, read_wav, to_float, write_wav


def _wav(path, channels=1, width=2, rate=16000, frames=1600):
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(b"\x01\x00" * channels * frames if width == 2 else b"\x01" * channels * frames)
    return path


def test_round_trip(tmp_path):
    x = (np.arange(-800, 800) * 20).astype(np.int16)
    write_wav(tmp_path / "a.wav", x)
    assert np.array_equal(read_wav(tmp_path / "a.wav"), x)
    assert to_float(np.array([-32768, 16384], np.int16)).tolist() == [-1.0, 0.5]


def test_real_clip(sc_test_set):
    x = read_wav(next((sc_test_set / "yes").glob("*.wav")))
    assert x.dtype == np.int16 and len(x) == 16000 and np.abs(x).max() > 1000


@pytest.mark.parametrize("make,needle", [
    (lambda p: p.write_bytes(b"RIFF\x00\x00"), "not a PCM WAV"),
    (lambda p: p.write_bytes(b"ID3 this is an mp3"), "not a PCM WAV"),
    (lambda p: p.write_bytes(b""), "not a PCM WAV"),
    (lambda p: _wav(p, channels=2), "2 channels"),
    (lambda p: _wav(p, rate=44100), "44100 Hz"),
    (lambda p: _wav(p, width=1), "8-bit"),
    (lambda p: _wav(p, frames=0), "no samples"),
])
def test_bad_clips_are_named(tmp_path, make, needle):
    path = tmp_path / "clip.wav"
    make(path)
    with pytest.raises(BadClipError) as err:
        read_wav(path)
    assert str(path) in str(err.value) and needle in str(err.value)


def test_truncated_clip(tmp_path):
    path = _wav(tmp_path / "t.wav", frames=16000)
    path.write_bytes(path.read_bytes()[:20000])
    with pytest.raises(BadClipError, match="truncated"):
        read_wav(path)


def test_missing_clip(tmp_path):
    with pytest.raises(BadClipError, match="no such file"):
        read_wav(tmp_path / "nope.wav")


def test_fit_length_pads_and_crops():
    assert fit_length(np.ones(3, np.int16), 5).tolist() == [1, 1, 1, 0, 0]
    assert fit_length(np.arange(7), 5).tolist() == [0, 1, 2, 3, 4]
