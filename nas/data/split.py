"""The Speech Commands split rule, and the official split lists.

The rule (Warden 2018, TensorFlow's ``speech_commands/input_data.py``): the speaker id (the part of the
file name before ``_nohash_``) is hashed with SHA-1, taken modulo 2**27 and scaled to a percentage in
[0, 100]; the clip goes to validation below ``validation_percent``, to test below
``validation_percent + test_percent``, else to training. Every clip of one speaker lands in one split.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from pathlib import Path

TRAIN, VALIDATION, TEST = "train", "validation", "test"
SPLITS = (TRAIN, VALIDATION, TEST)

# 2**27 - 1: the dataset's MAX_NUM_WAVS_PER_CLASS. The modulus is 2**27 and the scale 100 / (2**27 - 1),
# exactly as the reference code does, so a percentage can reach 100.0.
_MAX_NUM_WAVS_PER_CLASS = 2**27 - 1
_NOHASH = re.compile(r"_nohash_.*$")
_SPEAKER = re.compile(r"([0-9a-fA-F]{8})_nohash_")


def speaker_id(file_name: str) -> str:
    """Speaker id of a clip file name.

    ``0a7c2a8d_nohash_0.wav`` -> ``0a7c2a8d``; in the official test-set layout the ``_unknown_`` clips
    carry a word prefix (``bed_0a7c2a8d_nohash_0.wav.wav``), which is stripped. Names without
    ``_nohash_`` are their own speaker (the whole stem).
    """
    base = Path(file_name).name
    m = _SPEAKER.search(base)
    if m:
        return m.group(1).lower()
    stem = _NOHASH.sub("", base)
    return stem.split(".")[0]


def hash_percentage(speaker: str) -> float:
    """The speaker's position in [0, 100] under the Speech Commands hashing rule."""
    digest = int(hashlib.sha1(speaker.encode("utf-8")).hexdigest(), 16)
    return (digest % (_MAX_NUM_WAVS_PER_CLASS + 1)) * (100.0 / _MAX_NUM_WAVS_PER_CLASS)


def hash_split(speaker: str, validation_percent: float = 10.0, test_percent: float = 10.0) -> str:
    """Split of a speaker by the hashing rule: ``validation`` below the first cut, ``test`` below the second."""
    p = hash_percentage(speaker)
    if p < validation_percent:
        return VALIDATION
    if p < validation_percent + test_percent:
        return TEST
    return TRAIN


# The official test set holds exactly the speakers whose percentage falls in [10, 20) (the test band of
# the 10/10 rule), so 60/20/20 cuts on the raw percentage would put every one of them in training.
# The speaker split of the test set therefore rescales the percentage from that band to [0, 100) first:
# the same hash, still uniform, still speaker-disjoint.
OFFICIAL_TEST_BAND = (10.0, 20.0)


# Cross-validation over train + validation: those are the speakers below 80 on the rescaled percentage, four
# bands of 20 each. Fold f validates on band f and trains on the other three; the test speakers never move.
# Fold 3 (band [60, 80)) is the plain 60/20/20 split, so a model trained on the plain split is fold 3's.
SPEAKER_FOLDS = 4
_FOLD_WIDTH = 20.0


def speaker_split_60_20_20(speaker: str, band: tuple[float, float] = OFFICIAL_TEST_BAND,
                           fold: int | None = None) -> str:
    """Speaker-disjoint 60/20/20 train/validation/test by the same hash, within ``band`` of percentages.

    Used to train and test on the official test set alone (../shared/data/README.md). ``band=(0, 100)``
    applies the cuts to the raw percentage, for corpora that are not the official test set. ``fold``
    (0 .. SPEAKER_FOLDS - 1) moves the validation set to that band of the train + validation speakers.
    """
    lo, hi = band
    q = (hash_percentage(speaker) - lo) * 100.0 / (hi - lo)
    if q >= 80.0:
        return TEST
    if fold is None:
        fold = SPEAKER_FOLDS - 1
    if not 0 <= fold < SPEAKER_FOLDS:
        raise ValueError(f"fold {fold}: the speaker split has folds 0 .. {SPEAKER_FOLDS - 1}")
    return VALIDATION if q >= 0.0 and int(q // _FOLD_WIDTH) == fold else TRAIN


def read_split_list(path: Path) -> set[str]:
    """Relative clip paths (``word/speaker_nohash_n.wav``) listed in an official list file."""
    with open(path, encoding="utf-8") as fh:
        return {line.strip().replace("\\", "/") for line in fh if line.strip()}


def split_lists_disagreements(
    lists: dict[str, Iterable[str]], validation_percent: float = 10.0, test_percent: float = 10.0
) -> list[tuple[str, str, str]]:
    """Entries whose listed split differs from the hashing rule: ``(relative path, listed, by hash)``."""
    out = []
    for split, entries in lists.items():
        for rel in entries:
            by_hash = hash_split(speaker_id(rel), validation_percent, test_percent)
            if by_hash != split:
                out.append((rel, split, by_hash))
    return out
