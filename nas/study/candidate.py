"""One search candidate, hardware first: estimate -> static check -> measure an untrained int8 build ->
(if within the budgets) train -> quantize -> measure the trained model.

A candidate's flash, RAM and latency do not depend on its trained weights, so the board is asked first,
on the spec's int8 graph with fixed random weights (seed 0: the same spec gives the same bytes, so the
measurement cache answers repeats). Before that, the free static check (`nas.study.static_check`) refuses
candidates that certainly break a budget (``static_reject``: never measured). Over-budget candidates are
returned with their figures and ``trained = False``; they never cost a training run.

`CandidateFigures` is a flat JSON-ready dict (what a trial stores in its user attributes)::

    spec_digest, macs, params, peak_activation_bytes            static estimate
    flash_bytes, ram_bytes, latency_ms, latency_kind, counter,  hardware (measured or estimated)
    instructions, cycles, output_match, hw_evaluator, board
    trained, float_val_accuracy, int8_val_accuracy, int8_test_accuracy, error, train_time_s, steps,
    epochs_trained, stop_reason, stopped_at_epoch (successive halving), static_reject (a reason)
    checkpoint, tflite                                           artifact paths
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hardware.evaluators import Evaluator, Measurement, get_evaluator
from hardware.tflite_io import write_tflite
from nas.export.metadata import METADATA_KEY, MetadataError, ModelMetadata
from nas.export.quantize import quantize_checkpoint
from nas.models.probe import probe_folded
from nas.quant.float_graph import float_graph
from nas.quant.ptq import calibrate, quantize_graph
from nas.study.config import SearchConfig
from nas.study.objectives import constraint_values
from nas.train import TrainData, train
from search_spaces.estimate import estimate
from search_spaces.spec import ArchSpec

log = logging.getLogger(__name__)

PROBE_CALIBRATION_CLIPS = 32  # an untrained build only needs plausible ranges: its weights are random anyway
# A trained build's figures differ from its untrained probe's by a few bytes or instructions (each layer's
# requantization mode follows its weights): DS-CNN-S trained ran 164.3951 ms against its probe's 164.3807.
# Budgets taken from a reference are its probe's figures, so a trial's probe figures are kept beside the
# trained ones: the search compares like with like (`nas.study.runner.trial_fitness`).
PROBE_KEYS = ("flash_bytes", "ram_bytes", "latency_ms")


class CandidateError(RuntimeError):
    """A candidate that could not be evaluated (not a budget miss): the message says why."""


@dataclass
class SearchContext:
    cfg: SearchConfig
    data: TrainData
    evaluator: Evaluator

    @property
    def board(self) -> str:
        return self.cfg.board

    @classmethod
    def load(cls, cfg: SearchConfig) -> SearchContext:
        """The config's data (decoded once, then cached) and its evaluator, checking on that data."""
        data = load_data(cfg)
        return cls(cfg, data, make_evaluator(cfg, data))


@dataclass(frozen=True)
class ValidationInputs:
    """The device check's inputs for a kwsnas model: features of ``count`` validation clips spread over the
    split, through the front end the model's metadata names (a model without it keeps random inputs)."""

    data: TrainData
    count: int = 3

    @property
    def id(self) -> str:
        return f"validation:{self.data.validation.key}:{self.count}"

    def __call__(self, graph: Any) -> np.ndarray | None:
        try:
            meta = ModelMetadata.from_graph(graph)
        except MetadataError:
            return None
        n = len(self.data.validation)
        if meta is None or n == 0:
            return None
        shape = graph.tensors[graph.inputs[0]].shape
        feats = self.data.features("validation", meta.frontend)[np.linspace(0, n - 1, self.count).astype(int)]
        if feats[0].size != int(np.prod(shape)):
            return None
        return np.asarray(feats, np.float32).reshape(len(feats), *shape)


def make_evaluator(cfg: SearchConfig, data: TrainData | None = None) -> Evaluator:
    """The evaluator a config names (emulator, analytic, or a real board on ``cfg.port``); with ``data``,
    the device check runs kwsnas models on real validation features (`ValidationInputs`) first."""
    return get_evaluator(cfg.evaluator, cfg.board, port=cfg.port, flash=cfg.flash,
                         check_inputs=None if data is None else ValidationInputs(data))


def load_data(cfg: SearchConfig) -> TrainData:
    """The data a config names (decoded once, then from the cache)."""
    from nas.train import prepare_train_data

    return prepare_train_data(cfg.data, cfg.protocol, seed=cfg.seed, rule=cfg.split_rule,
                              noise_dir=None if cfg.noise is None else Path(cfg.noise))


def probe_tflite(spec: ArchSpec, data: TrainData) -> bytes:
    """The int8 `.tflite` of ``spec`` with seed-0 random weights, calibrated on a few validation clips."""
    feats = data.features("validation", spec.frontend)[:PROBE_CALIBRATION_CLIPS]
    if len(feats) == 0:
        feats = np.zeros((1, *spec.frontend.feature_shape), np.float32)
    meta = {METADATA_KEY: ModelMetadata(tuple(data.labels), spec.frontend, spec.name, spec.digest()).to_json()}
    fg = float_graph(spec, probe_folded(spec, 0), meta)  # the metadata names the front end for the device check
    return write_tflite(quantize_graph(fg, calibrate(fg, feats, clip_percent=0), meta))


def hardware_figures(m: Measurement) -> dict[str, Any]:
    """The flat figures of a measurement; raises `CandidateError` when it failed for another reason
    than not fitting the board."""
    if not m.ok and m.feasible is not False:
        raise CandidateError(f"measurement on {m.board} failed: {m.error}")
    measured = m.latency_ms is not None
    return {
        "board": m.board,
        "hw_evaluator": m.evaluator,
        "hw_estimated": bool(m.estimated),
        "fits_board": m.feasible is not False,
        "flash_bytes": m.flash_bytes,
        "ram_bytes": m.ram_bytes,
        "ram_static_bytes": m.ram_static_bytes,
        "ram_stack_bytes": m.ram_stack_bytes,
        "counter": m.counter,
        "instructions": m.instructions,
        "cycles": m.cycles,
        "latency_ms": m.latency_ms if measured else m.latency_ms_est,
        "latency_kind": "measured" if measured else "estimated",
        "output_match": m.output_match,
        "check_inputs_real": m.real_inputs_checked,  # of the device check's inputs, features of real clips
        "check_tensors": m.tensors_checked,  # intermediate tensors compared beside the output
    }


def evaluate_candidate(spec: ArchSpec, ctx: SearchContext, trial_number: int, out_dir: Path, *,
                       on_measured: Callable[[dict[str, Any]], None] | None = None,
                       after_eval: Callable[[dict[str, Any]], bool] | None = None) -> dict[str, Any]:
    """All figures of ``spec`` (see the module docstring); trains only candidates within the budgets.

    ``on_measured(figures)`` is called once the untrained build is measured and fits, before training;
    ``after_eval`` goes to `nas.train.train` (successive halving stops a run there: the figures then say
    ``stopped_at_epoch`` and hold the float validation accuracy reached, nothing quantized or re-measured).
    """
    cfg = ctx.cfg
    est = estimate(spec)
    fig: dict[str, Any] = {"spec_digest": spec.digest(), "macs": est.macs, "params": est.params,
                           "peak_activation_bytes": est.peak_activation_bytes, "trained": False}
    static = {k: v for k, v in cfg.budgets.items() if k in ("macs", "params")}
    if any(v > 0 for v in constraint_values(static, fig).values()):
        return fig  # over a static budget: not even worth a measurement
    if cfg.static_filter:
        from nas.study.static_check import StaticCheck

        reason = StaticCheck.of(cfg).reason(spec)
        if reason is not None:
            fig["static_reject"] = reason  # certainly over a budget: never measured
            return fig
    t0 = time.perf_counter()
    fig.update(hardware_figures(ctx.evaluator.measure(probe_tflite(spec, ctx.data), ctx.board)))
    fig["probe_s"] = time.perf_counter() - t0
    if not fig["fits_board"] or any(v > 0 for v in constraint_values(cfg.budgets, fig).values()):
        return fig
    if on_measured is not None:
        on_measured(dict(fig))

    tcfg = cfg.train.train_config(cfg.seed, trial_number)
    ckpt = out_dir / "checkpoint"
    result = train(spec, ctx.data, tcfg, out_dir=ckpt, after_eval=after_eval)
    fig.update({"trained": True, "train_time_s": result.wall_time_s, "steps": result.steps,
                "epochs_trained": result.epochs, "stop_reason": result.stop_reason, "checkpoint": str(ckpt),
                "float_val_accuracy": result.val_accuracy, "compiled_kernels": result.compiled_kernels})
    if result.stop_reason == "stopped":
        fig["stopped_at_epoch"] = result.epochs
        return fig
    report = quantize_checkpoint(ckpt, out_dir / "export", ctx.data, measure_arena=False, seed=cfg.seed)
    tflite = out_dir / "export" / "model_int8.tflite"
    final = hardware_figures(ctx.evaluator.measure(tflite.read_bytes(), ctx.board))
    if final["output_match"] is False:
        raise CandidateError(f"the board's int8 outputs differ from the golden reference for {spec.name}")
    fig["probe"] = {k: fig[k] for k in PROBE_KEYS if k in fig}  # the figures the budgets admitted it on
    fig.update(final)
    fig.update({
        "float_val_accuracy": report.float_val_accuracy,
        "int8_val_accuracy": report.int8_val_accuracy,
        "int8_test_accuracy": report.int8_test_accuracy,
        "error": 1.0 - report.int8_val_accuracy,
        "int8_tflite_bytes": report.int8_tflite_bytes,
        "tflite": str(tflite),
    })
    return fig
