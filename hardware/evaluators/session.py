"""The measurement dialogue with a board running the kwsnas firmware, the same for every board: identity
checks, staged inputs, timed runs, the bit-exact comparison with the golden reference (outputs and the
intermediate tensors the run left intact), per-op counts and the stack peak; and its assembly into a
:class:`~hardware.evaluators.result.Measurement`."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from hardware.boards import Board
from hardware.evaluators.result import Measurement, OpCount
from hardware.firmware.build import FIRMWARE_VERSION
from hardware.graph import DType, Int8Graph, OpKind
from hardware.reference import quantize, run_all


def op_table(gm, graph: Int8Graph) -> list[tuple[str, str, int]]:
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


def device_io(graph: Int8Graph) -> tuple[int, int]:
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


def golden_run(graph: Int8Graph, dev_in: int, dev_out: int, k: int, seed: int,
            real: np.ndarray | None = None) -> tuple[np.ndarray, dict[int, np.ndarray], int]:
    """``k`` device inputs, every tensor of the reference, and how many inputs are real: ``real`` float
    inputs first (quantized as TFLM's QUANTIZE does), then seeded random ones over the full integer range."""
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
        raise Mismatch("the float input does not quantize back onto the device input")
    return xs, values, n_real


# An intermediate tensor at most this big is compared after every check input; bigger ones after the
# first only (the link moves ~16-20 KiB/s on QEMU: DS-CNN-S's 8 KB feature maps cost ~0.5 s each).
SMALL_TENSOR_BYTES = 256


def tensor_checks(gm, graph: Int8Graph, dev_in: int, dev_out: int) -> list[tuple[str, int, int, int]]:
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
class SessionResult:
    info: Any
    run_counts: list[int]
    op_counts: list[int] | None
    output_match: bool
    outputs_checked: int
    stack_peak_bytes: int
    mismatch: str | None = None
    tensors_checked: int = 0
    real_inputs: int = 0


def run_session(client, graph: Int8Graph, expect_digest: str | None, *, checks: int, runs: int, per_op: bool,
             seed: int, run_timeout_s: float, gm=None, real: np.ndarray | None = None) -> SessionResult:
    """The measurement dialogue, the same for every board: check identity, then for each random
    input stage it, run it, compare the output with the golden reference, and the intermediate
    tensors the run left intact (``gm.intact_tensors``: the logits before a softmax, typically; every
    tensor in a ``keep_all`` debug build)."""
    info = client.info()
    if info.firmware_version != FIRMWARE_VERSION:
        raise Mismatch(f"the board runs kwsnas firmware {info.firmware_version}, this host needs "
                        f"{FIRMWARE_VERSION}: flash it again (--flash, or nas firmware)", reflash=True)
    if expect_digest is not None and info.model_digest != expect_digest:
        raise Mismatch(f"the board runs model {info.model_digest}, not {expect_digest}", reflash=True)
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise Mismatch("the firmware handles one input and one output tensor")
    dev_in, dev_out = device_io(graph)
    tin, tout = graph.tensors[dev_in], graph.tensors[dev_out]
    if tin.dtype == DType.FLOAT32 or tout.dtype == DType.FLOAT32:
        raise Mismatch("the firmware runs int8 models (float tensors at the device edge)")
    if (info.input_bytes, info.output_bytes) != (tin.nbytes, tout.nbytes):
        raise Mismatch(f"board's input/output sizes {info.input_bytes}/{info.output_bytes} differ from "
                        f"the model's {tin.nbytes}/{tout.nbytes}")
    xs, golden, n_real = golden_run(graph, dev_in, dev_out, checks, seed, real)
    tensors = tensor_checks(gm, graph, dev_in, dev_out) if gm is not None else []
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
    return SessionResult(info, counts, op_counts, match, checks, peak, detail, len(compared), n_real)


class Mismatch(RuntimeError):
    """The board is not running what we expect (wrong firmware, model or sizes): retrying the same
    session cannot help; ``reflash`` says programming the board again might."""

    def __init__(self, message: str, *, reflash: bool = False) -> None:
        super().__init__(message)
        self.reflash = reflash


def assemble(name: str, board: Board, graph: Int8Graph, gm, image, res: SessionResult, *,
              variant: str, qemu_version: str | None = None) -> Measurement:
    counter = res.info.counter
    count = int(statistics.median(res.run_counts))
    clock = res.info.cpu_hz or board.clock_hz
    table = op_table(gm, graph)
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
