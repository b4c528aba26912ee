"""The built-in default corpus: where it lives and how ``default`` resolves to it."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from nas.files import cache_dir

log = logging.getLogger(__name__)

DEFAULT = "default"
_MANIFEST = "CORPUS.json"


def default_corpus_dir(seed: int = 0) -> Path:
    from nas.data.synth import GENERATOR_VERSION

    return cache_dir("corpus") / f"default-v{GENERATOR_VERSION}-seed{seed}"


def is_complete(path: Path) -> bool:
    """A corpus directory is complete once its manifest exists (the synthesiser writes it last, atomically)."""
    return (path / _MANIFEST).is_file()


def ensure_default_corpus(seed: int = 0, out: Path | None = None, force: bool = False,
                          progress: Callable[[int, int], None] | None = None) -> Path:
    """Synthesise the default corpus unless a complete one is already there; return its path."""
    from nas.data.synth import SynthConfig, synthesize_corpus

    path = Path(out) if out is not None else default_corpus_dir(seed)
    if is_complete(path) and not force:
        log.info("default corpus already prepared at %s", path)
        return path
    log.info("synthesising the default corpus (seed %d) into %s", seed, path)
    # overwrite: an old corpus is replaced only once the new one is complete (atomic rename).
    synthesize_corpus(path, SynthConfig(seed=seed), progress, overwrite=force or path.exists())
    return path


def resolve_data(spec: str | Path, seed: int = 0) -> Path:
    """``default`` -> the synthesised corpus (prepared on first use); anything else is a path."""
    if str(spec) == DEFAULT:
        return ensure_default_corpus(seed)
    return Path(spec).expanduser()
