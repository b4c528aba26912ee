"""Warm starts: exactly the presets (and user specs) that fit the budgets are queued first, once; budgets
from a reference model; the static check; the paired comparison of final models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import optuna
import pytest

from nas.study.compare import paired_bootstrap
from nas.study.config import SearchConfig
from nas.study.seeds import SEED_ATTR, queue_seeds, resolve_budgets
from nas.study.static_check import StaticCheck, analytic_figures
from search_spaces import get_preset, get_space

optuna.logging.set_verbosity(optuna.logging.WARNING)
BOARD = "mps2-an386"


def _measure(spec) -> dict:
    """The analytic evaluator's figures: a stand-in board that is exact for its own estimates."""
    return {**analytic_figures(spec, BOARD), "fits_board": True}


def _cfg(**kw) -> SearchConfig:
    return SearchConfig(space="ds-cnn", evaluator="analytic", board=BOARD, **kw)


def _queued(study: optuna.Study) -> list[str]:
    return [t.user_attrs.get(SEED_ATTR) for t in study.get_trials(states=(optuna.trial.TrialState.WAITING,))]


def test_exactly_the_fitting_presets_are_queued_once(tmp_path: Path) -> None:
    space = get_space("ds-cnn")
    m = _measure(space.sample(optuna.trial.FixedTrial(space.params_of(get_preset("ds-cnn-m"), snap=True))))
    # DS-CNN-M (snapped to the space's grid) fits with one byte to spare; DS-CNN-L does not
    cfg = _cfg(budgets={k: m[k] + 1 for k in ("flash_bytes", "ram_bytes", "latency_ms")}, scale_seeds=False)
    study = optuna.create_study()
    outcomes = {o.source: o for o in queue_seeds(study, cfg, space, _measure)}
    assert _queued(study) == ["ds-cnn-s", "ds-cnn-m"]
    assert outcomes["ds-cnn-m"].note == "rounded to the space's width grid"
    assert "over a budget" in outcomes["ds-cnn-l"].note and "front end" in outcomes["mlperf-tiny-ds-cnn"].note
    again = queue_seeds(study, cfg, space, _measure)  # a resumed search queues nothing twice
    assert _queued(study) == ["ds-cnn-s", "ds-cnn-m"] and all(not o.queued for o in again)
    # one byte less flash than DS-CNN-M's: the measurement refuses it even where the static check cannot
    tight = cfg.replace(budgets={**cfg.budgets, "flash_bytes": m["flash_bytes"] - 1})
    assert _queued_fresh(tight, space) == ["ds-cnn-s"]
    assert _queued_fresh(_cfg(warm_start=False), space) == []


def _figures(study: optuna.Study, space) -> dict[str, tuple]:
    """Per queued seed: (widths of its layers, its measured figures)."""
    out = {}
    for t in study.get_trials(states=(optuna.trial.TrialState.WAITING,)):
        spec = space.sample(optuna.trial.FixedTrial(t.system_attrs["fixed_params"]))
        out[t.user_attrs[SEED_ATTR]] = ([layer.filters for layer in spec.layers[:-1]], _measure(spec))
    return out


def test_seeds_are_scaled_to_fill_a_larger_budget_or_fit_a_smaller_one() -> None:
    """A search for MicroNet-KWS-S's budgets starts from DS-CNN-S widened and DS-CNN-M/L narrowed to them: the
    widest width multiplier that fits, and nothing over a budget."""
    space = get_space("ds-cnn")
    fig = _measure(get_preset("micronet-kws-s"))
    budgets = {k: fig[k] for k in ("flash_bytes", "ram_bytes", "latency_ms")}
    study = optuna.create_study()
    outcomes = queue_seeds(study, _cfg(budgets=budgets), space, _measure)
    queued = _figures(study, space)
    assert list(queued) == ["ds-cnn-s", "ds-cnn-s x1.75", "ds-cnn-m x0.625", "ds-cnn-l x0.25"]
    assert queued["ds-cnn-s x1.75"][0] == [112] * 5  # 64 x 1.75: every width scaled alike
    for _, figures in queued.values():
        assert all(figures[k] <= v for k, v in budgets.items())
    # the widest: the next multiplier up breaks a budget
    wider = _measure(space.sample(optuna.trial.FixedTrial(space.params_of(get_preset("ds-cnn-s").widened(2.0),
                                                                          snap=True))))
    assert any(wider[k] > v for k, v in budgets.items())
    assert any(o.source == "ds-cnn-m" and "over a budget" in o.note for o in outcomes)
    # at DS-CNN-S's own budgets nothing wider fits and no narrower DS-CNN-M/L does either (their 2x1 stems
    # double the activations): only DS-CNN-S itself is queued
    own = _measure(get_preset("ds-cnn-s"))
    assert _queued_fresh(_cfg(budgets={k: own[k] for k in budgets}), space) == ["ds-cnn-s"]
    assert _queued_fresh(_cfg(budgets=budgets, scale_seeds=False), space) == ["ds-cnn-s"]


def test_widened_keeps_residual_blocks_legal() -> None:
    spec = get_preset("ds-cnn-s")
    space = get_space("ds-cnn")
    res = space.sample(optuna.trial.FixedTrial({**space.params_of(spec), "b1_residual": True}))
    wide = res.widened(1.5)
    assert [getattr(layer, "filters", None) for layer in wide.layers] == [96, 96, 96, 96, 96, None]
    assert wide.layers[2].residual
    with pytest.raises(ValueError, match="width factor"):
        spec.widened(0)


def _queued_fresh(cfg: SearchConfig, space) -> list[str]:
    study = optuna.create_study()
    queue_seeds(study, cfg, space, _measure)
    return _queued(study)


def test_user_seed_archs_are_queued_and_bad_ones_named(tmp_path: Path) -> None:
    space = get_space("ds-cnn")
    spec = space.sample(optuna.trial.FixedTrial({**space.params_of(get_preset("ds-cnn-s")), "b3_width": 48}))
    path = tmp_path / "mine.json"
    path.write_text(spec.to_json())
    study = optuna.create_study()
    queue_seeds(study, _cfg(warm_start=False, seed_archs=(str(path), "ds-cnn-s")), space, _measure)
    assert _queued(study) == [str(path), "ds-cnn-s"]
    with pytest.raises(ValueError, match="nope.json"):
        queue_seeds(study, _cfg(seed_archs=("nope.json",)), space, _measure)


def test_budgets_from_a_reference_model_or_the_board() -> None:
    cfg = resolve_budgets(_cfg(budget_from="ds-cnn-s", budgets={"ram_bytes": 9999.0}), _measure, 12)
    fig = _measure(get_preset("ds-cnn-s"))
    assert cfg.budgets == {"flash_bytes": fig["flash_bytes"], "ram_bytes": 9999.0, "latency_ms": fig["latency_ms"]}
    board = resolve_budgets(_cfg(budget_from="board"), _measure, 12)
    assert board.budgets == {"flash_bytes": 4 * 2**20, "ram_bytes": 4 * 2**20}  # the AN386 image's 4 MiB + 4 MiB
    with pytest.raises(ValueError, match="neither a preset"):
        resolve_budgets(_cfg(budget_from="no-such-model"), _measure, 12)


def test_static_check_refuses_only_what_cannot_fit() -> None:
    ds_cnn_s = get_preset("ds-cnn-s")
    own = _measure(ds_cnn_s)
    check = StaticCheck({k: own[k] for k in ("flash_bytes", "ram_bytes", "latency_ms")}, BOARD, "analytic")
    assert check.reason(ds_cnn_s) is None  # at its own figures it fits
    assert "flash_bytes at least" in check.reason(get_preset("ds-cnn-l"))  # more parameter bytes than flash
    assert StaticCheck({"params": 1000}, BOARD).reason(ds_cnn_s).startswith("params 22,604 > 1,000")
    assert "ram_bytes at least" in StaticCheck({"ram_bytes": 4000}, BOARD).reason(ds_cnn_s)  # an 8,000-byte map
    emu = StaticCheck({"latency_ms": own["latency_ms"] * 0.99}, BOARD, "emulator")  # tolerance: may still fit
    assert emu.reason(ds_cnn_s) is None
    assert StaticCheck({"latency_ms": own["latency_ms"] * 0.9}, BOARD, "emulator").reason(ds_cnn_s)
    assert StaticCheck({"latency_ms": 1.0}, BOARD, "serial").reason(ds_cnn_s) is None  # cycles: not estimated


def test_paired_bootstrap() -> None:
    rng = np.random.default_rng(0)
    base = rng.random((3, 900)) < 0.85
    same = paired_bootstrap(base, base)
    assert same.mean_points == 0 and same.low_points == 0 and same.high_points == 0
    better = base.copy()
    better[:, :45] = True  # 5 % of the clips now right for every seed
    d = paired_bootstrap(better, base)
    assert d.low_points > 0 and d.mean_points == pytest.approx(100 * (better.mean() - base.mean()))
    noisy = paired_bootstrap(rng.random((3, 900)) < 0.85, base)
    assert noisy.low_points < 0 < noisy.high_points or abs(noisy.mean_points) > 1.5
    with pytest.raises(ValueError, match="different clips"):
        paired_bootstrap(base[:, :10], base)
