"""``nas quantize CHECKPOINT --out DIR``: int8 and float32 `.tflite`, C array, sizes, arena and accuracy."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from nas.cli.errors import UserError
from nas.data.layout import SPLIT_RULES


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("quantize", help="int8-quantize a trained checkpoint and export .tflite + C")
    p.add_argument("checkpoint", type=Path, help="a checkpoint directory written by nas train")
    p.add_argument("--out", type=Path, help="output directory (default: CHECKPOINT/export)")
    p.add_argument("--data", help="calibration/evaluation data (default: the data the checkpoint was trained on)")
    p.add_argument("--split-rule", choices=SPLIT_RULES, help="with --data: how to split it")
    p.add_argument("--noise", type=Path, help="with --data: background-noise folder (used by --qat-epochs)")
    p.add_argument("--protocol", default="12", help="with --data: label protocol (default 12)")
    p.add_argument("--calib-clips", type=int, default=300, help="training clips for calibration (default 300)")
    p.add_argument("--qat-epochs", type=int, default=0,
                   help="quantization-aware fine-tuning epochs before quantizing (default 0: PTQ only)")
    p.add_argument("--seed", type=int, default=0, help="calibration subset and QAT seed")
    p.add_argument("--no-arena", action="store_true", help="skip the TFLM arena measurement")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(handler=_quantize)


def _quantize(args: argparse.Namespace) -> int:
    from nas import runtime

    runtime.ensure_fast_allocator()
    from nas.export.quantize import quantize_checkpoint
    from nas.train import prepare_train_data

    if args.calib_clips <= 0 or args.qat_epochs < 0:
        raise UserError("--calib-clips must be positive and --qat-epochs non-negative")
    if not args.checkpoint.is_dir():
        raise UserError(f"{args.checkpoint}: not a checkpoint directory")
    data = None
    if args.data is not None:
        data = prepare_train_data(args.data, args.protocol, rule=args.split_rule, noise_dir=args.noise)
    out = args.out or args.checkpoint / "export"
    report = quantize_checkpoint(args.checkpoint, out, data, calibration_clips=args.calib_clips,
                                 qat_epochs=args.qat_epochs, seed=args.seed, measure_arena=not args.no_arena)
    d = report.to_dict()
    print(json.dumps(d, indent=2) if args.json else render(d))
    return 0


def render(r: dict[str, Any]) -> str:
    def pct(x: float | None) -> str:
        return "n/a" if x is None else f"{100 * x:.2f} %"

    arena = "not measured" if r["arena_bytes"] is None else f"{r['arena_bytes']:,} B"
    method = f"QAT {r['qat_epochs']} epochs + PTQ" if r["qat_epochs"] else "post-training quantization"
    return "\n".join([
        f"architecture     {r['spec_name']} ({r['spec_digest']})",
        f"quantization     {method}, {r['calibration_clips']} calibration clips, per-channel weights",
        f"int8 .tflite     {r['int8_tflite_bytes']:,} B (weights {r['weight_bytes']:,} B + biases {r['bias_bytes']:,} B)",
        f"float32 .tflite  {r['float32_tflite_bytes']:,} B  (int8 is {r['size_reduction_percent']:.1f} % smaller)",
        f"TFLM arena       {arena}",
        f"accuracy         validation float {pct(r['float_val_accuracy'])} -> int8 {pct(r['int8_val_accuracy'])}",
        f"                 test       float {pct(r['float_test_accuracy'])} -> int8 {pct(r['int8_test_accuracy'])}",
        f"files            {r['out_dir']}/model_int8.tflite, model_float32.tflite, model_data.c/.h, quantize.json",
        f"time             {r['time_s']:.1f} s",
    ])
