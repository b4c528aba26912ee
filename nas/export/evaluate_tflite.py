"""Accuracy of any keyword-spotting `.tflite` (ours or a published one) on a Speech Commands-layout folder.

    result = evaluate_tflite(Path("model.tflite").read_bytes(), "../shared/data/speech_commands_v0.02_test",
                             frontend="mlperf-tiny", split="all")
    result.report.accuracy, result.keywords_accuracy, result.report.per_class

*Front end and labels.* A model written by kwsnas names both in its metadata; ``frontend``/``labels``
override them. A third-party model needs ``frontend``; its labels default to Arm's order
(`ARM_LABELS`); published models disagree (TensorFlow Datasets sorts them: `TFDS_LABELS`). Model output
``i`` is the label ``labels[i]``; the data is labelled by the protocol built from that label set
(`protocol_for`), and the two are compared by name, so the report is always in the protocol's order.

*Input.* Features ``[frames, coeffs]`` per clip are reshaped to the model's input shape when the element
counts agree (``[1,49,10,1]``, ``[1,490]``, ...). For an integer input they are quantized with the input
tensor's scale and zero point (`quantize_input`). The prediction is the argmax of the output vector.

*Runners.* LiteRT (default) with its built-in kernels and XNNPACK off (XNNPACK rounds int8 differently),
batched when the model allows; or, with ``exact``, the golden numpy reference `hardware.reference`,
bit-exact with TFLM: what the microcontroller computes.

Measured on the official test set (4,890 clips, ``split="all"``): MLPerf Tiny's ``kws_ref_model.tflite``
91.62 % with ``mlperf-tiny``, `TFDS_LABELS` and ``truncate`` (91.80 % rounded); ARM ML-zoo MicroNet-M
95.77 % with ``mlperf-tiny`` at a 40 ms window (``window_samples=640``) and `TFDS_LABELS` (published 95.8 %).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hardware import GraphError, Int8Graph, TfliteError, UnsupportedModelError, read_tflite, reference
from nas.data.dataset import SplitData, load_split
from nas.data.default import resolve_data
from nas.data.featurize import split_features
from nas.data.label_sets import KEYWORDS_ONLY_10, STANDARD_12, LabelProtocol
from nas.data.labels import KEYWORDS_10, LABELS_12, SILENCE, UNKNOWN
from nas.data.layout import scan_corpus
from nas.export.metadata import ModelMetadata
from nas.quant.ptq import quantize_input  # one int8 input quantizer for the exporter and the evaluator
from nas.train.evaluate import EvalReport, confusion_matrix
from search_spaces.frontend import FrontEndConfig, get_frontend

log = logging.getLogger(__name__)

ARM_LABELS: tuple[str, ...] = LABELS_12  # Hello Edge / ML-zoo output order
TFDS_LABELS: tuple[str, ...] = tuple(sorted(KEYWORDS_10)) + (SILENCE, UNKNOWN)  # TensorFlow Datasets' order
LABEL_ORDERS = {"arm": ARM_LABELS, "tfds": TFDS_LABELS}
SPLITS = ("train", "validation", "test", "all")
LITERT_BATCH = 50  # clips per invoke; DS-CNN-S on one thread: ~6,400 clips/s vs ~6,100 one at a time (1-250 tried)
REFERENCE_CHUNK = 256  # clips per reference call: run_all keeps every activation, ~0.1 MB a clip for DS-CNN-S
_ALIASES = {"silence": SILENCE, "unknown": UNKNOWN}  # names some published label files use


class EvaluationError(ValueError):
    """A model that cannot be evaluated as asked (unreadable, wrong input size, labels that do not fit)."""


@dataclass(frozen=True)
class Port:
    """A model input or output as a runner sees it; ``scale`` None for float tensors."""

    shape: tuple[int, ...]
    dtype: str
    scale: float | None = None
    zero_point: int = 0

    @property
    def size(self) -> int:
        return math.prod(self.shape)


def fit_to_input(features: np.ndarray, port: Port, what: str = "features") -> np.ndarray:
    """Rows ``[N, ...]`` reshaped to ``[N, *port.shape]``; `EvaluationError` when the counts differ."""
    f = np.asarray(features)
    per_row = math.prod(f.shape[1:])
    if per_row != port.size:
        raise EvaluationError(f"{what} of shape {list(f.shape[1:])} ({per_row} values per clip) do not fit the "
                              f"model's input {list(port.shape)} ({port.size} values)")
    return f.reshape(len(f), *port.shape)


def canonical_labels(labels: Sequence[str]) -> tuple[str, ...]:
    """Label names as the data names them: lower case, ``silence``/``unknown`` as ``_silence_``/``_unknown_``."""
    out = tuple(_ALIASES.get(w.strip().lower(), w.strip().lower()) for w in labels)
    if len(set(out)) != len(out) or not all(out):
        raise EvaluationError(f"labels must be distinct and non-empty, got {list(labels)}")
    return out


def protocol_for(labels: Sequence[str]) -> LabelProtocol:
    """The label protocol of a model's label set: the standard ones when the set matches them."""
    keywords = tuple(w for w in labels if w not in (SILENCE, UNKNOWN))
    silence, unknown = SILENCE in labels, UNKNOWN in labels
    if set(keywords) == set(KEYWORDS_10) and silence == unknown:
        return STANDARD_12 if silence else KEYWORDS_ONLY_10
    try:
        return LabelProtocol(keywords=keywords, silence=silence, unknown=unknown)
    except ValueError as e:
        raise EvaluationError(f"labels {list(labels)}: {e}") from None


def _keyword_rows(labels: Sequence[str]) -> list[int]:
    return [i for i, name in enumerate(labels) if name not in (SILENCE, UNKNOWN)]


def keywords_accuracy(report: EvalReport) -> float:
    """Accuracy over items whose true label is a keyword (not silence or unknown); NaN when there are none."""
    rows = _keyword_rows(report.labels)
    n = report.confusion[rows].sum()
    return float(report.confusion[rows, rows].sum() / n) if n else math.nan


def resolve_frontend(name_or_path: str) -> FrontEndConfig:
    """A front-end preset name, or a ``.json`` file holding a `FrontEndConfig` (``FrontEndConfig.to_json()``)."""
    path = Path(name_or_path).expanduser()
    if name_or_path.endswith(".json") or path.is_file():
        try:
            return FrontEndConfig.from_dict(json.loads(path.read_text()))
        except OSError as e:
            raise ValueError(f"{path}: cannot read the front-end file ({e.strerror or e})") from None
        except (ValueError, TypeError, KeyError) as e:
            raise ValueError(f"{path}: not a front-end config ({type(e).__name__}: {e})") from None
    return get_frontend(name_or_path)


def _subset(data: SplitData, idx: np.ndarray) -> SplitData:
    """Some items of a split, under their own cache key."""
    key = f"{data.key}-{hashlib.sha256(idx.astype(np.int64).tobytes()).hexdigest()[:12]}"
    return dataclasses.replace(data, audio=np.asarray(data.audio[idx]), labels=data.labels[idx],
                               silence=data.silence[idx], rel_paths=tuple(data.rel_paths[i] for i in idx), key=key)


def load_features(data: str | Path, protocol: LabelProtocol, frontend: FrontEndConfig, split: str = "test", *,
                  rule: str | None = None, seed: int = 0, limit: int | None = None
                  ) -> tuple[Path, np.ndarray, np.ndarray]:
    """(corpus root, float32 features [N, frames, coeffs], true class [N]) of a split (``all``: the three
    together); ``limit`` keeps a seeded random subset of that many items."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose from {', '.join(SPLITS)}")
    corpus = scan_corpus(resolve_data(data))
    parts = [load_split(corpus, protocol, s, seed, rule) for s in (SPLITS[:3] if split == "all" else (split,))]
    total = sum(len(p) for p in parts)
    keep = np.arange(total) if limit is None or limit >= total else np.sort(
        np.random.default_rng(seed).permutation(total)[:limit])
    feats, labels, start = [], [], 0
    for p in parts:
        idx = keep[(keep >= start) & (keep < start + len(p))] - start
        start += len(p)
        sub = p if len(idx) == len(p) else _subset(p, idx)
        if len(sub):
            feats.append(split_features(sub, frontend))
            labels.append(sub.labels)
    if not feats:
        raise ValueError(f"{corpus.root}: no clips in the {split} split")
    return corpus.root, np.concatenate(feats).astype(np.float32), np.concatenate(labels).astype(np.int64)


class _LiteRT:
    """LiteRT's interpreter, built-in kernels, XNNPACK off; batches of `LITERT_BATCH` when the model allows."""

    name = "litert"

    def __init__(self, model: bytes) -> None:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        def make() -> Any:
            it = Interpreter(model_content=model, num_threads=1,  # 2 threads measured slower on these 2 cores
                             experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
            it.allocate_tensors()
            return it

        try:
            self._single = make()
        except (RuntimeError, ValueError) as e:
            raise EvaluationError(f"LiteRT cannot load the model: {e}") from None
        ins, outs = self._single.get_input_details(), self._single.get_output_details()
        if len(ins) != 1 or len(outs) != 1:
            raise EvaluationError(f"the model has {len(ins)} inputs and {len(outs)} outputs; expected one of each")
        self.input, self.output = (self._port(d) for d in (ins[0], outs[0]))
        self._make, self._batched, self.batch = make, None, 1

    @staticmethod
    def _port(d: dict) -> Port:
        scale, zp = d["quantization"]
        return Port(tuple(int(s) for s in d["shape"]), np.dtype(d["dtype"]).name, scale or None, int(zp))

    @staticmethod
    def _invoke(it: Any, x: np.ndarray) -> np.ndarray:
        """Outputs [n, k] for clips x [n, *input shape] (n > 1 only on a batch-resized interpreter)."""
        it.set_tensor(it.get_input_details()[0]["index"], x.reshape(-1, *x.shape[2:]) if len(x) > 1 else x[0])
        it.invoke()
        return it.get_tensor(it.get_output_details()[0]["index"]).reshape(len(x), -1)

    def _try_batching(self, x: np.ndarray) -> None:
        """Resize the input to a batch; keep it only if the first clips give what one-at-a-time gives."""
        if self.input.shape[:1] != (1,) or len(x) < 2:
            return
        b = min(LITERT_BATCH, len(x))
        try:
            it = self._make()
            it.resize_tensor_input(it.get_input_details()[0]["index"], [b, *self.input.shape[1:]])
            it.allocate_tensors()
            if tuple(it.get_output_details()[0]["shape"]) != (b, *self.output.shape[1:]):
                return
            got = self._invoke(it, x[:b])[:2]
        except (RuntimeError, ValueError) as e:
            log.debug("LiteRT batching refused (%s); one clip at a time", e)
            return
        want = np.concatenate([self._invoke(self._single, x[i:i + 1]) for i in range(2)])
        if np.allclose(got.astype(np.float64), want.astype(np.float64), rtol=1e-4, atol=1e-5):
            self._batched, self.batch = it, b

    def run(self, x: np.ndarray) -> np.ndarray:
        """Outputs [N, k] for inputs [N, *input shape]."""
        try:
            return self._run(x)
        except (RuntimeError, ValueError) as e:
            raise EvaluationError(f"LiteRT failed: {e}") from None

    def _run(self, x: np.ndarray) -> np.ndarray:
        self._try_batching(x)
        if self._batched is None:
            return np.concatenate([self._invoke(self._single, x[i:i + 1]) for i in range(len(x))])
        out = []
        for s in range(0, len(x), self.batch):
            chunk = x[s:s + self.batch]
            pad = self.batch - len(chunk)  # the tail is padded to the allocated batch; padded rows are dropped
            full = np.concatenate([chunk, np.zeros((pad, *chunk.shape[1:]), chunk.dtype)]) if pad else chunk
            out.append(self._invoke(self._batched, full)[:len(chunk)])
        return np.concatenate(out)


class _Reference:
    """The golden numpy reference (`hardware.reference`), bit-exact with TFLM."""

    name, batch = "reference", REFERENCE_CHUNK

    def __init__(self, graph: Int8Graph) -> None:
        if len(graph.inputs) != 1 or len(graph.outputs) != 1:
            raise EvaluationError(f"the model has {len(graph.inputs)} inputs and {len(graph.outputs)} outputs; "
                                  "expected one of each")
        self.graph = graph
        self.input, self.output = (self._port(graph.tensors[t]) for t in (graph.inputs[0], graph.outputs[0]))

    @staticmethod
    def _port(t: Any) -> Port:
        q = t.quantization
        return Port(t.shape, t.dtype.value, None if q is None else q.scale[0], 0 if q is None else q.zero_point[0])

    def run(self, x: np.ndarray) -> np.ndarray:
        chunks = (x[s:s + self.batch] for s in range(0, len(x), self.batch))
        return np.concatenate([reference.run(self.graph, c)[0].reshape(len(c), -1) for c in chunks])


@dataclass(frozen=True)
class TfliteEvaluation:
    report: EvalReport  # in the protocol's label order (rows true, columns predicted)
    runner: str  # "litert" or "reference"
    batch: int  # clips per runner call
    model_labels: tuple[str, ...]  # the label of each model output, in output order
    labels_source: str  # "metadata", "given" or "default (Arm order)"
    frontend: FrontEndConfig
    data_root: str
    split: str
    input: Port
    input_rounding: str  # how float features became the model's input
    wall_time_s: float  # running the model (features excluded)
    predictions: np.ndarray  # int64 [N]: argmax model output of every clip
    true_labels: np.ndarray  # int64 [N]: protocol class of every clip

    @property
    def keywords_accuracy(self) -> float:
        return keywords_accuracy(self.report)

    def to_dict(self) -> dict[str, Any]:
        """`EvalReport.to_dict()` plus how the numbers were obtained (JSON-ready)."""
        kw = self.keywords_accuracy
        return {**self.report.to_dict(), "keywords_accuracy": None if math.isnan(kw) else kw,
                "keywords_count": int(self.report.confusion[_keyword_rows(self.report.labels)].sum()),
                "runner": self.runner, "batch": self.batch, "model_labels": list(self.model_labels),
                "labels_source": self.labels_source, "frontend": self.frontend.name,
                "frontend_digest": self.frontend.digest(), "data": self.data_root, "split": self.split,
                "input_shape": list(self.input.shape), "input_dtype": self.input.dtype,
                "input_rounding": self.input_rounding, "wall_time_s": self.wall_time_s,
                "clips_per_s": len(self.predictions) / self.wall_time_s if self.wall_time_s > 0 else None}


def _model_input(features: np.ndarray, port: Port, truncate: bool) -> tuple[np.ndarray, str]:
    """Features as the model's input, and how they were rounded."""
    x = fit_to_input(features, port)
    if port.dtype == "float32":
        if truncate:
            log.warning("truncation has no effect: the model takes float input and quantizes it itself")
        return x, "none (float input)"
    if port.scale is None or port.dtype not in ("int8", "uint8", "int16"):
        raise EvaluationError(f"unsupported model input: {port.dtype} "
                              f"{'without' if port.scale is None else 'with'} quantization")
    x = quantize_input(x, port.scale, port.zero_point, port.dtype, truncate=truncate)
    return x, "trunc(x / scale + zero point)" if truncate else "round half away from zero"


def _read_graph(model: bytes, exact: bool) -> Int8Graph | None:
    try:
        return read_tflite(model, allow_float=True)
    except UnsupportedModelError as e:
        if exact:
            raise EvaluationError(f"the golden reference cannot run this model: {e}") from None
        log.info("the model is outside the reference's op set (%s); LiteRT runs it, no metadata read", e)
        return None
    except (TfliteError, GraphError) as e:
        raise EvaluationError(str(e)) from None


def evaluate_tflite(model: bytes, data: str | Path, *, frontend: FrontEndConfig | str | None = None,
                    labels: Sequence[str] | None = None, exact: bool = False, truncate: bool = False,
                    split: str = "test", rule: str | None = None, seed: int = 0, limit: int | None = None,
                    peak_normalize: bool = False) -> TfliteEvaluation:
    """Accuracy of the `.tflite` ``model`` on ``split`` of ``data`` (a path or ``default``); see the module
    docstring. ``frontend``: a config, a preset name or a ``.json`` file; ``peak_normalize`` switches on its
    per-clip peak normalisation (MLPerf Tiny's). Model problems raise `EvaluationError`, data problems
    `nas.data.layout.DataError` (both `ValueError`)."""
    graph = _read_graph(model, exact)
    try:
        meta = None if graph is None else ModelMetadata.from_graph(graph)
    except ValueError as e:
        raise EvaluationError(str(e)) from None
    if isinstance(frontend, str):
        frontend = resolve_frontend(frontend)
    frontend = frontend or (meta.frontend if meta else None)
    if frontend is None:
        raise EvaluationError("no kwsnas metadata to say how the features are made: name a front end "
                              "(--features hello-edge, hello-edge-dnn, mlperf-tiny or log-mel)")
    if peak_normalize:
        frontend = frontend.replace(peak_normalize=True)
    source = "given" if labels is not None else "metadata" if meta else "default (Arm order)"
    model_labels = canonical_labels(labels if labels is not None else meta.labels if meta else ARM_LABELS)
    runner = _Reference(graph) if exact else _LiteRT(model)  # type: ignore[arg-type]
    if runner.output.size != len(model_labels):
        raise EvaluationError(f"the model has {runner.output.size} outputs ({list(runner.output.shape)}) but "
                              f"{len(model_labels)} labels ({source}: {','.join(model_labels)})")
    fit_to_input(np.zeros((1, *frontend.feature_shape)), runner.input, f"{frontend.name} features")
    protocol = protocol_for(model_labels)
    root, features, true = load_features(data, protocol, frontend, split, rule=rule, seed=seed, limit=limit)
    x, rounding = _model_input(features, runner.input, truncate)
    start = time.perf_counter()
    predictions = np.argmax(runner.run(x), axis=1).astype(np.int64)
    wall = time.perf_counter() - start
    to_class = np.array([protocol.labels.index(w) for w in model_labels], np.int64)
    report = EvalReport(protocol.labels, confusion_matrix(true, to_class[predictions], protocol.num_classes))
    return TfliteEvaluation(report, runner.name, runner.batch, model_labels, source, frontend, str(root), split,
                            runner.input, rounding, wall, predictions, true)
