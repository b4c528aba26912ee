"""A stand-alone firmware project: the sources :func:`~hardware.firmware.build.build_firmware`
compiles, laid out for people to rebuild with ``make`` and flash themselves.

    gm = generate(graph, variant="dsp", prefix="kws")
    image = build_firmware(gm, board, out_dir)            # out_dir/fw.elf
    write_project(gm, board, out_dir, image=image)        # sources, link.ld, Makefile, README.txt

Layout: ``gen/`` (the generated model), ``fw/`` (startup, protocol server, the board's platform
file and the headers they include), ``link.ld`` (the board's real budgets), ``Makefile`` and
``README.txt``. The Makefile uses the same flags, sources and link order as ``build.py``, so
``make`` rebuilds an ELF with the same flash and RAM sizes.
"""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

from hardware.boards import Board, get_board
from hardware.emulator import qemu_command
from hardware.firmware.build import (
    CFLAGS,
    COMMON_SOURCES,
    DEFAULT_STACK_BYTES,
    FIRMWARE_VERSION,
    SOURCE_DIR,
    BuildError,
    FirmwareImage,
    GeneratedSources,
    board_defines,
    linker_script,
)

__all__ = ["write_project"]

# OpenOCD target scripts by platform file (the ST-LINK interface is the same on all three boards).
_OPENOCD_TARGET = {"stm32l4": "stm32l4x", "stm32f7": "stm32f7x", "stm32f4": "stm32f4x"}
_INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
_DEMO_PORT = 5555  # the TCP port the README's QEMU command line serves the UART on


def _firmware_files(board: Board) -> tuple[list[str], list[str]]:
    """(C sources in build.py's link order, the headers they include) from the firmware directory."""
    platform = f"board_{board.platform}.c"
    if not (SOURCE_DIR / platform).is_file():
        raise BuildError(f"board {board.name}: no platform file {platform}")
    sources = [*COMMON_SOURCES, platform]
    headers, todo = ["profile.h"], [*sources, "model_glue.c", "profile.h"]
    while todo:
        for name in _INCLUDE.findall((SOURCE_DIR / todo.pop()).read_text()):
            if (SOURCE_DIR / name).is_file() and name not in headers:
                headers.append(name)
                todo.append(name)
    return sources, sorted(headers)


def _makefile(gm: GeneratedSources, board: Board, sources: list[str]) -> str:
    flags = " ".join(shlex.quote(f) for f in (*board.cflags, *CFLAGS, *board_defines(board)))
    gen_c = " ".join(f"gen/{n}" for n in sorted(gm.files) if n.endswith(".c"))
    fw_c = " ".join(f"fw/{n}" for n in sources)
    return f"""\
# Rebuilds fw.elf for {board.name} with the flags hardware/firmware/build.py uses.
#   make            build build/*.o and fw.elf (prints the section sizes)
#   make clean      remove build/ and fw.elf
# Needs arm-none-eabi-gcc and newlib (Debian: gcc-arm-none-eabi libnewlib-arm-none-eabi).

ifeq ($(origin CC),default)
CC = arm-none-eabi-gcc
endif
SIZE ?= arm-none-eabi-size

CFLAGS := {flags}
# the model's sources get the per-op counter hooks (fw/profile.h) force-included
MODEL_CFLAGS := $(CFLAGS) -Ifw -Igen -include fw/profile.h
LDFLAGS := -nostdlib -nostartfiles -T link.ld -Wl,--gc-sections -Wl,-Map=build/fw.map \\
	-Wl,--no-warn-rwx-segments
LDLIBS := -Wl,--start-group -lc_nano -lgcc -Wl,--end-group

MODEL_SRC := fw/model_glue.c {gen_c}
FW_SRC := {fw_c}
# link order as in build.py: the model first, then the firmware (section order, hence padding)
MODEL_OBJ := $(patsubst %.c,build/%.o,$(notdir $(MODEL_SRC)))
FW_OBJ := $(patsubst %.c,build/%.o,$(notdir $(FW_SRC)))

all: fw.elf

fw.elf: $(MODEL_OBJ) $(FW_OBJ) link.ld
	$(CC) $(CFLAGS) $(MODEL_OBJ) $(FW_OBJ) $(LDFLAGS) $(LDLIBS) -o $@
	-$(SIZE) $@

build/%.o: gen/%.c $(wildcard gen/*.h) fw/profile.h | build
	$(CC) $(MODEL_CFLAGS) -c $< -o $@

build/model_glue.o: fw/model_glue.c $(wildcard gen/*.h fw/*.h) | build
	$(CC) $(MODEL_CFLAGS) -c $< -o $@

build/%.o: fw/%.c $(wildcard fw/*.h) | build
	$(CC) $(CFLAGS) -Ifw -c $< -o $@

build:
	mkdir -p build

clean:
	rm -rf build fw.elf

.PHONY: all clean
"""


def _board_flags(board: Board) -> str:
    """``--board NAME`` for ``nas measure``, with ``--flash-kib``/``--ram-kib`` for a held-down budget."""
    base = get_board(board.name.split("[")[0])
    flags = f"--board {base.name}"
    if board.flash_bytes != base.flash_bytes:
        flags += f" --flash-kib {board.flash_bytes // 1024}"
    if board.ram_bytes != base.ram_bytes:
        flags += f" --ram-kib {board.ram_bytes // 1024}"
    return flags


def _run_instructions(board: Board, model_name: str | None) -> str:
    model = model_name or "MODEL.tflite"
    flags = _board_flags(board)
    if board.emulated:
        cmd = qemu_command("fw.elf", board, _DEMO_PORT)
        cmd[0] = "qemu-system-arm"
        return f"""\
Run it in QEMU ({board.qemu_machine}; the UART is served on TCP port {_DEMO_PORT}, and the
firmware starts once a client connects):

    {shlex.join(cmd)}

then, from another shell, measure through that port:

    nas measure {model} {flags} --evaluator serial --port socket://127.0.0.1:{_DEMO_PORT}

The count is executed instructions (QEMU -icount), not cycles; latency is an estimate
(instructions x CPI {board.cpi:g} / {board.clock_hz / 1e6:g} MHz). `nas measure {model} {flags}`
does all of this by itself (build, launch, measure)."""
    target = _OPENOCD_TARGET.get(board.platform, "<your target>")
    return f"""\
Flash fw.elf with any of (the board's ST-LINK on USB):

    pyocd flash fw.elf                      (pyOCD finds the part from the ST-LINK; else add -t <target>)
    STM32_Programmer_CLI -c port=SWD -w fw.elf -v -rst
    openocd -f interface/stlink.cfg -f target/{target}.cfg -c "program fw.elf verify reset exit"

then measure over the ST-LINK virtual COM port ({board.baud} baud; /dev/ttyACM0 on Linux,
COMn on Windows, /dev/cu.usbmodem* on macOS):

    nas measure {model} {flags} --evaluator serial --port /dev/ttyACM0

The count is cycles from the core's DWT cycle counter, so the latency is measured
(cycles / {board.clock_hz / 1e6:g} MHz)."""


def _readme(gm: GeneratedSources, board: Board, image: FirmwareImage | None, model_name: str | None) -> str:
    sizes = ""
    if image is not None:
        split = ", ".join(f"{k} {v:,}" for k, v in image.flash_split.items())
        sizes = (f"\nSizes of fw.elf as built: flash {image.flash_bytes:,} B\n({split});\nstatic RAM "
                 f"{image.static_ram_bytes:,} B + {image.stack_reserved_bytes:,} B reserved stack. "
                 f"Toolchain: {image.toolchain_version}.\n")
    variant = getattr(gm, "variant", "")
    return f"""\
kwsnas measurement firmware for {board.name}
{'=' * (31 + len(board.name))}

{board.description}.
Model digest {gm.model_digest}{f' (from {model_name})' if model_name else ''}, code generator variant
{variant or '?'}, activation arena {gm.arena_bytes:,} B; firmware version {FIRMWARE_VERSION}.

This is the firmware `nas measure` builds: the generated int8 model (gen/kws_model.c, with its
kernels inlined from the gen/*.h headers) plus a small protocol server (fw/main.c) that takes
inputs over the UART, runs the model, counts instructions or cycles (per op on request) and
sends outputs back. It prints nothing by itself: the host drives it with kwsnas's framed
protocol (hardware/wire.py). To call the model from your own application instead, take
gen/ and use kws_input(), kws_run(), kws_output() (see gen/kws_model.h).
{sizes}
Rebuild
-------
    make            (arm-none-eabi-gcc + newlib; Debian: gcc-arm-none-eabi libnewlib-arm-none-eabi)

link.ld holds the board's real flash and RAM budgets, so a model that does not fit fails at
link time ("region `FLASH' overflowed by N bytes").

Run
---
{_run_instructions(board, model_name)}
"""


def write_project(gm: GeneratedSources, board: Board | str, out_dir: Path | str, *,
                  image: FirmwareImage | None = None, model_bytes: bytes | None = None,
                  model_name: str = "model.tflite", stack_bytes: int = DEFAULT_STACK_BYTES) -> Path:
    """Write the buildable project for ``gm`` on ``board`` into ``out_dir``; return ``out_dir``.

    ``image``: the ELF built for the same model and board (its sizes go into README.txt; place it
    with ``build_firmware(gm, board, out_dir)``). ``model_bytes``: the ``.tflite`` the model came
    from, saved as ``model_name`` so the README's ``nas measure`` command works from the folder.
    """
    board = get_board(board)
    out = Path(out_dir)
    sources, headers = _firmware_files(board)
    for sub in ("gen", "fw"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    for name, text in gm.files.items():
        if "/" in name or name.startswith("."):
            raise BuildError(f"generated file name {name!r} is not a plain file name")
        (out / "gen" / name).write_text(text)
    for name in (*sources, "model_glue.c", *headers):
        shutil.copyfile(SOURCE_DIR / name, out / "fw" / name)
    (out / "link.ld").write_text(linker_script(board, stack_bytes))
    (out / "Makefile").write_text(_makefile(gm, board, sources))
    if model_bytes is not None:
        (out / model_name).write_bytes(bytes(model_bytes))
    (out / "README.txt").write_text(_readme(gm, board, image, model_name if model_bytes is not None else None))
    return out
