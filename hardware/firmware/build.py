"""Build the measurement firmware for one generated model and one board with arm-none-eabi-gcc.

    image = build_firmware(gm, get_board("mps2-an386"))   # gm: hardware.codegen.generate(...)
    image.elf_path, image.flash_bytes, image.static_ram_bytes, image.flash_split

The firmware is this directory's C sources (startup, protocol server, the board's platform file)
plus the generated model files, compiled with ``-O2 -ffunction-sections -fdata-sections`` and
linked with ``--gc-sections``, without start files and before the C library (only what is called
is pulled in). The linker script's MEMORY lengths are the board's real budgets, so a model that
does not fit raises :class:`DoesNotFit` naming the region and the overflow in bytes.

Builds are cached under ``<cache root>/firmware/`` keyed by the generated sources, the firmware
sources and version, the board's fields and the toolchain version; a hit costs a file read.
Sizes come from the ELF's section headers (flash: allocated sections with contents; static RAM:
writable allocated sections except the stack) and the split from the linker map's input sections.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import os
import re
import shutil
import struct
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from string import Template
from typing import Any, Protocol

from hardware.boards import Board, get_board
from hardware.tools import install_hint, version_line

__all__ = [
    "FIRMWARE_VERSION", "BuildError", "DoesNotFit", "FirmwareImage", "GeneratedSources", "ToolchainMissing",
    "build_firmware", "firmware_cache_dir", "firmware_sources_digest", "have_toolchain", "toolchain_version",
]

log = logging.getLogger(__name__)

FIRMWARE_VERSION = "1.2"   # fw.h FW_VERSION (0x0102); bump with any change to the target side
SOURCE_DIR = Path(__file__).resolve().parent
COMMON_SOURCES = ("startup.c", "main.c", "runtime.c")  # + board_<platform>.c; model_glue.c goes with the model
DEFAULT_STACK_BYTES = 4096  # reserved and painted; the measured peak is what counts as RAM used
CFLAGS = (
    "-O2", "-g0", "-std=gnu11", "-Wall", "-Wno-unused-function",
    "-ffunction-sections", "-fdata-sections",  # with --gc-sections: only what is called is linked
    "-fno-common", "-fno-strict-aliasing",
)


class BuildError(RuntimeError):
    """The firmware did not compile or link; the message carries the compiler's last lines."""


class DoesNotFit(BuildError):
    """The linker found the image larger than the board's budget (an infeasible model, not a crash)."""

    def __init__(self, message: str, region: str, overflow_bytes: int) -> None:
        super().__init__(message)
        self.region = region                  # "FLASH" or "RAM"
        self.overflow_bytes = overflow_bytes


class ToolchainMissing(BuildError):
    """arm-none-eabi-gcc is not installed (or not at $KWSNAS_ARM_GCC)."""


class GeneratedSources(Protocol):
    """What :func:`build_firmware` needs from ``hardware.codegen.generate``'s result."""

    files: Mapping[str, str]
    model_digest: str
    arena_bytes: int


@dataclass(frozen=True)
class FirmwareImage:
    """A linked firmware ELF and its sizes (bytes).

    ``flash_split`` divides ``flash_bytes`` into ``model_data`` (constants of the generated model
    sources), ``kernels`` (code of the generated sources), ``runtime`` (protocol server, board
    code, libgcc) and ``startup`` (vector table and reset code). ``ram_split`` divides static RAM
    into ``model`` (the generated sources' data and arena) and ``harness`` (protocol buffers,
    the staged input); the stack is reserved separately (``stack_reserved_bytes``).
    """

    elf_path: Path
    board: str
    model_digest: str
    flash_bytes: int
    static_ram_bytes: int
    stack_reserved_bytes: int
    flash_split: dict[str, int]
    ram_split: dict[str, int]
    toolchain_version: str
    firmware_version: str
    key: str
    build_s: float = 0.0
    cached: bool = False
    sections: dict[str, int] = field(default_factory=dict)

    @property
    def ram_reserved_bytes(self) -> int:
        return self.static_ram_bytes + self.stack_reserved_bytes

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["elf_path"] = str(self.elf_path)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FirmwareImage:
        return cls(**{**d, "elf_path": Path(d["elf_path"])})


# ---- toolchain ----

def _gcc() -> str:
    return os.environ.get("KWSNAS_ARM_GCC", "arm-none-eabi-gcc")




def toolchain_version() -> str | None:
    """First line of ``arm-none-eabi-gcc --version``, or None when the toolchain is missing."""
    return version_line(shutil.which(_gcc()))


def have_toolchain() -> bool:
    return toolchain_version() is not None


# ---- cache ----

def firmware_cache_dir() -> Path:
    """``<cache root>/firmware`` (same root as the rest of kwsnas: $KWSNAS_CACHE_DIR, else
    $XDG_CACHE_HOME/kwsnas, else ~/.cache/kwsnas)."""
    root = os.environ.get("KWSNAS_CACHE_DIR")
    base = Path(root) if root else Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "kwsnas"
    path = base / "firmware"
    path.mkdir(parents=True, exist_ok=True)
    return path


@functools.cache
def firmware_sources_digest() -> str:
    """Hash of the firmware's C sources and linker template (part of every cache key)."""
    h = hashlib.sha256()
    for p in sorted(SOURCE_DIR.iterdir()):
        if p.suffix in (".c", ".h", ".ld"):
            h.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


def _build_key(gm: GeneratedSources, board: Board, stack_bytes: int, toolchain: str) -> str:
    h = hashlib.sha256()
    for name in sorted(gm.files):
        h.update(name.encode() + b"\0" + gm.files[name].encode() + b"\0")
    h.update(json.dumps([gm.model_digest, board.fingerprint(), stack_bytes, toolchain, FIRMWARE_VERSION,
                         firmware_sources_digest(), CFLAGS]).encode())
    return h.hexdigest()[:24]


# ---- the build ----

def board_defines(board: Board) -> list[str]:
    d = {
        "BOARD_NAME": json.dumps(board.name), "BOARD_CLOCK_HZ": f"{board.clock_hz}u",
        "BOARD_UART_BASE": f"0x{board.uart_base:08X}u", "BOARD_UART_IRQ": str(board.uart_rx_irq),
        "BOARD_NUM_IRQS": str(board.num_irqs), "BOARD_BAUD": f"{board.baud}u",
    }
    if board.emulated:
        ns_per_tick = 1_000_000_000 // board.systick_hz
        if (1 << board.icount_shift) <= 2 * ns_per_tick:
            raise BuildError(f"board {board.name}: icount_shift {board.icount_shift} gives less than two SysTick "
                             "ticks per instruction; counts could not be rounded exactly")
        d |= {"BOARD_NS_PER_TICK": f"{ns_per_tick}u", "BOARD_ICOUNT_SHIFT": str(board.icount_shift)}
    return [f"-D{k}={v}" for k, v in d.items()]


def linker_script(board: Board, stack_bytes: int) -> str:
    return Template((SOURCE_DIR / "link_template.ld").read_text()).substitute(
        flash_origin=f"0x{board.flash.origin:08X}", flash_length=f"0x{board.flash.length_bytes:X}",
        ram_origin=f"0x{board.ram.origin:08X}", ram_length=f"0x{board.ram.length_bytes:X}",
        stack_bytes=f"0x{stack_bytes:X}")


_OVERFLOW = re.compile(r"region `(\w+)' overflowed by (\d+) bytes")
_NOFIT = re.compile(r"will not fit in region `(\w+)'")


def _run(cmd: list[str], cwd: Path, what: str) -> None:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300)
    if proc.returncode == 0:
        return
    err = (proc.stderr or proc.stdout).strip()
    over = _OVERFLOW.findall(err)
    if over or _NOFIT.search(err):
        region, n = (over[0][0], int(over[0][1])) if over else (_NOFIT.search(err).group(1), 0)
        raise DoesNotFit(f"does not fit: region {region} overflowed by {n} bytes", region, n)
    tail = "\n".join(err.splitlines()[-25:])
    raise BuildError(f"{what} failed (exit {proc.returncode}):\n{tail}")


def build_firmware(gm: GeneratedSources, board: Board | str, out_dir: Path | str | None = None, *,
                   stack_bytes: int = DEFAULT_STACK_BYTES, use_cache: bool = True) -> FirmwareImage:
    """Compile and link the firmware for ``gm`` on ``board``; return the image and its sizes.

    ``out_dir``: where ``fw.elf`` should also be placed (the cache entry is used otherwise).
    Raises :class:`DoesNotFit` when the image exceeds the board's flash or RAM budget,
    :class:`ToolchainMissing` without arm-none-eabi-gcc, :class:`BuildError` otherwise.
    """
    board = get_board(board)
    toolchain = toolchain_version()
    if toolchain is None:
        raise ToolchainMissing(f"{_gcc()} not found: {install_hint(['arm-none-eabi-gcc'])}")
    key = _build_key(gm, board, stack_bytes, toolchain)
    entry = firmware_cache_dir() / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', board.name)}-{key}"
    meta = entry / "image.json"
    if use_cache and meta.is_file():
        try:
            image = FirmwareImage.from_dict(json.loads(meta.read_text()))
            image = dataclasses.replace(image, elf_path=entry / "fw.elf", cached=True, build_s=0.0)
            if image.elf_path.is_file():
                return _place(image, out_dir)
        except (ValueError, TypeError, KeyError):
            pass  # a stale or damaged entry: rebuild over it
    t0 = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=firmware_cache_dir()))
    try:
        image = _build_in(tmp, gm, board, stack_bytes, toolchain, key)
        image = dataclasses.replace(image, build_s=time.perf_counter() - t0)
        (tmp / "image.json").write_text(json.dumps(image.to_dict(), indent=1))
        try:
            os.replace(tmp, entry)         # atomic: a concurrent build of the same key just wins or loses
        except OSError:
            if not meta.is_file():
                shutil.rmtree(entry, ignore_errors=True)
                os.replace(tmp, entry)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    image = dataclasses.replace(image, elf_path=entry / "fw.elf")
    log.debug("built firmware %s for %s in %.2f s", key, board.name, image.build_s)
    return _place(image, out_dir)


def _place(image: FirmwareImage, out_dir: Path | str | None) -> FirmwareImage:
    if out_dir is None:
        return image
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(image.elf_path, out / "fw.elf")
    return dataclasses.replace(image, elf_path=out / "fw.elf")


def _board_objects(board: Board, toolchain: str) -> tuple[Path, list[str]]:
    """The model-independent firmware objects for ``board``, compiled once and cached."""
    platform = SOURCE_DIR / f"board_{board.platform}.c"
    if not platform.is_file():
        raise BuildError(f"board {board.name}: no platform file {platform.name}")
    sources = [SOURCE_DIR / s for s in COMMON_SOURCES] + [platform]
    names = [s.with_suffix(".o").name for s in sources]
    key = hashlib.sha256(json.dumps([board.fingerprint(), toolchain, firmware_sources_digest(), CFLAGS])
                         .encode()).hexdigest()[:24]
    entry = firmware_cache_dir() / f"objects-{key}"
    if all((entry / n).is_file() for n in names):
        return entry, names
    tmp = Path(tempfile.mkdtemp(prefix=".objects-", dir=firmware_cache_dir()))
    try:
        _run([shutil.which(_gcc()) or _gcc(), *board.cflags, *CFLAGS, *board_defines(board), f"-I{SOURCE_DIR}", "-c",
              *map(str, sources)], tmp, "compiling the firmware")
        try:
            os.replace(tmp, entry)
        except OSError:  # another process made it first
            pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return entry, names


def _build_in(work: Path, gm: GeneratedSources, board: Board, stack_bytes: int, toolchain: str,
              key: str) -> FirmwareImage:
    gen = work / "gen"
    gen.mkdir()
    for name, text in gm.files.items():
        if "/" in name or name.startswith("."):
            raise BuildError(f"generated file name {name!r} is not a plain file name")
        (gen / name).write_text(text)
    if "kws_model.h" not in gm.files:
        raise BuildError("the generated sources have no kws_model.h")
    gen_c = [str(gen / n) for n in sorted(gm.files) if n.endswith(".c")]
    (work / "link.ld").write_text(linker_script(board, stack_bytes))
    obj_dir, fw_objs = _board_objects(board, toolchain)
    elf = work / "fw.elf"
    # one driver call compiles the model (with the per-op counter hooks force-included) and links
    _run([shutil.which(_gcc()) or _gcc(), *board.cflags, *CFLAGS, *board_defines(board), f"-I{SOURCE_DIR}",
          f"-I{gen}", "-include", str(SOURCE_DIR / "profile.h"), str(SOURCE_DIR / "model_glue.c"), *gen_c,
          *[str(obj_dir / o) for o in fw_objs],
          "-nostdlib", "-nostartfiles", "-T", str(work / "link.ld"), "-Wl,--gc-sections",
          f"-Wl,-Map={work / 'fw.map'}", "-Wl,--no-warn-rwx-segments",
          "-Wl,--start-group", "-lc_nano", "-lgcc", "-Wl,--end-group", "-o", str(elf)],
         work, "compiling and linking the model")
    sections = _elf_sections(elf.read_bytes())
    flash = sum(s.size for s in sections if s.alloc and not s.nobits)
    static_ram = sum(s.size for s in sections if s.alloc and s.write and s.name != ".stack")
    stack = next((s.size for s in sections if s.name == ".stack"), 0)
    flash_split, ram_split = _split((work / "fw.map").read_text(), set(fw_objs), flash, static_ram)
    return FirmwareImage(
        elf_path=elf, board=board.name, model_digest=gm.model_digest, flash_bytes=flash,
        static_ram_bytes=static_ram, stack_reserved_bytes=stack, flash_split=flash_split, ram_split=ram_split,
        toolchain_version=toolchain, firmware_version=FIRMWARE_VERSION, key=key,
        sections={s.name: s.size for s in sections if s.alloc})


# ---- ELF and map reading ----

@dataclass(frozen=True)
class _Section:
    name: str
    size: int
    alloc: bool
    write: bool
    nobits: bool


def _elf_sections(data: bytes) -> list[_Section]:
    """Section headers of a 32-bit little-endian ELF (all the firmware needs; no pyelftools)."""
    if data[:4] != b"\x7fELF" or data[4] != 1 or data[5] != 1:
        raise BuildError("the linker output is not a 32-bit little-endian ELF")
    shoff, = struct.unpack_from("<I", data, 0x20)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x2E)
    heads = [struct.unpack_from("<IIIIIIIIII", data, shoff + i * shentsize) for i in range(shnum)]
    stroff = heads[shstrndx][4]
    out = []
    for name, typ, flags, _addr, _off, size, *_ in heads:
        end = data.index(b"\0", stroff + name)
        out.append(_Section(data[stroff + name:end].decode(), size, bool(flags & 2), bool(flags & 1), typ == 8))
    return out


_MAP_LINE = re.compile(r"^ (\.[\w.$-]+)?\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+(\S+)$")


def _split(map_text: str, fw_objs: set[str], flash: int, static_ram: int) -> tuple[dict[str, int], dict[str, int]]:
    """Attribute input sections (from the linker map) to the flash and RAM categories.

    Objects are the firmware's own (named), library members (``lib*.a(...)``) or the model's
    (compiled in the link step, so temporary names); ``model_glue.c``'s symbols (``fw_*``,
    compiled with the model) are counted as harness."""
    fl = {"model_data": 0, "kernels": 0, "runtime": 0, "startup": 0}
    ram = {"model": 0, "harness": 0}
    start = map_text.find("Linker script and memory map")
    pending = None
    for line in map_text[start:].splitlines():
        m = _MAP_LINE.match(line)
        if m is None:
            s = line.strip()
            pending = s if line.startswith(" .") and " " not in s else None
            continue
        name = m.group(1) or pending
        pending = None
        size, obj = int(m.group(3), 16), Path(m.group(4)).name
        if not name or not size:
            continue
        gen = obj not in fw_objs and ".a(" not in obj and ".fw_" not in name
        if name.startswith((".bss", "COMMON")):
            ram["model" if gen else "harness"] += size
        elif name.startswith(".data"):
            ram["model" if gen else "harness"] += size
            fl["model_data" if gen else "runtime"] += size
        elif name.startswith(".vectors") or obj == "startup.o":
            fl["startup"] += size
        elif name.startswith(".rodata"):
            fl["model_data" if gen else "runtime"] += size
        elif name.startswith(".text"):
            fl["kernels" if gen else "runtime"] += size
    fl["runtime"] += flash - sum(fl.values())        # alignment padding, exception index, veneers
    ram["harness"] += static_ram - sum(ram.values())  # alignment padding
    return fl, ram
