"""Compiled training kernels (depthwise convolution, batch norm + activation) called through the XLA FFI.

XLA's CPU backend is the ceiling of the pure-JAX training step (GUIDE §3: ~40 separate passes over full
activations per DS-CNN step). `kernels.cc` does the depthwise forward/backward and the training-mode
batch norm forward/backward in one or two passes each; `nas.models._depthwise` and `nas.models._bn` call
them from their custom VJPs when `available()`, and fall back to their pure-JAX forms otherwise.

The library is compiled from the packaged source with the host's C++ compiler (``g++``, or ``$CXX``) on
first use, or ahead of time by ``python -m nas.models.native`` (the bootstrap's install step does this),
into the user cache (``<cache>/native/<digest>.so``, keyed by the source, the compiler and the CPU's
instruction sets). No compiler, a failed build or ``KWSNAS_NATIVE=0`` gives the pure-JAX path, with one
log line saying why. Both paths compute the same function; the compiled one sums in its own fixed order
(independent of thread count), so results agree to float32 rounding, not bit for bit.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import logging
import os
import platform
import shutil
import subprocess
from pathlib import Path

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("kernels.cc")
_TARGETS = {"kws_dw_fwd": "KwsDwFwd", "kws_dw_bwd": "KwsDwBwd", "kws_bn_fwd": "KwsBnFwd", "kws_bn_bwd": "KwsBnBwd",
            "kws_matmul_tn": "KwsMatmulTn"}
# -march=native: the library is built on the machine that runs it (the cache key holds the CPU's flags);
# -ffp-contract=off: no fused multiply-adds, so the bits do not depend on the vector instruction set.
_FLAGS = ("-O3", "-march=native", "-ffp-contract=off", "-fno-math-errno", "-std=c++17", "-fPIC", "-shared")


def compiler() -> str | None:
    """The C++ compiler to build with: ``$CXX`` or ``g++`` on the PATH, else None."""
    return shutil.which(os.environ.get("CXX", "g++"))


def _cpu_flags() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return line
    except OSError:
        pass
    return platform.processor()


def library_path(cxx: str) -> Path:
    """Where the library built from this source with ``cxx`` on this CPU lives in the user cache."""
    from jax import ffi

    from nas.files import cache_dir

    key = hashlib.sha256()
    for part in (SOURCE.read_bytes(), cxx.encode(), " ".join(_FLAGS).encode(), _cpu_flags().encode(),
                 platform.machine().encode(), ffi.include_dir().encode()):
        key.update(part)
        key.update(b"\0")
    return cache_dir("native") / f"kernels-{key.hexdigest()[:16]}.so"


def build(force: bool = False) -> Path:
    """Compile `kernels.cc` into the cache (atomically: concurrent builders never see half a file)."""
    from jax import ffi

    cxx = compiler()
    if cxx is None:
        raise RuntimeError(f"no C++ compiler ({os.environ.get('CXX', 'g++')}) on the PATH")
    target = library_path(cxx)
    if target.exists() and not force:
        return target
    tmp = target.with_suffix(f".{os.getpid()}.tmp")
    cmd = [cxx, *_FLAGS, "-I", ffi.include_dir(), str(SOURCE), "-o", str(tmp)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise RuntimeError(f"building {SOURCE.name} failed:\n{done.stderr.strip()[-2000:]}")
    os.replace(tmp, target)
    return target


@functools.lru_cache(maxsize=1)
def available() -> bool:
    """True once the compiled kernels are loaded and registered with XLA (building them if needed)."""
    if os.environ.get("KWSNAS_NATIVE", "1") == "0":
        log.info("compiled training kernels off (KWSNAS_NATIVE=0): pure-JAX depthwise and batch norm")
        return False
    try:
        import jax

        path = build()
        lib = ctypes.cdll.LoadLibrary(str(path))
        for name, symbol in _TARGETS.items():
            jax.ffi.register_ffi_target(name, jax.ffi.pycapsule(getattr(lib, symbol)), platform="cpu")
    except (OSError, RuntimeError, AttributeError) as err:
        log.warning("compiled training kernels unavailable (%s); training uses the pure-JAX path", err)
        return False
    return True


def enabled_for(*arrays) -> bool:
    """Whether the compiled kernels apply to these arrays: float32, on the CPU backend, the library loaded."""
    import jax
    import jax.numpy as jnp

    return (all(a.dtype == jnp.float32 for a in arrays) and jax.default_backend() == "cpu"
            and available())
