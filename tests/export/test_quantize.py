"""``nas quantize``: a trained checkpoint becomes int8 and float32 `.tflite` files, a C array and a report
whose figures are what the files and the data say."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hardware import reference
from hardware.arena import tflm_runs_with
from hardware.graph import DType
from hardware.tflite_io import read_tflite
from nas.cli import main as nas_main
from nas.export.c_array import c_identifier, model_c_source
from nas.export.metadata import ModelMetadata
from nas.features import get_frontend
from nas.quant.ptq import as_graph_input, quantize_features
from nas.train import TrainConfig, load_checkpoint, prepare_train_data, train
from search_spaces.spec import ArchSpec, Conv, DSConv, GlobalAvgPool
from tests.helpers.corpus import TINY_WORDS, make_tiny_corpus

litert = pytest.importorskip("ai_edge_litert.interpreter")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    """A tiny DS-CNN trained for a few steps on a tiny corpus, checkpointed, and quantized by the CLI."""
    base = tmp_path_factory.mktemp("quantize")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KWSNAS_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "kwsnas-cache"))
        data = prepare_train_data(make_tiny_corpus(base / "corpus", TINY_WORDS), "12")
        spec = ArchSpec("tiny", "ds-cnn", get_frontend("hello-edge"),
                        (Conv(8, (10, 4), (2, 2)), DSConv(8, residual=True), DSConv(12), GlobalAvgPool()), 12)
        train(spec, data, TrainConfig(batch_size=16, max_steps=12, eval_every_steps=6, peak_lr=1e-2),
              out_dir=base / "ckpt")
        code = nas_main(["quantize", str(base / "ckpt"), "--out", str(base / "out"), "--calib-clips", "40", "--json"])
        assert code == 0
        yield data, base / "ckpt", base / "out"


def test_quantize_writes_the_files_and_an_honest_report(trained, capsys) -> None:
    data, ckpt, out = trained
    for name in ("model_int8.tflite", "model_float32.tflite", "model_data.c", "model_data.h", "spec.json",
                 "quantize.json"):
        assert (out / name).is_file(), name
    report = json.loads((out / "quantize.json").read_text())
    int8_bytes, float_bytes = (out / "model_int8.tflite").read_bytes(), (out / "model_float32.tflite").read_bytes()
    assert report["int8_tflite_bytes"] == len(int8_bytes) and report["float32_tflite_bytes"] == len(float_bytes)
    assert report["size_reduction_percent"] == pytest.approx(100 * (1 - len(int8_bytes) / len(float_bytes)))
    assert report["calibration_clips"] == 40 and report["qat_epochs"] == 0
    # the arena figure is the smallest one TFLM runs with
    arena = report["arena_bytes"]
    assert tflm_runs_with(int8_bytes, arena) and not tflm_runs_with(int8_bytes, arena - 64)

    q = read_tflite(int8_bytes)
    meta = ModelMetadata.from_graph(q)
    assert meta.labels == data.labels and meta.frontend == get_frontend("hello-edge") and meta.spec_name == "tiny"
    assert q.tensors[q.inputs[0]].dtype == DType.INT8 and q.tensors[q.outputs[0]].dtype == DType.INT8

    # int8 accuracy recomputed here from the file agrees with the report
    feats = data.features("validation", meta.frontend)
    xq = quantize_features(as_graph_input(feats), q.tensors[q.inputs[0]].quantization)
    pred = reference.run(q, xq)[0].reshape(len(feats), -1).argmax(1)
    assert report["int8_val_accuracy"] == pytest.approx(np.mean(pred == data.validation.labels))

    # float accuracy is the checkpoint's; the float .tflite computes the trained network (LiteRT)
    model, _, _ = load_checkpoint(ckpt)
    want = np.asarray(jax.nn.softmax(model(jnp.asarray(feats[:8]), train=False), -1))
    interp = litert.Interpreter(model_content=float_bytes, experimental_op_resolver_type=
                                litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interp.allocate_tensors()
    got = []
    for row in as_graph_input(feats[:8]):
        interp.set_tensor(interp.get_input_details()[0]["index"], row)
        interp.invoke()
        got.append(interp.get_tensor(interp.get_output_details()[0]["index"])[0])
    np.testing.assert_allclose(np.array(got), want, atol=1e-5)
    assert ModelMetadata.from_graph(read_tflite(float_bytes, allow_float=True)).labels == data.labels


def test_c_array_compiles_and_holds_the_model(trained, tmp_path: Path) -> None:
    _, _, out = trained
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("no host gcc")
    main = tmp_path / "main.c"
    main.write_text('#include <stdio.h>\n#include <stdint.h>\n#include "model_data.h"\n'
                    'int main(void) { fwrite(g_kws_model, 1, g_kws_model_len, stdout);\n'
                    '  return ((uintptr_t)g_kws_model % 16) != 0; }\n')
    exe = tmp_path / "dump"
    subprocess.run([gcc, "-std=c99", "-Wall", "-Werror", "-I", str(out), str(out / "model_data.c"), str(main),
                    "-o", str(exe)], check=True)
    got = subprocess.run([str(exe)], capture_output=True, check=True).stdout
    assert got == (out / "model_int8.tflite").read_bytes()


def test_c_names_from_the_input_are_escaped() -> None:
    ident = c_identifier('x"; system("rm -rf /"); //')
    assert ident.startswith("x") and set(ident) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
    assert c_identifier("9lives") == "_9lives"
    c, h = model_c_source(b"\x00\x01", "evil*/name", "model_data.h", "line */ one\nline two")
    assert "evil__name" in c and "*/" not in c and "*/" not in h
    with pytest.raises(ValueError, match="plain file name"):
        model_c_source(b"", "m", '../x".h')


def test_quantize_errors_name_the_cause(trained, tmp_path: Path, capsys) -> None:
    _, ckpt, _ = trained
    assert nas_main(["quantize", str(tmp_path / "nope")]) == 2
    assert "nope" in capsys.readouterr().err
    broken = tmp_path / "broken"
    shutil.copytree(ckpt, broken)
    meta = json.loads((broken / "checkpoint.json").read_text())
    meta["metrics"].pop("data")
    (broken / "checkpoint.json").write_text(json.dumps(meta))
    assert nas_main(["quantize", str(broken), "--out", str(tmp_path / "o")]) == 2
    assert "which data" in capsys.readouterr().err
    weights = next(broken.glob("weights-*.npz"))
    weights.write_bytes(weights.read_bytes()[:100])
    assert nas_main(["quantize", str(broken), "--out", str(tmp_path / "o")]) == 2
    assert "corrupt" in capsys.readouterr().err
    assert not (tmp_path / "o" / "quantize.json").exists()


def test_quantize_with_qat_epochs(trained, tmp_path: Path) -> None:
    data, ckpt, _ = trained
    assert nas_main(["quantize", str(ckpt), "--out", str(tmp_path / "qat"), "--calib-clips", "40",
                     "--qat-epochs", "1", "--no-arena"]) == 0
    report = json.loads((tmp_path / "qat" / "quantize.json").read_text())
    assert report["qat_epochs"] == 1 and report["arena_bytes"] is None
    q = read_tflite((tmp_path / "qat" / "model_int8.tflite").read_bytes())
    assert json.loads(q.metadata["kwsnas"])["extra"]["qat_epochs"] == 1
