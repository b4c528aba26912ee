"""Who may import whom: the CLI is a thin shell nothing else depends on, and `hardware` stands alone
(usable on any .tflite without the NAS). The packages' rules are import-linter contracts in
pyproject.toml; the scripts under experiments/ (not a package) are checked here directly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.helpers.imports import module_imports
from tests.helpers.paths import REPO


def _files(*folders: str) -> list[Path]:
    return [p for f in folders for p in sorted((REPO / f).rglob("*.py"))]


def test_nothing_outside_the_cli_imports_it() -> None:
    bad = [f"{p.relative_to(REPO)}: {m}" for p in _files("nas", "search_spaces", "hardware", "experiments")
           if "cli" not in p.relative_to(REPO).parts and p.name != "__main__.py" for m in module_imports(p) if m == "nas.cli" or m.startswith("nas.cli.")]
    assert not bad, bad


def test_the_import_contracts_hold() -> None:
    """pyproject.toml's import-linter contracts: `hardware` imports neither `nas` nor `search_spaces`,
    `search_spaces` neither `nas` nor `hardware`, only the CLI imports the CLI, private modules stay in
    their package, sibling modules import each other without cycles."""
    res = subprocess.run([sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command; "
                          "sys.exit(lint_imports_command())", "--no-cache", str(REPO / "pyproject.toml")],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0 and "0 broken" in res.stdout, res.stdout[-3000:] + res.stderr[-2000:]
