"""``nas experiment seed-techniques``: the seed survey's techniques as options, measured on real speech.

Measured: **knowledge distillation**, **low-rank layers** and **squeeze-and-excitation attention**; few-shot
keywords are not implemented yet.

1. the teachers (presets, e.g. DS-CNN-L) are trained with the final recipe (`nas.experiments.retrain`);
2. every student (a preset or a spec file) is trained with each seed twice under the same recipe: plain,
   and distilled from the teachers' averaged softened outputs (`nas.train.distill`);
3. each model is quantized (PTQ) and measured on the board; the table gives the mean int8 test accuracy
   over the seeds, the paired bootstrap 95 % interval of the distilled - plain difference (same seeds,
   same test clips), the training cost per step of distillation, and flash/RAM/latency (equal for the
   two: distillation changes the weights, not the network);
4. every *variant* (``"PRESET+se"``: a gate in every DS block; ``"PRESET+rank=F"``: every 1x1 convolution and
   body dense layer at rank F of min(in, out)) and its base preset are trained from scratch alike with each
   seed; the table gives both accuracies, the paired interval of the difference, and both networks' flash,
   RAM, latency and executed instructions on the board.

Every training is a cached `FinalJob`: a stopped run resumes where it was, and independent trainings run
two at a time.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nas.config_files import build, read_settings, tuples
from nas.experiments.retrain import FinalJob, FinalSetting, none_for_empty, run_final_jobs
from nas.study.compare import paired_bootstrap
from search_spaces import ArchSpec
from search_spaces.base import gated_spec
from search_spaces.presets import load_spec


@dataclass(frozen=True)
class TechniquesConfig(FinalSetting):
    name: str = "seed-techniques"
    teachers: tuple[str, ...] = ("ds-cnn-l",)  # presets or spec .json files, trained first (seed teacher_seed)
    teacher_seed: int = 0
    students: tuple[str, ...] = ("ds-cnn-s", "experiments/seed/ds-cnn-s-search-pick.json")
    seeds: tuple[int, ...] = (0, 1, 2)
    epochs: int = 40  # the real-speech experiments' final recipe
    distill_temperature: float = 4.0
    distill_weight: float = 0.5
    # architecture options against their base network, each trained from scratch: "BASE+se", "BASE+rank=F"
    variants: tuple[str, ...] = ("ds-cnn-s+se", "ds-cnn-m+rank=0.25", "ds-cnn-m+rank=0.125", "dnn-l+rank=0.25",
                                 "dnn-l+rank=0.125")
    workers: int = 2

    def __post_init__(self) -> None:
        if not self.teachers or not self.students or not self.seeds:
            raise ValueError("teachers, students and seeds must not be empty")
        for model in (*self.teachers, *self.students):
            load_spec(model)  # a preset name or a spec file: refused here, naming it, before any training
        for variant in self.variants:
            variant_specs(variant)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def load_techniques_config(path: Path | str | None = None, **overrides: Any) -> TechniquesConfig:
    d = none_for_empty(read_settings(path, overrides))
    return build(TechniquesConfig, tuples(d, ("teachers", "students", "seeds", "variants")), path)


def variant_specs(variant: str) -> tuple[ArchSpec, ArchSpec, str]:
    """(base, variant, the option in words) of ``"BASE+se"`` or ``"BASE+rank=F"``; `ValueError` naming it."""
    from nas.train.compress import low_rank_spec

    base_name, plus, option = variant.partition("+")
    try:
        base = load_spec(base_name)
        if plus and option == "se":
            return base, gated_spec(base), "squeeze-and-excitation in every block"
        if plus and option.startswith("rank="):
            fraction = float(option[5:])
            return base, low_rank_spec(base, fraction), f"low rank, {fraction:g} of min(in, out)"
    except ValueError as e:
        raise ValueError(f"variant {variant!r}: {e}") from None
    raise ValueError(f"variant {variant!r}: expected BASE+se or BASE+rank=F (F in (0, 1))")


@dataclass
class TechniquesResult:
    config: TechniquesConfig
    teachers: dict[str, dict[str, Any]] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)
    variants: list[dict[str, Any]] = field(default_factory=list)
    wall_time_s: float = 0.0


def _summary(figs: list[dict[str, Any]]) -> dict[str, Any]:
    tests = [f["int8_test_accuracy"] for f in figs]
    return {
        "int8_test_mean": statistics.mean(tests), "int8_test_sd": statistics.stdev(tests) if len(tests) > 1 else 0.0,
        "int8_test_by_seed": tests, "int8_val_mean": statistics.mean(f["int8_val_accuracy"] for f in figs),
        "seconds_per_step": statistics.mean(f["train_time_s"] / max(f["steps"], 1) for f in figs),
        **{k: figs[0].get(k) for k in ("flash_bytes", "ram_bytes", "latency_ms", "instructions", "macs", "params")},
    }


def run_seed_techniques(cfg: TechniquesConfig, out_dir: Path) -> TechniquesResult:
    t0 = time.perf_counter()
    result = TechniquesResult(cfg)
    setting = cfg.setting()
    teacher_jobs = [FinalJob(f"teacher-{spec.name}", spec.to_json(), cfg.teacher_seed, cfg.epochs,
                             str(out_dir / "models" / f"teacher-{spec.name}"), setting)
                    for spec in map(load_spec, cfg.teachers)]
    figs = run_final_jobs(teacher_jobs, cfg.workers)
    for job in teacher_jobs:
        result.teachers[job.name] = {"checkpoint": str(Path(job.folder) / "checkpoint"),
                                     **_summary([figs[job.name, job.seed]])}
    distill = {"teachers": [str(Path(j.folder) / "checkpoint") for j in teacher_jobs],
               "distill_temperature": cfg.distill_temperature, "distill_weight": cfg.distill_weight}
    jobs = []
    students = [load_spec(student) for student in cfg.students]
    for spec in students:
        for seed in cfg.seeds:
            jobs.append(FinalJob(spec.name, spec.to_json(), seed, cfg.epochs,
                                 str(out_dir / "models" / f"{spec.name}-s{seed}"), setting))
            jobs.append(FinalJob(f"{spec.name}+kd", spec.to_json(), seed, cfg.epochs,
                                 str(out_dir / "models" / f"{spec.name}-kd-s{seed}"), setting, distill))
    variants = [variant_specs(v) for v in cfg.variants]
    for base, variant, _ in variants:
        for spec in (base, variant):
            for seed in cfg.seeds:
                jobs.append(FinalJob(spec.name, spec.to_json(), seed, cfg.epochs,
                                     str(out_dir / "models" / f"{spec.name}-s{seed}"), setting))
    jobs = list({(j.name, j.seed): j for j in jobs}.values())  # a base that is also a student trains once
    figs = run_final_jobs(jobs, cfg.workers)
    for (base, variant, option), ref in zip(variants, cfg.variants, strict=True):
        plain = [figs[base.name, s] for s in cfg.seeds]
        changed = [figs[variant.name, s] for s in cfg.seeds]
        diff = paired_bootstrap(np.array([f["test_correct"] for f in changed]),
                                np.array([f["test_correct"] for f in plain]))
        result.variants.append({"variant": ref, "option": option, "base": _summary(plain), "changed": _summary(changed),
                                "difference_points": diff.mean_points,
                                "interval_points": [diff.low_points, diff.high_points]})
    for name in (spec.name for spec in students):
        plain = [figs[name, s] for s in cfg.seeds]
        distilled = [figs[f"{name}+kd", s] for s in cfg.seeds]
        diff = paired_bootstrap(np.array([f["test_correct"] for f in distilled]),
                                np.array([f["test_correct"] for f in plain]))
        a, b = _summary(plain), _summary(distilled)
        result.rows.append({"student": name, "plain": a, "distilled": b,
                            "difference_points": diff.mean_points, "interval_points": [diff.low_points, diff.high_points],
                            "step_cost_ratio": b["seconds_per_step"] / a["seconds_per_step"]})
    result.wall_time_s = time.perf_counter() - t0
    return result


def _pct(x: float) -> str:
    return f"{100 * x:.2f}"


def render_markdown(result: TechniquesResult, command: str) -> str:
    cfg = result.config
    teachers = ", ".join(f"{name} ({_pct(t['int8_test_mean'])} % int8 test)" for name, t in result.teachers.items())
    lines = [
        "# The seed survey's techniques on real speech",
        "",
        f"Command: `{command}`  ",
        f"Data: `{cfg.data}` ({cfg.split_rule}, protocol {cfg.protocol}); test figures on the held-out test speakers "
        f"only. Every model: {cfg.epochs} epochs, seeds {', '.join(map(str, cfg.seeds))}, PTQ int8, measured on "
        f"{cfg.board} ({cfg.evaluator}). Wall time of this invocation {result.wall_time_s / 60:.1f} min.",
        "",
        "Measured: knowledge distillation, low-rank layers and squeeze-and-excitation attention (few-shot keywords "
        "are not built yet).",
        "",
        "## Knowledge distillation",
        "",
        f"Teachers: {teachers}; temperature {cfg.distill_temperature}, weight {cfg.distill_weight} "
        "(loss = (1 - w) label loss + w T² KL(teacher ‖ student)), the teachers in inference mode on the same "
        "augmented batch.",
        "",
        "| student | plain: int8 test % (mean ± sd; by seed) | distilled: int8 test % | difference, points "
        "(paired bootstrap 95 %) | training time per step, distilled / plain | flash B | RAM B | latency ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in result.rows:
        p, d = r["plain"], r["distilled"]
        lines.append(
            f"| {r['student']} | {_pct(p['int8_test_mean'])} ± {_pct(p['int8_test_sd'])} "
            f"({', '.join(_pct(x) for x in p['int8_test_by_seed'])}) | {_pct(d['int8_test_mean'])} ± "
            f"{_pct(d['int8_test_sd'])} ({', '.join(_pct(x) for x in d['int8_test_by_seed'])}) | "
            f"{r['difference_points']:+.2f} ({r['interval_points'][0]:+.2f} .. {r['interval_points'][1]:+.2f}) | "
            f"{r['step_cost_ratio']:.2f}× | {p['flash_bytes']:,} | {p['ram_bytes']:,} | {p['latency_ms']:.1f} |")
    if result.variants:
        lines += [
            "",
            "## Low-rank layers and attention",
            "",
            "Each variant and its base trained from scratch alike (same seeds, epochs and recipe); instructions are "
            "the board's executed instructions per inference.",
            "",
            "| variant | option | base: int8 test % (mean ± sd) | variant: int8 test % | difference, points (paired "
            "bootstrap 95 %) | flash B | RAM B | latency ms | instructions | params |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in result.variants:
            b, c = r["base"], r["changed"]

            def pair(key: str, fmt: str = "{:,}", b: dict = b, c: dict = c) -> str:
                return f"{fmt.format(b[key])} → {fmt.format(c[key])}" if b[key] is not None else "—"

            lines.append(
                f"| {r['variant']} | {r['option']} | {_pct(b['int8_test_mean'])} ± {_pct(b['int8_test_sd'])} | "
                f"{_pct(c['int8_test_mean'])} ± {_pct(c['int8_test_sd'])} | {r['difference_points']:+.2f} "
                f"({r['interval_points'][0]:+.2f} .. {r['interval_points'][1]:+.2f}) | {pair('flash_bytes')} | "
                f"{pair('ram_bytes')} | {pair('latency_ms', '{:.1f}')} | {pair('instructions')} | {pair('params')} |")
    return "\n".join(lines) + "\n"


def write_outputs(result: TechniquesResult, out_dir: Path, command: str) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    md, js = out_dir / "table.md", out_dir / "table.json"
    md.write_text(render_markdown(result, command))
    js.write_text(json.dumps({"command": command, "config": result.config.to_dict(), "teachers": result.teachers,
                              "rows": result.rows, "variants": result.variants, "wall_time_s": result.wall_time_s}, indent=2, default=str) + "\n")
    return [md, js]
