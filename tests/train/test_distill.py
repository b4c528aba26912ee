"""Knowledge distillation (`nas.train.distill`): the loss, teachers from checkpoints, and a real distilled run.

A teacher is any kwsnas checkpoint on the same labels; the student's loss mixes the label loss with
T^2 * KL(teacher || student) at temperature T. The tests train a tiny teacher, distil a student from it
(another architecture and front end than the teacher's) and check what a user relies on: the option changes
training, is stored with the checkpoint, and a teacher on other labels is refused with its path named.
"""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nas.features import get_frontend
from nas.train import CheckpointError, TrainConfig, load_checkpoint, prepare_train_data, train
from nas.train.distill import distillation_loss, load_teachers, soft_targets
from search_spaces.spec import ArchSpec, Conv, Dense, DSConv, Flatten, GlobalAvgPool
from tests.helpers.corpus import TINY_WORDS, make_tiny_corpus

BASE = TrainConfig(batch_size=16, max_steps=8, eval_every_steps=4, peak_lr=1e-2)


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory: pytest.TempPathFactory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KWSNAS_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "kwsnas-cache"))
        root = make_tiny_corpus(tmp_path_factory.mktemp("distill") / "corpus", TINY_WORDS)
        yield prepare_train_data(root, "12")


@pytest.fixture(scope="module")
def teacher_dir(tiny_data, tmp_path_factory):
    spec = ArchSpec("teacher", "ds-cnn", get_frontend("hello-edge"),
                    (Conv(8, (10, 4), (2, 2)), DSConv(8), GlobalAvgPool()), 12)
    out = tmp_path_factory.mktemp("teacher") / "ckpt"
    train(spec, tiny_data, BASE.replace(max_steps=12), out_dir=out)
    return out


def _student() -> ArchSpec:  # another family and front end than the teacher's: features per front end
    return ArchSpec("student", "dnn", get_frontend("mlperf-tiny"), (Flatten(), Dense(12, activation="none")), 12)


def test_distillation_loss_is_t_squared_kl_and_vanishes_at_the_teacher():
    rng = np.random.default_rng(0)
    teacher, student = jnp.asarray(rng.normal(size=(5, 12))), jnp.asarray(rng.normal(size=(5, 12)))
    t = 3.0
    p = jax.nn.softmax(teacher / t)
    expected = t**2 * np.mean(np.sum(p * (np.log(p) - jax.nn.log_softmax(student / t)), -1))
    targets = soft_targets([teacher], t)
    assert float(distillation_loss(student, targets, t)) == pytest.approx(float(expected), rel=1e-5)
    assert float(distillation_loss(teacher, targets, t)) == pytest.approx(0.0, abs=1e-5)
    grad = jax.grad(lambda s: distillation_loss(s, targets, t))(student)
    moved = student - 0.5 * grad  # one gradient step brings the student's soft outputs closer to the teacher's
    assert float(distillation_loss(moved, targets, t)) < float(distillation_loss(student, targets, t))


def test_an_ensemble_averages_the_softened_probabilities():
    a, b = jnp.array([[4.0, 0.0, 0.0]]), jnp.array([[0.0, 4.0, 0.0]])
    np.testing.assert_allclose(soft_targets([a, b], 2.0),
                               (jax.nn.softmax(a / 2.0) + jax.nn.softmax(b / 2.0)) / 2, rtol=1e-6)


def test_a_distilled_run_differs_and_is_stored_with_its_checkpoint(tiny_data, teacher_dir, tmp_path):
    student = _student()
    plain = train(student, tiny_data, BASE)
    cfg = BASE.replace(teachers=(str(teacher_dir),), distill_temperature=2.0, distill_weight=0.7)
    distilled = train(student, tiny_data, cfg, out_dir=tmp_path / "student")
    assert np.isfinite(distilled.history[-1]["train_loss"])
    assert distilled.history[0]["train_loss"] != plain.history[0]["train_loss"]
    _, _, meta = load_checkpoint(tmp_path / "student")
    assert meta["config"].teachers == (str(teacher_dir),)
    assert meta["config"].distill_weight == 0.7 and meta["config"].distill_temperature == 2.0
    saved = json.loads((tmp_path / "student" / "train_config.json").read_text())
    assert TrainConfig.from_dict(saved) == cfg


def test_weight_zero_is_plain_training(tiny_data, teacher_dir):
    student = _student()
    plain = train(student, tiny_data, BASE)
    off = train(student, tiny_data, BASE.replace(teachers=(str(teacher_dir),), distill_weight=0.0))
    assert [h["train_loss"] for h in off.history] == pytest.approx([h["train_loss"] for h in plain.history],
                                                                   rel=1e-6)


def test_a_teacher_on_other_labels_is_refused_with_its_path(tiny_data, teacher_dir):
    with pytest.raises(CheckpointError, match=str(teacher_dir)):
        load_teachers((str(teacher_dir),), ["yes", "no"])
    with pytest.raises(CheckpointError, match="checkpoint"):
        load_teachers((str(teacher_dir.parent / "missing"),), tiny_data.labels)


def test_bad_distillation_settings_are_refused():
    with pytest.raises(ValueError, match="distill_weight"):
        TrainConfig(teachers=("x",), distill_weight=1.5)
    with pytest.raises(ValueError, match="distill_temperature"):
        TrainConfig(distill_temperature=0.0)
    with pytest.raises(ValueError, match="teachers"):
        TrainConfig(teachers="not-a-tuple")
