"""Final trainings: one architecture, one seed, the same recipe for search picks and presets alike.

    jobs = [FinalJob("ds-cnn-s", spec, seed, epochs, folder, setting) for ...]
    results = run_final_jobs(jobs, workers=2)      # cached per job; independent jobs two at a time

A job trains ``spec`` for ``epochs`` (budget in epochs, no wall-clock cap: the same job gives the same
figures on any machine) with ``TrainConfig(seed=seed, trial=0)``, quantizes it (PTQ), measures the int8
model on the board and records the int8 predictions on the validation and test clips (the paired
comparison needs them clip by clip). Its figures are written to ``folder/figures.json`` with a key of
everything they depend on; a job whose file holds the same key is not run again, so a stopped
experiment resumes where it was. Jobs run in ``workers`` single-threaded processes (two such trainers
beat one two-threaded on 2 cores, GUIDE §3).
"""

from __future__ import annotations

import json
import logging
import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hardware import read_tflite
from nas import runtime
from nas.export.quantize import quantize_checkpoint
from nas.files import atomic_write_json
from nas.progress import LineLog
from nas.quant.ptq import run_int8
from nas.runtime import release_compiled
from nas.study.candidate import SearchContext, hardware_figures, make_evaluator
from nas.study.config import SearchConfig
from nas.train import TrainConfig, train
from search_spaces import ArchSpec
from search_spaces.estimate import estimate

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FinalSetting:
    """What every final training of an experiment shares: data, split, noise, labels, board, evaluator.

    Experiments' frozen configs extend it (their own ``name`` default first); `setting` is the dict a
    `FinalJob` carries."""

    name: str = "final"
    data: str = "../shared/data/speech_commands_v0.02_test"
    split_rule: str | None = "speaker-60-20-20"
    noise: str | None = "../shared/data/background_noise"
    protocol: str = "12"  # 12, 10 or the user's words w1,w2,...
    board: str = "mps2-an386"
    evaluator: str = "emulator"
    seed: int = 0

    def setting(self) -> dict[str, Any]:
        """What every final training shares (a SearchConfig's dict)."""
        return SearchConfig(name=f"{self.name}-final", data=self.data, split_rule=self.split_rule, noise=self.noise,
                            protocol=self.protocol, board=self.board, evaluator=self.evaluator,
                            seed=self.seed).to_dict()


def none_for_empty(settings: dict[str, Any]) -> dict[str, Any]:
    """``noise = ""`` or ``split_rule = ""`` (from a file or the command line) as None: no noise folder (the
    corpus's own ``_background_noise_`` if it has one), the default split; changed in place."""
    for key in ("noise", "split_rule"):
        if settings.get(key) == "":
            settings[key] = None
    return settings


@dataclass(frozen=True)
class FinalJob:
    name: str  # the model's label in tables (a preset name, or "<space>-trial<N>")
    spec_json: str
    seed: int
    epochs: int
    folder: str
    setting: dict[str, Any]  # a SearchConfig's dict: data, split rule, noise, protocol, board, evaluator
    # TrainConfig fields beyond the shared recipe (e.g. distillation: teachers, temperature, weight)
    train_options: dict[str, Any] = field(default_factory=dict)

    def key(self) -> list[Any]:
        s = self.setting
        key = [ArchSpec.from_json(self.spec_json).digest(), self.seed, self.epochs, s["data"], s["split_rule"],
               s["noise"], s["protocol"], s["board"], s["evaluator"], "final-2"]
        return key + [json.loads(json.dumps(self.train_options, sort_keys=True))] if self.train_options else key

    def train_config(self) -> TrainConfig:
        options = {k: tuple(v) if isinstance(v, list) else v for k, v in self.train_options.items()}
        return TrainConfig(epochs=self.epochs, seed=self.seed, trial=0, **options)

    @property
    def figures_path(self) -> Path:
        return Path(self.folder) / "figures.json"

    def cached(self) -> dict[str, Any] | None:
        try:
            fig = json.loads(self.figures_path.read_text())
        except (OSError, ValueError):
            return None
        return fig if fig.get("final_key") == self.key() else None


_DATA: dict[str, Any] = {}  # per worker process: the data and evaluator, loaded once


def _context(setting: dict[str, Any]) -> Any:
    key = json.dumps(setting, sort_keys=True)
    if key not in _DATA:
        cfg = SearchConfig.from_dict(setting)
        _DATA.clear()
        _DATA[key] = SearchContext.load(cfg)
    return _DATA[key]


def run_final_job(job: FinalJob) -> dict[str, Any]:
    """Train, quantize, measure and score one job (in this process); writes and returns its figures."""
    ctx = _context(job.setting)
    data = ctx.data
    spec = ArchSpec.from_json(job.spec_json).with_classes(data.num_classes)
    folder = Path(job.folder)
    result = train(spec, data, job.train_config(), out_dir=folder / "checkpoint")
    report = quantize_checkpoint(folder / "checkpoint", folder / "export", data, measure_arena=False, seed=job.seed)
    tflite = (folder / "export" / "model_int8.tflite").read_bytes()
    hw = hardware_figures(ctx.evaluator.measure(tflite, ctx.cfg.board))
    if hw["output_match"] is False:
        raise RuntimeError(f"{job.name} seed {job.seed}: the board's int8 outputs differ from the golden reference")
    graph = read_tflite(tflite)
    predictions = {split: run_int8(graph, data.features(split, spec.frontend)).argmax(axis=1)
                   for split in ("validation", "test")}
    labels = {"validation": data.validation.labels, "test": data.test.labels}
    correct = {split: (predictions[split] == labels[split]).astype(int) for split in predictions}
    est = estimate(spec)
    fig = {
        "final_key": job.key(), "model": job.name, "seed": job.seed, "epochs": job.epochs,
        "spec_digest": spec.digest(), "spec": json.loads(spec.to_json()),
        "float_val_accuracy": result.val_accuracy, "int8_val_accuracy": report.int8_val_accuracy,
        "int8_test_accuracy": report.int8_test_accuracy, "train_time_s": result.wall_time_s,
        "stop_reason": result.stop_reason, "steps": result.steps, "samples_per_s": result.samples_per_s,
        "macs": est.macs, "params": est.params, **hw,
        "val_correct": correct["validation"].tolist(), "test_correct": correct["test"].tolist(),
    }
    assert np.isclose(np.mean(correct["test"]), report.int8_test_accuracy)  # the same int8 model, scored twice
    atomic_write_json(job.figures_path, fig)
    release_compiled()  # one pool worker trains many models
    return fig


_EVALUATORS: dict[str, Any] = {}  # per setting, in this process: the board measurements of cached jobs


def remeasured(job: FinalJob, fig: dict[str, Any]) -> dict[str, Any]:
    """A cached job's figures with its int8 model measured again by today's firmware and code generator.

    The cache key holds what training depends on, not the firmware: a trained model stays valid across
    firmware changes, its flash, RAM and latency do not (a few bytes of firmware can turn "at most the
    target's flash" into "more"). The evaluator's own cache makes this free while nothing changed."""
    tflite = Path(job.folder) / "export" / "model_int8.tflite"
    if not tflite.exists():
        return fig
    key = json.dumps(job.setting, sort_keys=True)
    if key not in _EVALUATORS:
        _EVALUATORS[key] = make_evaluator(SearchConfig.from_dict(job.setting))
    hw = hardware_figures(_EVALUATORS[key].measure(tflite.read_bytes(), job.setting["board"]))
    if hw["output_match"] is False:
        raise RuntimeError(f"{job.name} seed {job.seed}: the board's int8 outputs differ from the golden reference "
                           f"({tflite})")
    changed = {k: (fig.get(k), hw[k]) for k in ("flash_bytes", "ram_bytes", "latency_ms") if fig.get(k) != hw[k]}
    if changed:
        log.info("%s seed %d measured again: %s", job.name, job.seed,
                 ", ".join(f"{k} {a} -> {b}" for k, (a, b) in changed.items()))
        fig = {**fig, **hw}
        atomic_write_json(job.figures_path, fig)
    return fig


def _single_threaded() -> None:
    runtime.configure_threads(1)  # before this worker imports JAX


def run_final_jobs(jobs: list[FinalJob], workers: int = 2,
                   progress: Callable[[str], None] | None = None) -> dict[tuple[str, int], dict[str, Any]]:
    """Every job's figures by (name, seed): from its cache, or run (``workers`` at a time)."""
    out: dict[tuple[str, int], dict[str, Any]] = {}
    todo = []
    for job in jobs:
        fig = job.cached()
        if fig is not None:
            out[job.name, job.seed] = remeasured(job, fig)
        else:
            todo.append(job)
    if not todo:
        return out
    say = progress or (lambda msg: log.info("%s", msg))
    say(f"final trainings: {len(todo)} to run ({len(out)} reused), {workers} at a time")
    lines = LineLog(len(todo))

    def finished(job: FinalJob, fig: dict[str, Any], done: int) -> None:
        out[job.name, job.seed] = fig
        lines.say(f"final {job.name} seed {job.seed}: int8 test {100 * fig['int8_test_accuracy']:.2f} %, "
                  f"val {100 * fig['int8_val_accuracy']:.2f} %, {fig['train_time_s']:.0f} s training", done)

    if workers <= 1 or len(todo) == 1:
        for i, job in enumerate(todo, 1):
            finished(job, run_final_job(job), i)
        return out
    ctx = multiprocessing.get_context("spawn")  # fresh interpreters: XLA's thread flags before JAX starts
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_single_threaded) as pool:
        futures = {pool.submit(run_final_job, job): job for job in todo}
        for i, f in enumerate(as_completed(futures), 1):
            finished(futures[f], f.result(), i)
    return out
