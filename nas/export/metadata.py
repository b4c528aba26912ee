"""What a `.tflite` written by kwsnas says about itself: one metadata entry, ``kwsnas``, holding JSON.

    meta = ModelMetadata(labels=("_silence_", ...), frontend=spec.frontend, spec_name=..., spec_digest=...)
    graph = graph.replace(metadata={**graph.metadata, METADATA_KEY: meta.to_json()})
    ModelMetadata.from_graph(read_tflite(data))          # None for a third-party model

The input of a kwsnas model is the front end's features as they come out of `nas.features`
(``[1, frames, coeffs, 1]``: time, then coefficients; no extra normalisation), so the front-end config
and the label order are all an evaluator needs to feed it like for like.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from search_spaces.frontend import FrontEndConfig

METADATA_KEY = "kwsnas"
FORMAT_VERSION = 1


class MetadataError(ValueError):
    """A ``kwsnas`` metadata entry that cannot be read; the message says why."""


@dataclass(frozen=True)
class ModelMetadata:
    labels: tuple[str, ...]
    frontend: FrontEndConfig
    spec_name: str = ""
    spec_digest: str = ""
    kwsnas_version: str = ""
    extra: dict[str, Any] = field(default_factory=dict)  # anything else worth keeping (calibration clips, ...)

    def to_json(self) -> str:
        return json.dumps({
            "format": FORMAT_VERSION,
            "labels": list(self.labels),
            "frontend": self.frontend.to_dict(),
            "spec_name": self.spec_name,
            "spec_digest": self.spec_digest,
            "kwsnas_version": self.kwsnas_version,
            "extra": self.extra,
        }, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> ModelMetadata:
        try:
            d = json.loads(text)
            if not isinstance(d, dict) or d.get("format") != FORMAT_VERSION:
                raise MetadataError(f"unknown kwsnas metadata format {d.get('format') if isinstance(d, dict) else d!r}")
            labels = tuple(str(x) for x in d["labels"])
            return cls(labels, FrontEndConfig.from_dict(d["frontend"]), str(d.get("spec_name", "")),
                       str(d.get("spec_digest", "")), str(d.get("kwsnas_version", "")), dict(d.get("extra") or {}))
        except MetadataError:
            raise
        except (ValueError, TypeError, KeyError) as e:
            raise MetadataError(f"corrupt kwsnas metadata ({type(e).__name__}: {e})") from None

    @classmethod
    def from_graph(cls, graph) -> ModelMetadata | None:
        """The metadata of a graph read from a `.tflite`, or None when kwsnas did not write it."""
        text = graph.metadata.get(METADATA_KEY)
        return None if text is None else cls.from_json(text)


def metadata_summary(graph) -> dict[str, Any]:
    """The kwsnas entry of a graph for ``nas inspect``: ``{"metadata": {...} or None, "metadata_error":
    str or None}`` (a damaged entry is reported, not raised: it should not hide the rest of the model)."""
    try:
        m = ModelMetadata.from_graph(graph)
    except ValueError as e:
        return {"metadata": None, "metadata_error": str(e)}
    meta = None if m is None else {
        "labels": list(m.labels), "frontend": m.frontend.to_dict(), "spec_name": m.spec_name,
        "spec_digest": m.spec_digest, "kwsnas_version": m.kwsnas_version}
    return {"metadata": meta, "metadata_error": None}
