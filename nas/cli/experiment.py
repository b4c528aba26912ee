"""``nas experiment seed-frameworks``: the seed survey's framework comparison (see
`nas.experiments.seed_frameworks`), one command from data to ``table.md``, ``table.json`` and plots."""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from pathlib import Path
from typing import Any

from nas.data.layout import SPLIT_RULES

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("experiment", help="reproduce a paper's experiment (seed-frameworks, real-speech-search, seed-techniques)")
    verbs = p.add_subparsers(dest="experiment", metavar="EXPERIMENT", required=True)
    s = verbs.add_parser("seed-frameworks", help="DNN/CNN/DS-CNN/MicroNet S+L and an Edge Impulse-style model: "
                         "float32 vs int8 size and accuracy, and flash/RAM/latency on emulated Cortex-M4 and M7")
    s.add_argument("config", nargs="?", type=Path, help="an experiment .toml (default: built-in defaults; "
                   "experiments/seed/ has the default-corpus and real-speech ones)")
    s.add_argument("--data", help="a Speech Commands-style folder, or 'default'")
    s.add_argument("--split-rule", dest="split_rule", choices=SPLIT_RULES)
    s.add_argument("--noise", help="background-noise folder")
    s.add_argument("--board", action="append", dest="boards", metavar="NAME",
                   help="a board to measure on (repeatable; default: mps2-an386 and mps2-an500)")
    s.add_argument("--presets", help="comma list (default: the seed's eight models and ei-conv1d)")
    s.add_argument("--protocols", help="comma list of 10 and/or 12 (default both)")
    s.add_argument("--protocol", action="append", metavar="10|12|W1,W2,...",
                   help="a label protocol, your own word list included (repeatable; replaces --protocols)")
    s.add_argument("--epochs", type=int)
    s.add_argument("--time-s", dest="time_s", type=float, help="a wall-clock cap per model (a safety net; the "
                   "schedule follows --epochs)")
    s.add_argument("--seed", type=int)
    s.add_argument("--reference", action="append", default=[], metavar="MODEL.tflite[:FRONTEND]",
                   help="a third-party int8 KWS model to evaluate and measure alongside (repeatable)")
    s.add_argument("--out", type=Path, help="results folder (default: results/seed-frameworks-<data>)")
    s.set_defaults(handler=_seed_frameworks)

    r = verbs.add_parser("real-speech-search", help="can the search beat DS-CNN-S and MicroNet-KWS-S under their own "
                         "budgets? searches (and a control), picks and presets retrained with 3 seeds, verdicts")
    r.add_argument("config", nargs="?", type=Path, help="an experiment .toml (default: built-in defaults, the "
                   "same as experiments/search/real-speech.toml)")
    _final_setting_arguments(r)
    r.add_argument("--targets", help="comma list of presets whose budgets the search must beat them under")
    r.add_argument("--spaces", help="comma list: the space searched for each target")
    r.add_argument("--controls", help="comma list of targets that also get the previous default as a control "
                   "('' for none)")
    r.add_argument("--search-minutes", dest="search_minutes", type=float, help="wall-clock minutes per search")
    r.add_argument("--workers", type=int)
    r.add_argument("--search-epochs", dest="search_epochs", type=int)
    r.add_argument("--min-epochs", dest="min_epochs", type=int)
    r.add_argument("--control-epochs", dest="control_epochs", type=int)
    r.add_argument("--picks", type=int, help="best search trials per arm to retrain with every final seed")
    r.add_argument("--final-seeds", dest="final_seeds", help="comma list of training seeds (default 0,1,2)")
    r.add_argument("--final-epochs", dest="final_epochs", type=int)
    r.add_argument("--attention", action="store_true", default=None,
                   help="the search arm's space also offers a squeeze-and-excitation gate per block and attention "
                   "pooling (ds-cnn and micronet)")
    r.add_argument("--budget-floor", action="append", dest="budget_floor", metavar="KEY=SHARE",
                   help="the search arm proposes only candidates the static estimates put at this share of the "
                   "target's budget or more, e.g. latency_ms=0.6 (repeatable)")
    r.add_argument("--selection", choices=("validation", "cross-validation"),
                   help="how an arm's pick is chosen among its finalists: mean validation accuracy of the final "
                   "trainings, or accuracy pooled over the speaker folds of train + validation (3 more trainings "
                   "per finalist)")
    r.add_argument("--name", help="study name prefix (folders under runs/)")
    r.add_argument("--out", type=Path, help="results folder (default: results/<name>)")
    r.set_defaults(handler=_real_speech_search)

    t = verbs.add_parser("seed-techniques", help="the seed survey's techniques as options, on real speech: "
                         "knowledge distillation (students trained plain and distilled, 3 seeds, paired verdict), "
                         "low-rank layers and squeeze-and-excitation against their base networks")
    t.add_argument("config", nargs="?", type=Path, help="an experiment .toml (default: built-in defaults, the "
                   "same as experiments/seed/seed-techniques.toml)")
    _final_setting_arguments(t)
    t.add_argument("--teachers", help="comma list of presets or spec .json files, trained first")
    t.add_argument("--students", help="comma list of presets or spec .json files")
    t.add_argument("--seeds", help="comma list of training seeds (default 0,1,2)")
    t.add_argument("--variants", help="comma list of BASE+se / BASE+attnpool / BASE+rank=F, each trained beside "
                   "its base (\"\": none; default: ds-cnn-s+se, ds-cnn-s+attnpool, and DS-CNN-M, DNN-L at ranks 1/4 "
                   "and 1/8)")
    t.add_argument("--few-shot-words", dest="few_shot_words", type=int,
                   help="words to enrol in the few-shot rows (default 12; 0: none)")
    t.add_argument("--few-shot-base", dest="few_shot_base", help="the few-shot base model (default ds-cnn-l)")
    t.add_argument("--few-shot-draws", dest="few_shot_draws", type=int, help="enrolments per word and k (default 10)")
    t.add_argument("--epochs", type=int)
    t.add_argument("--workers", type=int)
    t.add_argument("--out", type=Path, help="results folder (default: results/<name>)")
    t.set_defaults(handler=_seed_techniques)


def _final_setting_arguments(p: argparse.ArgumentParser) -> None:
    """The options of `nas.experiments.retrain.FinalSetting` (what every final training shares)."""
    p.add_argument("--data")
    p.add_argument("--split-rule", dest="split_rule", choices=SPLIT_RULES)
    p.add_argument("--noise", help="background-noise folder ('' for none)")
    p.add_argument("--protocol", help="12 (standard), 10 (keywords only) or your words w1,w2,... (default 12)")
    p.add_argument("--board")
    p.add_argument("--evaluator", choices=("emulator", "analytic", "serial"))


def _final_setting(args: argparse.Namespace) -> dict[str, Any]:
    return {k: getattr(args, k) for k in ("data", "split_rule", "noise", "protocol", "board", "evaluator")}


def _split(text: str | None) -> tuple[str, ...] | None:
    return None if text is None else tuple(t.strip() for t in text.split(",") if t.strip())


def _seed_frameworks(args: argparse.Namespace) -> int:
    from nas import runtime

    runtime.ensure_fast_allocator()
    from nas.runtime import quiet_optuna

    quiet_optuna(args.verbose)  # also silences JAX's fork warning at every gcc/QEMU launch
    from nas.experiments.seed_frameworks import load_seed_config, run_seed_frameworks, write_outputs

    for ref in args.reference:
        if not Path(ref).is_file() and not Path(ref.rpartition(":")[0]).is_file():
            raise FileNotFoundError(f"--reference {ref}: no such .tflite file")
    cfg = load_seed_config(args.config, data=args.data, split_rule=args.split_rule, noise=args.noise,
                           boards=args.boards, presets=_split(args.presets), protocols=tuple(args.protocol) if args.protocol else _split(args.protocols),
                           epochs=args.epochs, time_s=args.time_s, seed=args.seed,
                           references=tuple(args.reference) or None)
    out = args.out or Path("results") / f"seed-frameworks-{Path(cfg.data).name}"
    command = _command_line("nas experiment seed-frameworks " + (str(args.config) if args.config else ""))
    result = run_seed_frameworks(cfg, out, progress=lambda msg: log.info("%s", msg))
    paths = write_outputs(result, out, command.strip())
    print((out / "table.md").read_text())
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0


def _command_line(default: str) -> str:
    return "nas " + shlex.join(sys.argv[1:]) if sys.argv and sys.argv[0].endswith("nas") else default


def _seed_techniques(args: argparse.Namespace) -> int:
    from nas import runtime

    runtime.ensure_fast_allocator()
    from nas.experiments.seed_techniques import load_techniques_config, run_seed_techniques, write_outputs

    seeds = _split(args.seeds)
    cfg = load_techniques_config(args.config, **_final_setting(args), teachers=_split(args.teachers), students=_split(args.students),
                                 seeds=None if seeds is None else tuple(int(s) for s in seeds), epochs=args.epochs,
                                 variants=None if args.variants is None else tuple(_split(args.variants) or ()),
                                 few_shot_words=args.few_shot_words, few_shot_base=args.few_shot_base,
                                 few_shot_draws=args.few_shot_draws,
                                 workers=args.workers)
    out = args.out or Path("results") / cfg.name
    result = run_seed_techniques(cfg, out)
    write_outputs(result, out, _command_line("nas experiment seed-techniques"))
    print((out / "table.md").read_text())
    return 0


def _real_speech_search(args: argparse.Namespace) -> int:
    from nas import runtime

    runtime.ensure_fast_allocator()
    from nas.runtime import quiet_optuna

    quiet_optuna(args.verbose)
    from nas.cli.search import key_numbers
    from nas.experiments.real_speech_report import write_outputs
    from nas.experiments.real_speech_search import load_real_search_config, run_real_speech_search

    seeds = _split(args.final_seeds)
    cfg = load_real_search_config(args.config, **_final_setting(args), targets=_split(args.targets),
                                  spaces=_split(args.spaces), controls=_split(args.controls),
                                  search_minutes=args.search_minutes, workers=args.workers,
                                  search_epochs=args.search_epochs, min_epochs=args.min_epochs,
                                  control_epochs=args.control_epochs, picks=args.picks,
                                  final_seeds=None if seeds is None else tuple(int(s) for s in seeds),
                                  final_epochs=args.final_epochs, selection=args.selection, attention=args.attention,
                                  budget_floor=key_numbers(args.budget_floor or [], "--budget-floor"), name=args.name)
    out = args.out or Path("results") / cfg.name
    result = run_real_speech_search(cfg, out)
    write_outputs(result, out, _command_line("nas experiment real-speech-search"))
    print((out / "table.md").read_text())
    return 0
