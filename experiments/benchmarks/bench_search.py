"""Search efficiency and trial cost: hypervolume after N trials for TPE (Optuna's default), NSGA-II and
random search, several seeds each, on the default corpus and a board.

    .venv/bin/python experiments/benchmarks/bench_search.py [--trials 50] [--seeds 0 1 2] \
        [--samplers tpe nsga2 random] [--evaluator emulator] [--epochs 2] [--fraction 0.5] [--parallel 2]

Every study is a real search (same code path as `nas search`: hardware first, budgets as constraints,
training, PTQ, measurement), stored under ``runs/bench-search-<sampler>-s<seed>/`` and resumed if the
benchmark is run again. Studies run ``--parallel`` at a time, one single-threaded process each.

A *trial* here is one sampled candidate, whether trained or rejected for its budgets after measurement:
that is what a sampler spends. All studies share one reference point (budgets for flash and RAM, error 1,
and 1.1 x the worst latency any study measured), so their hypervolumes are comparable. Prints each
study's hypervolume after N trials, the trial at which each sampler first reaches random search's mean
N-trial hypervolume (target for the default sampler: <= 25 of 50), and the wall time per trial
(measurement, training, rest) with trials per hour.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from nas import runtime  # noqa: E402


def _config(args: argparse.Namespace, sampler: str, seed: int):
    from nas.study.config import load_config

    # trials=10**6: the stop condition here is the number of *sampled* trials, not of trained ones.
    # static_filter off: every sampled candidate is measured, as when these figures were first taken, so the
    # samplers are compared on what they propose (warm starts are `nas search`'s, not run_worker's: none here)
    return load_config(REPO / "experiments/search/quick.toml", name=f"bench-search-{sampler}-s{seed}",
                       sampler=sampler, seed=seed, trials=10**6, evaluator=args.evaluator, board=args.board,
                       space=args.space, train_epochs=args.epochs, train_fraction=args.fraction,
                       storage=None, static_filter=False)


def _completed(study) -> list:
    return sorted(study.get_trials(deepcopy=False, states=(_complete(),)), key=lambda t: t.number)


def _complete():
    from optuna.trial import TrialState

    return TrialState.COMPLETE


def run_one(args: argparse.Namespace, sampler: str, seed: int) -> None:
    """One study until it has ``args.trials`` completed trials (resumes a partial one)."""
    from nas.runtime import quiet_optuna
    from nas.study.runner import open_study, recover_abandoned, run_worker

    quiet_optuna()
    cfg = _config(args, sampler, seed)
    study = open_study(cfg)
    recover_abandoned(study)  # a benchmark killed earlier: its RUNNING trial is retried
    t0 = time.perf_counter()
    while (left := args.trials - len(_completed(study))) > 0:
        run_worker(cfg, study, n_trials=left)
    print(f"{sampler:>7} seed {seed}: {args.trials} trials in {time.perf_counter() - t0:.0f} s", flush=True)


def run_all(args: argparse.Namespace) -> None:
    """The (sampler, seed) grid, ``args.parallel`` studies at a time, each a single-threaded process."""
    grid = [(s, seed) for seed in args.seeds for s in args.samplers]  # seed by seed: partial runs compare
    passthrough = ["--trials", str(args.trials), "--evaluator", args.evaluator, "--board", args.board,
                   "--space", args.space, "--epochs", str(args.epochs), "--fraction", str(args.fraction)]
    env = {**os.environ, "XLA_FLAGS": f"{os.environ.get('XLA_FLAGS', '')} --xla_cpu_multi_thread_eigen=false"}
    running: list[subprocess.Popen] = []
    t0 = time.perf_counter()
    for sampler, seed in grid:
        while sum(p.poll() is None for p in running) >= args.parallel:
            time.sleep(2)
        cmd = [sys.executable, __file__, "--one", sampler, str(seed), *passthrough]
        running.append(subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL))
    failed = [p.args for p in running if p.wait() != 0]
    if failed:
        raise SystemExit(f"studies failed: {failed}")
    print(f"all {len(grid)} studies done in {(time.perf_counter() - t0) / 60:.1f} min "
          f"({args.parallel} at a time)", flush=True)


def report(args: argparse.Namespace) -> None:
    import numpy as np

    from nas.runtime import quiet_optuna
    from nas.study.pareto import hypervolume, hypervolume_reference, usable_trials
    from nas.study.runner import open_study

    quiet_optuna()
    studies = {}
    for seed in args.seeds:
        for sampler in args.samplers:
            cfg = _config(args, sampler, seed)
            if (cfg.run_dir / "study.db").is_file():
                studies[sampler, seed] = (cfg, open_study(cfg))
    values = _values_now(studies, args) if args.remeasure else {
        (key, t.number): tuple(t.values) for key, (cfg, st) in studies.items() for t in usable_trials(st, cfg)}
    if not values:
        raise SystemExit("no usable trial in any study")
    cfg0 = next(iter(studies.values()))[0]
    ref = hypervolume_reference(cfg0, np.array(list(values.values())).max(axis=0))
    print("shared reference point: " + ", ".join(f"{n} {v:.4g}" for n, v in zip(cfg0.objectives, ref, strict=True)))

    curves: dict[str, list[list[float]]] = {}
    cost: dict[str, list[tuple[float, float, float]]] = {}
    for (sampler, seed), (_cfg, st) in studies.items():
        done = _completed(st)[: args.trials]
        if len(done) < args.trials:
            print(f"{sampler:>7} seed {seed}: only {len(done)} of {args.trials} trials (incomplete; left out)")
            continue
        ok = {n for (key, n) in values if key == (sampler, seed)}
        curve, pts = [], []
        for t in done:
            if t.number in ok:
                pts.append(np.array(values[(sampler, seed), t.number]) / ref)
            curve.append(hypervolume(np.array(pts), np.ones(len(ref))) if pts else 0.0)
        curves.setdefault(sampler, []).append(curve)
        for t in done:
            total = (t.datetime_complete - t.datetime_start).total_seconds()
            probe, train = t.user_attrs.get("probe_s", 0.0), t.user_attrs.get("train_time_s", 0.0)
            cost.setdefault(sampler, []).append((probe, train, total - probe - train))
        n_trained = sum(t.number in ok for t in done)
        print(f"{sampler:>7} seed {seed}: HV {curve[-1] if curve else 0:.4f} after {len(done)} trials "
              f"({n_trained} trained within budget)")

    if not curves:
        print("no study has all its trials yet")
        return
    n = args.trials
    target = statistics.mean(c[-1] for c in curves["random"]) if "random" in curves else None
    print(f"\nsampler   HV after {n} (mean ± sd)   HV after {n // 2}   trials to reach random's {n}-trial HV")
    for sampler, cs in curves.items():
        finals = [c[-1] for c in cs]
        halves = [c[min(n // 2, len(c)) - 1] for c in cs]
        reach = [next((k + 1 for k, hv in enumerate(c) if target is not None and hv >= target), None) for c in cs]
        sd = statistics.stdev(finals) if len(finals) > 1 else 0.0
        print(f"{sampler:>7}   {statistics.mean(finals):.4f} ± {sd:.4f}        {statistics.mean(halves):.4f}"
              f"        {reach}")
    print(f"\nwall time per trial ({args.parallel} studies at a time on {os.cpu_count()} cores, "
          f"single-threaded each): measurement / training / quantize+re-measure+rest, s")
    all_costs = [c for cs in cost.values() for c in cs]
    for sampler, cs in [*cost.items(), ("all", all_costs)]:
        m = [statistics.mean(x[i] for x in cs) for i in range(3)]
        per = sum(m)
        print(f"{sampler:>7}   {m[0]:5.1f} / {m[1]:5.1f} / {m[2]:5.1f}   = {per:5.1f} s/trial -> "
              f"{3600 / per * args.parallel:5.0f} trials/h on the machine")
    if target is not None and "tpe" in curves:
        hits = [next((k + 1 for k, hv in enumerate(c) if hv >= target), None) for c in curves["tpe"]]
        ok = all(h is not None and h <= n // 2 for h in hits)
        print(f"target (TPE reaches random's mean {n}-trial hypervolume in <= {n // 2} trials), every seed: "
              f"{'PASS' if ok else 'MISS'} {hits}")
        mean_curve = np.mean(np.array(curves["tpe"]), axis=0)
        hit = next((k + 1 for k, hv in enumerate(mean_curve) if hv >= target), None)
        print(f"target, TPE's mean curve over seeds: {'PASS' if hit is not None and hit <= n // 2 else 'MISS'} "
              f"(trial {hit})")


def _values_now(studies: dict, args: argparse.Namespace) -> dict:
    """Every trained trial's objectives with flash, RAM and latency measured again by today's code generator
    and evaluator (cached by model digest), so studies that ran while the kernels changed are judged alike."""
    from hardware.boards import get_board
    from hardware.evaluators import AnalyticEvaluator, EmulatorEvaluator
    from nas.study.candidate import hardware_figures
    from nas.study.objectives import is_feasible, objective_values

    evaluator = EmulatorEvaluator(cache=True) if args.evaluator == "emulator" else AnalyticEvaluator()
    board = get_board(args.board)
    out, changed = {}, 0
    for key, (cfg, st) in studies.items():
        for t in _completed(st)[: args.trials]:
            path = t.user_attrs.get("tflite")
            if not t.user_attrs.get("trained") or not path or not Path(path).is_file():
                continue
            fig = {**t.user_attrs, **hardware_figures(evaluator.measure(Path(path).read_bytes(), board))}
            changed += fig["latency_ms"] != t.user_attrs.get("latency_ms")
            if is_feasible(cfg.budgets, fig):
                out[key, t.number] = tuple(objective_values(cfg.objectives, fig))
    print(f"re-measured {len(out)} trained trials within budget with today's kernels ({changed} changed)")
    return out


def main() -> None:
    runtime.ensure_fast_allocator()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=50)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--samplers", nargs="+", default=["tpe", "random", "nsga2"])
    p.add_argument("--evaluator", default="emulator")
    p.add_argument("--board", default="mps2-an386")
    p.add_argument("--space", default="ds-cnn")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--fraction", type=float, default=0.5)
    p.add_argument("--parallel", type=int, default=2, help="studies at a time (one process each)")
    p.add_argument("--report-only", action="store_true", help="only print the figures of existing studies")
    p.add_argument("--remeasure", action="store_true", help="judge every trained trial by flash/RAM/latency "
                   "measured again now (studies run under different code-generator versions)")
    p.add_argument("--one", nargs=2, metavar=("SAMPLER", "SEED"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        run_one(args, args.one[0], int(args.one[1]))
        return
    if not args.report_only:
        run_all(args)
    report(args)


if __name__ == "__main__":
    main()
