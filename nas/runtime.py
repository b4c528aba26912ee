"""Process-level settings that make JAX training fast on small CPUs; they must be set before JAX starts.

* The allocator (GUIDE §3): XLA's CPU backend takes a fresh ~190 MB temporary buffer every training
  step, and glibc maps and unmaps it each time (~48,000 page faults, ~110 ms of system time per step).
  Keeping freed memory in the heap (no mmap for big blocks, no trimming, one arena) doubled DS-CNN-S
  training throughput here (848 -> 1,672 samples/s). glibc reads ``GLIBC_TUNABLES`` only at process
  start, so `ensure_fast_allocator` re-executes the process once with it set.
* Threads: two single-threaded trainers (``threads=1``, pinned to one core each) give ~1.3x the
  throughput of one two-threaded process on these 2-core machines; `configure_threads` sets XLA's
  flags for that, before JAX creates its CPU client.
"""

from __future__ import annotations

import logging
import os
import sys

log = logging.getLogger(__name__)

ALLOCATOR_TUNABLES = (
    "glibc.malloc.arena_max=1"  # one arena: XLA's worker threads share the retained heap
    ":glibc.malloc.mmap_max=0"  # never mmap large blocks: they would be unmapped again on free
    ":glibc.malloc.trim_threshold=4000000000"  # never give freed heap back to the OS mid-training
)
_REEXEC_MARK = "KWSNAS_ALLOCATOR_SET"


def allocator_is_tuned() -> bool:
    return "glibc.malloc.mmap_max=0" in os.environ.get("GLIBC_TUNABLES", "")


def ensure_fast_allocator() -> None:
    """Re-execute this process with the allocator tunables, once. No-op where already set, on
    non-glibc platforms, or with ``KWSNAS_NO_REEXEC=1``."""
    if allocator_is_tuned() or os.environ.get("KWSNAS_NO_REEXEC") or os.environ.get(_REEXEC_MARK):
        return
    if not sys.platform.startswith("linux") or not getattr(sys, "orig_argv", None):
        return
    if "jax" in sys.modules or "pytest" in sys.modules:  # too late to help, or a test runner: never re-exec it
        return
    env = dict(os.environ)
    tunables = env.get("GLIBC_TUNABLES")
    env["GLIBC_TUNABLES"] = f"{tunables}:{ALLOCATOR_TUNABLES}" if tunables else ALLOCATOR_TUNABLES
    env[_REEXEC_MARK] = "1"  # never loop, even if glibc ignores the variable
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], env)


def configure_threads(threads: int | None, cpu: int | None = None) -> None:
    """Limit XLA to ``threads`` compute threads (1: Eigen single-threaded) and optionally pin to ``cpu``.

    Must run before the first JAX computation; later calls only log a warning.
    """
    if "jax" in sys.modules and _backend_started():
        log.warning("configure_threads(%s) called after JAX started; it has no effect", threads)
        return
    flags = os.environ.get("XLA_FLAGS", "")
    if threads == 1 and "xla_cpu_multi_thread_eigen" not in flags:
        # XLA rejects unknown flags at start-up, so only this well-known one is set; more threads = default.
        os.environ["XLA_FLAGS"] = f"{flags} --xla_cpu_multi_thread_eigen=false".strip()
    if cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cpu})


def _backend_started() -> bool:
    try:
        from jax._src import xla_bridge

        return bool(getattr(xla_bridge, "_backends", {}))
    except Exception:  # private API moved: assume not started
        return False


def release_compiled() -> None:
    """Drop JAX's compiled executables; call it between candidates in a long-lived worker.

    Every architecture compiles its own XLA programs, and JAX's caches keep each one (with its code
    pages) alive: measured ≈1,300 memory maps per trained candidate, so a worker reaches Linux's
    default ``vm.max_map_count`` (65,530) after ~50 candidates and dies in LLVM ("Cannot allocate
    memory", then SIGSEGV). A worker never trains the same candidate twice, so nothing is lost.
    """
    if "jax" in sys.modules:
        import jax

        jax.clear_caches()


def quiet_optuna(verbose: bool = False) -> None:
    """Quiet logs for searches and experiments: Optuna logs every finished trial at INFO, and the progress
    lines and the final table say it better."""
    import warnings

    import optuna

    if not verbose:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        warnings.filterwarnings("ignore", message=r".*is experimental.*")
        for name in ("nas.train", "nas.export", "nas.data"):  # their per-step lines would scroll the bar away
            logging.getLogger(name).setLevel(logging.WARNING)
    # JAX warns at every subprocess (gcc, QEMU) that fork and threads do not mix; subprocess execs at once
    # in the child, so the warned-of deadlock cannot happen there
    warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called", category=RuntimeWarning)
