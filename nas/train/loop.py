"""`train(spec, data, cfg)`: the one training loop of full runs and search trials alike.

It keeps the best model by validation accuracy (not the last), stops at the end of its epoch or step
budget (the learning-rate schedule is sized by it, so the same config and seed compute the same on any
machine), at an optional wall-clock cap (a safety net: it only cuts the run short, and says so), on
early stopping or when ``after_eval`` asks, evaluates the best model on the test split, and returns a `TrainResult`. With
``out_dir`` the best model is checkpointed whenever it changes and ``history.json`` follows every
evaluation. A NaN or infinite loss raises `TrainingDiverged`, which carries the history and the best
model so far (already checkpointed): nothing is lost.

The host never waits for the step it just dispatched: it reads the metrics of the previous step while
the current one runs, so checking every loss costs no throughput.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp

from nas.files import atomic_write_json
from nas.models import KWSModel, build_model, merge_model, native, split_model
from nas.train.checkpoint import save_checkpoint
from nas.train.config import TrainConfig
from nas.train.data import TrainData, epoch_batches, host_batch
from nas.train.distill import load_teachers
from nas.train.evaluate import EvalReport, evaluate
from nas.train.state import StepSettings, create_train_state, model_seed
from nas.train.step import make_train_step
from search_spaces.spec import ArchSpec

log = logging.getLogger(__name__)


def _all_finite(tree: Any) -> bool:
    """Every weight and statistic finite (one small reduction; evaluations are rare)."""
    leaves = jax.tree_util.tree_leaves(tree)
    return bool(jnp.all(jnp.array([jnp.isfinite(x).all() for x in leaves]))) if leaves else True


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite. Carries what was achieved before: history and the best model."""

    def __init__(self, step: int, loss: float, history: list[dict[str, Any]], best: dict[str, Any] | None,
                 checkpoint_dir: Path | None):
        self.step, self.loss, self.history, self.best, self.checkpoint_dir = step, loss, history, best, checkpoint_dir
        best_text = (f"best validation accuracy {best['val_accuracy']:.4f} at step {best['step']}"
                     if best else "no evaluation before it")
        where = f" (checkpoint {checkpoint_dir})" if checkpoint_dir and best else ""
        super().__init__(f"training diverged at step {step}: loss {loss}; {best_text}{where}")


@dataclass(frozen=True)
class TrainProgress:
    """What a progress display needs after each step (compute here, render in the CLI)."""

    step: int
    total_steps: int  # the schedule's length (from the epoch or step budget)
    epoch: float
    loss: float
    val_accuracy: float | None  # the latest evaluation
    best_val_accuracy: float | None
    elapsed_s: float


@dataclass(frozen=True)
class TrainResult:
    spec: ArchSpec
    config: TrainConfig
    val: EvalReport  # of the best model
    test: EvalReport | None  # of the best model; None when the corpus has no test split
    best_step: int
    steps: int
    epochs: float
    stop_reason: str  # max_steps | epochs | time (the wall-clock cap) | early_stop | stopped (after_eval)
    wall_time_s: float
    compile_time_s: float  # the first step, which compiles (or reuses a compiled step)
    samples_per_s: float  # training throughput after the first step, evaluations excluded
    history: tuple[dict[str, Any], ...]
    checkpoint_dir: Path | None
    graphdef: Any
    params: Any  # of the best model, host (numpy) arrays
    batch_stats: Any
    # the compiled training kernels (nas.models.native) or the pure-JAX path: equal to float32 rounding, not
    # bit for bit, so runs to be compared number for number must agree on it
    compiled_kernels: bool = False

    @property
    def val_accuracy(self) -> float:
        return self.val.accuracy

    @property
    def test_accuracy(self) -> float:
        return self.test.accuracy if self.test is not None else math.nan

    def model(self) -> KWSModel:
        return merge_model(self.graphdef, self.params, self.batch_stats)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (no weights)."""
        return {
            "spec_name": self.spec.name, "spec_digest": self.spec.digest(),
            "val_accuracy": _clean(self.val_accuracy), "test_accuracy": _clean(self.test_accuracy),
            "best_step": self.best_step, "steps": self.steps, "epochs": self.epochs,
            "stop_reason": self.stop_reason, "wall_time_s": self.wall_time_s,
            "compile_time_s": self.compile_time_s, "samples_per_s": self.samples_per_s,
            "compiled_kernels": self.compiled_kernels, "val": self.val.to_dict(), "test": self.test.to_dict() if self.test is not None else None,
            "history": list(self.history),
            "checkpoint_dir": str(self.checkpoint_dir) if self.checkpoint_dir else None,
            "config": self.config.to_dict(),
        }


def _clean(x: float) -> float | None:
    return None if math.isnan(x) else x


def _check_compatible(spec: ArchSpec, data: TrainData) -> None:
    if spec.num_classes != data.num_classes:
        raise ValueError(f"architecture {spec.name!r} has {spec.num_classes} outputs but the protocol has "
                         f"{data.num_classes} classes {data.labels}; use spec.with_classes({data.num_classes})")
    if spec.frontend.clip_samples != data.clip_samples:
        raise ValueError(f"front end {spec.frontend.name!r} takes {spec.frontend.clip_samples}-sample clips, "
                         f"the data has {data.clip_samples}")


def train(spec: ArchSpec, data: TrainData, cfg: TrainConfig | None = None, out_dir: Path | str | None = None,
          progress: Callable[[TrainProgress], None] | None = None,
          after_eval: Callable[[dict[str, Any]], bool] | None = None,
          initial: tuple[Any, Any] | None = None) -> TrainResult:
    """Train ``spec`` on ``data`` under ``cfg`` (default `TrainConfig()`); see the module docstring.

    ``initial``: (params, batch_stats) of ``spec``'s network to start from (fine-tuning, e.g. a model
    compressed by `nas.train.compress`) instead of the seeded initialisation.

    ``after_eval(entry)`` is called after every evaluation with its history entry (``step``, ``epoch``,
    ``val_accuracy``, ``best_val_accuracy``); returning True stops training there (``stop_reason
    "stopped"``): a search's successive halving stops candidates that way at its rungs.
    """
    t_start = time.perf_counter()
    cfg = cfg if cfg is not None else TrainConfig()
    _check_compatible(spec, data)
    out_dir = Path(out_dir) if out_dir is not None else None
    indices = data.train_indices(cfg.train_fraction, cfg.seed)
    batch_size = min(cfg.batch_size, len(indices))
    if batch_size < cfg.batch_size:
        log.warning("only %d training items: batch size %d instead of %d", len(indices), batch_size, cfg.batch_size)
    steps_per_epoch = len(indices) // batch_size
    # The schedule is sized by the step or epoch budget alone, so a run computes the same on any machine;
    # the wall-clock cap (time_budget_s) can only cut it short, and the result says so (stop_reason "time").
    total_steps = min(cfg.max_steps or math.inf, cfg.epochs * steps_per_epoch if cfg.epochs else math.inf)
    assert total_steps != math.inf  # TrainConfig requires epochs or max_steps
    total_steps = int(total_steps)
    eval_every = cfg.eval_every_steps or steps_per_epoch

    graphdef, params, stats = split_model(build_model(spec, model_seed(cfg.seed, cfg.trial)))
    if initial is not None:
        if jax.tree.structure(initial[0]) != jax.tree.structure(params):
            raise ValueError(f"initial weights do not fit {spec.name!r}: another network's variables")
        params, stats = initial
    settings = StepSettings.of(spec.frontend, cfg)
    state = create_train_state(params, stats, settings, cfg, total_steps)
    teachers = load_teachers(cfg.teachers, data.labels) if cfg.teachers else None
    train_step = make_train_step(graphdef, settings, data.device_noise(), teachers)
    val_x, val_y = data.features("validation", spec.frontend), data.validation.labels

    history: list[dict[str, Any]] = []
    best: dict[str, Any] | None = None  # step, val_accuracy, report, params, batch_stats (host copies)
    evals_since_best = 0
    step = 0
    pending: tuple[int, dict] | None = None  # the dispatched step whose metrics are not read yet
    loss_sum = acc_sum = grad_norm_max = 0.0
    loss_n = 0
    last_lr = math.nan
    eval_time_s = compile_time_s = 0.0
    t_after_first = None  # the wall-clock cap counts from here: compiling the step is not training
    latest_val = None
    stop_reason = None

    def settle() -> None:
        """Read the pending step's metrics (waits for it); raise on a non-finite loss."""
        nonlocal pending, loss_sum, acc_sum, loss_n, last_lr, grad_norm_max
        if pending is None:
            return
        at, metrics = pending
        pending = None
        metrics = jax.device_get(metrics)  # one transfer for all of them
        loss, acc = float(metrics["loss"]), float(metrics["accuracy"])
        if not math.isfinite(loss):
            summary = None if best is None else {k: best[k] for k in ("step", "val_accuracy")}
            if out_dir is not None:
                atomic_write_json(out_dir / "history.json", {"history": history, "diverged_at_step": at})
            raise TrainingDiverged(at, loss, history, summary, out_dir if best else None)
        loss_sum, acc_sum, loss_n, last_lr = loss_sum + loss, acc_sum + acc, loss_n + 1, float(metrics["lr"])
        grad_norm_max = max(grad_norm_max, float(metrics["grad_norm"]))
        if progress is not None:
            progress(TrainProgress(at, total_steps, at / steps_per_epoch, loss,
                                   latest_val, best and best["val_accuracy"], time.perf_counter() - t_start))

    def run_eval() -> str | None:
        """Evaluate on validation, keep the best; return a stop reason (early stopping, ``after_eval``)."""
        nonlocal best, evals_since_best, loss_sum, acc_sum, loss_n, latest_val, eval_time_s, grad_norm_max
        settle()
        if not _all_finite((state.params, state.batch_stats)):  # the last update can poison the weights
            summary = None if best is None else {k: best[k] for k in ("step", "val_accuracy")}
            raise TrainingDiverged(step, math.nan, history, summary, out_dir if best else None)
        t0 = time.perf_counter()
        report = evaluate(graphdef, state.params, state.batch_stats, val_x, val_y, data.labels)
        latest_val = report.accuracy
        entry = {
            "step": step, "epoch": step / steps_per_epoch,
            "train_loss": loss_sum / loss_n if loss_n else None,
            "train_accuracy": acc_sum / loss_n if loss_n else None,
            "val_accuracy": report.accuracy,
            "lr": last_lr, "grad_norm_max": grad_norm_max,  # before clipping
            "elapsed_s": time.perf_counter() - t_start,
        }
        history.append(entry)
        loss_sum = acc_sum = grad_norm_max = 0.0
        loss_n = 0
        if best is None or report.accuracy > best["val_accuracy"]:
            best = {"step": step, "val_accuracy": report.accuracy, "report": report,
                    "params": jax.device_get(state.params), "batch_stats": jax.device_get(state.batch_stats)}
            evals_since_best = 0
            if out_dir is not None:
                save_checkpoint(out_dir, spec, best["params"], best["batch_stats"], cfg, step,
                                {"val_accuracy": report.accuracy, "epoch": entry["epoch"], "labels": list(data.labels),
                                 "data": data.source()})
        else:
            evals_since_best += 1
        entry["best_val_accuracy"] = best["val_accuracy"]
        if out_dir is not None:
            atomic_write_json(out_dir / "history.json", {"history": history})
        eval_time_s += time.perf_counter() - t0
        if cfg.patience_evals is not None and evals_since_best >= cfg.patience_evals:
            return "early_stop"
        if after_eval is not None and after_eval(dict(entry)):
            return "stopped"
        return None

    epoch = 0
    while stop_reason is None:
        for index in epoch_batches(indices, batch_size, cfg.seed, cfg.trial, epoch):
            if step >= total_steps:
                stop_reason = "max_steps" if cfg.max_steps and step >= cfg.max_steps else "epochs"
                break
            if (cfg.time_budget_s is not None and t_after_first is not None
                    and time.perf_counter() - t_after_first >= cfg.time_budget_s):
                stop_reason = "time"
                log.warning("%s: the %.0f s wall-clock cap stopped training at step %d of %d: this result depends "
                            "on the machine's speed (budget in epochs or steps for a reproducible one)",
                            spec.name, cfg.time_budget_s, step, total_steps)
                break
            t0 = time.perf_counter()
            state, metrics = train_step(state, host_batch(data.train, index))
            step += 1
            settle()  # the previous step's metrics, while this one runs
            pending = (step - 1, metrics)
            if step == 1:
                settle()  # the first step compiles: wait for it, to time it apart
                compile_time_s = time.perf_counter() - t0
                t_after_first = time.perf_counter()
            if step % eval_every == 0:
                stop_reason = run_eval()
                if stop_reason is not None:
                    break
        epoch += 1

    settle()
    if not history or history[-1]["step"] != step:
        run_eval()
    wall_loop_s = time.perf_counter() - (t_after_first or time.perf_counter())
    train_time_s = max(wall_loop_s - eval_time_s, 1e-9)
    assert best is not None
    test = None
    if len(data.test):
        test = evaluate(graphdef, best["params"], best["batch_stats"], data.features("test", spec.frontend),
                        data.test.labels, data.labels)
    wall_time_s = time.perf_counter() - t_start
    result = TrainResult(
        spec=spec, config=cfg, val=best["report"], test=test, best_step=best["step"], steps=step,
        epochs=step / steps_per_epoch, stop_reason=stop_reason, wall_time_s=wall_time_s,
        compile_time_s=compile_time_s, samples_per_s=(step - 1) * batch_size / train_time_s if step > 1 else 0.0,
        history=tuple(history), checkpoint_dir=out_dir, graphdef=graphdef, params=best["params"],
        batch_stats=best["batch_stats"], compiled_kernels=native.available(),
    )
    if out_dir is not None:
        save_checkpoint(out_dir, spec, best["params"], best["batch_stats"], cfg, best["step"], {
            **{k: v for k, v in result.to_dict().items() if k not in ("history", "config", "checkpoint_dir")},
            "labels": list(data.labels), "data": data.source()})
        atomic_write_json(out_dir / "history.json", {"history": history})
    log.info("trained %s: %d steps, val %.4f (best at step %d), test %.4f, %.0f samples/s, stop: %s",
             spec.name, step, result.val_accuracy, result.best_step, result.test_accuracy, result.samples_per_s,
             stop_reason)
    return result

