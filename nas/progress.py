"""Progress a user can follow anywhere: a tqdm bar on a terminal; one line per finished unit (trial,
experiment row, epoch) when stdout is a file, a pipe, ``nohup``, CI or a job scheduler, where a bar is
disabled and would otherwise leave the log silent for hours."""

from __future__ import annotations

import math
import sys
import time
from typing import Any, TextIO


def on_terminal() -> bool:
    """Whether stdout is an interactive terminal (then tqdm draws its bar)."""
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):  # replaced or closed stdout
        return False


def clock(seconds: float) -> str:
    """``1:02:03`` / ``2:03``."""
    seconds = max(int(round(seconds)), 0)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class LineLog:
    """Prints ``text | done/total unit | elapsed | ~left`` lines, flushed at once.

    ``left`` is extrapolated from the mean time per unit finished since this log started (``already``:
    units done before, by an earlier run of a resumed job), and capped by ``limit_s`` (a search's time
    limit) when there is one.
    """

    def __init__(self, total: float | None = None, limit_s: float | None = None, already: int = 0,
                 stream: TextIO | None = None) -> None:
        self.total, self.limit_s, self.already = total, limit_s, already
        self.stream = stream  # None: stdout (stderr where stdout carries --json)
        self.t0 = time.monotonic()

    def left_s(self, done: int) -> float | None:
        elapsed = time.monotonic() - self.t0
        estimates = []
        if self.total and done > self.already:
            estimates.append(elapsed / (done - self.already) * max(self.total - done, 0))
        if self.limit_s is not None:
            estimates.append(max(self.limit_s - elapsed, 0.0))
        return min(estimates) if estimates else None

    def say(self, text: str, done: float | None = None, unit: str | None = "done") -> str:
        """``unit=None``: ``done`` only feeds the estimate (``text`` already says it)."""
        parts = [text]
        if done is not None and unit is not None:
            parts.append(f"{done}/{self.total} {unit}" if self.total else f"{done} {unit}")
        parts.append(f"{clock(time.monotonic() - self.t0)} elapsed")
        left = None if done is None else self.left_s(done)
        if left is not None:
            parts.append(f"~{clock(left)} left")
        line = " | ".join(parts)
        print(line, flush=True, file=self.stream or sys.stdout)
        return line


def _num(x: Any, scale: float = 1.0, fmt: str = "{:.1f}", unit: str = "") -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    return fmt.format(x * scale) + unit


def trial_line(t: Any) -> str:
    """One finished Optuna trial in words: number, state, accuracy, flash, RAM, latency, training time."""
    a = t.user_attrs
    state = t.state.name
    if state == "FAIL":
        return f"trial {t.number} FAIL: {str(a.get('fail_reason', 'see the log'))[:160]}"
    if a.get("static_reject"):
        return f"trial {t.number} refused before measuring: {a['static_reject']}"
    head = f"trial {t.number} {state}"
    if state == "PRUNED" and a.get("stopped_at_epoch") is not None:
        head += f" at epoch {a['stopped_at_epoch']:g}"
    acc = a.get("int8_val_accuracy", a.get("float_val_accuracy"))
    fields = [head]
    if a.get("trained"):
        fields.append(f"acc {_num(acc, 100, '{:.2f}', ' %')}")
    elif "flash_bytes" in a:
        fields.append("not trained (over a budget)")
    fields += [f"flash {_num(a.get('flash_bytes'), 1 / 1024, unit=' KB')}",
               f"RAM {_num(a.get('ram_bytes'), 1 / 1024, unit=' KB')}",
               f"latency {_num(a.get('latency_ms'), unit=' ms')}"]
    if a.get("train_time_s") is not None:
        fields.append(f"train {_num(a['train_time_s'], fmt='{:.0f}', unit=' s')}")
    return "  ".join(fields)


def epoch_lines(what: str, epochs: float | None, stream: TextIO | None = None) -> Any:
    """An ``after_eval`` hook for `nas.train.train` that prints one line per validation pass (it never
    stops the run): ``what: epoch 3/40, loss 0.41, val 85.2 % (best 86.0 %) | elapsed | ~left``."""
    lines = LineLog(epochs, stream=stream)

    def after_eval(entry: dict[str, Any]) -> bool:
        loss = entry.get("train_loss")
        lines.say(f"{what}: epoch {entry['epoch']:.4g}{'' if epochs is None else f'/{epochs:g}'}"
                  f"{'' if loss is None else f', loss {loss:.3f}'}, val {100 * entry['val_accuracy']:.2f} %"
                  f" (best {100 * entry['best_val_accuracy']:.2f} %)", entry["epoch"], unit=None)
        return False

    return after_eval
