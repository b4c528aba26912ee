"""The host side of the measurement wire protocol (the target side is ``firmware/main.c``).

Wire format, version 1. Every frame is COBS-encoded and ends with one 0x00 byte, so a lost,
doubled or flipped byte spoils at most the frame it falls in and the next frame starts clean.
Decoded, a frame is::

    u8 version | u8 cmd | u8 seq | u16 length | payload (length bytes) | u32 CRC-32 (IEEE) of all before

little-endian throughout. A response has ``cmd | 0x80``, the request's ``seq``, and a payload that
starts with a status byte (0 = ok). The target keeps its last response: a request repeated with
the same seq, cmd and CRC is answered again without running twice, which makes every command safe
to retry. The host drops responses whose seq or cmd does not match (stale duplicates).

Commands (request payload -> response data after the status byte):

=========== ==== ================================ ==========================================
INFO        0x01 -                                :class:`BoardInfo` (struct ``_INFO``)
ECHO        0x02 bytes                            the same bytes
SET_INPUT   0x03 u32 offset, bytes                - (stages input; chunks of <= 250 bytes)
RUN         0x04 u16 runs, u8 flags (1 = per-op)  u16 runs, u64 count per run (NO_INPUT before any SET_INPUT)
OP_COUNTS   0x05 u16 first, u16 count             u16 count, u64 per op (last per-op run)
READ_OUTPUT 0x06 u32 offset, u16 length           bytes
STACK       0x07 -                                u32 peak bytes, u32 reserved bytes
EXIT        0x08 u8 code                          - (then the target exits or resets)
READ_ARENA  0x09 u32 offset, u16 length           bytes of the model's activation arena
BOOT        0x7E (unsolicited, seq 0)             u16 firmware version; sent once after every reset
FAULT       0x7F (unsolicited, seq 0)             u32 pc, lr, CFSR, HFSR; the target then exits
=========== ==== ================================ ==========================================

A reset behind the host's back (brown-out, watchdog, someone pressing RESET) is seen two ways: the
BOOT frame arriving after the session's first answer, or RUN answering NO_INPUT because the staged
input is gone. Both raise :class:`BoardReset`, so a measurement is repeated, never half-trusted.
The client also adapts to a noisy link: after a retry it halves the size of its chunked transfers
(down to ``MIN_CHUNK``), and grows them back after a run of clean answers.

Counts are in the board's counter unit: instructions on the emulator, cycles on real parts
(``BoardInfo.counter``). Host-to-target bandwidth is low (~16-20 KiB/s on QEMU, 11 KiB/s at
115200 baud): stage an input once, then run it many times.
"""

from __future__ import annotations

import logging
import os
import struct
import time
import zlib
from dataclasses import dataclass
from enum import IntEnum

__all__ = [
    "PROTOCOL_VERSION", "BoardFault", "BoardInfo", "BoardReset", "Client", "Cmd", "CommandError", "Frame", "LinkTimeout",
    "ProtocolError", "Status", "cobs_decode", "cobs_encode", "decode_frame", "encode_frame",
]

log = logging.getLogger(__name__)

PROTOCOL_VERSION = 1
HEADER = struct.Struct("<BBBH")
MAX_PAYLOAD = 256          # the target's buffer (firmware/main.c MAX_PAYLOAD)
INPUT_CHUNK = MAX_PAYLOAD - 4 - 2  # SET_INPUT carries a u32 offset; keep a little slack
OUTPUT_CHUNK = MAX_PAYLOAD - 6
MAX_RUNS = 30              # RUN counts per request (main.c MAX_RUNS)
MIN_CHUNK = 16             # smallest chunk on a bad link: a ~30-byte frame crosses 1 % byte faults intact 3 times in 4
_GROW_AFTER = 16           # clean first-try answers in a row before chunks grow again
_BIG_CHUNK_RETRIES = 2     # attempts left to a long frame before it is split (each failure halves the chunk)
_INFO = struct.Struct("<BBHIIIIIHHI16s")


class Cmd(IntEnum):
    INFO = 0x01
    ECHO = 0x02
    SET_INPUT = 0x03
    RUN = 0x04
    OP_COUNTS = 0x05
    READ_OUTPUT = 0x06
    STACK = 0x07
    EXIT = 0x08
    READ_ARENA = 0x09
    BOOT = 0x7E
    FAULT = 0x7F


class Status(IntEnum):
    OK = 0
    UNKNOWN_CMD = 1
    BAD_ARGS = 2
    BAD_RANGE = 3
    NO_INPUT = 4


class ProtocolError(RuntimeError):
    """The board answered, but not as the protocol says."""


class LinkTimeout(ProtocolError, TimeoutError):
    """No valid answer within the timeout after every retry."""


class CommandError(ProtocolError):
    def __init__(self, cmd: int, status: int) -> None:
        name = Status(status).name if status in Status._value2member_map_ else str(status)
        super().__init__(f"{Cmd(cmd).name if cmd in Cmd._value2member_map_ else cmd}: target status {name}")
        self.cmd, self.status = cmd, status


class BoardReset(ProtocolError):
    """The target restarted during the session: whatever it held (input, output, counts) is gone."""


class BoardFault(ProtocolError):
    """The target took a fault (its FAULT frame carries the faulting PC and fault status)."""

    def __init__(self, pc: int, lr: int, cfsr: int, hfsr: int) -> None:
        what = f"unexpected interrupt {lr}" if pc == 0xFFFFFFFF else f"fault at pc=0x{pc:08x} lr=0x{lr:08x}"
        super().__init__(f"board {what} (CFSR=0x{cfsr:08x} HFSR=0x{hfsr:08x})")
        self.pc, self.lr, self.cfsr, self.hfsr = pc, lr, cfsr, hfsr


# ---- framing ----

def cobs_encode(data: bytes) -> bytes:
    """Consistent Overhead Byte Stuffing: no 0x00 in the result (the delimiter is not added)."""
    out = bytearray()
    i, n = 0, len(data)
    while True:
        j = i
        while j < n and data[j] != 0 and j - i < 254:
            j += 1
        out.append(j - i + 1)
        out += data[i:j]
        if j == n:
            return bytes(out)
        i = j if j - i == 254 else j + 1  # a full block implies no zero; otherwise skip the zero


def cobs_decode(data: bytes) -> bytes | None:
    """Inverse of :func:`cobs_encode`; None for an impossible encoding."""
    out = bytearray()
    i, n = 0, len(data)
    while i < n:
        code = data[i]
        i += 1
        if code == 0 or i + code - 1 > n:
            return None
        out += data[i:i + code - 1]
        i += code - 1
        if code < 0xFF and i < n:
            out.append(0)
    return bytes(out)


@dataclass(frozen=True)
class Frame:
    cmd: int
    seq: int
    payload: bytes
    crc: int = 0
    version: int = PROTOCOL_VERSION


def encode_frame(cmd: int, seq: int, payload: bytes = b"", version: int = PROTOCOL_VERSION) -> bytes:
    """One frame on the wire: COBS(header | payload | CRC-32) then the 0x00 delimiter."""
    if len(payload) > 0xFFFF:
        raise ValueError("payload too long for one frame")
    raw = HEADER.pack(version, cmd, seq & 0xFF, len(payload)) + bytes(payload)
    return cobs_encode(raw + struct.pack("<I", zlib.crc32(raw))) + b"\0"


def decode_frame(encoded: bytes) -> Frame | None:
    """A frame from its bytes between delimiters; None when damaged (bad COBS, length or CRC)."""
    raw = cobs_decode(encoded)
    if raw is None or len(raw) < HEADER.size + 4:
        return None
    version, cmd, seq, length = HEADER.unpack_from(raw)
    if length != len(raw) - HEADER.size - 4:
        return None
    crc, = struct.unpack_from("<I", raw, len(raw) - 4)
    if zlib.crc32(raw[:-4]) != crc:
        return None
    return Frame(cmd, seq, raw[HEADER.size:-4], crc, version)


# ---- the client ----

@dataclass(frozen=True)
class BoardInfo:
    protocol_version: int
    firmware_version: str
    counter: str               # "instructions" or "cycles"
    cpu_hz: int
    cpuid: int                 # SCB->CPUID: identifies the core actually running
    arena_bytes: int
    input_bytes: int
    output_bytes: int
    num_ops: int
    max_payload: int
    stack_reserved_bytes: int
    model_digest: str
    board: str

    @classmethod
    def unpack(cls, data: bytes) -> BoardInfo:
        if len(data) < _INFO.size:
            raise ProtocolError(f"INFO answer too short ({len(data)} bytes)")
        (proto, counter, fw, hz, cpuid, arena, n_in, n_out, n_ops, max_payload, stack,
         digest) = _INFO.unpack_from(data)
        return cls(proto, f"{fw >> 8}.{fw & 0xFF}", "instructions" if counter == 1 else "cycles", hz, cpuid,
                   arena, n_in, n_out, n_ops, max_payload, stack, digest.rstrip(b"\0").decode("ascii", "replace"),
                   data[_INFO.size:].decode("ascii", "replace"))

    def pack(self) -> bytes:
        major, minor = (int(x) for x in self.firmware_version.split("."))
        return _INFO.pack(self.protocol_version, 1 if self.counter == "instructions" else 0, major << 8 | minor,
                          self.cpu_hz, self.cpuid, self.arena_bytes, self.input_bytes, self.output_bytes,
                          self.num_ops, self.max_payload, self.stack_reserved_bytes,
                          self.model_digest.encode()[:16]) + self.board.encode()


class Client:
    """Commands over a :class:`hardware.link.Link`, with timeouts, retries and sequence numbers.

    Every command is retried up to ``retries`` times when its answer is missing or damaged (the
    target answers a retried request from its cache, so nothing runs twice). ``timeout_s`` bounds
    one attempt; RUN takes its own, longer timeout.
    """

    def __init__(self, link, *, timeout_s: float = 1.0, retries: int = 4) -> None:
        self.link = link
        self.timeout_s = timeout_s
        self.retries = retries
        self._seq = int.from_bytes(os.urandom(1), "little")  # unlikely to equal a previous session's last
        self.stats = {"requests": 0, "retries": 0, "bad_frames": 0, "stale_frames": 0, "boot_frames": 0}
        self.chunk = INPUT_CHUNK  # bytes per chunked transfer (input, output, counts), adapted to the link
        self._clean = 0           # first-try answers in a row
        self._answered = False    # a BOOT frame after the first answer means the board reset

    def request(self, cmd: Cmd, payload: bytes = b"", timeout_s: float | None = None, retries: int | None = None
                ) -> bytes:
        """Send one command and return the response data (after the status byte)."""
        retries = self.retries if retries is None else retries
        self._seq = (self._seq + 1) & 0xFF
        seq = self._seq
        frame = encode_frame(cmd, seq, payload)
        timeout_s = self.timeout_s if timeout_s is None else timeout_s
        self.stats["requests"] += 1
        for attempt in range(retries + 1):
            if attempt:
                self.stats["retries"] += 1
                log.debug("retrying %s (seq %d), attempt %d", Cmd(cmd).name, seq, attempt + 1)
            self.link.write(frame)
            reply = self._await(cmd, seq, time.monotonic() + timeout_s)
            if reply is not None:
                self._adapt(clean=attempt == 0)
                self._answered = True
                status, data = reply[0], reply[1:]
                if status == Status.NO_INPUT:
                    raise BoardReset(f"{Cmd(cmd).name}: the board lost its staged input (it was reset)")
                if status != Status.OK:
                    raise CommandError(cmd, status)
                return data
            self._adapt(clean=False)
        raise LinkTimeout(f"{Cmd(cmd).name}: no valid answer in {retries + 1} attempts of {timeout_s:g} s")

    def _await(self, cmd: int, seq: int, deadline: float) -> bytes | None:
        """The matching response's payload, or None to retry (timeout or a damaged frame)."""
        while True:
            raw = self.link.read_until(b"\0", deadline - time.monotonic())
            if raw is None:
                return None
            if not raw:
                continue  # an empty frame (two delimiters in a row)
            f = decode_frame(raw)
            if f is None:
                self.stats["bad_frames"] += 1
                return None  # damaged: ask again at once instead of waiting out the timeout
            if f.cmd == (Cmd.FAULT | 0x80) and len(f.payload) >= 17:
                raise BoardFault(*struct.unpack_from("<IIII", f.payload, 1))
            if f.cmd == (Cmd.BOOT | 0x80) and f.seq == 0:
                self.stats["boot_frames"] += 1
                if self._answered:
                    raise BoardReset(f"{Cmd(cmd).name}: the board announced a restart mid-session")
                continue  # the boot we just caused (QEMU start, flashing): expected
            if f.version != PROTOCOL_VERSION or f.cmd != (cmd | 0x80) or f.seq != seq or not f.payload:
                self.stats["stale_frames"] += 1
                continue
            return f.payload

    def _adapt(self, clean: bool) -> None:
        """Halve the transfer chunk after trouble; double it after ``_GROW_AFTER`` clean answers."""
        if not clean:
            self._clean = 0
            self.chunk = max(MIN_CHUNK, self.chunk // 2)
            return
        self._clean += 1
        if self._clean >= _GROW_AFTER and self.chunk < INPUT_CHUNK:
            self._clean = 0
            self.chunk = min(INPUT_CHUNK, self.chunk * 2)

    # ---- commands ----
    def info(self) -> BoardInfo:
        info = BoardInfo.unpack(self.request(Cmd.INFO))
        if info.protocol_version != PROTOCOL_VERSION:
            raise ProtocolError(f"target speaks protocol {info.protocol_version}, host {PROTOCOL_VERSION}")
        return info

    def echo(self, data: bytes) -> bytes:
        return self.request(Cmd.ECHO, data)

    def _chunked(self, total: int, unit_bytes: int, cap: int, send, *, may_hang: bool = False) -> None:
        """``send(first, n, retries)`` over items ``[0, total)`` in pieces of at most ``cap`` items and
        :attr:`chunk` bytes. A piece larger than ``MIN_CHUNK`` bytes gets few attempts: when they fail
        and the link is to blame, the piece is sent again smaller, so a long frame on a noisy link never
        exhausts the retries. The link is to blame when the board has answered before, unless the command
        ``may_hang`` (RUN: a board stuck in the model is silent too); then only damaged frames prove it."""
        done = 0
        while done < total:
            n = min(cap, max(1, self.chunk // unit_bytes), total - done)
            big = n * unit_bytes > MIN_CHUNK
            try:
                send(done, n, min(self.retries, _BIG_CHUNK_RETRIES) if big else self.retries)
            except LinkTimeout:
                if not big or not (self.stats["bad_frames"] if may_hang else self._answered):
                    raise
                continue  # _adapt has shrunk the chunk: the same items, in smaller pieces
            done += n

    def set_input(self, data: bytes) -> None:
        self._chunked(len(data), 1, INPUT_CHUNK, lambda off, n, retries: self.request(
            Cmd.SET_INPUT, struct.pack("<I", off) + data[off:off + n], retries=retries))

    def run(self, runs: int = 1, per_op: bool = False, timeout_s: float = 30.0) -> list[int]:
        """Run the staged input ``runs`` times; the count of each run (counter unit)."""
        counts: list[int] = []

        def send(first: int, n: int, retries: int) -> None:
            data = self.request(Cmd.RUN, struct.pack("<HB", n, 1 if per_op else 0), timeout_s=timeout_s * n,
                                retries=retries)
            got, = struct.unpack_from("<H", data)
            if got != n or len(data) != 2 + 8 * n:
                raise ProtocolError(f"RUN answered {got} counts for {n} runs")
            counts.extend(struct.unpack_from(f"<{n}Q", data, 2))

        self._chunked(runs, 8, MAX_RUNS, send, may_hang=True)  # on a noisy link, fewer runs per answer (8 bytes each)
        return counts

    def op_counts(self, num_ops: int) -> list[int]:
        """Per-op counts of the last run made with ``per_op=True``."""
        out: list[int] = []

        def send(first: int, n: int, retries: int) -> None:
            data = self.request(Cmd.OP_COUNTS, struct.pack("<HH", first, n), retries=retries)
            if len(data) != 2 + 8 * n:
                raise ProtocolError(f"OP_COUNTS returned {len(data)} bytes for {n} counts")
            out.extend(struct.unpack_from(f"<{n}Q", data, 2))

        self._chunked(num_ops, 8, (MAX_PAYLOAD - 3) // 8, send)
        return out

    def read_output(self, nbytes: int) -> bytes:
        return self._read(Cmd.READ_OUTPUT, 0, nbytes)

    def read_arena(self, offset: int, nbytes: int) -> bytes:
        """``nbytes`` of the model's activation arena from ``offset``: the tensors a run left intact."""
        return self._read(Cmd.READ_ARENA, offset, nbytes)

    def _read(self, cmd: Cmd, offset: int, nbytes: int) -> bytes:
        """READ_OUTPUT / READ_ARENA in chunks that fit a frame."""
        out = bytearray()

        def send(off: int, n: int, retries: int) -> None:
            data = self.request(cmd, struct.pack("<IH", offset + off, n), retries=retries)
            if len(data) != n:
                raise ProtocolError(f"{cmd.name} returned {len(data)} of {n} bytes")
            out.extend(data)

        self._chunked(nbytes, 1, OUTPUT_CHUNK, send)
        return bytes(out)

    def stack(self) -> tuple[int, int]:
        """(peak stack bytes used since reset, stack bytes reserved)."""
        peak, reserved = struct.unpack("<II", self.request(Cmd.STACK)[:8])
        return peak, reserved

    def exit(self, code: int = 0) -> None:
        """Ask the target to exit (QEMU: with ``code``) or reset (real boards)."""
        self.request(Cmd.EXIT, bytes([code & 0xFF]))
