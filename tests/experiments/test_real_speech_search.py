"""The real-speech experiment's choice of a pick: cross-validation over speaker folds (no training here)."""

from __future__ import annotations

import json

import pytest

from nas.data.layout import FOLD_RULES
from nas.experiments.real_speech_search import (
    RealSearchConfig,
    choose_pick,
    cross_validated,
    fold_jobs,
)
from search_spaces.presets import get_preset


def test_fold_jobs_train_each_other_fold_with_the_first_seed(tmp_path):
    cfg = RealSearchConfig(targets=("ds-cnn-s",), spaces=("ds-cnn",), controls=(), selection="cross-validation",
                           final_seeds=(7, 8, 9))
    jobs = fold_jobs(cfg, "ds-cnn-s-search-trial3", get_preset("ds-cnn-s").to_json(), tmp_path)
    assert [j.setting["split_rule"] for j in jobs] == list(FOLD_RULES[:-1])  # the last fold is the plain split
    assert {j.seed for j in jobs} == {7} and {j.epochs for j in jobs} == {cfg.final_epochs}
    assert len({json.dumps(j.key()) for j in jobs}) == len(jobs)  # each fold cached apart
    plain = {k: v for k, v in jobs[0].setting.items() if k != "split_rule"}
    assert plain == {k: v for k, v in cfg.setting().items() if k != "split_rule"}


def test_cross_validation_pools_every_fold_and_decides_the_pick():
    figs = {("a-fold0", 0): {"val_correct": [1, 1, 1, 1]}, ("a-fold1", 0): {"val_correct": [1, 0]},
            ("a-fold2", 0): {"val_correct": [1, 1, 1, 0]}, ("a", 0): {"val_correct": [0, 0]}}
    cv = cross_validated("a", 0, figs)
    assert cv["cv_accuracy"] == pytest.approx(8 / 12) and cv["cv_clips"] == 12
    assert cv["cv_by_fold"] == [1.0, 0.5, 0.75, 0.0] and cv["cv_fold_clips"] == [4, 2, 4, 2]
    # The pick follows the rule's own figure: validation of the final trainings, or the pooled folds.
    a = {"model": "a", "int8_val_mean": 0.90, "cv_accuracy": 0.86, "latency_ms": 10.0}
    b = {"model": "b", "int8_val_mean": 0.89, "cv_accuracy": 0.88, "latency_ms": 10.0}
    assert choose_pick([a, b], "validation") is a
    assert choose_pick([a, b], "cross-validation") is b
    assert choose_pick([b, {**b, "model": "c", "latency_ms": 5.0}], "cross-validation")["model"] == "c"


def test_cross_validation_needs_the_speaker_split():
    with pytest.raises(ValueError, match="speaker-60-20-20"):
        RealSearchConfig(targets=("ds-cnn-s",), spaces=("ds-cnn",), controls=(), selection="cross-validation",
                         split_rule="hash")
    with pytest.raises(ValueError, match="selection"):
        RealSearchConfig(targets=("ds-cnn-s",), spaces=("ds-cnn",), controls=(), selection="test")
