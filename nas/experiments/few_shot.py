"""Few-shot keywords on real speech: words a trained model never heard, enrolled from k recordings.

    result = few_shot(checkpoint, data, words=12, shots=(1, 5, 10), draws=10, seed=0, export_to=folder)

Protocol (``nas experiment seed-techniques``): the base model is trained on the 10 keywords only, so the
corpus's other words (the source words of ``_unknown_``) were never part of its training. For each of the
``words`` most frequent of them and each k, ``draws`` enrolments each take k clips of the word at random from
the *training-split* speakers (`nas.train.enroll`, fitted against the model's own training clips) and are
scored on the *validation- and test-split* speakers, whom the model never heard:

- accuracy: the share of the word's held-out clips the enrolled model gives the new label;
- false accepts: the share of the keyword test clips, and of the other enrolled words' held-out clips, that
  it gives the new label.

Only the new word's column and bias change, so each enrolment is scored from the clips' embeddings and the
old scores, computed once. One enrolment (the first word, the largest k, draw 0) is also exported as int8
and measured on the board.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nas.data.labels import SILENCE
from nas.data.layout import scan_corpus
from nas.data.split import TRAIN
from nas.train import TrainData, load_checkpoint
from nas.train.enroll import classifier, clip_features, embed, enroll, fit_column


def source_words(data: TrainData, count: int) -> dict[str, tuple[list[Path], list[Path]]]:
    """The ``count`` most frequent words of the corpus outside the model's labels: (training-split speakers'
    clips, the other speakers' clips) each, in file order; ties broken by name."""
    corpus = scan_corpus(data.root)
    by_word: dict[str, list[Any]] = {}
    for clip in corpus.clips:
        if clip.word not in data.labels and clip.word != SILENCE:
            by_word.setdefault(clip.word, []).append(clip)
    chosen = sorted(by_word, key=lambda w: (-len(by_word[w]), w))[:count]
    out = {}
    for word in chosen:
        clips = sorted(by_word[word], key=lambda c: c.rel_path)
        enrol = [corpus.root / c.rel_path for c in clips if corpus.split_of(c, data.rule) == TRAIN]
        held = [corpus.root / c.rel_path for c in clips if corpus.split_of(c, data.rule) != TRAIN]
        if enrol and held:
            out[word] = (enrol, held)
    return out


def few_shot(checkpoint: Path | str, data: TrainData, words: int, shots: Sequence[int], draws: int, seed: int,
             export_to: Path | None = None, measure: Any = None) -> dict[str, Any]:
    """The protocol of the module docstring; ``measure(tflite_bytes)`` gives board figures of the export."""
    model, spec, _ = load_checkpoint(checkpoint)
    fe = spec.frontend
    kernel, bias = classifier(model)
    negatives = embed(model, data.features("train", fe)), data.train.labels
    test_emb = embed(model, data.features("test", fe))
    test_old = (test_emb @ kernel + bias).max(axis=1)
    chosen = source_words(data, words)
    emb = {w: (embed(model, clip_features(e, fe)), embed(model, clip_features(h, fe))) for w, (e, h) in chosen.items()}
    rng = np.random.default_rng(seed)
    rows: dict[int, list[dict[str, Any]]] = {k: [] for k in shots}
    for word, (enrol, held) in emb.items():
        held_old = (held @ kernel + bias).max(axis=1)
        others = np.concatenate([h for w, (_, h) in emb.items() if w != word])
        others_old = (others @ kernel + bias).max(axis=1)
        for k in shots:
            scores = []
            for _ in range(draws):
                pick = rng.choice(len(enrol), size=min(k, len(enrol)), replace=False)
                column, b = fit_column(kernel, bias, enrol[pick], *negatives)
                scores.append((np.mean(held @ column + b > held_old), np.mean(test_emb @ column + b > test_old),
                               np.mean(others @ column + b > others_old)))
            acc, fa_kw, fa_other = np.mean(scores, axis=0)
            rows[k].append({"word": word, "enrol_clips": len(enrol), "held_out_clips": len(held), "accuracy": acc,
                            "false_accept_keywords": fa_kw, "false_accept_other_words": fa_other})
    summary = {k: {key: statistics.mean(float(r[key]) for r in rs)
                   for key in ("accuracy", "false_accept_keywords", "false_accept_other_words")} for k, rs in rows.items()}
    out: dict[str, Any] = {"base": spec.name, "labels": list(data.labels), "words": list(emb), "shots": list(shots),
                           "draws": draws, "by_k": summary, "rows": {str(k): v for k, v in rows.items()}}
    if export_to is not None and emb:
        from nas.export.quantize import calibration_features, export_model_int8
        from nas.quant.ptq import run_int8

        word, k = next(iter(emb)), max(shots)
        enrol_paths, held_paths = chosen[word]
        pick = np.random.default_rng(seed).choice(len(enrol_paths), size=min(k, len(enrol_paths)), replace=False)
        enrolled = enroll(model, spec, data.labels, word, clip_features([enrol_paths[i] for i in sorted(pick)], fe),
                          negatives)
        tflite = export_model_int8(enrolled.model, enrolled.spec, enrolled.labels, calibration_features(data, fe),
                                   export_to, {"enrolled_shots": enrolled.shots})
        from hardware import read_tflite

        graph = read_tflite(tflite)
        new = len(data.labels)
        out["export"] = {"word": word, "shots": k, "tflite": str(Path(export_to) / "model_int8.tflite"),
                         "int8_accuracy": float(np.mean(run_int8(graph, clip_features(held_paths, fe)).argmax(1) == new)),
                         "int8_false_accept_keywords": float(np.mean(
                             run_int8(graph, data.features("test", fe)).argmax(1) == new)),
                         **(measure(tflite) if measure is not None else {})}
    return out
