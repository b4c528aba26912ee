"""`TrainData`: everything a training run reads, prepared once and shared by the trials of a search.

    data = prepare_train_data("default", "12", seed=0)
    result = train(spec, data, cfg)          # many times, with different specs

It holds the decoded splits (int16 audio stays on the host), the background-noise bank (also placed on
the device once, for the augmentation inside the step), and validation/test features per front end
(computed once per front end, cached on disk by `split_features`). Batches are seeded permutations.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nas.data.augment import NoiseBank, load_noise_bank
from nas.data.dataset import SplitData, load_split
from nas.data.default import resolve_data
from nas.data.featurize import split_features
from nas.data.label_sets import STANDARD_12, LabelProtocol, fit_to_corpus, get_protocol
from nas.data.layout import SPLIT_FIXES, DataError, scan_corpus
from nas.train.augment import DeviceNoise
from search_spaces.frontend import FrontEndConfig

log = logging.getLogger(__name__)

_FRACTION_SALT = 0x66726163  # the training subset's stream, apart from the epoch permutations


@dataclass(eq=False)
class TrainData:
    root: Path
    protocol: LabelProtocol
    seed: int  # the data seed: unknown-word draw and stored silence clips (not the training seed)
    train: SplitData
    validation: SplitData
    test: SplitData
    noise: NoiseBank
    clip_samples: int = 16_000
    rule: str | None = None  # the split rule asked for (None: the corpus's default)
    noise_dir: Path | None = None  # the noise folder asked for (None: the corpus's own)
    _features: dict = field(default_factory=dict, init=False, repr=False)
    _device_noise: DeviceNoise | None = field(default=None, init=False, repr=False)

    @property
    def labels(self) -> tuple[str, ...]:
        return self.protocol.labels

    @property
    def num_classes(self) -> int:
        return self.protocol.num_classes

    def split(self, name: str) -> SplitData:
        if name not in ("train", "validation", "test"):
            raise ValueError(f"unknown split {name!r}")
        return getattr(self, name)

    def features(self, split: str, frontend: FrontEndConfig) -> np.ndarray:
        """float32 [N, frames, coeffs] features of an unaugmented split (memoised, cached on disk)."""
        key = (split, frontend.digest())
        if key not in self._features:
            self._features[key] = split_features(self.split(split), frontend)
        return self._features[key]

    def source(self) -> dict:
        """Where the data came from, JSON-ready: `prepare_train_data(**source)` loads it again."""
        return {"data": str(self.root), "protocol": self.protocol.to_dict(), "seed": self.seed, "rule": self.rule,
                "noise_dir": None if self.noise_dir is None else str(self.noise_dir)}

    def device_noise(self) -> DeviceNoise:
        """The noise bank on the device (placed once)."""
        if self._device_noise is None:
            self._device_noise = DeviceNoise.from_bank(self.noise)
        return self._device_noise

    def train_indices(self, fraction: float = 1.0, seed: int = 0) -> np.ndarray:
        """Sorted indices of a seeded subset of the training split: ``ceil(fraction * n)`` of each class."""
        n = len(self.train)
        if fraction >= 1.0:
            return np.arange(n)
        rng = np.random.default_rng([seed, _FRACTION_SALT])
        parts = []
        for label in np.unique(self.train.labels):
            members = np.flatnonzero(self.train.labels == label)
            parts.append(rng.permutation(members)[: math.ceil(fraction * len(members))])
        return np.sort(np.concatenate(parts)) if parts else np.arange(0)


def prepare_train_data(data: str | Path, protocol: LabelProtocol | str = STANDARD_12, seed: int = 0,
                       rule: str | None = None, noise_dir: Path | None = None,
                       clip_samples: int = 16_000) -> TrainData:
    """Decode (or read back from the cache) the three splits of ``data`` (a path or ``default``)."""
    if isinstance(protocol, str):
        protocol = get_protocol(protocol)
    corpus = scan_corpus(resolve_data(data), noise_dir=noise_dir)
    fitted = fit_to_corpus(protocol, corpus)
    if fitted != protocol:
        log.info("%s: no words outside %s: no _unknown_ class", corpus.root, ",".join(protocol.keywords))
        protocol = fitted
    splits = {s: load_split(corpus, protocol, s, seed, rule, clip_samples) for s in ("train", "validation", "test")}
    recorded = {s: sum(p is not None for p in d.rel_paths) for s, d in splits.items()}  # not noise-made silence
    rule_used = rule or corpus.default_split_rule()
    if recorded["train"] == 0 or recorded["validation"] == 0:
        raise DataError(
            f"{corpus.root}: no recorded clips in the {'training' if recorded['train'] == 0 else 'validation'} "
            f"split under the {rule_used} split rule (train {recorded['train']}, validation "
            f"{recorded['validation']}, test {recorded['test']}); with few speakers, {SPLIT_FIXES}. "
            f"`nas data info {corpus.root}` shows the splits")
    if recorded["test"] == 0:
        log.warning("%s: no recorded clips in the test split under the %s rule: test accuracy will not be "
                    "measured (see `nas data info`)", corpus.root, rule_used)
    noise = load_noise_bank(corpus.noise_files, clip_samples)
    if noise.empty:
        log.warning("%s: no background noise: training runs without noise augmentation", corpus.root)
    return TrainData(corpus.root, protocol, seed, splits["train"], splits["validation"], splits["test"], noise,
                     clip_samples, rule, None if noise_dir is None else Path(noise_dir).resolve())


def prepare_from_source(source: dict) -> TrainData:
    """`prepare_train_data` for a `TrainData.source()` record (as a checkpoint keeps it)."""
    try:
        protocol = LabelProtocol.from_dict(source["protocol"])
        return prepare_train_data(source["data"], protocol, int(source.get("seed", 0)), source.get("rule"),
                                  None if source.get("noise_dir") is None else Path(source["noise_dir"]))
    except (KeyError, TypeError) as e:
        raise ValueError(f"incomplete data record {source!r} ({e})") from None


def epoch_batches(indices: np.ndarray, batch_size: int, seed: int, trial: int, epoch: int) -> Iterator[np.ndarray]:
    """The full batches of one epoch: a permutation seeded by (seed, trial, epoch); the remainder is dropped
    (a fixed batch shape compiles once)."""
    order = indices[np.random.default_rng([seed, trial, epoch]).permutation(len(indices))]
    for start in range(0, len(order) - batch_size + 1, batch_size):
        yield order[start : start + batch_size]


def host_batch(split: SplitData, index: np.ndarray) -> dict[str, np.ndarray]:
    """One batch as the step takes it; audio stays int16 (converted on the device)."""
    return {
        "audio": np.asarray(split.audio[index], np.int16),
        "labels": np.asarray(split.labels[index], np.int32),
        "silence": np.asarray(split.silence[index], bool),
    }
