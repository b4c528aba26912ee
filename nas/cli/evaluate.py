"""``nas evaluate MODEL.tflite --data PATH``: accuracy of any KWS `.tflite` (overall, keywords only, per class)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from nas.cli.errors import UserError
from nas.data.layout import SPLIT_RULES


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="accuracy of a .tflite (ours or a published one) on a Speech Commands folder")
    p.add_argument("model", type=Path, help="a .tflite file (int8 or float32 input/output)")
    p.add_argument("--data", required=True, help="a Speech Commands-style folder, or 'default'")
    p.add_argument("--split", default="test", choices=("train", "validation", "test", "all"),
                   help="which split (default test; 'all' for the whole folder, e.g. the official test set)")
    p.add_argument("--split-rule", choices=SPLIT_RULES, help="default: official lists or the hash rule; "
                   "speaker-60-20-20 for the official test-set layout")
    p.add_argument("--features", metavar="PRESET", help="front end: hello-edge, hello-edge-dnn, mlperf-tiny, log-mel "
                   "or a FrontEndConfig .json; required for a model without kwsnas metadata, else overrides it")
    p.add_argument("--labels", help="the model's output order: l1,l2,... or 'arm' (_silence_,_unknown_,yes,...; "
                   "the default without metadata) or 'tfds' (down,go,...,yes,_silence_,_unknown_)")
    p.add_argument("--exact", action="store_true",
                   help="run the golden numpy reference (bit-exact with TFLM) instead of LiteRT")
    p.add_argument("--truncate", action="store_true",
                   help="int8 input: truncate toward zero instead of rounding (as MLPerf Tiny's evaluation does)")
    p.add_argument("--peak-normalize", action="store_true", help="divide each clip by its largest sample before "
                   "the features (MLPerf Tiny's normalisation; the mlperf-tiny preset has it already)")
    p.add_argument("--limit", type=int, metavar="N", help="evaluate a seeded random subset of N clips")
    p.add_argument("--seed", type=int, default=0, help="data seed: unknown/silence draw and --limit subset")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(handler=_evaluate)


def _evaluate(args: argparse.Namespace) -> int:
    from nas.cli.inspect import read_model_bytes
    from nas.export.evaluate_tflite import LABEL_ORDERS, EvaluationError, evaluate_tflite

    if args.limit is not None and args.limit <= 0:
        raise UserError("--limit must be positive")
    labels = None
    if args.labels is not None:
        labels = LABEL_ORDERS.get(args.labels.strip().lower()) or [w for w in args.labels.split(",") if w.strip()]
    model = read_model_bytes(args.model)
    try:
        result = evaluate_tflite(model, args.data, frontend=args.features, labels=labels, exact=args.exact,
                                 truncate=args.truncate, split=args.split, rule=args.split_rule, seed=args.seed,
                                 limit=args.limit, peak_normalize=args.peak_normalize)
    except EvaluationError as e:
        raise UserError(f"{args.model}: {e}") from None
    d = result.to_dict()
    print(json.dumps(d, indent=2) if args.json else render(d, str(args.model)))
    return 0


def render(d: dict[str, Any], name: str) -> str:
    def pct(x: float | None) -> str:
        return "n/a" if x is None else f"{100 * x:.2f} %"

    runner = ("golden reference (bit-exact with TFLM)" if d["runner"] == "reference"
              else "LiteRT (built-in kernels, XNNPACK off)")
    speed = f"{d['clips_per_s']:,.0f} clips/s" if d["clips_per_s"] else "n/a"
    lines = [
        f"model          {name}: input {d['input_shape']} {d['input_dtype']} ({d['input_rounding']})",
        f"data           {d['data']} ({d['split']} split, {d['count']} clips), "
        f"front end {d['frontend']} ({d['frontend_digest'][:8]})",
        f"labels         {','.join(d['model_labels'])} ({d['labels_source']})",
        f"runner         {runner}, {d['batch']} clip(s) per call, {d['wall_time_s']:.1f} s ({speed})",
        f"accuracy       {pct(d['accuracy'])} ({d['count']} clips)",
        f"keywords only  {pct(d['keywords_accuracy'])} ({d['keywords_count']} clips)",
        "per class      " + ", ".join(f"{k} {pct(v)}" for k, v in d["per_class"].items()),
    ]
    return "\n".join(lines)
