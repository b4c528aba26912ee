"""The built-in synthesised corpus: layout, clips, determinism, splits, noise, manifest, atomicity."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from nas.data import _espeak, _speakers
from nas.data.labels import BACKGROUND_NOISE_DIR
from nas.data.split import (
    SPLITS,
    TEST,
    TRAIN,
    VALIDATION,
    hash_split,
    read_split_list,
    speaker_id,
    split_lists_disagreements,
)
from nas.data.synth import (
    GENERATOR_VERSION,
    MANIFEST,
    NOISE_FILES,
    SynthConfig,
    plan_speakers,
    read_manifest,
    synthesize_corpus,
)
from nas.data.wav import read_wav, read_wav_info
from tests.helpers.paths import REPO
from tests.helpers.synth import TINY, WORDS

CLIP_NAME = re.compile(r"^[0-9a-f]{8}_nohash_[01]\.wav$")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "corpus"
    calls = []
    report = synthesize_corpus(out, TINY, progress=lambda done, total: calls.append((done, total)))
    assert report.out_dir == out.absolute()
    assert report.clips == 7 * 4 * 2 and report.speakers == {TRAIN: 3, VALIDATION: 2, TEST: 2}
    assert report.bytes_written > report.clips * 32_000 and report.seconds > 0
    assert calls[-1] == (56, 56) and len(calls) == 7
    return out


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _manifest_without_time(root: Path) -> dict:
    m = json.loads((root / MANIFEST).read_text())
    m.pop("generation_seconds")
    return m


def test_layout_and_counts(corpus: Path):
    dirs = sorted(p.name for p in corpus.iterdir() if p.is_dir())
    assert dirs == sorted([*WORDS, BACKGROUND_NOISE_DIR])
    assert sorted(p.name for p in corpus.iterdir() if p.is_file()) == [
        MANIFEST, "testing_list.txt", "validation_list.txt",
    ]  # fmt: skip
    speakers_per_word = []
    for word in WORDS:
        names = sorted(p.name for p in (corpus / word).iterdir())
        assert len(names) == 14 and all(CLIP_NAME.match(n) for n in names)
        speakers_per_word.append({speaker_id(n) for n in names})
    assert all(s == speakers_per_word[0] for s in speakers_per_word) and len(speakers_per_word[0]) == 7
    assert not list(corpus.parent.glob(".corpus.*"))  # no temp folder left behind


def test_every_clip_is_one_second_of_audible_speech(corpus: Path):
    peaks = []
    for path in sorted(corpus.glob("*/*_nohash_*.wav")):
        info = read_wav_info(path)
        assert (info.channels, info.sample_rate_hz, info.sample_width_bytes, info.frames) == (
            1,
            16000,
            2,
            16000,
        )
        x = read_wav(path).astype(np.float64) / 32768.0
        frames = np.sqrt(np.mean(x.reshape(100, 160) ** 2, axis=1))  # 10 ms frames
        loud, quiet = frames.max(), np.median(np.sort(frames)[:20])
        assert loud > 10 ** (-45 / 20), path  # speech, not silence
        assert loud > 30 * quiet, path  # well above the noise floor
        assert (frames > loud / 10).sum() >= 8, path  # at least ~80 ms of voiced energy
        peaks.append(np.abs(x).max())
    peaks_dbfs = 20 * np.log10(peaks)
    assert peaks_dbfs.max() < -0.5  # never clipped
    assert peaks_dbfs.min() > -40 and np.ptp(peaks_dbfs) > 6  # levels vary by speaker and clip


def test_words_and_repetitions_differ(corpus: Path):
    sid = speaker_id(next((corpus / "yes").glob("*_nohash_0.wav")).name)

    def spectrum(word: str, rep: int) -> np.ndarray:
        x = read_wav(corpus / word / f"{sid}_nohash_{rep}.wav").astype(np.float64)
        s = np.log(np.abs(np.fft.rfft(x))[:8000].reshape(100, 80).mean(axis=1) + 1e-3)
        return s - s.mean()

    same = np.linalg.norm(spectrum("yes", 0) - spectrum("yes", 1))
    other = min(np.linalg.norm(spectrum("yes", r) - spectrum(w, q)) for w in ("no", "wow") for r in (0, 1)
                for q in (0, 1))  # fmt: skip
    assert same > 0  # each repetition has its own jitter
    assert other > same  # another word of the same speaker is further away than a repetition


def test_splits_lists_and_hash_rule_agree(corpus: Path):
    lists = {VALIDATION: read_split_list(corpus / "validation_list.txt"),
             TEST: read_split_list(corpus / "testing_list.txt")}  # fmt: skip
    assert split_lists_disagreements(lists) == []
    listed = lists[VALIDATION] | lists[TEST]
    assert all((corpus / rel).is_file() for rel in listed)
    by_split: dict[str, set[str]] = {s: set() for s in SPLITS}
    for path in corpus.glob("*/*_nohash_*.wav"):
        rel = f"{path.parent.name}/{path.name}"
        split = hash_split(speaker_id(path.name))
        by_split[split].add(speaker_id(path.name))
        assert (rel in listed) == (split != TRAIN)
        assert rel not in lists[VALIDATION] or split == VALIDATION
    assert [len(by_split[s]) for s in SPLITS] == [3, 2, 2]
    assert not (by_split[TRAIN] & by_split[VALIDATION] or by_split[TRAIN] & by_split[TEST]
                or by_split[VALIDATION] & by_split[TEST])  # fmt: skip


def test_background_noise_files(corpus: Path):
    folder = corpus / BACKGROUND_NOISE_DIR
    assert sorted(p.name for p in folder.iterdir()) == sorted(f"{n}.wav" for n in NOISE_FILES)
    rms_dbfs = {}
    for name in NOISE_FILES:
        x = read_wav(folder / f"{name}.wav").astype(np.float64) / 32768.0
        assert len(x) == 2 * 16000
        rms_dbfs[name] = 20 * np.log10(np.sqrt(np.mean(x**2)))
    # Speech Commands: white/pink noise are unit-variance noise / 3 (-9.5 dBFS); recordings -33..-23.
    for name in ("white_noise", "pink_noise", "brown_noise"):
        assert -10.5 < rms_dbfs[name] < -8.5, (name, rms_dbfs[name])
    for name in ("babble", "machine_hum"):
        assert -30 < rms_dbfs[name] < -24, (name, rms_dbfs[name])
    white, pink, brown = (read_wav(folder / f"{n}.wav").astype(np.float64)
                          for n in ("white_noise", "pink_noise", "brown_noise"))  # fmt: skip

    def low_share(x: np.ndarray) -> float:  # fraction of power below 500 Hz
        p = np.abs(np.fft.rfft(x)) ** 2
        return p[: len(p) * 500 // 8000].sum() / p.sum()

    assert low_share(white) < low_share(pink) < low_share(brown)


def test_manifest(corpus: Path):
    m = read_manifest(corpus)
    assert m is not None
    assert m["generator_version"] == GENERATOR_VERSION and m["seed"] == 7
    assert m["espeak_ng_version"].startswith("1.")
    assert m["words"] == list(WORDS) and m["config"]["speakers"] == 7 and "workers" not in m["config"]
    assert m["counts"]["clips"] == 56
    assert m["counts"]["speakers_per_split"] == {TRAIN: 3, VALIDATION: 2, TEST: 2}
    assert m["counts"]["clips_per_split"] == {TRAIN: 24, VALIDATION: 16, TEST: 16}
    assert m["counts"]["clips_per_word_split"]["bed"] == {TRAIN: 6, VALIDATION: 4, TEST: 4}
    for s in m["speakers"]:
        assert hash_split(s["id"]) == s["split"]
        assert s["voice"] == f"{s['accent']}+{s['variant']}"
        assert (corpus / "yes" / f"{s['id']}_nohash_1.wav").is_file()
    assert set(m["noise_files"]) == set(NOISE_FILES)
    assert m["bytes_written"] == sum(
        p.stat().st_size for p in corpus.rglob("*") if p.is_file() and p.name != MANIFEST
    )
    assert m["generation_seconds"] > 0


def test_same_seed_gives_identical_bytes_in_another_process(corpus: Path, tmp_path: Path):
    # A fresh interpreter, and two worker processes instead of one: neither may change a byte.
    code = (
        "import dataclasses, sys; from pathlib import Path;"
        "from tests.helpers.synth import TINY; from nas.data.synth import synthesize_corpus;"
        "synthesize_corpus(Path(sys.argv[1]), dataclasses.replace(TINY, workers=2))"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "again")], check=True, cwd=REPO, env=env,
                   timeout=120)  # fmt: skip
    a, b = _files(corpus), _files(tmp_path / "again")
    assert a.keys() == b.keys()
    assert [k for k in a if k != MANIFEST and a[k] != b[k]] == []
    assert _manifest_without_time(corpus) == _manifest_without_time(tmp_path / "again")


def test_same_seed_again_in_this_process(corpus: Path, tmp_path: Path):
    synthesize_corpus(tmp_path / "again", TINY)
    a, b = _files(corpus), _files(tmp_path / "again")
    assert [k for k in a if k != MANIFEST and a[k] != b.get(k)] == [] and a.keys() == b.keys()


def test_different_seed_gives_a_different_corpus(corpus: Path, tmp_path: Path):
    other = synthesize_corpus(tmp_path / "other", replace(TINY, seed=8))
    ids = {speaker_id(p.name) for p in (corpus / "yes").iterdir()}
    other_ids = {speaker_id(p.name) for p in (other.out_dir / "yes").iterdir()}
    assert not ids & other_ids
    assert (
        _files(corpus)[f"{BACKGROUND_NOISE_DIR}/babble.wav"]
        != _files(other.out_dir)[f"{BACKGROUND_NOISE_DIR}/babble.wav"]
    )


def test_plan_is_deterministic_and_balanced():
    config = SynthConfig()
    a, b = plan_speakers(config), plan_speakers(config)
    assert a == b and len(a) == 80
    assert [sum(s.split == sp for s in a) for sp in SPLITS] == [64, 8, 8]
    assert all(hash_split(s.id) == s.split for s in a) and len({s.id for s in a}) == 80
    accents = {s.accent for s in a}
    assert accents == set(config.accents)
    assert len({s.variant for s in a}) > 40 and 0.3 < np.mean([s.female for s in a]) < 0.6
    variants = {sp: {s.variant for s in a if s.split == sp} for sp in SPLITS}
    assert not variants[TRAIN] & (variants[VALIDATION] | variants[TEST])  # held-out voices are new voices
    assert not variants[VALIDATION] & variants[TEST]
    assert plan_speakers(SynthConfig(seed=1)) != a


def test_existing_corpus_is_not_clobbered(corpus: Path):
    before = _files(corpus)
    with pytest.raises(FileExistsError, match="complete corpus"):
        synthesize_corpus(corpus, TINY)
    assert _files(corpus) == before


def test_overwrite_replaces_and_stray_files_are_protected(tmp_path: Path):
    out = tmp_path / "c"
    out.mkdir()
    (out / "mine.txt").write_text("user data")
    small = replace(TINY, words=("yes",), noise_seconds=0.5)
    with pytest.raises(FileExistsError, match="other files"):
        synthesize_corpus(out, small)
    assert (out / "mine.txt").read_text() == "user data"
    synthesize_corpus(out, small, overwrite=True)
    assert not (out / "mine.txt").exists() and read_manifest(out)["words"] == ["yes"]
    assert [p.name for p in tmp_path.iterdir()] == ["c"]  # the old copy and temp folder are gone


def test_interrupted_run_leaves_nothing_and_leftovers_are_cleaned(tmp_path: Path):
    out = tmp_path / "c"
    small = replace(TINY, words=("no",), noise_seconds=0.5)

    def interrupt(done: int, total: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        synthesize_corpus(out, small, progress=interrupt)
    assert list(tmp_path.iterdir()) == []
    # A temp folder of a killed run (its process is gone) is removed by the next run.
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    leftover = tmp_path / f".c.partial-{dead.pid}-0123abcd"
    (leftover / "yes").mkdir(parents=True)
    (leftover / "yes" / "x.wav").write_bytes(b"half")
    synthesize_corpus(out, small)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]


def test_long_words_are_said_faster(tmp_path: Path):
    config = replace(TINY, rate_wpm=(80, 80), max_word_s=0.3)
    speaker = plan_speakers(config)[0]
    with _espeak.Espeak(seed=1) as engine:
        x = _speakers.say(engine, speaker, "backward", np.random.default_rng(0), 4800)
        natural = _speakers.say(engine, speaker, "backward", np.random.default_rng(0), 16000)
    assert len(natural) > 8000 and 1000 < len(x) <= 4800


def test_fresh_espeak_instances_repeat_exactly():
    # whisper uses espeak's noise generator and flutter: state that a shared instance would carry over.
    def say() -> list[np.ndarray]:
        with _espeak.Espeak(seed=5) as engine:
            return [engine.synth(w, "en-us+whisper") for w in ("sheila", "sheila", "yes")]

    first, second = say(), say()
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))
    assert len(first[0]) > 2000


def test_bad_configs_and_voices_are_refused(tmp_path: Path):
    with pytest.raises(ValueError, match="speakers"):
        SynthConfig(speakers=4)
    with pytest.raises(ValueError, match="words"):
        SynthConfig(words=("yes", "yes"))
    with pytest.raises(ValueError, match="variants"):
        synthesize_corpus(tmp_path / "a", replace(TINY, male_variants=("nosuch",)))
    with pytest.raises(ValueError, match="rand"):
        synthesize_corpus(tmp_path / "b", replace(TINY, male_variants=("klatt6",)))
    with pytest.raises(ValueError, match="voice"):
        synthesize_corpus(tmp_path / "c", replace(TINY, accents=("xx-nowhere",)))
    assert list(tmp_path.iterdir()) == []


def test_missing_espeak_names_the_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setitem(sys.modules, "espeakng_loader", None)  # as if it were not installed
    with pytest.raises(_espeak.EspeakUnavailableError, match="espeakng-loader"):
        synthesize_corpus(tmp_path / "c", TINY)
    assert list(tmp_path.iterdir()) == []
