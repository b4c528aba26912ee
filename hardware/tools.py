"""Small helpers for the external tools the hardware side runs (compiler, emulator)."""

from __future__ import annotations

import functools
import subprocess

# the Debian packages behind each external tool (what `scripts/bootstrap.sh` installs)
DEBIAN_PACKAGES = {
    "arm-none-eabi-gcc": ("gcc-arm-none-eabi", "libnewlib-arm-none-eabi"),
    "qemu-system-arm": ("qemu-system-arm",),
}


def install_hint(tools: list[str]) -> str:
    """How to get ``tools`` (keys of :data:`DEBIAN_PACKAGES`), and what works without them."""
    pkgs = " ".join(p for t in tools for p in DEBIAN_PACKAGES[t])
    return (f"install the Debian package{'s' if ' ' in pkgs else ''} {pkgs} (sudo apt-get install -y {pkgs}, "
            "or `make setup`), or estimate without them: --evaluator analytic")


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
