"""A real board (or any firmware) reached over a pyserial URL, programmed first if asked."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np

from hardware.boards import Board
from hardware.evaluators.base import failed
from hardware.evaluators.building import BuildingEvaluator
from hardware.evaluators.result import Measurement
from hardware.evaluators.session import Mismatch, SessionResult, assemble, run_session
from hardware.firmware.build import have_toolchain
from hardware.graph import Int8Graph
from hardware.link import Link
from hardware.wire import BoardFault, BoardReset, Client, ProtocolError

log = logging.getLogger(__name__)


class SerialBoardEvaluator(BuildingEvaluator):
    """A board reached over a pyserial URL (``/dev/ttyACM0``, ``socket://host:port``, ``rfc2217://``,
    ``loop://`` with a fake); ``url`` may be a callable returning it (the port is known late).

    The board must run the firmware for the model. ``program(model_bytes, image, board)`` is
    called first to put it there (a pyOCD flash for a real part, a QEMU launch in tests);
    ``image`` is the built :class:`~hardware.firmware.build.FirmwareImage`, or None when there is no
    toolchain or code generator here (then the sizes stay unknown, but counts and the output check
    still come back). The board's INFO must name the model's digest, else the measurement fails.
    ``open_port(url)`` may replace ``serial.serial_for_url`` (tests wrap ports with faults).
    """

    name = "serial"

    def __init__(self, url: str | Callable[[], str] | None = None, *, program: Callable | None = None,
                 baud: int | None = None, open_port: Callable | None = None, runs: int = 5,
                 timeout_s: float = 2.0, connect_timeout_s: float = 5.0, **kw) -> None:
        super().__init__(runs=runs, **kw)
        self.url, self.program, self.baud, self.open_port, self.timeout_s = url, program, baud, open_port, timeout_s
        self.connect_timeout_s = connect_timeout_s

    def _settings(self, board: Board) -> dict[str, Any]:
        return {**super()._settings(board), "url": self.url if isinstance(self.url, str) else None}

    def _measure(self, model_bytes: bytes, graph: Int8Graph, board: Board) -> Measurement:
        gm = image = None
        if have_toolchain():
            gm, image, refused = self._build(graph, board)
            if refused is not None:
                return refused
        real = self._real(graph)
        for attempt in range(2):  # a board that reset or runs something else: program it again, once
            if self.program is not None:
                try:
                    self.program(model_bytes, image, board)
                except Exception as e:
                    return failed(self.name, board, graph, f"programming the board: {e}")
            try:
                res = self._dialogue(graph, board, gm, real)
            except (BoardReset, Mismatch) as e:
                again = attempt == 0 and (isinstance(e, BoardReset) or (e.reflash and self.program is not None))
                if again:
                    log.warning("%s on %s: %s; %s", self.name, board.name, e,
                                "programming it again" if self.program is not None else "measuring again")
                    continue
                return failed(self.name, board, graph, f"{type(e).__name__.lstrip('_')}: {e}"
                              + (" (twice)" if attempt else ""), variant=self._variant(board))
            except LinkFailed as e:
                return failed(self.name, board, graph, str(e), variant=self._variant(board))
            return assemble(self.name, board, graph, gm, image, res, variant=self._variant(board))
        raise AssertionError("unreachable")

    def _dialogue(self, graph: Int8Graph, board: Board, gm=None, real: np.ndarray | None = None) -> SessionResult:
        """Open the port and run the measurement session; link trouble becomes :class:`LinkFailed`."""
        url = self.url() if callable(self.url) else self.url or board.serial_url
        try:
            if self.open_port is not None:
                link = Link(self.open_port(url))
            else:
                link = Link.open(url, self.baud or board.baud, connect_timeout_s=self.connect_timeout_s)
        except (ConnectionError, OSError) as e:
            raise LinkFailed(f"link: {e}") from e
        try:
            client = Client(link, timeout_s=self.timeout_s, retries=self.retries)
            return run_session(client, graph, graph.digest()[:16], checks=self.checks, runs=self.runs,
                               per_op=self.per_op, seed=self.seed, run_timeout_s=self._run_timeout_s(graph), gm=gm,
                               real=real)
        except (BoardReset, Mismatch):
            raise
        except (BoardFault, ProtocolError, OSError) as e:
            raise LinkFailed(f"{type(e).__name__}: {e}") from e
        finally:
            link.close()


class LinkFailed(RuntimeError):
    """The port could not be opened or the dialogue broke off (the message says how)."""
