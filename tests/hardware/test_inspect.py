"""``hardware.inspect`` and ``nas inspect``: the summary's figures are the graph's own, JSON parses, and damaged files fail cleanly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hardware import read_tflite, write_tflite
from hardware.graph import Int8Graph
from hardware.inspect import inspect_tflite
from nas.cli import main as nas_main
from nas.data.labels import LABELS_12
from nas.export.metadata import METADATA_KEY, ModelMetadata
from search_spaces.frontend import get_frontend
from tests.helpers.fuzz_tflite import mutants
from tests.helpers.int8_graphs import GraphBuilder, ds_cnn_s, float_twin, random_graph

META = ModelMetadata(labels=LABELS_12, frontend=get_frontend("hello-edge"), spec_name="ds-cnn-s", spec_digest="ab" * 32)


def _kwsnas_model(seed: int = 0, **kw) -> Int8Graph:
    return ds_cnn_s(np.random.default_rng(seed), softmax=True, metadata={METADATA_KEY: META.to_json()}, **kw)


def _chain_peak(g: Int8Graph) -> int:
    """For a chain (every tensor read only by the next op): the largest inputs + output of one op."""
    return max(sum(g.tensors[t].nbytes for t in (*op.inputs, *op.outputs) if not g.tensors[t].is_constant)
               for op in g.ops)


@pytest.mark.parametrize("float_io", [False, True])
def test_figures_are_the_graphs(float_io: bool) -> None:
    g = _kwsnas_model(float_io=float_io)
    data = write_tflite(g)
    s = inspect_tflite(data)
    assert s.file_bytes == len(data) and s.tensor_count == len(g.tensors) and len(s.ops) == len(g.ops)
    assert s.total_macs == g.macs() == sum(op.macs for op in s.ops) and s.total_macs > 2_000_000
    assert [op.macs for op in s.ops] == [g.op_macs(op.index) for op in s.ops]
    assert (s.param_bytes, s.param_count, s.weight_bytes, s.bias_bytes) == (
        g.param_bytes(), g.param_count(), g.weight_bytes(), g.bias_bytes())
    assert s.inputs[0].shape == (1, 49, 10, 1) and s.outputs[0].shape == (1, 12)
    assert s.inputs[0].dtype == ("float32" if float_io else "int8")
    if not float_io:
        q = g.tensors[g.inputs[0]].quantization
        assert (s.inputs[0].scale, s.inputs[0].zero_point) == (q.scale, q.zero_point)
    assert [op.kind for op in s.ops][:2] == (["QUANTIZE", "CONV_2D"] if float_io else ["CONV_2D", "DEPTHWISE_CONV_2D"])
    assert s.ops[-1].kind == ("DEQUANTIZE" if float_io else "SOFTMAX") and s.ops[int(float_io)].activation == "RELU"
    assert s.peak_activation_bytes == _chain_peak(g) == max(op.live_bytes for op in s.ops)
    assert s.peak_activation_bytes == 2 * 25 * 5 * 64  # a depthwise layer's int8 input and output
    assert s.metadata_keys == (METADATA_KEY,) and ModelMetadata.from_graph(read_tflite(data, allow_float=True)) == META
    assert not s.is_float


def test_a_tensor_kept_for_later_counts_at_every_op_between() -> None:
    b = GraphBuilder(np.random.default_rng(0), (1, 8, 8, 4))
    a = b.conv(b.input, 16, (3, 3))  # 1x8x8x16 int8 = 1024 B, read again by the ADD at the end
    c = b.conv(b.conv(a, 8, (1, 1)), 16, (1, 1))
    g = b.finish([b.add(a, c)])
    s = inspect_tflite(write_tflite(g))
    assert [op.live_bytes for op in s.ops] == [256 + 1024, 1024 + 512, 1024 + 512 + 1024, 3 * 1024]
    assert (s.peak_activation_bytes, s.peak_op) == (3072, 3)  # the ADD: a, c and its output


def test_float_model_and_cli_outputs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    g = float_twin(_kwsnas_model())
    path = tmp_path / "float.tflite"
    path.write_bytes(write_tflite(g))
    assert nas_main(["inspect", str(path), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["is_float"] and d["total_macs"] == g.macs() and d["param_bytes"] == g.param_bytes() == 4 * g.param_count()
    assert d["metadata"]["labels"] == list(LABELS_12) and d["metadata"]["frontend"]["name"] == "hello-edge"
    assert d["op_count"] == len(d["ops"]) == len(g.ops) and d["inputs"][0]["scale"] is None
    assert nas_main(["inspect", str(path)]) == 0
    table = capsys.readouterr().out
    assert f"{g.macs():,}" in table and "DEPTHWISE_CONV_2D" in table and "float32" in table and "ds-cnn-s" in table


def test_unreadable_paths_name_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for path in (tmp_path / "missing.tflite", tmp_path):
        assert nas_main(["inspect", str(path)]) == 2
        assert capsys.readouterr().err.startswith(f"error: {path}: ")


def test_corrupted_files_give_one_error_line_naming_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                            fault_counts) -> None:
    """200 mutants (byte flips, truncations, zeroed ranges, random words) through ``nas inspect`` in-process:
    each one is summarised (exit 0) or rejected with one ``error: <file>: ...`` line (exit 2)."""
    bases = [write_tflite(_kwsnas_model(1)), write_tflite(_kwsnas_model(2, float_io=True)),
             write_tflite(random_graph(np.random.default_rng(3))), write_tflite(float_twin(_kwsnas_model(4)))]
    counts = {"ok": 0, "clean error": 0, "bad error": 0, "uncaught": 0}
    problems: list[str] = []
    for i, (kind, data) in enumerate(mutants(bases, 200, np.random.default_rng(0))):
        path = tmp_path / f"mutant{i:03d}.tflite"
        path.write_bytes(data)
        try:
            rc = nas_main(["inspect", str(path)])
        except Exception as e:  # noqa: BLE001 - counting anything that escapes is the point
            rc, outcome = None, "uncaught"
            problems.append(f"{kind} {path.name}: {type(e).__name__}: {e}")
        err = capsys.readouterr().err
        if rc == 0:
            outcome = "ok"
        elif rc == 2:
            lines = err.strip().splitlines()
            outcome = "clean error" if len(lines) == 1 and lines[0].startswith(f"error: {path}: ") else "bad error"
            if outcome == "bad error":
                problems.append(f"{kind} {path.name}: {err!r}")
        elif rc is not None:
            outcome = "bad error"
            problems.append(f"{kind} {path.name}: exit {rc}")
        counts[outcome] += 1
    fault_counts(f"fuzz: nas inspect, 200 corrupted .tflite files ({counts['ok']} summarised, "
                 f"{counts['clean error']} one-line errors)", injected=200,
                 survived=counts["ok"] + counts["clean error"], lost=counts["uncaught"] + counts["bad error"])
    summary = f"nas inspect on 200 corrupted .tflite files: {counts}"
    assert counts["uncaught"] == counts["bad error"] == 0, (summary, problems[:5])
    assert counts["ok"] + counts["clean error"] == 200 and counts["clean error"] > 50, summary
