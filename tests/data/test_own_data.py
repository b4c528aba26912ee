"""A user's own recordings, as a newcomer brings them: 8 kHz mono and 44.1 kHz stereo 24-bit WAV files of
their own words from two speakers, one damaged file, no `_unknown_` words. `nas data info`, `nas train`
and a one-trial `nas search` must all work on it (after the split advice they are given)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from nas.data.split import TRAIN
from nas.features import get_frontend
from search_spaces.spec import ArchSpec, Conv, DSConv, GlobalAvgPool
from tests.helpers.corpus import speaker_ids, speakers_in, write_wav_any

WORDS = ("lamp", "fan", "door")
REPS = 8


@pytest.fixture(scope="module")
def own_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("own") / "recordings"
    rng = np.random.default_rng(0)
    for w_i, word in enumerate(WORDS):
        (root / word).mkdir(parents=True)
        for spk in speakers_in(TRAIN, 2, speaker_ids("user")):  # validation and test stay empty
            for rep in range(REPS):
                tone_hz = 300 + 150 * w_i
                if rep % 2 == 0:  # 8 kHz mono 16-bit, 0.8 s: padded
                    t = np.arange(6400) / 8000
                    x = 0.3 * np.sin(2 * np.pi * tone_hz * t) + 0.01 * rng.standard_normal(t.size)
                    write_wav_any(root / word / f"{spk}_nohash_{rep}.wav", x, 8000, "pcm16")
                else:  # 44.1 kHz stereo 24-bit, 1.2 s: cropped
                    t = np.arange(52920) / 44100
                    x = 0.3 * np.sin(2 * np.pi * tone_hz * t) + 0.01 * rng.standard_normal(t.size)
                    write_wav_any(root / word / f"{spk}_nohash_{rep}.wav", np.stack([x, x], axis=1), 44100, "pcm24")
    (root / "lamp" / "broken_nohash_0.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt ")
    return root


def test_data_info_converts_names_the_bad_clip_and_warns_about_empty_splits(own_corpus, capsys):
    from nas.cli import main as nas_main

    assert nas_main(["data", "info", str(own_corpus), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    good = len(WORDS) * 2 * REPS
    assert info["clips"] == good and info["splits"]["train"]["clips"] == good  # the damaged file is in no count
    assert [Path(b["path"]).name for b in info["bad_clips"]] == ["broken_nohash_0.wav"]
    assert info["converted"]["clips"] == good and info["padded"] == good // 2 and info["cropped"] == good // 2
    assert set(info["converted"]["formats"]) == {"8000 Hz 16-bit PCM, 1 channel(s)", "44100 Hz 24-bit PCM, 2 channel(s)"}
    assert info["mean_duration_s"] == pytest.approx(1.0)
    assert any("validation split is empty" in w and "--split-rule utterance" in w for w in info["warnings"])
    assert nas_main(["data", "info", str(own_corpus)]) == 0
    text = capsys.readouterr().out
    assert "WARNING: the validation split is empty" in text and "converted to 16 kHz mono 16-bit on load: 48" in text
    # by utterance, every split has clips and nothing is left to warn about
    assert nas_main(["data", "info", str(own_corpus), "--split-rule", "utterance", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert not info["warnings"] and all(info["splits"][s]["clips"] > 0 for s in info["splits"])


def test_train_refuses_an_empty_validation_split_then_trains_by_utterance(own_corpus, tmp_path, capsys):
    from nas.cli import main as nas_main
    from nas.train import load_checkpoint

    spec = tmp_path / "tiny.json"
    spec.write_text(ArchSpec("tiny", "ds-cnn", get_frontend("hello-edge"),
                             (Conv(8, (10, 4), (2, 2)), DSConv(8), GlobalAvgPool()), 12).to_json())
    words = ",".join(WORDS)
    args = ["train", "--arch", str(spec), "--data", str(own_corpus), "--protocol", words, "--epochs", "1",
            "--batch-size", "16", "--out", str(tmp_path / "ckpt")]
    assert nas_main(args) == 2
    err = capsys.readouterr().err
    assert "no recorded clips in the validation split" in err and "validation_list.txt" in err
    assert "--split-rule utterance" in err
    assert nas_main([*args, "--split-rule", "utterance"]) == 0
    _, _, meta = load_checkpoint(tmp_path / "ckpt")
    assert tuple(meta["metrics"]["labels"]) == ("_silence_", *WORDS)  # no _unknown_ class: the corpus has no other words


def test_one_trial_search_on_own_words(own_corpus, tmp_path, monkeypatch, capsys):
    import optuna

    from nas.cli import main as nas_main

    monkeypatch.chdir(tmp_path)
    assert nas_main(["search", "--name", "own", "--data", str(own_corpus), "--protocol", ",".join(WORDS),
                     "--split-rule", "utterance", "--evaluator", "analytic", "--space", "dnn", "--trials", "1",
                     "--epochs", "1", "--no-warm-start"]) == 0
    study = optuna.load_study(study_name="own", storage="sqlite:///runs/own/study.db")
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) == 1 and done[0].user_attrs["trained"]
    assert done[0].user_attrs["spec"]["num_classes"] == 1 + len(WORDS)
    # the winner exported and scored on the user's own test clips, with the model's own label set
    assert nas_main(["export", "--study", "own", "--trial", str(done[0].number), "--out", "win"]) == 0
    assert nas_main(["evaluate", "win/model_int8.tflite", "--data", str(own_corpus), "--split-rule", "utterance",
                     "--json"]) == 0
    report = json.loads(_last_json(capsys))
    assert report["model_labels"] == report["labels"] == ["_silence_", *WORDS] and report["count"] > 0


def _last_json(capsys) -> str:
    out = capsys.readouterr().out
    return out[out.rindex("\n{") + 1:] if "\n{" in out else out


def test_seed_experiment_with_own_words(own_corpus, tmp_path):
    from hardware.emulator import have_qemu
    from hardware.firmware.build import have_toolchain
    from nas.cli import main as nas_main

    if not (have_toolchain() and have_qemu()):
        pytest.skip("needs arm-none-eabi-gcc and QEMU")
    out = tmp_path / "res"
    assert nas_main(["experiment", "seed-frameworks", "--data", str(own_corpus), "--split-rule", "utterance",
                     "--protocol", ",".join(WORDS), "--presets", "ei-conv1d", "--epochs", "1",
                     "--board", "mps2-an386", "--out", str(out)]) == 0
    (row,) = json.loads((out / "table.json").read_text())["rows"]
    assert row["classes"] == 1 + len(WORDS) and row["mps2-an386.output_match"] is True
    assert f"## your words: {','.join(WORDS)}" in (out / "table.md").read_text()
