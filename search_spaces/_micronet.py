"""The ``micronet`` space: the MicroNets keyword-spotting backbone."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from search_spaces.base import SpaceBase, expect, snap_int
from search_spaces.spec import ArchSpec, Conv, DSConv, Layer

if TYPE_CHECKING:
    import optuna

# MicroNets §5.2.2: "The number of channels are restricted to multiples of 4 for good performance on
# hardware"; the backbone's widest layer has 276 channels (DS-CNN-L's width).
WIDTH_STEP = 4
WIDTH_MIN, WIDTH_MAX = 16, 276
# The backbone is DS-CNN(L)'s 5 depthwise-separable blocks plus 4 more; DNAS picks the depth through a
# parallel skip branch on each block. The first (stride-2) block is always kept here, so depth is 1..9.
MIN_BLOCKS, MAX_BLOCKS = 1, 9
ACTIVATION = "relu6"  # the ML-zoo MicroNet int8 models use RELU6 (read from kws_micronet_m.tflite)


class MicroNetSpace(SpaceBase):
    """MicroNets KWS family (Banbury et al., MLSys 2021, arXiv:2010.11267, §5.2.2 and Table 5).

    Anchor: the DNAS backbone of the paper, an enlarged DS-CNN(L): a 10×4 stem conv with stride 1 (all
    three published MicroNet-KWS models use stride 1 here, where DS-CNN-L uses 2×1), then up to 9
    depthwise-separable blocks with 3×3 depthwise kernels, the first with stride 2×2 and the rest stride
    1 (so the map is 25×5 for the Hello Edge 49×10 input), global average pool, the classifier. ReLU6
    everywhere, as in the ML-zoo models. DNAS searched per-layer width and depth; so does this space:

    - ``stem_width``; ``n_blocks`` in [1, 9]; ``b{i}_width`` per block; widths multiples of 4 in [16, 276];
    - with ``attention=True``, ``b{i}_se``: a squeeze-and-excitation gate on the block's depthwise output;
      and ``head``: global average pooling or attention pooling (`AttentionPool`).

    MicroNet-KWS-S (84; 112, 84, 84, 84, 196), -M (140; 140, 140, 140, 112, 196) and -L (276; 248, 276,
    276, 248, 248, 248, 248) all lie in this space.
    """

    name = "micronet"
    default_frontend = "hello-edge"

    def sample(self, trial: optuna.trial.BaseTrial) -> ArchSpec:
        frontend = self._frontend(trial)
        stem = trial.suggest_int("stem_width", WIDTH_MIN, WIDTH_MAX, step=WIDTH_STEP)
        layers: list[Layer] = [Conv(stem, (10, 4), (1, 1), activation=ACTIVATION)]
        in_width = stem
        for i in range(trial.suggest_int("n_blocks", MIN_BLOCKS, MAX_BLOCKS)):
            width = trial.suggest_int(f"b{i}_width", WIDTH_MIN, WIDTH_MAX, step=WIDTH_STEP)
            se = self._se(trial, f"b{i}_se", in_width)
            layers.append(DSConv(width, (3, 3), (2, 2) if i == 0 else (1, 1), activation=ACTIVATION, se=se))
            in_width = width
        layers.append(self._head(trial))
        return self._spec(frontend, tuple(layers))

    def params_of(self, spec: ArchSpec, snap: bool = False) -> dict[str, Any]:
        """The values `sample` turns into ``spec`` (see the `SearchSpace` contract)."""
        p = self._frontend_params(spec)
        layers = spec.layers
        expect(len(layers) >= 2 + MIN_BLOCKS and isinstance(layers[0], Conv),
               f"{spec.name}: not a stem conv, {MIN_BLOCKS}..{MAX_BLOCKS} DS blocks and a pool")
        head = self._head_param(spec.name, layers[-1])
        if head is not None:
            p["head"] = head
        stem, blocks = layers[0], layers[1:-1]
        expect(stem == Conv(stem.filters, (10, 4), (1, 1), activation=ACTIVATION),
               f"{spec.name}: the stem must be a 10x4 stride-1 SAME conv + BN + {ACTIVATION}")
        p["stem_width"] = snap_int(f"{spec.name}: stem width", stem.filters, WIDTH_MIN, WIDTH_MAX, WIDTH_STEP, snap)
        expect(MIN_BLOCKS <= len(blocks) <= MAX_BLOCKS and all(isinstance(b, DSConv) for b in blocks),
               f"{spec.name}: {len(blocks)} layers between stem and pool, the space has {MIN_BLOCKS}..{MAX_BLOCKS} "
               "DS blocks")
        p["n_blocks"] = len(blocks)
        in_width = stem.filters
        for i, b in enumerate(blocks):
            se = self._se_param(f"{spec.name}: block {i}", b.se, in_width)
            if se is not None:
                p[f"b{i}_se"] = se
            expect(b == DSConv(b.filters, (3, 3), (2, 2) if i == 0 else (1, 1), activation=ACTIVATION, se=b.se),
                   f"{spec.name}: block {i} must be a 3x3 {ACTIVATION} DS block with stride {'2' if i == 0 else '1'}")
            p[f"b{i}_width"] = snap_int(f"{spec.name}: block {i} width", b.filters, WIDTH_MIN, WIDTH_MAX, WIDTH_STEP,
                                        snap)
            in_width = b.filters
        return p
