"""Training of `ArchSpec` candidates in JAX: one loop for full runs and budgeted search trials.

    data = prepare_train_data("default", "12")                  # once; trials share it
    result = train(spec.with_classes(data.num_classes), data, TrainConfig(epochs=30), out_dir="runs/x")
    result.val_accuracy, result.test.per_class, result.test.confusion
    model, spec, meta = load_checkpoint("runs/x")               # the best model by validation accuracy

Modules: `config` (TrainConfig), `augment` (augmentation in JAX), `state` (train state, AdamW, schedule),
`step` (the pure jitted step), `evaluate` (accuracy, per class, confusion), `data` (TrainData, batches),
`checkpoint` (atomic save/load), `loop` (train, TrainResult, TrainingDiverged).
"""

import importlib
from typing import TYPE_CHECKING, Any

# names -> the submodule that defines them, imported on first use: `nas.train.config` (and so the study
# config that validates its training budget with it) must not pull JAX in at start-up
_HOME = {
    "CheckpointError": "checkpoint", "load_checkpoint": "checkpoint", "save_checkpoint": "checkpoint",
    "TrainConfig": "config",
    "TrainData": "data", "prepare_from_source": "data", "prepare_train_data": "data",
    "EvalReport": "evaluate", "evaluate": "evaluate",
    "TrainingDiverged": "loop", "TrainProgress": "loop", "TrainResult": "loop", "train": "loop",
    "StepSettings": "state", "TrainState": "state", "create_train_state": "state",
    "make_train_step": "step",
}

if TYPE_CHECKING:
    from nas.train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
    from nas.train.config import TrainConfig
    from nas.train.data import TrainData, prepare_from_source, prepare_train_data
    from nas.train.evaluate import EvalReport, evaluate
    from nas.train.loop import TrainingDiverged, TrainProgress, TrainResult, train
    from nas.train.state import StepSettings, TrainState, create_train_state
    from nas.train.step import make_train_step


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'nas.train' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"nas.train.{home}"), name)
    globals()[name] = value  # once imported, a plain attribute
    return value


__all__ = [
    "CheckpointError",
    "EvalReport",
    "StepSettings",
    "TrainConfig",
    "TrainData",
    "TrainProgress",
    "TrainResult",
    "TrainState",
    "TrainingDiverged",
    "create_train_state",
    "evaluate",
    "load_checkpoint",
    "make_train_step",
    "prepare_from_source",
    "prepare_train_data",
    "save_checkpoint",
    "train",
]
