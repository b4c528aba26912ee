"""The tiny synthesised corpus of the synth tests (imported by the tests and by the child process that
makes it again)."""

from __future__ import annotations

from nas.data.synth import SynthConfig

WORDS = ("yes", "no", "bed", "wow")
# 7 speakers: 2 validation, 2 test, 3 train; 2 s of each noise. About half a second to make.
TINY = SynthConfig(
    seed=7, words=WORDS, speakers=7, repetitions=2, min_heldout_speakers=2, noise_seconds=2.0, workers=1
)
