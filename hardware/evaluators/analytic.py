"""An evaluator with no toolchain and no board: every figure estimated from the graph."""

from __future__ import annotations

from typing import Any

from hardware.boards import Board
from hardware.codegen import generate
from hardware.evaluators.base import CachingEvaluator
from hardware.evaluators.cache import MeasurementCache, sources_digest
from hardware.evaluators.result import Measurement, OpCount
from hardware.evaluators.session import device_io
from hardware.graph import Int8Graph, OpKind

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


class AnalyticEvaluator(CachingEvaluator):
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
        return {"variant": self.variant, "codegen": sources_digest(), "model": "analytic-1"}

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
        dev_in, _ = device_io(graph)
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
            return int(generate(graph, variant=variant, prefix="kws").arena_bytes)
        except Exception:  # a graph the generator cannot take: a lower bound from lifetimes
            life = graph.tensor_lifetimes()
            return max((sum(graph.tensors[t].nbytes for t, (a, b) in life.items() if a <= pos <= b)
                        for pos in range(len(graph.ops))), default=0)
