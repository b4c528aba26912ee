"""Optuna studies for `SearchConfig`s: storage, sampler, objective, workers, resume.

    study = open_study(cfg)                      # creates or loads; the config is stored with the study
    run_search(cfg)                              # N local worker processes until the trial target
    run_worker(study_name, storage_url)          # join a running study (this or another machine)

Storage: SQLite under ``runs/<name>/study.db`` by default, any Optuna RDB URL (PostgreSQL), a
journal file (``journal:PATH``) for many workers on one machine, or a journal in Redis (``redis://HOST:PORT``)
for many machines without a database. Every storage gets a heartbeat: a
trial left RUNNING by a killed worker (Ctrl-C, ``kill -9``) stops beating, is marked FAIL by the next
worker that starts or asks for a trial, and its parameters are enqueued again, so the target number
of completed trials is still reached and no completed trial is lost.
"""

from __future__ import annotations

import json
import logging
import math
import os
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import JournalStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState

from hardware.evaluators import emulation_missing
from nas.runtime import release_compiled
from nas.study import (
    candidate,  # evaluate_candidate via the module: the reliability tests inject faults there
)
from nas.study.candidate import SearchContext, hardware_figures, probe_tflite
from nas.study.config import SearchConfig
from nas.study.evolution import EvolutionSampler
from nas.study.fidelity import RUNG_ATTR, Halving, rung_epochs
from nas.study.objectives import OBJECTIVES, constraint_values, is_feasible, objective_values
from nas.study.pareto import trained_count
from nas.study.seeds import queue_seeds, resolve_budgets
from nas.study.static_check import StaticCheck
from search_spaces import get_space

log = logging.getLogger(__name__)

# A live worker beats every HEARTBEAT_S; one silent for GRACE_S is dead (the heartbeat is a thread, so long
# training steps never delay it). Environment overrides exist for tests and impatient users.
HEARTBEAT_S = int(os.environ.get("KWSNAS_HEARTBEAT_S", 20))
GRACE_S = int(os.environ.get("KWSNAS_GRACE_S", 90))
MAX_RETRY = 2  # a configuration that kills its worker twice more is given up (recorded as failed)
CONFIG_ATTR = "kwsnas_config"


def make_storage(url: str) -> optuna.storages.BaseStorage:
    """An Optuna storage with heartbeats for ``url`` (``sqlite:///...``, ``postgresql://...``, ``journal:PATH``)."""
    import sqlalchemy.exc

    with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna 5 but are what resume relies on
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        try:
            return _make_storage(url)
        except sqlalchemy.exc.SQLAlchemyError as e:  # unknown dialect, unreachable server, bad URL
            raise ValueError(f"cannot open the storage {url}: {str(e).splitlines()[0]}") from None


def _make_storage(url: str) -> optuna.storages.BaseStorage:
    retry = RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY)
    if url.startswith(("redis://", "rediss://")):
        try:
            from optuna.storages.journal import JournalRedisBackend

            return JournalStorage(JournalRedisBackend(url))  # no heartbeat: see `recover_abandoned`
        except ImportError:
            raise ValueError(f"{url}: a Redis journal needs the redis package (pip install 'kwsnas[redis]')") from None
    if url.startswith("journal:"):
        path = Path(url[len("journal:"):])
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))  # no heartbeat: see `recover_abandoned`
    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
        # a busy timeout instead of "database is locked" when workers write at once
        return RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 60}}, heartbeat_interval=HEARTBEAT_S,
                          grace_period=GRACE_S, heartbeat_stale_trial_callback=retry)
    return RDBStorage(url, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S, heartbeat_stale_trial_callback=retry)


def make_space(cfg: SearchConfig) -> Any:
    """The search space of a config, for the number of classes its data is trained on."""
    kwargs: dict[str, Any] = {"frontend": cfg.frontend} if cfg.frontend else {}
    if cfg.low_rank:
        kwargs["low_rank"] = True
    if cfg.attention:
        kwargs["attention"] = True
    return get_space(cfg.space, num_classes=cfg.label_protocol().num_classes,
                     tune_frontend=cfg.tune_frontend, **kwargs)


def make_sampler(cfg: SearchConfig, seed: int) -> optuna.samplers.BaseSampler:
    """The config's sampler: Optuna's by name, or `EvolutionSampler`; constraints reach every sampler
    through `trial.set_constraint`."""
    name = cfg.sampler
    if name == "evolution":
        check = StaticCheck.of(cfg)
        return EvolutionSampler(make_space(cfg), trial_fitness(cfg), check if cfg.static_filter else None,
                                seed=cfg.seed, floor=check.below_floor if check.floors else None)
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=16)  # small: searches here are short
    if name == "nsga3":
        return optuna.samplers.NSGAIIISampler(seed=seed, population_size=16)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise ValueError(f"unknown sampler {name!r}")


# A trial writes a checkpoint, two .tflite files and the C sources (under 5 MB for the largest presets);
# the feature cache is shared. 200 MB leaves room for dozens of trials and says "disk full" up front.
MIN_FREE_BYTES = int(os.environ.get("KWSNAS_MIN_FREE_MB", 200)) * 2**20


def preflight(cfg: SearchConfig) -> None:
    """Fail before any work when the study's folder cannot be written, its disk is (nearly) full, or the
    evaluator's tools (compiler, emulator) are missing."""
    import shutil

    run_dir = cfg.run_dir
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / f".write-test-{os.getpid()}"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as e:
        raise ValueError(f"cannot write the study folder {run_dir}: {e.strerror or e} "
                         "(choose another --name, or run from a writable directory)") from None
    if cfg.evaluator == "emulator":
        missing = emulation_missing()
        if missing:
            raise ValueError(f"the study measures on the emulator (evaluator = \"emulator\"), but {missing}")
    free = shutil.disk_usage(run_dir).free
    if free < MIN_FREE_BYTES:
        raise ValueError(f"only {free / 2**20:.0f} MB free on the disk of {run_dir}; a search needs at least "
                         f"{MIN_FREE_BYTES / 2**20:.0f} MB (free some space, or set KWSNAS_MIN_FREE_MB)")


class SearchStalled(RuntimeError):
    """Every recent trial failed: something is wrong beyond one candidate (toolchain, board, data)."""


MAX_CONSECUTIVE_FAILURES = 5  # one bad candidate is normal; five in a row is a broken setup, not bad luck


class StopOnFailures:
    """Optuna callback: stop this worker after `MAX_CONSECUTIVE_FAILURES` failed trials in a row."""

    def __init__(self, limit: int = MAX_CONSECUTIVE_FAILURES) -> None:
        self.limit, self.run, self.last_reason = limit, 0, ""

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if trial.state != TrialState.FAIL:
            self.run = 0
            return
        self.run += 1
        self.last_reason = trial.user_attrs.get("fail_reason", "no reason recorded")
        if self.run >= self.limit:
            study.stop()

    @property
    def stalled(self) -> bool:
        return self.run >= self.limit


def open_study(cfg: SearchConfig, storage: optuna.storages.BaseStorage | None = None) -> optuna.Study:
    """Create the study (or load it, checking it was made for the same objectives)."""
    preflight(cfg)
    storage = storage or make_storage(cfg.storage_url)
    study = optuna.create_study(study_name=cfg.name, storage=storage, load_if_exists=True,
                                directions=["minimize"] * len(cfg.objectives), sampler=make_sampler(cfg, cfg.seed))
    saved = study.user_attrs.get(CONFIG_ATTR)
    if saved is None:
        study.set_user_attr(CONFIG_ATTR, cfg.to_dict())
        study.set_metric_names(list(cfg.objectives))
    elif tuple(saved["objectives"]) != cfg.objectives:
        raise ValueError(f"study {cfg.name!r} exists with objectives {saved['objectives']}, not "
                         f"{list(cfg.objectives)}: pick another name or the same objectives")
    return study


def load_study(name: str, storage_url: str) -> tuple[optuna.Study, SearchConfig]:
    """An existing study and the config it was created with."""
    storage = make_storage(storage_url)
    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        raise ValueError(f"no study {name!r} in {storage_url}") from None
    saved = study.user_attrs.get(CONFIG_ATTR)
    if saved is None:
        raise ValueError(f"study {name!r} in {storage_url} was not made by nas search (no config stored)")
    cfg = SearchConfig.from_dict(saved)
    study.sampler = make_sampler(cfg, cfg.seed + os.getpid())  # workers differ (evolution seeds by trial number)
    return study, cfg


def recover_abandoned(study: optuna.Study) -> int:
    """Mark every RUNNING trial FAIL and enqueue its parameters again; returns how many. Only for a
    study no live worker is using (journal storages have no heartbeat; RDB storages do this themselves
    for trials whose heartbeat stopped)."""
    n = 0
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study._storage.set_trial_user_attr(t._trial_id, "fail_reason", "abandoned: its worker stopped")
        study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
        study.enqueue_trial(t.params, user_attrs={"retry_of": t.number}, skip_if_exists=False)
        n += 1
    return n


MAX_TOTAL_FACTOR = 10  # give up after 10x the target in measured trials: the budgets are (nearly) unreachable
MAX_REFUSED_FACTOR = 50  # ... or after 50x in trials the static check refused (each costs milliseconds)


def target_reached(study: optuna.Study, cfg: SearchConfig) -> bool:
    """``cfg.trials`` counts *trained* candidates, those stopped early by successive halving included
    (over-budget ones cost a measurement, not a training run); a study stops anyway after
    `MAX_TOTAL_FACTOR` x that many measured trials, or `MAX_REFUSED_FACTOR` x that many refused ones."""
    if cfg.trials is None:
        return False
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))  # one storage read
    refused = sum("static_reject" in t.user_attrs for t in done)
    return (trained_count(done) >= cfg.trials or len(done) - refused >= MAX_TOTAL_FACTOR * cfg.trials
            or refused >= MAX_REFUSED_FACTOR * cfg.trials)


class StopAtTarget:
    """Optuna callback: stop this worker once `target_reached` (other workers see it at their next trial)."""

    def __init__(self, cfg: SearchConfig) -> None:
        self.cfg = cfg

    def __call__(self, study: optuna.Study, trial) -> None:
        if target_reached(study, self.cfg):
            study.stop()


def trial_fitness(cfg: SearchConfig) -> Any:
    """The evolution sampler's view of a trial: for a trained trial within the budgets (by the figures of
    its untrained probe build, the build budgets from a reference are measured on), its objective
    values at each fidelity it reached (epochs -> values to minimise; the error from the best validation
    accuracy by each rung of successive halving, and from the int8 validation accuracy at the full
    budget), else None."""
    def fitness(t: FrozenTrial) -> dict[float, tuple[float, ...]] | None:
        a = t.user_attrs
        # within the budgets as admitted: by its probe's figures, as the budgets themselves were measured
        if not a.get("trained") or not is_feasible(cfg.budgets, {**a, **(a.get("probe") or {})}):
            return None
        costs = {o: float(a.get(OBJECTIVES[o], math.inf)) for o in cfg.objectives if o != "error"}
        out = {float(e): tuple(1.0 - acc if o == "error" else costs[o] for o in cfg.objectives)
               for e, acc in (a.get(RUNG_ATTR) or {}).items()}
        if t.state == TrialState.COMPLETE and t.values is not None:
            out[float(a.get("epochs_trained", 0.0))] = tuple(t.values)
        return out or None

    return fitness


def make_objective(cfg: SearchConfig, ctx) -> Any:
    """The Optuna objective: sample a spec, evaluate it hardware first (successive halving when the
    config asks), store every figure."""
    space = make_space(cfg)
    rungs = rung_epochs(cfg.train.min_epochs, cfg.train.epochs, cfg.train.reduction_factor)

    def objective(trial: optuna.Trial) -> list[float]:
        try:
            return _objective(trial)
        except optuna.TrialPruned:
            raise
        except Exception as e:  # recorded with the trial; Optuna marks it FAIL and the study goes on
            trial.set_user_attr("fail_reason", f"{type(e).__name__}: {e}"[:2000])
            raise
        finally:
            release_compiled()  # a worker lives for hundreds of candidates (see its docstring)

    def _objective(trial: optuna.Trial) -> list[float]:
        spec = space.sample(trial)
        trial.set_user_attr("spec", json.loads(spec.to_json()))
        trial.set_user_attr("spec_digest", spec.digest())
        out = cfg.run_dir / "trials" / f"{trial.number:05d}"
        halving = None

        def measured(fig: dict[str, Any]) -> None:
            nonlocal halving
            for key, value in fig.items():  # peers at a rung compare with these (several objectives)
                trial.set_user_attr(key, value)
            if rungs:
                halving = Halving(trial.study, trial, rungs, cfg.train.reduction_factor, cfg.objectives, fig)

        figures = candidate.evaluate_candidate(spec, ctx, trial.number, out, on_measured=measured,
                                     after_eval=lambda entry: halving is not None and halving(entry))
        for key, value in figures.items():
            trial.set_user_attr(key, value)
        if figures.get("stopped_at_epoch") is not None:
            raise optuna.TrialPruned(f"stopped at epoch {figures['stopped_at_epoch']:g} by successive halving")
        if not figures["trained"]:
            figures["error"] = 1.0  # never trained: the worst error, and the constraints say why
        for key in ("flash_bytes", "ram_bytes", "latency_ms"):
            if figures.get(key) is None:
                figures[key] = math.inf
        for key, value in constraint_values(cfg.budgets, figures).items():
            trial.set_constraint(key, value)
        return objective_values(cfg.objectives, figures)

    return objective


def start_search(cfg: SearchConfig, storage: optuna.storages.BaseStorage | None = None) -> tuple[
        SearchConfig, optuna.Study, Any, list[Any]]:
    """What the process that launches a search does once: check the machine, turn ``budget_from`` into
    budgets, create (or load) the study, recover a journal's abandoned trials, queue the seeds.

    Returns the config with its budgets resolved, the study, the search context it loaded (data and
    evaluator, for a worker in this process; None when nothing needed it) and the seed outcomes.
    """
    import dataclasses


    preflight(cfg)
    ctx = None
    if cfg.budget_from is not None or cfg.warm_start or cfg.seed_archs:
        ctx = SearchContext.load(cfg)

    def measure(spec: Any) -> dict[str, Any]:
        return hardware_figures(ctx.evaluator.measure(probe_tflite(spec, ctx.data), cfg.board))

    space = make_space(cfg)
    cfg = resolve_budgets(cfg, measure, space.num_classes)
    if ctx is not None:
        ctx = dataclasses.replace(ctx, cfg=cfg)
    study = open_study(cfg, storage)
    if cfg.storage_url.startswith("journal:") and storage is None:
        n = recover_abandoned(study)
        if n:
            log.info("%d trial(s) left running by a stopped search: marked failed and queued again", n)
    outcomes = queue_seeds(study, cfg, space, measure if ctx is not None else None)
    return cfg, study, ctx, outcomes


def run_worker(cfg: SearchConfig, study: optuna.Study, n_trials: int | None = None,
               callbacks: list | None = None, ctx: Any = None) -> None:
    """Run trials in this process until `target_reached` (or the time limit); ``ctx`` reuses the data
    and evaluator `start_search` loaded."""
    if target_reached(study, cfg):  # before loading any data: a finished study has nothing to do
        return
    preflight(cfg)
    if ctx is None:
        ctx = SearchContext.load(cfg)
    failures = StopOnFailures()
    cbs = [*(callbacks or []), StopAtTarget(cfg), failures]
    study.optimize(make_objective(cfg, ctx), n_trials=n_trials, timeout=cfg.time_limit_s, callbacks=cbs,
                   catch=(Exception,), gc_after_trial=True)
    if failures.stalled:
        raise SearchStalled(f"study {cfg.name!r}: {failures.limit} trials in a row failed, stopping; the last "
                            f"one: {failures.last_reason} (the failed trials are kept with their reasons: "
                            f"nas pareto --study {cfg.name} shows the rest)")


def spawn_workers(cfg: SearchConfig, n: int, new_session: bool = False) -> list[subprocess.Popen]:
    """``n`` single-threaded worker processes, pinned one per core where there are enough cores
    (``new_session``: each leads its own process group, so it can be stopped with its emulators)."""
    procs = []
    cores = os.cpu_count() or 1
    for i in range(n):
        cmd = [sys.executable, "-m", "nas.cli", "worker", "--study", cfg.name, "--storage", cfg.storage_url,
               "--threads", "1"]
        if n <= cores:
            cmd += ["--cpu", str(i)]
        procs.append(subprocess.Popen(cmd, stdin=subprocess.DEVNULL, start_new_session=new_session))
    return procs
