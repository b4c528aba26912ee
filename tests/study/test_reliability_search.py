"""Search-side faults: a trial that raises is recorded with its reason and the study goes on; a broken
setup stops after a few failures in a row instead of looping; an unwritable or full disk is refused
before any work; random ``kill -9``s lose no completed trial; two workers on the default SQLite storage
never see "database is locked"."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from tests.helpers.search import load_study, search_command, search_env


def _cfg(tmp_path: Path, corpus: Path, name: str, trials: int):
    from nas.study.config import load_config

    return load_config(None, name=name, data=str(corpus), evaluator="analytic", trials=trials, space="dnn", warm_start=False,
                       objectives=("error", "flash_bytes"), train_epochs=1, storage=None)


def test_failing_trials_are_recorded_with_their_reason_and_the_search_goes_on(
        tmp_path: Path, tiny_corpus: Path, monkeypatch: pytest.MonkeyPatch, fault_counts) -> None:
    import nas.study.candidate as cand
    from nas.study.runner import open_study, run_worker
    from search_spaces.spec import ArchSpec

    monkeypatch.chdir(tmp_path)
    real_evaluate, real_train = cand.evaluate_candidate, cand.train

    def nan_lr_train(spec, data, tcfg, out_dir=None, **kw):
        object.__setattr__(tcfg, "peak_lr", float("nan"))  # past validation: the loss itself turns NaN
        return real_train(spec, data, tcfg, out_dir=out_dir, **kw)

    def faulty(spec, ctx, number, out, **kw):
        if number == 0:
            raise MemoryError("injected: out of memory while training")
        if number == 1:
            bad = json.loads(spec.to_json())
            bad["layers"][0]["units"] = -3  # a malformed spec (as from a hand-edited file)
            ArchSpec.from_dict(bad)
        if number == 2:
            monkeypatch.setattr(cand, "train", nan_lr_train)
            try:
                return real_evaluate(spec, ctx, number, out, **kw)
            finally:
                monkeypatch.setattr(cand, "train", real_train)
        return real_evaluate(spec, ctx, number, out, **kw)

    monkeypatch.setattr(cand, "evaluate_candidate", faulty)
    cfg = _cfg(tmp_path, tiny_corpus, "faults", trials=2)
    study = open_study(cfg)
    run_worker(cfg, study)
    failed = {t.number: t.user_attrs.get("fail_reason", "") for t in study.trials if t.state == TrialState.FAIL}
    assert set(failed) == {0, 1, 2}
    assert failed[0].startswith("MemoryError: injected")
    assert failed[1].startswith("SpecError") and "layer 0" in failed[1]
    assert failed[2].startswith("TrainingDiverged") and "nan" in failed[2].lower()
    done = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(done) == 2 and all(t.user_attrs["trained"] for t in done)  # the study went on to its target
    fault_counts("search: raising trials", injected=3, survived=3, lost=0)


def test_a_broken_setup_stops_after_five_failures_in_a_row(tmp_path: Path, tiny_corpus: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import nas.study.candidate as cand
    from nas.cli import main as nas_main

    monkeypatch.chdir(tmp_path)

    def broken(spec, ctx, number, out, **kw):
        raise FileNotFoundError("arm-none-eabi-gcc: not found (injected)")

    monkeypatch.setattr(cand, "evaluate_candidate", broken)
    args = ["search", "--name", "broken", "--data", str(tiny_corpus), "--evaluator", "analytic", "--trials", "3",
            "--space", "dnn", "--epochs", "1", "--objectives", "error,flash_bytes", "--no-warm-start"]
    assert nas_main(args) == 2  # not an endless loop of failing trials
    study = optuna.load_study(study_name="broken", storage="sqlite:///runs/broken/study.db")
    assert [t.state for t in study.trials] == [TrialState.FAIL] * 5
    assert all("arm-none-eabi-gcc" in t.user_attrs["fail_reason"] for t in study.trials)


@pytest.mark.parametrize("how", ["read-only folder", "runs is a file"])
def test_unwritable_output_folder_is_refused_before_any_work(tmp_path: Path, tiny_corpus: Path, how: str,
                                                              monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture) -> None:
    import os

    from nas.cli import main as nas_main

    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    if how == "read-only folder":
        if os.geteuid() == 0:
            pytest.skip("root writes into read-only folders; the other case covers this machine")
        work.chmod(0o500)
    else:
        (work / "runs").write_text("not a folder")
    try:
        t0 = time.perf_counter()
        assert nas_main(["search", "--name", "x", "--data", str(tiny_corpus), "--evaluator", "analytic",
                         "--trials", "1", "--space", "dnn"]) == 2
        assert time.perf_counter() - t0 < 10  # refused up front, not after loading data
    finally:
        work.chmod(0o700)
    err = capsys.readouterr().err
    assert "cannot write the study folder runs/x" in err


def test_a_full_disk_is_refused_before_any_work(tmp_path: Path, tiny_corpus: Path,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture) -> None:
    import shutil

    from nas.cli import main as nas_main

    monkeypatch.chdir(tmp_path)
    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda p: real(p)._replace(free=5 * 2**20))  # 5 MB left
    assert nas_main(["search", "--name", "full", "--data", str(tiny_corpus), "--evaluator", "analytic",
                     "--trials", "1", "--space", "dnn"]) == 2
    err = capsys.readouterr().err
    assert "only 5 MB free" in err and "KWSNAS_MIN_FREE_MB" in err
    assert not (tmp_path / "runs/full/study.db").exists()


def test_five_random_kill_9s_lose_nothing_and_the_target_is_reached(tmp_path: Path, tiny_corpus: Path,
                                                                     fault_counts) -> None:
    """Kill the search at 5 random moments (start-up, training, quantizing, writing); after each kill the
    trials completed so far are all still there with the same values, and a last run reaches the target."""
    storage = "sqlite:///" + str(tmp_path / "runs/r/study.db")
    env = search_env(tmp_path)
    cmd = search_command(tmp_path, tiny_corpus, "r", 4, storage)
    rng = random.Random(8)
    seen: dict[int, tuple[float, ...]] = {}
    lost = mid_trial = 0
    for _ in range(5):
        proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(2.0, 9.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        try:
            trials = load_study(storage, "r").trials
        except KeyError:  # killed before the study record was written (the database file may exist)
            continue
        mid_trial += any(t.state == TrialState.RUNNING for t in trials)
        now = {t.number: tuple(t.values) for t in trials if t.state == TrialState.COMPLETE}
        lost += sum(now.get(n) != v for n, v in seen.items())
        seen = now
    time.sleep(5)  # past the grace period: the last killed trial is stale and gets retried
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, timeout=400)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    study = load_study(storage, "r")
    final = {t.number: tuple(t.values) for t in study.trials if t.state == TrialState.COMPLETE}
    lost += sum(final.get(n) != v for n, v in seen.items())
    assert lost == 0
    assert sum(bool(t.user_attrs.get("trained")) for t in study.trials if t.state == TrialState.COMPLETE) >= 4
    assert not [t for t in study.trials if t.state == TrialState.RUNNING]
    fault_counts(f"search: random kill -9 ({mid_trial} of them mid-trial)", injected=5, survived=5, lost=lost)


def test_two_workers_on_the_default_sqlite_storage_never_see_database_is_locked(tmp_path: Path,
                                                                                 tiny_corpus: Path) -> None:
    cmd = search_command(tmp_path, tiny_corpus, "s", 3, None, workers=2)
    done = subprocess.run(cmd, cwd=tmp_path, env=search_env(tmp_path), capture_output=True, timeout=400)
    stderr = done.stderr.decode()
    assert done.returncode == 0, stderr[-2000:]
    assert "database is locked" not in stderr
    study = load_study("sqlite:///" + str(tmp_path / "runs/s/study.db"), "s")
    assert not [t for t in study.trials if t.state == TrialState.FAIL]
    assert len([t for t in study.trials if t.state == TrialState.COMPLETE]) >= 3
