"""The synthetic speakers of the built-in corpus (`SynthConfig`: what to synthesise, re-exported by
`nas.data.synth`), and how one of them says one word.

A speaker is a voice identity: an English accent of espeak-ng, a voice variant, a base pitch, pitch
range and speaking rate, a loudness, a microphone band and a noise floor. Each clip adds its own
jitter (pitch, range, rate, espeak volume, intonation, gain, placement). Everything random comes from
`numpy.random.Generator` streams keyed by (seed, speaker, word, repetition), so a clip does not depend
on which clips were made before it or in which process.
"""

from __future__ import annotations

import functools
import hashlib
import math
from dataclasses import dataclass

import numpy as np
from scipy import signal

from nas.data._espeak import RATE_MAX_WPM, Espeak
from nas.data.labels import KEYWORDS_10
from nas.data.split import TEST, TRAIN, VALIDATION, hash_split
from nas.data.wav import SAMPLE_RATE_HZ

GENERATOR_VERSION = 1  # bump whenever the same config would give different bytes
CLIP_SAMPLES = SAMPLE_RATE_HZ  # one second

# English voices of espeak-ng 1.52 (espeak-ng-data/lang/gmw).
ACCENTS: tuple[str, ...] = (
    "en", "en-us", "en-gb-x-rp", "en-gb-scotland", "en-029", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-us-nyc",
)  # fmt: skip
# Variants (espeak-ng-data/voices/!v) that sound like people. Left out: robots and heavy echo
# (robosoft*, UniRobot, anikaRobot, RicishayMax*, announcer), Demonic, Tweaky, "Mr serious", "fast",
# and the klatt-6 family, whose noise comes from libc rand() (see _espeak).
MALE_VARIANTS: tuple[str, ...] = (
    "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "Alex", "Andy", "Denis", "Diogo", "Gene", "Henrique",
    "Hugo", "Jacky", "Lee", "Mario", "Michael", "Mike", "antonio", "boris", "croak", "ed", "edward",
    "grandpa", "gustave", "ian", "iven2", "iven3", "iven4", "john", "kaukovalta", "klatt", "klatt2",
    "klatt3", "klatt4", "klatt5", "marcelo", "max", "michel", "miguel", "norbert", "pablo", "paul", "pedro",
    "quincy", "rob", "robert", "sandro", "Storm", "travis", "victor", "whisper",
)  # fmt: skip
FEMALE_VARIANTS: tuple[str, ...] = (
    "f1", "f2", "f3", "f4", "f5", "Alicia", "Andrea", "Annie", "anika", "aunty", "belinda", "grandma",
    "linda", "shelby", "steph", "steph2", "steph3", "whisperf", "zac",
)  # fmt: skip

# Speech Commands' own non-keywords (the v0.02 auxiliary words, digits aside), for `_unknown_`.
AUXILIARY_WORDS: tuple[str, ...] = (
    "bed", "bird", "cat", "dog", "happy", "house", "marvin", "sheila", "tree", "wow",
    "backward", "forward", "follow", "learn", "visual",
)  # fmt: skip


@dataclass(frozen=True)
class SynthConfig:
    """What to synthesise. Every field but ``workers`` shapes the corpus and is kept in the manifest."""

    seed: int = 0
    words: tuple[str, ...] = (*KEYWORDS_10, *AUXILIARY_WORDS)
    speakers: int = 80  # x 25 words x 2 repetitions = 4,000 clips, ~6 s with 2 workers
    repetitions: int = 2  # per speaker and word, each with its own jitter
    validation_percent: float = 10.0  # Speech Commands' defaults; also the hash rule's cut points
    test_percent: float = 10.0
    min_heldout_speakers: int = 3  # at least this many speakers in validation and in test
    accents: tuple[str, ...] = ACCENTS
    male_variants: tuple[str, ...] = MALE_VARIANTS
    female_variants: tuple[str, ...] = FEMALE_VARIANTS
    female_fraction: float = 0.45
    rate_wpm: tuple[int, int] = (110, 190)  # speaker base rate; espeak's normal is 175
    pitch: tuple[int, int] = (20, 80)  # espeak's pitch parameter, 50 = the variant's own
    pitch_range: tuple[int, int] = (25, 85)  # intonation range; 0 is monotone, robotic
    peak_dbfs: tuple[float, float] = (-22.0, -4.0)  # speaker's clip peaks; real SC: 5..95 % at -21..0
    floor_dbfs: tuple[float, float] = (-80.0, -55.0)  # speaker's noise floor (RMS); real SC median -65
    max_word_s: float = 0.9  # a longer word is said again, faster
    noise_seconds: float = 45.0  # each background-noise file (Speech Commands': ~60-95 s)
    workers: int = 2  # processes; the corpus does not depend on it

    def __post_init__(self):
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        if self.speakers < 2 * self.min_heldout_speakers + 1:
            raise ValueError(
                f"need at least {2 * self.min_heldout_speakers + 1} speakers, got {self.speakers}"
            )
        if (
            not self.words
            or len(set(self.words)) != len(self.words)
            or not all(w.isalpha() for w in self.words)
        ):
            raise ValueError(f"words must be distinct, non-empty alphabetic words, got {self.words}")
        if not self.accents or not (self.male_variants or self.female_variants):
            raise ValueError("at least one accent and one voice variant are needed")
        if self.repetitions < 1 or self.noise_seconds <= 0 or not 0.2 <= self.max_word_s <= 1.0:
            raise ValueError("need repetitions >= 1, noise_seconds > 0 and 0.2 <= max_word_s <= 1")


# Clause punctuation changes espeak's intonation: statement, exclamation, continuation, question.
_PUNCTUATION, _PUNCTUATION_P = (".", "!", ",", "?"), (0.5, 0.2, 0.2, 0.1)
_ESPEAK_VOLUME = 50  # half espeak's default: at 100 some variants (Jacky, iven, paul) clip in espeak


@dataclass(frozen=True)
class Speaker:
    """One voice identity; ``index`` is its place in the plan (it keys its random streams)."""

    index: int
    id: str  # 8 hex digits, chosen so that hash_split(id) == split
    split: str
    accent: str
    variant: str
    female: bool
    rate_wpm: int
    pitch: int  # espeak's 0..100, 50 = the variant's own
    pitch_range: int  # espeak's 0..100, 0 = monotone
    peak_dbfs: float  # typical clip peak
    floor_dbfs: float  # RMS of the microphone noise floor
    band_hz: tuple[float, float]  # microphone / room band-pass

    @property
    def voice(self) -> str:
        return f"{self.accent}+{self.variant}"

    def clip_name(self, repetition: int) -> str:
        return f"{self.id}_nohash_{repetition}.wav"


def rng_for(seed: int, *stream: int) -> np.random.Generator:
    """Random stream ``stream`` of a seed: (0,) the plan, (1, s) espeak, (2, s, w, r) clips, (3, k) noise."""
    return np.random.default_rng([GENERATOR_VERSION, seed, *stream])


def _speaker_id(config: SynthConfig, index: int, voice: str, split: str, taken: set[str]) -> str:
    """8 hex digits that the hashing rule puts in ``split`` (about 10 tries for a 10 % split)."""
    for counter in range(100_000):
        sid = hashlib.sha1(f"kwsnas-synth/{config.seed}/{index}/{voice}/{counter}".encode()).hexdigest()[:8]
        if sid not in taken and hash_split(sid, config.validation_percent, config.test_percent) == split:
            return sid
    raise ValueError(f"no speaker id lands in {split} with percentages {config.validation_percent}, "
                     f"{config.test_percent}")  # fmt: skip


def _deal_variants(deck: list[str], splits: list[str]) -> list[str]:
    """A variant for each speaker of one gender (in order), from ``deck`` (already shuffled).

    Held-out speakers get variants that no training speaker uses (a test voice is a new voice), each
    split a share of the deck in proportion to its speakers; a deck too small for that is shared.
    """
    need = {sp: splits.count(sp) for sp in (VALIDATION, TEST, TRAIN) if splits.count(sp)}
    if len(deck) < len(need):
        return [deck[k % len(deck)] for k in range(len(splits))]
    share = {sp: max(1, round(len(deck) * c / len(splits))) for sp, c in need.items() if sp != TRAIN}
    while sum(share.values()) > len(deck) - (TRAIN in need):  # keep at least one for training
        largest = max(share, key=lambda sp: share[sp])
        share[largest] -= 1
        if share[largest] == 0:  # cannot separate: share the whole deck
            return [deck[k % len(deck)] for k in range(len(splits))]
    sub, start = {}, 0
    for sp in (VALIDATION, TEST):
        sub[sp], start = deck[start : start + share.get(sp, 0)], start + share.get(sp, 0)
    sub[TRAIN] = deck[start:]
    dealt = dict.fromkeys(need, 0)
    out = []
    for sp in splits:
        out.append(sub[sp][dealt[sp] % len(sub[sp])])
        dealt[sp] += 1
    return out


def plan_speakers(config: SynthConfig) -> list[Speaker]:
    """The speakers of a config, in a fixed order, with their splits and ids.

    ~``validation_percent`` / ``test_percent`` of them (at least ``min_heldout_speakers``) are held out;
    accents are dealt evenly to all, variants so that held-out splits use variants unseen in training.
    """
    rng = rng_for(config.seed, 0)
    n = config.speakers
    n_val = max(config.min_heldout_speakers, round(n * config.validation_percent / 100))
    n_test = max(config.min_heldout_speakers, round(n * config.test_percent / 100))
    if n_val + n_test >= n:
        raise ValueError(f"{n} speakers leave none for training")
    order = [int(i) for i in rng.permutation(n)]
    split_of = {i: VALIDATION for i in order[:n_val]} | {i: TEST for i in order[n_val : n_val + n_test]}
    splits = [split_of.get(i, TRAIN) for i in range(n)]
    accents = [config.accents[i % len(config.accents)] for i in rng.permutation(n)]
    female = rng.random(n) < config.female_fraction
    if not config.female_variants or not config.male_variants:
        female[:] = bool(config.female_variants)
    variants = [""] * n
    for is_female, pool in ((True, config.female_variants), (False, config.male_variants)):
        members = [i for i in range(n) if female[i] == is_female]
        deck = [pool[k] for k in rng.permutation(len(pool))]
        for i, v in zip(members, _deal_variants(deck, [splits[i] for i in members]), strict=True):
            variants[i] = v
    speakers: list[Speaker] = []
    taken: set[str] = set()
    for i in range(n):
        low_hz = float(np.exp(rng.uniform(np.log(40.0), np.log(250.0))))  # a phone's cut to a good mic's
        high_hz = float(rng.uniform(3400.0, 7600.0))  # telephone band edge to near Nyquist
        sid = _speaker_id(config, i, f"{accents[i]}+{variants[i]}", splits[i], taken)
        taken.add(sid)
        speakers.append(Speaker(
            index=i, id=sid, split=splits[i], accent=accents[i], variant=variants[i], female=bool(female[i]),
            rate_wpm=int(rng.integers(config.rate_wpm[0], config.rate_wpm[1] + 1)),
            pitch=int(rng.integers(config.pitch[0], config.pitch[1] + 1)),
            pitch_range=int(rng.integers(config.pitch_range[0], config.pitch_range[1] + 1)),
            peak_dbfs=round(float(rng.uniform(*config.peak_dbfs)), 2),
            floor_dbfs=round(float(rng.uniform(*config.floor_dbfs)), 2),
            band_hz=(round(low_hz, 1), round(high_hz, 1)),
        ))  # fmt: skip
    return speakers


@functools.cache
def _resampling_fir(up: int, down: int) -> np.ndarray:
    """resample_poly's own default anti-alias filter, designed once instead of on every call (~1 ms)."""
    max_rate = max(up, down)
    return signal.firwin(2 * 10 * max_rate + 1, 1.0 / max_rate, window=("kaiser", 5.0))


def to_16k(x: np.ndarray, sample_rate_hz: int) -> np.ndarray:
    """Polyphase resampling to 16 kHz (22050 -> 16000 is 320/441)."""
    g = math.gcd(SAMPLE_RATE_HZ, sample_rate_hz)
    up, down = SAMPLE_RATE_HZ // g, sample_rate_hz // g
    return signal.resample_poly(x, up, down, window=_resampling_fir(up, down))


def trim_silence(x: np.ndarray, sample_rate_hz: int) -> np.ndarray:
    """Drop leading and trailing samples below -40 dB of the peak, keeping 5 ms margins."""
    a = np.abs(x)
    if not len(a) or a.max() <= 0:
        return x[:0]
    loud = np.flatnonzero(a > 0.01 * a.max())
    pad = sample_rate_hz // 200
    return x[max(0, loud[0] - pad) : loud[-1] + pad + 1]


def say(
    engine: Espeak, speaker: Speaker, word: str, rng: np.random.Generator, max_samples: int
) -> np.ndarray:
    """The word by this speaker with this clip's jitter: trimmed, 16 kHz, at most ``max_samples`` long."""
    text = word + str(rng.choice(_PUNCTUATION, p=_PUNCTUATION_P))
    rate = speaker.rate_wpm * float(np.exp(rng.normal(0.0, 0.07)))
    jitter = dict(
        pitch=int(round(speaker.pitch + rng.normal(0.0, 4.0))),
        pitch_range=int(round(speaker.pitch_range + rng.normal(0.0, 6.0))),
        volume=int(round(_ESPEAK_VOLUME * float(np.exp(rng.normal(0.0, 0.1))))),
    )
    for _ in range(4):  # too long: say it again faster (none of the default corpus needs it)
        raw = engine.synth(text, speaker.voice, rate_wpm=int(round(rate)), **jitter)
        x = to_16k(trim_silence(raw.astype(np.float64), engine.sample_rate_hz), engine.sample_rate_hz)
        if len(x) <= max_samples or rate >= RATE_MAX_WPM:
            break
        rate = min(RATE_MAX_WPM, rate * 1.08 * len(x) / max_samples)
    if len(x) > max_samples:  # still too long at espeak's top rate: squeeze in time (raises the pitch)
        x = signal.resample(x, max_samples)
    return x


@functools.lru_cache(maxsize=256)
def _band_pass(band_hz: tuple[float, float]) -> np.ndarray:
    return signal.butter(2, band_hz, btype="bandpass", fs=SAMPLE_RATE_HZ, output="sos")


def render_clip(
    engine: Espeak, speaker: Speaker, word: str, rng: np.random.Generator, max_word_s: float
) -> np.ndarray:
    """One 1 s int16 clip: the word band-limited, levelled, at a random offset, over a noise floor."""
    x = say(engine, speaker, word, rng, int(max_word_s * SAMPLE_RATE_HZ))
    if len(x) == 0:
        raise RuntimeError(f"espeak said nothing for {word!r} with {speaker.voice}")
    x = signal.sosfilt(_band_pass(speaker.band_hz), x)
    fade = min(len(x) // 4, SAMPLE_RATE_HZ // 250)  # 4 ms ramps: no click at the trimmed edges
    ramp = np.linspace(0.0, 1.0, fade, endpoint=False)
    x[:fade] *= ramp
    x[len(x) - fade :] *= ramp[::-1]
    peak_dbfs = min(-1.0, speaker.peak_dbfs + rng.normal(0.0, 2.0))  # per-clip gain, never at full scale
    x *= 10 ** (peak_dbfs / 20) / max(float(np.abs(x).max()), 1e-12)
    out = rng.standard_normal(CLIP_SAMPLES) * 10 ** (speaker.floor_dbfs / 20)
    offset = int(rng.integers(0, CLIP_SAMPLES - len(x) + 1))
    out[offset : offset + len(x)] += x
    return np.clip(np.round(out * 32767.0), -32768, 32767).astype(np.int16)
