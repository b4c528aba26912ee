"""``nas enroll``: a new keyword added to a trained model from a handful of recordings (`nas.train.enroll`)."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

from nas.cli.errors import UserError

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("enroll", help="add a keyword to a trained model from a few recordings of it (few-shot)")
    p.add_argument("checkpoint", type=Path, help="a checkpoint directory (nas train, nas export)")
    p.add_argument("--word", required=True, help="the new keyword's label")
    p.add_argument("--clips", required=True, type=Path, help="a folder of its recordings (.wav; 5-10 is typical)")
    p.add_argument("--data", help="the model's training data (default: what its checkpoint names): its training "
                   "clips are the negatives the new word is fitted against and calibrate the int8 model")
    p.add_argument("--no-negatives", dest="negatives", action="store_false",
                   help="imprint the word's mean embedding without fitting it against the model's words (accepts "
                   "far more of them: see nas/train/enroll.py)")
    p.add_argument("--board", help="measure the int8 model on this board (e.g. mps2-an386) and check it bit-exact")
    p.add_argument("--evaluator", default="emulator", help="emulator (default), analytic or serial")
    p.add_argument("--out", type=Path, help="output folder (default runs/enroll/NAME-WORD): checkpoint/, export/")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(handler=_enroll)


def _enroll(args: argparse.Namespace) -> int:
    from nas.export.quantize import calibration_features, export_model_int8
    from nas.train import load_checkpoint
    from nas.train.checkpoint import CheckpointError
    from nas.train.data import prepare_from_source, prepare_train_data
    from nas.train.enroll import EnrollError, clip_features, embed, enroll

    try:
        model, spec, meta = load_checkpoint(args.checkpoint)
    except CheckpointError as e:
        raise UserError(str(e)) from None
    metrics = meta.get("metrics") or {}
    if not args.clips.is_dir():
        raise UserError(f"--clips {args.clips}: not a folder of recordings")
    paths = sorted(p for p in args.clips.iterdir() if p.suffix.lower() == ".wav")
    if not paths:
        raise UserError(f"--clips {args.clips}: no .wav files in it")
    if "data" in metrics:  # --data replaces the folder only: the labels, seed and split rule stay the model's
        data = prepare_from_source({**metrics["data"], **({"data": args.data} if args.data else {})})
    elif args.data is not None:
        data = prepare_train_data(args.data, "12")
    else:
        raise UserError(f"{args.checkpoint}: does not say which data it was trained on; pass --data")
    labels = tuple(metrics.get("labels", data.labels))
    if labels != tuple(data.labels):
        raise UserError(f"{args.checkpoint}: trained for labels {list(labels)}, the data has {list(data.labels)}")
    fe = spec.frontend
    try:
        clips = clip_features(paths, fe)
        negatives = (embed(model, data.features("train", fe)), data.train.labels) if args.negatives else None
        enrolled = enroll(model, spec, labels, args.word, clips, negatives)
    except EnrollError as e:
        raise UserError(str(e)) from None
    out = args.out or Path("runs") / "enroll" / f"{spec.name}-{args.word}"
    enrolled.save(out / "checkpoint", {"enrolled_from": str(args.checkpoint), "enrolled_clips": [str(p) for p in paths]})
    tflite = export_model_int8(enrolled.model, enrolled.spec, enrolled.labels, calibration_features(data, fe),
                               out / "export", {"enrolled_shots": enrolled.shots})
    result: dict[str, Any] = {"word": args.word, "shots": len(paths), "labels": list(enrolled.labels),
                              "checkpoint": str(out / "checkpoint"), "tflite": str(out / "export" / "model_int8.tflite"),
                              "tflite_bytes": len(tflite)}
    if args.board:
        from hardware.evaluators import get_evaluator
        from nas.study.candidate import hardware_figures

        fig = hardware_figures(get_evaluator(args.evaluator, args.board).measure(tflite, args.board))
        result.update({k: fig[k] for k in ("board", "flash_bytes", "ram_bytes", "latency_ms", "output_match")})
        if fig["output_match"] is False:
            raise UserError(f"{args.board}: the board's int8 outputs differ from the golden reference")
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"enrolled {args.word!r} from {len(paths)} clip(s) into {spec.name}: labels {', '.join(enrolled.labels)}")
        print(f"checkpoint {result['checkpoint']}, int8 model {result['tflite']} ({len(tflite):,} bytes)")
        if args.board:
            print(f"{args.board}: flash {result['flash_bytes']:,} B, RAM {result['ram_bytes']:,} B, latency "
                  f"{result['latency_ms']:.1f} ms, outputs bit-exact: {result['output_match']}")
    return 0
