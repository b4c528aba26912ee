"""A search survives ``kill -9``: completed trials stay, the killed trial is failed and retried, and the
target number of completed trials is reached; two workers on one storage lose and duplicate nothing."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from tests.helpers.search import load_study, search_command, search_env


def _states(storage: str, name: str) -> dict[TrialState, int]:
    study = load_study(storage, name)
    out: dict[TrialState, int] = {}
    for t in study.get_trials(deepcopy=False):
        out[t.state] = out.get(t.state, 0) + 1
    return out


@pytest.mark.parametrize("backend", ["sqlite", "journal"])
def test_kill_9_then_resume_reaches_the_target(tmp_path: Path, tiny_corpus: Path, backend: str) -> None:
    storage = ("sqlite:///" + str(tmp_path / "runs/k/study.db")) if backend == "sqlite" else \
        f"journal:{tmp_path / 'runs/k/journal.log'}"
    env = search_env(tmp_path)
    cmd = search_command(tmp_path, tiny_corpus, "k", 3, storage)
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    killed_while_running = False
    second = tmp_path / "runs" / "k" / "trials" / "00001"  # appears when trial 1 trains: trial 0 is complete
    while time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
        if second.exists():
            proc.send_signal(signal.SIGKILL)
            killed_while_running = True
            break
    proc.wait(30)
    assert killed_while_running, proc.stderr.read().decode()[-2000:]
    before = _states(storage, "k")
    assert before.get(TrialState.RUNNING) == 1
    if backend == "sqlite":
        time.sleep(5)  # past the grace period: the dead worker's trial is stale
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    after = _states(storage, "k")
    study = load_study(storage, "k")
    assert after.get(TrialState.COMPLETE) == 3 and after.get(TrialState.RUNNING, 0) == 0
    assert after.get(TrialState.FAIL, 0) >= 1  # the killed trial, recorded as failed ...
    failed = [t for t in study.trials if t.state == TrialState.FAIL]
    retried = [t for t in study.trials if t.state == TrialState.COMPLETE and
               t.params == failed[0].params and t.number > failed[0].number]
    assert retried, "the killed trial's configuration was not retried"  # ... and its configuration retried


def test_two_workers_share_one_journal(tmp_path: Path, tiny_corpus: Path) -> None:
    storage = f"journal:{tmp_path / 'runs/w/journal.log'}"
    cmd = search_command(tmp_path, tiny_corpus, "w", 4, storage, workers=2)
    done = subprocess.run(cmd, cwd=tmp_path, env=search_env(tmp_path), capture_output=True, timeout=400)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    study = optuna.load_study(study_name="w", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "runs/w/journal.log"))))
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    numbers = [t.number for t in study.trials]
    assert len(numbers) == len(set(numbers))  # nothing duplicated
    # the workers stop at the target; one may finish a trial it had already started
    assert 4 <= len(complete) <= 5 and all(t.user_attrs.get("trained") for t in complete)


@pytest.fixture(scope="module")
def postgres(tmp_path_factory: pytest.TempPathFactory):
    pytest.importorskip("psycopg2")
    from tests.helpers.postgres import PostgresServer

    server = PostgresServer()
    why = server.start()
    if why:
        print(f"PostgreSQL test skipped: {why}")
        pytest.skip(why)
    yield server.url
    server.stop()


def test_two_workers_share_a_real_postgresql_server(tmp_path: Path, tiny_corpus: Path, postgres: str) -> None:
    cmd = search_command(tmp_path, tiny_corpus, "pg", 4, postgres, workers=2)
    done = subprocess.run(cmd, cwd=tmp_path, env=search_env(tmp_path), capture_output=True, timeout=400)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    study = optuna.load_study(study_name="pg", storage=postgres)
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len({t.number for t in study.trials}) == len(study.trials)
    assert 4 <= len(complete) <= 5 and all(t.user_attrs.get("trained") for t in complete)
    assert not [t for t in study.trials if t.state == TrialState.RUNNING]


@pytest.fixture(scope="module")
def redis_url():
    """A private Redis server on 127.0.0.1 (no persistence), for the Redis journal storage."""
    import shutil
    import socket

    pytest.importorskip("redis")
    exe = shutil.which("redis-server")
    if exe is None:
        print("Redis test skipped: redis-server is not installed (Debian: apt-get install redis-server)")
        pytest.skip("redis-server is not installed")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import redis

    client = redis.Redis(host="127.0.0.1", port=port)
    deadline = time.time() + 20
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if time.time() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.skip("redis-server did not start")
            time.sleep(0.1)
    yield f"redis://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(10)


def test_two_workers_share_a_redis_journal(tmp_path: Path, tiny_corpus: Path, redis_url: str) -> None:
    cmd = search_command(tmp_path, tiny_corpus, "rd", 4, redis_url, workers=2)
    done = subprocess.run(cmd, cwd=tmp_path, env=search_env(tmp_path), capture_output=True, timeout=400)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    study = load_study(redis_url, "rd")
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len({t.number for t in study.trials}) == len(study.trials)
    assert 4 <= len(complete) <= 5 and all(t.user_attrs.get("trained") for t in complete)
    assert not [t for t in study.trials if t.state == TrialState.RUNNING]
