"""The default evaluator: generate C, build the firmware for an emulated board, run it in QEMU."""

from __future__ import annotations

import logging
from typing import Any

from hardware.boards import Board
from hardware.emulator import Emulator, EmulatorError, have_qemu, qemu_version
from hardware.evaluators.base import failed
from hardware.evaluators.building import BuildingEvaluator
from hardware.evaluators.result import Measurement
from hardware.evaluators.session import Mismatch, assemble, run_session
from hardware.firmware.build import have_toolchain
from hardware.graph import Int8Graph
from hardware.tools import install_hint
from hardware.wire import BoardFault, Client, ProtocolError

log = logging.getLogger(__name__)


def emulation_missing() -> str | None:
    """None when the emulator evaluator can run here; else which tools are missing and how to get them."""
    missing = [t for t, ok in (("arm-none-eabi-gcc", have_toolchain()), ("qemu-system-arm", have_qemu())) if not ok]
    return f"{' and '.join(missing)} not found: {install_hint(missing)}" if missing else None


class EmulatorEvaluator(BuildingEvaluator):
    """Generate C, build the firmware for an emulated board, run it in QEMU; counts instructions."""

    name = "emulator"

    def _settings(self, board: Board) -> dict[str, Any]:
        return {**super()._settings(board), "qemu": qemu_version()}

    def _measure(self, model_bytes: bytes, graph: Int8Graph, board: Board) -> Measurement:
        if not board.emulated:
            return failed(self.name, board, graph, f"board {board.name} is not emulated")
        missing = emulation_missing()
        if missing:
            return failed(self.name, board, graph, f"emulator: {missing}")
        gm, image, refused = self._build(graph, board)
        if refused is not None:
            return refused
        last, real = "", self._real(graph)
        for attempt in range(2):  # one retry for QEMU or link trouble, then a failed Measurement
            emu = Emulator(image.elf_path, board)
            try:
                emu.start()
                client = Client(emu.link, timeout_s=2.0, retries=self.retries)
                res = run_session(client, graph, gm.model_digest, checks=self.checks, runs=self.runs,
                                  per_op=self.per_op, seed=self.seed, run_timeout_s=self._run_timeout_s(graph), gm=gm,
                                  real=real)
                client.exit(0)
                emu.wait(2.0)
                return assemble(self.name, board, graph, gm, image, res, variant=self._variant(board),
                                qemu_version=qemu_version())
            except (BoardFault, Mismatch) as e:  # deterministic: retrying cannot help
                return failed(self.name, board, graph, str(e), variant=self._variant(board))
            except (EmulatorError, ProtocolError, OSError) as e:
                last = f"{type(e).__name__}: {e}"
                log.warning("emulator attempt %d on %s failed: %s", attempt + 1, board.name, last)
            finally:
                emu.stop(timeout_s=0.5)
        return failed(self.name, board, graph, f"emulator: {last}", variant=self._variant(board))
