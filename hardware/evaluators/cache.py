"""The on-disk measurement cache and what its key covers besides the model and the board."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hardware.evaluators.result import Measurement

if TYPE_CHECKING:
    from hardware.boards import Board

_HARDWARE = Path(__file__).resolve().parents[1]   # the hardware package


class MeasurementCache:
    """JSON files under ``<cache root>/measurements``; writes are atomic (temp file + rename)."""

    def __init__(self, root: Path | str | None = None) -> None:
        if root is None:
            base = os.environ.get("KWSNAS_CACHE_DIR")
            root = (Path(base) if base else Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
                    / "kwsnas") / "measurements"
        self.root = Path(root)

    @staticmethod
    def key(model_bytes: bytes, board: Board, settings: Mapping[str, Any]) -> str:
        h = hashlib.sha256(hashlib.sha256(bytes(model_bytes)).digest())
        h.update(json.dumps([board.fingerprint(), dict(settings)], sort_keys=True, default=str).encode())
        return h.hexdigest()[:32]

    def get(self, key: str) -> Measurement | None:
        try:
            return Measurement.from_dict(json.loads((self.root / f"{key}.json").read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def put(self, key: str, m: Measurement) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".tmp-", suffix=".json")
        with os.fdopen(fd, "w") as f:
            json.dump(m.to_dict(), f)
        os.replace(tmp, self.root / f"{key}.json")


# Everything besides the code generator that can change a measurement or its verdict: the requantization
# constants and fixed-point arithmetic the C code and the golden reference share, the reference the board's
# outputs are compared with, the .tflite reader and the int8 graph it builds, the wire protocol, and the
# evaluators themselves (the checks). Paths relative to the hardware package; folders count whole.
VERDICT_SOURCES = ("op_params.py", "fixedpoint.py", "reference.py", "graph.py", "graph_types.py", "_validate.py",
                   "tflite_read.py", "tflite_schema.py", "tflite_io.py", "tflite_write.py", "_flatbuf.py", "wire.py",
                   "evaluators", "codegen")


@functools.cache
def sources_digest() -> str:
    """Hash of every source a result or its verdict depends on (`VERDICT_SOURCES`: the code generator
    included): a change to any of them makes new measurements."""
    h = hashlib.sha256()
    for name in VERDICT_SOURCES:
        path = _HARDWARE / name
        files = sorted(p for p in path.rglob("*") if p.suffix in (".py", ".h", ".c")) if path.is_dir() else [path]
        for p in files:
            h.update(p.relative_to(_HARDWARE).as_posix().encode() + b"\0" + p.read_bytes())
    return h.hexdigest()[:16]
