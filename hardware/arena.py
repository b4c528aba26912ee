"""TFLM tensor-arena size of a model, measured with TFLM's own Python interpreter.

TFLM's Python binding has no "arena used" query, so :func:`tflm_arena_bytes` binary-searches the
smallest ``arena_size`` with which ``Interpreter.from_bytes`` allocates the model and one
``invoke()`` succeeds. The figure includes TFLM's bookkeeping (eval tensors, node structs, per-op
persistent data such as per-channel multipliers) as laid out on the 64-bit host; a 32-bit
Cortex-M build needs slightly less for its pointer-sized structures.

The probes run in a child process: the host interpreter dereferences failed allocations for some
too-small arenas and dies with SIGSEGV (seen for sizes such as 0, 100 and 4096 bytes), so a probe
that crashes the child counts as "does not fit" and the child is restarted.

This is a measurement tool: it needs the ``tflite-micro`` package in the running interpreter's
environment, unlike the rest of ``hardware``.
"""

from __future__ import annotations

import subprocess
import sys

__all__ = ["tflm_arena_bytes", "tflm_runs_with"]

_MAX_ARENA_BYTES = 1 << 28   # 256 MiB: far beyond any microcontroller; stop searching there
_FIRST_PROBE = 16 * 1024     # a typical KWS arena is a few tens of KiB

# The child: reads the model, then answers one "ok"/"fail" line per requested arena size.
_WORKER = r"""
import os, sys
import numpy as np
from tflite_micro.python.tflite_micro import runtime
null = os.open(os.devnull, os.O_WRONLY)
os.dup2(null, 2)  # TFLM reports allocation failures on stderr
sys.stdout.buffer.write(b"ready\n")
sys.stdout.buffer.flush()
n = int(sys.stdin.buffer.readline())
model = sys.stdin.buffer.read(n)
for line in sys.stdin.buffer:
    size = int(line)
    try:
        it = runtime.Interpreter.from_bytes(model, arena_size=size)
        i = 0
        while True:
            try:
                d = it.get_input_details(i)
            except (IndexError, RuntimeError, ValueError):
                break
            it.set_input(np.zeros(d["shape"], dtype=d["dtype"]), i)
            i += 1
        it.invoke()
        answer = b"ok\n"
    except RuntimeError:
        answer = b"fail\n"
    sys.stdout.buffer.write(answer)
    sys.stdout.buffer.flush()
"""


class _Prober:
    """A child process answering "does the model run with this arena?"; restarted after a crash."""

    def __init__(self, model_bytes: bytes) -> None:
        self.model = bytes(model_bytes)
        self.proc: subprocess.Popen | None = None

    def _start(self) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-c", _WORKER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        if proc.stdout.readline() != b"ready\n":
            err = proc.stderr.read().decode(errors="replace").strip().splitlines()
            proc.stdin.close()
            proc.wait()
            raise RuntimeError("cannot start TFLM's Python interpreter (tflite-micro needed): "
                               + (err[-1] if err else f"exit status {proc.returncode}"))
        proc.stdin.write(b"%d\n" % len(self.model) + self.model)
        proc.stdin.flush()
        return proc

    def runs(self, arena_size: int) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            self.proc = self._start()
        try:
            self.proc.stdin.write(b"%d\n" % int(arena_size))
            self.proc.stdin.flush()
            answer = self.proc.stdout.readline()
        except BrokenPipeError:
            answer = b""
        if answer == b"ok\n":
            return True
        if answer == b"fail\n":
            return False
        self.proc.wait()  # the child died (SIGSEGV) on this size
        return False

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait()
        if self.proc is not None:
            for stream in (self.proc.stdout, self.proc.stderr):
                stream.close()


def tflm_runs_with(model_bytes: bytes, arena_size: int) -> bool:
    """True when TFLM allocates the model in an arena of ``arena_size`` bytes and runs it once."""
    prober = _Prober(model_bytes)
    try:
        return prober.runs(arena_size)
    finally:
        prober.close()


def tflm_arena_bytes(model_bytes: bytes) -> int:
    """Smallest ``arena_size`` in bytes with which TFLM runs the model. Raises ``ValueError`` when
    the model does not run even with 256 MiB (unsupported op, invalid model)."""
    prober = _Prober(model_bytes)
    try:
        lo, hi = 0, _FIRST_PROBE
        while not prober.runs(hi):
            if hi >= _MAX_ARENA_BYTES:
                raise ValueError("TFLM cannot run this model with any arena up to 256 MiB")
            lo, hi = hi, hi * 2
        while hi - lo > 1:  # invariant: lo fails (or is 0), hi runs
            mid = (lo + hi) // 2
            if prober.runs(mid):
                hi = mid
            else:
                lo = mid
        return hi
    finally:
        prober.close()
