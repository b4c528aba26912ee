"""nas.features: presets, config data, hand-checkable cases, numpy/JAX agreement, and TensorFlow's own values.

Tolerances (absolute, on features):
- numpy vs TensorFlow: hello-edge 1e-5 (TF's AudioSpectrogram/Mfcc compute in double like we do);
  tf.signal presets 1e-4 (TF computes them in float32).
- JAX (float32) vs numpy (float64) and vs TF: 1e-4 on silence, noise, DC offsets and the reference clips.
  On arbitrary real speech, 99.9 % of values agree within 1e-4 and all within 1e-3: a float32 STFT carries
  rounding noise ~1e-7 of the frame's norm, so a mel channel ~80 dB below the frame's loudest one is only
  known to ~1e-4 relative (over all 4890 clips of the v0.02 test set: max 1.4e-4 for hello-edge,
  1.6e-4 for mlperf-tiny, 5.3e-4 for log-mel; 99.99th percentile <= 7e-5).
- A pure tone is the extreme of that: its far channels sit ~120 dB down, where float32 cannot resolve them
  (TF's own float32 tf.signal pipeline is 1.6e-3..4e-3 off the float64 values): 1e-2 there.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import wave
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nas.features import (
    PRESETS,
    FrontEndConfig,
    features_numpy,
    get_frontend,
    hann_window,
    make_features_jax,
    mel_centres_hz,
    mel_matrix,
    peak_normalize_jax,
    peak_normalize_numpy,
)
from nas.features.filterbanks import hz_to_mel
from tests.helpers.paths import FIXTURES

FIXTURE = FIXTURES / "frontend_tf_reference.json"
CLIP = 16_000
EXPECTED_SHAPES = {
    "hello-edge": (49, 10),
    "hello-edge-dnn": (25, 10),
    "mlperf-tiny": (49, 10),
    "log-mel": (49, 40),
    "edge-impulse": (50, 13),  # 20 ms frames, 20 ms stride, 13 coefficients
}
# The presets with TensorFlow's own values in the fixture (made where TensorFlow runs). edge-impulse uses the
# same Mfcc-op algorithm as hello-edge with other window, stride and counts, so hello-edge's check covers it.
TF_CHECKED = ("hello-edge", "hello-edge-dnn", "log-mel", "mlperf-tiny")


@functools.cache
def jitted(cfg: FrontEndConfig):
    return jax.jit(make_features_jax(cfg))


def read_clip(path: Path) -> np.ndarray:
    """A 16-bit mono clip as float32 int16 / 32768, zero-padded or cut to one second (as decode_wav)."""
    with wave.open(str(path), "rb") as w:
        samples = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    out = np.zeros(CLIP, dtype=np.float32)
    out[: min(CLIP, samples.size)] = samples[:CLIP] / 32768.0
    return out


def synthetic_int16(spec: dict) -> np.ndarray:
    """Same generator as experiments/reference/make_frontend_reference.py (tied by the stored SHA-256)."""
    n = np.arange(CLIP)
    if spec["kind"] == "tone":
        x = spec["amplitude"] * 32768.0 * np.sin(2.0 * np.pi * spec["hz"] * n / 16_000)
    elif spec["kind"] == "zeros":
        x = np.zeros(CLIP)
    elif spec["kind"] == "noise":
        x = np.random.default_rng(spec["seed"]).normal(0.0, spec["std_lsb"], CLIP)
    else:
        raise ValueError(spec)
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)


def tone(hz: float, amplitude: float = 0.5) -> np.ndarray:
    return (amplitude * np.sin(2 * np.pi * hz * np.arange(CLIP) / 16_000)).astype(np.float32)


def quiet_clips() -> dict[str, np.ndarray]:
    """Silence, near-silence with DC offsets, noise at several levels, and a click, on the int16 grid."""
    rng = np.random.default_rng(7)

    def grid(x: np.ndarray) -> np.ndarray:
        return (np.clip(np.round(x), -32768, 32767) / 32768.0).astype(np.float32)

    click = np.zeros(CLIP)
    click[8000] = 16384  # on a zero of the 640-sample window for frame 25
    return {
        "zeros": np.zeros(CLIP, np.float32),
        "dc 1 LSB": grid(np.ones(CLIP)),
        "dc -300 + 0.5 LSB noise": grid(-300 + rng.normal(0, 0.5, CLIP)),
        "dc 1000 + 3 LSB noise": grid(1000 + rng.normal(0, 3, CLIP)),
        "noise 1 LSB": grid(rng.normal(0, 1, CLIP)),
        "noise 8 LSB": grid(rng.normal(0, 8, CLIP)),
        "noise -10 dBFS": grid(rng.normal(0, 0.3 * 32768, CLIP)),
        "click": grid(click),
    }


# ---- shapes ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_shapes(name: str) -> None:
    cfg = get_frontend(name)
    assert cfg.feature_shape == EXPECTED_SHAPES[name]
    audio = np.stack([tone(1000.0), np.zeros(CLIP, np.float32)])
    for out in (features_numpy(audio, cfg), np.asarray(jitted(cfg)(audio))):
        assert out.shape == (2, *EXPECTED_SHAPES[name]) and out.dtype == np.float32
        assert np.all(np.isfinite(out))
    assert features_numpy(audio[0], cfg).shape == cfg.feature_shape
    assert jitted(cfg)(audio[0]).shape == cfg.feature_shape


@pytest.mark.parametrize(
    ("name", "overrides", "shape"),
    [
        ("hello-edge", {"window_samples": 480, "stride_samples": 160}, (98, 10)),
        ("hello-edge", {"window_samples": 400, "stride_samples": 160, "n_coeffs": 13}, (98, 13)),
        ("hello-edge", {"n_mels": 32, "n_coeffs": None}, (49, 32)),
        ("hello-edge", {"window_samples": 641, "stride_samples": 333}, (47, 10)),  # odd, coprime-ish
        ("mlperf-tiny", {"fft_size": 1024, "n_coeffs": 20}, (49, 20)),
        ("mlperf-tiny", {"window_samples": 481, "stride_samples": 320}, (49, 10)),  # odd: TF's symmetric Hann
        ("log-mel", {"window_samples": 16_000, "stride_samples": 1}, (1, 40)),
    ],
)
def test_overridden_shapes_and_agreement(name: str, overrides: dict, shape: tuple[int, int]) -> None:
    cfg = get_frontend(name, **overrides)
    assert cfg.feature_shape == shape
    assert cfg.n_frames == len(range(0, cfg.clip_samples - cfg.window_samples + 1, cfg.stride_samples))
    audio = quiet_clips()["noise 8 LSB"][None] + tone(700.0, 0.1)
    ours, theirs = features_numpy(audio, cfg), np.asarray(jitted(cfg)(audio))
    assert ours.shape == theirs.shape == (1, *shape)
    np.testing.assert_allclose(theirs, ours, rtol=0, atol=1e-4)


def test_bad_audio_shapes() -> None:
    cfg = get_frontend("hello-edge")
    with pytest.raises(ValueError, match="16000"):
        features_numpy(np.zeros((2, 15_999), np.float32), cfg)
    with pytest.raises(ValueError, match="dtype"):
        features_numpy(np.zeros((2, CLIP), np.int16), cfg)
    with pytest.raises(ValueError, match="16000"):
        make_features_jax(cfg)(jnp.zeros((2, 3, CLIP)))


# ---- TensorFlow's own values ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tf_reference(sc_test_set: Path) -> tuple[dict, np.ndarray]:
    reference = json.loads(FIXTURE.read_text())
    clips = []
    for spec in reference["clips"]:
        if spec["kind"] == "wav":
            path = sc_test_set / spec["path"]
            if not path.is_file():
                pytest.skip(f"{path} not found")
            samples = np.round(read_clip(path) * 32768.0).astype(np.int16)
        else:
            samples = synthetic_int16(spec)
        assert hashlib.sha256(samples.astype("<i2").tobytes()).hexdigest() == spec["int16_sha256"], spec
        clips.append(samples / np.float32(32768.0))
    return reference, np.stack(clips).astype(np.float32)


def tf_tolerance(name: str, backend: str, spec: dict) -> float:
    if spec["kind"] == "tone" and (backend == "jax" or not name.startswith("hello-edge")):
        return 1e-2  # float32 cannot resolve a pure tone's channels ~120 dB down (module docstring)
    if backend == "numpy" and name.startswith("hello-edge"):
        return 1e-5
    return 1e-4


@pytest.mark.parametrize("backend", ["numpy", "jax"])
@pytest.mark.parametrize("name", TF_CHECKED)
def test_matches_tensorflow(tf_reference: tuple[dict, np.ndarray], name: str, backend: str) -> None:
    reference, audio = tf_reference
    cfg = get_frontend(name)
    expected = np.array(reference["features"][name])
    ours = features_numpy(audio, cfg) if backend == "numpy" else np.asarray(jitted(cfg)(audio))
    assert ours.shape == expected.shape
    for spec, got, want in zip(reference["clips"], ours, expected, strict=True):
        np.testing.assert_allclose(
            got, want, rtol=0, atol=tf_tolerance(name, backend, spec), err_msg=str(spec)
        )


def test_reference_describes_the_presets() -> None:
    reference = json.loads(FIXTURE.read_text())
    assert set(reference["features"]) == set(TF_CHECKED)
    for name, values in reference["features"].items():
        assert np.array(values).shape[1:] == get_frontend(name).feature_shape
    assert FIXTURE.stat().st_size < 300_000
    assert all(not spec.get("path", "").startswith("/") for spec in reference["clips"])


# ---- numpy vs JAX ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_numpy_jax_agree_on_silence_and_noise(name: str) -> None:
    cfg = get_frontend(name)
    clips = quiet_clips()
    audio = np.stack(list(clips.values()))
    diff = np.abs(features_numpy(audio, cfg) - np.asarray(jitted(cfg)(audio))).max(axis=(1, 2))
    assert np.all(diff <= 1e-4), dict(zip(clips, diff.tolist(), strict=True))


@pytest.fixture(scope="module")
def speech_sample(sc_test_set: Path) -> np.ndarray:
    paths = sorted(sc_test_set.glob("*/*.wav"))[::100]  # ~49 clips spread over every class folder
    if len(paths) < 10:
        pytest.skip(f"too few clips under {sc_test_set}")
    return np.stack([read_clip(p) for p in paths])


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_numpy_jax_agree_on_real_speech(speech_sample: np.ndarray, name: str) -> None:
    cfg = get_frontend(name)
    diff = np.abs(features_numpy(speech_sample, cfg) - np.asarray(jitted(cfg)(speech_sample)))
    assert np.quantile(diff, 0.999) <= 1e-4
    assert diff.max() <= 1e-3  # float32 STFT noise in channels ~80 dB below the frame's peak (docstring)


# ---- hand-checkable cases -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["hello-edge", "log-mel"])  # one per filterbank
@pytest.mark.parametrize("channel", [6, 13, 21, 29, 37])
@pytest.mark.parametrize("offset", [-0.25, 0.0, 0.3])  # in units of the mel spacing between centres
def test_tone_lands_in_nearest_band(name: str, channel: int, offset: float) -> None:
    cfg = get_frontend(name, n_coeffs=None)
    centres_mel = hz_to_mel(mel_centres_hz(cfg.filterbank, cfg.n_mels, cfg.lower_hz, cfg.upper_hz))
    tone_mel = centres_mel[channel] + offset * (centres_mel[1] - centres_mel[0])
    hz = 700.0 * math.expm1(tone_mel / 1127.0)
    assert int(np.abs(centres_mel - tone_mel).argmin()) == channel
    audio = tone(hz)
    for log_mel in (features_numpy(audio, cfg), np.asarray(jitted(cfg)(audio))):
        assert np.all(log_mel.argmax(axis=-1) == channel), f"{hz:.1f} Hz"


def test_silence_gives_the_floor() -> None:
    silence = np.zeros((1, CLIP), np.float32)
    for name, epsilon in (("hello-edge", 1e-12), ("mlperf-tiny", 1e-6)):
        cfg = get_frontend(name)
        # Every channel is log(epsilon); the DCT of a constant is sqrt(2 N) * log(epsilon) in c0, 0 elsewhere.
        expected = np.zeros(cfg.feature_shape)
        expected[:, 0] = math.sqrt(2 * cfg.n_mels) * math.log(epsilon)
        np.testing.assert_allclose(features_numpy(silence, cfg)[0], expected, rtol=0, atol=2e-5)
        np.testing.assert_allclose(np.asarray(jitted(cfg)(silence))[0], expected, rtol=0, atol=1e-4)
    for name in ("log-mel",):
        cfg = get_frontend(name)
        assert np.all(features_numpy(silence, cfg) == np.float32(math.log(1e-6)))
        np.testing.assert_allclose(np.asarray(jitted(cfg)(silence)), math.log(1e-6), rtol=0, atol=2e-6)


def test_gain_shifts_c0_only_without_peak_normalisation() -> None:
    # The mel energies of hello-edge scale with the gain a, so every log-mel channel moves by ln(a):
    # c0 moves by sqrt(2 N) ln(a), higher coefficients stay put (noise keeps every channel above the floor).
    cfg = get_frontend("hello-edge")
    audio = quiet_clips()["noise -10 dBFS"][None]
    base, scaled = features_numpy(audio, cfg)[0], features_numpy(0.25 * audio, cfg)[0]
    np.testing.assert_allclose(scaled[:, 0] - base[:, 0], math.sqrt(80) * math.log(0.25), atol=1e-4)
    np.testing.assert_allclose(scaled[:, 1:], base[:, 1:], atol=1e-4)


def test_peak_normalisation_semantics() -> None:
    rows = np.array([[0.5, -1.0, 0.25], [-0.5, -0.25, 0.0], [0.0, 0.0, 0.0]], np.float32)
    expected = np.array([[1.0, -2.0, 0.5], [-1.0, -0.5, 0.0], [0.0, 0.0, 0.0]], np.float32)
    np.testing.assert_array_equal(peak_normalize_numpy(rows), expected)  # max, not max-abs; guards
    np.testing.assert_array_equal(np.asarray(peak_normalize_jax(jnp.asarray(rows))), expected)


@pytest.mark.parametrize("name", ["mlperf-tiny", "hello-edge"])
def test_peak_normalisation_removes_gain(speech_sample: np.ndarray, name: str) -> None:
    cfg = get_frontend(name, peak_normalize=True)
    audio = speech_sample[:4]
    base = features_numpy(audio, cfg)
    for gain in (0.5, 0.3, 1.7):
        np.testing.assert_allclose(features_numpy(gain * audio, cfg), base, rtol=0, atol=1e-4)
        np.testing.assert_allclose(np.asarray(jitted(cfg)(gain * audio)), base, rtol=0, atol=1e-3)
    unnormalised = cfg.replace(peak_normalize=False)
    assert np.abs(features_numpy(0.5 * audio, unnormalised) - features_numpy(audio, unnormalised)).max() > 1.0


def test_mfcc_op_filterbank_bounds() -> None:
    # hello-edge: 513 bins of 15.625 Hz; the op uses bins int(1.5 + 20/15.625) = 2 .. int(4000/15.625) = 256.
    weights = mel_matrix("tf-mfcc-op", 16_000, 513, 40, 20.0, 4000.0)
    used = np.flatnonzero(weights.any(axis=1))
    assert used[0] == 2 and used[-1] == 255  # bin 256 sits exactly on mel(upper): weight 0
    centres_hz = mel_centres_hz("tf-mfcc-op", 40, 20.0, 4000.0)
    bin_hz = 15.625 * np.arange(513)
    between_centres = (bin_hz > centres_hz[0]) & (bin_hz <= centres_hz[-1])
    np.testing.assert_allclose(weights[between_centres].sum(axis=1), 1.0, atol=1e-12)  # w + (1 - w)


def test_tf_signal_filterbank_shape() -> None:
    weights = mel_matrix("tf-signal", 16_000, 257, 40, 20.0, 4000.0)
    assert weights.shape == (257, 40) and np.all(weights[0] == 0) and np.all(weights >= 0)
    assert np.all(weights.max(axis=0) > 0.5) and np.all(weights.max(axis=0) <= 1.0)


def test_hann_windows() -> None:
    np.testing.assert_allclose(
        hann_window(640, "tf-mfcc-op"), 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(640) / 640)
    )
    np.testing.assert_array_equal(hann_window(480, "tf-signal"), hann_window(480, "tf-mfcc-op"))
    odd = hann_window(481, "tf-signal")  # tf.signal.hann_window(periodic=True) is symmetric for odd lengths
    np.testing.assert_allclose(odd, odd[::-1], atol=1e-15)
    assert not np.allclose(hann_window(481, "tf-mfcc-op"), odd)


# ---- JAX function properties ----------------------------------------------------------------------------------


def test_jit_deterministic_and_equal_to_eager(speech_sample: np.ndarray) -> None:
    cfg = get_frontend("mlperf-tiny")
    audio = jnp.asarray(speech_sample[:6])
    fn = make_features_jax(cfg)
    first, second = np.asarray(jitted(cfg)(audio)), np.asarray(jitted(cfg)(audio))
    np.testing.assert_array_equal(first, second)
    np.testing.assert_allclose(np.asarray(fn(audio)), first, rtol=0, atol=1e-4)
    np.testing.assert_allclose(np.asarray(jax.jit(jax.vmap(fn))(audio)), first, rtol=0, atol=1e-4)

    @jax.jit
    def step(batch: jax.Array, key: jax.Array) -> jax.Array:  # as inside a training step with augmentation
        noisy = batch + 0.01 * jax.random.normal(key, batch.shape)
        return fn(noisy).mean()

    assert np.isfinite(float(step(audio, jax.random.key(0))))


# ---- config data ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_config_json_round_trip(name: str) -> None:
    cfg = get_frontend(name)
    again = FrontEndConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg and again.digest() == cfg.digest()
    assert json.loads(cfg.to_json()) == cfg.to_dict()


def test_digest_is_stable_and_sensitive() -> None:
    cfg = get_frontend("hello-edge")
    # Pinned: a change here invalidates every feature cache; bump FEATURE_ALGORITHM_VERSION deliberately.
    assert cfg.digest() == "0ef25ff418f60096"
    assert get_frontend("hello-edge", lower_hz=20).digest() == cfg.digest()  # 20 == 20.0
    assert FrontEndConfig(**cfg.to_dict()).digest() == cfg.digest()
    changes = {
        "name": "x",
        "window_samples": 480,
        "stride_samples": 160,
        "sample_rate_hz": 8000,
        "clip_samples": 8000,
        "fft_size": 2048,
        "spectrum": "magnitude",
        "filterbank": "tf-signal",
        "n_mels": 32,
        "lower_hz": 40.0,
        "upper_hz": 3800.0,
        "log_style": "offset",
        "log_epsilon": 1e-6,
        "n_coeffs": 13,
        "peak_normalize": True,
    }
    assert set(changes) == {f.name for f in dataclasses.fields(FrontEndConfig)}
    digests = {cfg.replace(**{field: value}).digest() for field, value in changes.items()}
    assert len(digests) == len(changes) and cfg.digest() not in digests


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"window_samples": 16_001}, "longer than the clip"),
        ({"stride_samples": 0}, "stride_samples must be > 0"),
        ({"stride_samples": -320}, "stride_samples must be > 0"),
        ({"window_samples": 1}, "window_samples must be >= 2"),
        ({"upper_hz": 8001.0}, "Nyquist"),
        ({"lower_hz": 4000.0}, "lower_hz < upper_hz"),
        ({"lower_hz": -1.0}, "lower_hz < upper_hz"),
        ({"n_coeffs": 41}, "n_coeffs"),
        ({"n_coeffs": 0}, "n_coeffs"),
        ({"spectrum": "phase"}, "unknown spectrum"),
        ({"filterbank": "librosa"}, "unknown filterbank"),
        ({"log_style": "log1p"}, "unknown log_style"),
        ({"log_epsilon": 0.0}, "log_epsilon"),
        ({"fft_size": 512}, "fft_size"),
        ({"fft_size": 1000}, "power of two"),
        ({"window_samples": 640.0}, "must be an int"),
        ({"peak_normalize": 1}, "peak_normalize"),
        ({"lower_hz": float("nan")}, "finite"),
    ],
)
def test_validation_errors(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        get_frontend("hello-edge", **overrides)


def test_too_many_mels_is_refused_where_the_filterbank_is_built() -> None:
    cfg = get_frontend("hello-edge", n_mels=200, n_coeffs=10)
    with pytest.raises(ValueError, match="too many"):
        features_numpy(np.zeros((1, 16000), np.float32), cfg)
    with pytest.raises(ValueError, match="too many"):
        make_features_jax(cfg)


def test_get_frontend_unknown_and_from_dict_unknown() -> None:
    with pytest.raises(ValueError, match="name must be a non-empty string"):
        PRESETS["hello-edge"].replace(name="")
    with pytest.raises(ValueError, match="hello-edge.*mlperf-tiny"):
        get_frontend("mfcc-13")
    with pytest.raises(ValueError, match="unknown FrontEndConfig fields"):
        FrontEndConfig.from_dict({**PRESETS["hello-edge"].to_dict(), "dither": 0.1})
    assert get_frontend("mlperf-tiny").peak_normalize and not get_frontend("hello-edge").peak_normalize
