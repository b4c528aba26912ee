"""Shared fixtures: the real recordings in ../shared/data, read in place (never copied, never downloaded)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

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
