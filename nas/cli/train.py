"""``nas train``: train one architecture, keep the best checkpoint by validation accuracy, print metrics."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from nas.cli.errors import UserError
from nas.data.layout import SPLIT_RULES

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train one architecture (a preset name or a spec.json)")
    p.add_argument("--arch", required=True, help="a preset name (search_spaces.presets) or a spec .json file")
    p.add_argument("--se", action="store_true", help="add a squeeze-and-excitation gate to every depthwise-"
                   "separable block (a quarter of its channels wide; the spec in the checkpoint records it)")
    p.add_argument("--attention-pool", dest="attention_pool", action="store_true",
                   help="pool the last feature map with learned attention weights (a softmax over time and "
                   "frequency) instead of averaging it")
    _training_arguments(p)
    p.set_defaults(handler=_train)

    c = sub.add_parser("compress", help="low-rank compression of a trained checkpoint: SVD of its 1x1 "
                       "convolutions and dense layers, then fine-tuning")
    c.add_argument("checkpoint", type=Path, help="a checkpoint directory (nas train, nas export)")
    c.add_argument("--rank-fraction", type=float, required=True, metavar="F",
                   help="each layer's rank as this fraction of min(inputs, outputs), in (0, 1)")
    _training_arguments(c)
    c.set_defaults(handler=_compress)


def _training_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="a Speech Commands-style folder, or 'default'")
    p.add_argument("--noise", type=Path, help="background-noise folder (default: DATA/_background_noise_; "
                   "the official test-set layout has none: e.g. ../shared/data/background_noise)")
    p.add_argument("--split-rule", choices=SPLIT_RULES, help="default: official lists or the hash rule; "
                   "speaker-60-20-20 for the official test-set layout")
    p.add_argument("--protocol", default="12", help="12 (standard), 10 (keywords only) or w1,w2,... (default 12)")
    p.add_argument("--epochs", type=int, help="epoch budget (default 30 when no budget is given)")
    p.add_argument("--steps", type=int, help="step budget")
    p.add_argument("--time", type=float, metavar="S", help="a wall-clock cap in seconds: a safety net that can only "
                   "stop the run early (the schedule follows --epochs/--steps, so results stay reproducible)")
    p.add_argument("--fraction", type=float, default=1.0, help="train on this seeded fraction of the training split")
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--lr", type=float, help="peak learning rate (default 5e-3)")
    p.add_argument("--teacher", action="append", dest="teachers", metavar="CKPT",
                   help="knowledge distillation from this trained checkpoint on the same labels (repeatable: the "
                   "teachers' softened outputs are averaged)")
    p.add_argument("--distill-temperature", type=float, metavar="T", help="softening temperature (default 4)")
    p.add_argument("--distill-weight", type=float, metavar="W",
                   help="weight of the distillation term, 0..1 (default 0.5; the label loss gets 1 - W)")
    p.add_argument("--seed", type=int, default=0, help="training seed (weights, batches, augmentation)")
    p.add_argument("--threads", type=int, help="XLA compute threads (1: single-threaded; default: all cores)")
    p.add_argument("--out", type=Path, help="checkpoint directory (default runs/train/NAME-DIGEST-sSEED)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def resolve_arch(arch: str) -> Any:
    """An `ArchSpec` from a ``.json`` path or a preset name."""
    from search_spaces.spec import ArchSpec

    path = Path(arch).expanduser()
    if arch.endswith(".json") or path.is_file():
        try:
            return ArchSpec.from_json(path.read_text())
        except FileNotFoundError:
            raise UserError(f"{path}: no such spec file") from None
    try:
        from search_spaces.presets import get_preset
    except ImportError:
        raise UserError(f"unknown architecture {arch!r} (no presets available; pass a spec .json)") from None
    try:
        return get_preset(arch)
    except (KeyError, ValueError) as e:
        raise UserError(f"unknown architecture {arch!r}: {e}") from None


def config_from_args(args: argparse.Namespace) -> Any:
    from nas.train import TrainConfig

    changes: dict[str, Any] = {"batch_size": args.batch_size, "train_fraction": args.fraction, "seed": args.seed}
    if args.epochs is not None or args.steps is not None:
        changes.update(epochs=args.epochs, max_steps=args.steps)
    if args.time is not None:
        changes["time_budget_s"] = args.time
    if args.lr is not None:
        changes["peak_lr"] = args.lr
    if args.teachers:
        for teacher in args.teachers:
            if not (Path(teacher) / "checkpoint.json").is_file():
                raise UserError(f"--teacher {teacher}: not a checkpoint directory (no checkpoint.json)")
        changes["teachers"] = tuple(args.teachers)
    if args.distill_temperature is not None:
        changes["distill_temperature"] = args.distill_temperature
    if args.distill_weight is not None:
        changes["distill_weight"] = args.distill_weight
    return TrainConfig(**changes)


def _start_runtime(args: argparse.Namespace) -> None:
    from nas import runtime

    runtime.ensure_fast_allocator()  # re-executes once; before JAX starts
    if args.threads is not None:
        runtime.configure_threads(args.threads)


def _train(args: argparse.Namespace) -> int:
    _start_runtime(args)
    from nas.train import prepare_train_data

    cfg = config_from_args(args)
    data = prepare_train_data(args.data, args.protocol, rule=args.split_rule, noise_dir=args.noise)
    spec = resolve_arch(args.arch).with_classes(data.num_classes)
    from search_spaces.base import attention_pooled_spec, gated_spec

    for flag, on, change in (("--se", args.se, gated_spec), ("--attention-pool", args.attention_pool,
                                                               attention_pooled_spec)):
        if on:
            try:
                spec = change(spec)
            except ValueError as e:
                raise UserError(f"{flag}: {e}") from None
    return _run_training(args, spec, data, cfg)


def _compress(args: argparse.Namespace) -> int:
    _start_runtime(args)
    from nas.train import load_checkpoint, prepare_train_data
    from nas.train.compress import factorize, low_rank_spec
    from search_spaces.estimate import estimate

    cfg = config_from_args(args)
    model, spec, _ = load_checkpoint(args.checkpoint)
    data = prepare_train_data(args.data, args.protocol, rule=args.split_rule, noise_dir=args.noise)
    low = low_rank_spec(spec, args.rank_fraction)
    before, after = estimate(spec), estimate(low)
    print(f"{spec.name}: parameters {before.params:,} -> {after.params:,}, MACs {before.macs:,} -> {after.macs:,}",
          file=sys.stderr)
    return _run_training(args, low, data, cfg, initial=factorize(model, low))


def _run_training(args: argparse.Namespace, spec: Any, data: Any, cfg: Any, initial: Any = None) -> int:
    from tqdm import tqdm

    from nas.train import TrainingDiverged, train

    out = args.out or Path("runs") / "train" / f"{spec.name}-{spec.digest()[:8]}-s{args.seed}"
    with tqdm(total=0, unit="step", desc=f"training {spec.name}", leave=False, disable=None) as bar:
        def progress(p: Any) -> None:
            bar.total = p.total_steps
            bar.update(p.step + 1 - bar.n)
            best = "" if p.best_val_accuracy is None else f"{p.best_val_accuracy:.3f}"
            bar.set_postfix(loss=f"{p.loss:.3f}", best_val=best, refresh=False)

        from nas.progress import epoch_lines, on_terminal

        lines = None if on_terminal() else epoch_lines(f"training {spec.name}", cfg.epochs,
                                                       sys.stderr if args.json else None)
        try:
            result = train(spec, data, cfg, out_dir=out, progress=progress, after_eval=lines, initial=initial)
        except TrainingDiverged as e:
            log.error("error: %s", e)
            return 1
    print(json.dumps(result.to_dict(), indent=2) if args.json else render_result(result.to_dict()))
    return 0


def render_result(r: dict[str, Any]) -> str:
    def pct(x: float | None) -> str:
        return "n/a" if x is None else f"{100 * x:.2f} %"

    lines = [
        f"architecture   {r['spec_name']} ({r['spec_digest']})",
        f"validation     {pct(r['val_accuracy'])} (best, at step {r['best_step']})",
        f"test           {pct(r['test_accuracy'])}",
        f"steps          {r['steps']} ({r['epochs']:.1f} epochs), stopped by {r['stop_reason']}",
        f"time           {r['wall_time_s']:.1f} s ({r['compile_time_s']:.1f} s first step), "
        f"{r['samples_per_s']:.0f} samples/s",
    ]
    if r["test"] is not None:
        per_class = r["test"]["per_class"]
        lines.append("test per class " + ", ".join(f"{k} {pct(v)}" for k, v in per_class.items()))
    lines.append(f"checkpoint     {r['checkpoint_dir']}")
    return "\n".join(lines)
