"""The seed-techniques plots, drawn from the table's JSON (compute, then render): ``techniques.png`` (each
technique's accuracy against flash and latency, an arrow from the network without it to the one with it) and
``few-shot.png`` (a new word's recognition and false accepts against the number of enrolment clips)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nas.plotting import pyplot, save_png


def _arrows(table: dict[str, Any]) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(label, without, with) for every distillation row and every variant."""
    out = [(f"{r['student']} distilled", r["plain"], r["distilled"]) for r in table.get("rows", [])]
    return out + [(r["variant"], r["base"], r["changed"]) for r in table.get("variants", [])]


def write_plots(table: dict[str, Any], out_dir: Path) -> list[Path]:
    """The plots of a seed-techniques ``table.json`` dict into ``out_dir``; none for parts it lacks."""
    plt = pyplot()
    from matplotlib import ticker

    paths = []
    arrows = _arrows(table)
    if arrows:
        fig, axes = plt.subplots(1, 2, figsize=(12, 5))
        for ax, key, scale, label in ((axes[0], "flash_bytes", 1024, "flash, KiB"),
                                      (axes[1], "latency_ms", 1, "latency, ms (estimated)")):
            for i, (name, before, after) in enumerate(arrows):
                if before.get(key) is None or after.get(key) is None:
                    continue
                colour = f"C{i % 10}"
                x0, x1 = before[key] / scale, after[key] / scale
                y0, y1 = 100 * before["int8_test_mean"], 100 * after["int8_test_mean"]
                ax.annotate("", (x1, y1), (x0, y0), arrowprops={"arrowstyle": "->", "color": colour})
                ax.errorbar([x0], [y0], yerr=[100 * before["int8_test_sd"]], fmt="o", color=colour, mfc="none",
                            capsize=3)
                ax.errorbar([x1], [y1], yerr=[100 * after["int8_test_sd"]], fmt="o", color=colour, capsize=3,
                            label=name)
            ax.set_xscale("log")
            ax.xaxis.set_major_formatter(ticker.ScalarFormatter())  # 30, 100, 300 rather than 3x10^1
            ax.xaxis.set_minor_formatter(ticker.NullFormatter())
            ax.set_xlabel(f"{label} (int8, emulated board)")
            ax.set_ylabel("int8 test accuracy, % (mean ± sd over seeds)")
            ax.grid(alpha=0.3)
        axes[0].legend(fontsize=7)
        fig.suptitle("Each technique: from the network without it (open) to the one with it (filled)")
        paths.append(save_png(fig, out_dir / "techniques.png"))
    few = table.get("few_shot")
    if few:
        ks = [int(k) for k in few["shots"]]
        by_k = {int(k): v for k, v in few["by_k"].items()}
        fig, ax = plt.subplots(figsize=(6, 4.5))
        for key, label in (("accuracy", "the new word recognised"), ("false_accept_keywords", "keyword clips taken"),
                           ("false_accept_other_words", "other unseen words taken")):
            ax.plot(ks, [100 * by_k[k][key] for k in ks], "o-", label=label)
        ax.set_xticks(ks)
        ax.set_xlabel("enrolment clips (k)")
        ax.set_ylabel("% of held-out clips")
        ax.set_title(f"Few-shot keywords, base {few['base']}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        paths.append(save_png(fig, out_dir / "few-shot.png"))
    return paths
