"""Int8 C code generation: an :class:`~hardware.graph.Int8Graph` becomes C specialised to it.

    from hardware.codegen import generate, HostModel
    gm = generate(graph, variant="dsp", prefix="kws")   # GeneratedModel: files, arena_bytes, ops, ...
    gm.write("build/")                                  # kws_model.h, kws_model.c + kernel headers
    y = HostModel(gm).run(x_int8_batch)                 # the same C compiled for the host

What the C holds: weights and requantization constants (``hardware.op_params``) as ``const``
arrays in flash; one static activation arena laid out from tensor lifetimes, outputs overlapping
their inputs where the kernel's visiting order allows (``_inplace``, ``_plan``); RESHAPE as an
alias; one kernel call per op with every shape a literal, the kernels forced inline into one C
function per distinct call, so each is specialised and layers of the same shape share it. ``variant="plain"`` is portable C99; ``"dsp"`` adds SMLAD/SXTB16 kernels for
Cortex-M4/M7/M33 (conv as im2col + GEMM over 3 pixels x 2 channels, fully connected as im2col +
GEMM, stride-1 SAME depthwise over whole channel planes exactly in place, other depthwise with
paired taps), which compile on any host through portable intrinsics; ``wide_weights=True``
stores the DSP GEMM (and row-kernel depthwise) weights as int16 (fewer instructions, twice their
flash). All are bit-exact with ``hardware.reference``.

Measured on DS-CNN-S (emulated Cortex-M4, ``-O2``, ``experiments/benchmarks/bench_hardware.py``):
23.9 M instructions, 30.7 KB flash (plain); 3.29 M instructions = 1.24 per MAC, 34.1 KB flash
(dsp, int8 weights); arena 8.4 KB (plain) / 9.7 KB (dsp) against TFLM's 23.4 KB.

C API (prefix ``kws``): ``kws_input()``, ``kws_output()``, ``kws_run()``, ``kws_invoke(in, out)``,
``KWS_INPUT_BYTES``/``KWS_OUTPUT_BYTES``/``KWS_ARENA_BYTES``/``KWS_NUM_OPS``, ``kws_model_digest``,
``kws_op_names``/``kws_op_kinds``/``kws_op_macs``; ``KWS_OP_BEGIN(i)``/``KWS_OP_END(i)`` around
every op (define them before compiling to profile; empty by default).
"""

from hardware.codegen._core import int8_core
from hardware.codegen._generate import GENERATOR_VERSION, VARIANTS, GeneratedModel, OpInfo, generate
from hardware.codegen.host import HostModel

__all__ = ["GENERATOR_VERSION", "VARIANTS", "GeneratedModel", "HostModel", "OpInfo", "generate", "int8_core"]
