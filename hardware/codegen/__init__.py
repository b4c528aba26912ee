"""Int8 C code generation: an :class:`~hardware.graph.Int8Graph` becomes C specialised to it.

    from hardware.codegen import generate, HostModel
    gm = generate(graph, variant="dsp", prefix="kws")   # GeneratedModel: files, arena_bytes, ops, ...
    gm.write("build/")                                  # kws_model.h, kws_model.c + kernel headers
    y = HostModel(gm).run(x_int8_batch)                 # the same C compiled for the host

What the C holds: weights and requantization constants (``hardware.op_params``) as ``const``
arrays in flash; one static activation arena laid out from tensor lifetimes, outputs overlapping
their inputs where the kernel's visiting order allows (``_inplace``, ``_plan``); RESHAPE as an
alias; one kernel call per op with every shape a literal, the kernels forced inline so each call
is specialised. ``variant="plain"`` is portable C99; ``"dsp"`` adds SMLAD/SXTB16 kernels for
Cortex-M4/M7/M33 (conv and fully connected as im2col + GEMM, depthwise with paired taps), which
compile on any host through portable intrinsics; ``wide_weights=True`` stores the DSP GEMM weights
as int16 (fewer instructions, twice their flash). All are bit-exact with ``hardware.reference``.

Measured on DS-CNN-S (emulated Cortex-M4, ``-O2``): arena 8.4 KB (plain) / 9.3 KB (dsp) against
TFLM's 23.4 KB; 24.1 M instructions (plain), 4.7 M (dsp), 4.1 M (dsp, wide weights).

C API (prefix ``kws``): ``kws_input()``, ``kws_output()``, ``kws_run()``, ``kws_invoke(in, out)``,
``KWS_INPUT_BYTES``/``KWS_OUTPUT_BYTES``/``KWS_ARENA_BYTES``/``KWS_NUM_OPS``, ``kws_model_digest``,
``kws_op_names``/``kws_op_kinds``/``kws_op_macs``; ``KWS_OP_BEGIN(i)``/``KWS_OP_END(i)`` around
every op (define them before compiling to profile; empty by default).
"""

from hardware.codegen._generate import GENERATOR_VERSION, VARIANTS, GeneratedModel, OpInfo, generate
from hardware.codegen.host import HostModel

__all__ = ["GENERATOR_VERSION", "VARIANTS", "GeneratedModel", "HostModel", "OpInfo", "generate"]
