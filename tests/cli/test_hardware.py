"""``nas boards``, ``nas measure`` and ``nas firmware`` end to end, in process: the board table, a
small int8 model measured analytically (always) and in QEMU (with the toolchain), the errors a
user can make, and a firmware project that ``make`` rebuilds to the reported size."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import numpy as np
import pytest

from hardware import read_tflite, write_tflite
from hardware.boards import all_boards, get_board
from hardware.emulator import have_qemu
from hardware.firmware.build import _elf_sections, have_toolchain
from hardware.graph import DType, FullyConnectedOptions, Int8Graph, Op, OpKind, Padding, Tensor
from nas.cli import main
from tests.helpers.int8_graphs import GraphBuilder
from tests.helpers.marks import needs_emulation

needs_make = pytest.mark.skipif(not (have_toolchain() and shutil.which("make")),
                                reason="arm-none-eabi-gcc or make not installed")
BOARD = "mps2-an386"


def _small_graph():
    """conv -> depthwise -> conv -> mean -> FC: every kind of cost in a few thousand MACs."""
    b = GraphBuilder(np.random.default_rng(5), (1, 12, 8, 1))
    x = b.conv(b.input, 8, (3, 3), (2, 2), per_channel=True)
    x = b.depthwise(x, (3, 3), per_channel=True)
    x = b.conv(x, 12, (1, 1), padding=Padding.VALID, per_channel=True)
    x = b.mean(x)
    return b.finish([b.fc(x, 5)])


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    path = tmp_path_factory.mktemp("models") / "small.tflite"
    path.write_bytes(write_tflite(_small_graph()))
    return path


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def _json(capsys, *argv: str) -> tuple[int, dict]:
    rc, out, err = _run(capsys, *argv, "--json")
    return rc, json.loads(out)


def test_boards_lists_every_board_with_its_budgets(capsys):
    rc, rows = _json(capsys, "boards")
    assert rc == 0 and [r["name"] for r in rows] == [b.name for b in all_boards()] and len(rows) == 7
    for r in rows:
        board = get_board(r["name"])
        assert (r["flash_bytes"], r["ram_bytes"], r["clock_hz"]) == (board.flash_bytes, board.ram_bytes,
                                                                     board.clock_hz)
        assert r["counter"] == ("instructions" if r["link"] == "qemu" else "cycles") and r["cpi"] > 0
        assert (r["qemu_machine"] is not None) == (r["link"] == "qemu") and r["cpi_source"]
    assert [r["name"] for r in rows if r["default"]] == [BOARD]
    rc, out, _ = _run(capsys, "boards")
    assert rc == 0 and "640 KiB" in out and "QEMU -machine mps2-an385" in out and "serial /dev/ttyACM0" in out


def _check_layers(d: dict, per_op: int) -> None:
    rows = d["layers"]
    assert [r["kind"] for r in rows] == ["CONV_2D", "DEPTHWISE_CONV_2D", "CONV_2D", "MEAN", "FULLY_CONNECTED"]
    assert sum(r["macs"] for r in rows) == d["macs"] > 0 and all(r["count"] > 0 for r in rows)
    assert abs(sum(r["count"] for r in rows) - d["count"]) <= per_op * len(rows)
    assert sum(r["percent"] for r in rows) == pytest.approx(100.0 * sum(r["count"] for r in rows) / d["count"])
    conv = rows[0]
    assert conv["count_per_mac"] == pytest.approx(conv["count"] / conv["macs"])


def test_measure_analytic(capsys, model):
    rc, d = _json(capsys, "measure", model, "--evaluator", "analytic")
    assert rc == 0 and d["ok"] and d["estimated"] and d["evaluator"] == "analytic" and d["variant"] == "dsp"
    assert d["counter"] == "instructions" and d["count"] == d["instructions"] and d["cycles"] is None
    assert d["latency_ms"] is None and d["latency_ms_est"] > 0 and d["output_match"] is None
    assert d["flash_bytes"] == sum(d["flash_split"].values()) and d["ram_bytes"] > d["ram_arena_bytes"] > 0
    _check_layers(d, 1)  # the estimate is the sum of its per-op estimates (rounded per op)
    rc, out, _ = _run(capsys, "measure", model, "--evaluator", "analytic", "--variant", "plain")
    assert rc == 0 and "kernels plain" in out and "every figure is an estimate" in out
    assert re.search(r"latency_est +[\d.]+ ms, estimate: instructions x CPI 1.25 / 25 MHz", out)
    assert "instr/MAC" in out and "slowest op: " in out and "sum of ops" in out


@needs_emulation
def test_measure_in_the_emulator(capsys, model):
    rc, d = _json(capsys, "measure", model)  # the default evaluator for a QEMU board
    assert rc == 0 and d["ok"] and not d["estimated"] and d["evaluator"] == "emulator" and not d["cached"]
    assert d["output_match"] is True and d["outputs_checked"] == 3
    assert d["counter"] == "instructions" and d["count"] == d["instructions"] and d["latency_ms"] is None
    board = get_board(BOARD)
    assert d["latency_ms_est"] == pytest.approx(1e3 * d["count"] * board.cpi / board.clock_hz)
    assert d["flash_bytes"] == sum(d["flash_split"].values()) and set(d["flash_split"]) >= {"model_data", "startup"}
    assert d["ram_bytes"] == d["ram_static_bytes"] + d["ram_stack_bytes"]
    assert d["toolchain_version"] and d["firmware_version"] and d["qemu_version"] and d["wall_s"] > 0
    # per-op counts come from one extra run with the counter hooks on; each op's window holds some
    # hook overhead (a RESHAPE, an alias, shows 31 instructions; the rows sum to +114 over 26,349
    # on this model, +279 over 4.7 M on DS-CNN-S): within a few dozen instructions per op
    _check_layers(d, 40)
    rc, out, _ = _run(capsys, "measure", model)
    assert rc == 0 and "cached yes" in out and "bit-exact with the reference on 3" in out
    assert "not cycles" in out and "estimate: instructions x CPI" in out
    # --debug: a build that keeps every intermediate tensor, all compared on the board
    rc, dbg = _json(capsys, "measure", model, "--debug")
    activations = sum(t.data is None for t in read_tflite(model.read_bytes()).tensors) - 2
    assert rc == 0 and dbg["output_match"] is True and dbg["tensors_checked"] == activations > d["tensors_checked"]


def test_a_bad_model_file_is_a_user_error(capsys, model, tmp_path):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(model.read_bytes()[:100])
    for path in (bad, tmp_path / "missing.tflite"):
        rc, out, err = _run(capsys, "measure", path, "--evaluator", "analytic")
        assert rc == 2 and out == "" and err.startswith(f"error: {path}: ") and len(err.splitlines()) == 1


def test_a_float_model_is_refused(capsys, tmp_path):
    w = np.ones((3, 4), np.float32)
    g = Int8Graph((Tensor("x", (1, 4), DType.FLOAT32), Tensor("w", (3, 4), DType.FLOAT32, None, w),
                   Tensor("y", (1, 3), DType.FLOAT32)), (Op(OpKind.FULLY_CONNECTED, (0, 1), (2,),
                                                            FullyConnectedOptions()),), (0,), (2,))
    path = tmp_path / "float.tflite"
    path.write_bytes(write_tflite(g))
    for verb in (("measure", path, "--evaluator", "analytic"), ("firmware", path, "--board", BOARD, "--out", tmp_path)):
        rc, _, err = _run(capsys, *verb)
        assert rc == 2 and err.startswith(f"error: {path}: a float32 model")


def test_user_mistakes_exit_2(capsys, model, tmp_path):
    for argv, words in [(("--board", "NUCLEO-L4R5ZI", "--evaluator", "emulator"), "real board"),
                        (("--board", "mps2-an385", "--variant", "dsp"), "no DSP extension"),
                        (("--port", "loop://", "--evaluator", "analytic"), "--port is for --evaluator serial"),
                        (("--board", "no-such-board"), "unknown board")]:
        rc, _, err = _run(capsys, "measure", model, *argv)
        assert rc == 2 and words in err


def test_over_budget_says_so_and_exits_1(capsys, model):
    rc, out, err = _run(capsys, "measure", model, "--evaluator", "analytic", "--ram-kib", "1")
    assert rc == 1 and "does not fit on mps2-an386" in err and "RAM 1 KiB" in err
    if have_toolchain() and have_qemu():  # found by the linker
        rc, _, err = _run(capsys, "measure", model, "--flash-kib", "2", "--no-cache")
        assert rc == 1 and "does not fit" in err and "region FLASH overflowed by" in err


def test_an_unreachable_board_is_a_failed_measurement(capsys, model):
    rc, _, err = _run(capsys, "measure", model, "--board", "NUCLEO-F446RE", "--port", "/dev/no-such-tty")
    assert rc == 1 and "failed" in err and "link:" in err


@needs_make
@pytest.mark.parametrize("board", ["mps2-an386", "NUCLEO-L4R5ZI"])
def test_firmware_project_rebuilds_with_make(capsys, model, tmp_path, board):
    out_dir = tmp_path / "project"
    rc, out, _ = _run(capsys, "firmware", model, "--board", board, "--out", out_dir)
    assert rc == 0
    flash = int(re.search(r"flash ([\d,]+) B", out).group(1).replace(",", ""))
    readme = (out_dir / "README.txt").read_text()
    if board == "mps2-an386":
        assert "qemu-system-arm -machine mps2-an386" in readme and "-kernel fw.elf" in readme
    else:
        assert "pyocd flash fw.elf" in readme and "--evaluator serial --port /dev/ttyACM0" in readme
    assert (out_dir / "small.tflite").read_bytes() == model.read_bytes()
    built = (out_dir / "fw.elf").read_bytes()
    (out_dir / "fw.elf").unlink()
    proc = subprocess.run(["make", "-C", str(out_dir)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    sections = _elf_sections((out_dir / "fw.elf").read_bytes())
    assert sum(s.size for s in sections if s.alloc and not s.nobits) == flash
    assert sections == _elf_sections(built)
