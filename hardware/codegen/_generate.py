"""generate(): int8 core -> lowered ops -> arena plan -> C sources."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from types import MappingProxyType

import numpy as np

from hardware.codegen import _lower, _plan
from hardware.codegen._core import int8_core
from hardware.graph import Int8Graph

GENERATOR_VERSION = "3"  # bump when the generated C changes for the same graph (host build cache key)
VARIANTS = ("plain", "dsp")
KERNEL_FILES = {"plain": ("kws_fixedpoint.h", "kws_kernels.h"),
                "dsp": ("kws_fixedpoint.h", "kws_kernels.h", "kws_acle.h", "kws_kernels_dsp.h")}


_ITEM_BYTES = {"int8_t": 1, "int16_t": 2, "int32_t": 4}


@dataclass(frozen=True)
class OpInfo:
    """One generated op: a C-safe name (position, kind, output shape), the op kind and its MACs."""

    name: str
    kind: str
    macs: int


@dataclass(frozen=True)
class GeneratedModel:
    """C sources for one graph and variant, and what the firmware and host need to drive them.

    ``files`` maps file names to contents: ``{prefix}_model.h``/``.c`` and the kernel headers they
    include. The arena holds every activation and scratch buffer (``arena_bytes``); the input is
    written at ``{prefix}_input()`` and is clobbered by a run. For a float-IO graph the C computes
    the int8 core: quantize inputs with ``input_scale``/``input_zero_point`` (TFLM QUANTIZE) and
    dequantize outputs with ``output_scale``/``output_zero_point`` on the host.
    """

    files: dict[str, str]
    prefix: str
    variant: str
    arena_bytes: int
    input_bytes: int
    output_bytes: int
    ops: tuple[OpInfo, ...]
    model_digest: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    input_scale: float
    input_zero_point: int
    output_scale: float
    output_zero_point: int
    float_io: bool
    input_offset: int
    output_offset: int
    op_outputs: tuple[int, ...]                 # graph tensor written by each generated op
    tensor_offsets: MappingProxyType = field(default_factory=dict)  # activation tensor -> arena offset
    tensor_shapes: MappingProxyType = field(default_factory=dict)   # activation tensor -> shape
    kernels: tuple[str, ...] = ()               # kernel used by each op (conv_dsp, dwconv, ...)
    scratch_bytes: int = 0                      # largest op scratch buffer (inside the arena)
    op_in_place: tuple[bool, ...] = ()          # output overlaps an input
    op_orders: tuple[str, ...] = ()             # "fwd" or "rev": the order the kernel visits outputs
    wide_weights: bool = False                  # DSP GEMM weights stored as int16
    generator_version: str = GENERATOR_VERSION
    intact_tensors: tuple[int, ...] = ()        # tensors still in the arena, as computed, after a run
    tensor_names: MappingProxyType = field(default_factory=dict)  # activation tensor -> its name
    keep_all: bool = False                      # a debug build: every tensor intact
    calls: tuple[str, ...] = ()                 # each op's call with its shape literals: equal calls share code
    model_data_bytes: int = 0                   # constant arrays in flash (weights, biases, requantization)

    @property
    def functions(self) -> tuple[str, ...]:
        """The C function each op calls (kws_conv3r_dsp, ...; "" for an alias)."""
        return tuple(call.split("(")[0] for call in self.calls)

    def write(self, directory) -> list[Path]:
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        paths = []
        for name, text in self.files.items():
            (out / name).write_text(text)
            paths.append(out / name)
        return paths


def _kernel_text(name: str) -> str:
    return resources.files("hardware.codegen").joinpath(name).read_text()


def _alias_groups(graph: Int8Graph, lowered) -> dict[int, int]:
    """tensor -> representative tensor of its alias group (RESHAPE chains)."""
    rep: dict[int, int] = {}

    def find(t: int) -> int:
        while rep.get(t, t) != t:
            t = rep[t]
        return t

    for low in lowered:
        if low.alias:
            rep[low.output] = find(low.inputs[0])
    return {t: find(t) for t in graph.tensor_lifetimes()}


def plan_arena(graph: Int8Graph, order, lowered, place=_plan.place, keep_all: bool = False
               ) -> tuple[_plan.Plan, dict[int, int]]:
    """Buffers, in-place pairs and placement (``place(buffers, pairs) -> Plan``, verified);
    returns the plan and tensor -> buffer index. ``keep_all``: every activation lives to the end of
    the run (no reuse, nothing in place), so a debugger can read every intermediate tensor afterwards."""
    life = graph.tensor_lifetimes()
    if keep_all:
        life = {t: (first, max(last, len(lowered))) for t, (first, last) in life.items()}
    groups = _alias_groups(graph, lowered)
    reps = sorted(set(groups.values()))
    members = {r: tuple(t for t in life if groups[t] == r) for r in reps}
    buffers = [_plan.Buffer(graph.tensors[r].nbytes, min(life[t][0] for t in members[r]),
                            max(life[t][1] for t in members[r]), members[r]) for r in reps]
    buf_of = {t: reps.index(groups[t]) for t in life}
    for pos, low in enumerate(lowered):
        if low.scratch_bytes:
            buffers.append(_plan.Buffer(low.scratch_bytes, pos, pos, (), pos))
    pairs: dict[tuple[int, int], tuple[int, object]] = {}
    for pos, low in enumerate(lowered):
        if low.stream is None:
            continue
        o = buf_of[low.output]
        for j, t in enumerate(low.inputs):
            i = buf_of[t]
            if i == o or buffers[i].last != pos:
                continue
            sh = low.stream.shifts(j)
            pairs[(o, i)] = (pos, pairs[(o, i)][1].combine(sh) if (o, i) in pairs else sh)
    plan = place(buffers, pairs)
    _plan.verify(plan)
    return plan, buf_of


def _c_name(prefix: str, pos: int, suffix: str) -> str:
    return f"{prefix}_op{pos}_{suffix}"


def _array_text(ctype: str, name: str, values: np.ndarray) -> str:
    vals = [str(int(v)) for v in np.asarray(values).ravel()]
    vals = ["(-2147483647 - 1)" if v == "-2147483648" else v for v in vals] or ["0"]
    lines = [", ".join(vals[i:i + 24]) for i in range(0, len(vals), 24)]
    body = ",\n    ".join(lines)
    return f"static const {ctype} {name}[{len(vals)}] __attribute__((aligned(4))) = {{\n    {body}\n}};\n"


def _safe(text: str) -> str:
    """A graph-supplied name made safe for a C comment."""
    return re.sub(r"[^A-Za-z0-9_.:-]", "_", text)[:48]


def generate(graph: Int8Graph, variant: str = "plain", prefix: str = "kws", *, wide_weights: bool = False,
             keep_all: bool = False) -> GeneratedModel:
    """C sources for ``graph`` (see :class:`GeneratedModel`). ``wide_weights`` (DSP variant only)
    stores conv, fully-connected and row-kernel depthwise weights as int16, ready for SMLAD: fewer
    instructions in those layers for twice their weight flash. ``keep_all`` (a debug build, larger
    arena): every intermediate tensor stays in the arena after a run, where the device check reads
    them all. Raises ValueError for a bad variant or prefix and :class:`~hardware.graph.GraphError`
    for a graph the generator cannot run."""
    return build_model(graph, variant, prefix, _plan.place, wide_weights, keep_all)


def build_model(graph: Int8Graph, variant: str, prefix: str, place, wide_weights: bool = False,
                keep_all: bool = False) -> GeneratedModel:
    """:func:`generate` with the arena placement function given (tests force tight overlaps)."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    if not isinstance(prefix, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,30}", prefix):
        raise ValueError(f"prefix must be a C identifier of at most 31 characters, got {prefix!r}")
    core = int8_core(graph)
    g = core.graph
    order = g.topological_order()
    lowered = [_lower.lower(g, g.ops[k], variant, core.op_index[k], wide_weights) for k in order]
    plan, buf_of = plan_arena(g, order, lowered, place, keep_all)
    if variant == "dsp":  # a larger depthwise scratch where it costs no arena bytes
        big = [_lower.lower(g, g.ops[k], variant, core.op_index[k], wide_weights, _lower.MAX_DW_SCRATCH_BYTES)
               for k in order]
        if [(b.call, b.scratch_bytes) for b in big] != [(low.call, low.scratch_bytes) for low in lowered]:
            plan_big, buf_big = plan_arena(g, order, big, place, keep_all)
            if plan_big.arena_bytes <= plan.arena_bytes:
                lowered, plan, buf_of = big, plan_big, buf_big
    offsets = {t: plan.offsets[b] for t, b in buf_of.items()}
    x, y = g.tensors[g.inputs[0]], g.tensors[g.outputs[0]]
    ops = []
    for pos, k in enumerate(order):
        op = g.ops[k]
        shape = "x".join(str(d) for d in g.tensors[op.outputs[0]].shape)
        ops.append(OpInfo(f"{pos:02d}_{op.kind.value.lower()}_{shape}", op.kind.value, g.op_macs(k)))
    digest = graph.digest()[:16]
    P, M = prefix, prefix.upper()
    header = _header(P, M, digest, variant, plan.arena_bytes, x, y, len(ops), core, offsets[g.inputs[0]])
    source = _source(P, M, digest, variant, g, order, lowered, plan, offsets, ops)
    files = {f"{P}_model.h": header, f"{P}_model.c": source}
    for name in KERNEL_FILES[variant]:
        files[name] = _kernel_text(name)
    scratch = max((low.scratch_bytes for low in lowered), default=0)
    return GeneratedModel(
        files, P, variant, plan.arena_bytes, x.nbytes, y.nbytes, tuple(ops), digest,
        x.shape, y.shape, float(x.quantization.scale[0]), int(x.quantization.zero_point[0]),
        float(y.quantization.scale[0]), int(y.quantization.zero_point[0]), core.float_input or core.float_output,
        offsets[g.inputs[0]], offsets[g.outputs[0]], tuple(g.ops[k].outputs[0] for k in order),
        MappingProxyType(offsets), MappingProxyType({t: g.tensors[t].shape for t in offsets}),
        tuple(low.kernel for low in lowered), scratch,
        tuple(plan.in_place(pos) for pos in range(len(lowered))),
        tuple(plan.direction(pos) for pos in range(len(lowered))), bool(wide_weights and variant == "dsp"),
        intact_tensors=_intact(plan, buf_of), tensor_names=MappingProxyType({t: g.tensors[t].name for t in offsets}),
        keep_all=keep_all, calls=tuple(low.call or "" for low in lowered),
        model_data_bytes=_model_data_bytes(lowered))


def _model_data_bytes(lowered) -> int:
    """Flash of the constant arrays once linked, each 4-byte aligned. An all-zero bias is not linked at
    all: GCC folds the kernel's loads from it to 0 (an untrained model's biases)."""
    return sum(-(-a.values.size * _ITEM_BYTES[a.ctype] // 4) * 4 for low in lowered for a in low.arrays
               if a.suffix != "b" or np.any(a.values))


def _intact(plan: _plan.Plan, buf_of: dict[int, int]) -> tuple[int, ...]:
    """Activation tensors whose bytes a run leaves as computed: no buffer written at or after their
    own write (a later op's output or scratch) shares their bytes."""
    out = []
    for t, b in sorted(buf_of.items()):
        first = plan.buffers[b].first
        if plan.buffers[b].size and not any(
                j != b and plan.buffers[j].size and plan.buffers[j].first >= first and plan.overlaps(b, j)
                for j in range(len(plan.buffers))):
            out.append(t)
    return tuple(out)


def _header(P, M, digest, variant, arena, x, y, n_ops, core, input_offset) -> str:
    xq, yq = x.quantization, y.quantization
    edges = []
    if core.float_input:
        edges.append("the graph's float input is quantized by the host: q = round(x / scale) + zero_point")
    if core.float_output:
        edges.append("the graph's float output is dequantized by the host: x = scale * (q - zero_point)")
    note = "".join(f" * Float IO: {e}.\n" for e in edges)
    return f"""/* Generated by kwsnas hardware.codegen {GENERATOR_VERSION} for model {digest} ({variant} kernels).
 * Do not edit.
 *
 * {P}_input() points into the arena: write the int8 input there, call {P}_run(), read {P}_output().
 * A run overwrites the input. {M}_OP_BEGIN(i)/{M}_OP_END(i) wrap every op (empty unless defined).
{note} */
#ifndef {M}_MODEL_H
#define {M}_MODEL_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {{
#endif

#define {M}_INPUT_BYTES {x.nbytes}
#define {M}_OUTPUT_BYTES {y.nbytes}
#define {M}_ARENA_BYTES {arena}
#define {M}_INPUT_OFFSET {input_offset} /* of the input in the arena */
#define {M}_NUM_OPS {n_ops}
#define {M}_INPUT_SCALE {float(xq.scale[0])!r}f
#define {M}_INPUT_ZERO_POINT ({int(xq.zero_point[0])})
#define {M}_OUTPUT_SCALE {float(yq.scale[0])!r}f
#define {M}_OUTPUT_ZERO_POINT ({int(yq.zero_point[0])})

int8_t *{P}_input(void);
const int8_t *{P}_output(void);
void {P}_run(void);
void {P}_invoke(const int8_t *in, int8_t *out); /* copy in, run, copy out */

extern const char {P}_model_digest[];               /* graph digest, 16 hex digits */
extern const char *const {P}_op_names[{M}_NUM_OPS];
extern const char *const {P}_op_kinds[{M}_NUM_OPS];
extern const uint32_t {P}_op_macs[{M}_NUM_OPS];

#ifdef __cplusplus
}}
#endif
#endif
"""


def _source(P, M, digest, variant, g, order, lowered, plan, offsets, ops) -> str:
    kernels = "kws_kernels_dsp.h" if variant == "dsp" else "kws_kernels.h"
    out = [f"/* Generated by kwsnas hardware.codegen {GENERATOR_VERSION} for model {digest}. Do not edit. */\n",
           f'#include "{P}_model.h"\n#include "{kernels}"\n',
           f"#ifndef {M}_OP_BEGIN\n#define {M}_OP_BEGIN(i) ((void)0)\n#endif\n",
           f"#ifndef {M}_OP_END\n#define {M}_OP_END(i) ((void)0)\n#endif\n\n",
           f"static int8_t {P}_arena[{M}_ARENA_BYTES] __attribute__((aligned(8)));\n\n"]
    seen: dict[tuple[str, bytes], str] = {}
    names: list[dict[str, str]] = []
    for pos, low in enumerate(lowered):
        mapping = {}
        for arr in low.arrays:
            key = (arr.ctype, np.asarray(arr.values, np.int64).tobytes())
            if key not in seen:
                seen[key] = _c_name(P, pos, arr.suffix)
                out.append(_array_text(arr.ctype, seen[key], arr.values))
            mapping[arr.suffix] = seen[key]
        names.append(mapping)
    out.append(f'\nconst char {P}_model_digest[] = "{digest}";\n')
    names_c = ", ".join(f'"{o.name}"' for o in ops)
    kinds_c = ", ".join(f'"{o.kind}"' for o in ops)
    out.append(f"const char *const {P}_op_names[{M}_NUM_OPS] = {{{names_c}}};\n")
    out.append(f"const char *const {P}_op_kinds[{M}_NUM_OPS] = {{{kinds_c}}};\n")
    out.append(f"const uint32_t {P}_op_macs[{M}_NUM_OPS] = {{{', '.join(str(o.macs) + 'u' for o in ops)}}};\n\n")
    x, y = g.inputs[0], g.outputs[0]
    out.append(f"int8_t *{P}_input(void) {{ return {P}_arena + {offsets[x]}; }}\n")
    out.append(f"const int8_t *{P}_output(void) {{ return {P}_arena + {offsets[y]}; }}\n\n")
    run = [f"void {P}_run(void)\n{{\n"]
    # One function per distinct kernel call (shape, constants, order): ops that differ only in their
    # buffers and constant arrays share it, which keeps flash down (DS-CNN-S: 4 depthwise and 4
    # pointwise layers, 2 functions) while each is still specialised to its literal shape.
    shared: dict[str, str] = {}
    for pos, (k, low) in enumerate(zip(order, lowered, strict=True)):
        op = g.ops[k]
        desc = ", ".join(f"t{t} {_safe(g.tensors[t].name)} @{offsets[t]}" for t in low.inputs)
        comment = f"/* {ops[pos].name}: {desc} -> t{low.output} @{offsets[low.output]} */\n"
        if low.call is not None:
            params = {a.suffix: f"c_{a.suffix}" for a in low.arrays}
            params.update({f"in{j}": f"x{j}" for j in range(len(low.inputs))})
            params.update(out="y", scratch="sc", rev="1" if plan.direction(pos) == "rev" else "0")
            text = low.call.format(**params)
            fn = shared.get(text)
            if fn is None:
                fn = shared[text] = f"{P}_k{len(shared)}"
                decl = [f"const int8_t *x{j}" for j in range(len(low.inputs))] + ["int8_t *y", "int8_t *sc"]
                decl += [f"const void *c_{a.suffix}" for a in low.arrays]
                unused = "".join(f"(void){d.split('*')[-1]}; " for d in decl)  # not every kernel reads all
                out.append(f"__attribute__((noinline, noclone)) static void {fn}({', '.join(decl)})\n{{\n"
                           f"    {unused}\n    {text}\n}}\n\n")
            s_off = plan.scratch_offset(pos)
            args = [f"{P}_arena + {offsets[t]}" for t in low.inputs] + [f"{P}_arena + {offsets[low.output]}",
                                                                       f"{P}_arena + {s_off}" if s_off is not None
                                                                       else "0"]
            args += [names[pos][a.suffix] for a in low.arrays]
            body = f"{comment}    {fn}({', '.join(args)});"
        else:
            body = f"/* {op.kind.value}: the output shares the input's bytes */"
        run.append(f"    {M}_OP_BEGIN({pos});\n    {body}\n    {M}_OP_END({pos});\n")
    out += run
    out.append("}\n\n")
    out.append(f"void {P}_invoke(const int8_t *in, int8_t *out)\n{{\n"
               f"    memcpy({P}_input(), in, {M}_INPUT_BYTES);\n    {P}_run();\n"
               f"    memcpy(out, {P}_output(), {M}_OUTPUT_BYTES);\n}}\n")
    return "".join(out)
