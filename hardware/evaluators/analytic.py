"""An evaluator with no toolchain and no board: every figure estimated from the graph."""

from __future__ import annotations

from typing import Any

from hardware.boards import Board
from hardware.codegen import generate, int8_core
from hardware.evaluators.base import CachingEvaluator
from hardware.evaluators.cache import MeasurementCache, sources_digest
from hardware.evaluators.result import Measurement, OpCount
from hardware.evaluators.session import device_io
from hardware.graph import Int8Graph, OpKind

# The fallback for ops whose kernel function _FUNCTION_COSTS does not list (ADD, MEAN, PAD, ...: no
# preset has them) and for graphs the generator refuses: instructions per op kind (per MAC, per output
# element, per input element), an older fit to mixed conv/depthwise/pool/add/mean/FC graphs.
_COSTS = {
    "plain": {OpKind.CONV_2D: (5.57, 52.4, 0.0), OpKind.DEPTHWISE_CONV_2D: (20.2, 0.0, 0.0),
              OpKind.FULLY_CONNECTED: (6.79, 45.4, 2.04), OpKind.AVERAGE_POOL_2D: (0.0, 19.9, 0.15),
              OpKind.MAX_POOL_2D: (0.0, 16.0, 0.4), OpKind.MEAN: (0.0, 27.0, 5.05),
              OpKind.ADD: (0.0, 34.9, 0.0), OpKind.MUL: (0.0, 19.2, 0.0), OpKind.SOFTMAX: (0.0, 64.3, 0.0)},
    "dsp": {OpKind.CONV_2D: (0.95, 7.5, 0.0), OpKind.DEPTHWISE_CONV_2D: (2.14, 0.0, 0.0),
            OpKind.FULLY_CONNECTED: (1.93, 24.6, 0.0), OpKind.AVERAGE_POOL_2D: (0.0, 16.5, 0.81),
            OpKind.MAX_POOL_2D: (0.0, 16.0, 0.41), OpKind.MEAN: (0.0, 23.1, 5.19),
            OpKind.ADD: (0.0, 34.9, 0.0), OpKind.MUL: (0.0, 19.2, 0.0), OpKind.SOFTMAX: (0.0, 64.3, 0.0)},
}
# MUL (kws_mul, the squeeze-and-excitation gate): 153,575 instructions per 25x5x64 map on mps2-an386, 19.2 per
# element, measured on a gated DS-CNN-S; the same C on the M3.
_OTHER_COST = (0.0, 4.0, 1.0)   # PAD, QUANTIZE, ...: a pass over the data (not fitted)

# Per C kernel function (what the code generator calls for an op), instructions = a*MACs + b*output
# elements + c*(window taps x output pixels) + d*(window positions x output elements) + e*input
# elements + f (see op_features): non-negative least squares on the per-op emulator counts of every
# preset (`bench_analytic.py --fit`: dsp on mps2-an386, plain on mps2-an385), each op's error relative
# (dsp) or weighted by 1/sqrt(its count) (plain: relative weights let the many small ops pull the DS-CNN and
# MicroNet totals 5-8 % low; for dsp they keep the small ei-conv1d within 2 %, where 1/sqrt gave +14 %).
# Kernels not listed use _COSTS by op kind.
_FUNCTION_COSTS: dict[str, dict[str, tuple[float, ...]]] = {
    "dsp": {"alias": (0, 0, 0, 0, 0, 31), "kws_conv3r_dsp": (0.8702, 7.405, 2.065, 0.1472, 2.89, 563.8),
            "kws_conv_dsp": (1.033, 0, 0, 0, 0, 80660), "kws_convrow_dsp": (0.9942, 0, 2.188, 1.482, 0, 0),
            "kws_dwconv": (3.154, 0, 2.322, 0, 30.6, 73.69), "kws_dwconv_dsp": (5.154, 0, 0, 0, 0, 0),
            "kws_dwplane_dsp": (2.173, 0, 0, 0, 0, 0), "kws_dwrow_dsp": (4.861, 0, 0, 0, 0.1007, 0),
            "kws_fc": (6.006, 0, 0.108, 0, 0, 0), "kws_fc_dsp": (1.225, 14.52, 1.804, 0, 0, 53.39),
            "kws_pool": (0, 0, 0, 0, 4.924, 0), "kws_softmax": (0, 0, 0, 0, 0, 1798)},
    "plain": {"alias": (0, 0, 0, 0, 0, 31), "kws_conv": (6.008, 27.38, 0, 7.337, 0, 0),
              "kws_dwconv": (18.58, 0, 60.68, 0, 0, 0), "kws_fc": (6.001, 35.06, 0, 0, 0, 50.92),
              "kws_pool": (0, 0, 0, 0, 5.083, 0), "kws_softmax": (0, 0, 0, 0, 0, 2253)},
}
# Flash of the code: bytes per distinct call of each kernel function (a call is inlined with its shape
# literals; layers of one shape share it) and per call site ("ops"), fitted alike to the linked images;
# the runtime (protocol server, board code, vectors, startup) as measured on mps2-an386 / -an385.
_CODE_BYTES: dict[str, dict[str, int]] = {
    "dsp": {"kws_conv3r_dsp": 835, "kws_conv_dsp": 773, "kws_convrow_dsp": 0, "kws_dwconv": 233,
            "kws_dwconv_dsp": 1182, "kws_dwplane_dsp": 1419, "kws_dwrow_dsp": 1398, "kws_fc": 883, "kws_fc_dsp": 830,
            "kws_pool": 66, "kws_softmax": 475, "ops": 0},
    "plain": {"kws_conv": 240, "kws_dwconv": 434, "kws_fc": 379, "kws_pool": 217, "kws_softmax": 0, "ops": 104},
}
_RUNTIME_BYTES = {"dsp": 2897, "plain": 2853}  # measured (bench_analytic.py --fit), the counter restart included
_CODE_BYTES_PER_OP = {"plain": 350, "dsp": 640}   # a kernel not fitted above (and graphs the generator refuses)
_STACK_BYTES = {"plain": 200, "dsp": 500}         # measured peaks on DS-CNN-S
_HARNESS_RAM_BYTES = 1110     # protocol buffers; + staged input + 8 bytes per op (measured)


def op_features(graph: Int8Graph, k: int) -> tuple[float, ...]:
    """What op ``k``'s instruction count grows with: (MACs, output elements, window taps x output
    pixels, window positions x output elements, input elements, 1)."""
    op = graph.ops[k]
    out, x = graph.tensors[op.outputs[0]], graph.tensors[op.inputs[0]]
    macs = graph.op_macs(k)
    channels = out.shape[-1] if out.shape and out.shape[-1] else 1
    depth = x.shape[-1] if x.shape and x.shape[-1] else 1
    return (float(macs), float(out.size), float(macs / channels), float(macs / depth), float(x.size), 1.0)


class AnalyticEvaluator(CachingEvaluator):
    """No toolchain, no board: every figure estimated from the graph (``estimated=True``).

    The code generator (pure Python) runs as for a measurement: the arena is its plan (exact), the
    model data its constant arrays (exact), and each op's instructions and code bytes come from the
    kernel function it calls (``_FUNCTION_COSTS``, ``_CODE_BYTES``, fitted to emulator counts);
    ``latency_ms_est`` = instructions x board CPI / clock. A graph the generator refuses is
    estimated per op kind (``_COSTS``) with a lifetime bound for the arena. Over-budget estimates say
    ``feasible=False``.
    """

    name = "analytic"

    def __init__(self, *, variant: str | None = None, cache: bool | MeasurementCache = False) -> None:
        super().__init__(cache=cache)
        self.variant = variant

    def _settings(self, board: Board) -> dict[str, Any]:
        return {"variant": self.variant, "codegen": sources_digest(), "model": "analytic-2"}

    def _measure(self, model_bytes: bytes, graph: Int8Graph, board: Board) -> Measurement:
        variant = self.variant or ("dsp" if board.dsp else "plain")
        try:
            gm = generate(graph, variant=variant, prefix="kws")
        except Exception:  # a graph the generator cannot take: estimated per op kind
            gm = None
        core = int8_core(graph).graph if gm is not None else graph
        order = core.topological_order()
        ops, total = [], 0.0
        for pos, i in enumerate(order):
            op = core.ops[i]
            if gm is None and op.kind in (OpKind.QUANTIZE, OpKind.DEQUANTIZE, OpKind.RESHAPE):
                continue
            fn = (gm.functions[pos] or "alias") if gm is not None else ""
            feats = op_features(core, i)
            coef = _FUNCTION_COSTS[variant].get(fn)
            if coef is None:
                per_mac, per_out, per_in = _COSTS[variant].get(op.kind, _OTHER_COST)
                coef = (per_mac, per_out, 0.0, 0.0, per_in, 60.0)  # + call and hook overhead
            est = sum(c * f for c, f in zip(coef, feats, strict=True))
            total += est
            ops.append(OpCount(f"{len(ops):02d}_{op.kind.value.lower()}", op.kind.value, core.op_macs(i), int(est)))
        if gm is not None:
            model_data, arena = gm.model_data_bytes, gm.arena_bytes
            sizes = _CODE_BYTES[variant]
            distinct = {call: fn for call, fn in zip(gm.calls, gm.functions, strict=True) if call}
            code = sizes["ops"] * len(gm.calls) + sum(sizes.get(fn, _CODE_BYTES_PER_OP[variant]) for fn in distinct.values())
        else:
            weighted = [op for op in graph.ops if op.kind in (OpKind.CONV_2D, OpKind.DEPTHWISE_CONV_2D,
                                                              OpKind.FULLY_CONNECTED)]
            model_data = graph.param_bytes() + 8 * sum(graph.tensors[op.outputs[0]].shape[-1] for op in weighted)
            arena = self._lifetime_bound(graph)
            code = _CODE_BYTES_PER_OP[variant] * len(ops)
        runtime = _RUNTIME_BYTES[variant]
        flash = model_data + code + runtime
        dev_in, _ = device_io(graph)
        harness = _HARNESS_RAM_BYTES + graph.tensors[dev_in].nbytes + 8 * len(ops)
        static, stack = arena + harness, _STACK_BYTES[variant]
        feasible = flash <= board.flash_bytes and static + stack <= board.ram_bytes
        instructions = int(total)
        return Measurement(
            board=board.name, model_digest=graph.digest()[:16], evaluator=self.name, ok=feasible,
            error=None if feasible else "estimated over the board's flash or RAM budget", feasible=feasible,
            estimated=True, variant=variant, counter="instructions", instructions=instructions,
            latency_ms_est=1e3 * instructions * board.cpi / board.clock_hz, flash_bytes=flash,
            flash_split={"model_data": model_data, "kernels": code, "runtime": runtime, "startup": 0},
            ram_bytes=static + stack, ram_static_bytes=static, ram_arena_bytes=arena, ram_stack_bytes=stack,
            ram_harness_bytes=harness, ops=tuple(ops))

    @staticmethod
    def _lifetime_bound(graph: Int8Graph) -> int:
        """A lower bound of the arena from tensor lifetimes (for graphs the generator refuses)."""
        life = graph.tensor_lifetimes()
        return max((sum(graph.tensors[t].nbytes for t, (a, b) in life.items() if a <= pos <= b)
                    for pos in range(len(graph.ops))), default=0)
