"""The ``cnn`` space: the Hello Edge two-convolution family."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from search_spaces.base import SpaceBase, expect, frontend_choices, hw_text, parse_hw, snap_int
from search_spaces.frontend import FrontEndConfig
from search_spaces.spec import ArchSpec, Conv, Dense, Flatten, Layer, SpecError

if TYPE_CHECKING:
    import optuna

FILTER_STEP = 8  # SIMD-friendly, as in the ds-cnn space
FILTERS_MIN, FILTERS_MAX = 8, 128  # Hello Edge uses 28..76
# Both convolutions are VALID, so a kernel can empty the map. Every choice below is legal on the smallest
# map the front-end knobs produce (25 frames x 10 coefficients): the worst case, 10x4 then 10x4 with
# stride 2x2, leaves 4x2 (checked for the actual front ends when the space is built).
KERNELS = ("10x4", "10x3", "5x4", "5x3")  # Hello Edge: 10x4 (time x frequency) in both layers
CONV1_STRIDE = (1, 1)  # every Hello Edge CNN; striding before the second 10-frame kernel could empty the map
CONV2_STRIDES = ("1x1", "2x1", "2x2")  # Hello Edge: 2x1
LINEAR_MIN, LINEAR_MAX, LINEAR_STEP = 8, 64, 8  # the low-rank linear layer: 16 (S, M), 58 (L)
FC_MIN, FC_MAX, FC_STEP = 32, 256, 16  # Hello Edge: 128


def _worst_case(frontend: FrontEndConfig) -> ArchSpec:
    return ArchSpec(name="cnn-worst-case", family="cnn", frontend=frontend, layers=(
        Conv(FILTERS_MIN, parse_hw("10x4"), CONV1_STRIDE, padding="valid"),
        Conv(FILTERS_MIN, parse_hw("10x4"), (2, 2), padding="valid"),
        Flatten(),
    ))


class CNNSpace(SpaceBase):
    """Hello Edge CNN family (Zhang et al. 2017, arXiv:1711.07128; CNN-S/M/L, ML-KWS-for-MCU
    ``--model_size_info 28 10 4 1 1 30 10 4 2 1 16 128`` and so on).

    Anchor: conv1 (VALID, BN, ReLU), conv2 (VALID, BN, ReLU), flatten, a low-rank linear dense layer
    (no activation, no BN), a dense layer with BN and ReLU, the classifier, on the 49×10 Hello Edge MFCC.
    Parameters: ``conv1_filters``, ``conv1_kernel``, ``conv2_filters``, ``conv2_kernel``,
    ``conv2_stride`` (1x1 / 2x1 / 2x2), ``linear_units``, ``fc_units``; conv1 keeps stride 1x1 as every
    published CNN does. Filters are multiples of 8.

    Raises `ValueError` at construction if a front end it can produce is too small for the worst-case
    kernels (so that `sample` never builds an empty map).
    """

    name = "cnn"
    default_frontend = "hello-edge"

    def __init__(self, num_classes: int = 12, frontend: str | FrontEndConfig | None = None,
                 tune_frontend: bool = False) -> None:
        super().__init__(num_classes, frontend, tune_frontend)
        for fe in frontend_choices(self.frontend, self.tune_frontend):
            try:
                _worst_case(fe)
            except SpecError as e:
                raise ValueError(f"cnn space: front end {fe.name!r} ({fe.feature_shape[0]}x{fe.feature_shape[1]}) "
                                 f"is too small for its VALID kernels: {e}") from None

    def sample(self, trial: optuna.trial.BaseTrial) -> ArchSpec:
        frontend = self._frontend(trial)
        layers: list[Layer] = [
            Conv(trial.suggest_int("conv1_filters", FILTERS_MIN, FILTERS_MAX, step=FILTER_STEP),
                 parse_hw(trial.suggest_categorical("conv1_kernel", KERNELS)), CONV1_STRIDE, padding="valid"),
            Conv(trial.suggest_int("conv2_filters", FILTERS_MIN, FILTERS_MAX, step=FILTER_STEP),
                 parse_hw(trial.suggest_categorical("conv2_kernel", KERNELS)),
                 parse_hw(trial.suggest_categorical("conv2_stride", CONV2_STRIDES)), padding="valid"),
            Flatten(),
            Dense(trial.suggest_int("linear_units", LINEAR_MIN, LINEAR_MAX, step=LINEAR_STEP), activation="none"),
            Dense(trial.suggest_int("fc_units", FC_MIN, FC_MAX, step=FC_STEP), batch_norm=True),
        ]
        return self._spec(frontend, tuple(layers))

    def params_of(self, spec: ArchSpec, snap: bool = False) -> dict[str, Any]:
        """The values `sample` turns into ``spec`` (see the `SearchSpace` contract)."""
        p = self._frontend_params(spec)
        kinds = [type(layer) for layer in spec.layers]
        expect(kinds == [Conv, Conv, Flatten, Dense, Dense],
               f"{spec.name}: not conv, conv, flatten, linear dense, dense (the Hello Edge CNN)")
        c1, c2, _, linear, fc = spec.layers
        for n, c in (("conv1", c1), ("conv2", c2)):
            expect((c.padding, c.activation, c.batch_norm) == ("valid", "relu", True) and hw_text(c.kernel) in KERNELS,
                   f"{spec.name}: {n} must be a VALID conv + BN + ReLU with a kernel in {KERNELS}")
            p[f"{n}_filters"] = snap_int(f"{spec.name}: {n} filters", c.filters, FILTERS_MIN, FILTERS_MAX,
                                         FILTER_STEP, snap)
            p[f"{n}_kernel"] = hw_text(c.kernel)
        expect(c1.stride == CONV1_STRIDE and hw_text(c2.stride) in CONV2_STRIDES,
               f"{spec.name}: conv strides {hw_text(c1.stride)}, {hw_text(c2.stride)} are not offered")
        p["conv2_stride"] = hw_text(c2.stride)
        expect(linear == Dense(linear.units, activation="none") and fc == Dense(fc.units, batch_norm=True),
               f"{spec.name}: the dense layers must be a linear one and one with BN + ReLU")
        p["linear_units"] = snap_int(f"{spec.name}: linear units", linear.units, LINEAR_MIN, LINEAR_MAX, LINEAR_STEP, snap)
        p["fc_units"] = snap_int(f"{spec.name}: fc units", fc.units, FC_MIN, FC_MAX, FC_STEP, snap)
        return p
