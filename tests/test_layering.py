"""Who may import whom: the CLI is a thin shell nothing else depends on, and `hardware` stands alone
(usable on any .tflite without the NAS)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def module_imports(path: Path) -> set[str]:
    """The absolute module names ``path`` imports (``import a.b``, ``from a.b import c``: ``a.b``)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return out


def _files(*folders: str) -> list[Path]:
    return [p for f in folders for p in sorted((REPO / f).rglob("*.py"))]


def test_nothing_outside_the_cli_imports_it() -> None:
    bad = [f"{p.relative_to(REPO)}: {m}" for p in _files("nas", "search_spaces", "hardware", "experiments")
           if "cli" not in p.relative_to(REPO).parts and p.name != "__main__.py" for m in module_imports(p) if m == "nas.cli" or m.startswith("nas.cli.")]
    assert not bad, bad


@pytest.mark.parametrize("package", ["nas", "search_spaces"])
def test_hardware_does_not_import_the_nas(package: str) -> None:
    bad = [f"{p.relative_to(REPO)}: {m}" for p in _files("hardware") for m in module_imports(p)
           if m == package or m.startswith(f"{package}.")]
    assert not bad, bad
