"""`quantize_checkpoint`: a trained checkpoint -> the files a user takes to a microcontroller.

    report = quantize_checkpoint("runs/train/ds-cnn-s-...", "out/ds-cnn-s")
    report.int8_test_accuracy, report.int8_tflite_bytes, report.arena_bytes

Writes into the output directory::

    model_int8.tflite     int8 in/out, per-channel weights (post-training quantization, or QAT first)
    model_float32.tflite  the same network in float32 (the seed survey's float-vs-int8 comparison)
    model_data.c/.h       the int8 model's bytes as an aligned C array (for TFLM on your own board)
    spec.json             the architecture
    quantize.json         sizes, TFLM arena, float and int8 accuracy, calibration and QAT settings

Both `.tflite` files carry the ``kwsnas`` metadata (labels, front end, spec), so `nas evaluate` feeds
them exactly like the trainer did. Files are written atomically; ``quantize.json`` goes last.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hardware.tflite_io import write_tflite
from nas import __version__
from nas.export.c_array import model_c_source
from nas.export.metadata import METADATA_KEY, ModelMetadata
from nas.files import atomic_write_bytes, atomic_write_json
from nas.models import split_model
from nas.quant.float_graph import float_graph
from nas.quant.ptq import calibrate, quantize_graph, run_int8
from nas.train.checkpoint import CheckpointError, load_checkpoint
from nas.train.data import TrainData, prepare_from_source
from nas.train.evaluate import EvalReport, confusion_matrix, evaluate
from search_spaces import ArchSpec

log = logging.getLogger(__name__)

CALIBRATION_CLIPS = 300  # "a few hundred" clips: min/max ranges stop moving well before that on KWS data
_CALIB_SALT = 0x63616C  # the calibration subset's stream, apart from training's


@dataclass(frozen=True)
class QuantizeReport:
    out_dir: str
    spec_name: str
    spec_digest: str
    weight_bytes: int
    bias_bytes: int
    int8_tflite_bytes: int
    float32_tflite_bytes: int
    size_reduction_percent: float  # 1 - int8 / float32 file size
    arena_bytes: int | None  # TFLM tensor arena the int8 model needs (host interpreter), None if not measured
    float_val_accuracy: float
    float_test_accuracy: float | None
    int8_val_accuracy: float
    int8_test_accuracy: float | None
    calibration_clips: int
    qat_epochs: int
    time_s: float
    int8_test: dict[str, Any] | None = None  # EvalReport.to_dict() of the int8 model on the test split

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def calibration_features(data: TrainData, frontend, clips: int = CALIBRATION_CLIPS, seed: int = 0) -> np.ndarray:
    """A seeded subset of unaugmented training-split features (all of them when there are fewer)."""
    feats = data.features("train", frontend)
    if len(feats) <= clips:
        return feats
    idx = np.random.default_rng([seed, _CALIB_SALT]).choice(len(feats), clips, replace=False)
    return feats[np.sort(idx)]


def int8_report(graph, features: np.ndarray, labels: np.ndarray, names: tuple[str, ...]) -> EvalReport:
    """Accuracy of the int8 graph (golden reference: what the board computes) on float features."""
    if len(features) == 0:
        return EvalReport(names, np.zeros((len(names), len(names)), np.int64))
    predictions = run_int8(graph, features).argmax(axis=1)
    return EvalReport(names, confusion_matrix(labels, predictions, len(names)))


def quantize_checkpoint(checkpoint: Path | str, out_dir: Path | str, data: TrainData | None = None, *,
                        calibration_clips: int = CALIBRATION_CLIPS, qat_epochs: int = 0, seed: int = 0,
                        measure_arena: bool = True) -> QuantizeReport:
    """Quantize a checkpoint and write the files above; ``data`` defaults to the data it was trained on."""
    t0 = time.perf_counter()
    model, spec, meta = load_checkpoint(checkpoint)
    metrics = meta.get("metrics") or {}
    if data is None:
        if "data" not in metrics:
            raise CheckpointError(f"{checkpoint}: does not say which data it was trained on; pass the data")
        data = prepare_from_source(metrics["data"])
    if tuple(metrics.get("labels", data.labels)) != data.labels:
        raise ValueError(f"{checkpoint}: trained for labels {metrics['labels']}, the data has {list(data.labels)}")
    if spec.num_classes != data.num_classes:
        raise ValueError(f"{checkpoint}: {spec.num_classes} classes, the data has {data.num_classes}")
    fe = spec.frontend
    calib = calibration_features(data, fe, calibration_clips, seed)
    metadata = ModelMetadata(data.labels, fe, spec.name, spec.digest(), __version__,
                             {"calibration_clips": int(len(calib)), "qat_epochs": int(qat_epochs)})
    meta_map = {METADATA_KEY: metadata.to_json()}
    fg = float_graph(spec, model.folded(), meta_map)
    ranges = calibrate(fg, calib)
    if qat_epochs > 0:
        from nas.quant.qat import qat_finetune

        fg, ranges = qat_finetune(fg, ranges, data, fe, epochs=qat_epochs, seed=seed, calib_features=calib)
        fg = fg.replace(metadata=meta_map)
    q = quantize_graph(fg, ranges, meta_map)
    int8_bytes, float_bytes = write_tflite(q), write_tflite(fg)

    graphdef, params, stats = split_model(model)
    val_f, test_f = data.features("validation", fe), data.features("test", fe)
    float_val = evaluate(graphdef, params, stats, val_f, data.validation.labels, data.labels)
    float_test = evaluate(graphdef, params, stats, test_f, data.test.labels, data.labels) if len(test_f) else None
    int8_val = int8_report(q, val_f, data.validation.labels, data.labels)
    int8_test = int8_report(q, test_f, data.test.labels, data.labels) if len(test_f) else None
    arena = None
    if measure_arena:
        from hardware.arena import tflm_arena_bytes

        arena = tflm_arena_bytes(int8_bytes)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / "model_int8.tflite", int8_bytes)
    atomic_write_bytes(out / "model_float32.tflite", float_bytes)
    c_src, h_src = model_c_source(int8_bytes, "g_kws_model", "model_data.h",
                                  f"{spec.name} ({spec.digest()}), int8, {len(int8_bytes)} bytes; "
                                  f"TFLM arena {arena if arena is not None else 'not measured'} bytes")
    atomic_write_bytes(out / "model_data.c", c_src.encode())
    atomic_write_bytes(out / "model_data.h", h_src.encode())
    atomic_write_bytes(out / "spec.json", (spec.to_json() + "\n").encode())
    report = QuantizeReport(
        str(out), spec.name, spec.digest(), q.weight_bytes(), q.bias_bytes(), len(int8_bytes), len(float_bytes),
        100.0 * (1.0 - len(int8_bytes) / len(float_bytes)), arena,
        float_val.accuracy, None if float_test is None else float_test.accuracy,
        int8_val.accuracy, None if int8_test is None else int8_test.accuracy,
        int(len(calib)), int(qat_epochs), time.perf_counter() - t0,
        None if int8_test is None else int8_test.to_dict())
    atomic_write_json(out / "quantize.json", report.to_dict())
    log.info("%s: int8 %d B, float32 %d B, arena %s B, accuracy float %.4f -> int8 %.4f (validation)", spec.name,
             len(int8_bytes), len(float_bytes), arena, float_val.accuracy, int8_val.accuracy)
    return report


def export_model_int8(model: Any, spec: ArchSpec, labels: Sequence[str], calibration: np.ndarray,
                      out_dir: Path | str, extra: dict[str, Any] | None = None) -> bytes:
    """A model held in memory (e.g. a few-shot enrolment, `nas.train.enroll`) as an int8 ``.tflite``: PTQ on
    ``calibration`` features, ``labels`` and ``extra`` in the kwsnas metadata, written with its spec to
    ``out_dir``; returns the file's bytes."""
    meta = {METADATA_KEY: ModelMetadata(tuple(labels), spec.frontend, spec.name, spec.digest(), __version__,
                                        {"calibration_clips": int(len(calibration)), **(extra or {})}).to_json()}
    fg = float_graph(spec, model.folded(), meta)
    data = write_tflite(quantize_graph(fg, calibrate(fg, calibration), meta))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / "model_int8.tflite", data)
    atomic_write_bytes(out / "spec.json", (spec.to_json() + "\n").encode())
    return data
