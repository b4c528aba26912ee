"""Small helpers for the external tools the hardware side runs (compiler, emulator)."""

from __future__ import annotations

import functools
import subprocess


@functools.cache
def version_line(exe: str | None) -> str | None:
    """First line of ``exe --version`` (None when ``exe`` is None or does not answer); asked once per exe."""
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return out.splitlines()[0].strip() if out else None
