"""Run generated C on the host: compile with the host gcc into a shared library, call it with ctypes.

Both variants build here: on a non-ARM host ``kws_acle.h`` implements the DSP intrinsics in
portable C, so the DSP kernels' arithmetic is tested bit for bit without a board.

    model = HostModel(graph, "dsp")
    y = model.run(x_int8_batch)                  # (B, *output_shape) int8
    y, tensors = model.run(x, intermediates=True)  # plus every op's output, for debugging

Libraries are cached by (graph digest, variant, generator version, hash of the sources and
flags) under ``cache_dir`` (default: a per-user directory in the system temp dir); a cached
library is reused across processes. Not thread-safe: a library holds one static arena.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path

import numpy as np

from hardware.codegen._generate import GeneratedModel, generate
from hardware.graph import Int8Graph

log = logging.getLogger(__name__)

CFLAGS = ("-O2", "-std=c99", "-fPIC", "-shared", "-Wall", "-Wextra")


@lru_cache(maxsize=4)
def _compiler_id(cc: str) -> str:
    return subprocess.run([cc, "--version"], capture_output=True, text=True, check=True).stdout.splitlines()[0]


def _wrapper(gm: GeneratedModel) -> tuple[str, str]:
    """(forced-include hook header, runner source) for the host library."""
    P, M = gm.prefix, gm.prefix.upper()
    hooks = f"void {P}_host_op_end(int i);\n#define {M}_OP_END(i) {P}_host_op_end(i)\n"
    runner = f"""#include <stdint.h>
#include <string.h>
#include "{P}_model.h"

static const uint32_t *dbg_table; /* per op: arena offset, bytes, offset in dbg_out */
static int8_t *dbg_out;

void {P}_host_op_end(int i)
{{
    if (dbg_out) {{
        const uint32_t *e = dbg_table + 3 * i;
        memcpy(dbg_out + e[2], (const int8_t *){P}_input() - {gm.input_offset} + e[0], e[1]);
    }}
}}

int {P}_host_run(const int8_t *x, int8_t *y, int n, const uint32_t *table, int8_t *dbg, uint32_t dbg_stride)
{{
    for (int i = 0; i < n; i++) {{
        dbg_table = table;
        dbg_out = dbg ? dbg + (size_t)i * dbg_stride : 0;
        {P}_invoke(x + (size_t)i * {M}_INPUT_BYTES, y + (size_t)i * {M}_OUTPUT_BYTES);
    }}
    dbg_out = 0;
    return n;
}}
"""
    return hooks, runner


def default_cache_dir() -> Path:
    return Path(tempfile.gettempdir()) / f"kwsnas-codegen-{os.getuid() if hasattr(os, 'getuid') else 'user'}"


def build(gm: GeneratedModel, cache_dir=None, cc: str = "gcc", cflags=CFLAGS) -> tuple[Path, str]:
    """Compile (or find in the cache) the host library of ``gm``: (path, compiler messages)."""
    hooks, runner = _wrapper(gm)
    sources = dict(gm.files)
    sources[f"{gm.prefix}_host_hooks.h"] = hooks
    sources[f"{gm.prefix}_host_run.c"] = runner
    h = hashlib.sha256()
    for name in sorted(sources):
        h.update(name.encode() + b"\0" + sources[name].encode() + b"\0")
    h.update(" ".join([_compiler_id(cc), *cflags]).encode())
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    stem = f"{gm.model_digest}-{gm.variant}-v{gm.generator_version}-{h.hexdigest()[:16]}"
    lib = cache / f"{stem}.so"
    log_path = cache / f"{stem}.log"
    if lib.exists():
        return lib, log_path.read_text() if log_path.exists() else ""
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        for name, text in sources.items():
            (Path(tmp) / name).write_text(text)
        out = Path(tmp) / "lib.so"
        cmd = [cc, *cflags, "-I", tmp, "-include", str(Path(tmp) / f"{gm.prefix}_host_hooks.h"),
               "-o", str(out), str(Path(tmp) / f"{gm.prefix}_model.c"), str(Path(tmp) / f"{gm.prefix}_host_run.c")]
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0:
            raise RuntimeError(f"host compile of model {gm.model_digest} ({gm.variant}) failed:\n{res.stderr[-4000:]}")
        log_path.write_text(res.stderr)
        os.replace(out, lib)  # atomic: concurrent builders of the same key agree
    return lib, res.stderr


class HostModel:
    """A generated model compiled for the host. ``graph`` may be an :class:`Int8Graph` (generated
    here with ``variant`` and ``prefix``) or a :class:`GeneratedModel`."""

    def __init__(self, graph: Int8Graph | GeneratedModel, variant: str = "plain", *, prefix: str = "kws",
                 cache_dir=None, cc: str = "gcc") -> None:
        self.model = graph if isinstance(graph, GeneratedModel) else generate(graph, variant, prefix)
        self.library_path, self.compiler_messages = build(self.model, cache_dir, cc)
        self._lib = ctypes.CDLL(str(self.library_path))
        fn = getattr(self._lib, f"{self.model.prefix}_host_run")
        fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p,
                       ctypes.c_uint32]
        fn.restype = ctypes.c_int
        self._run = fn

    def run(self, x, *, intermediates: bool = False):
        """Outputs (B, *output_shape) int8 for inputs (B, *input_shape) int8 (or one unbatched
        input). With ``intermediates``, also {graph tensor index: (B, *shape)} of every op's output."""
        gm = self.model
        x = np.asarray(x)
        single = x.shape == gm.input_shape
        if single:
            x = x[None]
        if x.shape[1:] != gm.input_shape:
            raise ValueError(f"input shape {x.shape} does not match the model's {gm.input_shape} (with a batch axis)")
        if x.dtype != np.int8:
            if not np.issubdtype(x.dtype, np.integer) or (x.size and (x.min() < -128 or x.max() > 127)):
                raise ValueError(f"inputs must be int8 values, got {x.dtype}")
        x = np.ascontiguousarray(x, dtype=np.int8)
        n = x.shape[0]
        y = np.empty((n, gm.output_bytes), np.int8)
        table = dbg = None
        stride = 0
        if intermediates:
            rows, dst = [], 0
            sizes = [int(np.prod(self._shape(t), dtype=np.int64)) for t in gm.op_outputs]
            for t, size in zip(gm.op_outputs, sizes, strict=True):
                rows.append((gm.tensor_offsets[t], size, dst))
                dst += size
            table = np.asarray(rows, np.uint32).ravel()
            stride = dst
            dbg = np.zeros((n, max(stride, 1)), np.int8)
        self._run(x.ctypes.data, y.ctypes.data, n, None if table is None else table.ctypes.data,
                  None if dbg is None else dbg.ctypes.data, stride)
        y = y.reshape((n, *gm.output_shape))
        if single:
            y = y[0]
        if not intermediates:
            return y
        out, dst = {}, 0
        for t in gm.op_outputs:
            shape = self._shape(t)
            size = int(np.prod(shape, dtype=np.int64))
            v = dbg[:, dst:dst + size].reshape((n, *shape))
            out[t] = v[0] if single else v
            dst += size
        return y, out

    def _shape(self, tensor: int) -> tuple[int, ...]:
        return self.model.tensor_shapes[tensor]
