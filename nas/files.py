"""Where files go and how they are written: the user cache directory, and atomic writes (used for the
cache and for every result file: checkpoints, exported models, reports).

Everything expensive (the synthesised corpus, decoded audio, features, measurements, compiled firmware)
lives under one directory: ``$KWSNAS_CACHE_DIR``, else ``$XDG_CACHE_HOME/kwsnas``, else ``~/.cache/kwsnas``.
Writes go to a temporary file in the same directory and are renamed into place, so a killed process never
leaves a half-written entry that looks complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np


def cache_dir(*parts: str) -> Path:
    """``<cache root>/<parts...>``, created if missing."""
    root = os.environ.get("KWSNAS_CACHE_DIR")
    if root:
        base = Path(root)
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        base = (Path(xdg) if xdg else Path.home() / ".cache") / "kwsnas"
    path = base.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def digest_of(obj: Any, length: int = 16) -> str:
    """Stable short hex digest of a JSON-serialisable object (sorted keys, no whitespace)."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:length]


def _default_mode() -> int:
    """The mode an ordinary new file gets (0666 less the umask): mkstemp's 0600 would hide results."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            os.fchmod(fh.fileno(), _default_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_save_npy(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.save(fh, array, allow_pickle=False)
            os.fchmod(fh.fileno(), _default_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode())
