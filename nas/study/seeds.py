"""Warm starts and reference budgets: what a search knows before its first trial.

    cfg = resolve_budgets(cfg, measure)          # budget_from = "ds-cnn-s": its measured flash, RAM, latency
    outcomes = queue_seeds(study, cfg, measure)  # fitting presets and --seed-arch specs as the first trials

``measure(spec)`` gives a spec's hardware figures exactly as a trial measures them (an untrained int8
build on the study's board and evaluator, `nas.study.candidate`), so "fits" means the same thing here and
in the search.

Seeds are the space's published presets (``warm_start``) and the user's ``seed_archs`` (preset names or
spec .json files). Each is written in the space's parameters (`SearchSpace.params_of`; a width off the
space's grid is rounded to the nearest one, and the outcome says so), deduplicated by spec digest
against every trial of the study (so a resumed search queues nothing twice), and queued with
``study.enqueue_trial`` only when it fits every budget.

With budgets and ``scale_seeds``, each seed is also scaled to them (MobileNet's uniform width multiplier,
`ArchSpec.widened`): a seed that fits gives the widest copy that still fits (a design made for a smaller
budget, grown to use this one), a seed that does not fit gives the widest narrower copy that fits. Without
that, a search for a large budget starts from small presets and spends its hour on one-step mutations
(measured: with MicroNet-KWS-S's budgets, 60 minutes of search never went past 0.43x its latency).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import FixedTrial

from nas.study.config import SearchConfig
from nas.study.objectives import constraint_values
from search_spaces import ArchSpec, NotInSpace
from search_spaces.presets import load_spec

log = logging.getLogger(__name__)

Measure = Callable[[ArchSpec], dict[str, Any]]
SEED_ATTR = "seeded_from"  # user attribute of a queued seed: the preset name or spec file it came from


@dataclass(frozen=True)
class SeedOutcome:
    source: str  # preset name or spec file
    queued: bool
    note: str  # why not, or what changed ("widths rounded to the space's grid")
    digest: str | None = None

    def __str__(self) -> str:
        return f"{self.source}: {'queued' if self.queued else 'not queued'}" + (f" ({self.note})" if self.note else "")


def reference_budgets(ref: str, cfg: SearchConfig, measure: Measure, num_classes: int) -> dict[str, float]:
    """``board``: the board's flash and RAM; a preset or spec file: its measured flash, RAM and latency."""
    if ref == "board":
        from hardware.boards import get_board

        board = get_board(cfg.board)
        return {"flash_bytes": float(board.flash.length_bytes), "ram_bytes": float(board.ram.length_bytes)}
    fig = measure(load_spec(ref).with_classes(num_classes))
    if not fig.get("fits_board", True) or any(fig.get(k) is None for k in ("flash_bytes", "ram_bytes", "latency_ms")):
        raise ValueError(f"budget_from {ref!r}: it does not run on {cfg.board}, so it sets no budget")
    return {k: float(fig[k]) for k in ("flash_bytes", "ram_bytes", "latency_ms")}


def resolve_budgets(cfg: SearchConfig, measure: Measure, num_classes: int) -> SearchConfig:
    """``cfg`` with the budgets of ``budget_from`` filled in (explicit budgets win)."""
    if cfg.budget_from is None:
        return cfg
    budgets = {**reference_budgets(cfg.budget_from, cfg, measure, num_classes), **cfg.budgets}
    log.info("budgets from %s on %s: %s", cfg.budget_from, cfg.board,
             ", ".join(f"{k} <= {v:,.6g}" for k, v in budgets.items()))
    return cfg.replace(budgets=budgets)


def seed_sources(cfg: SearchConfig, space: Any) -> list[tuple[str, ArchSpec]]:
    """(source, spec) of every seed the config asks for: the space's presets, then ``seed_archs``."""
    out = list(space.presets().items()) if cfg.warm_start else []
    for ref in cfg.seed_archs:
        try:
            out.append((ref, load_spec(ref).with_classes(space.num_classes)))
        except ValueError as e:  # SpecError too: the message names the file and the cause
            raise ValueError(f"--seed-arch {ref}: {e}") from None
    return out


def _study_digests(study: optuna.Study, space: Any) -> set[str]:
    seen = set()
    for t in study.get_trials(deepcopy=False):
        if "spec_digest" in t.user_attrs:
            seen.add(t.user_attrs["spec_digest"])
        elif "fixed_params" in t.system_attrs:
            try:
                seen.add(space.sample(FixedTrial(t.system_attrs["fixed_params"])).digest())
            except Exception:  # a queued configuration this space no longer builds: nothing to compare
                pass
    return seen


# Width multipliers tried when scaling a seed to the budgets: about one 8-channel grid step apart at DS-CNN-S's
# 64 channels near 1, coarser further out (flash grows with the square of the width, so 3x is ~9x the weights).
WIDER = (1.125, 1.25, 1.375, 1.5, 1.75, 2.0, 2.5, 3.0)
NARROWER = (0.875, 0.75, 0.625, 0.5, 0.375, 0.25)


def queue_seeds(study: optuna.Study, cfg: SearchConfig, space: Any, measure: Measure | None) -> list[SeedOutcome]:
    """Queue every seed that fits the budgets, and its copy scaled to them (see the module docstring); one
    outcome per seed and per scaled copy tried."""
    from nas.study.static_check import StaticCheck

    check = StaticCheck.of(cfg)
    seen = _study_digests(study, space)
    outcomes: list[SeedOutcome] = []

    def member_of(spec: ArchSpec) -> tuple[dict[str, Any], ArchSpec]:
        params = space.params_of(spec, snap=True)
        return params, space.sample(FixedTrial(params))

    def over(member: ArchSpec) -> str | None:
        """Why ``member`` breaks a budget (static check first, then the measurement), or None."""
        reason = check.reason(member)
        if reason is None and measure is not None and cfg.budgets:
            fig = measure(member)
            over = {k: v for k, v in constraint_values(cfg.budgets, fig).items() if v > 0}
            if not fig.get("fits_board", True) or over:
                reason = ", ".join(f"{k} {fig.get(k):,.6g} > {cfg.budgets[k]:,.6g}" for k in over) or "does not fit"
        return reason

    def enqueue(source: str, params: dict[str, Any], member: ArchSpec, note: str) -> None:
        study.enqueue_trial(params, user_attrs={SEED_ATTR: source}, skip_if_exists=True)
        seen.add(member.digest())
        outcomes.append(SeedOutcome(source, True, note, member.digest()))

    for source, spec in seed_sources(cfg, space):
        try:
            params, member = member_of(spec)
        except NotInSpace as e:
            outcomes.append(SeedOutcome(source, False, f"not in the {cfg.space} space: {e}"))
            continue
        note = "" if member.digest() == spec.digest() else "rounded to the space's width grid"
        known = member.digest() in seen
        reason = None if known else over(member)
        if known:
            outcomes.append(SeedOutcome(source, False, "already in the study", member.digest()))
        elif reason is not None:
            outcomes.append(SeedOutcome(source, False, f"over a budget: {reason}", member.digest()))
        else:
            enqueue(source, params, member, note)
        if cfg.scale_seeds and cfg.budgets and measure is not None:
            outcomes.extend(_scaled_seed(source, spec, member.digest(), WIDER if reason is None else NARROWER,
                                         member_of, over, seen, enqueue))
    for o in outcomes:
        log.info("seed %s", o)
    return outcomes


def _scaled_seed(source: str, spec: ArchSpec, own_digest: str, factors: tuple[float, ...], member_of: Callable,
                 over: Callable, seen: set[str], enqueue: Callable) -> list[SeedOutcome]:
    """Queue the widest copy of ``spec`` among ``factors`` that fits: a bisection over the factors (whether a
    copy fits is taken as monotone in its width), so a ladder of 8 costs at most 4 measurements."""
    ladder = []  # (factor, params, member), narrowest first, one per distinct architecture, the seed's own excluded
    digests = {own_digest}
    for f in sorted(factors):
        try:
            params, member = member_of(spec.widened(f))
        except (NotInSpace, ValueError):  # SpecError too: e.g. a low rank no longer below its layer's width
            continue
        if member.digest() not in digests:
            digests.add(member.digest())
            ladder.append((f, params, member))
    lo, hi, best = 0, len(ladder) - 1, None
    while lo <= hi:
        mid = (lo + hi) // 2
        if over(ladder[mid][2]) is None:
            best, lo = ladder[mid], mid + 1
        else:
            hi = mid - 1
    name = f"{source} x{{}}"
    if best is None:
        return [SeedOutcome(name.format(f"{min(factors):g}..{max(factors):g}"), False,
                            "no width multiplier tried fits the budgets")] if ladder else []
    f, params, member = best
    if member.digest() in seen:
        return [SeedOutcome(name.format(f"{f:g}"), False, "already in the study", member.digest())]
    enqueue(name.format(f"{f:g}"), params, member, "widths scaled to the budgets")
    return []
