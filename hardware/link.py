"""The byte pipe to a board: any pyserial URL, with a deadline on every read.

    with Link.open("socket://127.0.0.1:4321") as link:     # QEMU; or /dev/ttyACM0, rfc2217://, loop://
        link.write(frame)
        reply = link.read_until(b"\\0", timeout_s=1.0)       # None on timeout

:class:`FaultyPort` wraps any pyserial-like port (``FaultyPort.open(url, rate)``: any URL) and drops, duplicates, flips or delays bytes at a
seeded rate in both directions, to test the protocol's retries.
"""

from __future__ import annotations

import logging
import random
import time
from typing import Protocol

__all__ = ["FaultyPort", "Link", "SerialLike"]

log = logging.getLogger(__name__)

_POLL_S = 0.05  # one blocking read waits at most this long, so deadlines are kept to ~50 ms


class SerialLike(Protocol):
    """The part of ``serial.Serial`` used here."""

    timeout: float | None

    def write(self, data: bytes) -> int | None: ...
    def read(self, size: int = 1) -> bytes: ...
    @property
    def in_waiting(self) -> int: ...
    def reset_input_buffer(self) -> None: ...
    def close(self) -> None: ...


class Link:
    """A port plus a receive buffer; reads are bounded by a deadline, never by luck."""

    def __init__(self, port: SerialLike) -> None:
        self.port = port
        self.port.timeout = _POLL_S
        self._buf = bytearray()

    @classmethod
    def open(cls, url: str, baudrate: int = 115200, *, connect_timeout_s: float = 5.0) -> Link:
        """Open a pyserial URL; ``socket://`` is retried until ``connect_timeout_s`` (QEMU may still
        be starting its listener)."""
        import serial  # pyserial

        deadline = time.monotonic() + connect_timeout_s
        while True:
            try:
                return cls(serial.serial_for_url(url, baudrate=baudrate, timeout=_POLL_S))
            except (serial.SerialException, OSError) as e:
                if not url.startswith("socket://") or time.monotonic() > deadline:
                    raise ConnectionError(f"cannot open {url}: {e}") from e
                time.sleep(0.01)

    def write(self, data: bytes) -> None:
        self.port.write(data)

    def read_until(self, delimiter: bytes = b"\0", timeout_s: float = 1.0) -> bytes | None:
        """Bytes up to (not including) ``delimiter``, or None if it does not arrive in time."""
        deadline = time.monotonic() + max(0.0, timeout_s)
        while True:
            i = self._buf.find(delimiter)
            if i >= 0:
                out = bytes(self._buf[:i])
                del self._buf[:i + len(delimiter)]
                return out
            if time.monotonic() >= deadline:
                return None
            try:
                waiting = self.port.in_waiting
            except (OSError, AttributeError):
                waiting = 0
            chunk = self.port.read(max(1, waiting))
            if chunk:
                self._buf += chunk

    def discard_input(self) -> None:
        self._buf.clear()
        try:
            self.port.reset_input_buffer()
        except (OSError, AttributeError):
            pass

    def close(self) -> None:
        sock = getattr(self.port, "_socket", None)
        if sock is not None and type(self.port).__module__.endswith("protocol_socket"):
            # pyserial's socket:// close() sleeps 0.3 s "for quick reconnects"; a third of the
            # whole measurement budget. Close the socket here and mark the port closed instead.
            try:
                sock.shutdown(2)  # SHUT_RDWR
            except OSError:
                pass
            sock.close()
            self.port._socket = None
            self.port.is_open = False
            return
        try:
            self.port.close()
        except OSError:
            pass

    def __enter__(self) -> Link:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class FaultyPort:
    """A pyserial-like port that corrupts traffic at ``rate`` faults per byte, reproducibly.

    Each byte written or read suffers, with probability ``rate``, one of ``kinds``: "drop" (lost),
    "dup" (sent twice), "flip" (one bit inverted) or "delay" (held back ``delay_s`` first).
    ``counts`` records what was done.
    """

    KINDS = ("drop", "dup", "flip", "delay")

    def __init__(self, port: SerialLike, rate: float, seed: int = 0, kinds: tuple[str, ...] = KINDS,
                 delay_s: float = 0.02) -> None:
        unknown = set(kinds) - set(self.KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}")
        self.port = port
        self.rate = rate
        self.kinds = tuple(kinds)
        self.delay_s = delay_s
        self.rng = random.Random(seed)
        self.counts = dict.fromkeys(self.KINDS, 0)
        self._pending = bytearray()  # faulted bytes of the read direction, ready for the caller

    @classmethod
    def open(cls, url: str, rate: float, *, seed: int = 0, kinds: tuple[str, ...] = KINDS,
             baudrate: int = 115200, **kw) -> FaultyPort:
        """Any pyserial URL (``/dev/ttyACM0``, ``socket://...``, ``loop://``) behind injected faults."""
        import serial

        return cls(serial.serial_for_url(url, baudrate=baudrate, timeout=_POLL_S), rate, seed=seed, kinds=kinds, **kw)

    def _mangle(self, data: bytes) -> bytes:
        out = bytearray()
        for b in data:
            if self.rng.random() >= self.rate:
                out.append(b)
                continue
            kind = self.rng.choice(self.kinds)
            self.counts[kind] += 1
            if kind == "dup":
                out += bytes([b, b])
            elif kind == "flip":
                out.append(b ^ (1 << self.rng.randrange(8)))
            elif kind == "delay":
                time.sleep(self.delay_s)
                out.append(b)
        return bytes(out)

    @property
    def timeout(self) -> float | None:
        return self.port.timeout

    @timeout.setter
    def timeout(self, value: float | None) -> None:
        self.port.timeout = value

    @property
    def in_waiting(self) -> int:
        return len(self._pending) + self.port.in_waiting

    def write(self, data: bytes) -> int:
        self.port.write(self._mangle(bytes(data)))
        return len(data)

    def read(self, size: int = 1) -> bytes:
        if not self._pending:
            self._pending += self._mangle(self.port.read(size))
        out = bytes(self._pending[:size])
        del self._pending[:size]
        return out

    def reset_input_buffer(self) -> None:
        self._pending.clear()
        self.port.reset_input_buffer()

    def close(self) -> None:
        self.port.close()
