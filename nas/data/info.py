"""What a corpus holds: clips per class and split, speakers, duration, bad files (data only; the CLI renders)."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from typing import Any

from nas.data.labels import SILENCE
from nas.data.layout import SPLIT_FIXES, Corpus
from nas.data.split import SPLITS
from nas.data.wav import SAMPLE_RATE_HZ, BadClipError, read_wav_info


def corpus_info(corpus: Corpus, rule: str | None = None, read_headers: bool = True,
                clip_samples: int = 16_000) -> dict[str, Any]:
    """Counts of ``corpus`` under a split rule. With ``read_headers`` every clip is read: a clip that
    cannot be read is listed under ``bad_clips`` and left out of every count (the loader skips it too);
    clips in another format are counted as converted, and short and long ones as padded and cropped to
    ``clip_samples`` (one second at 16 kHz). ``warnings`` says what would make training meaningless."""
    rule = rule or corpus.default_split_rule()
    durations, bad, formats = [], [], Counter()
    padded = cropped = 0
    usable = []
    for clip in corpus.clips:
        if not read_headers:
            usable.append(clip)
            continue
        path = corpus.root / clip.rel_path
        try:
            info = read_wav_info(path)
        except BadClipError as e:
            bad.append({"path": str(path), "reason": e.reason})
            continue
        usable.append(clip)
        durations.append(info.duration_s)
        if not info.is_native():
            formats[info.describe()] += 1
        length = math.ceil(info.frames * SAMPLE_RATE_HZ / info.sample_rate_hz)  # after resampling
        padded += length < clip_samples
        cropped += length > clip_samples

    per_split_class: dict[str, Counter] = defaultdict(Counter)
    per_split_speakers: dict[str, set] = defaultdict(set)
    for clip in usable:
        split = corpus.split_of(clip, rule)
        per_split_class[split][clip.folder] += 1
        if clip.word != SILENCE:  # numbered silence recordings have no speaker
            per_split_speakers[split].add(clip.speaker)

    noise = []
    for path in corpus.noise_files:
        try:
            noise.append({"name": path.name, "duration_s": round(read_wav_info(path).duration_s, 2)})
        except BadClipError as e:
            noise.append({"name": path.name, "error": e.reason})

    classes = Counter(c.folder for c in usable)
    splits = {
        s: {
            "clips": sum(per_split_class[s].values()),
            "speakers": len(per_split_speakers[s]),
            "classes": dict(sorted(per_split_class[s].items())),
        }
        for s in SPLITS
    }
    speakers = len({c.speaker for c in usable if c.word != SILENCE})
    return {
        "root": str(corpus.root),
        "layout": corpus.layout,
        "split_rule": rule,
        "official_split_lists": corpus.split_lists is not None,
        "clips": len(usable),
        "classes": dict(sorted(classes.items())),
        "speakers": speakers,
        "splits": splits,
        "duration_s": round(sum(durations), 2) if read_headers else None,
        "mean_duration_s": round(sum(durations) / len(durations), 3) if durations else None,
        "converted": {"clips": sum(formats.values()), "formats": dict(formats.most_common())},
        "padded": padded if read_headers else None,
        "cropped": cropped if read_headers else None,
        "bad_clips": bad,
        "noise_files": noise,
        "warnings": split_warnings(splits, rule, speakers),
    }


def split_warnings(splits: dict[str, dict[str, Any]], rule: str, speakers: int) -> list[str]:
    """What makes a split unusable for training or for an honest test, and the fixes."""
    empty = [s for s in SPLITS if splits[s]["clips"] == 0]
    if not empty:
        return []
    why = f" ({speakers} speaker(s): the {rule} rule puts each speaker in one split)" if rule != "utterance" else ""
    return [f"the {s} split is empty{why}; {SPLIT_FIXES}" for s in empty]
