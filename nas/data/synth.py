"""The built-in default corpus: keywords synthesised offline with espeak-ng, in the Speech Commands layout.

A fresh machine has no speech data and no network, so the project makes its own. Every *speaker* is a
voice identity (an English accent of espeak-ng, a voice variant, base pitch, pitch range, speaking rate,
loudness, microphone band, noise floor; see `_speakers`) who says every word `SynthConfig.repetitions`
times with small jitter. Clips are 16 kHz 16-bit mono, exactly one second, the word at a random offset.

Layout (what the ordinary Speech Commands loader, `nas.data.layout`, reads)::

    OUT/<word>/<speaker>_nohash_<n>.wav     speaker = 8 hex digits
    OUT/_background_noise_/*.wav            white, pink, brown noise, babble, machine hum
    OUT/validation_list.txt, OUT/testing_list.txt
    OUT/CORPUS.json                         manifest: versions, seed, config, speakers, counts, time

Speakers are split ~80/10/10 by voice; validation and test speakers use voice variants that no
training speaker uses. Each speaker id is picked so that the Speech Commands hashing rule
(`nas.data.split.hash_split`) puts it in its intended split: the official-list path and the hash path
of the loader agree, as on the real dataset.

Determinism: one config gives byte-identical WAVs and lists in any process and with any number of
workers (each speaker is rendered by a fresh espeak instance from its own seeds; see `_espeak`).
CORPUS.json differs only in ``generation_seconds``. The corpus is built in a hidden folder next to OUT
(``.OUT.partial-<pid>-<hex>``) and renamed into place, so an interrupted run never leaves a half corpus
under OUT; leftovers of dead runs are removed by the next run.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import secrets
import shutil
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from nas.data import noise
from nas.data._espeak import KLATT6_VARIANTS, Espeak, EspeakUnavailableError, available_variants
from nas.data._speakers import (
    AUXILIARY_WORDS,
    CLIP_SAMPLES,
    GENERATOR_VERSION,
    Speaker,
    SynthConfig,
    plan_speakers,
    render_clip,
    rng_for,
)
from nas.data.labels import BACKGROUND_NOISE_DIR, KEYWORDS_10
from nas.data.split import SPLITS, TEST, VALIDATION, hash_split, speaker_id
from nas.data.wav import SAMPLE_RATE_HZ, write_wav

__all__ = [
    "AUXILIARY_WORDS", "EspeakUnavailableError", "GENERATOR_VERSION", "MANIFEST", "NOISE_FILES",
    "SynthConfig", "SynthReport", "plan_speakers", "read_manifest", "synthesize_corpus",
]  # fmt: skip

log = logging.getLogger(__name__)

MANIFEST = "CORPUS.json"
LIST_FILES = {VALIDATION: "validation_list.txt", TEST: "testing_list.txt"}
NOISE_FILES = ("white_noise", "pink_noise", "brown_noise", "babble", "machine_hum")

@dataclass(frozen=True)
class SynthReport:
    out_dir: Path
    clips: int
    speakers: dict[str, int]  # per split
    clips_per_split: dict[str, int]
    noise_files: tuple[str, ...]  # file names in _background_noise_
    bytes_written: int  # everything but CORPUS.json
    seconds: float


def _check_voices(config: SynthConfig, engine: Espeak) -> None:
    """espeak ignores an unknown ``+variant`` silently: refuse it here instead."""
    variants = {*config.male_variants, *config.female_variants}
    if bad := sorted(variants & KLATT6_VARIANTS):
        raise ValueError(f"variants {bad} draw noise from libc rand() and would break determinism")
    if unknown := sorted(variants - available_variants()):
        raise ValueError(f"espeak-ng has no voice variants {unknown}")
    for accent in config.accents:
        engine.synth("a", accent)  # ValueError for an unknown voice


def _render_speaker(config: SynthConfig, speaker: Speaker, root: Path) -> int:
    """Write every clip of one speaker under ``root``. A fresh espeak per speaker: order does not matter."""
    with Espeak(seed=int(rng_for(config.seed, 1, speaker.index).integers(2**31))) as engine:
        for w, word in enumerate(config.words):
            for rep in range(config.repetitions):
                rng = rng_for(config.seed, 2, speaker.index, w, rep)
                clip = render_clip(engine, speaker, word, rng, config.max_word_s)
                write_wav(root / word / speaker.clip_name(rep), clip)
    return len(config.words) * config.repetitions


def _noise_file(config: SynthConfig, k: int, root: Path) -> dict[str, float]:
    """Write background-noise file ``NOISE_FILES[k]``; return its length and level."""
    n = int(round(config.noise_seconds * SAMPLE_RATE_HZ))
    rng = rng_for(config.seed, 3, k)
    name = NOISE_FILES[k]
    if name == "babble":
        voices = [
            f"{a}+{v}" for a in config.accents for v in (*config.male_variants, *config.female_variants)
        ]
        avoid = {*config.words, *KEYWORDS_10, *AUXILIARY_WORDS}  # babble must never say a corpus word
        x = noise.babble(n, rng, voices, avoid_words=avoid)
    elif name == "machine_hum":
        x = noise.machine_hum(n, rng)
    else:  # white, pink, brown: power ~ 1/f**0, 1/f, 1/f**2
        x = noise.coloured_noise(n, rng, float(("white_noise", "pink_noise", "brown_noise").index(name)))
    write_wav(root / BACKGROUND_NOISE_DIR / f"{name}.wav", x)
    rms_dbfs = 20 * np.log10(max(float(np.sqrt(np.mean(np.square(x)))), 1e-12))
    return {"seconds": n / SAMPLE_RATE_HZ, "rms_dbfs": round(rms_dbfs, 2)}


def _run_job(job: tuple[str, SynthConfig, Speaker | int, Path]) -> tuple[str, object]:
    """One unit of work in a worker: ``("speaker", config, speaker, root)`` or ``("noise", config, k, root)``."""
    kind, config, item, root = job
    if kind == "noise":
        return NOISE_FILES[item], _noise_file(config, item, root)
    return kind, _render_speaker(config, item, root)


def _render_all(
    config: SynthConfig, speakers: list[Speaker], root: Path, progress: Callable[[int, int], None] | None
) -> dict[str, dict]:
    """Every clip and noise file; returns the noise files' info. Results do not depend on ``workers``."""
    (root / BACKGROUND_NOISE_DIR).mkdir()
    # Babble (the longest job) first, the other noise files last, so two workers finish together.
    noise_jobs = [("noise", config, k, root) for k in range(len(NOISE_FILES))]
    babble = NOISE_FILES.index("babble")
    jobs = [noise_jobs[babble], *(("speaker", config, s, root) for s in speakers)]
    jobs += [j for k, j in enumerate(noise_jobs) if k != babble]
    total = len(speakers) * len(config.words) * config.repetitions
    workers = max(1, min(config.workers, os.cpu_count() or 1, len(jobs)))
    done, info = 0, {}
    # "spawn": fresh interpreters, nothing inherited from a parent that may hold threads or espeak state.
    pool = multiprocessing.get_context("spawn").Pool(workers) if workers > 1 else None
    try:
        for kind, result in pool.imap(_run_job, jobs) if pool else map(_run_job, jobs):
            if kind == "speaker":
                done += result
                if progress is not None:
                    progress(done, total)
            else:
                info[kind] = result
    finally:
        if pool is not None:
            pool.terminate()
    return {name: info[name] for name in NOISE_FILES}


def _write_lists(config: SynthConfig, speakers: list[Speaker], root: Path) -> None:
    for split, name in LIST_FILES.items():
        lines = sorted(
            f"{word}/{s.clip_name(r)}"
            for s in speakers if s.split == split for word in config.words for r in range(config.repetitions)
        )  # fmt: skip
        (root / name).write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")


def _count_clips(config: SynthConfig, root: Path) -> dict[str, dict[str, int]]:
    """Clips on disk per word and split (by the hashing rule, which the lists agree with)."""
    counts = {}
    for word in config.words:
        c = Counter(hash_split(speaker_id(p.name), config.validation_percent, config.test_percent)
                    for p in (root / word).glob("*.wav"))  # fmt: skip
        counts[word] = {split: c[split] for split in SPLITS}
    return counts


def read_manifest(out_dir: Path | str) -> dict | None:
    """The CORPUS.json of a complete corpus at ``out_dir``, or None when there is none."""
    try:
        with open(Path(out_dir) / MANIFEST, encoding="utf-8") as fh:
            return json.load(fh)
    except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError):
        return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def _clean_leftovers(out_dir: Path) -> None:
    """Remove ``.OUT.partial-<pid>-*`` / ``.OUT.old-<pid>-*`` folders whose process is gone."""
    prefix = f".{out_dir.name}."
    for p in out_dir.parent.iterdir():
        if not p.name.startswith(prefix) or not p.is_dir():
            continue
        kind, pid = (p.name[len(prefix) :].split("-") + [""])[:2]
        if kind in ("partial", "old") and pid.isdigit() and not _pid_alive(int(pid)):
            log.info("removing leftover %s", p)
            shutil.rmtree(p, ignore_errors=True)


def _occupied(path: Path) -> bool:
    return path.exists() and (not path.is_dir() or any(path.iterdir()))


def _install(tmp: Path, out_dir: Path) -> None:
    """Rename the finished corpus into place; an existing OUT is moved aside first, then deleted."""
    if out_dir.is_dir() and not any(out_dir.iterdir()):
        out_dir.rmdir()
    if not out_dir.exists():
        os.rename(tmp, out_dir)
        return
    old = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}-{secrets.token_hex(4)}"
    os.rename(out_dir, old)
    try:
        os.rename(tmp, out_dir)
    except BaseException:
        os.rename(old, out_dir)  # put the old corpus back rather than leave it to be cleaned away
        raise
    shutil.rmtree(old, ignore_errors=True)


def synthesize_corpus(
    out_dir: Path,
    config: SynthConfig = SynthConfig(),  # noqa: B008 (frozen: one shared default is safe)
    progress: Callable[[int, int], None] | None = None,
    *,
    overwrite: bool = False,
) -> SynthReport:
    """Synthesise the corpus of ``config`` into ``out_dir`` (layout in the module docstring).

    ``progress(clips_done, clips_total)`` is called after each speaker. A non-empty ``out_dir`` raises
    `FileExistsError` unless ``overwrite``; with it, the old one is replaced only once the new corpus is
    complete. Raises `EspeakUnavailableError` when libespeak-ng (package ``espeakng-loader``) cannot be
    loaded, `ValueError` for an unknown accent or variant. With ``workers > 1`` it starts processes
    ("spawn"), so a script calling it needs the usual ``if __name__ == "__main__":`` guard.
    """
    t0 = time.perf_counter()
    out_dir = Path(out_dir).absolute()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    _clean_leftovers(out_dir)
    if _occupied(out_dir) and not overwrite:
        what = "a complete corpus" if read_manifest(out_dir) else "other files"
        raise FileExistsError(f"{out_dir} already holds {what}; pass overwrite=True to replace it")
    with Espeak() as probe:  # fail early (install hint, unknown voices) before any work
        _check_voices(config, probe)
        espeak_version = probe.version
    speakers = plan_speakers(config)
    tmp = out_dir.parent / f".{out_dir.name}.partial-{os.getpid()}-{secrets.token_hex(4)}"
    tmp.mkdir()
    try:
        for word in config.words:
            (tmp / word).mkdir()
        noise_info = _render_all(config, speakers, tmp, progress)
        _write_lists(config, speakers, tmp)
        nbytes = sum(p.stat().st_size for p in tmp.rglob("*") if p.is_file())
        per_word = _count_clips(config, tmp)
        n_speakers = {split: sum(s.split == split for s in speakers) for split in SPLITS}
        n_clips = {split: sum(c[split] for c in per_word.values()) for split in SPLITS}
        seconds = time.perf_counter() - t0
        manifest = {
            "generator": "kwsnas nas.data.synth",
            "generator_version": GENERATOR_VERSION,
            "espeak_ng_version": espeak_version,
            "seed": config.seed,
            "config": {k: v for k, v in asdict(config).items() if k != "workers"},
            "words": list(config.words),
            "sample_rate_hz": SAMPLE_RATE_HZ,
            "clip_samples": CLIP_SAMPLES,
            "speakers": [
                {k: v for k, v in asdict(s).items() if k != "index"} | {"voice": s.voice} for s in speakers
            ],
            "counts": {
                "clips": sum(n_clips.values()),
                "speakers_per_split": n_speakers,
                "clips_per_split": n_clips,
                "clips_per_word_split": per_word,
            },
            "noise_files": noise_info,
            "bytes_written": nbytes,
            "generation_seconds": round(seconds, 3),  # the one field that differs between two runs
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        if _occupied(out_dir) and not overwrite:
            raise FileExistsError(
                f"{out_dir} was filled while synthesising; pass overwrite=True to replace it"
            )
        _install(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("synthesised %d clips of %d speakers into %s in %.1f s", sum(n_clips.values()), len(speakers),
             out_dir, seconds)  # fmt: skip
    return SynthReport(
        out_dir=out_dir, clips=sum(n_clips.values()), speakers=n_speakers, clips_per_split=n_clips,
        noise_files=tuple(f"{name}.wav" for name in NOISE_FILES), bytes_written=nbytes, seconds=seconds,
    )  # fmt: skip
