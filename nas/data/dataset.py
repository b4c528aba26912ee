"""Decoded splits of a corpus under a protocol, cached on disk.

`load_split` turns (corpus, protocol, split, seed) into int16 audio [N, clip_samples], labels and a
silence mask. Clips of any WAV format are converted to 16 kHz mono int16 and counted; bad clips are
skipped, counted and named (never fatal). Silence items are rendered from
background noise with a seeded generator (the training step re-renders them with fresh noise).
Decoded audio is cached under the user cache dir, keyed by the clip files' (path, size, mtime) and the
arguments, so a second run reads one ``.npy`` instead of thousands of WAV files.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nas.data.augment import load_noise_bank
from nas.data.label_sets import Example, LabelProtocol, build_split
from nas.data.layout import Corpus
from nas.data.wav import BadClipError, fit_length, read_wav_converted
from nas.files import atomic_save_npy, atomic_write_json, cache_dir, digest_of

log = logging.getLogger(__name__)

# Bump when decoding or silence rendering changes, so old cache entries are not reused.
_DATASET_VERSION = 2  # 2: any WAV format, converted to 16 kHz mono


@dataclass(frozen=True)
class SplitData:
    audio: np.ndarray  # int16 [N, clip_samples]
    labels: np.ndarray  # int32 [N]
    silence: np.ndarray  # bool [N]: an item made of background noise alone
    rel_paths: tuple[str | None, ...]
    skipped: tuple[tuple[str, str], ...]  # (clip path, reason) of every clip that could not be used
    key: str  # content key: decoded audio and everything derived from it are cached under it
    labels_names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.labels)


def _fingerprint(path: Path) -> tuple[int, int]:
    try:
        st = path.stat()
        return st.st_size, st.st_mtime_ns
    except OSError:
        return -1, -1


def split_key(corpus: Corpus, protocol: LabelProtocol, split: str, seed: int, rule: str | None,
              clip_samples: int, examples: list[Example]) -> str:
    files = [e.rel_path for e in examples if e.rel_path is not None]
    return digest_of({
        "v": _DATASET_VERSION,
        "clips": [(f, *_fingerprint(corpus.root / f)) for f in files],
        "noise": [(p.name, *_fingerprint(p)) for p in corpus.noise_files],
        "protocol": protocol.to_dict(),
        "split": split, "seed": seed, "rule": rule or corpus.default_split_rule(),
        "clip_samples": clip_samples, "n": len(examples),
    })


def load_split(corpus: Corpus, protocol: LabelProtocol, split: str, seed: int = 0,
               rule: str | None = None, clip_samples: int = 16_000, use_cache: bool = True) -> SplitData:
    """The decoded split; see the module docstring. Raises only for unusable arguments, never for a bad clip."""
    examples = build_split(corpus, protocol, split, seed, rule)
    key = split_key(corpus, protocol, split, seed, rule, clip_samples, examples)
    cdir = cache_dir("audio")
    if use_cache and (cdir / f"{key}.json").is_file() and (cdir / f"{key}.npy").is_file():
        meta = json.loads((cdir / f"{key}.json").read_text())
        return SplitData(
            audio=np.load(cdir / f"{key}.npy", mmap_mode="r"),
            labels=np.asarray(meta["labels"], np.int32),
            silence=np.asarray(meta["silence"], bool),
            rel_paths=tuple(meta["rel_paths"]),
            skipped=tuple(tuple(s) for s in meta["skipped"]),
            key=key,
            labels_names=tuple(meta["labels_names"]),
        )

    bank = None
    rng = np.random.default_rng([seed, 0x5173, {"train": 0, "validation": 1, "test": 2}.get(split, 3)])
    rows, labels, silence, paths, skipped = [], [], [], [], []
    converted = 0  # clips read from another rate, width, encoding or channel count (logged once)
    for ex in examples:
        if ex.rel_path is None:
            if bank is None:
                bank = load_noise_bank(corpus.noise_files, clip_samples)
                if bank.empty:
                    log.warning("%s: no background noise; silence items are digital silence", corpus.root)
            seg = np.zeros(clip_samples, np.float32) if bank.empty else (
                rng.uniform(0.0, 1.0) * bank.segment(rng, clip_samples))
            rows.append(np.clip(np.round(seg * 32768.0), -32768, 32767).astype(np.int16))
            silence.append(True)
        else:
            try:
                samples, info = read_wav_converted(corpus.root / ex.rel_path)
            except BadClipError as e:
                log.warning("skipping clip: %s", e)
                skipped.append((str(e.path), e.reason))
                continue
            converted += not info.is_native()
            rows.append(fit_length(samples, clip_samples))
            silence.append(False)
        labels.append(ex.label)
        paths.append(ex.rel_path)
    if converted:
        log.info("%s/%s: converted %d clip(s) to 16 kHz mono 16-bit", corpus.root, split, converted)
    if skipped:
        log.warning("%s/%s: skipped %d bad clip(s) of %d", corpus.root, split, len(skipped), len(examples))
    audio = np.stack(rows) if rows else np.zeros((0, clip_samples), np.int16)
    data = SplitData(audio, np.asarray(labels, np.int32), np.asarray(silence, bool), tuple(paths),
                     tuple(skipped), key, protocol.labels)
    if use_cache:
        atomic_save_npy(cdir / f"{key}.npy", audio)
        atomic_write_json(cdir / f"{key}.json", {
            "labels": data.labels.tolist(), "silence": data.silence.tolist(), "rel_paths": list(paths),
            "skipped": [list(s) for s in skipped], "labels_names": list(protocol.labels),
            "root": str(corpus.root), "split": split,
        })
    return data
