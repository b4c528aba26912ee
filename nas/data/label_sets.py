"""Label sets ("label protocols"): which words are classes, and how silence and unknown are added to each split.

The standard 12-class protocol (Warden 2018; TensorFlow's ``speech_commands`` example): labels
``_silence_, _unknown_`` and the ten keywords; in every split, silence and unknown each make up 10 % of
the keyword clip count (rounded up), the unknown clips drawn from the non-keywords with a seeded shuffle,
the silence clips made from background noise. The official test-set layout is already balanced that way
and is used as it is.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from nas.data.labels import KEYWORDS_10, SILENCE, UNKNOWN
from nas.data.layout import TEST_SET, Corpus, DataError


@dataclass(frozen=True)
class LabelProtocol:
    keywords: tuple[str, ...] = KEYWORDS_10
    silence: bool = True
    unknown: bool = True
    silence_percent: float = 10.0  # of the split's keyword clips, as in the reference pipeline
    unknown_percent: float = 10.0

    def __post_init__(self) -> None:
        if not self.keywords:
            raise ValueError("a label protocol needs at least one keyword")
        if len(set(self.keywords)) != len(self.keywords):
            raise ValueError(f"duplicate keywords in {self.keywords}")
        bad = [w for w in self.keywords if w in (SILENCE, UNKNOWN) or not w]
        if bad:
            raise ValueError(f"{bad} cannot be keywords: silence and unknown are switched on by flags")

    @property
    def labels(self) -> tuple[str, ...]:
        """Class names in output order: silence, unknown (when on), then the keywords."""
        extra = ((SILENCE,) if self.silence else ()) + ((UNKNOWN,) if self.unknown else ())
        return extra + tuple(self.keywords)

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["keywords"] = list(self.keywords)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LabelProtocol:
        return cls(**{**d, "keywords": tuple(d["keywords"])})


STANDARD_12 = LabelProtocol()
KEYWORDS_ONLY_10 = LabelProtocol(silence=False, unknown=False)  # the seed survey's 10-class experiments


def get_protocol(name_or_words: str) -> LabelProtocol:
    """``12`` (standard), ``10`` (keywords only), or a comma-separated user word list (with silence/unknown)."""
    key = name_or_words.strip().lower()
    if key in ("12", "standard", "standard-12"):
        return STANDARD_12
    if key in ("10", "keywords", "keywords-10"):
        return KEYWORDS_ONLY_10
    words = tuple(w.strip() for w in name_or_words.split(",") if w.strip())
    if len(words) < 2:
        raise ValueError(f"unknown label protocol {name_or_words!r}: use 12, 10 or a word list like yes,no,up")
    return LabelProtocol(keywords=words)


def fit_to_corpus(protocol: LabelProtocol, corpus: Corpus) -> LabelProtocol:
    """``protocol`` without its unknown class when ``corpus`` holds no word outside the keywords (a user's
    own word list often covers every folder): a class with no examples would only be a wasted output."""
    if protocol.unknown and not any(c.word not in protocol.keywords and c.word != SILENCE for c in corpus.clips):
        return replace(protocol, unknown=False)
    return protocol


@dataclass(frozen=True)
class Example:
    """One item of a split: a clip (``rel_path``) or a silence clip to be made from noise (``None``)."""

    rel_path: str | None
    label: int


def build_split(corpus: Corpus, protocol: LabelProtocol, split: str, seed: int = 0,
                rule: str | None = None) -> list[Example]:
    """The examples of one split under a protocol, deterministic for ``seed``.

    Full layouts: every keyword clip, plus ceil(10 %) unknown clips (seeded shuffle of the non-keywords)
    and ceil(10 %) silence items. The test-set layout: its clips as they are (its ``_silence_`` and
    ``_unknown_`` folders already follow the protocol), minus classes the protocol switches off.
    """
    missing = [w for w in protocol.keywords if w not in set(corpus.words)]
    if missing:
        raise DataError(
            f"{corpus.root}: no clips for keyword(s) {', '.join(missing)}; "
            f"words present: {', '.join(corpus.words)}"
        )
    index = {label: i for i, label in enumerate(protocol.labels)}
    keyword, unknown_pool, silence_files = [], [], []
    for clip in corpus.clips_in(split, rule):
        if clip.word in protocol.keywords:
            keyword.append(Example(clip.rel_path, index[clip.word]))
        elif clip.word == SILENCE:
            silence_files.append(clip)
        else:
            unknown_pool.append(clip)

    out = list(keyword)
    if corpus.layout == TEST_SET:
        if protocol.unknown:
            out += [Example(c.rel_path, index[UNKNOWN]) for c in unknown_pool]
        if protocol.silence:
            out += [Example(c.rel_path, index[SILENCE]) for c in silence_files]
        return out

    rng = np.random.default_rng([seed, _SPLIT_SALT[split]])
    if protocol.unknown and unknown_pool:
        take = math.ceil(len(keyword) * protocol.unknown_percent / 100.0)
        order = rng.permutation(len(unknown_pool))[:take]
        out += [Example(unknown_pool[i].rel_path, index[UNKNOWN]) for i in sorted(order)]
    if protocol.silence:
        take = math.ceil(len(keyword) * protocol.silence_percent / 100.0)
        out += [Example(None, index[SILENCE])] * take
    return out


# Distinct streams per split, so the validation draw does not change when the training draw does.
_SPLIT_SALT = {"train": 0, "validation": 1, "test": 2}
