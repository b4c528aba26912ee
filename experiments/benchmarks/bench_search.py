"""Search efficiency and trial cost: hypervolume after N trials for TPE (Optuna's default), NSGA-II and
random search, several seeds each, on the default corpus and a board.

    .venv/bin/python experiments/benchmarks/bench_search.py [--trials 50] [--seeds 0 1 2] \
        [--samplers tpe nsga2 random] [--evaluator emulator] [--epochs 2] [--fraction 0.5]

Every study is a real `nas search` (same code path: hardware first, budgets as constraints, training,
PTQ, measurement), stored under ``runs/bench-search/``. Hypervolume uses the objectives normalised by
the reference point of `nas.study.pareto.reference_point` (budgets where set). Prints the table of
final hypervolumes, the trial at which each sampler first reaches random search's mean 50-trial
hypervolume (target for the default sampler: <= 25), and wall time per trial / trials per hour.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from nas import runtime  # noqa: E402


def main() -> None:
    runtime.ensure_fast_allocator()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=50)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--samplers", nargs="+", default=["tpe", "nsga2", "random"])
    p.add_argument("--evaluator", default="emulator")
    p.add_argument("--board", default="mps2-an386")
    p.add_argument("--space", default="ds-cnn")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--fraction", type=float, default=0.5)
    args = p.parse_args()

    from nas.cli.search import quiet_optuna
    from nas.study.config import load_config
    from nas.study.pareto import hypervolume_history
    from nas.study.runner import open_study, run_worker

    quiet_optuna()
    results: dict[str, list[list[tuple[int, float]]]] = {}
    times: dict[str, list[float]] = {}
    for sampler in args.samplers:
        for seed in args.seeds:
            cfg = load_config(REPO / "experiments/search/quick.toml", name=f"bench-search-{sampler}-s{seed}",
                              sampler=sampler, seed=seed, trials=args.trials, evaluator=args.evaluator,
                              board=args.board, space=args.space, train_epochs=args.epochs,
                              train_fraction=args.fraction, storage=None)
            study = open_study(cfg)
            t0 = time.perf_counter()
            run_worker(cfg, study)
            elapsed = time.perf_counter() - t0
            hist = hypervolume_history(study, cfg)
            # one hypervolume per completed trial index (carry the last value over untrained trials)
            numbers = sorted(t.number for t in study.trials if t.state.name == "COMPLETE")
            by_number, curve, hv = dict(hist), [], 0.0
            for n in numbers:
                hv = by_number.get(n, hv)
                curve.append((len(curve) + 1, hv))
            results.setdefault(sampler, []).append(curve)
            times.setdefault(sampler, []).append(elapsed / max(len(numbers), 1))
            print(f"{sampler:>7} seed {seed}: hypervolume {curve[-1][1] if curve else 0:.4f} after {len(curve)} "
                  f"trials, {elapsed / max(len(numbers), 1):.1f} s/trial", flush=True)

    def final(c):
        return c[-1][1] if c else 0.0

    target = statistics.mean(final(c) for c in results.get("random", [])) if "random" in results else None
    print("\nsampler   final HV (mean ± sd over seeds)   trials to reach random's final HV   s/trial   trials/h")
    for sampler, curves in results.items():
        finals = [final(c) for c in curves]
        reach = []
        for c in curves:
            hit = next((k for k, hv in c if target is not None and hv >= target), None)
            reach.append(hit)
        sd = statistics.stdev(finals) if len(finals) > 1 else 0.0
        mean_s = statistics.mean(times[sampler])
        print(f"{sampler:>7}   {statistics.mean(finals):.4f} ± {sd:.4f}                    "
              f"{reach}   {mean_s:7.1f}   {3600 / mean_s:7.0f}")
    if target is not None and "tpe" in results:
        hits = [next((k for k, hv in c if hv >= target), None) for c in results["tpe"]]
        ok = all(h is not None and h <= 25 for h in hits)
        print(f"target (TPE reaches random's {args.trials}-trial hypervolume in <= 25 trials): "
              f"{'PASS' if ok else 'MISS'} {hits}")


if __name__ == "__main__":
    main()
