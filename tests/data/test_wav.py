"""Any common WAV format reads as 16 kHz mono int16; every unusable clip is a BadClipError naming the file
and the cause."""

from __future__ import annotations

import wave

import numpy as np
import pytest

from nas.data.wav import BadClipError, fit_length, read_wav, to_float, write_wav
from tests.helpers.corpus import write_wav_any


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


@pytest.mark.parametrize("rate", [8000, 11025, 16000, 22050, 44100, 48000])
@pytest.mark.parametrize("fmt", ["pcm8", "pcm16", "pcm24", "pcm32", "float32", "float64"])
@pytest.mark.parametrize("channels", [1, 2])
def test_any_common_format_reads_as_16k_mono_int16(tmp_path, rate, fmt, channels):
    seconds, hz, amp = 0.25, 440.0, 0.5
    t = np.arange(round(seconds * rate)) / rate
    tone = amp * np.sin(2 * np.pi * hz * t)
    x = tone if channels == 1 else np.stack([tone, tone], axis=1)  # both channels agree: the mix is the tone
    y = read_wav(write_wav_any(tmp_path / "c.wav", x, rate, fmt))
    assert y.dtype == np.int16 and len(y) == round(seconds * 16000)
    ideal = amp * 32768 * np.sin(2 * np.pi * hz * np.arange(len(y)) / 16000)
    inner = slice(200, -200)  # the resampling filter's edges
    err = np.abs(y[inner] - ideal[inner]).max()
    assert err < (300 if fmt == "pcm8" else 40), err  # 8-bit: its own quantization step is 256


def test_stereo_is_the_average_of_its_channels(tmp_path):
    left = np.full(1600, 0.5)
    y = read_wav(write_wav_any(tmp_path / "s.wav", np.stack([left, -0.25 * np.ones(1600)], axis=1), 16000, "pcm16"))
    assert np.all(y == round(0.125 * 32768))


@pytest.mark.parametrize("make,needle", [
    (lambda p: p.write_bytes(b"RIFF\x00\x00"), "not a WAV file"),
    (lambda p: p.write_bytes(b"ID3 this is an mp3"), "not a WAV file"),
    (lambda p: p.write_bytes(b""), "not a WAV file"),
    (lambda p: _wav(p, rate=100), "100 Hz"),
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
