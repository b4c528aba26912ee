"""A search on real speech under a Cortex-M4 budget, its Pareto picks retrained and tested, against the
presets trained the same way: compute rows, then render.

    cfg = load_real_search_config("experiments/search/real-speech.toml")
    result = run_real_speech_search(cfg, out_dir)    # searches (resumable), retrains picks and presets
    write_outputs(result, out_dir, command)          # table.md, table.json, plots

One study per search space (``ds-cnn``, ``micronet``), on the train/validation parts of the data. The
union of their Pareto fronts is thinned to ``picks`` models spread over flash; each pick and each preset
is then trained with the same final budget (``final_epochs`` / ``final_time_s``), quantized, evaluated on
the *test* part (never seen by the search) and measured on the board. The verdict per preset says whether
some pick dominates it (at least as accurate on test, no more flash, RAM and latency) — and when none
does, says so. Every trained model is cached under ``out_dir/final/<name>/figures.json``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RealSearchConfig:
    name: str = "real-speech"
    data: str = "../shared/data/speech_commands_v0.02_test"
    split_rule: str | None = "speaker-60-20-20"
    noise: str | None = "../shared/data/background_noise"
    spaces: tuple[str, ...] = ("ds-cnn", "micronet")
    board: str = "mps2-an386"
    evaluator: str = "emulator"
    budgets: dict[str, float] = field(default_factory=lambda: {"flash_bytes": 262144, "ram_bytes": 65536})
    sampler: str = "tpe"
    trials: int = 30  # trained candidates per space
    workers: int = 2
    search_epochs: int = 8
    search_time_s: float = 60.0
    picks: int = 5
    presets: tuple[str, ...] = ("ds-cnn-s", "ds-cnn-m", "micronet-kws-s", "micronet-kws-m")
    final_epochs: int = 40
    final_time_s: float = 150.0
    seed: int = 0

    def study_config(self, space: str) -> Any:
        from nas.study.config import load_config

        return load_config(None, name=f"{self.name}-{space}", space=space, data=self.data,
                           split_rule=self.split_rule, noise=self.noise, board=self.board, evaluator=self.evaluator,
                           budgets=dict(self.budgets), sampler=self.sampler, trials=self.trials,
                           workers=self.workers, seed=self.seed, train_epochs=self.search_epochs,
                           train_time_s=self.search_time_s)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def load_real_search_config(path: Path | str | None = None, **overrides: Any) -> RealSearchConfig:
    from nas.study.config import read_toml

    d: dict[str, Any] = read_toml(path) if path is not None else {}
    d.update({k: v for k, v in overrides.items() if v is not None})
    for key in ("noise", "split_rule"):
        if d.get(key) == "":
            d[key] = None  # --noise '': no noise folder (the corpus's own _background_noise_ if it has one)
    for key in ("spaces", "presets"):
        if key in d:
            d[key] = tuple(d[key])
    try:
        cfg = RealSearchConfig(**d)
    except TypeError as e:
        raise ValueError(f"{path or 'config'}: {e}") from None
    for space in cfg.spaces:
        cfg.study_config(space)  # validates space, board, budgets, sampler
    return cfg


@dataclass
class RealSearchResult:
    config: RealSearchConfig
    rows: list[dict[str, Any]] = field(default_factory=list)  # picks and presets, final figures
    verdicts: list[dict[str, Any]] = field(default_factory=list)
    studies: dict[str, dict[str, Any]] = field(default_factory=dict)  # study_summary per space
    wall_time_s: float = 0.0
    reused: dict[str, Any] = field(default_factory=dict)  # what came from earlier runs (searches, final models)


def _spread(rows: list[Any], k: int) -> list[Any]:
    """``k`` front rows spread evenly over flash (all of them when there are fewer)."""
    rows = sorted(rows, key=lambda r: r.figures.get("flash_bytes", 0))
    if len(rows) <= k:
        return rows
    idx = sorted({round(i * (len(rows) - 1) / (k - 1)) for i in range(k)}) if k > 1 else [len(rows) - 1]
    return [rows[i] for i in idx]


def _dominates(a: dict[str, Any], b: dict[str, Any]) -> bool:
    keys = ("flash_bytes", "ram_bytes", "latency_ms")
    no_worse = a["int8_test_accuracy"] >= b["int8_test_accuracy"] and all(a[k] <= b[k] for k in keys)
    better = a["int8_test_accuracy"] > b["int8_test_accuracy"] or any(a[k] < b[k] for k in keys)
    return no_worse and better


def run_searches(cfg: RealSearchConfig) -> tuple[dict[str, Any], list[str]]:
    """One study per space until its target (resumes), with ``cfg.workers`` processes each; also the
    spaces whose study had reached its target before this call."""
    from nas.study.runner import open_study, spawn_workers, target_reached

    studies, finished_before = {}, []
    for space in cfg.spaces:
        scfg = cfg.study_config(space)
        study = open_study(scfg)
        if target_reached(study, scfg):
            finished_before.append(space)
        else:
            log.info("searching %s: %d trained trials, %d workers", space, scfg.trials, scfg.workers)
            procs = spawn_workers(scfg, scfg.workers)
            codes = [p.wait() for p in procs]
            if not target_reached(study, scfg):
                raise RuntimeError(f"the {space} search stopped before its target (worker exit codes {codes}); "
                                   "run the same command again to resume")
        studies[space] = (scfg, study)
    return studies, finished_before


def run_real_speech_search(cfg: RealSearchConfig, out_dir: Path) -> RealSearchResult:
    from nas.study.candidate import SearchContext, evaluate_candidate, load_data, make_evaluator
    from nas.study.config import TrainBudget
    from nas.study.pareto import _front, study_summary, usable_trials
    from search_spaces.presets import get_preset
    from search_spaces.spec import ArchSpec

    t0 = time.perf_counter()
    studies, finished_before = run_searches(cfg)
    result = RealSearchResult(cfg, reused={"searches": finished_before, "final_models": 0})
    usable = []
    for space, (scfg, study) in studies.items():
        result.studies[space] = study_summary(study, scfg)
        usable += usable_trials(study, scfg)
    picks = _spread(_front(usable), cfg.picks)

    base = cfg.study_config(cfg.spaces[0])
    final = base.replace(budgets={}, train=TrainBudget(epochs=cfg.final_epochs, time_s=cfg.final_time_s))
    todo: list[tuple[str, str, ArchSpec, dict[str, Any]]] = []
    for row in picks:
        spec = ArchSpec.from_dict(row.figures["spec"])
        todo.append((f"{spec.family}-trial{row.trial}", "search", spec, {"search_val_accuracy":
                                                                          row.figures.get("int8_val_accuracy")}))
    ctx = None
    for name in cfg.presets:
        todo.append((name, "preset", get_preset(name), {}))
    for name, kind, spec, extra in todo:
        folder = out_dir / "final" / name
        cached = folder / "figures.json"
        key = [spec.digest(), cfg.final_epochs, cfg.final_time_s, cfg.seed, cfg.data, cfg.split_rule, cfg.board]
        fig = json.loads(cached.read_text()) if cached.is_file() else None
        if fig is not None and fig.get("final_key") == key:
            result.reused["final_models"] += 1
        else:
            if ctx is None:
                ctx = SearchContext(final, load_data(final), make_evaluator(final))
            log.info("final training: %s", name)
            fig = evaluate_candidate(spec.with_classes(ctx.data.num_classes), ctx, 0, folder)
            fig["final_key"] = key
            folder.mkdir(parents=True, exist_ok=True)
            cached.write_text(json.dumps(fig, indent=2, default=str) + "\n")
        result.rows.append({"model": name, "kind": kind, **extra, **{k: fig.get(k) for k in (
            "int8_test_accuracy", "float_val_accuracy", "int8_val_accuracy", "flash_bytes", "ram_bytes",
            "latency_ms", "latency_kind", "instructions", "macs", "params", "train_time_s", "fits_board")}})
    found = [r for r in result.rows if r["kind"] == "search"]
    budgets = cfg.budgets
    for preset in (r for r in result.rows if r["kind"] == "preset"):
        within = all(preset.get(k, 0) <= v for k, v in budgets.items() if k in preset)
        beaten_by = [r["model"] for r in found if _dominates(r, preset)]
        better_acc = [r["model"] for r in found if r["int8_test_accuracy"] > preset["int8_test_accuracy"]]
        cheaper = [{"model": r["model"], "accuracy_points": 100 * (r["int8_test_accuracy"] -
                                                                    preset["int8_test_accuracy"]),
                    **{f"{k.split('_')[0]}_ratio": r[k] / preset[k] for k in ("flash_bytes", "ram_bytes", "latency_ms")}}
                   for r in found if r["model"] not in beaten_by and all(
                       r[k] <= preset[k] for k in ("flash_bytes", "ram_bytes", "latency_ms"))]
        result.verdicts.append({"preset": preset["model"], "within_budget": within, "dominated_by": beaten_by,
                                "more_accurate": better_acc, "cheaper_but_less_accurate": cheaper})
    result.wall_time_s = time.perf_counter() - t0
    return result


def render_markdown(result: RealSearchResult, command: str) -> str:
    cfg = result.config
    lines = ["# A search on real speech under a Cortex-M4 budget", "", f"Command: `{command}`  ",
             f"Data: `{cfg.data}` ({cfg.split_rule}); search on train/validation, figures below on **test**. "
             f"Board {cfg.board} ({cfg.evaluator}); budgets " + ", ".join(f"{k} ≤ {v:,.0f}" for k, v in
                                                                            cfg.budgets.items()) +
             f". Search: {cfg.sampler}, {cfg.trials} trained trials per space ({', '.join(cfg.spaces)}), "
             f"{cfg.search_epochs} epochs / {cfg.search_time_s:.0f} s each. Final training for picks and presets "
             f"alike: {cfg.final_epochs} epochs or {cfg.final_time_s:.0f} s. Wall time of this invocation "
             f"{result.wall_time_s / 60:.1f} min" + _reuse_note(result) + ".", ""]
    for space, s in result.studies.items():
        lines.append(f"- {space}: {s['trials']} trials ({s['trained']} trained, {s['feasible']} within budget), "
                     f"Pareto front {s['pareto_size']}")
    lines += ["", "| model | kind | int8 test % | flash B | RAM B | latency ms (est.) | MACs | params |",
              "|---|---|---|---|---|---|---|---|"]
    for r in result.rows:
        lines.append(f"| {r['model']} | {r['kind']} | {100 * r['int8_test_accuracy']:.2f} | {r['flash_bytes']:,} | "
                     f"{r['ram_bytes']:,} | {r['latency_ms']:.1f} | {r['macs']:,} | {r['params']:,} |")
    lines += ["", "## Where the search beat the presets, and where it did not", ""]
    for v in result.verdicts:
        if v["dominated_by"]:
            text = f"beaten: {', '.join(v['dominated_by'])} is at least as accurate with no more flash, RAM and latency"
        elif v["more_accurate"]:
            text = (f"not dominated: {', '.join(v['more_accurate'])} is more accurate but costs more flash, RAM "
                    "or latency")
        else:
            text = "not beaten: no search pick is as accurate"
        budget = "" if v["within_budget"] else " (the preset itself breaks the budget)"
        cheaper = v.get("cheaper_but_less_accurate") or []
        if cheaper:
            text += "; cheaper on flash, RAM and latency at once: " + ", ".join(
                f"{c['model']} ({c['accuracy_points']:+.1f} points; latency {c['latency_ratio']:.2f}×, flash "
                f"{c['flash_ratio']:.2f}×, RAM {c['ram_ratio']:.2f}×)" for c in cheaper)
        lines.append(f"- **{v['preset']}**{budget}: {text}.")
    return "\n".join(lines) + "\n"


def _reuse_note(result: RealSearchResult) -> str:
    r = result.reused
    parts = []
    if r.get("searches"):
        parts.append(f"the {' and '.join(r['searches'])} search{'es' if len(r['searches']) > 1 else ''}")
    if r.get("final_models"):
        parts.append(f"{r['final_models']} of {len(result.rows)} final models")
    return f" ({' and '.join(parts)} reused from an earlier run of the same command)" if parts else ""


def write_outputs(result: RealSearchResult, out_dir: Path, command: str) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    md, js = out_dir / "table.md", out_dir / "table.json"
    md.write_text(render_markdown(result, command))
    js.write_text(json.dumps({"command": command, "config": result.config.to_dict(), "studies": result.studies,
                              "rows": result.rows, "verdicts": result.verdicts,
                              "wall_time_s": result.wall_time_s, "reused": result.reused}, indent=2, default=str) + "\n")
    paths = [md, js]
    for key, label in (("flash_bytes", "flash, KiB"), ("latency_ms", "latency, ms (estimated)")):
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for kind, marker in (("search", "o"), ("preset", "s")):
            rows = [r for r in result.rows if r["kind"] == kind]
            xs = [r[key] / (1024 if key == "flash_bytes" else 1) for r in rows]
            ys = [100 * r["int8_test_accuracy"] for r in rows]
            ax.scatter(xs, ys, marker=marker, label="search picks" if kind == "search" else "presets")
            for r, x, y in zip(rows, xs, ys, strict=True):
                ax.annotate(r["model"], (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.set_xscale("log")
        ax.set_xlabel(f"{label} on {result.config.board}")
        ax.set_ylabel("int8 test accuracy, %")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        path = out_dir / f"test_accuracy_vs_{key.split('_')[0]}.png"
        fig.savefig(path, dpi=120)
        plt.close(fig)
        paths.append(path)
    return paths
