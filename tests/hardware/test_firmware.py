"""The board table, the firmware build (every board, budgets enforced at link time) and the
firmware running in QEMU: the protocol server, instruction counts, faults, exits, a noisy link,
and no QEMU left behind. Models come from the stand-in generator (tests/helpers/standins.py)."""

from __future__ import annotations

import socket
import struct
import time

import numpy as np
import pytest

from hardware import reference
from hardware.boards import BoardError, all_boards, board_names, default_board, get_board
from hardware.emulator import Emulator, EmulatorError
from hardware.firmware.build import FIRMWARE_VERSION, DoesNotFit, build_firmware
from hardware.link import FaultyPort, Link
from hardware.wire import BoardFault, BoardReset, Client, LinkTimeout
from tests.helpers.marks import needs_emulation, needs_toolchain
from tests.helpers.standins import fc_graph, qemu_children, stub_generate

EMULATED = [b.name for b in all_boards() if b.emulated]
CPU_PART = {"cortex-m3": 0xC23, "cortex-m4": 0xC24, "cortex-m7": 0xC27, "cortex-m33": 0xD21}


@pytest.fixture(scope="module")
def graph():
    return fc_graph(np.random.default_rng(0), sizes=(96, 24, 10), per_channel=True)


@pytest.fixture(scope="module")
def model(graph):
    return stub_generate(graph)


# ---- the board table ----

def test_board_table():
    names = board_names()
    assert {"mps2-an385", "mps2-an386", "mps2-an500", "mps2-an505", "NUCLEO-L4R5ZI", "DISCO-F746NG",
            "NUCLEO-F446RE"} <= set(names)
    assert default_board().name == "mps2-an386" and get_board() is default_board()
    an505 = get_board("mps2-an505")
    assert (an505.uart_base, an505.flash.origin, an505.ram.origin) == (0x50200000, 0x10000000, 0x38000000)
    for b in all_boards():
        assert b.counter == ("instructions" if b.emulated else "cycles")
        assert b.cpi > 0 and b.cpi_source and b.clock_hz > 0
        assert ("-mfloat-abi=hard" in b.cflags) == (b.fpu != "none")
    f446 = get_board("NUCLEO-F446RE")
    assert (f446.flash_bytes, f446.ram_bytes, f446.clock_hz) == (512 * 1024, 128 * 1024, 180_000_000)
    assert not get_board("mps2-an385").dsp and get_board("NUCLEO-L4R5ZI").dsp
    small = get_board("mps2-an386").with_budget(flash_bytes=64 * 1024, ram_bytes=8 * 1024)
    assert small.name == "mps2-an386[flash=65536,ram=8192]" and small.fingerprint() != default_board().fingerprint()
    with pytest.raises(BoardError, match="unknown board"):
        get_board("arduino-uno")
    with pytest.raises(BoardError):
        f446.with_budget(flash_bytes=1 << 30)


# ---- building ----

def _vectors(elf: bytes) -> tuple[int, int, int]:
    """(address of .vectors, initial SP, reset vector) read from the ELF."""
    shoff, = struct.unpack_from("<I", elf, 0x20)
    size, num, strndx = struct.unpack_from("<HHH", elf, 0x2E)
    heads = [struct.unpack_from("<IIIIII", elf, shoff + i * size) for i in range(num)]
    names = heads[strndx][4]
    for name, _t, _f, addr, off, _s in heads:
        if elf[names + name:elf.index(b"\0", names + name)] == b".vectors":
            sp, reset = struct.unpack_from("<II", elf, off)
            return addr, sp, reset
    raise AssertionError("no .vectors section")


@needs_toolchain
@pytest.mark.parametrize("board", board_names())
def test_builds_for_every_board(model, board):
    b = get_board(board)
    image = build_firmware(model, b)
    assert image.board == board and image.model_digest == model.model_digest
    assert sum(image.flash_split.values()) == image.flash_bytes
    assert sum(image.ram_split.values()) == image.static_ram_bytes
    assert image.flash_split["model_data"] >= 96 * 24 + 24 * 10  # at least the int8 weights
    assert image.flash_split["startup"] > 4 * 16 and image.ram_split["model"] >= model.arena_bytes
    addr, sp, reset = _vectors(image.elf_path.read_bytes())
    assert addr == b.flash.origin                                   # where the core fetches it at reset
    assert b.ram.origin < sp <= b.ram.end and sp % 8 == 0           # the stack top, inside the RAM budget
    assert reset & 1 and b.flash.origin <= reset < b.flash.end      # a Thumb address in flash
    assert image.flash_bytes < 12 * 1024 and image.static_ram_bytes < 2048


@needs_toolchain
def test_oversized_model_fails_at_link_time(model):
    wide = stub_generate(fc_graph(np.random.default_rng(1), sizes=(60000, 1)))  # arena 3 x 60 KB
    with pytest.raises(DoesNotFit, match="RAM") as e:
        build_firmware(wide, "NUCLEO-F446RE")     # 128 KiB of SRAM
    assert e.value.region == "RAM" and e.value.overflow_bytes > 50_000
    assert build_firmware(wide, "NUCLEO-L4R5ZI").static_ram_bytes > 180_000  # 640 KiB: fits
    small_flash = get_board("mps2-an386").with_budget(flash_bytes=4 * 1024)
    with pytest.raises(DoesNotFit) as e:
        build_firmware(model, small_flash)
    assert e.value.region == "FLASH" and e.value.overflow_bytes > 0


@needs_toolchain
def test_build_cache(model, tmp_path):
    first = build_firmware(model, "mps2-an386")
    t0 = time.perf_counter()
    again = build_firmware(model, "mps2-an386", tmp_path / "out")
    assert time.perf_counter() - t0 < 0.05
    assert again.cached and again.key == first.key and again.elf_path == tmp_path / "out" / "fw.elf"
    assert again.elf_path.read_bytes() == first.elf_path.read_bytes()
    other = build_firmware(model, get_board("mps2-an386").with_budget(flash_bytes=1 << 20))
    assert other.key != first.key and abs(other.flash_bytes - first.flash_bytes) < 64  # the board name differs


# ---- running in QEMU ----

@needs_emulation
@pytest.mark.parametrize("board", EMULATED)
def test_firmware_on_each_emulated_board(graph, model, board):
    image = build_firmware(model, board)
    with Emulator(image.elf_path, board) as emu:
        client = Client(emu.link)
        info = client.info()
        assert (info.board, info.counter, info.firmware_version) == (board, "instructions", FIRMWARE_VERSION)
        assert (info.cpuid >> 4) & 0xFFF == CPU_PART[get_board(board).core]  # the core QEMU really runs
        assert (info.input_bytes, info.output_bytes, info.num_ops) == (96, 10, 2)
        assert info.model_digest == graph.digest()[:16]
        xs = np.random.default_rng(2).integers(-128, 128, size=(3, 1, 96), dtype=np.int8)
        want = reference.run(graph, xs)[0]
        for x, y in zip(xs, want, strict=True):
            client.set_input(x.tobytes())
            counts = client.run(2)
            assert counts[0] == counts[1] > 96 * 24  # deterministic: the same input, the same count
            assert np.array_equal(np.frombuffer(client.read_output(10), np.int8), y.ravel())
        total = client.run(1, per_op=True)[0]
        per_op = client.op_counts(2)
        assert all(c > 0 for c in per_op) and 0 < total - sum(per_op) < 400  # glue + hook overhead
        assert per_op[0] > per_op[1]  # 2304 vs 240 MACs
        peak, reserved = client.stack()
        assert 32 < peak < reserved == 4096
        client.exit(7)
        assert emu.wait(5.0) == 7  # the firmware's semihosting exit code
    assert not qemu_children()


@needs_emulation
@pytest.mark.parametrize("board", ["mps2-an386", "mps2-an505"])
def test_one_counted_unit_is_one_instruction(graph, board):
    """The counter's scale, pinned: a loop of exactly 2 instructions per iteration must count 2 per
    iteration. A change in QEMU's SysTick clock or -icount shift would otherwise scale every latency."""
    image = build_firmware(stub_generate(graph, calibrate=True), board)
    with Emulator(image.elf_path, board) as emu:
        client = Client(emu.link)
        counts = {}
        for n in (1_000, 11_000, 21_000):
            client.set_input(n.to_bytes(2, "big") + bytes(94))
            counts[n] = client.run(1)[0]
        client.exit(0)
    assert counts[11_000] - counts[1_000] == counts[21_000] - counts[11_000] == 2 * 10_000
    assert 0 < counts[1_000] - 2 * 1_000 < 100  # the call, the load of N and the return


@needs_emulation
def test_counts_are_identical_across_launches(model):
    image = build_firmware(model, "mps2-an386")
    counts = []
    for _ in range(2):
        with Emulator(image.elf_path, "mps2-an386") as emu:
            client = Client(emu.link)
            client.set_input(bytes(range(96)))
            counts.append(client.run(1, per_op=True) + client.op_counts(2))
    assert counts[0] == counts[1]


@needs_emulation
def test_the_stack_peak_does_not_depend_on_host_timing():
    """The board idles in WFI between requests, so the host's timing moves the emulated clock; the
    counter restarts before every timed run, so its wrap interrupts (and their stacked frames) land at
    the same points of a DS-CNN-S run, whatever the host did before: the same RAM every time."""
    import time

    from hardware.codegen import generate
    from tests.helpers.int8_graphs import ds_cnn_s

    g = ds_cnn_s(np.random.default_rng(0))
    image = build_firmware(generate(g, "dsp"), "mps2-an386")
    x = np.random.default_rng(1).integers(-128, 128, size=g.tensors[g.inputs[0]].shape, dtype=np.int8)
    seen = set()
    for pause_s in (0.0, 0.37, 0.81):
        with Emulator(image.elf_path, "mps2-an386") as emu:
            client = Client(emu.link)
            time.sleep(pause_s)
            client.set_input(x.tobytes())
            count = client.run(1)[0]
            seen.add((count, client.stack()[0]))
    assert len(seen) == 1, seen


@needs_emulation
def test_fault_is_reported_with_its_pc(graph):
    image = build_firmware(stub_generate(graph, fault=True), "mps2-an386")
    with Emulator(image.elf_path, "mps2-an386") as emu:
        client = Client(emu.link, timeout_s=1.0, retries=0)
        client.set_input(bytes(96))
        with pytest.raises(BoardFault, match="fault at pc=0x") as e:
            client.run(1)
        assert e.value.cfsr or e.value.hfsr
        assert emu.wait(5.0) == 3
    assert not qemu_children()


@needs_emulation
def test_firmware_announces_its_boot_and_refuses_to_run_without_input(model):
    """What lets the host see a reset: the BOOT frame after every start, and NO_INPUT before any input."""
    image = build_firmware(model, "mps2-an386")
    with Emulator(image.elf_path, "mps2-an386") as emu:
        client = Client(emu.link, timeout_s=1.0, retries=0)
        assert client.info().firmware_version == FIRMWARE_VERSION and client.stats["boot_frames"] == 1
        with pytest.raises(BoardReset, match="lost its staged input"):
            client.run(1)
        client.set_input(bytes(96))
        assert len(client.run(2)) == 2
    assert not qemu_children()


@needs_emulation
def test_firmware_survives_a_noisy_link(graph, model):
    """Byte faults both ways on the real firmware: its COBS, CRC and answer cache at work."""
    image = build_firmware(model, "mps2-an386")
    with Emulator(image.elf_path, "mps2-an386") as emu:
        port = FaultyPort(emu.link.port, 0.001, seed=11, kinds=("drop", "dup", "flip"))
        client = Client(Link(port), timeout_s=0.2, retries=10)
        rng = np.random.default_rng(4)
        for _ in range(30):
            data = rng.integers(0, 256, size=int(rng.integers(1, 250)), dtype=np.uint8).tobytes()
            assert client.echo(data) == data
        x = rng.integers(-128, 128, size=(1, 96), dtype=np.int8)
        client.set_input(x.tobytes())
        client.run(1)
        assert np.array_equal(np.frombuffer(client.read_output(10), np.int8), reference.run(graph, x)[0].ravel())
        assert sum(port.counts.values()) > 0 and client.stats["retries"] > 0


@needs_emulation
def test_qemu_is_reaped_on_every_path(graph, model):
    image = build_firmware(stub_generate(graph, hang=True), "mps2-an386")
    emu = Emulator(image.elf_path, "mps2-an386")
    with pytest.raises(LinkTimeout), emu:
        client = Client(emu.link, timeout_s=0.2, retries=0)
        client.set_input(bytes(96))
        client.run(1, timeout_s=0.3)  # never answers: kws_run loops forever
    assert emu.proc is None and emu.exit_code is None and not qemu_children()
    with pytest.raises(EmulatorError, match="no firmware"):
        Emulator("/nonexistent/fw.elf", "mps2-an386").start()
    with pytest.raises(EmulatorError, match="not emulated"):
        Emulator(image.elf_path, "NUCLEO-F446RE").start()
    assert not qemu_children()


@needs_emulation
def test_taken_port_is_replaced(model):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()  # a foreign listener: we must neither fail nor connect to it
    image = build_firmware(model, "mps2-an386")
    with taken, Emulator(image.elf_path, "mps2-an386", port=taken.getsockname()[1]) as emu:
        assert emu.port != taken.getsockname()[1]
        assert Client(emu.link).info().board == "mps2-an386"
    assert not qemu_children()
