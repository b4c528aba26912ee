"""Knowledge distillation: teachers from checkpoints, and the loss that makes a student match them.

    teachers = load_teachers(cfg.teachers, data.labels)      # trained models on the same labels
    step = make_train_step(graphdef, settings, noise, teachers)

Inside the jitted step each teacher runs in inference mode (its running statistics, no gradient) on the same
augmented audio as the student, through its own front end (features are recomputed only when it differs
from the student's). With several teachers the targets are their averaged softened probabilities (an
ensemble). The loss is Hinton et al.'s::

    (1 - w) * label loss  +  w * T^2 * KL(p_teacher(T) || p_student(T))

with ``p(T) = softmax(logits / T)``; the T^2 keeps the soft term's gradient scale independent of T.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp

from nas.models import split_model
from nas.train.checkpoint import CheckpointError, load_checkpoint
from search_spaces.frontend import FrontEndConfig


@dataclass(frozen=True)
class TeacherDef:
    """What a compiled step depends on (hashable, static): the teacher's network and front end."""

    graphdef: Any
    frontend: FrontEndConfig


@dataclass(frozen=True)
class Teachers:
    defs: tuple[TeacherDef, ...]
    weights: tuple[tuple[Any, Any], ...]  # (params, batch_stats) per teacher: arguments of the step

    def __len__(self) -> int:
        return len(self.defs)


def load_teachers(paths: tuple[str, ...], labels: tuple[str, ...] | list[str]) -> Teachers:
    """The checkpoints at ``paths`` as teachers; each must have been trained on exactly ``labels``."""
    defs, weights = [], []
    for path in paths:
        model, spec, meta = load_checkpoint(path)
        theirs = (meta.get("metrics") or {}).get("labels")
        if theirs is not None and list(theirs) != list(labels):
            raise CheckpointError(f"{Path(path)}: the teacher was trained on labels {list(theirs)}, the student "
                                  f"learns {list(labels)}: distillation needs the same classes in the same order")
        if spec.num_classes != len(labels):
            raise CheckpointError(f"{Path(path)}: the teacher has {spec.num_classes} outputs, the student "
                                  f"{len(labels)}")
        graphdef, params, stats = split_model(model)
        defs.append(TeacherDef(graphdef, spec.frontend))
        weights.append((params, stats))
    return Teachers(tuple(defs), tuple(weights))


def soft_targets(teacher_logits: list[jax.Array], temperature: float) -> jax.Array:
    """The ensemble's softened class probabilities: the mean of ``softmax(logits / T)`` over teachers."""
    probs = [jax.nn.softmax(z / temperature, axis=-1) for z in teacher_logits]
    return jax.lax.stop_gradient(sum(probs) / len(probs))


def distillation_loss(student_logits: jax.Array, targets: jax.Array, temperature: float) -> jax.Array:
    """``T^2 * KL(targets || softmax(student / T))``, averaged over the batch."""
    log_student = jax.nn.log_softmax(student_logits / temperature, axis=-1)
    log_targets = jnp.log(jnp.maximum(targets, 1e-30))  # 0 * log 0 = 0: a vanishing class adds nothing
    kl = jnp.sum(targets * (log_targets - log_student), axis=-1)
    return temperature**2 * jnp.mean(kl)
