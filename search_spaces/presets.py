"""The published keyword-spotting configurations as `ArchSpec`s, each with its own front end.

Families and sources (every architecture fact below was read from the cited file or paper):

- ``dnn-*``, ``cnn-*``, ``ds-cnn-*``: Hello Edge (Zhang et al., arXiv:1711.07128), as trained by
  ARM-software/ML-KWS-for-MCU ``train_commands.txt`` / ``models.py`` and re-released by ARM-software/ML-zoo
  (``models/keyword_spotting/<model>/model_package_tf/recreate_model.sh`` and ``model_core_utils/models.py``).
- ``mlperf-tiny-ds-cnn``: the MLPerf Tiny KWS reference, mlcommons/tiny
  ``benchmark/training/keyword_spotting/keras_model.py`` (``get_model``, ``ds_cnn``) and its committed int8
  model ``trained_models/kws_ref_model.tflite`` (layer structure read from the file).
- ``micronet-kws-*``: MicroNets (Banbury et al., MLSys 2021, arXiv:2010.11267), Table 5 (architectures) and
  Table 4 (results); the medium model was also read layer by layer from a real copy of the ML-zoo
  ``kws_micronet_m.tflite`` (see `_MICRONET_VERIFIED`).

``meta["published"]`` holds the figures a source states, with where each comes from. A spec's
``num_classes`` is the published 12 (Speech Commands: 10 words, silence, unknown); use
`ArchSpec.with_classes` for another protocol.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from search_spaces.frontend import get_frontend
from search_spaces.spec import (
    ArchSpec,
    Conv,
    Dense,
    Dropout,
    DSConv,
    Flatten,
    GlobalAvgPool,
    MaxPool,
    SpecError,
)

_ML_ZOO = "ARM-software/ML-zoo@fec0bb5 models/keyword_spotting"
_HELLO_EDGE = "Hello Edge, Zhang et al. 2017, arXiv:1711.07128"
_MICRONETS = "MicroNets, Banbury et al., MLSys 2021, arXiv:2010.11267"


def _ml_zoo_meta(folder: str, size_info: str, accuracy_pct: float, tflite_bytes: int, notes: str) -> dict[str, Any]:
    return {
        "paper": _HELLO_EDGE,
        "source": f"{_ML_ZOO}/{folder}/model_package_tf/recreate_model.sh (--model_size_info {size_info}) "
                  "and model_core_utils/models.py; ARM-software/ML-KWS-for-MCU train_commands.txt",
        "published": {
            "ml_zoo_int8_test_accuracy_pct": accuracy_pct,
            "ml_zoo_int8_tflite_bytes": tflite_bytes,
            "where": f"{_ML_ZOO}/{folder}/model_package_tf/model_archive/TFLite/tflite_int8/definition.yaml",
        },
        "notes": notes,
    }


# --- Hello Edge DNN: hidden dense layers with ReLU, no batch norm, on 25x10 MFCC (40 ms / 40 ms). ------------------
def _dnn(name: str, width: int, folder: str, accuracy_pct: float, tflite_bytes: int) -> ArchSpec:
    return ArchSpec(
        name=name, family="dnn", frontend=get_frontend("hello-edge-dnn"),
        layers=(Flatten(), Dense(width), Dense(width), Dense(width)),
        meta=_ml_zoo_meta(folder, f"{width} {width} {width}", accuracy_pct, tflite_bytes,
                          "three hidden dense layers + ReLU (no batch norm), classifier; dropout only in training"),
    )


# --- Hello Edge CNN: conv (VALID) + BN + ReLU twice, flatten, linear low-rank dense, dense + BN + ReLU. -----------
def _cnn(name: str, size_info: tuple[int, ...], folder: str, accuracy_pct: float, tflite_bytes: int) -> ArchSpec:
    f1, kt1, kf1, st1, sf1, f2, kt2, kf2, st2, sf2, linear, fc = size_info
    return ArchSpec(
        name=name, family="cnn", frontend=get_frontend("hello-edge"),
        layers=(
            Conv(f1, (kt1, kf1), (st1, sf1), padding="valid"),
            Conv(f2, (kt2, kf2), (st2, sf2), padding="valid"),
            Flatten(),
            Dense(linear, activation="none"),  # the low-rank linear layer: bias, no activation, no BN
            Dense(fc, batch_norm=True),
        ),
        meta=_ml_zoo_meta(folder, " ".join(map(str, size_info)), accuracy_pct, tflite_bytes,
                          "model_size_info = conv1 (filters, kt, kf, st, sf), conv2 (same), linear size, fc size"),
    )


# --- Hello Edge DS-CNN: stem conv SAME + BN + ReLU, DS blocks, global average pool, classifier. --------------------
def _ds_cnn(name: str, size_info: tuple[int, ...], folder: str, accuracy_pct: float, tflite_bytes: int) -> ArchSpec:
    n, rest = size_info[0], size_info[1:]
    rows = [rest[5 * i: 5 * i + 5] for i in range(n)]
    (f0, kt0, kf0, st0, sf0), blocks = rows[0], rows[1:]
    return ArchSpec(
        name=name, family="ds-cnn", frontend=get_frontend("hello-edge"),
        layers=(
            Conv(f0, (kt0, kf0), (st0, sf0)),
            *(DSConv(f, (kt, kf), (st, sf)) for f, kt, kf, st, sf in blocks),
            GlobalAvgPool(),
        ),
        meta=_ml_zoo_meta(folder, " ".join(map(str, size_info)), accuracy_pct, tflite_bytes,
                          "model_size_info = number of layers incl. the stem, then (filters, kt, kf, st, sf) per "
                          "layer; every DS block stride is symmetric, so ML-zoo's swapped (sf, st) depthwise "
                          "stride order makes no difference"),
    )


def _mlperf_tiny_ds_cnn() -> ArchSpec:
    return ArchSpec(
        name="mlperf-tiny-ds-cnn", family="ds-cnn", frontend=get_frontend("mlperf-tiny"),
        layers=(
            Conv(64, (10, 4), (2, 2)),
            Dropout(0.2),
            *(DSConv(64, (3, 3)) for _ in range(4)),
            Dropout(0.4),
            GlobalAvgPool(),
        ),
        meta={
            "paper": "MLPerf Tiny Benchmark, Banbury et al., NeurIPS Datasets and Benchmarks 2021",
            "source": "mlcommons/tiny@bceb91c benchmark/training/keyword_spotting/keras_model.py get_model('ds_cnn'); "
                      "layers checked against trained_models/kws_ref_model.tflite (int8, 53,936 bytes)",
            "published": {"accuracy_target_pct": 90.0, "reference_int8_tflite_bytes": 53936},
            "checked": "kws_ref_model.tflite holds 22,604 weight and bias elements (24,368 bytes) and TFLM "
                       "(tflite-micro Python interpreter) plans a 16,000-byte activation arena head for it: both "
                       "equal estimate() of this spec",
            "notes": "keras_model.py pools with pool_size (int(49/2), int(10/2)) = (24, 5), which would drop the "
                     "last of 25 time rows, but the committed reference tflite pools 25x5 (the whole map): "
                     "GlobalAvgPool follows the deployed model. Weight decay 1e-4 (training only).",
        },
    )


_MICRONET_VERIFIED = (
    "Architecture from MicroNets Table 5 (all three). The medium model was also read op by op from "
    "kws_micronet_m.tflite as committed in FreeRTOS/iot-reference-arm-corstone3xx "
    "(applications/keyword_detection/ml-model-update-demo/), sha256 c1feed3a..., which is the oid of the ML-zoo "
    "LFS object: CONV_2D 10x4 s1 SAME 140 + RELU6; DS blocks 3x3 (s2, s1, s1, s1, s1) with pointwise widths "
    "140, 140, 140, 112, 196, all RELU6; AVERAGE_POOL_2D 25x5; 1x1 CONV_2D to 12 (no activation); RESHAPE. "
    "S and L: no real tflite found (the ML-zoo files are LFS pointers); ReLU6 and the same op pattern are "
    "assumed from the M file and from ML-zoo definition.yaml, whose operator lists (AVERAGE_POOL_2D, CONV_2D, "
    "DEPTHWISE_CONV_2D, RELU6, RESHAPE) are identical for S, M and L."
)


def _micronet(name: str, stem: int, blocks: tuple[int, ...], folder: str, published: dict[str, Any],
              checked: str | None = None) -> ArchSpec:
    return ArchSpec(
        name=name, family="micronet", frontend=get_frontend("hello-edge"),
        layers=(
            Conv(stem, (10, 4), (1, 1), activation="relu6"),
            *(DSConv(c, (3, 3), (2, 2) if i == 0 else (1, 1), activation="relu6") for i, c in enumerate(blocks)),
            GlobalAvgPool(),
        ),
        meta={
            "paper": _MICRONETS,
            "source": f"{_MICRONETS}, Appendix A Table 5; int8 model {_ML_ZOO}/{folder}/tflite_int8",
            "published": published,
            "verified": _MICRONET_VERIFIED,
            **({"checked": checked} if checked else {}),
            "notes": "The classifier is a 1x1 CONV_2D in the tflite; as a dense layer it has the same weights.",
        },
    )


# --- Edge Impulse-style 1-D convolution: the seed survey's Edge Impulse comparison model. -------------------------
def _ei_conv1d() -> ArchSpec:
    # Conv1D over time with the 13 MFCCs as channels == a 2-D conv whose kernel spans all 13 coefficients.
    # The first conv is VALID (48 frames, not Edge Impulse's SAME 50): 2-D SAME would also pad the coefficient
    # axis. Edge Impulse's default has no batch norm.
    return ArchSpec(
        name="ei-conv1d", family="edge-impulse", frontend=get_frontend("edge-impulse"),
        layers=(
            Conv(8, (3, 13), padding="valid", batch_norm=False),
            MaxPool((2, 1)),
            Dropout(0.25),
            Conv(16, (3, 1), padding="same", batch_norm=False),
            MaxPool((2, 1)),
            Dropout(0.25),
            Flatten(),
        ),
        meta={
            "paper": "Garai & Samui, Exploring TinyML Frameworks for Small-Footprint Keyword Spotting "
                     "(the Edge Impulse rows of its comparison)",
            "source": "Edge Impulse's default keyword-spotting classifier as its Studio generates it in Keras "
                      "expert mode",
            "published": {
                "architecture": "Reshape(frames, 13), Conv1D(8, 3, relu, same), MaxPool1D(2, same), Dropout(0.25), "
                                "Conv1D(16, 3, relu, same), MaxPool1D(2, same), Dropout(0.25), Flatten, "
                                "Dense(classes, softmax)",
                "frontend": "MFCC block: frame length 0.02 s, stride 0.02 s, 32 filters, 13 coefficients",
                "where": "Edge Impulse Studio, keyword-spotting tutorial project, classifier block (Keras expert "
                         "mode); no accuracy is stated here, the seed survey's own table has its figures",
            },
            "notes": "EI-style, not Edge Impulse's own pipeline: the first convolution is VALID (48 output "
                     "frames instead of 50), and the MFCC is TF's (no pre-emphasis)",
        },
    )


def _micronet_published(accuracy: float, tflite_bytes: int, flash_kb: float, sram_kb: float,
                        mops: float) -> dict[str, Any]:
    return {
        "accuracy_pct": accuracy,
        "ml_zoo_int8_tflite_bytes": tflite_bytes,
        "flash_kb": flash_kb,
        "sram_kb": sram_kb,
        "mops": mops,
        "where": "MicroNets Table 4 (accuracy, flash, SRAM measured by TFLM's recording interpreter, Mops); "
                 "ML-zoo definition.yaml (tflite bytes)",
    }


def _build() -> dict[str, ArchSpec]:
    specs = [
        _dnn("dnn-s", 144, "dnn_small", 82.11, 83544),
        _dnn("dnn-m", 256, "dnn_medium", 83.93, 203832),
        _dnn("dnn-l", 436, "dnn_large", 86.01, 502272),
        _cnn("cnn-s", (28, 10, 4, 1, 1, 30, 10, 4, 2, 1, 16, 128), "cnn_small", 90.18, 75400),
        _cnn("cnn-m", (64, 10, 4, 1, 1, 48, 10, 4, 2, 1, 16, 128), "cnn_medium", 90.47, 186064),
        _cnn("cnn-l", (60, 10, 4, 1, 1, 76, 10, 4, 2, 1, 58, 128), "cnn_large", 92.27, 484600),
        _ds_cnn("ds-cnn-s", (5, 64, 10, 4, 2, 2, 64, 3, 3, 1, 1, 64, 3, 3, 1, 1, 64, 3, 3, 1, 1, 64, 3, 3, 1, 1),
                "ds_cnn_small", 93.11, 47616),
        _ds_cnn("ds-cnn-m", (5, 172, 10, 4, 2, 1, 172, 3, 3, 2, 2, 172, 3, 3, 1, 1, 172, 3, 3, 1, 1, 172, 3, 3, 1, 1),
                "ds_cnn_medium", 93.93, 186288),
        _ds_cnn("ds-cnn-l", (6, 276, 10, 4, 2, 1, 276, 3, 3, 2, 2, 276, 3, 3, 1, 1, 276, 3, 3, 1, 1,
                             276, 3, 3, 1, 1, 276, 3, 3, 1, 1), "ds_cnn_large", 94.52, 503816),
        _mlperf_tiny_ds_cnn(),
        _micronet("micronet-kws-s", 84, (112, 84, 84, 84, 196),
                  "micronet_small", _micronet_published(95.3, 114512, 102, 53.2, 16.4)),
        _micronet("micronet-kws-m", 140, (140, 140, 140, 112, 196),
                  "micronet_medium", _micronet_published(95.8, 181968, 163, 103.3, 30.6),
                  checked="kws_micronet_m.tflite holds 111,984 weight and bias elements (116,640 bytes) and TFLM "
                          "plans an 86,112-byte activation arena head for it; estimate() gives 111,984 and "
                          "86,100 (TFLM aligns each tensor to 16 bytes)"),
        _micronet("micronet-kws-l", 276, (248, 276, 276, 248, 248, 248, 248),
                  "micronet_large", _micronet_published(96.5, 658832, 612, 208.8, 129)),
        _ei_conv1d(),
    ]
    return {s.name: s for s in specs}


PRESETS: dict[str, ArchSpec] = _build()
PRESET_NAMES: tuple[str, ...] = tuple(PRESETS)


def get_preset(name: str) -> ArchSpec:
    """The published configuration ``name``; raises `ValueError` listing the known names."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; known presets: {', '.join(PRESET_NAMES)}")
    return PRESETS[name]


def family_presets(family: str) -> dict[str, ArchSpec]:
    """The published configurations of one family (``"ds-cnn"``, ``"micronet"``, ``"dnn"``, ``"cnn"``)."""
    return {name: spec for name, spec in PRESETS.items() if spec.family == family}


def load_spec(ref: str) -> ArchSpec:
    """A preset name or the path of a spec JSON file; raises `SpecError`/`ValueError` with one clear line."""
    if ref in PRESETS:
        return PRESETS[ref]
    path = Path(ref)
    if not path.exists():
        raise ValueError(f"{ref!r} is neither a preset ({', '.join(PRESET_NAMES)}) nor an existing file")
    if path.is_dir():
        raise ValueError(f"{ref}: is a directory, expected a spec JSON file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"{ref}: cannot read the spec file ({e})") from None
    try:
        return ArchSpec.from_json(text)
    except SpecError as e:
        raise SpecError(f"{ref}: {e}") from None
