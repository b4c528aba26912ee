"""`.tflite` reader and writer: round trips, file layout and size, metadata, the float32 path, and
clear errors for unsupported, float-only, malformed and randomly corrupted files."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import tflite

from hardware import reference
from hardware.graph import DType
from hardware.tflite_io import ModelFormatError, TfliteError, UnsupportedModelError, read_tflite, write_tflite
from tests.helpers.int8_graphs import ds_cnn_s, float_twin, random_graph
from tests.helpers.paths import REPO
from tests.helpers.tflite_builder import ConverterStyle

METADATA = {"labels": "_silence_,_unknown_,yes,no,up,down,left,right,on,off,stop,go",
            "frontend": json.dumps({"sample_rate": 16000, "window_ms": 40, "stride_ms": 20, "mfcc": 10})}


def _litert(data: bytes):
    litert = pytest.importorskip("ai_edge_litert.interpreter")
    interp = litert.Interpreter(model_content=data, experimental_op_resolver_type=litert.OpResolverType.BUILTIN_REF)
    interp.allocate_tensors()
    return interp


# ---- round trips ----

@pytest.mark.parametrize("float_io", [False, True])
def test_round_trip_is_identity_and_deterministic(float_io: bool) -> None:
    g = ds_cnn_s(np.random.default_rng(0), softmax=True, float_io=float_io, metadata=METADATA)
    data = write_tflite(g)
    assert write_tflite(g) == data  # deterministic bytes
    back = read_tflite(data)
    assert back == g and back.digest() == g.digest()
    assert dict(back.metadata) == METADATA
    assert write_tflite(back) == data


def test_random_graphs_round_trip() -> None:
    for seed in range(60):
        g = random_graph(np.random.default_rng(1000 + seed))
        assert read_tflite(write_tflite(g)) == g, seed


def test_graph_changes_change_the_file() -> None:
    g = ds_cnn_s(np.random.default_rng(0))
    w = g.weight_tensors()[0]
    t = g.tensors[w]
    data = np.array(t.data)
    data.flat[0] ^= 1
    g2 = g.replace(tensors=g.tensors[:w] + (type(t)(t.name, t.shape, t.dtype, t.quantization, data),) + g.tensors[w + 1:])
    assert g2 != g and g2.digest() != g.digest()
    assert read_tflite(write_tflite(g2)) == g2


# ---- file layout, size, metadata ----

def test_file_layout_buffers_and_metadata() -> None:
    g = ds_cnn_s(np.random.default_rng(0), softmax=True, metadata=METADATA)
    data = write_tflite(g)
    m = tflite.Model.GetRootAsModel(data, 0)  # the generated accessors, independent of our reader
    assert data[4:8] == b"TFL3" and m.Version() == 3
    assert m.Buffers(0).DataLength() == 0  # buffer 0: the empty sentinel
    sg = m.Subgraphs(0)
    refs = [sg.Tensors(i).Buffer() for i in range(sg.TensorsLength())]
    meta = {m.Metadata(i).Name().decode(): m.Metadata(i).Buffer() for i in range(m.MetadataLength())}
    used = [r for r in refs if r] + list(meta.values())
    assert sorted(used) == list(range(1, m.BuffersLength())), "every buffer but 0 used exactly once (no dead buffers)"
    for i in range(sg.TensorsLength()):
        t = sg.Tensors(i)
        assert (t.Buffer() == 0) == (i < len(g.tensors) and not g.tensors[i].is_constant)  # aux operands: const
        assert len(t.Name() or b"") <= 24
    for name, index in meta.items():
        assert m.Buffers(index).DataAsNumpy().tobytes().decode() == METADATA[name]
    for i in range(m.BuffersLength()):  # constant data is 16-byte aligned in the file
        b = m.Buffers(i)
        if b.DataLength():
            assert (b._tab.Vector(4)) % 16 == 0


def _per_channel_quant_bytes(g) -> int:
    """Bytes the schema forces for per-channel weight quantization: a float32 scale per channel and
    an int64 zero point per channel (LiteRT requires as many zero points as scales; the writer stores
    one shared zero-point vector per channel count)."""
    scales = sum(4 * len(g.tensors[t].quantization.scale) for t in g.weight_tensors()
                 if g.tensors[t].quantization.is_per_channel)
    counts = {len(g.tensors[t].quantization.scale) for t in g.weight_tensors()
              if g.tensors[t].quantization.is_per_channel}
    return scales + sum(8 * c for c in counts)


def test_size_of_ds_cnn_s() -> None:
    per_tensor = ds_cnn_s(np.random.default_rng(0), per_channel=False)
    per_channel = ds_cnn_s(np.random.default_rng(0))
    for name, g in (("per-tensor", per_tensor), ("per-channel", per_channel)):
        size = len(write_tflite(g))
        wb = g.weight_bytes() + g.bias_bytes()
        q = _per_channel_quant_bytes(g)
        print(f"DS-CNN-S {name}: {g.param_count()} params, weights+biases {wb} B, file {size} B, overhead "
              f"{size - wb} B (of which {q} B per-channel scales and zero points)")
        assert size <= wb + q + 4096
    assert len(write_tflite(per_tensor)) <= per_tensor.weight_bytes() + per_tensor.bias_bytes() + 4096


def test_written_models_run_in_tflm_and_litert() -> None:
    runtime = pytest.importorskip("tflite_micro.python.tflite_micro.runtime")
    g = ds_cnn_s(np.random.default_rng(0), softmax=True, float_io=True, metadata=METADATA)
    data = write_tflite(g)
    x = np.random.default_rng(1).normal(0, 10, size=(1, 49, 10, 1)).astype(np.float32)
    tflm = runtime.Interpreter.from_bytes(data, arena_size=200_000)
    tflm.set_input(x, 0)
    tflm.invoke()
    expected = reference.run(g, x)[0]
    np.testing.assert_array_equal(tflm.get_output(0), expected)
    interp = _litert(data)
    interp.set_tensor(interp.get_input_details()[0]["index"], x)
    interp.invoke()
    np.testing.assert_array_equal(interp.get_tensor(interp.get_output_details()[0]["index"]), expected)


# ---- float32 path ----

def test_float_graph_written_runs_in_litert() -> None:
    g = float_twin(ds_cnn_s(np.random.default_rng(0), softmax=True))
    assert g.is_float and all(t.dtype == DType.FLOAT32 for t in g.tensors)
    data = write_tflite(g)
    assert read_tflite(data, allow_float=True) == g
    with pytest.raises(UnsupportedModelError, match="float-only"):
        read_tflite(data)
    interp = _litert(data)
    xs = np.random.default_rng(1).normal(0, 10, size=(5, 1, 49, 10, 1)).astype(np.float32)
    for x in xs:
        interp.set_tensor(interp.get_input_details()[0]["index"], x)
        interp.invoke()
        got = interp.get_tensor(interp.get_output_details()[0]["index"])
        np.testing.assert_allclose(got, reference.run(g, x)[0], rtol=1e-4, atol=1e-5)
    int8 = write_tflite(ds_cnn_s(np.random.default_rng(0), softmax=True))
    print(f"DS-CNN-S float32 .tflite {len(data)} B, int8 {len(int8)} B")
    assert 4 * g.param_count() <= len(data) < 4 * g.param_count() + 8192


# ---- errors ----

def _one_op_model(code: int) -> bytes:
    m = ConverterStyle()
    x = m.act("x", (1, 4), 0.1, 0)
    y = m.act("y", (1, 4), 0.1, 0)
    m.op(code, [x], [y])
    return m.finish([x], [y])


def test_unsupported_operator_is_named() -> None:
    with pytest.raises(UnsupportedModelError, match=r"unsupported operator TANH \(op 0\)"):
        read_tflite(_one_op_model(tflite.BuiltinOperator.TANH))
    with pytest.raises(UnsupportedModelError, match=r"unsupported operator LSTM \(op 0\)"):
        read_tflite(_one_op_model(tflite.BuiltinOperator.LSTM))
    with pytest.raises(UnsupportedModelError, match=r"unsupported operator STABLEHLO_ADD"):
        read_tflite(_one_op_model(tflite.BuiltinOperator.STABLEHLO_ADD))  # a code above 127


def test_unsupported_activation_and_types_are_named() -> None:
    B, A = tflite.BuiltinOperator, tflite.ActivationFunctionType
    m = ConverterStyle()
    x = m.act("x", (1, 4), 0.1, 0)
    y = m.act("y", (1, 4), 0.1, 0)
    opts = m.options(tflite.AddOptionsStart, [(tflite.AddOptionsAddFusedActivationFunction, A.TANH)],
                     tflite.AddOptionsEnd)
    m.op(B.ADD, [x, x], [y], tflite.BuiltinOptions.AddOptions, opts)
    with pytest.raises(UnsupportedModelError, match="fused activation TANH"):
        read_tflite(m.finish([x], [y]))
    m = ConverterStyle()
    x = m.tensor("x_u8", (1, 4), tflite.TensorType.UINT8, [0.1], [128])
    y = m.tensor("y_u8", (1, 4), tflite.TensorType.UINT8, [0.1], [128])
    m.op(B.RESHAPE, [x], [y])
    with pytest.raises(UnsupportedModelError, match="UINT8"):
        read_tflite(m.finish([x], [y]))


def test_hybrid_model_is_rejected() -> None:
    B, T = tflite.BuiltinOperator, tflite.TensorType
    m = ConverterStyle()
    x = m.tensor("x", (1, 4), T.FLOAT32)
    w, _ = m.weights("w", np.random.default_rng(0), (3, 4), 0)
    y = m.tensor("y", (1, 3), T.FLOAT32)
    m.op(B.FULLY_CONNECTED, [x, w], [y], tflite.BuiltinOptions.FullyConnectedOptions,
         m.options(tflite.FullyConnectedOptionsStart, [], tflite.FullyConnectedOptionsEnd))
    with pytest.raises(UnsupportedModelError, match="hybrid"):
        read_tflite(m.finish([x], [y]))


def test_malformed_inputs_raise_clear_errors() -> None:
    with pytest.raises(TypeError):
        read_tflite("model.tflite")  # type: ignore[arg-type]
    lfs = b"version https://git-lfs.github.com/spec/v1\noid sha256:00\nsize 123\n"
    for bad, pattern in ((b"", "too short"), (b"\x00" * 64, "identifier"), (b"TFL3" * 16, "outside"),
                         (np.random.default_rng(0).bytes(4096), "identifier"), (lfs, "Git LFS pointer")):
        with pytest.raises(ModelFormatError, match=pattern):
            read_tflite(bad)
    data = bytearray(write_tflite(ds_cnn_s(np.random.default_rng(0))))
    data[0:4] = (len(data) + 100).to_bytes(4, "little")  # root offset past the end
    with pytest.raises(ModelFormatError, match="outside"):
        read_tflite(bytes(data))


def test_randomly_corrupted_files_fail_cleanly(fault_counts) -> None:
    """200 mutants (byte flips, truncations, zeroed ranges, random words), read in a child process so
    a crash or hang cannot take the test session down: each one loads (and then runs in the
    reference) or raises ModelFormatError/UnsupportedModelError."""
    proc = subprocess.run([sys.executable, "-m", "tests.helpers.fuzz_tflite", "200", "0"], cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    print("corrupted .tflite files:", result["counts"], result["by_kind"])
    c = result["counts"]
    fault_counts(f"fuzz: .tflite importer, 200 mutants ({c['loaded']} load, "
                 f"{c['ModelFormatError'] + c['UnsupportedModelError']} named errors)", injected=200,
                 survived=200 - c["unexpected"], lost=c["unexpected"])
    assert result["counts"]["unexpected"] == 0, result["unexpected"]
    assert sum(result["counts"].values()) == 200
    assert result["counts"]["ModelFormatError"] > 50


def test_error_types() -> None:
    assert issubclass(ModelFormatError, TfliteError) and issubclass(UnsupportedModelError, TfliteError)
    assert issubclass(TfliteError, ValueError)
