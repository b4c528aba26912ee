"""The ``ds-cnn`` space: the Hello Edge depthwise-separable CNN family."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from search_spaces.base import SpaceBase, expect, hw_text, parse_hw, snap_int
from search_spaces.spec import ArchSpec, Conv, DSConv, Layer

if TYPE_CHECKING:
    import optuna

# Widths are multiples of 8: CMSIS-NN's int8 convolutions work on channels in groups of 4 (two SMLAD lanes
# of 2) and Helium/MVE vectors hold 16 int8 lanes; multiples of 8 keep most kernels on their unrolled fast
# path with no remainder loop, at a cost of at most 7 channels of resolution.
WIDTH_STEP = 8
WIDTH_MIN, WIDTH_MAX = 16, 320  # 16: below that a DS block has almost no capacity; 320 > DS-CNN-L's 276
STEM_KERNELS = ("10x4", "5x3", "3x3")  # 10x4: Hello Edge (40 ms x 4 coefficients); smaller for cheap stems
STEM_STRIDES = ("1x1", "2x1", "2x2")  # Hello Edge uses 2x2 (S) and 2x1 (M, L); 1x1 as in MicroNets
BLOCK_KERNELS = ("3x3", "5x5", "5x3", "3x1")  # 3x1: time-only context, the cheapest depthwise
MIN_BLOCKS, MAX_BLOCKS = 2, 8  # Hello Edge has 4 (S, M) and 5 (L) blocks


class DSCNNSpace(SpaceBase):
    """Hello Edge DS-CNN family (Zhang et al. 2017, arXiv:1711.07128; DS-CNN-S/M/L, and the MLPerf Tiny
    KWS reference, which is DS-CNN-S on the MLPerf front end).

    Anchor: stem conv (SAME, BN, ReLU), depthwise-separable blocks (depthwise k×k SAME + BN + ReLU,
    pointwise 1×1 + BN + ReLU), global average pool, the dense classifier. Parameters suggested:

    - ``stem_kernel`` (10x4 / 5x3 / 3x3), ``stem_stride`` (1x1 / 2x1 / 2x2), ``stem_width``;
    - ``n_blocks`` in [2, 8]; per block ``b{i}_kernel`` (3x3 / 5x5 / 5x3 / 3x1);
    - ``b{i}_downsample`` (stride 2x2), suggested only while both map dimensions are >= 2, so no stride
      ever runs over a dimension of 1 (with SAME padding the map can never empty);
    - ``b{i}_residual``, suggested only for stride-1 blocks: a residual block keeps its input width
      (no ``b{i}_width``), which makes the skip always legal; otherwise ``b{i}_width``;
    - with ``attention=True``, ``b{i}_se``: a squeeze-and-excitation gate on the block's depthwise output
      (`DSConv.se`, squeeze width `se_width` of its input channels); and ``head``: global average pooling
      or attention pooling (`AttentionPool`);
    - with ``low_rank=True``, ``b{i}_rank`` (full / 1/4 / 1/8 of min(in, out)): the block's 1x1 convolution
      as a projection and an expansion (`DSConv.rank`).

    Widths are multiples of 8 in [16, 320] (see ``WIDTH_STEP``). Published presets (widths 64, 172, 276)
    need not lie on this grid.
    """

    name = "ds-cnn"
    default_frontend = "hello-edge"

    def sample(self, trial: optuna.trial.BaseTrial) -> ArchSpec:
        frontend = self._frontend(trial)
        h, w = frontend.feature_shape
        stem_kernel = parse_hw(trial.suggest_categorical("stem_kernel", STEM_KERNELS))
        stem_stride = parse_hw(trial.suggest_categorical("stem_stride", STEM_STRIDES))
        width = trial.suggest_int("stem_width", WIDTH_MIN, WIDTH_MAX, step=WIDTH_STEP)
        layers: list[Layer] = [Conv(width, stem_kernel, stem_stride)]
        h, w = math.ceil(h / stem_stride[0]), math.ceil(w / stem_stride[1])
        for i in range(trial.suggest_int("n_blocks", MIN_BLOCKS, MAX_BLOCKS)):
            kernel = parse_hw(trial.suggest_categorical(f"b{i}_kernel", BLOCK_KERNELS))
            stride = (1, 1)
            if h >= 2 and w >= 2 and trial.suggest_categorical(f"b{i}_downsample", (False, True)):
                stride = (2, 2)
                h, w = math.ceil(h / 2), math.ceil(w / 2)
            residual = stride == (1, 1) and trial.suggest_categorical(f"b{i}_residual", (False, True))
            in_width = width
            if not residual:
                width = trial.suggest_int(f"b{i}_width", WIDTH_MIN, WIDTH_MAX, step=WIDTH_STEP)
            rank = self._rank(trial, f"b{i}_rank", in_width, width)
            se = self._se(trial, f"b{i}_se", in_width)
            layers.append(DSConv(width, kernel, stride, residual=residual, rank=rank, se=se))
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
        expect((stem.padding, stem.activation, stem.batch_norm) == ("same", "relu", True),
               f"{spec.name}: the stem must be SAME + BN + ReLU")
        expect(hw_text(stem.kernel) in STEM_KERNELS and hw_text(stem.stride) in STEM_STRIDES,
               f"{spec.name}: stem {hw_text(stem.kernel)} stride {hw_text(stem.stride)} is not offered")
        p.update(stem_kernel=hw_text(stem.kernel), stem_stride=hw_text(stem.stride),
                 stem_width=snap_int(f"{spec.name}: stem width", stem.filters, WIDTH_MIN, WIDTH_MAX, WIDTH_STEP, snap))
        expect(MIN_BLOCKS <= len(blocks) <= MAX_BLOCKS and all(isinstance(b, DSConv) for b in blocks),
               f"{spec.name}: {len(blocks)} layers between stem and pool, the space has {MIN_BLOCKS}..{MAX_BLOCKS} "
               "DS blocks")
        p["n_blocks"] = len(blocks)
        h, w = spec.frontend.feature_shape
        h, w = math.ceil(h / stem.stride[0]), math.ceil(w / stem.stride[1])
        in_width = stem.filters
        for i, b in enumerate(blocks):
            where = f"{spec.name}: block {i}"
            expect((b.padding, b.activation) == ("same", "relu") and hw_text(b.kernel) in BLOCK_KERNELS,
                   f"{where}: {hw_text(b.kernel)} {b.padding} {b.activation} is not offered")
            p[f"b{i}_kernel"] = hw_text(b.kernel)
            expect(b.stride in ((1, 1), (2, 2)), f"{where}: stride {hw_text(b.stride)} is not offered")
            if h >= 2 and w >= 2:
                p[f"b{i}_downsample"] = b.stride == (2, 2)
            else:
                expect(b.stride == (1, 1), f"{where}: a stride 2 over a dimension of 1")
            if b.stride == (2, 2):
                h, w = math.ceil(h / 2), math.ceil(w / 2)
            else:
                p[f"b{i}_residual"] = b.residual
            if not b.residual:
                p[f"b{i}_width"] = snap_int(f"{where} width", b.filters, WIDTH_MIN, WIDTH_MAX, WIDTH_STEP, snap)
            rank = self._rank_param(where, b.rank, in_width, b.filters)
            if rank is not None:
                p[f"b{i}_rank"] = rank
            se = self._se_param(where, b.se, in_width)
            if se is not None:
                p[f"b{i}_se"] = se
            in_width = b.filters
        return p
