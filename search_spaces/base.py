"""The `SearchSpace` protocol, and the front-end knobs every space can search.

Spaces live in private modules (``_ds_cnn.py``, ``_micronet.py``, ``_dnn.py``, ``_cnn.py``) and are
re-exported by the package; `search_spaces.get_space` builds one by name.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from search_spaces.frontend import FrontEndConfig, get_frontend
from search_spaces.presets import family_presets
from search_spaces.spec import ArchSpec, AttentionPool, DSConv, GlobalAvgPool, Layer, rank_for

if TYPE_CHECKING:  # optuna is only needed for the type: spaces call nothing but trial.suggest_*
    import optuna


@runtime_checkable
class SearchSpace(Protocol):
    """A family of keyword-spotting architectures that an Optuna trial can sample.

    Contract (tested for every registered space by ``tests/search_spaces/test_search_spaces.py``):

    - ``name``: the registry name (``"ds-cnn"``, ...); every sampled spec has ``family == name``.
    - ``num_classes`` and ``frontend`` (the base front end) are fixed by the constructor
      (``num_classes=12``, ``frontend=<preset name or FrontEndConfig>``, ``tune_frontend=False``).
    - ``sample(trial)`` reads the trial only through ``trial.suggest_*`` and returns a valid `ArchSpec`
      (its validation passes, every feature map stays non-empty). It is a pure function of the suggested
      values: the same values (say through ``optuna.trial.FixedTrial(trial.params)``) give an equal spec
      with the same ``name`` and `ArchSpec.digest`. It never raises ``optuna.TrialPruned``: the space is
      built so that every combination of values it offers is legal, and a choice that is legal only in
      some contexts (a residual, a stride-2 step) is suggested only where it is legal.
    - With ``tune_frontend=True`` the front end is searched too (`sample_frontend`); otherwise every spec
      uses ``frontend``.
    - ``presets()`` returns the published configurations of the family (each with its own, published,
      front end and the space's ``num_classes``); they need not lie on the space's grid.
    - ``params_of(spec)`` is the inverse of ``sample``: the suggested values that make ``sample`` return a
      spec with ``spec``'s digest, or `NotInSpace` naming the first layer the space cannot produce. With
      ``snap=True`` a width off the space's grid (or outside its range) is rounded to the nearest width the
      space offers instead, so a published or user-made network can seed a search as its nearest member
      (compare digests to see whether it moved). Warm starts and the evolution sampler rely on it.
    """

    name: str
    num_classes: int
    frontend: FrontEndConfig
    tune_frontend: bool

    def sample(self, trial: optuna.trial.BaseTrial) -> ArchSpec: ...

    def presets(self) -> dict[str, ArchSpec]: ...

    def params_of(self, spec: ArchSpec, snap: bool = False) -> dict[str, Any]: ...


class NotInSpace(ValueError):
    """A spec the space cannot produce; the message names the first layer or setting that differs."""


# --- front-end knobs ("feature optimisation") ------------------------------------------------------------------------
# Hello Edge varies the MFCC count and the window/stride; the values below are the usual KWS settings.
# n_mels stays 40 (>= every coefficient count below); 40 mel bands between 20 Hz and 4 kHz all receive an
# FFT bin at the 512-point (30 ms) and 1024-point (40 ms) FFTs these windows use.
N_COEFFS_CHOICES = (10, 13, 16, 20)
WINDOW_MS_CHOICES = (30, 40)
STRIDE_MS_CHOICES = (20, 40)


def _knobbed(base: FrontEndConfig, n_coeffs: int | None, window_ms: int, stride_ms: int) -> FrontEndConfig:
    samples_per_ms = base.sample_rate_hz // 1000
    coeffs = f"-mfcc{n_coeffs}" if n_coeffs is not None else ""
    return base.replace(
        name=f"{base.name}{coeffs}-{window_ms}ms-{stride_ms}ms",  # readable in tables; part of the digest
        n_coeffs=n_coeffs,
        n_mels=max(base.n_mels, n_coeffs or 0),
        window_samples=window_ms * samples_per_ms,
        stride_samples=stride_ms * samples_per_ms,
    )


def sample_frontend(trial: optuna.trial.BaseTrial, base: FrontEndConfig) -> FrontEndConfig:
    """``base`` with the MFCC count, window and stride suggested by ``trial`` (params ``fe_*``).

    A log-mel base (``n_coeffs=None``) keeps its mel count: only window and stride are searched.
    """
    n_coeffs = None if base.n_coeffs is None else trial.suggest_categorical("fe_n_coeffs", N_COEFFS_CHOICES)
    window_ms = trial.suggest_categorical("fe_window_ms", WINDOW_MS_CHOICES)
    stride_ms = trial.suggest_categorical("fe_stride_ms", STRIDE_MS_CHOICES)
    return _knobbed(base, n_coeffs, window_ms, stride_ms)


def frontend_choices(base: FrontEndConfig, tune: bool) -> list[FrontEndConfig]:
    """Every front end a space with this base can produce (``[base]`` unless ``tune``)."""
    if not tune:
        return [base]
    coeffs = N_COEFFS_CHOICES if base.n_coeffs is not None else (None,)
    return [_knobbed(base, *combo) for combo in itertools.product(coeffs, WINDOW_MS_CHOICES, STRIDE_MS_CHOICES)]


def parse_hw(text: str) -> tuple[int, int]:
    """``"10x4"`` -> ``(10, 4)``: kernels and strides are categorical strings so they stay JSON in storage."""
    a, b = text.split("x")
    return (int(a), int(b))


def resolve_frontend(frontend: str | FrontEndConfig) -> FrontEndConfig:
    """A front-end preset name or a config, as a config."""
    return frontend if isinstance(frontend, FrontEndConfig) else get_frontend(frontend)


class SpaceBase:
    """Shared constructor and helpers of the built-in spaces (not part of the protocol)."""

    name: str = ""
    default_frontend: str = "hello-edge"

    def __init__(self, num_classes: int = 12, frontend: str | FrontEndConfig | None = None,
                 tune_frontend: bool = False, low_rank: bool = False, attention: bool = False) -> None:
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"{self.name}: num_classes must be an integer >= 2, got {num_classes!r}")
        self.num_classes = num_classes
        self.frontend = resolve_frontend(frontend if frontend is not None else self.default_frontend)
        self.tune_frontend = bool(tune_frontend)
        self.low_rank = bool(low_rank)  # spaces with 1x1 convolutions or dense layers: a rank per layer
        self.attention = bool(attention)  # spaces of DS blocks: a squeeze-and-excitation gate per block

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(num_classes={self.num_classes}, frontend={self.frontend.name!r}, "
                f"tune_frontend={self.tune_frontend}, low_rank={self.low_rank}, attention={self.attention})")

    def _rank(self, trial: optuna.trial.BaseTrial, name: str, n_in: int, n_out: int) -> int | None:
        """With ``low_rank``: the layer's rank from the categorical ``name`` (a fraction of min(in, out));
        None (full rank) without it, for "full", or where the fraction would save nothing."""
        if not self.low_rank:
            return None
        return rank_of(trial.suggest_categorical(name, RANK_CHOICES), n_in, n_out)

    def _rank_param(self, where: str, rank: int | None, n_in: int, n_out: int) -> str | None:
        """The ``RANK_CHOICES`` value `_rank` turns into ``rank`` (None: the space has no rank parameter)."""
        if not self.low_rank:
            expect(rank is None, f"{where}: rank {rank}, and the space searches full-rank layers only "
                                 "(low_rank=False)")
            return None
        for choice in RANK_CHOICES:
            if rank_of(choice, n_in, n_out) == rank:
                return choice
        raise NotInSpace(f"{where}: rank {rank} is none of {RANK_CHOICES} of min({n_in}, {n_out})")

    def _se(self, trial: optuna.trial.BaseTrial, name: str, channels: int) -> int | None:
        """With ``attention``: the block's squeeze width (`se_width`) when the boolean ``name`` says so."""
        if not self.attention:
            return None
        return se_width(channels) if trial.suggest_categorical(name, (False, True)) else None

    def _se_param(self, where: str, se: int | None, channels: int) -> bool | None:
        """The value `_se` turns into ``se`` (None: the space has no gate parameter)."""
        if not self.attention:
            expect(se is None, f"{where}: a squeeze-and-excitation gate, and the space searches none "
                               "(attention=False)")
            return None
        expect(se in (None, se_width(channels)), f"{where}: squeeze width {se}, the space's is "
                                                 f"{se_width(channels)} for {channels} channels")
        return se is not None

    def _head(self, trial: optuna.trial.BaseTrial) -> Layer:
        """The pooling head: global average pooling, or with ``attention`` the categorical ``head`` (`HEADS`)."""
        if self.attention and trial.suggest_categorical("head", HEADS) == "attnpool":
            return AttentionPool()
        return GlobalAvgPool()

    def _head_param(self, where: str, head: Layer) -> str | None:
        """The value `_head` turns into ``head`` (None: the space has no head parameter)."""
        expect(isinstance(head, GlobalAvgPool | AttentionPool), f"{where}: the network must end in a global "
                                                               "average or an attention pool")
        if not self.attention:
            expect(isinstance(head, GlobalAvgPool), f"{where}: attention pooling, and the space searches none "
                                                    "(attention=False)")
            return None
        return head.kind

    def _frontend(self, trial: optuna.trial.BaseTrial) -> FrontEndConfig:
        return sample_frontend(trial, self.frontend) if self.tune_frontend else self.frontend

    def _spec(self, frontend: FrontEndConfig, layers: tuple[Layer, ...]) -> ArchSpec:
        """The spec, named after its own digest so that equal samples get equal names."""
        spec = ArchSpec(name=self.name, family=self.name, frontend=frontend, layers=layers,
                        num_classes=self.num_classes, meta={"space": self.name})
        return ArchSpec(name=f"{self.name}-{spec.digest()[:10]}", family=self.name, frontend=frontend,
                        layers=layers, num_classes=self.num_classes, meta={"space": self.name})

    def presets(self) -> dict[str, ArchSpec]:
        """The published configurations of this family, with this space's ``num_classes``."""
        return {name: spec.with_classes(self.num_classes) for name, spec in family_presets(self.name).items()}

    # --- helpers of params_of ---------------------------------------------------------------------------------
    def _frontend_params(self, spec: ArchSpec) -> dict[str, Any]:
        """The ``fe_*`` values of ``spec``'s front end (none without tuning); `NotInSpace` if it is not one
        this space produces."""
        if spec.num_classes != self.num_classes:
            raise NotInSpace(f"{spec.name}: {spec.num_classes} classes, the space has {self.num_classes}")
        if not self.tune_frontend:
            if spec.frontend != self.frontend:
                raise NotInSpace(f"{spec.name}: front end {spec.frontend.name!r} is not the space's "
                                 f"{self.frontend.name!r}")
            return {}
        coeffs = N_COEFFS_CHOICES if self.frontend.n_coeffs is not None else (None,)
        for combo in itertools.product(coeffs, WINDOW_MS_CHOICES, STRIDE_MS_CHOICES):
            if _knobbed(self.frontend, *combo) == spec.frontend:
                n_coeffs, window_ms, stride_ms = combo
                values = {"fe_window_ms": window_ms, "fe_stride_ms": stride_ms}
                return values if n_coeffs is None else {"fe_n_coeffs": n_coeffs, **values}
        raise NotInSpace(f"{spec.name}: front end {spec.frontend.name!r} is not one the space searches")


# Low-rank choices per layer: the rank as a fraction of min(inputs, outputs). No 1/2: on a square layer the
# projection and the expansion together cost as much as the full layer (n*n/2 + n/2*n); 1/4 and 1/8 save
# half and three quarters of it.
RANK_CHOICES = ("full", "1/4", "1/8")


# Squeeze-and-excitation width: a quarter of the channels (Hu et al.'s reduction 4, MobileNetV3's too) rounded to
# a multiple of 8 (the dense kernels' unrolled lanes), at least 8.
SE_REDUCTION, SE_STEP = 4, 8


HEADS = ("gap", "attnpool")  # with attention: the pooling head is searched too (`AttentionPool`)


def se_width(channels: int) -> int:
    """The squeeze width of a gate over ``channels`` channels (see ``SE_REDUCTION``)."""
    return max(SE_STEP, SE_STEP * round(channels / SE_REDUCTION / SE_STEP))


def gated_spec(spec: ArchSpec) -> ArchSpec:
    """``spec`` with a squeeze-and-excitation gate (`se_width` of its input channels) in every DS block."""
    channels = [shape[-1] for shape in (spec.input_shape, *spec.shapes())]
    layers = tuple(dataclasses.replace(layer, se=se_width(channels[i])) if isinstance(layer, DSConv) else layer
                   for i, layer in enumerate(spec.layers))
    if layers == spec.layers:
        raise ValueError(f"{spec.name}: no depthwise-separable block to gate")
    return dataclasses.replace(spec, name=f"{spec.name}-se", layers=layers)


def attention_pooled_spec(spec: ArchSpec) -> ArchSpec:
    """``spec`` with attention pooling in place of its global average pooling."""
    layers = tuple(AttentionPool() if isinstance(layer, GlobalAvgPool) else layer for layer in spec.layers)
    if layers == spec.layers:
        raise ValueError(f"{spec.name}: no global average pooling to replace with attention pooling")
    return dataclasses.replace(spec, name=f"{spec.name}-attnpool", layers=layers)


def rank_of(choice: str, n_in: int, n_out: int) -> int | None:
    """The rank a ``RANK_CHOICES`` value gives a layer of ``n_in`` -> ``n_out`` (None: full rank)."""
    if choice == "full":
        return None
    num, den = (int(x) for x in choice.split("/"))
    return rank_for(num / den, n_in, n_out)


def snap_int(where: str, value: int, low: int, high: int, step: int, snap: bool) -> int:
    """``value`` if the grid ``low, low + step, ..., high`` holds it; else the nearest grid value when
    ``snap``, else `NotInSpace`."""
    if low <= value <= high and (value - low) % step == 0:
        return value
    if not snap:
        raise NotInSpace(f"{where}: {value} is not in {low}..{high} in steps of {step}")
    clamped = min(max(value, low), high)
    nearest = low + step * math.ceil((clamped - low) / step - 0.5)  # a tie goes down: seeds are usually at a budget
    return min(nearest, high - (high - low) % step)


def expect(condition: bool, message: str) -> None:
    """`NotInSpace` with ``message`` unless ``condition``."""
    if not condition:
        raise NotInSpace(message)


def hw_text(pair: tuple[int, int]) -> str:
    """``(10, 4)`` -> ``"10x4"``: the categorical form of kernels and strides (see `parse_hw`)."""
    return f"{pair[0]}x{pair[1]}"
