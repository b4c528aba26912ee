"""Checkpoints: a directory holding one trained model, written so that a crash never leaves it half-saved.

Layout::

    spec.json               the ArchSpec (ArchSpec.from_json reads it)
    train_config.json       the TrainConfig of the run
    weights-<step>.npz      parameters and batch statistics, one array per variable ("params/layers.0.kernel")
    checkpoint.json         written last: which weights file, its SHA-256, the spec digest, step, metrics

Every file is written to a temporary name and renamed into place; the weights of a new save go to a new
file name and ``checkpoint.json`` switches to it atomically before the old file is removed, so at every
moment ``checkpoint.json`` names a complete weights file that matches it.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import jax
import numpy as np

from nas import __version__
from nas.files import atomic_write_bytes, atomic_write_json
from nas.models import KWSModel, build_model, merge_model, split_model
from nas.train.config import TrainConfig
from search_spaces.spec import ArchSpec, SpecError

FORMAT_VERSION = 1
META_FILE, SPEC_FILE, CONFIG_FILE = "checkpoint.json", "spec.json", "train_config.json"


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded; the message names the file and the cause."""


def _entry_name(path: tuple) -> str:
    parts = []
    for k in path:
        name = getattr(k, "key", getattr(k, "idx", getattr(k, "name", None)))
        parts.append(str(name))
    if parts and parts[-1] == "value":  # the nnx.Variable's payload, not part of the name
        parts.pop()
    return ".".join(parts)


def _flatten(tree: Any, prefix: str) -> dict[str, np.ndarray]:
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {f"{prefix}/{_entry_name(p)}": np.asarray(leaf) for p, leaf in leaves}


def save_checkpoint(directory: Path | str, spec: ArchSpec, params: Any, batch_stats: Any,
                    config: TrainConfig | None = None, step: int = 0,
                    metrics: dict[str, Any] | None = None) -> Path:
    """Write (or atomically replace) the checkpoint in ``directory``; returns the directory."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    arrays = {**_flatten(params, "params"), **_flatten(batch_stats, "batch_stats")}
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    blob = buf.getvalue()
    weights = f"weights-{step:09d}.npz"
    atomic_write_bytes(directory / SPEC_FILE, (spec.to_json() + "\n").encode())
    if config is not None:
        atomic_write_bytes(directory / CONFIG_FILE, (config.to_json() + "\n").encode())
    atomic_write_bytes(directory / weights, blob)
    atomic_write_json(directory / META_FILE, {
        "format": FORMAT_VERSION,
        "kwsnas_version": __version__,
        "weights": weights,
        "weights_sha256": hashlib.sha256(blob).hexdigest(),
        "spec_digest": spec.digest(),
        "spec_name": spec.name,
        "step": int(step),
        "metrics": metrics or {},
    })
    for old in directory.glob("weights-*.npz"):
        if old.name != weights:
            old.unlink(missing_ok=True)
    return directory


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing (not a checkpoint directory, or the save never finished)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: unreadable or corrupt ({e})") from None


def load_checkpoint(directory: Path | str, spec: ArchSpec | None = None) -> tuple[KWSModel, ArchSpec, dict[str, Any]]:
    """``(model, spec, meta)`` of a checkpoint; ``meta`` is ``checkpoint.json`` plus ``config`` (a TrainConfig
    or None). With ``spec``, raises `CheckpointError` unless the checkpoint was saved for that network."""
    directory = Path(directory)
    meta = _read_json(directory / META_FILE)
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_VERSION or "weights" not in meta:
        raise CheckpointError(f"{directory / META_FILE}: not a kwsnas checkpoint (format {FORMAT_VERSION})")
    try:
        saved_spec = ArchSpec.from_dict(_read_json(directory / SPEC_FILE))
    except SpecError as e:
        raise CheckpointError(f"{directory / SPEC_FILE}: {e}") from None
    if saved_spec.digest() != meta.get("spec_digest"):
        raise CheckpointError(f"{directory / SPEC_FILE}: does not match {META_FILE} "
                              f"(digest {saved_spec.digest()} vs {meta.get('spec_digest')})")
    if spec is not None and spec.digest() != saved_spec.digest():
        raise CheckpointError(f"{directory / SPEC_FILE}: saved for architecture {saved_spec.name!r} ({saved_spec.digest()}), "
                              f"not {spec.name!r} ({spec.digest()})")
    weights_path = directory / str(meta["weights"])
    try:
        blob = weights_path.read_bytes()
    except OSError as e:
        raise CheckpointError(f"{weights_path}: cannot read ({e})") from None
    if hashlib.sha256(blob).hexdigest() != meta.get("weights_sha256"):
        raise CheckpointError(f"{weights_path}: corrupt (SHA-256 differs from {META_FILE})")
    try:
        with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise CheckpointError(f"{weights_path}: corrupt ({e})") from None

    graphdef, params, stats = split_model(build_model(saved_spec, 0))
    used: set[str] = set()
    params = _fill(params, "params", arrays, weights_path, used)
    stats = _fill(stats, "batch_stats", arrays, weights_path, used)
    if set(arrays) - used:
        raise CheckpointError(f"{weights_path}: arrays {sorted(set(arrays) - used)[:3]} belong to no variable of "
                              f"{saved_spec.name!r}: saved for another architecture")
    config = None
    if (directory / CONFIG_FILE).is_file():
        try:
            config = TrainConfig.from_dict(_read_json(directory / CONFIG_FILE))
        except (TypeError, ValueError) as e:
            raise CheckpointError(f"{directory / CONFIG_FILE}: {e}") from None
    return merge_model(graphdef, params, stats), saved_spec, {**meta, "config": config}


def _fill(template: Any, prefix: str, arrays: dict[str, np.ndarray], where: Path, used: set[str]) -> Any:
    leaves, treedef = jax.tree_util.tree_flatten_with_path(template)
    out = []
    for path, leaf in leaves:
        name = f"{prefix}/{_entry_name(path)}"
        if name not in arrays:
            raise CheckpointError(f"{where}: no array {name!r}: saved for another architecture")
        value = arrays[name]
        used.add(name)
        if value.shape != leaf.shape or value.dtype != leaf.dtype:
            raise CheckpointError(f"{where}: {name} is {value.dtype}{list(value.shape)}, the architecture needs "
                                  f"{leaf.dtype}{list(leaf.shape)}")
        out.append(jax.numpy.asarray(value))
    return jax.tree_util.tree_unflatten(treedef, out)
