"""Putting firmware on a real board: pyOCD (the optional ``boards`` extra) or a command the user gives.

Both are *programmers*: ``programmer(model_bytes, image, board)``, the hook
:class:`~hardware.evaluators.SerialBoardEvaluator` calls before talking to the board.

    from hardware.flashing import make_programmer
    prog = make_programmer("pyocd")                                   # the board's pyOCD target name
    prog = make_programmer("st-flash --reset write {bin} 0x08000000") # any tool: {elf} {bin} {hex}

A command is split like a shell would (``shlex``) but never run through one: each placeholder becomes
exactly one argument, so no path or model name can inject anything.
"""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from hardware.boards import Board

__all__ = ["CommandProgrammer", "FlashError", "PyOCDProgrammer", "make_programmer"]

PLACEHOLDERS = ("{elf}", "{bin}", "{hex}")
FLASH_TIMEOUT_S = 120.0  # a 2 MiB part at ST-LINK speed takes ~30 s; a hung tool must not hang a search


class FlashError(RuntimeError):
    """Programming the board failed; the message names the tool and its output."""


class Programmer(Protocol):
    def __call__(self, model_bytes: bytes, image: Any, board: Board) -> None: ...


def _image_file(image: Any, suffix: str) -> Path:
    if image is None:
        raise FlashError("no firmware image to flash: the toolchain (arm-none-eabi-gcc) is needed to build one")
    elf = Path(image.elf_path)
    path = elf.with_suffix(suffix)
    if suffix != ".elf" and not path.is_file():
        _objcopy(elf, path, {".bin": "binary", ".hex": "ihex"}[suffix])
    return path


def _objcopy(elf: Path, out: Path, fmt: str) -> None:
    cmd = ["arm-none-eabi-objcopy", "-O", fmt, str(elf), str(out)]
    try:
        subprocess.run(cmd, check=True, capture_output=True, timeout=60)
    except FileNotFoundError:
        raise FlashError("arm-none-eabi-objcopy not found (Debian: apt-get install binutils-arm-none-eabi)") from None
    except subprocess.CalledProcessError as e:
        raise FlashError(f"arm-none-eabi-objcopy -O {fmt} {elf}: {e.stderr.decode(errors='replace')[-500:]}") from None


class CommandProgrammer:
    """Runs the user's flashing command with ``{elf}``, ``{bin}``, ``{hex}`` replaced by the image's paths."""

    def __init__(self, command: str | Sequence[str], timeout_s: float = FLASH_TIMEOUT_S) -> None:
        self.argv = shlex.split(command) if isinstance(command, str) else list(command)
        if not self.argv:
            raise ValueError("empty flashing command")
        if not any(p in a for a in self.argv for p in PLACEHOLDERS):
            raise ValueError(f"flashing command {shlex.join(self.argv)!r} names no image: use {{elf}}, "
                             "{bin} or {hex} where the firmware file goes")
        self.timeout_s = timeout_s

    def __call__(self, model_bytes: bytes, image: Any, board: Board) -> None:
        argv = []
        for arg in self.argv:
            for p in PLACEHOLDERS:
                if p in arg:
                    arg = arg.replace(p, str(_image_file(image, "." + p[1:-1])))
            argv.append(arg)
        try:
            done = subprocess.run(argv, capture_output=True, timeout=self.timeout_s)
        except FileNotFoundError:
            raise FlashError(f"flashing tool {argv[0]!r} not found on PATH") from None
        except subprocess.TimeoutExpired:
            raise FlashError(f"{shlex.join(argv)} did not finish in {self.timeout_s:.0f} s") from None
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).decode(errors="replace").strip()[-800:]
            raise FlashError(f"{shlex.join(argv)} exited with {done.returncode}: {tail}")


class PyOCDProgrammer:
    """Flashes the ELF through any CMSIS-DAP / ST-LINK / J-Link probe with pyOCD, then resets the part.

    ``target``: pyOCD's target name (default: the board table's ``pyocd_target``; ST parts need their
    CMSIS pack once: ``pyocd pack install <target>``). ``probe``: part of the probe's unique ID when
    several are plugged in.
    """

    def __init__(self, target: str | None = None, probe: str | None = None) -> None:
        self.target, self.probe = target, probe

    def __call__(self, model_bytes: bytes, image: Any, board: Board) -> None:
        try:
            from pyocd.core.helpers import ConnectHelper
            from pyocd.flash.file_programmer import FileProgrammer
        except ImportError:
            raise FlashError("pyOCD is not installed: pip install 'kwsnas[boards]' (or pass --flash-cmd with "
                             "your own tool, e.g. \"st-flash --reset write {bin} 0x08000000\")") from None
        target = self.target or board.pyocd_target
        if not target:
            raise FlashError(f"board {board.name} has no pyocd_target in the board table: pass one")
        elf = _image_file(image, ".elf")
        session = ConnectHelper.session_with_chosen_probe(blocking=False, return_first=True, unique_id=self.probe,
                                                          target_override=target)
        if session is None:
            raise FlashError("no debug probe found (is the board plugged in, and is its ST-LINK/CMSIS-DAP "
                             "visible to this user?)" + (f" matching {self.probe!r}" if self.probe else ""))
        try:
            with session:
                FileProgrammer(session).program(str(elf))
                session.target.reset()
        except Exception as e:  # pyOCD raises its own hierarchy (transfer, probe, target errors)
            raise FlashError(f"pyOCD could not program {board.name} ({target}) with {elf}: {e}") from e


def make_programmer(spec: str | None, *, probe: str | None = None) -> Programmer | None:
    """``None`` (the board is already flashed), ``"pyocd"`` or ``"pyocd:TARGET"``, or a command line."""
    if not spec:
        return None
    if spec == "pyocd" or spec.startswith("pyocd:"):
        return PyOCDProgrammer(spec.partition(":")[2] or None, probe)
    return CommandProgrammer(spec)
