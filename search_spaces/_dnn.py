"""The ``dnn`` space: the Hello Edge fully-connected family."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from search_spaces.base import SpaceBase, expect, snap_int
from search_spaces.spec import ArchSpec, Dense, Flatten, Layer

if TYPE_CHECKING:
    import optuna

WIDTH_STEP = 8  # SIMD-friendly, as in the ds-cnn space
WIDTH_MIN, WIDTH_MAX = 32, 512  # 512 > DNN-L's 436
MIN_LAYERS, MAX_LAYERS = 1, 4  # Hello Edge's DNNs have 3 hidden layers


class DNNSpace(SpaceBase):
    """Hello Edge DNN family (Zhang et al. 2017, arXiv:1711.07128; DNN-S/M/L = 3 hidden layers of
    144/256/436 units).

    Anchor: the flattened 25×10 MFCC input (front end ``hello-edge-dnn``, 40 ms windows, 40 ms stride),
    1–4 hidden dense layers with ReLU and no batch norm, the classifier. Parameters: ``n_layers``,
    ``l{i}_width`` (multiples of 8 in [32, 512]); with ``low_rank=True`` also ``l{i}_rank`` (full / 1/4 / 1/8
    of min(in, out)). Always valid: dense layers accept any flat input.
    """

    name = "dnn"
    default_frontend = "hello-edge-dnn"

    def sample(self, trial: optuna.trial.BaseTrial) -> ArchSpec:
        frontend = self._frontend(trial)
        layers: list[Layer] = [Flatten()]
        n_in = frontend.feature_shape[0] * frontend.feature_shape[1]
        for i in range(trial.suggest_int("n_layers", MIN_LAYERS, MAX_LAYERS)):
            units = trial.suggest_int(f"l{i}_width", WIDTH_MIN, WIDTH_MAX, step=WIDTH_STEP)
            layers.append(Dense(units, rank=self._rank(trial, f"l{i}_rank", n_in, units)))
            n_in = units
        return self._spec(frontend, tuple(layers))

    def params_of(self, spec: ArchSpec, snap: bool = False) -> dict[str, Any]:
        """The values `sample` turns into ``spec`` (see the `SearchSpace` contract)."""
        p = self._frontend_params(spec)
        layers = spec.layers
        expect(len(layers) >= 1 + MIN_LAYERS and isinstance(layers[0], Flatten),
               f"{spec.name}: not a flatten and {MIN_LAYERS}..{MAX_LAYERS} dense layers")
        hidden = layers[1:]
        expect(len(hidden) <= MAX_LAYERS and all(isinstance(d, Dense) and d == Dense(d.units, rank=d.rank)
                                                 for d in hidden),
               f"{spec.name}: the space has {MIN_LAYERS}..{MAX_LAYERS} dense ReLU layers without batch norm")
        p["n_layers"] = len(hidden)
        n_in = spec.frontend.feature_shape[0] * spec.frontend.feature_shape[1]
        for i, d in enumerate(hidden):
            p[f"l{i}_width"] = snap_int(f"{spec.name}: layer {i} width", d.units, WIDTH_MIN, WIDTH_MAX, WIDTH_STEP, snap)
            rank = self._rank_param(f"{spec.name}: layer {i}", d.rank, n_in, d.units)
            if rank is not None:
                p[f"l{i}_rank"] = rank
            n_in = d.units
        return p
