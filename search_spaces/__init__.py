"""Search spaces, the architecture spec language, published presets and static cost estimates.

``search_spaces`` depends on nothing in ``nas`` or ``hardware`` (GUIDE §1): it is data and pure functions.
Typical use, inside an Optuna objective::

    space = get_space("ds-cnn", num_classes=12, tune_frontend=True)
    spec = space.sample(trial)                   # an ArchSpec; spec.digest() is the cache key
    cost = estimate(spec)                        # params, MACs, peak activation bytes, per-layer list
    reference = get_preset("micronet-kws-m")     # a published configuration
"""

from __future__ import annotations

from typing import Any

from search_spaces._cnn import CNNSpace
from search_spaces._dnn import DNNSpace
from search_spaces._ds_cnn import DSCNNSpace
from search_spaces._micronet import MicroNetSpace
from search_spaces.base import NotInSpace, SearchSpace, sample_frontend
from search_spaces.estimate import Estimate, LayerEstimate, estimate
from search_spaces.frontend import FrontEndConfig, get_frontend
from search_spaces.presets import PRESET_NAMES, get_preset, load_spec
from search_spaces.spec import ArchSpec, SpecError

SPACES: dict[str, type[SearchSpace]] = {
    cls.name: cls for cls in (DSCNNSpace, MicroNetSpace, DNNSpace, CNNSpace)
}


def get_space(name: str, **kwargs: Any) -> SearchSpace:
    """The space ``name`` built with ``kwargs`` (``num_classes``, ``frontend``, ``tune_frontend``)."""
    if name not in SPACES:
        raise ValueError(f"unknown search space {name!r}; known spaces: {', '.join(SPACES)}")
    return SPACES[name](**kwargs)


__all__ = [
    "ArchSpec",
    "CNNSpace",
    "DNNSpace",
    "DSCNNSpace",
    "Estimate",
    "FrontEndConfig",
    "LayerEstimate",
    "MicroNetSpace",
    "NotInSpace",
    "PRESET_NAMES",
    "SPACES",
    "SearchSpace",
    "SpecError",
    "estimate",
    "get_frontend",
    "get_preset",
    "get_space",
    "load_spec",
    "sample_frontend",
]
