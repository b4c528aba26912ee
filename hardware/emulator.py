"""QEMU as a board: one firmware ELF in ``qemu-system-arm``, its UART on a loopback TCP port.

    with Emulator(image.elf_path, get_board("mps2-an386")) as emu:
        client = Client(emu.link)
        ...
    emu.exit_code   # the firmware's semihosting exit code (None if it had to be killed)

The QEMU command line, flag by flag:

- ``-machine <m> -cpu <core>``: the board's FPGA image and core; QEMU enforces the core's
  instruction set (an M4 image faults on the M3 machine).
- ``-nographic -monitor none``: no display, and no monitor on stdio that could eat bytes.
- ``-icount shift=N``: every instruction advances virtual time by 2^N ns, so SysTick counts
  instructions deterministically (``shift=auto`` is not deterministic).
- ``-semihosting-config enable=on,target=native``: SYS_EXIT_EXTENDED returns the firmware's exit
  code as QEMU's (QEMU itself returns 0 on SIGTERM).
- ``-chardev socket,...,server=on,wait=on,nodelay=on -serial chardev:u0``: the UART on a TCP
  port; the guest starts only once we are connected (``wait=off`` loses the first bytes) and
  without Nagle (``nodelay=on``) a round trip costs ~45 ms instead of well under 1 ms.

Every path out of :class:`Emulator` (normal, exception, interpreter exit) ends the QEMU process
and reaps it; on Linux the child is also told to die with its parent.
"""

from __future__ import annotations

import atexit
import ctypes
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import weakref
from pathlib import Path

from hardware.boards import Board, get_board
from hardware.link import Link
from hardware.tools import install_hint, version_line

__all__ = ["Emulator", "EmulatorError", "have_qemu", "qemu_command", "qemu_version"]

log = logging.getLogger(__name__)

_QEMU = os.environ.get("KWSNAS_QEMU", "qemu-system-arm")
_PORT_TRIES = 5          # a chosen free port can be taken before QEMU binds it: try another
_LIVE: weakref.WeakSet[Emulator] = weakref.WeakSet()
_ANNOUNCE = re.compile(r"waiting for connection on: \S*tcp:127\.0\.0\.1:(\d+)")


class EmulatorError(RuntimeError):
    """QEMU could not be started or connected to; the message includes its stderr."""


def have_qemu() -> bool:
    return shutil.which(_QEMU) is not None


def qemu_version() -> str | None:
    """First line of ``qemu-system-arm --version`` (None when QEMU is missing); asked once."""
    return version_line(shutil.which(_QEMU))




def qemu_command(elf: Path | str, board: Board, port: int) -> list[str]:
    """The command line (port 0: QEMU picks a free port and prints it)."""
    if not board.emulated:
        raise EmulatorError(f"board {board.name} is not emulated (link kind {board.link_kind!r})")
    return [
        shutil.which(_QEMU) or _QEMU, "-machine", board.qemu_machine, "-cpu", board.qemu_cpu,
        "-nographic", "-monitor", "none", "-icount", f"shift={board.icount_shift}",
        "-semihosting-config", "enable=on,target=native",
        "-chardev", f"socket,id=u0,host=127.0.0.1,port={port},server=on,wait=on,nodelay=on",
        "-serial", "chardev:u0", "-kernel", str(elf),
    ]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class Emulator:
    """A running QEMU with the firmware; ``link`` is the connected UART."""

    def __init__(self, elf: Path | str, board: Board | str, *, port: int | None = None,
                 start_timeout_s: float = 10.0) -> None:
        self.elf = Path(elf)
        self.board = get_board(board)
        self.start_timeout_s = start_timeout_s
        self.proc: subprocess.Popen | None = None
        self.link: Link | None = None
        self.port: int | None = port   # None: QEMU binds a free port itself (port=0) and announces it
        self.exit_code: int | None = None
        self._stderr = None

    @property
    def url(self) -> str:
        return f"socket://127.0.0.1:{self.port}"

    def start(self) -> Emulator:
        """Launch QEMU and connect to its UART. With no port given QEMU binds an ephemeral one
        (no race with other processes); a given port that is taken is replaced by a free one."""
        if not self.elf.is_file():
            raise EmulatorError(f"no firmware at {self.elf}")
        if not have_qemu():
            raise EmulatorError(f"{_QEMU} not found: {install_hint(['qemu-system-arm'])}")
        want = self.port or 0
        last = ""
        for _ in range(_PORT_TRIES):
            self._stderr = tempfile.TemporaryFile()
            self.proc = subprocess.Popen(
                qemu_command(self.elf, self.board, want), stdin=subprocess.DEVNULL, stdout=self._stderr,
                stderr=subprocess.STDOUT, preexec_fn=_die_with_parent if sys.platform == "linux" else None)
            _LIVE.add(self)
            try:
                self.port = self._listening_port(want)
                self.link = self._connect()
                return self
            except EmulatorError as e:
                last = str(e)
                self._reap(kill=True)
                if "in use" not in last:
                    break
                want = _free_port()
        raise EmulatorError(last)

    def _listening_port(self, want: int) -> int:
        """Wait for QEMU's "waiting for connection on ...:PORT" line: it is printed once QEMU holds
        the port, so we never connect to some other process's listener."""
        deadline = time.monotonic() + self.start_timeout_s
        while True:
            m = _ANNOUNCE.search(self.output())
            if m:
                return int(m.group(1))
            if self.proc.poll() is not None:
                raise EmulatorError(f"qemu exited with {self.proc.returncode}: {self.output()[-800:].strip()}")
            if time.monotonic() > deadline:
                if want:
                    return want  # no announcement (another QEMU version?): trust the port we chose
                raise EmulatorError(f"qemu announced no port within {self.start_timeout_s:g} s")
            time.sleep(0.002)

    def _connect(self) -> Link:
        import serial

        deadline = time.monotonic() + self.start_timeout_s
        while True:
            if self.proc.poll() is not None:
                raise EmulatorError(f"qemu exited with {self.proc.returncode} before the UART connected: "
                                    f"{self.output()[-800:].strip()}")
            try:
                return Link(serial.serial_for_url(self.url, timeout=0.05))
            except (serial.SerialException, OSError):
                if time.monotonic() > deadline:
                    raise EmulatorError(f"qemu did not open {self.url} within {self.start_timeout_s:g} s") from None
                time.sleep(0.005)

    def detach(self) -> str:
        """Close our UART connection but keep QEMU running, so another client (a
        :class:`~hardware.evaluators.SerialBoardEvaluator` on :attr:`url`) can connect; returns the URL."""
        if self.link is not None:
            self.link.close()
            self.link = None
        return self.url

    def output(self) -> str:
        """What QEMU wrote on stdout/stderr so far."""
        if self._stderr is None:
            return ""
        try:
            self._stderr.seek(0)
            return self._stderr.read().decode(errors="replace")
        except (OSError, ValueError):
            return ""

    def wait(self, timeout_s: float) -> int | None:
        """Wait for the firmware to exit on its own; its exit code, or None if still running."""
        if self.proc is None:
            return self.exit_code
        try:
            self.exit_code = self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            return None
        return self.exit_code

    def stop(self, timeout_s: float = 2.0) -> int | None:
        """Close the UART and end QEMU (waits ``timeout_s`` for a firmware exit, then kills)."""
        if self.link is not None:
            self.link.close()
            self.link = None
        if self.proc is not None and self.wait(timeout_s if self.proc.poll() is None else 0) is None:
            self._reap(kill=True)
        else:
            self._reap(kill=False)
        return self.exit_code

    def _reap(self, kill: bool) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            if kill and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(1.0)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                self.exit_code = None
            else:
                self.exit_code = proc.wait()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
        _LIVE.discard(self)

    def __enter__(self) -> Emulator:
        return self.start() if self.proc is None else self

    def __exit__(self, *exc) -> None:
        self.stop(timeout_s=0.5)

    def __del__(self) -> None:
        if getattr(self, "proc", None) is not None:
            self._reap(kill=True)


@atexit.register
def _kill_all() -> None:
    for emu in list(_LIVE):
        emu._reap(kill=True)
