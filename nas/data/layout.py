"""Scanning Speech Commands-style corpora on disk.

Two layouts are recognised:

* ``full``: the v0.01 / v0.02 datasets (and the synthesised default corpus): one folder per word
  holding ``<speaker>_nohash_<n>.wav``, a ``_background_noise_`` folder, and optionally the official
  ``validation_list.txt`` / ``testing_list.txt``.
* ``test-set``: the official 12-class test set (``speech_commands_test_set_v0.02``): keyword folders plus
  ``_silence_`` (numbered files) and ``_unknown_`` (``<word>_<speaker>_nohash_<n>.wav.wav``).

Scanning only lists files; nothing is decoded. Split assignment lives here too because it depends on the
layout (official lists, the hashing rule, or the speaker-disjoint 60/20/20 split of the test set).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from nas.data.labels import BACKGROUND_NOISE_DIR, SILENCE, UNKNOWN
from nas.data.split import (
    OFFICIAL_TEST_BAND,
    SPEAKER_FOLDS,
    TEST,
    TRAIN,
    VALIDATION,
    hash_split,
    read_split_list,
    speaker_id,
    speaker_split_60_20_20,
)

FULL, TEST_SET = "full", "test-set"

# Split rules: "standard" = the official lists when the corpus has them, else the hashing rule (10/10);
# "hash" = always the hashing rule; "speaker-60-20-20" = speaker-disjoint 60/20/20 by the same hash,
# used to train and test on the official test set alone (../shared/data/README.md).
# "utterance" hashes each clip's path instead of its speaker (80/10/10): for corpora with too few
# speakers for a speaker-disjoint split; the same speaker's clips then appear in several splits.
# "speaker-60-20-20-fold<f>": the same test speakers, validation moved to band f of the train + validation
# speakers (`split.SPEAKER_FOLDS` folds; fold 3 is "speaker-60-20-20"), for cross-validating finalists.
FOLD_RULE_PREFIX = "speaker-60-20-20-fold"
FOLD_RULES = tuple(f"{FOLD_RULE_PREFIX}{f}" for f in range(SPEAKER_FOLDS))
SPLIT_RULES = ("standard", "hash", "speaker-60-20-20", "utterance", *FOLD_RULES)
# What to do when a split comes out empty (said by `nas data info` and by a refused training).
SPLIT_FIXES = ("list clips in validation_list.txt / testing_list.txt at the corpus root (one relative path per "
               "line, e.g. yes/alice_nohash_0.wav), or use --split-rule utterance (not speaker-disjoint)")

_UNKNOWN_NAME = re.compile(r"^(?P<word>[A-Za-z]+)_(?P<rest>[0-9a-fA-F]{8}_nohash_.*)$")
_LIST_FILES = {VALIDATION: "validation_list.txt", TEST: "testing_list.txt"}


class DataError(ValueError):
    """A dataset that cannot be used as given; the message names the path and the cause."""


@dataclass(frozen=True)
class ClipRef:
    """One clip file: where it is and what it says. ``word`` is ``_silence_`` for silence recordings."""

    rel_path: str  # relative to the corpus root, forward slashes
    folder: str  # the folder it sits in
    word: str  # the spoken word (the ``_unknown_`` prefix in the test-set layout)
    speaker: str  # 8-hex speaker id, or the file stem for silence recordings


@dataclass(frozen=True)
class Corpus:
    root: Path
    layout: str
    clips: tuple[ClipRef, ...]
    noise_files: tuple[Path, ...] = ()
    split_lists: dict[str, frozenset[str]] | None = field(default=None, compare=False)

    @property
    def words(self) -> tuple[str, ...]:
        return tuple(sorted({c.word for c in self.clips}))

    def default_split_rule(self) -> str:
        return "speaker-60-20-20" if self.layout == TEST_SET else "standard"

    def split_of(self, clip: ClipRef, rule: str | None = None) -> str:
        """``train``, ``validation`` or ``test`` for a clip under a split rule (default: the layout's)."""
        rule = rule or self.default_split_rule()
        if rule not in SPLIT_RULES:
            raise DataError(f"unknown split rule {rule!r}; known: {', '.join(SPLIT_RULES)}")
        fold = int(rule[len(FOLD_RULE_PREFIX):]) if rule.startswith(FOLD_RULE_PREFIX) else None
        if clip.word == SILENCE and clip.folder == SILENCE:
            # Numbered silence recordings have no speaker: file number modulo 5 (0-2 train, 3 val, 4 test;
            # under a fold rule, residue f is fold f's validation, so fold 3 is the plain split again).
            residue = int(re.sub(r"\D", "", clip.speaker) or 0) % 5
            if residue == 4:
                return TEST
            return VALIDATION if residue == (SPEAKER_FOLDS - 1 if fold is None else fold) else TRAIN
        if rule == "utterance":
            return hash_split(clip.rel_path)
        if rule == "speaker-60-20-20" or fold is not None:
            band = OFFICIAL_TEST_BAND if self.layout == TEST_SET else (0.0, 100.0)
            return speaker_split_60_20_20(clip.speaker, band, fold)
        if rule == "standard" and self.split_lists is not None:
            for split, entries in self.split_lists.items():
                if clip.rel_path in entries:
                    return split
            return TRAIN
        return hash_split(clip.speaker)

    def clips_in(self, split: str, rule: str | None = None) -> list[ClipRef]:
        return [c for c in self.clips if self.split_of(c, rule) == split]


def _wav_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.name.lower().endswith(".wav"))


def scan_corpus(root: Path | str, noise_dir: Path | str | None = None) -> Corpus:
    """List the clips of a corpus at ``root`` (either layout) and its background-noise files.

    ``noise_dir`` overrides where noise is read from (the test-set layout has none of its own).
    Raises `DataError` for a missing path or a folder that holds no clips in a known layout.
    """
    root = Path(root).expanduser()
    if not root.exists():
        raise DataError(f"{root}: no such dataset directory")
    if not root.is_dir():
        raise DataError(f"{root}: not a directory (expected a Speech Commands-style folder of word folders)")
    subdirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    names = {p.name for p in subdirs}
    layout = TEST_SET if {SILENCE, UNKNOWN} <= names else FULL

    clips: list[ClipRef] = []
    for folder in subdirs:
        if folder.name == BACKGROUND_NOISE_DIR:
            continue
        for path in _wav_files(folder):
            rel = f"{folder.name}/{path.name}"
            if folder.name == SILENCE:
                clips.append(ClipRef(rel, SILENCE, SILENCE, path.name.split(".")[0]))
            elif folder.name == UNKNOWN:
                m = _UNKNOWN_NAME.match(path.name)
                word = m.group("word").lower() if m else UNKNOWN
                clips.append(ClipRef(rel, UNKNOWN, word, speaker_id(path.name)))
            elif folder.name.startswith("_"):
                continue
            else:
                clips.append(ClipRef(rel, folder.name, folder.name.lower(), speaker_id(path.name)))
    if not clips:
        raise DataError(
            f"{root}: no .wav clips found in a Speech Commands layout "
            "(expected one folder per word, e.g. yes/0a7c2a8d_nohash_0.wav)"
        )

    noise_root = Path(noise_dir).expanduser() if noise_dir is not None else root / BACKGROUND_NOISE_DIR
    if noise_dir is not None and not noise_root.is_dir():
        raise DataError(f"{noise_root}: no such background-noise directory")
    noise = tuple(_wav_files(noise_root)) if noise_root.is_dir() else ()

    lists = None
    if all((root / name).is_file() for name in _LIST_FILES.values()):
        lists = {split: frozenset(read_split_list(root / name)) for split, name in _LIST_FILES.items()}
    return Corpus(root=root, layout=layout, clips=tuple(clips), noise_files=noise, split_lists=lists)
