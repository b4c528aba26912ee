"""Synthetic recordings for data tests: speaker ids the Speech Commands hashing rule puts in a chosen split,
WAV files in any common format, and a tiny corpus in the full Speech Commands layout."""

from __future__ import annotations

from pathlib import Path

# The words of the tiny corpus the tests train on: the ten keywords and three others for _unknown_.
TINY_WORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go", "bed", "cat", "dog")


def speaker_ids(salt: str = "spk"):
    """Endless distinct speaker ids (8 hex digits) derived from ``salt``."""
    import hashlib
    import itertools

    return (hashlib.sha1(f"{salt}{i}".encode()).hexdigest()[:8] for i in itertools.count())


def speakers_in(split: str, n: int, ids=None) -> list[str]:
    """The next ``n`` ids of ``ids`` (default: a fresh `speaker_ids()`) that the Speech Commands hashing
    rule puts in ``split``; the ids passed over are used up."""
    from nas.data.split import hash_split

    ids = speaker_ids() if ids is None else ids
    out = []
    while len(out) < n:
        spk = next(ids)
        if hash_split(spk) == split:
            out.append(spk)
    return out


def write_wav_any(path: Path, x, rate: int, fmt: str) -> Path:
    """A WAV file of float samples ``x`` ([frames] or [frames, channels], in [-1, 1)) in format ``fmt``:
    pcm8/16/24/32 (8-bit WAV is unsigned) or float32/64."""
    import wave

    import numpy as np
    from scipy.io import wavfile

    x = np.asarray(x)
    if fmt.startswith("float"):
        wavfile.write(path, rate, x.astype(fmt))
        return path
    width = int(fmt[3:]) // 8
    if width == 1:
        data = np.clip(np.round(x * 128 + 128), 0, 255).astype(np.uint8).tobytes()
    else:
        top = 2 ** (8 * width - 1)
        full = np.clip(np.round(x * float(top)), -top, top - 1).astype(np.int64)
        data = b"".join(int(v).to_bytes(width, "little", signed=True) for v in full.ravel())
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1 if x.ndim == 1 else x.shape[1])
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(data)
    return path


def make_tiny_corpus(root: Path, words: tuple[str, ...], speakers: tuple[int, int, int] = (6, 3, 3),
                     reps: int = 2, noise: bool = True, seed: int = 0) -> Path:
    """A small full-layout corpus of synthetic tones (0.5 s each) for loader tests, with
    ``speakers`` = (train, validation, test) speakers chosen so the hashing rule puts them there."""
    import numpy as np

    from nas.data.split import SPLITS
    from nas.data.wav import write_wav

    candidates = speaker_ids()
    ids = [spk for split, n in zip(SPLITS, speakers, strict=True) for spk in speakers_in(split, n, candidates)]
    rng = np.random.default_rng(seed)
    t = np.arange(8000) / 16000.0
    for w_i, word in enumerate(words):
        for spk in ids:
            for r in range(reps):
                x = 0.3 * np.sin(2 * np.pi * (300 + 40 * w_i) * t) + 0.01 * rng.standard_normal(8000)
                write_wav(root / word / f"{spk}_nohash_{r}.wav", x)
    if noise:
        write_wav(root / "_background_noise_" / "white.wav", 0.3 * rng.standard_normal(3 * 16000))
    return root
