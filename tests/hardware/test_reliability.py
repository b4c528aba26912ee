"""Hardware faults, injected and counted: a noisy link, a board that resets or answers slowly, QEMU that
dies at start or mid-dialogue, a missing toolchain. Each ends in a correct measurement or a failed one
that says why — never a wrong figure, never a hang, never a leftover QEMU process."""

from __future__ import annotations

import stat
import time
from pathlib import Path

import pytest

from hardware import write_tflite
from hardware.evaluators import EmulatorEvaluator, Measurement, SerialBoardEvaluator
from hardware.link import FaultyPort
from tests.helpers.marks import needs_emulation
from tests.helpers.standins import FakeBoard, contract_graph, qemu_children, stub_generate

BOARD = "mps2-an386"


@pytest.fixture(scope="module")
def graph():
    return contract_graph()


@pytest.fixture(scope="module")
def model_bytes(graph):
    return write_tflite(graph)


def _figures(m: Measurement) -> tuple:
    """What a user reads off a measurement (wall time and the link's luck aside)."""
    return (m.ok, m.cycles, m.run_counts, tuple(o.count for o in m.ops), m.ram_stack_bytes, m.output_match,
            m.outputs_checked, m.model_digest)


class Programmer:
    """Programs the fake board; ``make(n)`` builds the fake for the n-th programming (0-based)."""

    def __init__(self, graph, make=lambda graph, n: FakeBoard(graph)) -> None:
        self.graph, self.make, self.programmed, self.fake = graph, make, 0, None

    def __call__(self, model_bytes, image, board) -> None:
        self.fake = self.make(self.graph, self.programmed)
        self.programmed += 1

    def open_port(self, url: str):
        return self.fake


# ---- the link ----

def test_100_measurements_at_1_percent_byte_corruption_are_right_or_fail_cleanly(graph, model_bytes, fault_counts):
    """1 % of the bytes both ways dropped, doubled or bit-flipped: CRC, retransmission and smaller
    chunks on a bad link bring the right figures back, and nothing wrong is ever accepted."""
    prog = Programmer(graph)
    clean = SerialBoardEvaluator("loop://", program=prog, open_port=prog.open_port, checks=1, runs=1,
                                 cache=False).measure(model_bytes, BOARD)
    assert clean.ok
    right = failed = wrong = 0
    injected = 0
    for seed in range(100):
        ports: list[FaultyPort] = []

        def noisy(url, seed=seed, ports=ports):
            ports.append(FaultyPort(prog.open_port(url), 0.01, seed=seed, kinds=("drop", "dup", "flip")))
            return ports[-1]

        ev = SerialBoardEvaluator("loop://", program=prog, open_port=noisy, timeout_s=0.05, run_timeout_s=0.05,
                                  retries=10, checks=1, runs=1, cache=False)  # every command, fewest repeats
        m = ev.measure(model_bytes, BOARD)
        injected += sum(sum(p.counts.values()) for p in ports)
        if m.ok and _figures(m) == _figures(clean):
            right += 1
        elif not m.ok and m.error:
            failed += 1
        else:
            wrong += 1
    fault_counts(f"link at 1 % byte corruption: 100 measurements, {right} right, {failed} failed cleanly, "
                 f"{wrong} wrong; byte faults", injected=injected, survived=injected if not wrong else 0, lost=wrong)
    assert wrong == 0 and right + failed == 100
    assert right >= 98, f"only {right} of 100 measurements came through"
    assert injected > 300


def test_faulty_port_wraps_any_pyserial_url():
    port = FaultyPort.open("loop://", 0.5, seed=1, kinds=("flip",))
    port.write(bytes(100))
    time.sleep(0.01)
    got = port.read(100)
    assert len(got) == 100 and 0 < sum(b != 0 for b in got) and port.counts["flip"] > 0
    port.close()


# ---- the board ----

def test_a_board_that_resets_mid_run_is_programmed_again_and_measured_right(graph, model_bytes, fault_counts):
    survived = 0
    points = (2, 4, 6, 9)  # during INFO's answer, staging the input, RUN, READ_OUTPUT
    for at in points:
        prog = Programmer(graph, make=lambda g, n, at=at: FakeBoard(g, reset_at=(at,) if n == 0 else ()))
        m = SerialBoardEvaluator("loop://", program=prog, open_port=prog.open_port, timeout_s=0.05, run_timeout_s=0.2,
                                 cache=False).measure(model_bytes, BOARD)
        assert m.ok and m.output_match and prog.programmed == 2, (at, m.error)
        survived += 1
    fault_counts("board reset mid-run (re-programmed, measured again)", injected=len(points), survived=survived,
                 lost=len(points) - survived)


def test_a_board_that_keeps_resetting_fails_with_the_reason(graph, model_bytes):
    prog = Programmer(graph, make=lambda g, n: FakeBoard(g, reset_at=(5,)))
    m = SerialBoardEvaluator("loop://", program=prog, open_port=prog.open_port, timeout_s=0.05, run_timeout_s=0.2,
                             cache=False).measure(model_bytes, BOARD)
    assert not m.ok and "BoardReset" in m.error and "twice" in m.error and prog.programmed == 2


def test_a_reset_without_its_boot_frame_is_still_caught(graph, model_bytes):
    """The BOOT frame lost on the wire: RUN finds no staged input (NO_INPUT) and says the board reset."""
    class Quiet(FakeBoard):
        def reset(self):
            self.resets += 1
            self.staged, self._last = False, None

    prog = Programmer(graph, make=lambda g, n: Quiet(g, reset_at=(6,)))
    m = SerialBoardEvaluator("loop://", program=prog, open_port=prog.open_port, timeout_s=0.05, run_timeout_s=0.2,
                             cache=False).measure(model_bytes, BOARD)
    assert not m.ok and "lost its staged input" in m.error


@pytest.mark.parametrize("firmware, digest, needle", [
    ("1.0", None, "runs kwsnas firmware 1.0"),            # flashed by an older kwsnas
    (None, "0123456789abcdef", "runs model 0123456789abcdef"),  # flashed with another model
])
def test_a_board_running_other_firmware_is_flashed_again(graph, model_bytes, firmware, digest, needle):
    prog = Programmer(graph, make=lambda g, n: FakeBoard(g, firmware=firmware, digest=digest) if n == 0
                      else FakeBoard(g))
    m = SerialBoardEvaluator("loop://", program=prog, open_port=prog.open_port, cache=False).measure(model_bytes,
                                                                                                     BOARD)
    assert m.ok and prog.programmed == 2
    stuck = Programmer(graph, make=lambda g, n: FakeBoard(g, firmware=firmware, digest=digest))
    m = SerialBoardEvaluator("loop://", program=stuck, open_port=stuck.open_port, cache=False).measure(model_bytes,
                                                                                                       BOARD)
    assert not m.ok and needle in m.error and stuck.programmed == 2
    # without a programmer nothing can be flashed: one look, then the reason
    fake = FakeBoard(graph, firmware=firmware, digest=digest)
    m = SerialBoardEvaluator("loop://", open_port=lambda url: fake, cache=False).measure(model_bytes, BOARD)
    assert not m.ok and needle in m.error


def test_a_slow_board_is_waited_for_and_a_too_slow_one_fails_in_bounded_time(graph, model_bytes):
    prog = Programmer(graph, make=lambda g, n: FakeBoard(g, delay_s=0.03))
    m = SerialBoardEvaluator("loop://", program=prog, open_port=prog.open_port, timeout_s=0.2, checks=1, runs=1,
                             cache=False).measure(model_bytes, BOARD)
    assert m.ok and m.output_match
    prog = Programmer(graph, make=lambda g, n: FakeBoard(g, delay_s=1.0))
    t0 = time.monotonic()
    m = SerialBoardEvaluator("loop://", program=prog, open_port=prog.open_port, timeout_s=0.1, retries=2,
                             cache=False).measure(model_bytes, BOARD)
    assert not m.ok and "LinkTimeout" in m.error and "INFO" in m.error
    assert time.monotonic() - t0 < 2.0  # 3 attempts of 0.1 s, not the board's pace


# ---- the emulator ----

def _fake_qemu(tmp_path: Path, body: str) -> tuple[str, Path]:
    """A stand-in qemu-system-arm: a shell script that logs each launch, then runs ``body``."""
    log = tmp_path / "launches"
    exe = tmp_path / "qemu-system-arm"
    exe.write_text(f"#!/bin/sh\necho launch >> '{log}'\n{body}\n")
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    return str(exe), log


@needs_emulation
def test_qemu_crashing_at_start_is_retried_once_then_reported(model_bytes, tmp_path, monkeypatch, fault_counts):
    exe, launches = _fake_qemu(tmp_path, 'echo "qemu-system-arm: cannot map the kernel image" >&2; exit 1')
    monkeypatch.setattr("hardware.emulator._QEMU", exe)
    m = EmulatorEvaluator(generate=stub_generate, cache=False).measure(model_bytes, BOARD)
    assert not m.ok and "qemu exited with 1" in m.error and "cannot map the kernel image" in m.error
    assert launches.read_text().count("launch") == 2 and not qemu_children()
    fault_counts("QEMU crash at start (retried once, then a failed measurement)", injected=2, survived=2, lost=0)


@needs_emulation
@pytest.mark.parametrize("kills", [1, 2])
def test_qemu_killed_mid_dialogue_is_retried_once(model_bytes, monkeypatch, kills, fault_counts):
    """QEMU dies (kill -9) once its UART is connected: the first time is retried and measured right,
    the second time the measurement fails with the cause. No QEMU is left either way."""
    from hardware.emulator import Emulator

    start, killed = Emulator.start, []

    def start_then_die(self):
        start(self)
        if len(killed) < kills:
            self.proc.kill()
            killed.append(self.proc.pid)
        return self

    monkeypatch.setattr(Emulator, "start", start_then_die)
    t0 = time.monotonic()
    m = EmulatorEvaluator(generate=stub_generate, cache=False).measure(model_bytes, BOARD)
    assert time.monotonic() - t0 < 30 and not qemu_children()
    if kills == 1:
        assert m.ok and m.output_match
    else:
        assert not m.ok and m.error.startswith("emulator: ")
    fault_counts(f"QEMU killed mid-dialogue, {kills}x in one measurement ({'measured' if m.ok else 'failed'})",
                 injected=kills, survived=kills, lost=0)


@needs_emulation
def test_a_slow_emulated_model_is_waited_for_and_a_too_slow_one_fails_with_the_cause(model_bytes, fault_counts):
    """A model that takes about a second per run (1.2 G instructions): measured within a generous bound;
    past a tight one, retried once in a fresh QEMU, then failed naming the timeout. No QEMU left."""
    slow = lambda g, **kw: stub_generate(g, spin=200_000_000, **kw)  # noqa: E731
    kw = dict(checks=1, per_op=False, cache=False)
    m = EmulatorEvaluator(generate=slow, run_timeout_s=30.0, **kw).measure(model_bytes, BOARD)
    assert m.ok and m.output_match and m.instructions > 1_000_000_000
    t0 = time.monotonic()
    m = EmulatorEvaluator(generate=slow, run_timeout_s=0.2, retries=0, **kw).measure(model_bytes, BOARD)
    assert not m.ok and "LinkTimeout: RUN" in m.error and time.monotonic() - t0 < 10
    assert not qemu_children()
    fault_counts("slow emulated model (within / past the run timeout)", injected=2, survived=2, lost=0)


@needs_emulation
def test_no_qemu_is_left_after_repeated_faulty_measurements(model_bytes):
    """A hang, a fault and a clean run, over and over: the count of QEMU children stays at zero."""
    kinds = [dict(hang=True), dict(fault=True), {}]
    for i in range(9):
        kw = kinds[i % 3]
        ev = EmulatorEvaluator(generate=lambda g, kw=kw, **k: stub_generate(g, **kw, **k), run_timeout_s=0.3,
                               retries=0, cache=False)
        m = ev.measure(model_bytes, BOARD)
        assert m.ok == (not kw)
        assert not qemu_children()


# ---- the toolchain ----

def test_a_missing_toolchain_names_the_packages_and_offers_the_analytic_evaluator(graph, model_bytes, tmp_path,
                                                                                  monkeypatch, capsys, caplog):
    from nas.cli import main

    monkeypatch.setenv("KWSNAS_ARM_GCC", str(tmp_path / "no-such-gcc"))
    monkeypatch.setattr("hardware.emulator._QEMU", str(tmp_path / "no-such-qemu"))
    model = tmp_path / "m.tflite"
    model.write_bytes(model_bytes)
    m = EmulatorEvaluator(generate=stub_generate, cache=False).measure(model_bytes, BOARD)
    assert not m.ok and "gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm" in m.error
    assert "apt-get install" in m.error and "--evaluator analytic" in m.error
    assert main(["measure", str(model), "--board", BOARD, "--evaluator", "emulator"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "gcc-arm-none-eabi" in err and "--evaluator analytic" in err
    # with no evaluator named, `nas measure` says why it estimates, and does
    assert main(["measure", str(model), "--board", BOARD, "--json"]) == 0
    assert '"estimated": true' in capsys.readouterr().out and "gcc-arm-none-eabi" in caplog.text
    # a search that would measure on the emulator refuses to start, before any data or trial
    monkeypatch.chdir(tmp_path)
    assert main(["search", "--name", "no-tools", "--trials", "1", "--evaluator", "emulator"]) == 2
    err = capsys.readouterr().err
    assert "gcc-arm-none-eabi" in err and "--evaluator analytic" in err and not list(tmp_path.glob("runs/*/*.db"))
    from hardware.firmware.build import ToolchainMissing, build_firmware

    with pytest.raises(ToolchainMissing, match="no-such-gcc not found: install the Debian packages"):
        build_firmware(stub_generate(graph), BOARD)
