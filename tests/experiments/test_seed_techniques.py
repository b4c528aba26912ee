"""``nas experiment seed-techniques``, small: a teacher trained first, a student trained plain and distilled with
two seeds, the paired verdict in the table, and a second run that reuses every training."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from nas.train import load_checkpoint


def test_seed_techniques_small(tmp_path: Path, tiny_corpus: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from nas.cli import main as nas_main

    monkeypatch.chdir(tmp_path)
    args = ["experiment", "seed-techniques", "--data", str(tiny_corpus), "--split-rule", "hash", "--noise", "",
            "--evaluator", "analytic", "--teachers", "dnn-s", "--students", "dnn-s", "--seeds", "0,1",
            "--epochs", "1", "--workers", "1", "--variants", "dnn-s+rank=0.25", "--few-shot-words", "2",
            "--few-shot-base", "dnn-s", "--few-shot-draws", "2", "--out", "results/st"]
    assert nas_main(args) == 0
    table = json.loads(Path("results/st/table.json").read_text())
    teacher = table["teachers"]["teacher-dnn-s"]
    assert Path(teacher["checkpoint"], "checkpoint.json").is_file()
    (row,) = table["rows"]
    assert row["student"] == "dnn-s"
    for side in ("plain", "distilled"):
        assert len(row[side]["int8_test_by_seed"]) == 2 and row[side]["flash_bytes"] > 0
    low, high = row["interval_points"]
    assert low <= row["difference_points"] <= high and row["step_cost_ratio"] > 0
    # the distilled students were trained with the teacher's checkpoint, and say so in their own
    _, _, meta = load_checkpoint("results/st/models/dnn-s-kd-s0/checkpoint")
    assert meta["config"].teachers == (teacher["checkpoint"],) and meta["config"].distill_weight == 0.5
    _, _, plain = load_checkpoint("results/st/models/dnn-s-s0/checkpoint")
    assert plain["config"].teachers == ()
    # the variant beside its base, trained alike; its layers at a quarter rank, so fewer parameters and instructions
    (variant,) = table["variants"]
    base, changed = variant["base"], variant["changed"]
    assert variant["variant"] == "dnn-s+rank=0.25" and len(changed["int8_test_by_seed"]) == 2
    assert base["int8_test_by_seed"] == row["plain"]["int8_test_by_seed"]  # the student's plain runs, reused
    assert changed["params"] < base["params"] and changed["instructions"] < base["instructions"]
    low, high = variant["interval_points"]
    assert low <= variant["difference_points"] <= high
    # few-shot: a 10-keyword base, two words it never heard (the tiny corpus's bed, cat, dog), each k enrolled twice
    fs = table["few_shot"]
    assert fs["labels"] == ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"]
    assert len(fs["words"]) == 2 and set(fs["words"]) <= {"bed", "cat", "dog"}
    for k in ("1", "5", "10"):
        s = fs["by_k"][k]
        assert all(0 <= s[key] <= 1 for key in ("accuracy", "false_accept_keywords", "false_accept_other_words"))
    assert fs["export"]["shots"] == 10 and Path(fs["export"]["tflite"]).is_file() and fs["export"]["flash_bytes"] > 0
    md = Path("results/st/table.md").read_text()
    assert "## Few-shot keywords" in md
    assert "| dnn-s |" in md and "| dnn-s+rank=0.25 | low rank, 0.25 of min(in, out) |" in md
    for plot in ("techniques.png", "few-shot.png"):  # drawn from table.json
        assert Path("results/st", plot).stat().st_size > 10_000, plot
    t0 = time.perf_counter()
    assert nas_main(args) == 0  # every training cached: nothing runs again
    assert time.perf_counter() - t0 < 30
    assert json.loads(Path("results/st/table.json").read_text())["rows"] == table["rows"]


def test_seed_techniques_names_a_missing_student_spec(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from nas.cli import main as nas_main

    assert nas_main(["experiment", "seed-techniques", "--students", str(tmp_path / "nope.json"),
                     "--out", str(tmp_path)]) == 2
    assert "nope.json" in capsys.readouterr().err
    assert nas_main(["experiment", "seed-techniques", "--variants", "ds-cnn-s+wide", "--out", str(tmp_path)]) == 2
    assert "ds-cnn-s+wide" in capsys.readouterr().err
