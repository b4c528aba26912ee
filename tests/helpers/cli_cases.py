"""Wrong `nas` command lines for the CLI fuzz test: every verb with a missing, malformed, out-of-range or
unknown argument. ``cases(paths)`` fills in real files (a model, a spec, a corpus) where a case needs a
valid one beside the wrong one. Every case must end with exit 2 and an error line, quickly."""

from __future__ import annotations

from pathlib import Path


def cases(model: Path, spec: Path, corpus: Path, bad_toml: Path, missing: Path, out: Path) -> list[list[str]]:
    m, s, c, x, o = str(model), str(spec), str(corpus), str(missing), str(out)
    train = ["train", "--arch", "ds-cnn-s", "--data", c]
    return [
        [], ["bogus"], ["--bogus"], ["boards", "--nope"],
        # measure / firmware / inspect
        ["measure"], ["measure", m, "--board", "nope"], ["measure", x, "--board", "mps2-an386"],
        ["measure", m, "--evaluator", "nope"], ["measure", m, "--port", "socket://127.0.0.1:1", "--evaluator",
                                                "analytic"],
        ["measure", m, "--flash-kib", "abc"], ["measure", m, "--flash-kib", "-1"], ["measure", m, "--ram-kib", "0"],
        ["measure", m, "--flash", "pyocd"], ["measure", m, "--variant", "fast"], ["measure", c],
        ["firmware", m, "--board", "mps2-an386"], ["firmware", x, "--board", "mps2-an386", "--out", o],
        ["firmware", m, "--board", "nope", "--out", o],
        ["inspect", x], ["inspect", c], ["inspect"],
        # arch / data
        ["arch", "show", "nope"], ["arch", "show", s, "--classes", "0"], ["arch", "show", s, "--classes", "-3"],
        ["arch", "show", x], ["arch", "sample", "nope"], ["arch", "sample", "ds-cnn", "--n", "-1"],
        ["arch", "sample", "ds-cnn", "--n", "abc"], ["arch", "sample", "ds-cnn", "--frontend", "nope"],
        ["arch", "sample", "ds-cnn", "--classes", "1"],
        ["data", "info", x], ["data", "info", c, "--split-rule", "nope"], ["data", "prepare", "--seed", "x"],
        # train / evaluate / quantize
        ["train", "--arch", "nope", "--data", c], ["train", "--arch", "ds-cnn-s", "--data", x],
        ["train", "--arch", s, "--data", c, "--epochs", "-1"], train + ["--fraction", "0"],
        train + ["--fraction", "2"], train + ["--batch-size", "0"], train + ["--protocol", "nope"],
        train + ["--lr", "-1"], train + ["--time", "-5"], train + ["--threads", "0"], ["train", "--data", c],
        ["train", "--arch", "dnn-s", "--data", c, "--attention-pool"], ["train", "--arch", "dnn-s", "--data", c, "--se"],
        ["evaluate", m, "--data", x], ["evaluate", m], ["evaluate", m, "--data", c, "--features", "nope"],
        ["evaluate", m, "--data", c, "--limit", "-5"], ["evaluate", x, "--data", c],
        ["evaluate", m, "--data", c, "--labels", "a,b"],
        ["quantize", x], ["quantize", c, "--calib-clips", "-1"],
        # search and its companions
        ["search", x], ["search", str(bad_toml)], ["search", "--space", "nope"], ["search", "--board", "nope"],
        ["search", "--sampler", "nope"], ["search", "--objectives", "nope"], ["search", "--budget", "flash_bytes"],
        ["search", "--budget", "flash_bytes=abc"], ["search", "--budget", "nope=5"], ["search", "--trials", "-3"],
        ["search", "--trials", "0"], ["search", "--workers", "0"], ["search", "--data", x],
        ["search", "--fraction", "0"], ["search", "--epochs", "0"], ["search", "--storage", "nope://x"],
        ["search", "--evaluator", "serial"], ["search", "--time-limit", "-1"], ["search", "--name", "../escape"],
        ["worker", "--study", "s"], ["worker", "--storage", "sqlite:///" + x + "/study.db"],
        ["worker", "--study", "s", "--storage", "sqlite:///" + x + "/study.db"],
        ["pareto", "--study", "nope"], ["pareto"], ["plot", "--study", "nope"],
        ["export", "--study", "nope", "--trial", "1", "--out", o], ["export", "--study", "s", "--out", o],
        ["export", "--study", "nope", "--pick", "max nonsense", "--out", o],
        ["dashboard", "--study", "nope"], ["dashboard", "--study", "s", "--port", "abc"],
        # experiments
        ["experiment"], ["experiment", "seed-frameworks", x], ["experiment", "seed-frameworks", "--protocols", "7"],
        ["experiment", "seed-frameworks", "--presets", "nope"], ["experiment", "seed-frameworks", "--board", "nope"],
        ["experiment", "seed-frameworks", "--reference", x], ["experiment", "real-speech-search", "--spaces", "nope"],
        ["experiment", "real-speech-search", "--trials", "-1"], ["experiment", "real-speech-search", str(bad_toml)],
    ]
