"""The hardware side of kwsnas: an int8 graph, its `.tflite` reader and writer, and a numpy
reference interpreter bit-exact with TensorFlow Lite Micro.

Works on any `.tflite` with numpy, ``tflite`` and ``flatbuffers`` only; it never imports ``nas``
or ``search_spaces``. ``hardware.arena`` (TFLM arena measurement) additionally needs
``tflite-micro``.

    from hardware import read_tflite, run
    graph = read_tflite(open("model.tflite", "rb").read())
    scores = run(graph, x)[0]
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hardware.graph import GraphError, Int8Graph, Op, OpKind, Quantization, Tensor
    from hardware.reference import run, run_all
    from hardware.tflite_io import (
        ModelFormatError,
        TfliteError,
        UnsupportedModelError,
        read_tflite,
        write_tflite,
    )

__all__ = [
    "GraphError", "Int8Graph", "ModelFormatError", "Op", "OpKind", "Quantization", "Tensor", "TfliteError",
    "UnsupportedModelError", "read_tflite", "run", "run_all", "write_tflite",
]

# loaded on first use (PEP 562), so that importing a light submodule (hardware.boards, the evaluator
# kinds) does not load numpy, the .tflite schema and the reference: the CLI imports those when it starts
_LAZY = {**dict.fromkeys(("GraphError", "Int8Graph", "Op", "OpKind", "Quantization", "Tensor"), "graph"),
         **dict.fromkeys(("run", "run_all"), "reference"),
         **dict.fromkeys(("ModelFormatError", "TfliteError", "UnsupportedModelError", "read_tflite", "write_tflite"),
                         "tflite_io")}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
