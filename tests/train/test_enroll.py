"""Few-shot keywords (`nas enroll`): a word the model never heard becomes one more output, learnt from a few
clips against the model's own training clips; the old outputs are untouched, the new word is recognised on
speakers it was not enrolled from, the int8 model carries the new labels, and bad input is named."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

from hardware.tflite_io import read_tflite
from nas.data.split import TRAIN, hash_split, speaker_id
from nas.export.metadata import ModelMetadata
from nas.features import get_frontend
from nas.quant.ptq import run_int8
from nas.train import TrainConfig, load_checkpoint, prepare_train_data, train
from nas.train.enroll import clip_features, embed, enroll
from search_spaces.spec import ArchSpec, Conv, DSConv, GlobalAvgPool
from tests.helpers.corpus import TINY_WORDS, make_tiny_corpus

TINY = ArchSpec("tiny", "ds-cnn", get_frontend("hello-edge"), (Conv(8, (10, 4), (2, 2)), DSConv(8), GlobalAvgPool()),
                10)
NEW_WORD = "dog"  # in the corpus, outside the 10 keywords the model is trained on: never heard in training


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KWSNAS_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "kwsnas-cache"))
        root = make_tiny_corpus(tmp_path_factory.mktemp("enroll") / "corpus", TINY_WORDS)
        data = prepare_train_data(root, "10")
        out = tmp_path_factory.mktemp("enroll") / "ckpt"
        train(TINY, data, TrainConfig(batch_size=16, epochs=40, peak_lr=2e-2), out_dir=out)
        yield root, data, out


def _clips(root: Path, word: str, train_speakers: bool) -> list[Path]:
    return sorted(p for p in (root / word).glob("*.wav") if (hash_split(speaker_id(p.name)) == TRAIN) == train_speakers)


def test_enrolled_word_is_recognised_and_old_outputs_are_untouched(trained) -> None:
    root, data, ckpt = trained
    model, spec, meta = load_checkpoint(ckpt)
    fe = spec.frontend
    enrol, held_out = _clips(root, NEW_WORD, True)[:5], _clips(root, NEW_WORD, False)
    negatives = (embed(model, data.features("train", fe)), data.train.labels)
    enrolled = enroll(model, spec, data.labels, NEW_WORD, clip_features(enrol, fe), negatives)
    assert enrolled.labels == (*data.labels, NEW_WORD) and enrolled.spec.num_classes == 11
    test_x = data.features("test", fe)
    old, new = np.asarray(model(jnp.asarray(test_x))), np.asarray(enrolled.model(jnp.asarray(test_x)))
    np.testing.assert_allclose(new[:, :10], old, atol=1e-5)  # the model's own words score as before
    false_accepts = np.mean(new.argmax(1) == 10)
    recognised = np.mean(np.asarray(enrolled.model(jnp.asarray(clip_features(held_out, fe)))).argmax(1) == 10)
    assert recognised >= 0.8 and false_accepts <= 0.1, (recognised, false_accepts)
    # without negatives (imprinting) the same clips give a column that accepts much more of the old words
    imprinted = enroll(model, spec, data.labels, NEW_WORD, clip_features(enrol, fe))
    assert np.mean(np.asarray(imprinted.model(jnp.asarray(test_x))).argmax(1) == 10) >= false_accepts


def test_nas_enroll_writes_a_checkpoint_and_an_int8_model(trained, tmp_path: Path, capsys) -> None:
    from nas.cli import main as nas_main

    root, data, ckpt = trained
    clips = tmp_path / "clips"
    clips.mkdir()
    for p in _clips(root, NEW_WORD, True)[:5]:
        shutil.copy(p, clips / p.name)
    out = tmp_path / "enrolled"
    assert nas_main(["enroll", str(ckpt), "--word", NEW_WORD, "--clips", str(clips), "--out", str(out),
                     "--board", "mps2-an386", "--evaluator", "analytic", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["shots"] == 5 and result["labels"][-1] == NEW_WORD and result["flash_bytes"] > 0
    _, spec, meta = load_checkpoint(out / "checkpoint")
    assert spec.num_classes == 11 and meta["metrics"]["labels"][-1] == NEW_WORD
    graph = read_tflite((out / "export" / "model_int8.tflite").read_bytes())
    assert ModelMetadata.from_graph(graph).labels[-1] == NEW_WORD
    held_out = clip_features(_clips(root, NEW_WORD, False), spec.frontend)
    assert np.mean(run_int8(graph, held_out).argmax(1) == 10) >= 0.8  # the int8 model recognises it too
    # bad input, named: a word the model has, a folder without recordings
    assert nas_main(["enroll", str(ckpt), "--word", "yes", "--clips", str(clips), "--out", str(tmp_path / "x")]) == 2
    assert "already one of the model labels" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert nas_main(["enroll", str(ckpt), "--word", "cat", "--clips", str(empty)]) == 2
    assert "no .wav files" in capsys.readouterr().err
