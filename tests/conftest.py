"""Shared fixtures and hooks (plain helpers are in tests/helpers): the real recordings in ../shared/data, read
in place (never copied, never downloaded), the tiny corpus, per-session caches, fault counts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers.corpus import TINY_WORDS, make_tiny_corpus

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("KWSNAS_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real recordings not found at {SHARED_DATA} (set KWSNAS_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def sc_test_set(shared_data: Path) -> Path:
    return shared_data / "speech_commands_v0.02_test"


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test session gets its own cache dir unless the caller pinned one."""
    if "KWSNAS_CACHE_DIR" not in os.environ:
        monkeypatch.setenv("KWSNAS_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "kwsnas-cache"))


@pytest.fixture()
def tiny_corpus(tmp_path: Path) -> Path:
    return make_tiny_corpus(tmp_path / "corpus", TINY_WORDS)


# ---- fault and fuzz counts: each reliability test reports what it injected, shown at the end of the run ----

_FAULT_COUNTS: list[str] = []
_FAULT_KEY = "kwsnas_fault_count"


@pytest.fixture()
def fault_counts(request: pytest.FixtureRequest):
    """``fault_counts(what, injected=, survived=, lost=)``: recorded and printed in pytest's summary. The line
    rides on the test's report (``user_properties``), so it reaches the summary from pytest-xdist workers too."""
    def record(what: str, *, injected: int, survived: int, lost: int) -> None:
        request.node.user_properties.append((_FAULT_KEY, f"{what}: {injected} injected, {survived} survived, "
                                                         f"{lost} lost"))
    return record


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call":
        _FAULT_COUNTS.extend(line for key, line in report.user_properties if key == _FAULT_KEY)


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    if _FAULT_COUNTS:
        terminalreporter.section("faults injected")
        for line in _FAULT_COUNTS:
            terminalreporter.write_line(line)
