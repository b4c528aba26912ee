"""What a model costs on a board: the :class:`Evaluator` protocol and its three implementations.

    from hardware.measure import EmulatorEvaluator
    m = EmulatorEvaluator().measure(open("model.tflite", "rb").read(), "mps2-an386")
    m.ok, m.flash_bytes, m.ram_bytes, m.instructions, m.latency_ms_est, m.output_match

Contract of ``Evaluator.measure(model_bytes, board) -> Measurement``:

- It never raises for a bad model, a model that does not fit, or a board that misbehaves: the
  Measurement says ``ok=False`` and why (``error``); ``feasible=False`` marks a model over the
  board's flash or RAM budget (found at link time), which is an answer, not a failure.
- Units are in the names: bytes, ms. Counts are named by kind: ``instructions`` (emulator:
  executed instructions, exact and deterministic) or ``cycles`` (real boards: DWT cycle counter,
  median over runs). ``latency_ms`` is measured (cycles / clock); ``latency_ms_est`` is an estimate
  (instructions x the board's CPI / clock, or the analytic model) and says so by its name.
- ``output_match`` is True when the device's outputs equal :func:`hardware.reference.run`'s, bit
  for bit, on ``checks`` seeded random inputs.
- Results are cached on disk keyed by the model's bytes, the board's fields, the evaluator's
  settings and the firmware, toolchain and QEMU versions; a cache hit has ``cached=True``.

:class:`EmulatorEvaluator` builds the firmware and runs it in QEMU; :class:`SerialBoardEvaluator`
talks to a board already running the firmware (optionally programming it first) over any pyserial
URL; :class:`AnalyticEvaluator` needs no toolchain and estimates everything from the graph
(``estimated=True``).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from hardware.boards import Board, get_board
from hardware.graph import DType, Int8Graph, OpKind

__all__ = [
    "AnalyticEvaluator", "EmulatorEvaluator", "Evaluator", "Measurement", "MeasurementCache", "OpCount",
    "SerialBoardEvaluator",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OpCount:
    name: str
    kind: str
    macs: int
    count: int | None      # in the Measurement's counter unit; None when not measured


@dataclass(frozen=True)
class Measurement:
    """One model on one board. Sizes in bytes; ``ram_bytes`` = static RAM + peak stack."""

    board: str
    model_digest: str                    # Int8Graph.digest()[:16] ("" if the model did not parse)
    evaluator: str                       # "emulator", "serial" or "analytic"
    ok: bool
    error: str | None = None
    feasible: bool | None = None         # False: over the board's flash or RAM budget
    estimated: bool = False              # True: every figure is an estimate (AnalyticEvaluator)
    variant: str = ""                    # code generator variant ("plain" or "dsp")
    counter: str = ""                    # "instructions" or "cycles"
    instructions: int | None = None
    cycles: int | None = None
    run_counts: tuple[int, ...] = ()     # every timed run, in the counter unit
    latency_ms: float | None = None      # measured on a real board
    latency_ms_est: float | None = None  # estimate (emulated instructions x CPI / clock, or analytic)
    flash_bytes: int | None = None
    flash_split: Mapping[str, int] = field(default_factory=dict)
    ram_bytes: int | None = None
    ram_static_bytes: int | None = None
    ram_arena_bytes: int | None = None
    ram_stack_bytes: int | None = None   # peak, measured by stack painting
    ram_harness_bytes: int | None = None  # protocol buffers and the staged input (not the model's)
    ops: tuple[OpCount, ...] = ()
    output_match: bool | None = None
    outputs_checked: int = 0
    tensors_checked: int = 0             # intermediate tensors read from the board and compared too
    real_inputs_checked: int = 0         # of outputs_checked, inputs from real clips (the rest seeded random)
    toolchain_version: str | None = None
    firmware_version: str | None = None
    qemu_version: str | None = None
    wall_s: float = 0.0
    cached: bool = False

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["flash_split"] = dict(self.flash_split)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Measurement:
        d = dict(d)
        d["ops"] = tuple(OpCount(**o) for o in d.get("ops", ()))
        d["run_counts"] = tuple(d.get("run_counts", ()))
        return cls(**{k: v for k, v in d.items() if k in _FIELDS})


_FIELDS = {f.name for f in dataclasses.fields(Measurement)}


@runtime_checkable
class Evaluator(Protocol):
    """``measure(model_bytes, board) -> Measurement``; see the module docstring for the contract."""

    name: str

    def measure(self, model_bytes: bytes, board: Board | str | None = None) -> Measurement: ...


# ---- the on-disk cache ----

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


# ---- shared machinery ----

class _Base:
    name = "base"

    def __init__(self, *, cache: bool | MeasurementCache = True) -> None:
        self.cache = MeasurementCache() if cache is True else cache or None

    def _settings(self, board: Board) -> dict[str, Any]:
        raise NotImplementedError

    def _measure(self, model_bytes: bytes, graph: Int8Graph, board: Board) -> Measurement:
        raise NotImplementedError

    def measure(self, model_bytes: bytes, board: Board | str | None = None) -> Measurement:
        t0 = time.perf_counter()
        board = get_board(board)
        key = None
        if self.cache is not None:
            key = MeasurementCache.key(model_bytes, board, {"evaluator": self.name, **self._settings(board)})
            hit = self.cache.get(key)
            if hit is not None:
                return dataclasses.replace(hit, cached=True, wall_s=time.perf_counter() - t0)
        from hardware.tflite_io import TfliteError, read_tflite

        try:
            graph = read_tflite(bytes(model_bytes))
        except (TfliteError, TypeError) as e:
            return Measurement(board.name, "", self.name, ok=False, error=f"model: {e}",
                               wall_s=time.perf_counter() - t0)
        m = self._measure(bytes(model_bytes), graph, board)
        m = dataclasses.replace(m, wall_s=time.perf_counter() - t0)
        if key is not None and (m.ok or m.feasible is False):  # transient failures are not kept
            self.cache.put(key, m)
        return m


# Everything besides the code generator that can change a measurement or its verdict: the requantization
# constants and fixed-point arithmetic the C code and the golden reference share, the reference the board's
# outputs are compared with, the .tflite reader and the int8 graph it builds, and this module (the checks).
_VERDICT_MODULES = ("op_params.py", "fixedpoint.py", "reference.py", "graph.py", "tflite_read.py",
                    "tflite_schema.py", "tflite_io.py", "tflite_write.py", "_flatbuf.py", "protocol.py", "measure.py")


@functools.cache
def _codegen_digest() -> str:
    """Hash of the code generator's sources and of every module a result or its verdict depends on
    (`_VERDICT_MODULES`): a change to any of them makes new measurements."""
    h = hashlib.sha256()
    here = Path(__file__).parent
    root = here / "codegen"
    for p in sorted(root.rglob("*")) if root.is_dir() else ():
        if p.suffix in (".py", ".h", ".c"):
            h.update(p.relative_to(root).as_posix().encode() + b"\0" + p.read_bytes())
    for name in _VERDICT_MODULES:
        h.update(name.encode() + b"\0" + (here / name).read_bytes())
    return h.hexdigest()[:16]


def _default_generate():
    try:
        from hardware.codegen import generate
    except ImportError as e:
        raise RuntimeError(f"the C code generator (hardware.codegen) is not available: {e}") from e
    return generate


def _op_table(gm, graph: Int8Graph) -> list[tuple[str, str, int]]:
    ops = getattr(gm, "ops", None) if gm is not None else None
    if ops:
        out = []
        for o in ops:
            if isinstance(o, tuple):
                name, kind, macs = o
            else:
                name, kind, macs = o.name, o.kind, o.macs
            out.append((str(name), str(getattr(kind, "value", kind)), int(macs)))
        return out
    order = graph.topological_order()
    return [(f"op{k}_{graph.ops[i].kind.value.lower()}", graph.ops[i].kind.value, graph.op_macs(i))
            for k, i in enumerate(order)]


def _device_io(graph: Int8Graph) -> tuple[int, int]:
    """The tensors the firmware takes and gives: the graph's input and output, or, for float IO,
    the int8 tensors past a leading QUANTIZE and before a trailing DEQUANTIZE (the generated C
    computes the int8 core; the host does the float edges)."""
    (tin,), (tout,) = graph.inputs, graph.outputs
    for op in graph.ops:
        if op.kind == OpKind.QUANTIZE and op.inputs[0] == tin and graph.tensors[tin].dtype == DType.FLOAT32:
            tin = op.outputs[0]
        if op.kind == OpKind.DEQUANTIZE and op.outputs[0] == tout:
            tout = op.inputs[0]
    return tin, tout


@runtime_checkable
class CheckInputs(Protocol):
    """Real inputs for the device check: ``inputs(graph)`` gives float values for the graph's input
    ``[n, *shape]`` (features of real clips), or None for a model it has none for; ``id`` names them in
    the measurement cache key."""

    id: str

    def __call__(self, graph: Int8Graph) -> np.ndarray | None: ...


def _golden(graph: Int8Graph, dev_in: int, dev_out: int, k: int, seed: int,
            real: np.ndarray | None = None) -> tuple[np.ndarray, dict[int, np.ndarray], int]:
    """``k`` device inputs, every tensor of the reference, and how many inputs are real: ``real`` float
    inputs first (quantized as TFLM's QUANTIZE does), then seeded random ones over the full integer range."""
    from hardware.reference import quantize, run_all

    t = graph.tensors[dev_in]
    info = np.iinfo(t.dtype.numpy)
    xs = np.random.default_rng(seed).integers(info.min, info.max + 1, size=(k, *t.shape)).astype(t.dtype.numpy)
    n_real = 0
    if real is not None and len(real) and tuple(np.shape(real)[1:]) == tuple(t.shape) and t.quantization:
        n_real = min(len(real), k)
        xs[:n_real] = quantize(real[:n_real], t.quantization, t.dtype.numpy)
    feed = xs
    if dev_in != graph.inputs[0]:  # float input: the values that QUANTIZE maps back onto xs exactly
        q = t.quantization
        feed = ((xs.astype(np.float64) - q.zero_point[0]) * q.scale[0]).astype(np.float32)
    values = run_all(graph, feed)
    if not np.array_equal(values[dev_in], xs):
        raise _Mismatch("the float input does not quantize back onto the device input")
    return xs, values, n_real


# An intermediate tensor at most this big is compared after every check input; bigger ones after the
# first only (the link moves ~16-20 KiB/s on QEMU: DS-CNN-S's 8 KB feature maps cost ~0.5 s each).
SMALL_TENSOR_BYTES = 256


def _tensor_checks(gm, graph: Int8Graph, dev_in: int, dev_out: int) -> list[tuple[str, int, int, int]]:
    """(name, graph tensor, arena offset, bytes) of every tensor the generated model leaves intact after a
    run besides the device input and output, matched to ``graph`` by name (unambiguous names only)."""
    intact = getattr(gm, "intact_tensors", ())
    names = getattr(gm, "tensor_names", {})
    by_name: dict[str, list[int]] = {}
    for i, t in enumerate(graph.tensors):
        by_name.setdefault(t.name, []).append(i)
    out = []
    for t in intact:
        match = by_name.get(names.get(t, ""), [])
        if len(match) == 1 and match[0] not in (dev_in, dev_out) and graph.tensors[match[0]].dtype != DType.FLOAT32:
            out.append((names[t], match[0], int(gm.tensor_offsets[t]), graph.tensors[match[0]].nbytes))
    return out


@dataclass
class _SessionResult:
    info: Any
    run_counts: list[int]
    op_counts: list[int] | None
    output_match: bool
    outputs_checked: int
    stack_peak_bytes: int
    mismatch: str | None = None
    tensors_checked: int = 0
    real_inputs: int = 0


def _session(client, graph: Int8Graph, expect_digest: str | None, *, checks: int, runs: int, per_op: bool,
             seed: int, run_timeout_s: float, gm=None, real: np.ndarray | None = None) -> _SessionResult:
    """The measurement dialogue, the same for every board: check identity, then for each random
    input stage it, run it, compare the output with the golden reference, and the intermediate
    tensors the run left intact (``gm.intact_tensors``: the logits before a softmax, typically; every
    tensor in a ``keep_all`` debug build)."""
    from hardware.firmware.build import FIRMWARE_VERSION

    info = client.info()
    if info.firmware_version != FIRMWARE_VERSION:
        raise _Mismatch(f"the board runs kwsnas firmware {info.firmware_version}, this host needs "
                        f"{FIRMWARE_VERSION}: flash it again (--flash, or nas firmware)", reflash=True)
    if expect_digest is not None and info.model_digest != expect_digest:
        raise _Mismatch(f"the board runs model {info.model_digest}, not {expect_digest}", reflash=True)
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise _Mismatch("the firmware handles one input and one output tensor")
    dev_in, dev_out = _device_io(graph)
    tin, tout = graph.tensors[dev_in], graph.tensors[dev_out]
    if tin.dtype == DType.FLOAT32 or tout.dtype == DType.FLOAT32:
        raise _Mismatch("the firmware runs int8 models (float tensors at the device edge)")
    if (info.input_bytes, info.output_bytes) != (tin.nbytes, tout.nbytes):
        raise _Mismatch(f"board's input/output sizes {info.input_bytes}/{info.output_bytes} differ from "
                        f"the model's {tin.nbytes}/{tout.nbytes}")
    xs, golden, n_real = _golden(graph, dev_in, dev_out, checks, seed, real)
    tensors = _tensor_checks(gm, graph, dev_in, dev_out) if gm is not None else []
    counts: list[int] = []
    match, detail, compared = True, None, set()
    for k in range(checks):
        client.set_input(xs[k].tobytes())
        counts += client.run(runs if k == 0 else 1, timeout_s=run_timeout_s)
        got = np.frombuffer(client.read_output(tout.nbytes), dtype=tout.dtype.numpy)
        want = np.asarray(golden[dev_out][k], dtype=tout.dtype.numpy).ravel()
        if not np.array_equal(got, want):
            match = False
            detail = detail or f"input {k}: {int(np.sum(got != want))} of {want.size} output values differ"
        for name, t, offset, nbytes in tensors:
            if k and nbytes > SMALL_TENSOR_BYTES and not getattr(gm, "keep_all", False):
                continue
            dtype = graph.tensors[t].dtype.numpy
            got = np.frombuffer(client.read_arena(offset, nbytes), dtype=dtype)
            want = np.asarray(golden[t][k], dtype=dtype).ravel()
            compared.add(t)
            if not np.array_equal(got, want):
                match = False
                detail = detail or (f"input {k}: tensor {name!r} differs in {int(np.sum(got != want))} of "
                                    f"{want.size} values (the first op that goes wrong writes the first such tensor)")
    op_counts = None
    if per_op and info.num_ops:
        client.run(1, per_op=True, timeout_s=run_timeout_s)  # the last input again, with per-op hooks on
        op_counts = client.op_counts(info.num_ops)
    peak, _ = client.stack()
    return _SessionResult(info, counts, op_counts, match, checks, peak, detail, len(compared), n_real)


class _Mismatch(RuntimeError):
    """The board is not running what we expect (wrong firmware, model or sizes): retrying the same
    session cannot help; ``reflash`` says programming the board again might."""

    def __init__(self, message: str, *, reflash: bool = False) -> None:
        super().__init__(message)
        self.reflash = reflash


def _assemble(name: str, board: Board, graph: Int8Graph, gm, image, res: _SessionResult, *,
              variant: str, qemu_version: str | None = None) -> Measurement:
    counter = res.info.counter
    count = int(statistics.median(res.run_counts))
    clock = res.info.cpu_hz or board.clock_hz
    table = _op_table(gm, graph)
    per_op = res.op_counts or [None] * len(table)
    if len(per_op) != len(table):
        table = [(f"op{i}", "", 0) for i in range(len(per_op))]
    ops = tuple(OpCount(n, k, m, c) for (n, k, m), c in zip(table, per_op, strict=True))
    static = image.static_ram_bytes if image is not None else None
    stack_overflow = res.stack_peak_bytes >= res.info.stack_reserved_bytes > 0
    errors = []
    if not res.output_match:
        errors.append(f"output differs from the reference ({res.mismatch})")
    if stack_overflow:
        errors.append(f"stack overflow: all {res.info.stack_reserved_bytes} reserved bytes used")
    return Measurement(
        board=board.name, model_digest=graph.digest()[:16], evaluator=name, ok=not errors,
        error="; ".join(errors) or None, feasible=False if stack_overflow else True, variant=variant,
        counter=counter, instructions=count if counter == "instructions" else None,
        cycles=count if counter == "cycles" else None, run_counts=tuple(res.run_counts),
        latency_ms=1e3 * count / clock if counter == "cycles" else None,
        latency_ms_est=1e3 * count * board.cpi / clock if counter == "instructions" else None,
        flash_bytes=image.flash_bytes if image is not None else None,
        flash_split=dict(image.flash_split) if image is not None else {},
        ram_bytes=static + res.stack_peak_bytes if static is not None else None, ram_static_bytes=static,
        ram_arena_bytes=res.info.arena_bytes, ram_stack_bytes=res.stack_peak_bytes,
        ram_harness_bytes=image.ram_split.get("harness") if image is not None else None, ops=ops,
        output_match=res.output_match, outputs_checked=res.outputs_checked, tensors_checked=res.tensors_checked,
        real_inputs_checked=res.real_inputs,
        toolchain_version=image.toolchain_version if image is not None else None,
        firmware_version=res.info.firmware_version, qemu_version=qemu_version)


def _failed(name: str, board: Board, graph: Int8Graph, error: str, **kw) -> Measurement:
    return Measurement(board.name, graph.digest()[:16], name, ok=False, error=error, **kw)


class _BuildingEvaluator(_Base):
    """Common to the evaluators that generate C and build firmware."""

    def __init__(self, *, checks: int = 3, runs: int = 1, per_op: bool = True, seed: int = 0,
                 variant: str | None = None, stack_bytes: int | None = None, generate: Callable | None = None,
                 run_timeout_s: float | None = None, retries: int = 4,
                 cache: bool | MeasurementCache = True, debug: bool = False,
                 check_inputs: CheckInputs | None = None) -> None:
        super().__init__(cache=cache)
        if checks < 1 or runs < 1:
            raise ValueError("checks and runs must be at least 1")
        self.checks, self.runs, self.per_op, self.seed = checks, runs, per_op, seed
        self.variant = variant
        self.stack_bytes = stack_bytes
        self._generate = generate
        self.run_timeout_s = run_timeout_s  # None: from the model's MACs (_run_timeout_s)
        self.retries = retries              # per protocol request
        self.debug = debug                  # keep_all builds: every intermediate tensor compared (sizes are the debug build's)
        self.check_inputs = check_inputs    # real inputs for the check (random ones otherwise)

    def _variant(self, board: Board) -> str:
        return self.variant or ("dsp" if board.dsp else "plain")

    def _settings(self, board: Board) -> dict[str, Any]:
        from hardware.firmware.build import FIRMWARE_VERSION, firmware_sources_digest, toolchain_version

        gen = self._generate
        return {"checks": self.checks, "runs": self.runs, "per_op": self.per_op, "seed": self.seed,
                "variant": self._variant(board), "stack": self.stack_bytes, "firmware": FIRMWARE_VERSION,
                "firmware_sources": firmware_sources_digest(), "toolchain": toolchain_version(),
                "generator": f"{gen.__module__}.{gen.__qualname__}" if gen is not None else "default",
                "sources": _codegen_digest(), "debug": self.debug,
                "inputs": getattr(self.check_inputs, "id", None)}

    def _build(self, graph: Int8Graph, board: Board):
        """(gm, image, failed Measurement or None)."""
        from hardware.firmware.build import DEFAULT_STACK_BYTES, BuildError, DoesNotFit, build_firmware

        variant = self._variant(board)
        try:
            generate = self._generate or _default_generate()
            gm = generate(graph, variant=variant, prefix="kws", **({"keep_all": True} if self.debug else {}))
        except Exception as e:  # the generator's own errors (unsupported op, ...) are answers
            return None, None, _failed(self.name, board, graph, f"codegen: {e}", variant=variant)
        try:
            image = build_firmware(gm, board, stack_bytes=self.stack_bytes or DEFAULT_STACK_BYTES)
        except DoesNotFit as e:
            return gm, None, _failed(self.name, board, graph, str(e), feasible=False, variant=variant)
        except BuildError as e:
            return gm, None, _failed(self.name, board, graph, f"build: {e}", variant=variant)
        return gm, image, None

    def _real(self, graph: Int8Graph) -> np.ndarray | None:
        return None if self.check_inputs is None else self.check_inputs(graph)

    def _run_timeout_s(self, graph: Int8Graph) -> float:
        if self.run_timeout_s is not None:
            return self.run_timeout_s
        return 5.0 + 1e-6 * graph.macs()  # ~1 us per MAC: far slower than QEMU or any board here


class EmulatorEvaluator(_BuildingEvaluator):
    """Generate C, build the firmware for an emulated board, run it in QEMU; counts instructions."""

    name = "emulator"

    def _settings(self, board: Board) -> dict[str, Any]:
        from hardware.emulator import qemu_version

        return {**super()._settings(board), "qemu": qemu_version()}

    def _measure(self, model_bytes: bytes, graph: Int8Graph, board: Board) -> Measurement:
        from hardware.emulator import Emulator, EmulatorError, qemu_version
        from hardware.protocol import BoardFault, Client, ProtocolError

        if not board.emulated:
            return _failed(self.name, board, graph, f"board {board.name} is not emulated")
        from hardware.emulator import emulation_missing

        missing = emulation_missing()
        if missing:
            return _failed(self.name, board, graph, f"emulator: {missing}")
        gm, image, failed = self._build(graph, board)
        if failed is not None:
            return failed
        last, real = "", self._real(graph)
        for attempt in range(2):  # one retry for QEMU or link trouble, then a failed Measurement
            emu = Emulator(image.elf_path, board)
            try:
                emu.start()
                client = Client(emu.link, timeout_s=2.0, retries=self.retries)
                res = _session(client, graph, gm.model_digest, checks=self.checks, runs=self.runs,
                               per_op=self.per_op, seed=self.seed, run_timeout_s=self._run_timeout_s(graph), gm=gm,
                               real=real)
                client.exit(0)
                emu.wait(2.0)
                return _assemble(self.name, board, graph, gm, image, res, variant=self._variant(board),
                                 qemu_version=qemu_version())
            except (BoardFault, _Mismatch) as e:  # deterministic: retrying cannot help
                return _failed(self.name, board, graph, str(e), variant=self._variant(board))
            except (EmulatorError, ProtocolError, OSError) as e:
                last = f"{type(e).__name__}: {e}"
                log.warning("emulator attempt %d on %s failed: %s", attempt + 1, board.name, last)
            finally:
                emu.stop(timeout_s=0.5)
        return _failed(self.name, board, graph, f"emulator: {last}", variant=self._variant(board))


class SerialBoardEvaluator(_BuildingEvaluator):
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
        from hardware.firmware.build import have_toolchain
        from hardware.protocol import BoardReset

        gm = image = None
        if have_toolchain() and (self._generate is not None or _has_codegen()):
            gm, image, failed = self._build(graph, board)
            if failed is not None:
                return failed
        real = self._real(graph)
        for attempt in range(2):  # a board that reset or runs something else: program it again, once
            if self.program is not None:
                try:
                    self.program(model_bytes, image, board)
                except Exception as e:
                    return _failed(self.name, board, graph, f"programming the board: {e}")
            try:
                res = self._dialogue(graph, board, gm, real)
            except (BoardReset, _Mismatch) as e:
                again = attempt == 0 and (isinstance(e, BoardReset) or (e.reflash and self.program is not None))
                if again:
                    log.warning("%s on %s: %s; %s", self.name, board.name, e,
                                "programming it again" if self.program is not None else "measuring again")
                    continue
                return _failed(self.name, board, graph, f"{type(e).__name__.lstrip('_')}: {e}"
                               + (" (twice)" if attempt else ""), variant=self._variant(board))
            except _LinkFailed as e:
                return _failed(self.name, board, graph, str(e), variant=self._variant(board))
            return _assemble(self.name, board, graph, gm, image, res, variant=self._variant(board))
        raise AssertionError("unreachable")

    def _dialogue(self, graph: Int8Graph, board: Board, gm=None, real: np.ndarray | None = None) -> _SessionResult:
        """Open the port and run the measurement session; link trouble becomes :class:`_LinkFailed`."""
        from hardware.link import Link
        from hardware.protocol import BoardFault, BoardReset, Client, ProtocolError

        url = self.url() if callable(self.url) else self.url or board.serial_url
        try:
            if self.open_port is not None:
                link = Link(self.open_port(url))
            else:
                link = Link.open(url, self.baud or board.baud, connect_timeout_s=self.connect_timeout_s)
        except (ConnectionError, OSError) as e:
            raise _LinkFailed(f"link: {e}") from e
        try:
            client = Client(link, timeout_s=self.timeout_s, retries=self.retries)
            return _session(client, graph, graph.digest()[:16], checks=self.checks, runs=self.runs,
                            per_op=self.per_op, seed=self.seed, run_timeout_s=self._run_timeout_s(graph), gm=gm,
                            real=real)
        except (BoardReset, _Mismatch):
            raise
        except (BoardFault, ProtocolError, OSError) as e:
            raise _LinkFailed(f"{type(e).__name__}: {e}") from e
        finally:
            link.close()


class _LinkFailed(RuntimeError):
    """The port could not be opened or the dialogue broke off (the message says how)."""


def _has_codegen() -> bool:
    try:
        _default_generate()
    except RuntimeError:
        return False
    return True


# Instructions per op for the generated kernels, fitted (non-negative least squares, relative
# error) to per-op emulator counts of DS-CNN-S and four mixed conv/depthwise/pool/add/mean/FC/
# softmax graphs on mps2-an386: (per MAC, per output element, per input element). Largest
# relative error of the fit: conv 54 % plain / 19 % dsp (kernel-shape effects), others <= 7 %.
# dsp CONV_2D and DEPTHWISE_CONV_2D refitted to DS-CNN-S after the 3-pixel GEMM and the
# channel-plane depthwise kernel (generator 3): pointwise exact, the 10x4 stem ~18 % under
# (im2col of 1-channel windows); strided / VALID depthwise still take the row kernel (~2x more).
_COSTS = {
    "plain": {OpKind.CONV_2D: (5.57, 52.4, 0.0), OpKind.DEPTHWISE_CONV_2D: (20.2, 0.0, 0.0),
              OpKind.FULLY_CONNECTED: (6.79, 45.4, 2.04), OpKind.AVERAGE_POOL_2D: (0.0, 19.9, 0.15),
              OpKind.MAX_POOL_2D: (0.0, 16.0, 0.4), OpKind.MEAN: (0.0, 27.0, 5.05),
              OpKind.ADD: (0.0, 34.9, 0.0), OpKind.SOFTMAX: (0.0, 64.3, 0.0)},
    "dsp": {OpKind.CONV_2D: (0.95, 7.5, 0.0), OpKind.DEPTHWISE_CONV_2D: (2.14, 0.0, 0.0),
            OpKind.FULLY_CONNECTED: (1.93, 24.6, 0.0), OpKind.AVERAGE_POOL_2D: (0.0, 16.5, 0.81),
            OpKind.MAX_POOL_2D: (0.0, 16.0, 0.41), OpKind.MEAN: (0.0, 23.1, 5.19),
            OpKind.ADD: (0.0, 34.9, 0.0), OpKind.SOFTMAX: (0.0, 64.3, 0.0)},
}
_OTHER_COST = (0.0, 4.0, 1.0)   # PAD, QUANTIZE, ...: a pass over the data (not fitted)
_CODE_BYTES_PER_OP = {"plain": 350, "dsp": 640}   # kernels are inlined per call (DS-CNN-S: 3.8 / 7.0 KB)
_STACK_BYTES = {"plain": 200, "dsp": 500}         # measured peaks on DS-CNN-S
_RUNTIME_FLASH_BYTES = 2760   # protocol server, board code, vectors, startup (measured, mps2-an386)
_HARNESS_RAM_BYTES = 1110     # protocol buffers; + staged input + 8 bytes per op (measured)


class AnalyticEvaluator(_Base):
    """No toolchain, no board: every figure estimated from the graph (``estimated=True``).

    Instructions: per op kind, costs per MAC, output and input element fitted to emulator counts
    (``_COSTS``); ``latency_ms_est`` = instructions x board CPI / clock. Flash: parameter bytes
    plus the per-channel requantization constants (int32 multiplier and shift) plus kernel code
    per op and the runtime. RAM: the code generator's own arena plan when ``hardware.codegen`` is
    importable (pure Python, exact), else the peak of live activation bytes over the schedule;
    plus harness and stack allowances. Over-budget estimates say ``feasible=False``.
    """

    name = "analytic"

    def __init__(self, *, variant: str | None = None, cache: bool | MeasurementCache = False) -> None:
        super().__init__(cache=cache)
        self.variant = variant

    def _settings(self, board: Board) -> dict[str, Any]:
        return {"variant": self.variant, "codegen": _codegen_digest(), "model": "analytic-1"}

    def _measure(self, model_bytes: bytes, graph: Int8Graph, board: Board) -> Measurement:
        variant = self.variant or ("dsp" if board.dsp else "plain")
        order = [i for i in graph.topological_order()
                 if graph.ops[i].kind not in (OpKind.QUANTIZE, OpKind.DEQUANTIZE, OpKind.RESHAPE)]
        ops, total = [], 0.0
        for k, i in enumerate(order):
            op = graph.ops[i]
            per_mac, per_out, per_in = _COSTS[variant].get(op.kind, _OTHER_COST)
            macs = graph.op_macs(i)
            est = (per_mac * macs + per_out * graph.tensors[op.outputs[0]].size
                   + per_in * graph.tensors[op.inputs[0]].size + 60)  # + call and hook overhead
            total += est
            ops.append(OpCount(f"{k:02d}_{op.kind.value.lower()}", op.kind.value, macs, int(est)))
        weighted = [op for op in graph.ops if op.kind in (OpKind.CONV_2D, OpKind.DEPTHWISE_CONV_2D,
                                                          OpKind.FULLY_CONNECTED)]
        channels = sum(graph.tensors[op.outputs[0]].shape[-1] for op in weighted)
        model_data = graph.param_bytes() + 8 * channels
        if variant == "dsp":  # the dsp depthwise kernel keeps its weights as int16
            model_data += sum(graph.tensors[op.inputs[1]].nbytes for op in weighted
                              if op.kind == OpKind.DEPTHWISE_CONV_2D)
        kernels = _CODE_BYTES_PER_OP[variant] * len(order)
        flash = model_data + kernels + _RUNTIME_FLASH_BYTES
        arena = self._arena_bytes(graph, variant)
        dev_in, _ = _device_io(graph)
        harness = _HARNESS_RAM_BYTES + graph.tensors[dev_in].nbytes + 8 * len(order)
        static, stack = arena + harness, _STACK_BYTES[variant]
        feasible = flash <= board.flash_bytes and static + stack <= board.ram_bytes
        instructions = int(total)
        return Measurement(
            board=board.name, model_digest=graph.digest()[:16], evaluator=self.name, ok=feasible,
            error=None if feasible else "estimated over the board's flash or RAM budget", feasible=feasible,
            estimated=True, variant=variant, counter="instructions", instructions=instructions,
            latency_ms_est=1e3 * instructions * board.cpi / board.clock_hz, flash_bytes=flash,
            flash_split={"model_data": model_data, "kernels": kernels, "runtime": _RUNTIME_FLASH_BYTES,
                         "startup": 0},
            ram_bytes=static + stack, ram_static_bytes=static, ram_arena_bytes=arena, ram_stack_bytes=stack,
            ram_harness_bytes=harness, ops=tuple(ops))

    @staticmethod
    def _arena_bytes(graph: Int8Graph, variant: str) -> int:
        try:
            from hardware.codegen import generate

            return int(generate(graph, variant=variant, prefix="kws").arena_bytes)
        except Exception:  # no generator, or a graph it cannot take: a lower bound from lifetimes
            life = graph.tensor_lifetimes()
            return max((sum(graph.tensors[t].nbytes for t, (a, b) in life.items() if a <= pos <= b)
                        for pos in range(len(graph.ops))), default=0)
