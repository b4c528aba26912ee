"""Where things are: the repository root and the test data kept in ``tests/fixtures``."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
