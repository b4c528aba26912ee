"""One real training step of a spec (augmentation + MFCC + forward/backward + AdamW), for contract tests."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from nas.data.augment import load_noise_bank
from nas.models import build_model, split_model
from nas.train import TrainConfig
from nas.train.augment import DeviceNoise
from nas.train.state import StepSettings, create_train_state
from nas.train.step import make_train_step
from search_spaces import ArchSpec, estimate


def check_build_and_one_step(spec: ArchSpec, batch: int = 4, seed: int = 0) -> float:
    """Build ``spec``, check logits shape and the deployed parameter count against `estimate`, run one
    training step on random audio; return the (finite) loss."""
    model = build_model(spec, seed=seed)
    folded = model.folded()
    deployed = sum(op.weights.size + op.bias.size for op in folded if op.weights is not None)
    deployed += sum(w.size + b.size for op in folded if op.op == "se" for w, b in op.extra.values())
    assert deployed == estimate(spec).params, spec.name
    logits = model(jnp.zeros((2, *spec.frontend.feature_shape)))
    assert logits.shape == (2, spec.num_classes), spec.name
    graphdef, params, stats = split_model(model)
    cfg = TrainConfig(batch_size=batch, max_steps=1)
    settings = StepSettings.of(spec.frontend, cfg)
    state = create_train_state(params, stats, settings, cfg, total_steps=1)
    step = make_train_step(graphdef, settings, DeviceNoise.from_bank(load_noise_bank([])))
    rng = np.random.default_rng(seed)
    state, metrics = step(state, {
        "audio": jnp.asarray(rng.integers(-3000, 3000, (batch, spec.frontend.clip_samples), np.int16)),
        "labels": jnp.asarray(rng.integers(0, spec.num_classes, batch, np.int32)),
        "silence": jnp.zeros(batch, bool),
    })
    loss = float(metrics["loss"])
    assert np.isfinite(loss), spec.name
    assert all(np.all(np.isfinite(np.asarray(x))) for x in jax.tree_util.tree_leaves(state.params)), spec.name
    return loss
