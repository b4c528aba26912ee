"""The search loop's pieces: configs, objectives and budgets, the Pareto front, and a tiny real search."""

from __future__ import annotations

import json
import math
from pathlib import Path

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from nas.study.config import SearchConfig, load_config
from nas.study.objectives import constraint_values, is_feasible, objective_values
from nas.study.pareto import hypervolume_history, pareto_front, render_front, study_summary
from nas.study.runner import MAX_REFUSED_FACTOR
from tests.helpers.paths import REPO


def test_config_file_and_overrides(tmp_path: Path) -> None:
    cfg = load_config(REPO / "experiments/search/quick.toml")
    assert cfg.name == "quick" and cfg.budgets["ram_bytes"] == 65536 and cfg.train.epochs == 4
    over = load_config(REPO / "experiments/search/quick.toml", trials=3, train_epochs=1, board=None)
    assert over.trials == 3 and over.train.epochs == 1 and over.train.time_s is None and over.board == "mps2-an386"
    assert SearchConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.storage_url == "sqlite:///runs/quick/study.db"


@pytest.mark.parametrize("text,needle", [
    ('objectives = ["error", "speed"]', "unknown objective"),
    ('sampler = "cmaes"', "unknown sampler"),
    ('[budgets]\nflash_kb = 3', "unknown budget"),
    ('[budgets]\nflash_bytes = -1', "positive"),
    ('evaluator = "serial"', "needs a port"),
    ('name = "../x"', "plain name"),
    ('colour = "red"', "unknown setting"),
    ('[train]\nepoch = 3', "unknown [train] setting"),
    ('[train]\nepochs = 4\nmin_epochs = 4', "min_epochs (successive halving) needs an epoch budget larger"),
    ('objectives = ["flash_bytes"]\n[train]\nepochs = 8\nmin_epochs = 2', "ranks candidates by accuracy"),
    ('[train]\nreduction_factor = 1', "reduction_factor must be an integer >= 2"),
    ('sampler = "evolutionary"', "unknown sampler"),
    ('objectives = [', "not a valid TOML"),
])
def test_bad_configs_name_the_problem(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ValueError) as err:
        load_config(path)
    assert needle in str(err.value)
    with pytest.raises(ValueError, match="no such experiment config"):
        load_config(tmp_path / "missing.toml")


def test_objectives_and_budgets() -> None:
    fig = {"error": 0.1, "flash_bytes": 1000, "ram_bytes": 500, "latency_ms": 3.5, "macs": 10, "params": 7}
    assert objective_values(("error", "latency", "macs"), fig) == [0.1, 3.5, 10.0]
    with pytest.raises(KeyError, match="latency_ms"):
        objective_values(("latency",), {"error": 0.2})
    assert constraint_values({"flash_bytes": 1200, "ram_bytes": 400}, fig) == {"flash_bytes": -200, "ram_bytes": 100}
    assert not is_feasible({"ram_bytes": 400}, fig) and is_feasible({"flash_bytes": 1000}, fig)
    assert constraint_values({"latency_ms": 1}, {}) == {"latency_ms": math.inf}


def _study_with(points: list[tuple[float, float]], attrs: list[dict]) -> optuna.Study:
    study = optuna.create_study(directions=["minimize", "minimize"])
    for (e, f), a in zip(points, attrs, strict=True):
        study.add_trial(create_trial(state=TrialState.COMPLETE, values=[e, f], params={"x": e},
                                     distributions={"x": FloatDistribution(0, 1)}, user_attrs=a))
    return study


def test_pareto_front_keeps_feasible_trained_non_dominated_trials() -> None:
    cfg = SearchConfig(objectives=("error", "flash_bytes"), budgets={"flash_bytes": 5000}, trials=5,
                       evaluator="analytic")
    pts = [(0.10, 4000), (0.20, 2000), (0.15, 4500), (0.05, 9000), (0.30, 1000), (0.12, 4000)]
    base = {"trained": True, "int8_val_accuracy": 0.9, "float_val_accuracy": 0.9, "ram_bytes": 1, "macs": 1,
            "params": 1, "latency_ms": 1.0, "latency_kind": "estimated", "hw_evaluator": "analytic"}
    attrs = [{**base, "flash_bytes": f} for _, f in pts]
    attrs[4]["trained"] = False  # over no budget, but never trained: not on the front
    study = _study_with(pts, attrs)
    front = pareto_front(study, cfg)
    # (0.05, 9000) breaks the flash budget; (0.15, 4500) and (0.12, 4000) are dominated by (0.10, 4000)
    assert [r.trial for r in front] == [0, 1]
    s = study_summary(study, cfg)
    assert s["complete"] == 6 and s["feasible"] == 4 and s["pareto_size"] == 2
    hv = hypervolume_history(study, cfg)
    assert [n for n, _ in hv] == [0, 1, 2, 5] and all(b >= a for (_, a), (_, b) in zip(hv, hv[1:], strict=False))
    # normalised by the 5000-byte budget: (0.10, 0.8) and (0.20, 0.4) cover 0.9*0.2 + 0.8*0.6 - 0.8*0.2 = 0.5
    assert hv[-1][1] == pytest.approx(0.5, rel=1e-6) and s["hypervolume"] == pytest.approx(0.5, rel=1e-6)
    assert "analytic" in render_front(front, cfg)


def test_pick_expressions_are_parsed_not_evaluated() -> None:
    from nas.study.winner import ExportError, parse_pick

    assert parse_pick("max accuracy where flash_kb<=64 and ram_kb<32") == (
        "max", "accuracy", [("flash_kb", "<=", 64.0), ("ram_kb", "<", 32.0)])
    assert parse_pick("min latency_ms") == ("min", "latency_ms", [])
    for bad in ("max __import__('os')", "best accuracy", "max accuracy where flash_kb<=x", "max colour"):
        with pytest.raises(ExportError):
            parse_pick(bad)


def test_tiny_search_end_to_end(tmp_path: Path, tiny_corpus: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Three trials with the analytic evaluator on the tiny corpus; then the study is read back by
    `nas pareto`. A budget that every candidate exceeds leaves them untrained (hardware first)."""
    from nas.cli import main as nas_main

    monkeypatch.chdir(tmp_path)
    args = ["search", "--name", "tiny", "--data", str(tiny_corpus), "--evaluator", "analytic", "--trials", "2",
            "--space", "dnn", "--epochs", "1", "--objectives", "error,flash_bytes,macs"]
    assert nas_main(args) == 0
    study = optuna.load_study(study_name="tiny", storage="sqlite:///runs/tiny/study.db")
    done = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(done) == 2 and all(t.user_attrs["trained"] for t in done)
    t = done[0]
    assert {"spec", "flash_bytes", "ram_bytes", "latency_ms", "int8_val_accuracy", "checkpoint", "tflite"} <= set(
        t.user_attrs)
    assert Path(t.user_attrs["tflite"]).is_file() and t.values[0] == pytest.approx(1 - t.user_attrs["int8_val_accuracy"])
    assert nas_main(["pareto", "--study", "tiny"]) == 0
    # plots, with a preset trained and measured like the trials as a labelled reference point
    assert nas_main(["plot", "--study", "tiny", "--presets", "dnn-s"]) == 0
    pngs = sorted(p.name for p in Path("runs/tiny/plots").glob("*.png"))
    assert pngs == ["hypervolume.png", "pareto_error_vs_flash_bytes.png", "pareto_error_vs_macs.png",
                    "pareto_flash_bytes_vs_macs.png"]
    assert len(list(Path("runs/tiny/plots").glob("*.html"))) == 3
    ref = json.loads(Path("runs/tiny/references/dnn-s/figures.json").read_text())
    assert ref["trained"] and ref["hw_evaluator"] == "analytic"
    front_json = json.loads(Path("runs/tiny/plots/front.json").read_text())
    assert front_json["references"][0]["label"] == "dnn-s"
    # export the best trial: same weights, so the re-measured figures must equal the study's
    assert nas_main(["export", "--study", "tiny", "--pick", "max accuracy where flash_kb<=100000", "--out",
                     "winner"]) == 0
    report = json.loads(Path("winner/report.json").read_text())
    assert report["trial"] in [t.number for t in done] and Path("winner/REPORT.md").is_file()
    assert Path("winner/model_int8.tflite").is_file() and not report["hardware_differences_after_retraining"]
    assert nas_main(["export", "--study", "tiny", "--pick", "max accuracy where flash_kb<=0.001", "--out", "x"]) == 2
    # every candidate over a 1-byte RAM budget: refused by the static check (never measured, never trained),
    # and the search gives up after MAX_REFUSED_FACTOR x the target; without the check, measured, not trained
    assert nas_main(["search", "--name", "tiny2", "--data", str(tiny_corpus), "--evaluator", "analytic",
                     "--trials", "1", "--space", "dnn", "--budget", "ram_bytes=1"]) == 0
    study2 = optuna.load_study(study_name="tiny2", storage="sqlite:///runs/tiny2/study.db")
    assert len(study2.trials) == MAX_REFUSED_FACTOR
    assert all(not t.user_attrs["trained"] and "ram_bytes at least" in t.user_attrs["static_reject"]
               and "ram_bytes" not in t.user_attrs and t.constraints["ram_bytes"] > 0 for t in study2.trials)
    assert nas_main(["search", "--name", "tiny3", "--data", str(tiny_corpus), "--evaluator", "analytic",
                     "--trials", "1", "--space", "dnn", "--budget", "ram_bytes=1", "--no-static-filter",
                     "--time-limit", "10"]) == 0
    study3 = optuna.load_study(study_name="tiny3", storage="sqlite:///runs/tiny3/study.db")
    assert study3.trials and all(not t.user_attrs["trained"] and t.user_attrs["ram_bytes"] > 1
                                 and t.constraints["ram_bytes"] > 0 for t in study3.trials)


def test_tiny_search_on_the_emulated_board_and_export(tmp_path: Path, tiny_corpus: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The real thing, small: two trained candidates measured on the emulated M4, then the winner exported
    and re-measured identically (same weights), with its firmware project."""
    from hardware.emulator import have_qemu
    from hardware.firmware import have_toolchain
    from nas.cli import main as nas_main

    if not (have_qemu() and have_toolchain()):
        pytest.skip("qemu-system-arm or arm-none-eabi-gcc missing (scripts/bootstrap.sh installs them)")
    monkeypatch.chdir(tmp_path)
    assert nas_main(["search", "--name", "emu", "--data", str(tiny_corpus), "--trials", "2", "--space", "dnn",
                     "--no-warm-start",
                     "--epochs", "1", "--objectives", "error,flash_bytes,ram_bytes,latency"]) == 0
    study = optuna.load_study(study_name="emu", storage="sqlite:///runs/emu/study.db")
    done = [t for t in study.trials if t.state == TrialState.COMPLETE and t.user_attrs["trained"]]
    assert len(done) == 2
    for t in done:
        a = t.user_attrs
        assert a["hw_evaluator"] == "emulator" and a["counter"] == "instructions" and a["output_match"] is True
        assert a["latency_kind"] == "estimated" and a["flash_bytes"] > a["int8_tflite_bytes"] // 2
        # the device check ran the trained model on validation clips' features, and compared its logits too
        assert a["check_inputs_real"] == 3 and a["check_tensors"] >= 1
    assert nas_main(["export", "--study", "emu", "--trial", str(done[0].number), "--out", "win"]) == 0
    report = json.loads(Path("win/report.json").read_text())
    assert not report["hardware_differences_after_retraining"] and report["measurement"]["output_match"]
    assert Path("win/firmware/fw.elf").is_file() and Path("win/firmware/Makefile").is_file()


def test_a_search_logged_to_a_file_prints_a_line_per_trial(tmp_path: Path, tiny_corpus: Path,
                                                            monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """Under nohup, CI or `> search.log` the bar is off: every finished trial is still one line."""
    import os
    import re
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "nas", "search", "--name", "piped", "--data", str(tiny_corpus),
                          "--evaluator", "analytic", "--trials", "2", "--space", "dnn", "--epochs", "1",
                          "--no-warm-start"], cwd=tmp_path, capture_output=True, text=True, timeout=600,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.returncode == 0, out.stderr[-2000:]
    lines = [line for line in out.stdout.splitlines() if re.match(r"trial \d+ ", line)]
    assert len(lines) == 2, out.stdout
    for n, line in enumerate(lines, 1):
        assert " COMPLETE  acc " in line and " KB  RAM " in line and " ms  train " in line
        assert f"| {n}/2 trained | " in line and " elapsed" in line
    assert "left" in lines[0]  # the estimate, from the first trained trial on
    # export's retraining (stdout captured, so not a terminal either): a line per epoch
    from nas.cli import main as nas_main

    monkeypatch.chdir(tmp_path)
    assert nas_main(["export", "--study", "piped", "--trial", "0", "--retrain-epochs", "2", "--out", "win"]) == 0
    epochs = [line for line in capsys.readouterr().out.splitlines() if line.startswith("retraining trial 0: epoch ")]
    assert [e.split(",")[0] for e in epochs] == ["retraining trial 0: epoch 1/2", "retraining trial 0: epoch 2/2"]
