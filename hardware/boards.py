"""Boards as data: the table in ``boards.toml`` read into frozen :class:`Board` records.

A board says what the firmware build needs (core flags, memory map and real budgets, clock, UART,
the platform C file) and how it is reached (a QEMU machine or a serial port). Nothing here talks
to hardware; ``hardware.firmware.build`` and ``hardware.emulator`` read these records.

    from hardware.boards import get_board, board_names
    board = get_board("mps2-an386")            # or get_board() for the default
    small = board.with_budget(flash_bytes=256 * 1024, ram_bytes=64 * 1024)  # emulate a smaller part
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import tomllib
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Board", "BoardError", "MemoryRegion", "all_boards", "board_names", "default_board", "get_board"]

_TABLE = Path(__file__).with_name("boards.toml")


class BoardError(KeyError, ValueError):
    """An unknown board name or an inconsistent board table entry (a ValueError too: bad user input)."""

    def __str__(self) -> str:  # KeyError quotes its message; this one is a sentence
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class MemoryRegion:
    origin: int
    length_bytes: int

    @property
    def end(self) -> int:
        return self.origin + self.length_bytes


@dataclass(frozen=True)
class Board:
    """One row of the board table. ``flash``/``ram`` lengths are the part's real budgets."""

    name: str
    description: str
    core: str                    # "cortex-m4", as -mcpu and qemu -cpu spell it
    cflags: tuple[str, ...]
    dsp: bool                    # has the DSP extension (SMLAD and friends)
    fpu: str                     # "none" or the -mfpu name
    flash: MemoryRegion
    ram: MemoryRegion
    clock_hz: int
    platform: str                # firmware/board_<platform>.c
    counter: str                 # "instructions" (emulated) or "cycles" (DWT on real parts)
    uart_kind: str
    uart_base: int
    uart_rx_irq: int
    num_irqs: int                # external interrupt lines in the vector table
    link_kind: str               # "qemu" or "serial"
    qemu_machine: str | None = None
    qemu_cpu: str | None = None
    systick_hz: int | None = None     # QEMU: SysTick's clock when CLKSOURCE is the CPU clock
    icount_shift: int | None = None   # QEMU: -icount shift=N, each instruction takes 2**N ns
    serial_url: str | None = None     # real boards: the usual port of the ST-LINK VCP
    baud: int = 115200
    pyocd_target: str | None = None   # real boards: pyOCD's name for the part (its CMSIS pack)
    cpi: float = 1.0
    cpi_source: str = ""

    def __post_init__(self) -> None:
        if self.counter not in ("instructions", "cycles"):
            raise BoardError(f"board {self.name}: counter must be 'instructions' or 'cycles', got {self.counter!r}")
        if self.link_kind not in ("qemu", "serial"):
            raise BoardError(f"board {self.name}: link.kind must be 'qemu' or 'serial', got {self.link_kind!r}")
        if self.link_kind == "qemu":
            if not (self.qemu_machine and self.qemu_cpu and self.systick_hz and self.icount_shift is not None):
                raise BoardError(f"board {self.name}: a qemu board needs machine, cpu, systick_hz and icount_shift")
            if 1_000_000_000 % self.systick_hz:
                raise BoardError(f"board {self.name}: systick_hz must divide 1 GHz (the firmware converts "
                                 "ticks to instructions with an integer ns-per-tick)")
        if self.uart_rx_irq >= self.num_irqs:
            raise BoardError(f"board {self.name}: uart rx_irq {self.uart_rx_irq} >= num_irqs {self.num_irqs}")

    @property
    def emulated(self) -> bool:
        return self.link_kind == "qemu"

    @property
    def flash_bytes(self) -> int:
        return self.flash.length_bytes

    @property
    def ram_bytes(self) -> int:
        return self.ram.length_bytes

    def with_budget(self, flash_bytes: int | None = None, ram_bytes: int | None = None) -> Board:
        """The same board with smaller memory budgets, e.g. the emulated M4 held to a real part's
        flash and RAM. The name records the budget so caches keep the variants apart."""
        flash = MemoryRegion(self.flash.origin, flash_bytes) if flash_bytes is not None else self.flash
        ram = MemoryRegion(self.ram.origin, ram_bytes) if ram_bytes is not None else self.ram
        if flash.length_bytes > self.flash.length_bytes or ram.length_bytes > self.ram.length_bytes:
            raise BoardError(f"board {self.name}: a budget cannot exceed the memory the board has")
        base = self.name.split("[")[0]
        name = f"{base}[flash={flash.length_bytes},ram={ram.length_bytes}]"
        return dataclasses.replace(self, name=name, flash=flash, ram=ram)

    def fingerprint(self) -> str:
        """Short hash of every field: part of firmware and measurement cache keys."""
        blob = json.dumps(dataclasses.asdict(self), sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def _region(row: dict, key: str, name: str) -> MemoryRegion:
    try:
        return MemoryRegion(int(row[key]["origin"]), int(row[key]["length"]))
    except (KeyError, TypeError) as e:
        raise BoardError(f"board {name}: {key} needs origin and length") from e


def _board(name: str, row: dict) -> Board:
    try:
        uart, link = row["uart"], row["link"]
        return Board(
            name=name, description=row.get("description", ""), core=row["core"], cflags=tuple(row["cflags"]),
            dsp=bool(row["dsp"]), fpu=row.get("fpu", "none"), flash=_region(row, "flash", name),
            ram=_region(row, "ram", name), clock_hz=int(row["clock_hz"]), platform=row["platform"],
            counter=row["counter"], uart_kind=uart["kind"], uart_base=int(uart["base"]),
            uart_rx_irq=int(uart["rx_irq"]), num_irqs=int(row["num_irqs"]), link_kind=link["kind"],
            qemu_machine=link.get("machine"), qemu_cpu=link.get("cpu"), systick_hz=link.get("systick_hz"),
            icount_shift=link.get("icount_shift"), serial_url=link.get("url"), baud=int(link.get("baud", 115200)),
            pyocd_target=link.get("pyocd_target"),
            cpi=float(row["cpi"]), cpi_source=row.get("cpi_source", ""))
    except KeyError as e:
        raise BoardError(f"board {name}: missing field {e.args[0]!r} in {_TABLE.name}") from None


@functools.cache
def _table() -> tuple[str, dict[str, Board]]:
    data = tomllib.loads(_TABLE.read_text())
    boards = {name: _board(name, row) for name, row in data.get("board", {}).items()}
    default = data.get("default", "")
    if default not in boards:
        raise BoardError(f"{_TABLE.name}: default board {default!r} is not in the table")
    return default, boards


def board_names() -> list[str]:
    return list(_table()[1])


def all_boards() -> list[Board]:
    return list(_table()[1].values())


def default_board() -> Board:
    default, boards = _table()
    return boards[default]


def get_board(board: str | Board | None = None) -> Board:
    """A board by name (the default when None); a :class:`Board` is returned as is."""
    if isinstance(board, Board):
        return board
    if board is None:
        return default_board()
    boards = _table()[1]
    if board not in boards:
        raise BoardError(f"unknown board {board!r}; known: {', '.join(boards)}")
    return boards[board]
