"""``nas search`` as a child process (short heartbeats and grace periods, so kills are noticed quickly) and
the studies it writes."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import optuna

from tests.helpers.paths import REPO


def search_env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(KWSNAS_HEARTBEAT_S="1", KWSNAS_GRACE_S="4", KWSNAS_NO_REEXEC="1", PYTHONPATH=str(REPO),
               XLA_FLAGS="--xla_cpu_multi_thread_eigen=false")
    return env


def search_command(tmp_path: Path, corpus: Path, name: str, trials: int, storage: str | None = None,
                   workers: int = 1) -> list[str]:
    cmd = [sys.executable, "-m", "nas.cli", "search", "--name", name, "--data", str(corpus), "--evaluator",
           "analytic", "--trials", str(trials), "--space", "dnn", "--epochs", "1", "--objectives", "error,flash_bytes",
           "--no-warm-start",
           "--workers", str(workers)]
    return cmd + (["--storage", storage] if storage else [])


def load_study(storage: str, name: str) -> optuna.Study:
    from nas.study.runner import make_storage

    return optuna.load_study(study_name=name, storage=make_storage(storage))
