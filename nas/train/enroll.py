"""Few-shot keywords: a new word added to a trained model from a handful of recordings.

    clips = clip_features(paths, spec.frontend)                         # k recordings of the new word
    negatives = (embed(model, data.features("train", fe)), data.train.labels)   # the model's own words
    enrolled = enroll(model, spec, labels, "marvin", clips, negatives)  # the same network, one more output
    enrolled.save(out_dir)                                              # a checkpoint like any other

The embedding of a clip is the input of the model's classifier (for the DS-CNN and MicroNet families, the
pooled output of the last block). Only the new word's classifier column and bias are learnt; nothing else
changes, so the enrolled model scores its own words as before (except where the new word takes a clip from
them: a false accept) and it quantizes, exports and runs on a board like any other model.

- Without negatives the column is *imprinted* (Qi, Brown & Lowe, CVPR 2018): the normalised mean of the
  clips' normalised embeddings, scaled to the mean norm of the existing columns, with the mean bias. On
  post-ReLU embeddings (all non-negative, so every pair is similar) this accepts almost anything: measured
  on DS-CNN-L (10 keywords), the imprinted word took 98 % of the keyword clips.
- With negatives (embeddings of clips of the model's own words and their labels, e.g. its training split)
  the column starts at the normalised difference of the clip mean and the negatives' mean and is fitted by
  weighted softmax cross-entropy over all C + 1 classes, the old scores fixed (the new word weighted as one
  more balanced class), with Adam for ``FIT_STEPS`` steps: a convex problem in (column, bias).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax.numpy as jnp
import numpy as np
from flax import nnx

from nas.data.wav import fit_length, read_wav, to_float
from nas.features import features_numpy
from nas.models import build_model
from nas.models.build import KWSModel
from nas.models.layers import DenseLayer
from search_spaces import ArchSpec, FrontEndConfig

MIN_SHOTS = 1


class EnrollError(ValueError):
    """A bad enrolment: the message names the word, the clip or the model at fault."""


def clip_features(paths: Sequence[Path | str], frontend: FrontEndConfig) -> np.ndarray:
    """float32 [N, frames, coeffs] features of recordings (any WAV the data loader reads; fitted to the front
    end's clip length as training clips are)."""
    audio = []
    for path in paths:
        try:
            samples = read_wav(path)
        except (OSError, ValueError) as e:
            raise EnrollError(f"{path}: cannot read it as a recording ({e})") from None
        audio.append(to_float(fit_length(samples, frontend.clip_samples)))
    if not audio:
        raise EnrollError("no recordings to enrol")
    return features_numpy(np.stack(audio), frontend).astype(np.float32)


EMBED_BATCH = 256  # clips per forward pass: bounds the activations held at once (DS-CNN-L: ~70 MB per 256)


def embed(model: KWSModel, features: np.ndarray) -> np.ndarray:
    """[N, E] embeddings: the input of the classifier (every layer but the last, inference mode)."""
    out = []
    for start in range(0, len(features), EMBED_BATCH):
        y = jnp.asarray(features[start:start + EMBED_BATCH])[..., None]
        for module in list(model.layers)[:-1]:
            y = module(y, False)
        out.append(np.asarray(y.reshape(y.shape[0], -1), np.float64))
    return np.concatenate(out) if out else np.zeros((0, model.layers[-1].kernel[...].shape[0]))


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def classifier(model: KWSModel) -> tuple[np.ndarray, np.ndarray]:
    """(kernel [E, C], bias [C]) of the model's classifier."""
    head = list(model.layers)[-1]
    if not isinstance(head, DenseLayer) or head.proj is not None or head.bn is not None:
        raise EnrollError(f"{model.spec.name}: the classifier is not a plain dense layer")
    return np.asarray(head.kernel[...], np.float64), np.asarray(head.bias[...], np.float64)


def imprint(kernel: np.ndarray, bias: np.ndarray, embeddings: np.ndarray) -> tuple[np.ndarray, float]:
    """The imprinted column [E] and bias of a new class from its clips' [k, E] embeddings (see the module
    docstring): the new score of an embedding e is ``e @ column + bias``, the old scores are unchanged."""
    prototype = _unit(_unit(embeddings).mean(axis=0))
    return prototype * np.linalg.norm(kernel, axis=0).mean(), float(bias.mean())


# The head fit: Adam on a convex loss over a few thousand embeddings; 300 steps at 0.05 settle it (the column's
# norm is that of the trained columns, ~1-10), and the decay keeps it there when the clips are separable.
FIT_STEPS, FIT_LR, FIT_DECAY = 300, 0.05, 1e-3


def fit_column(kernel: np.ndarray, bias: np.ndarray, embeddings: np.ndarray, negatives: np.ndarray,
               negative_labels: np.ndarray) -> tuple[np.ndarray, float]:
    """The new class's column [E] and bias fitted against ``negatives`` [N, E] of the old classes (their
    ``negative_labels`` in 0..C-1), as the module docstring says. Deterministic (no random draw)."""
    n_classes = kernel.shape[1]
    if len(negatives) == 0 or len(negatives) != len(negative_labels):
        raise EnrollError(f"{len(negatives)} negative embeddings with {len(negative_labels)} labels")
    direction = embeddings.mean(axis=0) - negatives.mean(axis=0)
    column = _unit(direction) * np.linalg.norm(kernel, axis=0).mean()
    b = float(bias.mean())
    x = np.concatenate([negatives, embeddings])
    is_new = np.concatenate([np.zeros(len(negatives), bool), np.ones(len(embeddings), bool)])
    weights = np.where(is_new, len(negatives) / n_classes / len(embeddings), 1.0)  # the new word: one more class
    weights /= weights.sum()
    old = x @ kernel + bias
    m, v = np.zeros(len(column) + 1), np.zeros(len(column) + 1)
    for t in range(1, FIT_STEPS + 1):
        scores = np.concatenate([old, (x @ column + b)[:, None]], axis=1)
        scores -= scores.max(axis=1, keepdims=True)
        p_new = np.exp(scores[:, -1]) / np.exp(scores).sum(axis=1)
        g = (p_new - is_new) * weights
        grad = np.append(x.T @ g + FIT_DECAY * column, g.sum())
        m, v = 0.9 * m + 0.1 * grad, 0.999 * v + 0.001 * grad * grad
        step = FIT_LR * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
        column, b = column - step[:-1], b - float(step[-1])
    return column, b


@dataclass
class Enrolled:
    model: KWSModel
    spec: ArchSpec
    labels: tuple[str, ...]
    shots: int

    def save(self, directory: Path | str, metrics: dict[str, Any] | None = None) -> Path:
        """A checkpoint of the enrolled model (its labels in the metrics, as `nas train` writes them)."""
        from nas.models import split_model
        from nas.train.checkpoint import save_checkpoint

        _, params, stats = split_model(self.model)
        return save_checkpoint(directory, self.spec, params, stats,
                               metrics={**(metrics or {}), "labels": list(self.labels), "enrolled_shots": self.shots})


def enroll(model: KWSModel, spec: ArchSpec, labels: Sequence[str], word: str, features: np.ndarray,
           negatives: tuple[np.ndarray, np.ndarray] | None = None) -> Enrolled:
    """``model`` (of ``spec``, trained for ``labels``) with ``word`` as one more class, learnt from the
    [k, frames, coeffs] ``features`` of its recordings: fitted against ``negatives`` (embeddings [N, E] and
    labels of clips of the model's own words), or imprinted without them (see the module docstring)."""
    labels = tuple(labels)
    if not word or word in labels:
        raise EnrollError(f"word {word!r}: {'empty' if not word else 'already one of the model labels'} "
                          f"({', '.join(labels)})")
    if len(labels) != spec.num_classes:
        raise EnrollError(f"{spec.name}: {spec.num_classes} outputs, but {len(labels)} labels")
    if len(features) < MIN_SHOTS:
        raise EnrollError(f"word {word!r}: no recordings")
    kernel, bias = classifier(model)
    clips = embed(model, features)
    row, row_bias = imprint(kernel, bias, clips) if negatives is None else fit_column(kernel, bias, clips, *negatives)

    new_spec = spec.with_classes(spec.num_classes + 1)
    new = build_model(new_spec, 0)
    for old_module, new_module in zip(list(model.layers)[:-1], list(new.layers)[:-1], strict=True):
        nnx.update(new_module, nnx.state(old_module))
    new_head = list(new.layers)[-1]
    new_head.kernel[...] = jnp.asarray(np.concatenate([kernel, row[:, None]], axis=1), jnp.float32)
    new_head.bias[...] = jnp.asarray(np.append(bias, row_bias), jnp.float32)
    return Enrolled(new, new_spec, (*labels, word), len(features))

