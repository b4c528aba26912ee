"""Scanning both Speech Commands layouts, and clear errors for unusable paths."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from nas.data.layout import FULL, TEST_SET, DataError, scan_corpus
from nas.data.wav import write_wav

# Per-class counts of the official test set (../shared/data/README.md).
TEST_SET_COUNTS = {
    "up": 425, "yes": 419, "left": 412, "stop": 411, "_unknown_": 408, "_silence_": 408,
    "down": 406, "no": 405, "off": 402, "go": 402, "right": 396, "on": 396,
}


def test_official_test_set_layout(sc_test_set):
    corpus = scan_corpus(sc_test_set)
    assert corpus.layout == TEST_SET
    assert len(corpus.clips) == 4890
    per_folder: dict[str, int] = {}
    for c in corpus.clips:
        per_folder[c.folder] = per_folder.get(c.folder, 0) + 1
    assert per_folder == TEST_SET_COUNTS
    unknown = [c for c in corpus.clips if c.folder == "_unknown_"]
    assert all(c.word not in ("_unknown_", "yes", "no") for c in unknown)
    assert {c.word for c in unknown} >= {"backward", "bed", "bird"}
    assert all(len(c.speaker) == 8 for c in unknown)


def test_full_layout_sample_with_external_noise(shared_data):
    corpus = scan_corpus(shared_data / "sc_full_layout_sample", noise_dir=shared_data / "background_noise")
    assert corpus.layout == FULL
    assert len(corpus.clips) == 16
    assert {"backward", "bed", "visual", "yes"} <= set(corpus.words)
    assert len(corpus.noise_files) == 6
    assert corpus.split_lists is None


def test_official_lists_are_used_when_present(tiny_corpus):
    clip = sorted(tiny_corpus.glob("yes/*.wav"))[0]
    (tiny_corpus / "validation_list.txt").write_text(f"yes/{clip.name}\n")
    (tiny_corpus / "testing_list.txt").write_text("")
    corpus = scan_corpus(tiny_corpus)
    assert corpus.split_lists is not None
    ref = next(c for c in corpus.clips if c.rel_path == f"yes/{clip.name}")
    assert corpus.split_of(ref) == "validation"
    assert corpus.split_of(ref, "hash") in ("train", "validation", "test")


@pytest.mark.parametrize("make,needle", [
    (lambda p: p / "missing", "no such dataset directory"),
    (lambda p: (p / "empty").mkdir() or p / "empty", "no .wav clips"),
    (lambda p: (p / "f.txt").write_text("x") and p / "f.txt", "not a directory"),
])
def test_unusable_paths_name_the_path(tmp_path, make, needle):
    path = make(tmp_path)
    with pytest.raises(DataError) as err:
        scan_corpus(path)
    assert str(path) in str(err.value) and needle in str(err.value)


def test_missing_noise_dir_is_named(tiny_corpus, tmp_path):
    with pytest.raises(DataError, match="no-noise-here"):
        scan_corpus(tiny_corpus, noise_dir=tmp_path / "no-noise-here")


def test_cli_info_reports_exact_test_set_counts(sc_test_set):
    out = subprocess.run([sys.executable, "-m", "nas", "data", "info", str(sc_test_set), "--json"],
                         capture_output=True, text=True, check=True)
    info = json.loads(out.stdout)
    assert info["clips"] == 4890
    assert info["classes"] == dict(sorted(TEST_SET_COUNTS.items()))
    assert info["speakers"] == 239
    assert info["bad_clips"] == []
    assert abs(info["duration_s"] - 4890.0) < 60  # 1 s clips; a few are shorter
    assert sum(s["clips"] for s in info["splits"].values()) == 4890


def test_cli_info_counts_a_bad_clip_and_goes_on(tiny_corpus):
    before = sum(1 for _ in tiny_corpus.rglob("*.wav")) - 1  # less the background noise file
    (tiny_corpus / "yes" / "deadbeef_nohash_0.wav").write_bytes(b"not a wav at all")
    write_wav(tiny_corpus / "no" / "deadbeef_nohash_1.wav", [0.1] * 100, sample_rate_hz=8000)
    out = subprocess.run([sys.executable, "-m", "nas", "data", "info", str(tiny_corpus), "--json"],
                         capture_output=True, text=True, check=True)
    info = json.loads(out.stdout)
    bad = {b["path"].split("/")[-1]: b["reason"] for b in info["bad_clips"]}
    assert list(bad) == ["deadbeef_nohash_0.wav"] and "not a WAV file" in bad["deadbeef_nohash_0.wav"]
    # the 8 kHz clip is read (converted); the damaged one is in no count
    assert info["clips"] == before + 1 and info["converted"] == {"clips": 1, "formats": {
        "8000 Hz 16-bit PCM, 1 channel(s)": 1}}
    assert sum(s["clips"] for s in info["splits"].values()) == before + 1


def test_cli_missing_path_is_one_clear_line(tmp_path):
    out = subprocess.run([sys.executable, "-m", "nas", "data", "info", str(tmp_path / "nope")],
                         capture_output=True, text=True)
    assert out.returncode == 2
    assert out.stderr.strip() == f"error: {tmp_path / 'nope'}: no such dataset directory"


def test_prepare_and_info_on_the_default_corpus():
    """The README's first command: synthesise the default corpus, then describe it."""
    prep = subprocess.run([sys.executable, "-m", "nas", "data", "prepare"], capture_output=True, text=True,
                          check=True)
    path = prep.stdout.strip().splitlines()[-1]
    out = subprocess.run([sys.executable, "-m", "nas", "data", "info", "default", "--json"],
                         capture_output=True, text=True, check=True)
    info = json.loads(out.stdout)
    assert info["root"] == path and info["layout"] == FULL and info["official_split_lists"]
    assert info["clips"] >= 3000 and info["bad_clips"] == []
    assert {"yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"} <= set(info["classes"])
    assert len(info["classes"]) >= 20  # at least 10 non-keywords for _unknown_
    assert all(info["splits"][s]["speakers"] >= 3 for s in ("train", "validation", "test"))
    assert len(info["noise_files"]) >= 3
    again = subprocess.run([sys.executable, "-m", "nas", "data", "prepare"], capture_output=True, text=True,
                           check=True)
    assert "already prepared" in again.stderr
