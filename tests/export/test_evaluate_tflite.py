"""``nas evaluate``: accuracy of a `.tflite` on a corpus, with LiteRT and with the golden reference."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from hardware import read_tflite, reference, write_tflite
from hardware.graph import (
    Conv2DOptions,
    DType,
    FullyConnectedOptions,
    Int8Graph,
    Op,
    OpKind,
    ReshapeOptions,
    SoftmaxOptions,
    Tensor,
)
from nas.cli import main as nas_main
from nas.data.label_sets import STANDARD_12, LabelProtocol
from nas.data.labels import LABELS_12
from nas.export.evaluate_tflite import (
    TFDS_LABELS,
    EvaluationError,
    Port,
    evaluate_tflite,
    fit_to_input,
    keywords_accuracy,
    load_features,
    protocol_for,
    quantize_input,
)
from nas.export.metadata import METADATA_KEY, ModelMetadata
from nas.quant.ptq import calibrate, quantize_graph
from nas.train.evaluate import EvalReport
from search_spaces.frontend import get_frontend
from tests.helpers.int8_graphs import GraphBuilder

pytest.importorskip("ai_edge_litert.interpreter")

FRONTEND = get_frontend("hello-edge")
META = ModelMetadata(labels=LABELS_12, frontend=FRONTEND, spec_name="test-net")


def _centroid_model(features: np.ndarray, labels: np.ndarray, *, flat_shape=(-1, 1000), seed: int = 0
                    ) -> tuple[Int8Graph, Int8Graph]:
    """(float32, int8) graphs that classify well: conv 3x3 stride 2 (8 random filters, ReLU), RESHAPE to
    ``flat_shape``, then a nearest-centroid FC over the conv features and SOFTMAX. The silence class gets
    a constant 0 score and is left out of calibration: its log-floor features would stretch every range."""
    rng, f32 = np.random.default_rng(seed), DType.FLOAT32
    w = rng.normal(0, 0.3, (8, 3, 3, 1)).astype(np.float32)
    t = [Tensor("in", (1, 49, 10, 1), f32), Tensor("conv_w", w.shape, f32, None, w),
         Tensor("conv_b", (8,), f32, None, np.zeros(8, np.float32)), Tensor("conv", (1, 25, 5, 8), f32),
         Tensor("flat", (1, 1000), f32)]
    ops = [Op(OpKind.CONV_2D, (0, 1, 2), (3,), Conv2DOptions((2, 2), "SAME", "RELU")),
           Op(OpKind.RESHAPE, (3,), (4,), ReshapeOptions(flat_shape))]
    a = reference.run(Int8Graph(tuple(t), tuple(ops), (0,), (4,)), features.reshape(-1, 1, 49, 10, 1))[0]
    a = a.reshape(len(features), -1).astype(np.float64)
    speech = labels != LABELS_12.index("_silence_")
    mu = a[speech].mean(0)
    cent = np.stack([a[labels == k].mean(0) if k and np.any(labels == k) else mu for k in range(12)]) - mu
    bias = -(cent @ mu) - 0.5 * (cent**2).sum(1)  # score_k = -|a - mu - cent_k|^2 / 2 up to a per-clip constant
    t += [Tensor("fc_w", cent.shape, f32, None, cent.astype(np.float32)),
          Tensor("fc_b", (12,), f32, None, bias.astype(np.float32)), Tensor("logits", (1, 12), f32),
          Tensor("probs", (1, 12), f32)]
    ops += [Op(OpKind.FULLY_CONNECTED, (4, 5, 6), (7,), FullyConnectedOptions()),
            Op(OpKind.SOFTMAX, (7,), (8,), SoftmaxOptions())]
    fg = Int8Graph(tuple(t), tuple(ops), (0,), (8,))
    return fg, quantize_graph(fg, calibrate(fg, features[speech]))


def _with_meta(g: Int8Graph) -> Int8Graph:
    return g.replace(metadata={METADATA_KEY: META.to_json()})


def _random_model(features: np.ndarray, *, float_io: bool = False, input_shape=(1, 49, 10, 1)) -> Int8Graph:
    """Random weights (GraphBuilder): conv + mean (or FC for a flat input) + FC 12 + softmax, no metadata."""
    lo, hi = float(features.min()), float(features.max())
    scale = (hi - lo) / 255.0
    b = GraphBuilder(np.random.default_rng(0), input_shape, float_io=float_io, input_scale=scale,
                     input_zero_point=int(np.clip(round(-128 - lo / scale), -128, 127)))
    x = b.mean(b.conv(b.input, 16, (3, 3), (2, 2)), (1, 2)) if len(input_shape) == 4 else b.fc(b.input, 32)
    return b.finish([b.softmax(b.fc(x, 12))])


@pytest.fixture()
def corpus_features(tiny_corpus: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    return load_features(tiny_corpus, STANDARD_12, FRONTEND, "test")


def _write(tmp_path: Path, g: Int8Graph, name: str) -> Path:
    path = tmp_path / name
    path.write_bytes(write_tflite(g))
    return path


# ---- helpers ----

def test_quantize_input_rounds_half_away_or_truncates() -> None:
    scale, zp = 0.5, 3
    x = np.array([0.25, -0.25, 0.75, -0.75, 0.2, -0.2, 1000.0, -1000.0], np.float32)  # x / scale = +-0.5, +-1.5, ...
    np.testing.assert_array_equal(quantize_input(x, scale, zp), [4, 2, 5, 1, 3, 3, 127, -128])
    # MLPerf Tiny: trunc(x / scale + zp): -0.5 + 3 = 2.5 -> 2, and -1.5 + 3 = 1.5 -> 1
    np.testing.assert_array_equal(quantize_input(x, scale, zp, truncate=True), [3, 2, 4, 1, 3, 2, 127, -128])
    assert quantize_input(x, scale, -5, "uint8").dtype == np.uint8  # saturates at 0..255
    np.testing.assert_array_equal(quantize_input(np.float32([-3.0, 200.0]), 1.0, 0, "uint8"), [0, 200])


@pytest.mark.parametrize("shape", [(1, 49, 10, 1), (1, 49, 10), (1, 490), (49, 10)])
def test_features_fit_any_input_shape_with_the_same_count(shape) -> None:
    f = np.arange(2 * 490, dtype=np.float32).reshape(2, 49, 10)
    x = fit_to_input(f, Port(shape, "float32"))
    assert x.shape == (2, *shape) and np.array_equal(x.reshape(2, -1), f.reshape(2, -1))
    with pytest.raises(EvaluationError, match=r"\[49, 10\] \(490 values.*\[1, 250\] \(250 values"):
        fit_to_input(f, Port((1, 250), "int8"))


def test_protocols_and_keyword_accuracy() -> None:
    assert protocol_for(LABELS_12) == protocol_for(TFDS_LABELS) == STANDARD_12
    assert protocol_for(("yes", "no", "_unknown_")) == LabelProtocol(("yes", "no"), silence=False)
    conf = np.array([[5, 0, 0], [1, 3, 0], [0, 2, 2]])  # rows: _silence_, yes, no
    report = EvalReport(("_silence_", "yes", "no"), conf)
    assert keywords_accuracy(report) == pytest.approx(5 / 8) and report.accuracy == pytest.approx(10 / 13)


# ---- whole evaluations ----

def test_int8_model_litert_and_reference_agree(tmp_path: Path, tiny_corpus: Path, corpus_features,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    _, features, true = corpus_features
    g = _with_meta(_centroid_model(features, true)[1])
    model = write_tflite(g)
    lite = evaluate_tflite(model, tiny_corpus)
    exact = evaluate_tflite(model, tiny_corpus, exact=True)
    assert (lite.runner, exact.runner) == ("litert", "reference") and lite.labels_source == "metadata"
    assert lite.report.count == exact.report.count == len(true) == 72  # 60 keyword clips + 6 unknown + 6 silence
    np.testing.assert_array_equal(exact.true_labels, true)
    q = g.tensors[g.inputs[0]].quantization
    direct = reference.run(g, quantize_input(features.reshape(-1, 1, 49, 10, 1), q.scale[0], q.zero_point[0]))[0]
    np.testing.assert_array_equal(exact.predictions, direct.reshape(len(true), -1).argmax(1))
    assert np.mean(lite.predictions == exact.predictions) >= 0.95  # LiteRT may round 1 LSB differently
    assert len(np.unique(exact.predictions)) >= 10 and exact.report.accuracy > 0.9
    assert lite.batch == 50  # RESHAPE to [-1, 1000] lets LiteRT take a batch
    path = _write(tmp_path, g, "int8.tflite")
    assert nas_main(["evaluate", str(path), "--data", str(tiny_corpus), "--exact", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["confusion"] == exact.report.confusion.tolist() and d["runner"] == "reference"
    assert d["keywords_accuracy"] == pytest.approx(keywords_accuracy(exact.report)) and d["keywords_count"] == 60
    assert nas_main(["evaluate", str(path), "--data", str(tiny_corpus), "--limit", "20"]) == 0
    table = capsys.readouterr().out
    assert "keywords only" in table and "(20 clips)" in table and "LiteRT" in table


def test_one_clip_at_a_time_when_the_model_fixes_its_batch(tiny_corpus: Path, corpus_features) -> None:
    _, features, true = corpus_features
    fixed, batched = (write_tflite(_with_meta(_centroid_model(features, true, flat_shape=s)[1]))
                      for s in ((1, 1000), (-1, 1000)))
    one, many = evaluate_tflite(fixed, tiny_corpus), evaluate_tflite(batched, tiny_corpus)
    assert (one.batch, many.batch) == (1, 50)
    np.testing.assert_array_equal(one.predictions, many.predictions)


@pytest.mark.parametrize("kind", ["float32", "int8 with float io"])
def test_float_input_models(tiny_corpus: Path, corpus_features, kind: str) -> None:
    _, features, true = corpus_features
    g = _with_meta(_centroid_model(features, true)[0] if kind == "float32" else _random_model(features, float_io=True))
    model = write_tflite(g)
    lite, exact = (evaluate_tflite(model, tiny_corpus, exact=e) for e in (False, True))
    assert lite.input.dtype == "float32" and lite.input_rounding == "none (float input)"
    assert np.mean(lite.predictions == exact.predictions) >= 0.95
    assert read_tflite(model, allow_float=True).is_float == (kind == "float32")
    if kind == "float32":
        assert exact.report.accuracy > 0.9


def test_label_order_permutes_the_confusion_columns(tmp_path: Path, tiny_corpus: Path, corpus_features,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    _, features, true = corpus_features
    path = _write(tmp_path, _centroid_model(features, true)[1], "third-party.tflite")  # no metadata
    runs = {}
    for name, labels in (("arm", ",".join(LABELS_12)), ("tfds", "tfds")):
        assert nas_main(["evaluate", str(path), "--data", str(tiny_corpus), "--features", "hello-edge", "--exact",
                         "--labels", labels, "--json"]) == 0
        runs[name] = json.loads(capsys.readouterr().out)
    arm, tfds = (np.array(runs[k]["confusion"]) for k in ("arm", "tfds"))
    assert runs["arm"]["labels"] == runs["tfds"]["labels"] == list(LABELS_12)  # reported in the protocol's order
    assert runs["arm"]["labels_source"] == "given" and runs["tfds"]["model_labels"] == list(TFDS_LABELS)
    for out in range(12):  # output `out` was counted as LABELS_12[out], now as TFDS_LABELS[out]
        np.testing.assert_array_equal(tfds[:, LABELS_12.index(TFDS_LABELS[out])], arm[:, out])
    np.testing.assert_array_equal(arm.sum(axis=1), tfds.sum(axis=1))
    assert runs["arm"]["accuracy"] > 0.9 > runs["tfds"]["accuracy"]
    assert nas_main(["evaluate", str(path), "--data", str(tiny_corpus), "--features", "hello-edge", "--exact",
                     "--json"]) == 0  # no metadata, no --labels: Arm's order
    default = json.loads(capsys.readouterr().out)
    assert default["confusion"] == runs["arm"]["confusion"] and default["labels_source"] == "default (Arm order)"


def test_clear_errors(tmp_path: Path, tiny_corpus: Path, corpus_features, capsys: pytest.CaptureFixture[str]) -> None:
    _, features, _ = corpus_features
    bare = _write(tmp_path, _random_model(features), "bare.tflite")
    flat = _write(tmp_path, _random_model(features.reshape(len(features), 1, -1), input_shape=(1, 490)), "flat.tflite")
    bare_at, flat_at = re.escape(str(bare)), re.escape(str(flat))
    cases = [
        ([str(bare)], rf"error: {bare_at}: no kwsnas metadata .*--features"),
        ([str(flat), "--features", "hello-edge-dnn"], rf"error: {flat_at}: hello-edge-dnn features of shape "
                                                      r"\[25, 10\] \(250 values per clip\) do not fit the model's "
                                                      r"input \[1, 490\]"),
        ([str(bare), "--features", "hello-edge", "--labels", "yes,no"], rf"error: {bare_at}: the model has 12 outputs"),
        ([str(tmp_path / "nope.tflite"), "--features", "hello-edge"], "error: .*nope.tflite: no such file"),
        ([str(bare), "--features", "no-such-preset"], "error: .*unknown front end"),
        ([str(bare), "--features", str(tmp_path / "fe.json")], "error: .*fe.json: cannot read"),
    ]
    for args, pattern in cases:
        assert nas_main(["evaluate", *args, "--data", str(tiny_corpus)]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1
        assert re.match(pattern, err), err
    # [1, 490] takes the 49 x 10 features as they come; a front end can come from a .json file
    (tmp_path / "fe.json").write_text(FRONTEND.to_json())
    assert nas_main(["evaluate", str(flat), "--data", str(tiny_corpus), "--features", str(tmp_path / "fe.json")]) == 0


def test_official_test_set_in_place(sc_test_set: Path) -> None:
    """Real recordings, read where they are: a subset of the speaker-disjoint test split."""
    _, features, true = load_features(sc_test_set, STANDARD_12, FRONTEND, "test", limit=60)
    model = write_tflite(_with_meta(_centroid_model(features, true)[1]))
    lite, exact = (evaluate_tflite(model, sc_test_set, exact=e, limit=60) for e in (False, True))
    assert lite.report.count == exact.report.count == 60 and lite.data_root == str(sc_test_set)
    assert np.mean(lite.predictions == exact.predictions) >= 0.9
