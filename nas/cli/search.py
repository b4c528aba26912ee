"""``nas search`` (run a study with N local workers), ``nas worker`` (join one), ``nas pareto`` (its front)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from nas.cli.errors import UserError
from nas.data.layout import SPLIT_RULES
from nas.runtime import quiet_optuna
from nas.study.config import SAMPLERS

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("search", help="architecture search (Optuna) on a board: the best model that fits it, "
                       "or the trade-offs between accuracy, flash, RAM and latency")
    p.add_argument("config", nargs="?", type=Path, help="an experiment .toml (default: the built-in defaults)")
    p.add_argument("--name", help="study name (folder under runs/)")
    p.add_argument("--space", help="search space: ds-cnn, micronet, dnn, cnn")
    p.add_argument("--data", help="a Speech Commands-style folder, or 'default'")
    p.add_argument("--split-rule", dest="split_rule", choices=SPLIT_RULES)
    p.add_argument("--noise")
    p.add_argument("--protocol", help="12 (standard), 10 (keywords only) or your words w1,w2,... (default 12)")
    p.add_argument("--board", help="board name (nas boards)")
    p.add_argument("--evaluator", choices=("emulator", "analytic", "serial"))
    p.add_argument("--port", help="pyserial URL of a real board (--evaluator serial)")
    p.add_argument("--flash", metavar="TOOL", help="real boards: flash each candidate with 'pyocd' or a command "
                   "with {elf}/{bin}/{hex} (run without a shell)")
    p.add_argument("--objectives", help="comma list of error, flash_bytes, ram_bytes, latency, macs, params")
    p.add_argument("--budget", action="append", default=[], metavar="KEY=VALUE",
                   help="hard budget, e.g. flash_bytes=262144, ram_bytes=65536, latency_ms=50 (repeatable)")
    p.add_argument("--budget-from", dest="budget_from", metavar="PRESET|SPEC.json|board",
                   help="budgets = a reference model's measured flash, RAM and latency on the board (or the "
                   "board's own flash and RAM); --budget values win")
    p.add_argument("--budget-floor", action="append", default=[], dest="budget_floor", metavar="KEY=SHARE",
                   help="evolution sampler: propose only candidates the static estimates put at this share of a "
                   "budget or more, e.g. latency_ms=0.6 (repeatable; seeds are exempt)")
    p.add_argument("--sampler", choices=SAMPLERS, help="tpe (default), evolution (aging evolution with "
                   "architecture morphisms, for budgeted searches), nsga2, nsga3, gp, random")
    p.add_argument("--seed-arch", action="append", dest="seed_archs", metavar="PRESET|SPEC.json",
                   help="queue this architecture as one of the first trials (repeatable)")
    p.add_argument("--low-rank", dest="low_rank", action="store_true", default=None,
                   help="search a rank per 1x1 convolution / dense layer too (full, 1/4, 1/8; ds-cnn and dnn)")
    p.add_argument("--attention", dest="attention", action="store_true", default=None,
                   help="search a squeeze-and-excitation gate per DS block and the pooling head (average or "
                   "attention) too (ds-cnn and micronet)")
    p.add_argument("--no-warm-start", dest="warm_start", action="store_false", default=None,
                   help="do not queue the space's presets that fit the budgets as the first trials")
    p.add_argument("--no-scale-seeds", dest="scale_seeds", action="store_false", default=None,
                   help="queue the seeds as they are, without their copies widened or narrowed to the budgets")
    p.add_argument("--no-static-filter", dest="static_filter", action="store_false", default=None,
                   help="measure every candidate, even those the static estimates put over a budget")
    p.add_argument("--trials", type=int, help="trained candidates to reach (over-budget ones are measured, not "
                   "trained, and do not count; the search stops at 10x this many in any case)")
    p.add_argument("--time-limit", type=float, dest="time_limit_s", metavar="S")
    p.add_argument("--workers", type=int, help="local worker processes (default 1)")
    p.add_argument("--seed", type=int)
    p.add_argument("--storage", help="Optuna storage URL (default sqlite:///runs/NAME/study.db; postgresql://...; "
                   "journal:PATH; redis://HOST:PORT)")
    p.add_argument("--epochs", type=int, dest="train_epochs", help="training epochs per trial (the full budget)")
    p.add_argument("--min-epochs", type=int, dest="train_min_epochs", metavar="N",
                   help="successive halving: every candidate trains N epochs, the best third go on to 3N, ... "
                   "up to --epochs")
    p.add_argument("--train-time", type=float, dest="train_time_s", metavar="S",
                   help="a wall-clock cap per trial (a safety net; the schedule follows --epochs)")
    p.add_argument("--fraction", type=float, dest="train_fraction", help="fraction of the training split")
    p.add_argument("--teacher", action="append", dest="train_teachers", metavar="CKPT",
                   help="distil every trial from this trained checkpoint (repeatable: an ensemble)")
    p.add_argument("--json", action="store_true", help="print the final front as JSON")
    p.set_defaults(handler=_search)

    w = sub.add_parser("worker", help="join a running study from another process or machine")
    w.add_argument("--study", required=True)
    w.add_argument("--storage", required=True, help="the study's storage URL")
    w.add_argument("--threads", type=int, help="XLA compute threads (1 for one worker per core)")
    w.add_argument("--cpu", type=int, help="pin to this core")
    w.set_defaults(handler=_worker)

    pa = sub.add_parser("pareto", help="the Pareto-optimal trials of a study")
    pa.add_argument("--study", required=True, help="study name (or runs/NAME)")
    pa.add_argument("--storage", help="storage URL (default sqlite:///runs/NAME/study.db)")
    pa.add_argument("--json", action="store_true")
    pa.set_defaults(handler=_pareto)

    pl = sub.add_parser("plot", help="Pareto fronts (PNG + HTML) and hypervolume history of a study")
    pl.add_argument("--study", required=True)
    pl.add_argument("--storage", help="storage URL (default sqlite:///runs/NAME/study.db)")
    pl.add_argument("--out", type=Path, help="output folder (default runs/NAME/plots)")
    pl.add_argument("--reference", action="append", default=[], metavar="MODEL.tflite",
                    help="draw a .tflite (evaluated on the study's data, measured on its board) as a labelled point")
    pl.add_argument("--presets", help="comma list of presets to train and measure like the trials and draw "
                    "(e.g. ds-cnn-s,micronet-kws-s; cached under runs/NAME/references)")
    pl.set_defaults(handler=_plot)

    e = sub.add_parser("export", help="export a search winner: .tflite, C, checkpoint, re-measured, REPORT.md")
    e.add_argument("--study", required=True)
    e.add_argument("--storage", help="storage URL (default sqlite:///runs/NAME/study.db)")
    pick = e.add_mutually_exclusive_group(required=True)
    pick.add_argument("--trial", type=int, help="a trial number")
    pick.add_argument("--pick", help='e.g. "max accuracy where flash_kb<=64 and ram_kb<=32"')
    e.add_argument("--retrain-epochs", type=int, help="retrain the pick this many epochs first (trials are short)")
    e.add_argument("--out", type=Path, required=True)
    e.add_argument("--json", action="store_true")
    e.set_defaults(handler=_export)

    d = sub.add_parser("dashboard", help="optuna-dashboard for a study, on 127.0.0.1")
    d.add_argument("--study", required=True)
    d.add_argument("--storage", help="storage URL (default sqlite:///runs/NAME/study.db)")
    d.add_argument("--port", type=int, default=8080)
    d.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1: this machine only)")
    d.set_defaults(handler=_dashboard)


def key_numbers(items: list[str], flag: str = "--budget") -> dict[str, float] | None:
    """``KEY=NUMBER`` items of a repeatable flag as a dict (None when there are none); a malformed one is a
    UserError naming the flag."""
    if not items:
        return None
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        try:
            out[key.strip()] = float(value)
        except ValueError:
            example = "latency_ms=0.6" if flag == "--budget-floor" else "flash_bytes=262144"
            raise UserError(f"{flag} {item!r}: expected KEY=NUMBER, e.g. {example}") from None
        if not sep:
            raise UserError(f"{flag} {item!r}: expected KEY=NUMBER")
    return out


def config_from_args(args: argparse.Namespace) -> Any:
    from nas.study.config import load_config

    objectives = None if args.objectives is None else tuple(o.strip() for o in args.objectives.split(",") if o.strip())
    return load_config(args.config, name=args.name, space=args.space, data=args.data, split_rule=args.split_rule,
                       protocol=args.protocol, noise=args.noise, board=args.board, evaluator=args.evaluator, port=args.port, flash=args.flash,
                       objectives=objectives, budgets=key_numbers(args.budget), budget_from=args.budget_from,
                       budget_floor=key_numbers(args.budget_floor, "--budget-floor"),
                       sampler=args.sampler, seed_archs=tuple(args.seed_archs) if args.seed_archs else None,
                       warm_start=args.warm_start, scale_seeds=args.scale_seeds, static_filter=args.static_filter, low_rank=args.low_rank, attention=args.attention,
                       trials=args.trials, time_limit_s=args.time_limit_s, workers=args.workers, seed=args.seed,
                       storage=args.storage, train_epochs=args.train_epochs, train_time_s=args.train_time_s,
                       train_fraction=args.train_fraction, train_min_epochs=args.train_min_epochs,
                       train_teachers=args.train_teachers)


def _search(args: argparse.Namespace) -> int:
    from nas import runtime

    runtime.ensure_fast_allocator()
    quiet_optuna(args.verbose)
    cfg = config_from_args(args)
    from nas.study.runner import run_worker, spawn_workers, start_search

    cfg, study, ctx, _ = start_search(cfg)
    log.info("study %s in %s: %s, objectives %s, budgets %s, sampler %s", cfg.name, cfg.storage_url, cfg.space,
             ", ".join(cfg.objectives), cfg.budgets or "none", cfg.sampler)
    from nas.study.runner import SearchStalled, target_reached

    with _Progress(study, cfg, sys.stderr if args.json else None) as progress:
        if cfg.workers == 1:
            try:
                run_worker(cfg, study, callbacks=[lambda s, t: progress.update()], ctx=ctx)
            except SearchStalled as e:
                raise UserError(str(e)) from None
        else:
            procs = spawn_workers(cfg, cfg.workers)
            try:
                while any(p.poll() is None for p in procs):
                    progress.update()
                    time.sleep(2.0)
            except KeyboardInterrupt:
                for p in procs:
                    p.terminate()
                raise
            failed = [p.returncode for p in procs if p.returncode != 0]
            if failed and cfg.time_limit_s is None and not target_reached(study, cfg):
                raise UserError(f"{len(failed)} of {cfg.workers} workers stopped with an error (see above) "
                                f"before the target; run the same command again to resume")
    return _print_front(study, cfg, args.json)


def _worker(args: argparse.Namespace) -> int:
    from nas import runtime

    runtime.ensure_fast_allocator()
    runtime.configure_threads(args.threads, args.cpu)
    quiet_optuna(args.verbose)
    from nas.study.runner import SearchStalled, load_study, run_worker

    study, cfg = load_study(args.study, args.storage)
    try:
        run_worker(cfg, study)
    except SearchStalled as e:
        raise UserError(str(e)) from None
    return 0


def _open(args: argparse.Namespace) -> tuple[Any, Any]:
    quiet_optuna(args.verbose)
    from nas.study.runner import load_study

    name = Path(args.study).name
    storage = args.storage or f"sqlite:///{Path('runs') / name / 'study.db'}"
    if storage.startswith("sqlite:///") and not Path(storage[len("sqlite:///"):]).is_file():
        raise UserError(f"no study database at {storage[len('sqlite:///'):]} (pass --storage)")
    return load_study(name, storage)


def _pareto(args: argparse.Namespace) -> int:
    study, cfg = _open(args)
    return _print_front(study, cfg, args.json)


def _plot(args: argparse.Namespace) -> int:
    from nas.study.plots import plot_data, write_plots

    study, cfg = _open(args)
    refs = [reference_point(Path(p), cfg) for p in args.reference]
    if args.presets:
        from nas.study.references import preset_references

        refs += preset_references(cfg, [n.strip() for n in args.presets.split(",") if n.strip()])
    files = write_plots(plot_data(study, cfg, refs), args.out or cfg.run_dir / "plots")
    for f in files:
        print(f)
    return 0


def reference_point(path: Path, cfg: Any) -> Any:
    """A `.tflite` as a labelled point: accuracy on the study's data (validation split), hardware on its board."""
    from nas.export.evaluate_tflite import evaluate_tflite
    from nas.study.candidate import hardware_figures, make_evaluator
    from nas.study.plots import ReferencePoint

    data = path.read_bytes()
    ev = evaluate_tflite(data, cfg.data, split="validation", rule=cfg.split_rule, seed=cfg.seed)
    m = make_evaluator(cfg).measure(data, cfg.board)
    fig = hardware_figures(m)
    fig.update(error=1.0 - ev.report.accuracy, int8_val_accuracy=ev.report.accuracy)
    try:
        from hardware import read_tflite

        g = read_tflite(data, allow_float=True)
        fig.update(macs=g.macs(), params=g.param_count())
    except ValueError:
        pass
    generic = path.stem in ("model", "model_int8", "model_float32")  # nas quantize's names: the folder says more
    return ReferencePoint(path.parent.name if generic else path.stem, fig)


def _export(args: argparse.Namespace) -> int:
    from nas import runtime

    runtime.ensure_fast_allocator()
    from nas.study.winner import export_trial, pick_trial

    study, cfg = _open(args)
    trial = pick_trial(study, cfg, trial=args.trial, pick=args.pick)
    report = export_trial(study, cfg, trial, args.out, retrain_epochs=args.retrain_epochs,
                          epoch_stream=sys.stderr if args.json else None)
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    else:
        print((args.out / "REPORT.md").read_text())
    return 0


def _dashboard(args: argparse.Namespace) -> int:
    _, cfg = _open(args)
    from optuna_dashboard import run_server

    storage = args.storage or f"sqlite:///{Path('runs') / Path(args.study).name / 'study.db'}"
    print(f"optuna-dashboard for {cfg.name} on http://{args.host}:{args.port} (Ctrl-C to stop)")
    run_server(storage, host=args.host, port=args.port)
    return 0


def _print_front(study, cfg, as_json: bool) -> int:
    from nas.study.pareto import pareto_front, render_front, study_summary

    rows = pareto_front(study, cfg)
    summary = study_summary(study, cfg)
    if as_json:
        print(json.dumps({"summary": summary, "front": [r.to_dict() for r in rows]}, indent=2, default=str))
    else:
        print(f"study {cfg.name}: {summary['complete']} complete ({summary['trained']} trained, "
              f"{summary['feasible']} within budgets), {summary['failed']} failed; Pareto front "
              f"{summary['pareto_size']}, hypervolume {summary['hypervolume']:.4f}")
        print(render_front(rows, cfg))
    return 0


class _Progress:
    """On a terminal, a tqdm bar over trained candidates with the feasible count, front size and hypervolume;
    elsewhere (a log file, CI, nohup), one line per finished trial (`nas.progress`)."""

    def __init__(self, study, cfg, stream=None) -> None:
        self.study, self.cfg, self.bar, self.lines, self.seen = study, cfg, None, None, set()
        self.stream = stream  # where the lines go: stdout, or stderr when stdout carries --json

    def __enter__(self) -> _Progress:
        from nas.progress import LineLog, on_terminal
        from nas.study.pareto import trained_count

        if on_terminal():
            from tqdm import tqdm

            self.bar = tqdm(total=self.cfg.trials, unit="trained", desc=f"search {self.cfg.name}")
        else:
            trials = self.study.get_trials(deepcopy=False)
            self.seen = {t.number for t in trials if t.state.is_finished()}  # resumed: report only what is new
            self.lines = LineLog(self.cfg.trials, self.cfg.time_limit_s, trained_count(trials), self.stream)
        self.update()
        return self

    def update(self) -> None:
        if self.bar is not None:
            from nas.study.pareto import study_summary

            s = study_summary(self.study, self.cfg)
            self.bar.n = s["trained"]  # the target counts trained candidates
            self.bar.set_postfix(tried=s["complete"], pareto=s["pareto_size"], hv=f"{s['hypervolume']:.3f}",
                                 failed=s["failed"])
            return
        from nas.progress import trial_line
        from nas.study.pareto import trained_count

        trials = self.study.get_trials(deepcopy=False)  # one storage read; no hypervolume for a log line
        trained = trained_count(trials)
        for t in trials:
            if t.state.is_finished() and t.number not in self.seen:
                self.seen.add(t.number)
                self.lines.say(trial_line(t), trained, "trained")

    def __exit__(self, *exc) -> None:
        self.update()
        if self.bar is not None:
            self.bar.close()
