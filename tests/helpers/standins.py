"""Stand-ins for the code generator and for a board, so the firmware, protocol and evaluators can be
tested on their own.

- :func:`stub_generate`: C sources with the generated model's C API (``kws_model.h``) for graphs
  of int8 FULLY_CONNECTED and RESHAPE ops (TFLM arithmetic, double rounding), bit-exact with
  ``hardware.reference``. ``fault=True`` makes ``kws_run`` write to an unmapped address;
  ``hang=True`` makes it loop forever, ``spin=N`` slow (N empty loop iterations), for the failure paths;
  ``calibrate=True`` replaces the model by a loop of exactly 2 instructions per iteration, N iterations
  (N = the input's first two bytes, big-endian), to pin what one counted unit is.
- :class:`FakeBoard`: the target side of the protocol in Python, on pyserial's ``loop://``.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field

import numpy as np

from hardware import op_params
from hardware.graph import Activation, DType, Int8Graph, OpKind


def qemu_children() -> list[int]:
    """QEMU processes whose parent is this test process (there should never be any left)."""
    out = []
    for pid in os.listdir("/proc"):
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        comm, rest = stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2:].split()
        if comm.startswith("qemu-system") and int(rest[1]) == os.getpid() and rest[0] != "Z":
            out.append(int(pid))
    return out


@dataclass(frozen=True)
class StubOp:
    name: str
    kind: str
    macs: int


@dataclass(frozen=True)
class StubModel:
    files: dict[str, str]
    arena_bytes: int
    input_bytes: int
    output_bytes: int
    ops: tuple[StubOp, ...]
    model_digest: str
    variant: str = "plain"
    notes: dict = field(default_factory=dict)


_RUNTIME = r"""
static int32_t srdhm(int32_t a, int32_t b)
{
    if (a == b && a == INT32_MIN)
        return INT32_MAX;
    int64_t ab = (int64_t)a * b;
    int32_t nudge = ab >= 0 ? (1 << 30) : (1 - (1 << 30));
    return (int32_t)((ab + nudge) / (1ll << 31));
}

static int32_t rdbpot(int32_t x, int e)
{
    int32_t mask = (int32_t)((1u << e) - 1u), rem = x & mask, thr = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> e) + (rem > thr ? 1 : 0);
}

static int32_t mbqm(int32_t x, int32_t m, int s)
{
    int left = s > 0 ? s : 0, right = s > 0 ? 0 : -s;
    return rdbpot(srdhm((int32_t)((uint32_t)x << left), m), right);
}

static void fc(const int8_t *x, int8_t *y, const int8_t *w, const int32_t *b, const int32_t *mult,
               const int8_t *shift, int n_in, int n_out, int32_t in_off, int32_t w_off, int32_t out_off,
               int32_t lo, int32_t hi)
{
    for (int o = 0; o < n_out; o++) {
        int32_t acc = 0;
        const int8_t *wr = w + o * n_in;
        for (int k = 0; k < n_in; k++)
            acc += (x[k] + in_off) * (wr[k] + w_off);
        if (b)
            acc += b[o];
        acc = mbqm(acc, mult[o], shift[o]) + out_off;
        y[o] = (int8_t)(acc < lo ? lo : acc > hi ? hi : acc);
    }
}
"""


def _arr(ctype: str, name: str, values) -> str:
    vals = ", ".join(str(int(v)) for v in np.asarray(values).ravel())
    return f"static const {ctype} {name}[] = {{{vals}}};\n"


def stub_generate(graph: Int8Graph, variant: str = "plain", prefix: str = "kws", *, fault: bool = False,
                  hang: bool = False, spin: int = 0, calibrate: bool = False) -> StubModel:
    if prefix != "kws":
        raise ValueError("the stub only writes the kws_ prefix")
    (inp,), (out,) = graph.inputs, graph.outputs
    tin, tout = graph.tensors[inp], graph.tensors[out]
    if tin.dtype != DType.INT8 or tout.dtype != DType.INT8:
        raise ValueError("the stub needs int8 input and output")
    order = graph.topological_order()
    # arena: the input, then two ping-pong buffers for intermediate results
    sizes = [graph.tensors[graph.ops[i].outputs[0]].nbytes for i in order]
    biggest = max(sizes + [tin.nbytes])
    offset = {inp: 0}
    ping = [tin.nbytes, tin.nbytes + biggest]
    for k, i in enumerate(order):
        offset[graph.ops[i].outputs[0]] = ping[k % 2]
    arena = tin.nbytes + 2 * biggest
    body, consts, ops = [], [], []
    for k, i in enumerate(order):
        op = graph.ops[i]
        x, y = op.inputs[0], op.outputs[0]
        if op.kind == OpKind.RESHAPE:
            n = graph.tensors[y].nbytes
            body.append(f"    KWS_OP_BEGIN({k});\n    memmove(arena + {offset[y]}, arena + {offset[x]}, {n});\n"
                        f"    KWS_OP_END({k});\n")
            ops.append(StubOp(f"op{k}_reshape", op.kind.value, 0))
            continue
        if op.kind != OpKind.FULLY_CONNECTED or op.activation not in (Activation.NONE, Activation.RELU,
                                                                        Activation.RELU6):
            raise ValueError(f"the stub cannot generate {op.kind.value}")
        p = op_params.fc_params(graph, op)
        w = graph.tensors[op.inputs[1]].data
        n_out, n_in = w.shape
        consts.append(_arr("int8_t", f"w{k}", w))
        if len(op.inputs) > 2:
            consts.append(_arr("int32_t", f"b{k}", graph.tensors[op.inputs[2]].data))
        consts.append(_arr("int32_t", f"m{k}", p.multiplier))
        consts.append(_arr("int8_t", f"s{k}", p.shift))
        bias = f"b{k}" if len(op.inputs) > 2 else "0"
        body.append(f"    KWS_OP_BEGIN({k});\n    fc(arena + {offset[x]}, arena + {offset[y]}, w{k}, {bias}, m{k}, s{k}, "
                    f"{n_in}, {n_out}, {p.input_offset}, {p.weight_offset}, {p.output_offset}, {p.act_min}, "
                    f"{p.act_max});\n    KWS_OP_END({k});\n")
        ops.append(StubOp(f"op{k}_fc", op.kind.value, graph.op_macs(i)))
    if fault:
        body.append("    *(volatile uint32_t *)0xFFFFFFF0u = 1u; /* unmapped: a bus fault */\n")
    if hang:
        body.append("    for (volatile int spin = 1; spin;) ;\n")
    if spin:  # a slow model: ``spin`` empty loop iterations per run
        body.append(f"    for (volatile uint32_t i = 0; i < {spin}u; i++) ;\n")
    if calibrate:  # only a loop of exactly 2 instructions per iteration, N = the input's first two bytes
        body = ["    uint32_t n = ((uint32_t)(uint8_t)arena[0] << 8) | (uint8_t)arena[1];\n"
                "    if (n) __asm__ volatile(\"1: subs %0, %0, #1\\n\\tbne 1b\" : \"+r\"(n) :: \"cc\");\n"]
    digest = graph.digest()[:16]
    header = (
        "#ifndef KWS_MODEL_H\n#define KWS_MODEL_H\n#include <stdint.h>\n"
        f"#define KWS_INPUT_BYTES {tin.nbytes}\n#define KWS_OUTPUT_BYTES {tout.nbytes}\n"
        f"#define KWS_ARENA_BYTES {arena}\n#define KWS_INPUT_OFFSET 0\n#define KWS_NUM_OPS {len(ops)}\n"
        "int8_t *kws_input(void);\nconst int8_t *kws_output(void);\nvoid kws_run(void);\n"
        "extern const char kws_model_digest[];\nextern const char *const kws_op_names[];\n#endif\n")
    names = ", ".join(f'"{o.name}"' for o in ops)
    source = (
        '#include <string.h>\n#include "kws_model.h"\n'
        "#ifndef KWS_OP_BEGIN\n#define KWS_OP_BEGIN(i)\n#endif\n#ifndef KWS_OP_END\n#define KWS_OP_END(i)\n#endif\n"
        + _RUNTIME + "".join(consts)
        + f"static int8_t arena[{arena}] __attribute__((aligned(4)));\n"
        f'const char kws_model_digest[] = "{digest}";\nconst char *const kws_op_names[] = {{{names}}};\n'
        "int8_t *kws_input(void) { return arena; }\n"
        f"const int8_t *kws_output(void) {{ return arena + {offset[out]}; }}\n"
        "void kws_run(void)\n{\n" + "".join(body) + "}\n")
    return StubModel({"kws_model.h": header, "kws_model.c": source}, arena, tin.nbytes, tout.nbytes, tuple(ops),
                     digest, variant)


def fc_graph(rng: np.random.Generator, sizes=(64, 32, 10), per_channel: bool = False) -> Int8Graph:
    """A chain of fully-connected layers (ReLU between them) with calibrated quantization."""
    from tests.helpers.int8_graphs import GraphBuilder

    b = GraphBuilder(rng, (1, sizes[0]), input_scale=0.05, input_zero_point=-3)
    x = b.input
    for k, n in enumerate(sizes[1:]):
        last = k == len(sizes) - 2
        x = b.fc(x, n, Activation.NONE if last else Activation.RELU, per_channel=per_channel, spread=0.5)
    return b.finish([x])


def contract_graph() -> Int8Graph:
    """The small model the evaluator contract and fault tests measure (two per-channel FC layers)."""
    return fc_graph(np.random.default_rng(7), sizes=(80, 32, 12), per_channel=True)


class FakeBoard:
    """The target side of the protocol in Python, behind pyserial's ``loop://``.

    Two loop ports are the two wires: what the host writes goes into ``down``, the fake takes it
    out, answers each complete frame (outputs from ``hardware.reference``, counts from a fixed
    formula: 4 per MAC plus 100 per op, as "cycles") into ``up``, where the host's reads find it.
    Like the firmware, it answers a repeated request from its cache and refuses RUN before any input.

    Faults on demand: ``reset_at`` (command numbers, counted over the fake's life, at which it resets
    instead of answering: staged input and answer cache lost, a BOOT frame sent), ``delay_s`` (every
    answer held back that long: a slow board), ``firmware`` (the version its INFO reports).
    """

    def __init__(self, graph: Int8Graph, *, url: str = "loop://", board: str = "fake", cpu_hz: int = 100_000_000,
                 digest: str | None = None, corrupt_output: bool = False, reset_at: tuple[int, ...] = (),
                 delay_s: float = 0.0, firmware: str | None = None) -> None:
        import serial

        from hardware.firmware.build import FIRMWARE_VERSION
        from hardware.wire import MAX_PAYLOAD, PROTOCOL_VERSION, BoardInfo

        self.down = serial.serial_for_url(url, timeout=0)     # host -> target
        self.up = serial.serial_for_url(url, timeout=0.05)    # target -> host
        self.port = self.up
        self.graph = graph
        self.corrupt_output = corrupt_output
        tin, tout = graph.tensors[graph.inputs[0]], graph.tensors[graph.outputs[0]]
        self.order = graph.topological_order()
        self.op_cycles = [4 * graph.op_macs(i) + 100 for i in self.order]
        self.info = BoardInfo(PROTOCOL_VERSION, firmware or FIRMWARE_VERSION, "cycles", cpu_hz, 0x410FC241, 0, tin.nbytes, tout.nbytes,
                              len(self.order), MAX_PAYLOAD, 4096, digest or graph.digest()[:16], board)
        self.input = bytearray(tin.nbytes)
        self.output = bytes(tout.nbytes)
        self._rx = bytearray()
        self._last: tuple[int, int, int, bytes] | None = None  # (seq, cmd, crc, encoded reply)
        self.executed = 0   # commands run (not answered from the cache)
        self.received = 0   # valid requests seen, repeats included
        self.reset_at, self.resets = set(reset_at), 0
        self.staged = False
        self.delay_s = delay_s
        self._held: list[tuple[float, bytes]] = []  # (release time, frame) of a slow board

    # pyserial-like surface used by hardware.link.Link
    @property
    def timeout(self):
        return self.up.timeout

    @timeout.setter
    def timeout(self, v):
        self.up.timeout = v

    def _release(self) -> None:
        import time

        while self._held and self._held[0][0] <= time.monotonic():
            self.up.write(self._held.pop(0)[1])

    @property
    def in_waiting(self) -> int:
        self._release()
        return self.up.in_waiting

    def read(self, size: int = 1) -> bytes:
        self._release()
        return self.up.read(size)

    def reset_input_buffer(self) -> None:
        self.up.reset_input_buffer()

    def close(self) -> None:
        self.up.close()
        self.down.close()

    def write(self, data: bytes) -> int:
        self.down.write(data)                                  # onto the wire...
        self._rx += self.down.read(self.down.in_waiting)       # ...and off it, on the target's side
        while (i := self._rx.find(b"\0")) >= 0:
            raw, self._rx = bytes(self._rx[:i]), self._rx[i + 1:]
            reply = self._handle(raw)
            if reply and self.delay_s:
                import time

                self._held.append((time.monotonic() + self.delay_s, reply))
            elif reply:
                self.up.write(reply)
        return len(data)

    def reset(self) -> None:
        """What a reset does to the firmware: state gone, then the BOOT announcement."""
        from hardware.wire import Cmd, encode_frame

        self.resets += 1
        self.staged, self._last = False, None
        self.input = bytearray(len(self.input))
        major, minor = (int(v) for v in self.info.firmware_version.split("."))
        boot = b"\0" + struct.pack("<H", major << 8 | minor)  # status, then FW_VERSION as main.c sends it
        self.up.write(b"\0" + encode_frame(Cmd.BOOT | 0x80, 0, boot))

    def _handle(self, raw: bytes) -> bytes | None:
        from hardware import reference
        from hardware.wire import PROTOCOL_VERSION, Cmd, Status, decode_frame, encode_frame

        f = decode_frame(raw)
        if f is None or f.version != PROTOCOL_VERSION or f.cmd & 0x80:
            return None
        self.received += 1
        if self.received in self.reset_at:
            self.reset()  # the request is lost with the rest of the state
            return None
        if self._last and self._last[:3] == (f.seq, f.cmd, f.crc):
            return self._last[3]
        self.executed += 1
        p, status, data = f.payload, Status.OK, b""
        if f.cmd == Cmd.INFO:
            data = self.info.pack()
        elif f.cmd == Cmd.ECHO:
            data = p
        elif f.cmd == Cmd.SET_INPUT:
            off, = struct.unpack_from("<I", p)
            if off + len(p) - 4 > len(self.input):
                status = Status.BAD_RANGE
            else:
                self.input[off:off + len(p) - 4] = p[4:]
                self.staged = True
        elif f.cmd == Cmd.RUN and not self.staged:
            status = Status.NO_INPUT
        elif f.cmd == Cmd.RUN:
            runs, _flags = struct.unpack("<HB", p)
            tin = self.graph.tensors[self.graph.inputs[0]]
            x = np.frombuffer(bytes(self.input), dtype=tin.dtype.numpy).reshape(tin.shape)
            y = np.asarray(reference.run(self.graph, x)[0])
            out = bytearray(y.tobytes())
            if self.corrupt_output:
                out[0] ^= 1
            self.output = bytes(out)
            data = struct.pack(f"<H{runs}Q", runs, *[sum(self.op_cycles)] * runs)
        elif f.cmd == Cmd.OP_COUNTS:
            first, n = struct.unpack("<HH", p)
            data = struct.pack(f"<H{n}Q", n, *self.op_cycles[first:first + n])
        elif f.cmd == Cmd.READ_OUTPUT:
            off, n = struct.unpack("<IH", p)
            data = self.output[off:off + n]
        elif f.cmd == Cmd.STACK:
            data = struct.pack("<II", 200, 4096)
        elif f.cmd == Cmd.EXIT:
            pass
        else:
            status = Status.UNKNOWN_CMD
        reply = encode_frame(f.cmd | 0x80, f.seq, bytes([status]) + data)
        self._last = (f.seq, f.cmd, f.crc, reply)
        return reply
