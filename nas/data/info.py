"""What a corpus holds: clips per class and split, speakers, duration, bad files (data only; the CLI renders)."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from nas.data.labels import SILENCE
from nas.data.layout import Corpus
from nas.data.split import SPLITS
from nas.data.wav import BadClipError, read_wav_info


def corpus_info(corpus: Corpus, rule: str | None = None, read_headers: bool = True) -> dict[str, Any]:
    """Counts of ``corpus`` under a split rule. With ``read_headers`` every WAV header is read for
    durations and formats; an unreadable or non-16 kHz-mono-16-bit file is listed under ``bad_clips``."""
    rule = rule or corpus.default_split_rule()
    per_split_class: dict[str, Counter] = defaultdict(Counter)
    per_split_speakers: dict[str, set] = defaultdict(set)
    for clip in corpus.clips:
        split = corpus.split_of(clip, rule)
        per_split_class[split][clip.folder] += 1
        if clip.word != SILENCE:  # numbered silence recordings have no speaker
            per_split_speakers[split].add(clip.speaker)

    duration_s, bad = 0.0, []
    if read_headers:
        for clip in corpus.clips:
            path = corpus.root / clip.rel_path
            try:
                info = read_wav_info(path)
            except BadClipError as e:
                bad.append({"path": str(path), "reason": e.reason})
                continue
            problem = _format_problem(info)
            if problem:
                bad.append({"path": str(path), "reason": problem})
            duration_s += info.duration_s

    noise = []
    for path in corpus.noise_files:
        try:
            noise.append({"name": path.name, "duration_s": round(read_wav_info(path).duration_s, 2)})
        except BadClipError as e:
            noise.append({"name": path.name, "error": e.reason})

    classes = Counter(c.folder for c in corpus.clips)
    return {
        "root": str(corpus.root),
        "layout": corpus.layout,
        "split_rule": rule,
        "official_split_lists": corpus.split_lists is not None,
        "clips": len(corpus.clips),
        "classes": dict(sorted(classes.items())),
        "speakers": len({c.speaker for c in corpus.clips if c.word != SILENCE}),
        "splits": {
            s: {
                "clips": sum(per_split_class[s].values()),
                "speakers": len(per_split_speakers[s]),
                "classes": dict(sorted(per_split_class[s].items())),
            }
            for s in SPLITS
        },
        "duration_s": round(duration_s, 2) if read_headers else None,
        "bad_clips": bad,
        "noise_files": noise,
    }


def _format_problem(info) -> str | None:
    if info.channels != 1:
        return f"{info.channels} channels, expected mono"
    if info.sample_width_bytes != 2:
        return f"{8 * info.sample_width_bytes}-bit samples, expected 16-bit PCM"
    if info.sample_rate_hz != 16_000:
        return f"sample rate {info.sample_rate_hz} Hz, expected 16000 Hz"
    if info.frames == 0:
        return "no samples"
    return None
