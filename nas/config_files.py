"""Experiment config files: a small TOML table of a frozen config's fields, then overrides (CLI flags).

One way to read them for the search (`nas.study.config`) and the experiments (`nas.experiments`)::

    settings = read_settings(path, overrides)          # the file's table, then the non-None overrides
    cfg = build(SeedConfig, tuples(settings, ("boards",)), path)

Every problem (no file, unreadable, bad TOML, an unknown or missing setting) is a ValueError naming the
file, which the CLI prints as one ``error:`` line.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def read_toml(path: Path | str) -> dict[str, Any]:
    """An experiment config file as a dict; any problem reading it is a ValueError naming the file."""
    p = Path(path)
    try:
        return tomllib.loads(p.read_text())
    except FileNotFoundError:
        raise ValueError(f"{p}: no such experiment config") from None
    except OSError as e:
        raise ValueError(f"{p}: cannot read ({e.strerror or e})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{p}: not a valid TOML file ({e})") from None


def read_settings(path: Path | str | None, overrides: dict[str, Any]) -> dict[str, Any]:
    """The TOML file at ``path`` (none: no settings), updated by ``overrides`` (None values are ignored, so
    CLI flags that were not given leave the file's values)."""
    d: dict[str, Any] = read_toml(path) if path is not None else {}
    d.update({k: v for k, v in overrides.items() if v is not None})
    return d


def tuples(settings: dict[str, Any], keys: Iterable[str]) -> dict[str, Any]:
    """``settings`` with the lists under ``keys`` made tuples (a frozen config's fields); changed in place."""
    for key in keys:
        if key in settings:
            settings[key] = tuple(settings[key])
    return settings


def build(make: Callable[..., T], settings: dict[str, Any], path: Path | str | None) -> T:
    """``make(**settings)``; an unknown or missing setting (a TypeError) becomes a ValueError naming the file."""
    try:
        return make(**settings)
    except TypeError as e:
        raise ValueError(f"{path or 'config'}: {e}") from None
