"""Successive halving across a study's trials, and the reproducibility of a trial's result."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from nas.study.fidelity import RUNG_ATTR, Halving, keeps_going, rung_epochs

optuna.logging.set_verbosity(optuna.logging.WARNING)


def test_rungs() -> None:
    assert rung_epochs(5, 40, 3) == (5, 15)
    assert rung_epochs(4, 36, 3) == (4, 12)
    assert rung_epochs(2, 3, 2) == (2,)
    assert rung_epochs(None, 40, 3) == ()


def test_the_best_third_goes_on() -> None:
    assert keeps_going(0.5, [], [], 3)  # the first at a rung always goes on
    assert not keeps_going(0.5, [], [(0.6, [])], 3)  # 2 there: only the best one
    assert keeps_going(0.7, [], [(0.6, []), (0.5, [])], 3)
    peers = [(0.1 * i, []) for i in range(8)]  # 9 there: the best 3
    assert keeps_going(0.55, [], peers, 3) and not keeps_going(0.45, [], peers, 3)
    assert keeps_going(0.7, [], [(0.7, [])], 2)  # a tie goes to the one asking


def test_with_several_objectives_a_cheap_candidate_can_go_on() -> None:
    """Ranked as NSGA-II ranks (front, then crowding distance): the cheapest candidate of the first front is
    one of its extremes, and goes on although it is the least accurate."""
    peers = [(0.9, [100.0]), (0.8, [90.0]), (0.85, [95.0]), (0.7, [120.0]), (0.6, [130.0])]
    assert keeps_going(0.5, [10.0], peers, 3)  # 6 there, keep 2: the extremes of front {0.9, 0.85, 0.8, 0.5}
    assert not keeps_going(0.5, [200.0], peers, 3)  # dominated by all: the last front
    assert not keeps_going(0.82, [92.0], peers, 3)  # on the first front, but in its crowded middle


def test_halving_hook_records_rungs_and_reports_in_single_objective_studies() -> None:
    study = optuna.create_study()
    for acc in (0.9, 0.8):
        t = study.ask()
        t.set_user_attr(RUNG_ATTR, {"2": acc})
        study.tell(t, 1 - acc)
    trial = study.ask()
    hook = Halving(study, trial, (2, 6), 3, ("error",), {})
    assert hook({"epoch": 1.0, "best_val_accuracy": 0.1}) is False  # not a rung
    assert hook({"epoch": 2.0, "best_val_accuracy": 0.85}) is True  # 3 there, keep 1: 0.9 is better
    assert trial.user_attrs[RUNG_ATTR] == {"2": 0.85} and hook.stopped_at == 2
    assert study._storage.get_trial(trial._trial_id).intermediate_values == {2: pytest.approx(0.15)}


def _trials(name: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=name, storage=f"sqlite:///runs/{name}/study.db").get_trials()


def test_budgeted_search_with_halving_and_warm_start(tmp_path: Path, tiny_corpus: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A real tiny study: the fitting presets run first, weak candidates stop at the first rung (recorded
    as pruned, trained, never quantized), the rest train to the full budget; the target counts both."""
    from nas.cli import main as nas_main

    monkeypatch.chdir(tmp_path)
    args = ["search", "--name", "halving", "--data", str(tiny_corpus), "--evaluator", "analytic", "--trials", "6",
            "--space", "dnn", "--objectives", "error", "--sampler", "evolution", "--epochs", "3",
            "--min-epochs", "1", "--budget", "flash_bytes=200000"]
    assert nas_main(args) == 0
    trials = _trials("halving")
    seeded = [t for t in trials if "seeded_from" in t.user_attrs]
    sources = [t.user_attrs["seeded_from"] for t in seeded]
    assert sources[0] == "dnn-s" and seeded[0].number == 0  # the preset that fits runs first
    assert "dnn-m" not in sources and "dnn-l" not in sources  # they break the flash budget as they are...
    assert len(sources) > 1 and all(" x" in s for s in sources[1:])  # ...but copies scaled to it are queued
    assert all(t.user_attrs["flash_bytes"] <= 200_000 for t in seeded)
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    done = [t for t in trials if t.state == TrialState.COMPLETE and t.user_attrs["trained"]]
    assert pruned and done and len(pruned) + len(done) == 6
    for t in pruned:
        assert t.user_attrs["stopped_at_epoch"] == 1.0 and set(t.user_attrs[RUNG_ATTR]) == {"1"}
        assert "tflite" not in t.user_attrs and t.user_attrs["trained"]
    for t in done:
        assert t.user_attrs["epochs_trained"] == 3.0 and "tflite" in t.user_attrs
    assert nas_main(["pareto", "--study", "halving"]) == 0


def test_a_trial_computes_the_same_on_every_run(tmp_path: Path, tiny_corpus: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Same command and seed, fresh studies: the same two trials with the same figures (no wall-clock
    budget anywhere in them)."""
    from nas.cli import main as nas_main

    monkeypatch.chdir(tmp_path)
    for name in ("a", "b"):
        assert nas_main(["search", "--name", name, "--data", str(tiny_corpus), "--evaluator", "analytic",
                         "--trials", "2", "--space", "dnn", "--epochs", "2", "--no-warm-start",
                         "--objectives", "error,flash_bytes"]) == 0
    keys = ("spec_digest", "float_val_accuracy", "int8_val_accuracy", "int8_test_accuracy", "flash_bytes", "steps")
    a, b = ([(t.params, [t.user_attrs[k] for k in keys], t.values) for t in _trials(n)] for n in ("a", "b"))
    assert len(a) == 2 and a == b
