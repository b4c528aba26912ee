"""`nas experiment seed-frameworks` end to end on the tiny corpus: both label protocols, a preset and the
Edge Impulse-style model, a third-party .tflite beside them, the emulated M4; rows resume from disk."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from hardware.emulator import have_qemu
from hardware.firmware.build import have_toolchain

pytestmark = pytest.mark.skipif(not (have_toolchain() and have_qemu()), reason="needs arm-none-eabi-gcc and QEMU")


def test_seed_frameworks_table_plots_and_resume(tmp_path: Path, tiny_corpus: Path) -> None:
    from nas.cli import main as nas_main

    out = tmp_path / "res"
    args = ["experiment", "seed-frameworks", "--data", str(tiny_corpus), "--presets", "ei-conv1d",
            "--epochs", "1", "--board", "mps2-an386", "--out", str(out)]
    assert nas_main(args) == 0
    table = json.loads((out / "table.json").read_text())
    rows = {(r["protocol"], r["model"]): r for r in table["rows"]}
    assert set(rows) == {("10", "ei-conv1d"), ("12", "ei-conv1d")}
    for (protocol, _), r in rows.items():
        assert r["classes"] == int(protocol)
        assert 0 < r["int8_tflite_bytes"] < r["float32_tflite_bytes"]
        assert r["size_reduction_pct"] == pytest.approx(100 * (1 - r["int8_tflite_bytes"] / r["float32_tflite_bytes"]))
        assert 0 <= r["int8_test_accuracy"] <= 1 and r["arena_bytes"] > 0
        assert r["mps2-an386.ok"] and r["mps2-an386.output_match"] is True
        assert r["mps2-an386.counter"] == "instructions" and r["mps2-an386.latency_kind"] == "estimated"
        assert r["mps2-an386.flash_bytes"] > r["int8_tflite_bytes"] // 2
    assert rows["12", "ei-conv1d"]["params"] == 3036  # the pinned preset, 12 outputs
    md = (out / "table.md").read_text()
    assert "## 10 keywords" in md and "## 12 classes" in md and "| ei-conv1d |" in md and "69 %" in md
    assert {p.name for p in out.glob("*.png")} == {"accuracy_vs_flash.png", "accuracy_vs_latency.png",
                                                   "size_float_vs_int8.png"}
    # a second run reads every row back (nothing retrained), and adds a third-party model beside them
    reference = Path(rows["12", "ei-conv1d"]["tflite"])
    t0 = time.perf_counter()
    assert nas_main([*args, "--reference", f"{reference}:edge-impulse", "--protocols", "12"]) == 0
    assert time.perf_counter() - t0 < 60
    again = {(r["protocol"], r["model"]): r for r in json.loads((out / "table.json").read_text())["rows"]}
    assert again["12", "ei-conv1d"]["train_s"] == rows["12", "ei-conv1d"]["train_s"]
    ref = again["12", reference.name]
    assert ref["kind"] == "reference" and ref["int8_test_accuracy"] == pytest.approx(
        rows["12", "ei-conv1d"]["int8_test_accuracy"])  # the same model evaluated the third-party way agrees
    assert ref["mps2-an386.flash_bytes"] == rows["12", "ei-conv1d"]["mps2-an386.flash_bytes"]


def test_bad_experiment_inputs_are_named(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from nas.cli import main as nas_main

    assert nas_main(["experiment", "seed-frameworks", "--presets", "dnn-xl", "--out", str(tmp_path)]) == 2
    assert "unknown preset 'dnn-xl'" in capsys.readouterr().err
    assert nas_main(["experiment", "seed-frameworks", "--protocols", "35", "--out", str(tmp_path)]) == 2
    assert "unknown label protocol '35'" in capsys.readouterr().err
    assert nas_main(["experiment", "seed-frameworks", "--reference", "nope.tflite", "--out", str(tmp_path)]) == 2
    assert "nope.tflite" in capsys.readouterr().err


def test_real_speech_search_small(tmp_path: Path, tiny_corpus: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real-speech experiment's whole path, small: budgets from the target, a timed search and a control,
    picks and the target retrained alike with two seeds, verdicts with a paired bootstrap; a second run
    reuses everything."""
    from nas.cli import main as nas_main

    monkeypatch.chdir(tmp_path)
    args = ["experiment", "real-speech-search", "--data", str(tiny_corpus), "--split-rule", "hash", "--noise", "",
            "--evaluator", "analytic", "--targets", "dnn-s", "--spaces", "dnn", "--controls", "dnn-s",
            "--search-minutes", "0.35", "--workers", "1", "--search-epochs", "2", "--min-epochs", "1",
            "--control-epochs", "1", "--picks", "1", "--final-seeds", "0,1", "--final-epochs", "1", "--name", "rs",
            "--selection", "validation"]  # cross-validation folds the speaker split; this corpus is split by hash
    assert nas_main(args) == 0
    table = json.loads(Path("results/rs/table.json").read_text())
    budgets = table["budgets"]["dnn-s"]
    assert set(budgets) == {"flash_bytes", "ram_bytes", "latency_ms"}
    target = table["models"]["dnn-s"]
    assert target["kind"] == "preset" and target["seeds"] == [0, 1] and len(target["int8_test_by_seed"]) == 2
    assert all(target[k] == pytest.approx(budgets[k]) for k in budgets)  # trained, it measures as the probe did
    for arm in ("search", "control"):
        s = table["studies"][f"dnn-s/{arm}"]
        assert 0 < s["elapsed_s"] <= 0.35 * 60 + 1 and s["trials"] > 0
    picks = [m for m in table["models"].values() if m["kind"] in ("search", "control")]
    for m in picks:  # never the target itself, always within its budgets
        assert m["spec"] != target["spec"] and all(m[k] <= budgets[k] * (1 + 1e-9) for k in budgets)
    assert {v["arm"] for v in table["verdicts"]} == {"search", "control"}
    for v in table["verdicts"]:
        assert v["verdict"] in ("beaten", "dominated", "neither", "no pick")
        if v["pick"] is not None:
            d = v["difference"]
            assert d["low_points"] <= d["mean_points"] <= d["high_points"] and d["seeds_a"] == 2
    md = Path("results/rs/table.md").read_text()
    assert "## dnn-s" in md and "kwsnas search" in md and "control (previous default)" in md
    assert Path("results/rs/dnn-s.png").is_file()
    # a cached training measured by older firmware (4 bytes more flash then): measured again, not trusted
    cached = Path("results/rs/final/dnn-s-s0/figures.json")
    stale = json.loads(cached.read_text())
    cached.write_text(json.dumps({**stale, "flash_bytes": stale["flash_bytes"] + 4}))
    t0 = time.perf_counter()
    assert nas_main(args) == 0  # finished searches and cached final trainings: nothing runs again
    assert json.loads(cached.read_text())["flash_bytes"] == stale["flash_bytes"]
    assert time.perf_counter() - t0 < 30
    again = json.loads(Path("results/rs/table.json").read_text())
    assert again["models"] == table["models"] and again["verdicts"] == table["verdicts"]
