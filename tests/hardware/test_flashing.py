"""Flashing real boards: the user's command gets the image paths as single arguments (never a shell),
tool failures and hangs are named errors, pyOCD is driven with the board's target, and a failed
flash is a failed measurement, not a crash."""

from __future__ import annotations

import struct
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from hardware.boards import get_board
from hardware.firmware.build import build_firmware, have_toolchain
from hardware.flashing import CommandProgrammer, FlashError, PyOCDProgrammer, make_programmer
from tests.helpers.marks import needs_toolchain
from tests.helpers.standins import fc_graph, stub_generate

BOARD = get_board("NUCLEO-F446RE")


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory):
    if not have_toolchain():
        pytest.skip("arm-none-eabi-gcc not installed")
    graph = fc_graph(np.random.default_rng(0), sizes=(32, 8, 4), per_channel=True)
    hostile = tmp_path_factory.mktemp("fw") / "a b; touch PWNED $(id)"  # a path a shell would misread
    return build_firmware(stub_generate(graph), BOARD, hostile)


@needs_toolchain
def test_command_gets_the_image_paths_as_single_arguments(image, tmp_path: Path) -> None:
    out = tmp_path / "got"
    script = ("import sys, pathlib; a, b, c, o = sys.argv[1:]; "
              "pathlib.Path(o).write_bytes(b'|'.join(pathlib.Path(p).read_bytes()[:8] for p in (a, b, c)))")
    prog = CommandProgrammer([sys.executable, "-c", script, "{elf}", "{bin}", "{hex}", str(out)])
    prog(b"", image, BOARD)
    elf, binary, ihex = out.read_bytes().split(b"|")
    assert elf.startswith(b"\x7fELF")
    stack_top, reset = struct.unpack("<II", binary)  # a raw image starts with the vector table
    assert BOARD.ram.origin < stack_top <= BOARD.ram.end
    assert BOARD.flash.origin <= reset < BOARD.flash.end and reset & 1  # a Thumb address in flash
    assert ihex == b":0200000"  # Intel HEX: an extended address record (:02 0000 04) first
    assert not list(Path(image.elf_path).parent.parent.glob("PWNED*"))  # nothing ran in a shell


@needs_toolchain
def test_a_string_command_is_split_without_a_shell(image, tmp_path: Path) -> None:
    marker = tmp_path / "flashed"
    prog = make_programmer(f"{sys.executable} -c \"import sys, pathlib; pathlib.Path(sys.argv[2]).write_text("
                           f"sys.argv[1])\" {{elf}} {marker}")
    prog(b"", image, BOARD)
    assert marker.read_text() == str(image.elf_path)


@needs_toolchain
@pytest.mark.parametrize("argv, needle", [
    ([sys.executable, "-c", "import sys; sys.stderr.write('no ST-LINK detected'); sys.exit(3)", "{elf}"],
     "exited with 3: no ST-LINK detected"),
    (["kwsnas-no-such-flasher", "{bin}"], "'kwsnas-no-such-flasher' not found on PATH"),
    ([sys.executable, "-c", "import time; time.sleep(30)", "{elf}"], "did not finish in 1 s"),
])
def test_tool_failures_are_named(image, argv, needle) -> None:
    with pytest.raises(FlashError, match=needle.replace("(", r"\(")):
        CommandProgrammer(argv, timeout_s=1.0)(b"", image, BOARD)


def test_a_command_must_name_the_image() -> None:
    with pytest.raises(ValueError, match=r"\{elf\}"):
        make_programmer("st-flash write firmware.bin 0x08000000")
    assert make_programmer(None) is None and isinstance(make_programmer("pyocd"), PyOCDProgrammer)


def test_pyocd_missing_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyocd", None)  # import fails as if not installed
    with pytest.raises(FlashError, match=r"kwsnas\[boards\]"):
        PyOCDProgrammer()(b"", types.SimpleNamespace(elf_path="fw.elf"), BOARD)


class _Session:
    def __init__(self, calls: list) -> None:
        self.calls, self.target = calls, types.SimpleNamespace(reset=lambda: calls.append("reset"))

    def __enter__(self):
        self.calls.append("open")
        return self

    def __exit__(self, *exc):
        self.calls.append("close")


def _fake_pyocd(monkeypatch: pytest.MonkeyPatch, calls: list, probe_found: bool = True) -> None:
    def session_with_chosen_probe(**kw):
        calls.append(("session", kw))
        return _Session(calls) if probe_found else None

    class FileProgrammer:
        def __init__(self, session):
            pass

        def program(self, path):
            calls.append(("program", path))

    mods = {"pyocd": types.ModuleType("pyocd"), "pyocd.core": types.ModuleType("pyocd.core"),
            "pyocd.core.helpers": types.ModuleType("pyocd.core.helpers"),
            "pyocd.flash": types.ModuleType("pyocd.flash"),
            "pyocd.flash.file_programmer": types.ModuleType("pyocd.flash.file_programmer")}
    mods["pyocd.core.helpers"].ConnectHelper = types.SimpleNamespace(session_with_chosen_probe=session_with_chosen_probe)
    mods["pyocd.flash.file_programmer"].FileProgrammer = FileProgrammer
    for name, mod in mods.items():
        monkeypatch.setitem(sys.modules, name, mod)


def test_pyocd_flashes_the_elf_with_the_boards_target_then_resets(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list = []
    _fake_pyocd(monkeypatch, calls)
    PyOCDProgrammer(probe="0668FF")(b"", types.SimpleNamespace(elf_path="/x/fw.elf"), BOARD)
    (_, kw), *rest = calls
    assert kw["target_override"] == "stm32f446retx" and kw["unique_id"] == "0668FF" and not kw["blocking"]
    assert rest == ["open", ("program", "/x/fw.elf"), "reset", "close"]
    calls.clear()
    _fake_pyocd(monkeypatch, calls, probe_found=False)
    with pytest.raises(FlashError, match="no debug probe found"):
        make_programmer("pyocd:stm32f446retx")(b"", types.SimpleNamespace(elf_path="/x/fw.elf"), BOARD)


def test_a_failed_flash_is_a_failed_measurement(monkeypatch: pytest.MonkeyPatch) -> None:
    from hardware.evaluators import SerialBoardEvaluator

    graph = fc_graph(np.random.default_rng(1), sizes=(16, 4), per_channel=True)
    from hardware.tflite_io import write_tflite

    def refuse(model_bytes, image, board):
        raise FlashError("st-flash exited with 1: target not found")

    m = SerialBoardEvaluator("loop://", program=refuse, generate=stub_generate).measure(write_tflite(graph), BOARD)
    assert m.ok is False and "programming the board: st-flash exited with 1" in m.error
