"""The trainer: step, augmentation in JAX, determinism, budgets, best checkpoint, early stopping, checkpoints,
divergence, and ``nas train`` end to end. Tiny network, tiny corpus: one compilation shared by most tests."""

from __future__ import annotations

import json
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nas.data.augment import AugmentConfig, NoiseBank, augment_numpy
from nas.features import get_frontend
from nas.models import build_model, split_model
from nas.train import (
    CheckpointError,
    StepSettings,
    TrainConfig,
    TrainingDiverged,
    create_train_state,
    load_checkpoint,
    make_train_step,
    prepare_train_data,
    train,
)
from nas.train.augment import DeviceNoise, augment_batch
from nas.train.data import host_batch
from nas.train.step import predict_logits
from search_spaces.spec import ArchSpec, Conv, DSConv, GlobalAvgPool
from tests.helpers.corpus import TINY_WORDS, make_tiny_corpus

# Every run below uses these step settings and batch size, so the step compiles once for the module.
BASE = TrainConfig(batch_size=16, max_steps=6, eval_every_steps=3, peak_lr=1e-2)


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory: pytest.TempPathFactory):
    with pytest.MonkeyPatch.context() as mp:  # module scope: set the per-session cache dir by hand
        mp.setenv("KWSNAS_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "kwsnas-cache"))
        root = make_tiny_corpus(tmp_path_factory.mktemp("train") / "corpus", TINY_WORDS)
        data = prepare_train_data(root, "12")
        data.features("validation", get_frontend("hello-edge"))
        data.features("test", get_frontend("hello-edge"))
        yield data


@pytest.fixture(scope="module")
def spec() -> ArchSpec:
    return ArchSpec("tiny", "ds-cnn", get_frontend("hello-edge"),
                    (Conv(8, (10, 4), (2, 2)), DSConv(8), GlobalAvgPool()), 12)


augment_jit = jax.jit(augment_batch, static_argnames="cfg")


def _leaves(tree) -> list[np.ndarray]:
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(tree)]


# --- config --------------------------------------------------------------------------------------------
def test_config_json_round_trip_and_validation():
    cfg = TrainConfig(epochs=None, max_steps=10, time_budget_s=5.0, augment=AugmentConfig(time_shift_samples=800))
    assert TrainConfig.from_json(cfg.to_json()) == cfg
    for bad in ({"epochs": None}, {"epochs": None, "time_budget_s": 60.0}, {"batch_size": 0}, {"train_fraction": 0.0}, {"peak_lr": math.nan},
                {"warmup_fraction": 1.0}, {"time_budget_s": -1.0}):
        with pytest.raises(ValueError):
            TrainConfig(**bad)
    with pytest.raises(ValueError, match="unknown"):
        TrainConfig.from_dict({"batch": 3})


# --- augmentation in JAX --------------------------------------------------------------------------------
def _ramp_bank(*files: tuple[float, float], length: int = 48_000) -> NoiseBank:
    parts = [np.linspace(a, b, length, dtype=np.float32) for a, b in files]
    lengths = np.array([length] * len(parts))
    return NoiseBank(np.concatenate(parts), np.arange(len(parts)) * length, lengths,
                     tuple(f"ramp{i}" for i in range(len(parts))))


def _gains(out: np.ndarray, bank: NoiseBank) -> np.ndarray:
    """The gain of the ramp segment in each row (rows hold gain * a contiguous piece of one ramp)."""
    slope = abs(float(bank.samples[1] - bank.samples[0]))
    return np.abs(out[:, -1] - out[:, 0]) / ((out.shape[1] - 1) * slope)


def test_time_shift_is_uniform_in_range_with_zero_fill():
    cfg = AugmentConfig(background_probability=0.0)
    n, t = 512, 16_000
    audio = np.tile(np.arange(1, t + 1, dtype=np.int16), (n, 1))
    out = np.asarray(augment_jit(jax.random.key(0), jnp.asarray(audio), jnp.zeros(n, bool),
                                   DeviceNoise.from_bank(_ramp_bank((0, 1))), cfg))
    shift = 8000 - (np.round(out[:, 8000] * 32768).astype(int) - 1)
    assert shift.min() >= -1600 and shift.max() <= 1600
    assert shift.min() < -1450 and shift.max() > 1450 and abs(shift.mean()) < 150
    for row, s in zip(out[:64], shift[:64], strict=True):
        expected = np.zeros(t, np.float32)
        src = np.arange(t) - s
        ok = (src >= 0) & (src < t)
        expected[ok] = (src[ok] + 1) / 32768.0
        np.testing.assert_array_equal(row, expected)


def test_background_noise_matches_protocol_and_numpy_reference():
    cfg = AugmentConfig()
    bank = _ramp_bank((0.1, 0.9), (-0.1, -0.9))
    n, t = 2000, 2000
    out = np.asarray(augment_jit(jax.random.key(1), jnp.zeros((n, t), jnp.int16), jnp.zeros(n, bool),
                                   DeviceNoise.from_bank(bank), cfg))
    gains = _gains(out, bank)
    noisy = gains > 0
    assert 0.76 < noisy.mean() < 0.84  # background_probability 0.8
    assert gains.max() <= 0.1 + 1e-5 and abs(gains[noisy].mean() - 0.05) < 0.004  # gain uniform in [0, 0.1]
    assert 0.4 < (out[noisy, 0] < 0).mean() < 0.6  # both files drawn
    ref = augment_numpy(np.zeros((n, t), np.float32), np.zeros(n, bool), bank, np.random.default_rng(1), cfg)
    ref_gains = _gains(ref, bank)
    assert abs((ref_gains > 0).mean() - noisy.mean()) < 0.05
    assert abs(ref_gains[ref_gains > 0].mean() - gains[noisy].mean()) < 0.006


def test_silence_items_are_noise_alone():
    n, t = 1000, 2000
    loud = jnp.full((n, t), 10_000, jnp.int16)
    silent_bank = DeviceNoise.from_bank(NoiseBank(np.zeros(4000, np.float32), np.array([0]), np.array([4000]), ("z",)))
    out = augment_jit(jax.random.key(2), loud, jnp.ones(n, bool), silent_bank, AugmentConfig())
    assert not np.any(np.asarray(out))  # the stored audio of a silence item is ignored
    bank = _ramp_bank((0.1, 0.9))
    out = np.asarray(augment_jit(jax.random.key(3), loud, jnp.ones(n, bool), DeviceNoise.from_bank(bank),
                                   AugmentConfig()))
    gains = _gains(out, bank)
    assert np.all(gains > 0) and gains.max() <= 1.0 + 1e-4  # every silence item gets noise, gain in [0, 1]
    assert abs(gains.mean() - 0.5) < 0.04
    second_difference = np.diff(out, 2, axis=1)
    assert np.abs(second_difference).max() < 1e-5  # a scaled ramp piece and nothing else


# --- the step ----------------------------------------------------------------------------------------------
def test_train_step_reduces_loss_on_a_fixed_batch(tiny_data, spec):
    cfg = BASE.replace(warmup_fraction=0.0)
    graphdef, params, stats = split_model(build_model(spec, 0))
    settings = StepSettings.of(spec.frontend, cfg)
    step = make_train_step(graphdef, settings, tiny_data.device_noise())
    batch = host_batch(tiny_data.train, np.arange(16))
    state = create_train_state(params, stats, settings, cfg, 100)
    state, first = step(state, batch)
    assert int(state.step) == 1
    # Step counter back to 0: the same augmentation draw, so the loss is measured on the same inputs.
    state, again = step(state.replace(step=jnp.zeros((), jnp.int32)), batch)
    assert float(again["loss"]) < float(first["loss"])
    assert math.isclose(float(first["lr"]), cfg.peak_lr, rel_tol=1e-6)


def test_same_seed_bit_identical_other_seed_differs(tiny_data, spec):
    graphdef, params, stats = split_model(build_model(spec, 0))
    settings = StepSettings.of(spec.frontend, BASE)
    step = make_train_step(graphdef, settings, tiny_data.device_noise())
    finals = []
    for _ in range(2):  # the step alone: N steps from equal states on equal batches
        state = create_train_state(jax.tree.map(jnp.copy, params), jax.tree.map(jnp.copy, stats), settings, BASE, 10)
        for i in range(3):
            state, _ = step(state, host_batch(tiny_data.train, np.arange(16 * i, 16 * i + 16)))
        finals.append(_leaves(state.params) + _leaves(state.batch_stats))
    for x, y in zip(*finals, strict=True):
        np.testing.assert_array_equal(x, y)

    a = train(spec, tiny_data, BASE)  # the whole loop: init, permutations, augmentation, evaluation
    b = train(spec, tiny_data, BASE)
    for x, y in zip(_leaves(a.params) + _leaves(a.batch_stats), _leaves(b.params) + _leaves(b.batch_stats),
                    strict=True):
        np.testing.assert_array_equal(x, y)
    for other in (BASE.replace(seed=1), BASE.replace(trial=1)):
        c = train(spec, tiny_data, other)
        assert any(not np.array_equal(x, y) for x, y in zip(_leaves(a.params), _leaves(c.params), strict=True))


def test_train_fraction_is_a_seeded_stratified_subset(tiny_data):
    half = tiny_data.train_indices(0.5, seed=0)
    assert np.array_equal(half, tiny_data.train_indices(0.5, seed=0))
    assert not np.array_equal(half, tiny_data.train_indices(0.5, seed=1))
    labels = tiny_data.train.labels
    for c in np.unique(labels):
        assert (labels[half] == c).sum() == math.ceil(0.5 * (labels == c).sum())


# --- the loop ------------------------------------------------------------------------------------------
def test_keeps_the_best_checkpoint_by_validation(tiny_data, spec, tmp_path):
    cfg = BASE.replace(max_steps=40, eval_every_steps=1, peak_lr=0.05)
    result = train(spec, tiny_data, cfg, out_dir=tmp_path / "run")
    vals = [h["val_accuracy"] for h in result.history]
    best = int(np.argmax(vals))
    assert result.val_accuracy == max(vals) and result.best_step == result.history[best]["step"]
    assert vals[-1] < max(vals)  # this run ends below its best: the checkpoint is not the last state
    model, saved, meta = load_checkpoint(tmp_path / "run", spec)
    assert meta["step"] == result.best_step and meta["metrics"]["val_accuracy"] == max(vals)
    graphdef, params, stats = split_model(model)
    x = jnp.asarray(tiny_data.features("validation", spec.frontend))
    logits = np.asarray(predict_logits(params, stats, x, graphdef=graphdef))
    assert np.mean(logits.argmax(-1) == tiny_data.validation.labels) == max(vals)
    assert json.loads((tmp_path / "run" / "history.json").read_text())["history"] == list(result.history)


@pytest.mark.parametrize("budget, reason", [
    ({"max_steps": 7}, "max_steps"),
    ({"max_steps": None, "epochs": 2}, "epochs"),
    ({"max_steps": 10**6, "epochs": None, "time_budget_s": 1.5}, "time"),
])
def test_budgets_stop_the_run(tiny_data, spec, budget, reason):
    result = train(spec, tiny_data, BASE.replace(**budget))
    assert result.stop_reason == reason
    steps_per_epoch = len(tiny_data.train) // BASE.batch_size
    if reason == "max_steps":
        assert result.steps == 7
    elif reason == "epochs":
        assert result.steps == 2 * steps_per_epoch and result.epochs == 2.0
    else:  # the cap only cuts the run: the schedule stays the 10^6-step one, still in its 5 % warm-up
        assert 1 < result.steps < 10**6
        assert result.history[-1]["lr"] < 0.01 * BASE.peak_lr
    assert result.history[-1]["step"] == result.steps  # always evaluated after the last step


def test_a_time_cap_never_changes_what_is_computed(tiny_data, spec):
    """A cap that does not bind gives bit-identical weights to no cap: the cap is only a safety net."""
    a = train(spec, tiny_data, BASE.replace(max_steps=12))
    b = train(spec, tiny_data, BASE.replace(max_steps=12, time_budget_s=3600.0))
    assert a.stop_reason == b.stop_reason == "max_steps"
    for x, y in zip(_leaves(a.params), _leaves(b.params), strict=True):
        np.testing.assert_array_equal(x, y)
    assert [h["val_accuracy"] for h in a.history] == [h["val_accuracy"] for h in b.history]


def test_after_eval_stops_the_run_where_it_asks(tiny_data, spec):
    seen = []

    def stop_at_epoch_2(entry):
        seen.append(entry)
        return entry["epoch"] >= 2

    full = train(spec, tiny_data, BASE.replace(max_steps=None, epochs=4, eval_every_steps=None))
    cut = train(spec, tiny_data, BASE.replace(max_steps=None, epochs=4, eval_every_steps=None), after_eval=stop_at_epoch_2)
    assert cut.stop_reason == "stopped" and cut.epochs == 2.0 and [e["epoch"] for e in seen] == [1.0, 2.0]
    assert seen[-1]["best_val_accuracy"] == max(e["val_accuracy"] for e in seen)
    # up to the stop, the same run as without the hook (same schedule: the 4-epoch one)
    assert [h["val_accuracy"] for h in cut.history] == [h["val_accuracy"] for h in full.history[:2]]


def test_early_stopping(tiny_data, spec):
    result = train(spec, tiny_data, BASE.replace(max_steps=300, eval_every_steps=1, patience_evals=2))
    assert result.stop_reason == "early_stop" and result.steps < 300
    vals = [h["val_accuracy"] for h in result.history]
    assert max(vals[-2:]) <= max(vals[:-2])


def test_checkpoint_round_trip_gives_identical_logits(tiny_data, spec, tmp_path):
    result = train(spec, tiny_data, BASE, out_dir=tmp_path / "ckpt")
    model, saved, meta = load_checkpoint(tmp_path / "ckpt")
    assert saved == spec and meta["config"] == BASE and meta["step"] == result.best_step
    x = jnp.asarray(tiny_data.features("test", spec.frontend))
    expected = predict_logits(result.params, result.batch_stats, x, graphdef=result.graphdef)
    graphdef, params, stats = split_model(model)
    np.testing.assert_array_equal(np.asarray(predict_logits(params, stats, x, graphdef=graphdef)),
                                  np.asarray(expected))
    np.testing.assert_allclose(np.asarray(model(x)), np.asarray(expected), atol=1e-5)  # eager: other op order
    assert meta["metrics"]["test_accuracy"] == result.test_accuracy
    other = spec.with_classes(10)
    with pytest.raises(CheckpointError, match="saved for architecture"):
        load_checkpoint(tmp_path / "ckpt", other)


def test_corrupt_checkpoint_gives_a_clear_error(tiny_data, spec, tmp_path):
    run = tmp_path / "ckpt"
    train(spec, tiny_data, BASE.replace(max_steps=3), out_dir=run)
    weights = next(run.glob("weights-*.npz"))
    blob = bytearray(weights.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    weights.write_bytes(bytes(blob))
    with pytest.raises(CheckpointError, match=weights.name):
        load_checkpoint(run)
    (run / "checkpoint.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="checkpoint.json"):
        load_checkpoint(run)
    with pytest.raises(CheckpointError, match="checkpoint.json"):
        load_checkpoint(tmp_path / "nowhere")


def test_nan_loss_raises_training_diverged(tiny_data, spec, tmp_path):
    with pytest.raises(TrainingDiverged) as info:
        train(spec, tiny_data, BASE.replace(max_steps=50, eval_every_steps=1, peak_lr=1e38), out_dir=tmp_path / "d")
    err = info.value
    assert err.step < 50 and not math.isfinite(err.loss) and "diverged at step" in str(err)
    assert json.loads((tmp_path / "d" / "history.json").read_text())["diverged_at_step"] == err.step


def test_classes_must_match_the_protocol(tiny_data, spec):
    with pytest.raises(ValueError, match="with_classes"):
        train(spec.with_classes(10), tiny_data, BASE)


# --- CLI -----------------------------------------------------------------------------------------------
def test_cli_train_end_to_end(tiny_data, spec, tmp_path, monkeypatch, capsys):
    from nas.cli import main

    monkeypatch.setenv("KWSNAS_NO_REEXEC", "1")  # in process: no allocator re-exec of pytest
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(spec.with_classes(2).to_json())  # the protocol sets the classes
    out = tmp_path / "cli-run"
    code = main(["train", "--arch", str(spec_file), "--data", str(tiny_data.root), "--steps", "4",
                 "--batch-size", "16", "--lr", "0.01", "--out", str(out), "--json"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["steps"] == 4 and result["stop_reason"] == "max_steps"
    assert result["compiled_kernels"] is True  # the bootstrap builds them; a run says which path it took
    assert 0.0 <= result["val_accuracy"] <= 1.0 and len(result["test"]["confusion"]) == 12
    assert Path(result["checkpoint_dir"]) == out
    model, saved, meta = load_checkpoint(out)
    assert saved.num_classes == 12 and meta["config"].max_steps == 4

    assert main(["train", "--arch", "no-such-net", "--data", str(tiny_data.root), "--steps", "1"]) == 2
    assert "unknown architecture" in capsys.readouterr().err


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="counts Linux memory maps")
def test_a_long_lived_worker_does_not_accumulate_compiled_programs(tiny_data):
    """Each architecture compiles its own programs; a search worker trains hundreds. Without releasing
    them a worker hit vm.max_map_count after ~50 real candidates and died (SIGSEGV in LLVM)."""
    from nas.runtime import release_compiled

    def maps_after(width: int) -> int:
        wider = ArchSpec("w", "ds-cnn", get_frontend("hello-edge"),
                         (Conv(width, (10, 4), (2, 2)), DSConv(width), GlobalAvgPool()), 12)
        train(wider, tiny_data, BASE.replace(max_steps=2, eval_every_steps=2))
        release_compiled()
        return sum(1 for _ in open("/proc/self/maps"))

    first = maps_after(4)
    later = [maps_after(w) for w in (6, 10)]
    assert max(later) <= first + 20, (first, later)  # without the release: +~100 maps per architecture here
