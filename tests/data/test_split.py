"""The split rule agrees with the official lists, and the speaker split of the test set is disjoint."""

from __future__ import annotations

from collections import Counter

import pytest

from nas.data.layout import FOLD_RULES, scan_corpus
from nas.data.split import (
    TEST,
    TRAIN,
    VALIDATION,
    hash_split,
    read_split_list,
    speaker_id,
    split_lists_disagreements,
)


@pytest.mark.parametrize("version,n_val,n_test", [("v0.01", 6798, 6835), ("v0.02", 9981, 11005)])
def test_hash_rule_agrees_with_official_lists(shared_data, version, n_val, n_test):
    lists = {
        VALIDATION: read_split_list(shared_data / "split_lists" / version / "validation_list.txt"),
        TEST: read_split_list(shared_data / "split_lists" / version / "testing_list.txt"),
    }
    assert (len(lists[VALIDATION]), len(lists[TEST])) == (n_val, n_test)
    assert split_lists_disagreements(lists) == []


def test_speaker_id_forms():
    assert speaker_id("0a7c2a8d_nohash_0.wav") == "0a7c2a8d"
    assert speaker_id("yes/0A7C2A8D_nohash_3.wav") == "0a7c2a8d"
    assert speaker_id("backward_0c540988_nohash_0.wav.wav") == "0c540988"  # test-set _unknown_ prefix
    assert speaker_id("1024.wav") == "1024"


def test_hash_split_is_per_speaker_and_roughly_10_10_80():
    speakers = [f"{i:08x}" for i in range(20000)]
    counts = Counter(hash_split(s) for s in speakers)
    assert abs(counts[VALIDATION] / 20000 - 0.10) < 0.01
    assert abs(counts[TEST] / 20000 - 0.10) < 0.01
    assert all(hash_split(s) == hash_split(s) for s in speakers[:100])


def test_test_set_speaker_split_is_disjoint_60_20_20(sc_test_set):
    corpus = scan_corpus(sc_test_set)
    by_split: dict[str, set[str]] = {TRAIN: set(), VALIDATION: set(), TEST: set()}
    for clip in corpus.clips:
        if clip.word != "_silence_":
            by_split[corpus.split_of(clip)].add(clip.speaker)
    assert not (by_split[TRAIN] & by_split[VALIDATION])
    assert not (by_split[TRAIN] & by_split[TEST])
    assert not (by_split[VALIDATION] & by_split[TEST])
    n = sum(len(s) for s in by_split.values())
    assert n == 239
    # Every speaker of the official test set hashes into [10, 20): the split rescales that band.
    assert 0.5 < len(by_split[TRAIN]) / n < 0.7
    assert 0.1 < len(by_split[VALIDATION]) / n < 0.3
    assert 0.1 < len(by_split[TEST]) / n < 0.3
    silence = Counter(corpus.split_of(c) for c in corpus.clips if c.folder == "_silence_")
    assert silence == {TRAIN: 260, VALIDATION: 68, TEST: 80}  # file number modulo 5


def test_speaker_folds_partition_train_and_validation_and_keep_the_test_speakers(sc_test_set):
    """Cross-validating finalists relies on: every train + validation clip is validated in exactly one fold,
    the test clips never move, and fold 3 is the plain split (its models are the plain final trainings)."""
    corpus = scan_corpus(sc_test_set)
    plain = {c.rel_path: corpus.split_of(c, "speaker-60-20-20") for c in corpus.clips}
    validated: Counter = Counter()
    for f, rule in enumerate(FOLD_RULES):
        folds = {c.rel_path: corpus.split_of(c, rule) for c in corpus.clips}
        assert {p for p, s in folds.items() if s == TEST} == {p for p, s in plain.items() if s == TEST}
        validated.update(p for p, s in folds.items() if s == VALIDATION)
        speakers = {s: {c.speaker for c in corpus.clips if folds[c.rel_path] == s and c.word != "_silence_"}
                    for s in (TRAIN, VALIDATION)}
        assert not speakers[TRAIN] & speakers[VALIDATION], f"fold {f} is not speaker-disjoint"
        # ~48 speakers per band and 4-34 clips per speaker: fold sizes vary (727 .. 1,482 clips here)
        assert 0.1 < sum(s == VALIDATION for s in folds.values()) / len(folds) < 0.35
    assert folds == plain  # the last fold is the plain split
    assert set(validated) == {p for p, s in plain.items() if s != TEST} and set(validated.values()) == {1}
