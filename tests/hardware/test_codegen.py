"""The int8 C code generator: bit-exact with the golden reference on the host (both kernel
variants), in-place arena planning, clear errors, and cross-compilation for Cortex-M.

Every graph is compiled once per variant (host gcc -O2, ~0.3 s) into a per-session cache. The
"wide" variant is the DSP one with int16 GEMM weights.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import Counter

import numpy as np
import pytest

from hardware import reference
from hardware.codegen import GeneratedModel, HostModel, _generate, _plan, generate
from hardware.codegen._core import int8_core
from hardware.fixedpoint import round_half_away
from hardware.graph import GraphError, Int8Graph, OpKind, Padding, Quantization, Tensor
from nas.quant.ptq import quantize_input
from tests.helpers.int8_graphs import GraphBuilder, ds_cnn_s, float_twin, random_graph

VARIANTS = ("plain", "dsp")
N_RANDOM = 32


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("codegen-cache")


def _inputs(gm: GeneratedModel, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, size=(n, *gm.input_shape)).astype(np.int8)
    x[0] = -128  # the extremes saturate differently from random data
    if n > 1:
        x[1] = 127
    return x


def _check_exact(graph: Int8Graph, variant: str, cache, n: int = 24, seed: int = 0) -> GeneratedModel:
    """Compile, run n inputs, compare every op's output with the reference: zero differences.
    ``variant`` "wide" is the DSP variant with int16 GEMM weights."""
    core = int8_core(graph).graph
    gm = generate(graph, "dsp", wide_weights=True) if variant == "wide" else generate(graph, variant)
    model = HostModel(gm, cache_dir=cache)
    assert model.compiler_messages == "", model.compiler_messages
    x = _inputs(gm, n, seed)
    want = reference.run_all(core, x)
    y, got = model.run(x, intermediates=True)
    for pos, t in enumerate(gm.op_outputs):
        bad = int((got[t] != want[t]).sum())
        assert bad == 0, (f"{variant}: op {gm.ops[pos].name} ({gm.kernels[pos]}, {gm.op_orders[pos]}, "
                          f"in place: {gm.op_in_place[pos]}) differs in {bad} values")
    assert np.array_equal(y, want[core.outputs[0]])
    return gm


# ---- DS-CNN-S ----

@pytest.fixture(scope="module")
def dscnn():
    return ds_cnn_s(np.random.default_rng(7), softmax=True)


@pytest.mark.parametrize("variant", [*VARIANTS, "wide"])
def test_ds_cnn_s_bit_exact(dscnn, variant, cache):
    gm = _check_exact(dscnn, variant, cache, n=64)
    assert gm.model_digest == dscnn.digest()[:16]
    assert sum(o.macs for o in gm.ops) == dscnn.macs()
    if variant != "plain":
        assert gm.kernels[:3] == ("conv_dsp", "dwplane_dsp", "conv_dsp")
        assert gm.wide_weights == (variant == "wide")


def test_ds_cnn_s_shares_kernels_and_keeps_weights_int8(dscnn):
    """One C function per distinct kernel call: DS-CNN-S's 4 depthwise and 4 pointwise layers
    share 2; the DSP variant keeps every weight int8 in flash unless wide weights are asked for."""
    for variant in VARIANTS:
        src = generate(dscnn, variant).files["kws_model.c"]
        assert len(re.findall(r"static void kws_k\d+\(", src)) == 6  # stem, dw, pw, pool, fc, softmax
    dsp, wide = (generate(dscnn, "dsp", wide_weights=w).files["kws_model.c"] for w in (False, True))
    assert not re.search(r"const int16_t kws_op\d+_w\[", dsp)
    # conv and FC weights (the depthwise layers' channel-plane kernel keeps its 9 weights a channel int8)
    assert len(re.findall(r"const int16_t kws_op\d+_w\[", wide)) == 6


def test_large_depthwise_scratch_only_where_the_arena_allows(cache, monkeypatch):
    """A depthwise window over MAX_SCRATCH_BYTES takes the DSP kernel (bit-exact) only where the
    arena does not grow beyond the plan with the plain kernel for it."""
    from hardware.codegen import _lower

    rng = np.random.default_rng(3)
    b = GraphBuilder(rng, (1, 13, 9, 160), input_scale=0.05, input_zero_point=3, jitter=0.2)
    # VALID: not the shape-preserving case kws_dwplane_dsp takes, so the row-window kernel
    x = b.depthwise(b.input, (3, 3), (1, 1), Padding.VALID, per_channel=True, bias=True, dilation=(1, 1), spread=1.0)
    g = b.finish([b.conv(b.conv(x, 512, (1, 1), spread=1.0), 8, (1, 1), spread=1.0)])  # the peak comes later
    core = int8_core(g).graph
    small = _lower.lower(core, core.ops[0], "dsp", 0)
    big = _lower.lower(core, core.ops[0], "dsp", 0, dw_scratch=_lower.MAX_DW_SCRATCH_BYTES)
    # the window of whole input rows needs the larger scratch; the row kernel fits the small one
    assert small.kernel == "dwrow_dsp" and small.scratch_bytes <= _lower.MAX_SCRATCH_BYTES
    assert big.kernel == "dwconv_dsp" and big.scratch_bytes > _lower.MAX_SCRATCH_BYTES
    gm = _check_exact(g, "dsp", cache, seed=3)
    with monkeypatch.context() as m:
        m.setattr(_lower, "MAX_DW_SCRATCH_BYTES", _lower.MAX_SCRATCH_BYTES)
        fallback = generate(g, "dsp")
    assert fallback.kernels[0] == "dwrow_dsp" and gm.arena_bytes <= fallback.arena_bytes
    assert gm.kernels[0] == "dwconv_dsp"  # here the window fits beside the in-place input/output


def test_ds_cnn_s_arena_is_in_place(dscnn):
    """Peak RAM far below TFLM's: less than the largest layer's input + output, and < 0.6 x 24 KB."""
    core = int8_core(dscnn).graph
    largest = max(sum(core.tensors[t].nbytes for t in (op.inputs[0], op.outputs[0])) for op in core.ops)
    for variant in VARIANTS:
        gm = generate(dscnn, variant)
        assert gm.arena_bytes < largest, (variant, gm.arena_bytes, largest)
        assert gm.arena_bytes <= 0.6 * 24 * 1024
        assert sum(gm.op_in_place) >= 8  # every depthwise and pointwise layer writes over its input


def test_float_io_graph_runs_its_int8_core(cache):
    g = ds_cnn_s(np.random.default_rng(3), float_io=True)
    gm = generate(g, "dsp")
    assert gm.float_io and gm.model_digest == g.digest()[:16]
    xf = np.random.default_rng(4).uniform(-40, 40, size=(16, *g.tensors[g.inputs[0]].shape)).astype(np.float32)
    # exact ties (k + 1/2 steps) in half the inputs: TFLM rounds them away from zero, np.round to even
    steps = np.random.default_rng(5).integers(-60, 60, size=xf[:8].shape)
    xf[:8] = ((steps + 0.5) * np.float32(gm.input_scale)).astype(np.float32)
    assert np.any(np.round(xf[:8] / np.float32(gm.input_scale)) != round_half_away(xf[:8] / np.float32(gm.input_scale)))
    # Host-side QUANTIZE (the project's TFLM-exact one) and DEQUANTIZE with the exported parameters.
    q = quantize_input(xf, gm.input_scale, gm.input_zero_point)
    y = HostModel(gm, cache_dir=cache).run(q)
    yf = (gm.output_scale * (y.astype(np.float64) - gm.output_zero_point)).astype(np.float32)
    np.testing.assert_array_equal(yf, reference.run(g, xf)[0])
    assert f"#define KWS_INPUT_SCALE {gm.input_scale!r}f" in gm.files["kws_model.h"]


# ---- random graphs: every op kind, stride, padding, activation, zero point, quantization ----

@pytest.mark.parametrize("seed", range(N_RANDOM))
def test_random_graph_bit_exact(seed, cache):
    g = random_graph(np.random.default_rng(seed))
    for variant in VARIANTS + (("wide",) if seed % 4 == 0 else ()):
        try:
            _check_exact(g, variant, cache, seed=seed)
        except ValueError as e:  # the reference itself refuses rows TFLM's softmax aborts on
            if "TFLM aborts" not in str(e):
                raise


def _dsp_graph(seed: int) -> Int8Graph:
    """Graphs the shared random builder rarely makes: depthwise layers the DSP kernel takes
    (channels % 4 == 0, multiplier 1) over many windows, FC over several rows, per-tensor
    asymmetric FC weights."""
    rng = np.random.default_rng(1000 + seed)
    c = int(rng.choice([4, 8, 12, 16]))
    b = GraphBuilder(rng, (1, int(rng.integers(5, 14)), int(rng.integers(4, 11)), c),
                     input_scale=10 ** rng.uniform(-2, 0), input_zero_point=int(rng.integers(-128, 128)), jitter=0.2)
    x = b.conv(b.input, c, (1, 1), spread=2.0)
    for _ in range(int(rng.integers(1, 4))):
        _, h, w, _ = b.shape(x)
        kernel = [(3, 3), (3, 3), (5, 5), (1, 3), (2, 2), (4, 1), (10, 4)][rng.integers(7)]
        kernel = (min(kernel[0], h), min(kernel[1], w))
        dil = (2, 1) if rng.random() < 0.2 and h >= 2 * kernel[0] else (1, 1)
        stride = (1, 1) if dil != (1, 1) else (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
        x = b.depthwise(x, kernel, stride, [Padding.SAME, Padding.VALID][rng.integers(2)],
                        per_channel=bool(rng.random() < 0.8), bias=bool(rng.random() < 0.8), dilation=dil,
                        spread=float(rng.uniform(0, 3)))
        x = b.conv(x, c, (1, 1), spread=float(rng.uniform(0, 3)))
    x = b.fc(x, int(rng.integers(3, 9)), keep_num_dims=True, per_channel=bool(rng.random() < 0.3))
    x = b.fc(b.reshape(x, (1, -1)), int(rng.integers(2, 12)))
    g = b.finish([b.softmax(x)])
    tensors = list(g.tensors)
    for op in g.ops:  # asymmetric per-tensor FC weights (TFLM's weight offset)
        w = tensors[op.inputs[1]] if op.kind == OpKind.FULLY_CONNECTED else None
        if w is not None and not w.quantization.is_per_channel:
            tensors[op.inputs[1]] = Tensor(w.name, w.shape, w.dtype, Quantization.per_tensor(
                w.quantization.scale[0], int(rng.integers(-40, 41))), w.data)
    return g.replace(tensors=tuple(tensors))


@pytest.mark.parametrize("seed", range(6))
def test_dsp_kernel_graphs_bit_exact(seed, cache):
    g = _dsp_graph(seed)
    for variant in (*VARIANTS, "wide"):
        gm = _check_exact(g, variant, cache, seed=seed)
        if variant != "plain":
            assert "dwconv_dsp" in gm.kernels and "fc_dsp" in gm.kernels


def _requant_graph(kind: str) -> Int8Graph:
    """Conv, depthwise and FC layers detuned into the DSP requantization modes the calibrated
    graphs rarely reach: "large" accumulators (|acc| >= 2^30: exact 64-bit path, mode 1) and
    "left" shifts (multipliers above 1: the general path, mode 0)."""
    rng = np.random.default_rng(21)
    b = GraphBuilder(rng, (1, 6, 5, 8), input_scale=0.05, input_zero_point=3)
    x = b.depthwise(b.conv(b.input, 8, (1, 1)), (3, 3))
    g = b.finish([b.fc(b.mean(x), 6)])
    tensors = list(g.tensors)
    for op in g.ops:
        if kind == "large" and len(op.inputs) > 2:
            t = tensors[op.inputs[2]]
            big = np.where(np.arange(t.size) % 2, 1, -1) * ((1 << 30) + int(rng.integers(0, 1 << 20)))
            tensors[op.inputs[2]] = Tensor(t.name, t.shape, t.dtype, t.quantization, big.astype(np.int32))
        if kind == "left" and op.kind != OpKind.MEAN:
            t = tensors[op.outputs[0]]
            q = Quantization.per_tensor(t.quantization.scale[0] / 300, t.quantization.zero_point[0])
            tensors[op.outputs[0]] = Tensor(t.name, t.shape, t.dtype, q)
    return g.replace(tensors=tuple(tensors))


@pytest.mark.parametrize("kind,mode", [("large", "1"), ("left", "0")])
def test_requantization_modes_bit_exact(kind, mode, cache):
    g = _requant_graph(kind)
    for variant in (*VARIANTS, "wide"):
        gm = _check_exact(g, variant, cache)
        if variant != "plain":
            modes = re.findall(r"kws_\w+_dsp\(.*, (\d)\);", gm.files["kws_model.c"])
            assert mode in modes, modes


def test_random_graphs_cover_every_op_and_order():
    """The random graphs above exercise every op kind, every DSP kernel, and in-place outputs
    visited in both orders."""
    seen: Counter = Counter()
    for seed in range(N_RANDOM):
        g = random_graph(np.random.default_rng(seed))
        seen.update(op.kind for op in g.ops)
        for variant in VARIANTS:
            gm = generate(g, variant)
            seen.update(gm.kernels)
            seen.update(f"{k}:{o}" for k, o, p in zip(gm.kernels, gm.op_orders, gm.op_in_place, strict=True) if p)
    for kind in OpKind:
        assert seen[kind] > 0, kind
    for kernel in ("conv", "conv_dsp", "dwconv", "fc", "fc_dsp", "pool", "mean", "add", "mul", "softmax", "pad"):
        assert seen[kernel] > 0, kernel
    for kernel in ("conv", "conv_dsp", "dwconv", "pool", "pad"):
        assert seen[f"{kernel}:fwd"] > 0 and seen[f"{kernel}:rev"] > 0, kernel
    assert seen["add:fwd"] > 0 and seen["mul:fwd"] > 0 and seen["softmax:fwd"] > 0


# ---- in-place planning ----

def _tight(order: str):
    """A placement putting the output exactly at its kernel's shift bound over the input."""
    def place(buffers, pairs):
        (o, i), (_, sh) = next(iter(pairs.items()))
        a = _plan.ALIGN
        if sh.exact:  # an exactly-in-place kernel (kws_dwplane_dsp): the output on its input
            shift = 0
        elif order == "fwd":
            shift = min(sh.fwd, buffers[i].size) // a * a
        else:
            shift = -(-max(sh.rev, -buffers[o].size) // a) * a
            if shift <= sh.fwd:  # still allowed forward: step past the forward bound to force reverse
                shift = (sh.fwd // a + 1) * a
        offsets = [0] * len(buffers)
        offsets[i] = -(-max(0, -shift) // a) * a
        offsets[o] = offsets[i] + shift
        end = max(offsets[i] + buffers[i].size, offsets[o] + buffers[o].size)
        for k, b in enumerate(buffers):
            if k not in (o, i):
                offsets[k] = -(-end // a) * a
                end = offsets[k] + b.size
        return _plan.Plan(tuple(buffers), tuple(offsets), -(-end // a) * a, dict(pairs))
    return place


def _one_op_graphs():
    rng = np.random.default_rng(11)

    def builder(shape, zp=-7):
        return GraphBuilder(rng, shape, input_scale=0.05, input_zero_point=zp)

    cases = []
    b = builder((1, 9, 7, 8))
    cases.append(("dw3x3", b.finish([b.depthwise(b.input, (3, 3), spread=1.0)])))
    b = builder((1, 9, 7, 8))
    cases.append(("dw5x3s2", b.finish([b.depthwise(b.input, (5, 3), (2, 1), spread=1.0)])))
    b = builder((1, 11, 9, 160))  # whole input rows do not fit the scratch: kws_dwrow_dsp
    cases.append(("dw3x3s2_dwrow", b.finish([b.depthwise(b.input, (3, 3), (2, 2), spread=1.0)])))
    b = builder((1, 12, 10, 200))
    cases.append(("dw4x3dil_dwrow", b.finish([b.depthwise(b.input, (4, 3), (1, 2), Padding.VALID, dilation=(2, 1),
                                                         spread=1.0)])))
    b = builder((1, 9, 7, 3))
    cases.append(("dw_mult2", b.finish([b.depthwise(b.input, (3, 3), mult=2)])))
    b = builder((1, 8, 6, 16))
    cases.append(("pw_shrink", b.finish([b.conv(b.input, 12, (1, 1))])))
    b = builder((1, 8, 6, 8))
    cases.append(("pw_grow", b.finish([b.conv(b.input, 20, (1, 1))])))
    b = builder((1, 21, 10, 1), zp=-20)
    cases.append(("stem10x4s2", b.finish([b.conv(b.input, 16, (10, 4), (2, 2))])))
    b = builder((1, 12, 1, 13))  # a 1-D convolution over frames: interior windows are contiguous bytes
    cases.append(("conv1d_k3", b.finish([b.conv(b.input, 8, (3, 1))])))
    b = builder((1, 9, 7, 6))
    cases.append(("conv3x3", b.finish([b.conv(b.input, 6, (3, 3))])))
    b = builder((1, 9, 7, 4))
    cases.append(("avgpool", b.finish([b.pool(b.input, OpKind.AVERAGE_POOL_2D, (3, 3), (1, 1), Padding.SAME)])))
    b = builder((1, 9, 7, 4))
    cases.append(("maxpool", b.finish([b.pool(b.input, OpKind.MAX_POOL_2D, (2, 2), (2, 2), Padding.SAME)])))
    b = builder((1, 6, 5, 4))
    cases.append(("pad", b.finish([b.pad(b.input, ((0, 0), (1, 2), (2, 1), (1, 0)))])))
    b = builder((1, 5, 4, 8))
    cases.append(("fc_rows", b.finish([b.fc(b.input, 6, keep_num_dims=True)])))
    b = builder((1, 3, 2, 10))
    cases.append(("softmax", b.finish([b.softmax(b.input)])))
    return cases


@pytest.mark.parametrize("order", ["fwd", "rev"])
@pytest.mark.parametrize("name,graph", _one_op_graphs(), ids=[n for n, _ in _one_op_graphs()])
def test_in_place_at_the_shift_bound_is_exact(name, graph, order, cache):
    """Outputs placed exactly at the planner's bound over their input still compute exactly."""
    for variant in VARIANTS:
        gm = _generate.build_model(graph, variant, "kws", _tight(order))
        if order == "rev" and gm.op_orders[0] != "rev":
            continue  # this kernel has no reverse order, or the bound means no overlap
        x = _inputs(gm, 16, 5)
        y = HostModel(gm, cache_dir=cache).run(x)
        np.testing.assert_array_equal(y, reference.run(graph, x)[0], err_msg=f"{name} {variant} {order}")


def test_planner_never_overlaps_live_tensors():
    """Over many random graphs: two activation tensors alive at once share bytes only when one is
    an op's output and the other an input of that op whose life ends there (or RESHAPE aliases)."""
    for seed in range(60):
        g = random_graph(np.random.default_rng(seed))
        core = int8_core(g).graph
        life = core.tensor_lifetimes()
        order = core.topological_order()
        for variant in VARIANTS:
            gm = generate(g, variant)
            off = gm.tensor_offsets
            aliases = {(op.inputs[0], op.outputs[0]) for op in core.ops if op.kind == OpKind.RESHAPE}
            for a in life:
                for b in life:
                    if a >= b or (a, b) in aliases or (b, a) in aliases:
                        continue
                    (fa, la), (fb, lb) = life[a], life[b]
                    na, nb = core.tensors[a].nbytes, core.tensors[b].nbytes
                    if fa > lb or fb > la or off[a] >= off[b] + nb or off[b] >= off[a] + na:
                        continue
                    early, late = (a, b) if fa <= fb else (b, a)
                    op = core.ops[order[life[late][0]]]
                    assert late in op.outputs and early in op.inputs and life[early][1] == life[late][0], \
                        f"seed {seed} {variant}: tensors {a} and {b} overlap while both alive"
            assert gm.arena_bytes >= max(off[t] + core.tensors[t].nbytes for t in life)


def test_plan_verifier_rejects_overlaps():
    bufs = [_plan.Buffer(64, 0, 1, (0,)), _plan.Buffer(64, 1, 2, (1,))]
    _plan.verify(_plan.Plan(tuple(bufs), (0, 64), 128))
    with pytest.raises(AssertionError, match="overlap"):
        _plan.verify(_plan.Plan(tuple(bufs), (0, 32), 96))


# ---- errors, names, API ----

def test_unsupported_graphs_raise_clear_errors(dscnn):
    with pytest.raises(GraphError, match="int8"):
        generate(float_twin(dscnn))
    rng = np.random.default_rng(0)
    b = GraphBuilder(rng, (1, 6, 5, 3))
    x = b.conv(b.input, 4, (3, 3))
    with pytest.raises(GraphError, match="one input and one output"):
        generate(b.finish([x, b.conv(x, 2, (1, 1))]))
    with pytest.raises(ValueError, match="variant"):
        generate(dscnn, "neon")
    with pytest.raises(ValueError, match="prefix"):
        generate(dscnn, "plain", prefix="1bad name")


def test_graph_names_never_reach_c_unescaped(cache):
    rng = np.random.default_rng(2)
    b = GraphBuilder(rng, (1, 6, 5, 4))
    g = b.finish([b.fc(b.conv(b.input, 4, (3, 3)), 3)])
    evil = '*/ #error "x"\n" */ int main(){}'
    g = g.replace(tensors=tuple(Tensor(evil + t.name, t.shape, t.dtype, t.quantization, t.data) for t in g.tensors),
                  metadata={"name": evil})
    gm = generate(g, "plain")
    for text in gm.files.values():
        assert "#error" not in text and '"x"' not in text
    x = _inputs(gm, 4, 0)
    np.testing.assert_array_equal(HostModel(gm, cache_dir=cache).run(x), reference.run(g, x)[0])


def test_c_api_and_op_table(dscnn):
    gm = generate(dscnn, "dsp", prefix="kws")
    h, c = gm.files["kws_model.h"], gm.files["kws_model.c"]
    for decl in ("int8_t *kws_input(void);", "const int8_t *kws_output(void);", "void kws_run(void);",
                 "void kws_invoke(const int8_t *in, int8_t *out);", "extern const char kws_model_digest[];",
                 "extern const char *const kws_op_names[KWS_NUM_OPS];"):
        assert decl in h
    for macro, value in (("KWS_INPUT_BYTES", gm.input_bytes), ("KWS_OUTPUT_BYTES", gm.output_bytes),
                         ("KWS_ARENA_BYTES", gm.arena_bytes), ("KWS_NUM_OPS", len(gm.ops))):
        assert f"#define {macro} {value}\n" in h
    assert f'kws_model_digest[] = "{gm.model_digest}";' in c
    assert c.count("KWS_OP_BEGIN(") == len(gm.ops) + 1 and c.count("KWS_OP_END(") == len(gm.ops) + 1
    assert all(re.fullmatch(r"\d\d_[a-z0-9_]+", o.name) for o in gm.ops)
    assert {"kws_acle.h", "kws_kernels_dsp.h", "kws_kernels.h", "kws_fixedpoint.h"} <= set(gm.files)
    other = generate(dscnn, "plain", prefix="net2")
    assert "void net2_run(void);" in other.files["net2_model.h"] and "NET2_OP_BEGIN" in other.files["net2_model.c"]


def test_host_library_is_cached(dscnn, cache):
    first = HostModel(dscnn, "plain", cache_dir=cache)
    second = HostModel(dscnn, "plain", cache_dir=cache)
    assert first.library_path == second.library_path and first.library_path.exists()


def test_softmax_exp_matches_the_reference_for_every_difference(tmp_path):
    """The C softmax computes exp per element (no table in flash): for every difference 0..255 and
    scales from tiny to saturating, it must equal the reference's gemmlowp exp exactly."""
    from hardware import fixedpoint as fx

    cases = [(1073741824, 0), (1518500250, 5), (2147483647, 12), (1288490189, 20), (1717986918, 26),
             (1431655765, 30), (1073741824, 31)]
    src = tmp_path / "exp.c"
    src.write_text('#include <stdio.h>\n#include "kws_fixedpoint.h"\nint main(void) {\n'
                   f"  static const int32_t m[] = {{{', '.join(str(m) for m, _ in cases)}}};\n"
                   f"  static const int s[] = {{{', '.join(str(s) for _, s in cases)}}};\n"
                   f"  for (int c = 0; c < {len(cases)}; c++)\n"
                   '    for (int d = 0; d < 256; d++) printf("%ld\\n", (long)kws_softmax_exp(d, m[c], s[c]));\n'
                   "  return 0;\n}\n")
    (tmp_path / "kws_fixedpoint.h").write_text(_generate._kernel_text("kws_fixedpoint.h"))
    exe = tmp_path / "exp"
    subprocess.run(["gcc", "-O2", "-std=c99", "-Wall", "-Werror", "-o", str(exe), str(src)], check=True)
    got = np.array(subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout.split(), np.int64)
    d = -np.arange(256, dtype=np.int64)
    want = np.concatenate([fx.exp_on_negative_values(fx.multiply_by_quantized_multiplier_greater_than_one(d, m, s), 5)
                           for m, s in cases])
    np.testing.assert_array_equal(got, want)
    assert (want[1:256] < want[:255]).any() and (want == 0).any()  # both the decay and the underflow are covered


def test_per_channel_constants_stay_compact(dscnn):
    """Flash of real models: beyond its weights and biases a DS-CNN-S stores per output channel at
    most 10 bytes for a convolution (multiplier, rounding term, shift: loaded per pixel group),
    9 for the classifier and 5 for a depthwise layer (multiplier and shift: its kernel derives the
    rounding term once per channel plane), and no softmax table (exp is computed)."""
    gm = generate(dscnn, "dsp")
    src = gm.files["kws_model.c"]
    sizes = {"int8_t": 1, "int16_t": 2, "int32_t": 4}
    data = sum(sizes[t] * len(body.strip().rstrip(",").split(",")) for t, body in
               re.findall(r"static const (int8_t|int16_t|int32_t) kws_op\d+_\w+\[\d*\][^=]*= \{([^}]*)\}", src))
    per_channel = {OpKind.CONV_2D: 10, OpKind.DEPTHWISE_CONV_2D: 5, OpKind.FULLY_CONNECTED: 9}
    allowed = sum(per_channel[op.kind] * dscnn.tensors[op.outputs[0]].shape[-1]
                  for op in dscnn.ops if op.kind in per_channel)
    assert data - dscnn.weight_bytes() - dscnn.bias_bytes() <= allowed
    assert "dwplane_dsp" in gm.kernels and "kws_softmax(" in src


# ---- Cortex-M cross-compilation (skipped without the toolchain) ----

ARM_GCC = shutil.which("arm-none-eabi-gcc")
CORES = {  # variant -> core flags: the DSP kernels need M4/M7/M33, the plain ones run on M3
    "plain": ["-mcpu=cortex-m3", "-mthumb", "-Os"],
    "dsp": ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16", "-O2"],
    "wide": ["-mcpu=cortex-m33", "-mthumb", "-mfloat-abi=hard", "-O2"],
}


@pytest.mark.skipif(ARM_GCC is None, reason="arm-none-eabi-gcc not installed")
@pytest.mark.parametrize("variant", list(CORES))
def test_cross_compiles_for_cortex_m(dscnn, variant, tmp_path):
    gm = generate(dscnn, "dsp", wide_weights=True) if variant == "wide" else generate(dscnn, variant)
    gm.write(tmp_path)
    obj = tmp_path / "kws_model.o"
    res = subprocess.run([ARM_GCC, *CORES[variant], "-std=c99", "-Wall", "-Wextra", "-Werror", "-c",
                          str(tmp_path / "kws_model.c"), "-o", str(obj)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    dump = subprocess.run([ARM_GCC.replace("gcc", "objdump"), "-d", str(obj)], capture_output=True,
                          text=True).stdout
    if variant == "plain":
        assert "smlad" not in dump
    else:
        assert "smlad" in dump and "sxtab16" in dump and "ssat" in dump
    undefined = subprocess.run([ARM_GCC.replace("gcc", "nm"), "-u", str(obj)], capture_output=True,
                               text=True).stdout.split()
    assert set(undefined[1::2]) <= {"memcpy", "memset"}  # no libgcc helpers (64-bit division, ...)


def _tall_window_graph(seed: int) -> Int8Graph:
    """Convolutions whose two-pixel im2col exceeds the scratch limit (10x4 over 28 channels: 1,120 taps),
    as in CNN-S: SAME (padding rows above and below the window rows) with an even channel count, a
    dilated one, and VALID with a vertical stride and an odd channel count."""
    from hardware.graph import Activation

    rng = np.random.default_rng(seed)
    b = GraphBuilder(rng, (1, 14, 6, 28), input_scale=0.05, input_zero_point=int(rng.integers(-60, 60)), jitter=0.5)
    x = b.conv(b.input, 28, (10, 4), (1, 1), Padding.SAME, act=Activation.NONE, spread=1.0)
    x = b.conv(x, 28, (4, 10), (1, 1), Padding.SAME, act=Activation.RELU6, dilation=(2, 1))
    x = b.conv(x, 7, (10, 4), (2, 1), Padding.VALID, act=Activation.RELU, spread=2.0)
    return b.finish([b.fc(b.mean(x), 3, Activation.NONE)])


@pytest.mark.parametrize("seed", range(3))
def test_tall_window_convolutions_run_row_by_row_bit_exact(seed, cache):
    """Too many taps for the two-pixel im2col: the DSP variant takes the row-by-row GEMM (a few hundred
    bytes of scratch) instead of the plain kernel, bit-exact on the host."""
    g = _tall_window_graph(seed)
    for variant in VARIANTS:
        gm = _check_exact(g, variant, cache, n=8, seed=seed)
        if variant == "dsp":
            assert gm.files["kws_model.c"].count("kws_convrow_dsp(") == 3
            assert gm.scratch_bytes == 28 * 2 * 4 + 2 * (10 * 28) * 2  # the widest window row: 10 taps


# ---- the inline-asm paths, on the emulated Cortex-M4 (the host runs their C twins) ----

def _asm_path_graph(h: int, seed: int) -> Int8Graph:
    """Stride-1 SAME 3x3 depthwise over 8 and 12 channels (the whole-plane asm kernel) with every fused
    activation and output zero points detuned off -128 (so the clamps bite), output heights of every
    residue mod 4 (the kernel's 4-row groups and tails), and 1x1 convolutions with even and odd
    channel counts (the 3-pixel x 2-channel GEMM and its short last group)."""
    from hardware.graph import Activation

    rng = np.random.default_rng(seed)
    b = GraphBuilder(rng, (1, h, int(rng.integers(3, 7)), 8), input_scale=0.05,
                     input_zero_point=int(rng.integers(-60, 60)), jitter=0.6)
    x = b.depthwise(b.input, (3, 3), act=Activation.NONE, spread=2.0)
    x = b.conv(x, 12, (1, 1), act=Activation.RELU6)
    x = b.depthwise(x, (3, 3), act=Activation.RELU6, spread=1.0)
    x = b.conv(x, 7, (1, 1), act=Activation.NONE, spread=2.0)
    x = b.conv(x, 8, (1, 1), act=Activation.RELU)
    x = b.depthwise(x, (3, 3), act=Activation.RELU)
    return b.finish([b.fc(b.mean(x), 5, Activation.NONE)])


@pytest.mark.skipif(shutil.which("qemu-system-arm") is None or shutil.which("arm-none-eabi-gcc") is None,
                    reason="needs qemu-system-arm and arm-none-eabi-gcc")
@pytest.mark.parametrize("h", [5, 6, 7, 8])
def test_asm_kernel_paths_bit_exact_on_the_emulated_m4(h):
    from hardware.boards import get_board
    from hardware.evaluators import EmulatorEvaluator
    from hardware.tflite_io import write_tflite

    m = EmulatorEvaluator(variant="dsp", checks=4).measure(write_tflite(_asm_path_graph(h, 100 + h)),
                                                           get_board("mps2-an386"))
    assert m.ok, m.error
    assert m.output_match is True
    assert any(o.kind == "DEPTHWISE_CONV_2D" for o in m.ops)
    if h == 5:  # and the row-by-row GEMM of tall windows (kws_gemm_step per window row)
        tall = EmulatorEvaluator(variant="dsp", checks=3).measure(write_tflite(_tall_window_graph(7)),
                                                                   get_board("mps2-an386"))
        assert tall.ok and tall.output_match is True, tall.error


def test_row_depthwise_takes_what_the_window_kernel_cannot(cache, monkeypatch):
    """Strided, dilated and VALID depthwise layers too wide for kws_dwconv_dsp's window of whole
    input rows run the DSP row kernel in the small scratch, bit-exact, with the output in place
    over the input, and its int8 weights widened a group at a time (small scratch) or, where a
    larger scratch is allowed, all at once."""
    from hardware.codegen import _lower

    def weight_mode(gm):
        return re.search(r"kws_dwrow_dsp\([^,]+, [^,]+, [^,]+, (\d),", gm.files["kws_model.c"]).group(1)

    for name, graph in _one_op_graphs():
        if not name.endswith("_dwrow"):
            continue
        core = int8_core(graph).graph
        low = _lower.lower(core, core.ops[0], "dsp", 0)
        assert low.kernel == "dwrow_dsp" and low.scratch_bytes <= _lower.MAX_SCRATCH_BYTES, name
        gm = _check_exact(graph, "dsp", cache, n=6)
        assert gm.kernels[0] == "dwrow_dsp" and gm.op_in_place[0] and weight_mode(gm) == "2", name
        with monkeypatch.context() as m:  # the default limit is now above the small one: all at once
            m.setattr(_lower, "MAX_SCRATCH_BYTES", 1024)
            gm = _check_exact(graph, "dsp", cache, n=6)
        all_at_once = name == "dw3x3s2_dwrow"  # the 4x3 filter's 200 channels widen to 4,800 B: still a group at a time
        assert gm.kernels[0] == "dwrow_dsp" and weight_mode(gm) == ("0" if all_at_once else "2"), name
