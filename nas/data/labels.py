"""Label names of the Speech Commands protocols."""

from __future__ import annotations

SILENCE = "_silence_"
UNKNOWN = "_unknown_"
BACKGROUND_NOISE_DIR = "_background_noise_"

# The ten keywords of the standard 12-class task, in the order Arm's Hello Edge / ML-zoo models use.
KEYWORDS_10: tuple[str, ...] = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")

# The standard 12-class label order: silence, unknown, then the keywords.
LABELS_12: tuple[str, ...] = (SILENCE, UNKNOWN, *KEYWORDS_10)
