"""Render a `RealSearchResult`: ``table.md``, ``table.json`` and one accuracy-vs-cost plot per target."""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

from nas.data.split import SPEAKER_FOLDS
from nas.experiments.real_speech_search import COST_KEYS, RealSearchResult
from nas.plotting import pyplot, save_png

_ARM_LABEL = {"search": "kwsnas search", "control": "control (previous default)", "preset": "preset"}


def _pct(x: float) -> str:
    return f"{100 * x:.2f}"


def _model_row(m: dict[str, Any], cross: bool) -> str:
    chosen = " **(pick)**" if m.get("chosen") else ""
    search_val = "" if m.get("search_int8_val_accuracy") is None else _pct(m["search_int8_val_accuracy"])
    cv = (" " + ("" if m.get("cv_accuracy") is None else _pct(m["cv_accuracy"])) + " |") if cross else ""
    seeds = ", ".join(_pct(x) for x in m["int8_test_by_seed"])
    return (f"| {m['model']}{chosen} | {_ARM_LABEL.get(m['kind'], m['kind'])} | {_pct(m['int8_test_mean'])} ± "
            f"{100 * m['int8_test_sd']:.2f} ({seeds}) | {_pct(m['int8_val_mean'])} |{cv} {search_val} | "
            f"{m['flash_bytes']:,} | {m['ram_bytes']:,} | {m['latency_ms']:.1f} | {m['macs']:,} | {m['params']:,} | "
            f"{_arch(m['spec'])} |")


def _arch(spec: dict[str, Any]) -> str:
    parts = []
    for layer in spec.get("layers", []):
        if layer["kind"] == "conv":
            parts.append(f"conv{layer['filters']} {layer['kernel'][0]}x{layer['kernel'][1]}/{layer['stride'][0]}x"
                         f"{layer['stride'][1]}")
        elif layer["kind"] == "ds":
            tag = "r" if layer.get("residual") else ""
            stride = "/2" if tuple(layer["stride"]) != (1, 1) else ""
            parts.append(f"ds{tag}{layer['filters']} {layer['kernel'][0]}x{layer['kernel'][1]}{stride}")
    return ", ".join(parts)


def render_markdown(result: RealSearchResult, command: str) -> str:
    cfg = result.config
    lines = [
        "# Can the search beat the published designs under their own budgets?", "",
        f"Command: `{command}`  ",
        f"Data: `{cfg.data}` ({cfg.split_rule}); the searches see train and validation only, every test figure "
        f"is on the held-out test speakers. Board {cfg.board} ({cfg.evaluator}: flash and RAM measured, latency "
        f"estimated from executed instructions). Search arm: {cfg.sampler} sampler, validation error as the one "
        f"objective, the target's flash, RAM and latency as hard budgets, warm start with the presets that fit"
        f"{' and their copies scaled to the budgets' if cfg.scale_seeds else ''}, "
        f"static filter, {'SE gates per block and attention pooling offered (--attention), ' if cfg.attention else ''}"
        f"successive halving {cfg.min_epochs} → {cfg.search_epochs} epochs (factor "
        f"{cfg.reduction_factor}). Control arm: TPE over error, flash, RAM and latency, no seeds, no filter, "
        f"{cfg.control_epochs} epochs per trial, same budgets. Each arm: {cfg.search_minutes:g} minutes on "
        f"{cfg.workers} single-threaded workers. Final training for picks and targets alike: "
        f"{cfg.final_epochs} epochs, seeds {', '.join(map(str, cfg.final_seeds))}; the pick of an arm is the best of "
        f"its {cfg.picks} best search trials {_selection_text(result)}. Machine: "
        f"{platform.machine()}, {_cores()} cores. Wall time of this invocation {result.wall_time_s / 60:.1f} min.", ""]
    for target in cfg.targets:
        b = result.budgets[target]
        lines += [f"## {target}", "",
                  f"Budgets (its own measured figures): flash ≤ {b['flash_bytes']:,.0f} B, RAM ≤ {b['ram_bytes']:,.0f} B, "
                  f"latency ≤ {b['latency_ms']:.1f} ms.", ""]
        for arm in cfg.arms(target):
            s = result.studies[f"{target}/{arm}"]
            lines.append(f"- {_ARM_LABEL[arm]}: {s['elapsed_s'] / 60:.1f} min, {s['trials']} trials: {s['trained']} "
                         f"trained ({s['pruned']} stopped early by successive halving), {s['feasible']} finished "
                         f"within the budgets, {s['refused']} refused by the static check, {s['failed']} failed "
                         f"or stopped at the time limit" + _search_budgets(s.get("search_budgets"), b))
        cross = cfg.selection == "cross-validation"
        lines += ["", "| model | from | int8 test % (mean ± sd over seeds; by seed) | int8 val % (mean) | "
                  + ("cross-validated % | " if cross else "") + "search val % | "
                  "flash B | RAM B | latency ms (est.) | MACs | params | architecture |",
                  "|---|---|---|---|---|---|---|---|---|---|---|" + ("---|" if cross else "")]
        for m in result.models.values():
            if m["target"] == target:
                lines.append(_model_row(m, cross))
        lines.append("")
        for v in result.verdicts:
            if v["target"] != target:
                continue
            if v["pick"] is None:
                lines.append(f"- **{_ARM_LABEL[v['arm']]}**: no pick ({v['why']}).")
                continue
            d = v["difference"]
            lines.append(f"- **{_ARM_LABEL[v['arm']]}**: {v['pick']} — **{v['verdict']}**: "
                         f"{d['mean_points']:+.2f} points of test accuracy (paired bootstrap 95 % interval "
                         f"{d['low_points']:+.2f} .. {d['high_points']:+.2f}), latency {v['latency_ratio']:.2f}×, flash "
                         f"{v['flash_ratio']:.2f}×, RAM {v['ram_ratio']:.2f}× the target's.")
        lines.append("")
    return "\n".join(lines) + "\n"


def _search_budgets(searched: dict[str, float] | None, today: dict[str, float]) -> str:
    # bytes must agree exactly; an estimated latency to 0.1 % (a few instructions of data-dependent code)
    if not searched or all(abs(searched[k] - today[k]) <= (1e-3 * today[k] if k == "latency_ms" else 0)
                           for k in searched):
        return ""
    return (f"; it searched under the target's figures from the firmware of its day (flash "
            f"{searched['flash_bytes']:,.0f} B, RAM {searched['ram_bytes']:,.0f} B, latency "
            f"{searched['latency_ms']:.1f} ms), which chose its finalists; the verdict compares today's measurements")


def _selection_text(result: RealSearchResult) -> str:
    cfg = result.config
    if cfg.selection != "cross-validation":
        return "by mean validation accuracy over those seeds"
    clips = next((m["cv_clips"] for m in result.models.values() if m.get("cv_clips")), None)
    return (f"by int8 accuracy pooled over {SPEAKER_FOLDS} speaker folds of train + validation (fold f validates "
            f"on the f-th fifth of the speakers and trains on the other train + validation speakers, seed "
            f"{cfg.final_seeds[0]}, {cfg.final_epochs} epochs; the last fold is the plain split, so its model is "
            f"that seed's final training): each of the {clips or 'train + validation'} clips is scored once by a "
            f"model that never heard its speaker")


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 0


def write_outputs(result: RealSearchResult, out_dir: Path, command: str) -> list[Path]:
    plt = pyplot()
    out_dir.mkdir(parents=True, exist_ok=True)
    md, js = out_dir / "table.md", out_dir / "table.json"
    md.write_text(render_markdown(result, command))
    js.write_text(json.dumps({"command": command, "config": result.config.to_dict(), "budgets": result.budgets,
                              "studies": result.studies, "models": result.models, "verdicts": result.verdicts,
                              "wall_time_s": result.wall_time_s}, indent=2, default=str) + "\n")
    paths = [md, js]
    for target in result.config.targets:
        fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
        for ax, key, label in ((axes[0], "latency_ms", "latency, ms (estimated)"), (axes[1], "flash_bytes", "flash, KiB")):
            scale = 1024 if key == "flash_bytes" else 1
            for kind, marker in (("preset", "s"), ("search", "o"), ("control", "^")):
                ms = [m for m in result.models.values() if m["target"] == target and m["kind"] == kind]
                if not ms:
                    continue
                ax.errorbar([m[key] / scale for m in ms], [100 * m["int8_test_mean"] for m in ms],
                            yerr=[100 * m["int8_test_sd"] for m in ms], fmt=marker, capsize=3, label=_ARM_LABEL[kind])
                for m in ms:
                    ax.annotate(m["model"].replace(f"{target}-", "") + (" (pick)" if m.get("chosen") else ""),
                                (m[key] / scale, 100 * m["int8_test_mean"]), fontsize=7, xytext=(3, 3),
                                textcoords="offset points")
            ax.axvline(result.budgets[target][key] / scale, color="grey", linestyle=":", label="budget")
            ax.set_xlabel(f"{label} on {result.config.board}")
            ax.set_ylabel("int8 test accuracy, % (mean ± sd over seeds)")
            ax.grid(alpha=0.3)
        axes[0].legend(fontsize=8)
        fig.suptitle(f"Under {target}'s own budgets")
        paths.append(save_png(fig, out_dir / f"{target}.png"))
    return paths


__all__ = ["COST_KEYS", "render_markdown", "write_outputs"]
