"""Benchmark: synthesise the built-in default corpus into a temp dir and report its size and speed.

    .venv/bin/python experiments/benchmarks/bench_corpus.py [--workers 2] [--speakers 80] [--keep DIR]

Prints clips, speakers per split, MB written, seconds and clips/s (wall time, noise files included).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a checkout without installing

from nas.data.synth import SynthConfig, synthesize_corpus  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = SynthConfig()
    parser.add_argument("--seed", type=int, default=default.seed)
    parser.add_argument("--speakers", type=int, default=default.speakers)
    parser.add_argument("--workers", type=int, default=default.workers)
    parser.add_argument("--repeat", type=int, default=1, help="runs; the best is reported")
    parser.add_argument("--keep", type=Path, help="write the corpus here (kept) instead of a temp dir")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    config = dataclasses.replace(default, seed=args.seed, speakers=args.speakers, workers=args.workers)

    best = None
    for _ in range(args.repeat):
        tmp = Path(tempfile.mkdtemp(prefix="bench-corpus-"))
        try:
            out = args.keep if args.keep is not None else tmp / "corpus"
            report = synthesize_corpus(out, config, overwrite=args.keep is not None)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        if best is None or report.seconds < best.seconds:
            best = report
    speakers = ", ".join(f"{k} {v}" for k, v in best.speakers.items())
    print(f"clips      {best.clips}")
    print(f"speakers   {sum(best.speakers.values())} ({speakers})")
    print(f"words      {len(config.words)} x {config.repetitions} repetitions")
    print(f"MB         {best.bytes_written / 1e6:.1f}")
    print(f"seconds    {best.seconds:.2f}  (workers {config.workers}, best of {args.repeat})")
    print(f"clips/s    {best.clips / best.seconds:.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
