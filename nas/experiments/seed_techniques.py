"""``nas experiment seed-techniques``: the seed survey's techniques as options, measured on real speech.

Measured: **knowledge distillation**, **low-rank layers**, **squeeze-and-excitation attention** and **few-shot
keywords**.

1. the teachers (presets, e.g. DS-CNN-L) are trained with the final recipe (`nas.experiments.retrain`);
2. every student (a preset or a spec file) is trained with each seed twice under the same recipe: plain,
   and distilled from the teachers' averaged softened outputs (`nas.train.distill`);
3. each model is quantized (PTQ) and measured on the board; the table gives the mean int8 test accuracy
   over the seeds, the paired bootstrap 95 % interval of the distilled - plain difference (same seeds,
   same test clips), the training cost per step of distillation, and flash/RAM/latency (equal for the
   two: distillation changes the weights, not the network);
4. every *variant* (``"PRESET+se"``: a gate in every DS block; ``"PRESET+attnpool"``: attention pooling in
   place of global average pooling; ``"PRESET+rank=F"``: every 1x1 convolution and body dense layer at rank F
   of min(in, out)) and its base preset are trained from scratch alike with each seed; the table gives both
   accuracies, the paired interval of the difference, and both networks' flash, RAM, latency and executed
   instructions on the board;
5. few-shot keywords: a base model trained on the 10 keywords only, and words it never heard enrolled from
   k = 1, 5, 10 clips of training-split speakers, scored on the other speakers (`nas.experiments.few_shot`).

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
from nas.experiments.seed_techniques_plots import write_plots
from nas.study.compare import paired_bootstrap
from search_spaces import ArchSpec
from search_spaces.base import attention_pooled_spec, gated_spec
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
    # architecture options against their base network, each trained from scratch: "BASE+se", "BASE+attnpool",
    # "BASE+rank=F"
    variants: tuple[str, ...] = ("ds-cnn-s+se", "ds-cnn-s+attnpool", "ds-cnn-m+rank=0.25", "ds-cnn-m+rank=0.125",
                                 "dnn-l+rank=0.25", "dnn-l+rank=0.125")
    # few-shot keywords: the base (trained on the 10 keywords, seed teacher_seed), the enrolled words (the most
    # frequent source words of _unknown_), k, and the random enrolments per word and k; few_shot_words = 0: none
    few_shot_base: str = "ds-cnn-l"
    few_shot_words: int = 12
    few_shot_shots: tuple[int, ...] = (1, 5, 10)
    few_shot_draws: int = 10
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
    return build(TechniquesConfig, tuples(d, ("teachers", "students", "seeds", "variants", "few_shot_shots")), path)


def variant_specs(variant: str) -> tuple[ArchSpec, ArchSpec, str]:
    """(base, variant, the option in words) of ``"BASE+se"``, ``"BASE+attnpool"`` or ``"BASE+rank=F"``;
    `ValueError` naming it."""
    from nas.train.compress import low_rank_spec

    base_name, plus, option = variant.partition("+")
    try:
        base = load_spec(base_name)
        if plus and option == "se":
            return base, gated_spec(base), "squeeze-and-excitation in every block"
        if plus and option == "attnpool":
            return base, attention_pooled_spec(base), "attention pooling head"
        if plus and option.startswith("rank="):
            fraction = float(option[5:])
            return base, low_rank_spec(base, fraction), f"low rank, {fraction:g} of min(in, out)"
    except ValueError as e:
        raise ValueError(f"variant {variant!r}: {e}") from None
    raise ValueError(f"variant {variant!r}: expected BASE+se, BASE+attnpool or BASE+rank=F (F in (0, 1))")


@dataclass
class TechniquesResult:
    config: TechniquesConfig
    teachers: dict[str, dict[str, Any]] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)
    variants: list[dict[str, Any]] = field(default_factory=list)
    few_shot: dict[str, Any] | None = None
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
    if cfg.few_shot_words > 0:
        result.few_shot = _few_shot(cfg, out_dir)
    result.wall_time_s = time.perf_counter() - t0
    return result


def _few_shot(cfg: TechniquesConfig, out_dir: Path) -> dict[str, Any]:
    from nas.experiments.few_shot import few_shot
    from nas.study.candidate import hardware_figures, load_data, make_evaluator
    from nas.study.config import SearchConfig

    setting = dataclasses.replace(cfg, protocol="10").setting()  # the keywords only: no _unknown_ in training
    spec = load_spec(cfg.few_shot_base)
    job = FinalJob(f"few-shot-base-{spec.name}", spec.to_json(), cfg.teacher_seed, cfg.epochs,
                   str(out_dir / "models" / f"few-shot-base-{spec.name}"), setting)
    base = run_final_jobs([job], cfg.workers)[job.name, job.seed]
    scfg = SearchConfig.from_dict(setting)
    evaluator = make_evaluator(scfg)

    def measure(tflite: bytes) -> dict[str, Any]:
        fig = hardware_figures(evaluator.measure(tflite, cfg.board))
        return {k: fig[k] for k in ("board", "flash_bytes", "ram_bytes", "latency_ms", "output_match")}

    out = few_shot(Path(job.folder) / "checkpoint", load_data(scfg), cfg.few_shot_words, cfg.few_shot_shots,
                   cfg.few_shot_draws, cfg.seed, out_dir / "models" / "few-shot-export", measure)
    return {**out, "base_int8_test_accuracy": base["int8_test_accuracy"],
            "base_figures": {k: base.get(k) for k in ("flash_bytes", "ram_bytes", "latency_ms")}}


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
        "Measured: knowledge distillation, low-rank layers, squeeze-and-excitation attention and few-shot keywords.",
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
    if result.few_shot is not None:
        lines += _few_shot_lines(result.few_shot)
    return "\n".join(lines) + "\n"


def _few_shot_lines(fs: dict[str, Any]) -> list[str]:
    lines = [
        "",
        "## Few-shot keywords",
        "",
        f"Base: {fs['base']} trained on the 10 keywords only ({_pct(fs['base_int8_test_accuracy'])} % int8 test); "
        f"{len(fs['words'])} words it never heard ({', '.join(fs['words'])}), each enrolled {fs['draws']} times from k "
        "clips of training-split speakers (`nas enroll`: the new word's classifier column fitted against the base "
        "model's training clips, the rest of the network unchanged) and scored on the validation- and test-split "
        "speakers. Means over words of the means over enrolments:",
        "",
        "| k | accuracy on the new word, % | false accepts: keyword test clips, % | false accepts: the other new "
        "words, % |",
        "|---|---|---|---|",
    ]
    for k in fs["shots"]:
        s = fs["by_k"][k] if k in fs["by_k"] else fs["by_k"][str(k)]
        lines.append(f"| {k} | {_pct(s['accuracy'])} | {_pct(s['false_accept_keywords'])} | "
                     f"{_pct(s['false_accept_other_words'])} |")
    e = fs.get("export")
    if e:
        board = (f" On {e['board']}: flash {e['flash_bytes']:,} B, RAM {e['ram_bytes']:,} B, latency "
                 f"{e['latency_ms']:.1f} ms, outputs bit-exact with the golden reference: {e['output_match']}."
                 if "board" in e else "")
        lines += ["", f"Exported as int8: '{e['word']}' enrolled from {e['shots']} clips, {_pct(e['int8_accuracy'])} % "
                  f"of its held-out clips recognised, {_pct(e['int8_false_accept_keywords'])} % of the keyword test "
                  f"clips taken.{board}"]
    return lines


def write_outputs(result: TechniquesResult, out_dir: Path, command: str) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    md, js = out_dir / "table.md", out_dir / "table.json"
    md.write_text(render_markdown(result, command))
    table = {"command": command, "config": result.config.to_dict(), "teachers": result.teachers, "rows": result.rows,
             "variants": result.variants, "few_shot": result.few_shot, "wall_time_s": result.wall_time_s}
    text = json.dumps(table, indent=2, default=str)
    js.write_text(text + "\n")
    return [md, js, *write_plots(json.loads(text), out_dir)]  # plots read what table.json holds
