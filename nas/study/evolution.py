"""`EvolutionSampler`: regularised (aging) evolution with architecture morphisms, as an Optuna sampler.

    sampler = EvolutionSampler(space, accept=StaticCheck.of(cfg), fitness=trial_fitness(cfg), seed=0)
    study = optuna.create_study(sampler=sampler, ...)    # any storage; `nas worker`s on other machines too

Real et al. (AAAI 2019) regularised evolution as μNAS (Liberis et al. 2021) uses it for microcontrollers:
a population of the most recent ``population`` evaluated trials, plus (with one objective) the ``elite``
best so far, which never age out; a parent is the fittest of ``tournament`` members drawn from it (each pair
compared at the highest fidelity both reached, under successive halving); the child is the parent changed
by one *morphism* on its parameters:

- ``resize``: a width (any integer parameter but a count) one or two grid steps up or down;
- ``scale``: every width times the same factor (MobileNet's width multiplier), snapped to its grid;
- ``switch``: a categorical choice (a kernel, a stride, a residual, a downsampling) set to another value;
- ``insert`` / ``remove``: a block duplicated in place (without its downsampling) or dropped, in spaces
  whose blocks are parameters ``<letter><i>_<name>`` counted by an ``n_<...>`` parameter;
- ``move``: two neighbouring blocks swap a choice (downsampling moves one block earlier or later).

Before a child becomes a trial it is decoded by the space (``space.sample`` on the child's values) and
refused, and another drawn, when ``accept(spec)`` gives a reason (the free static budget check) or its
digest was already tried. A child over the budgets is first *repaired*: up to ``REPAIRS`` shrinking steps
(one width a grid step down, or every width x 7/8) until it fits. A parent at the corner of the budgets, as
a preset under its own figures is, otherwise has only smaller feasible children (every widening, insert or
larger kernel is refused), so its line can only shrink; a repaired child trades cost between layers
(wider here, narrower there) and stays at the corner. Until ``init`` trials have been evaluated (seeds
included), children are uniform random samples of the space that ``accept`` passes (rejection sampling).

With a ``floor`` (`StaticCheck.below_floor`), a network under a share of a budget is neither proposed nor a
parent (unless no member is above it), so the line stays near the budget corner; a random draw that
passes the budgets but not the floor is taken when none in ``MAX_DRAWS`` passes both.

The chosen values are stored with the trial (system attribute ``kwsnas:evolution``) before any parameter
is suggested, so `sample_independent` hands exactly those to the space; two workers on one storage each
see the other's trials. Every draw uses a generator seeded by (seed, trial number).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import FrozenTrial, TrialState

from search_spaces import ArchSpec, SearchSpace

log = logging.getLogger(__name__)

CHILD_ATTR = "kwsnas:evolution"
# μNAS runs 100 / 25 over thousands of trials; a 60-minute search on 2 cores evaluates ~100-200 candidates,
# so a population of 20 (the last ~10 % of a long run) and tournaments of 5 keep a useful selection
# pressure without collapsing onto one line of descent.
POPULATION = 20
TOURNAMENT = 5
# Under a tight budget most random draws are far smaller than the budget allows, and a budget-bound child
# of a good parent often misses the budget by a few bytes; measured on the DS-CNN-S budget, pure aging let the
# seed and its best child age out after 20 trials while the population filled with such small nets. The
# best few therefore stay eligible as parents (single-objective studies): those successive halving took
# furthest, by their value there. (Ranked by first-rung accuracy, as until run 6, the elite held the small,
# fast-learning networks and not DS-CNN-S, which is behind them at 5 epochs and ahead from 15 on.)
ELITE = 5
INIT = 4  # evaluated trials (seeds count) before children are bred rather than drawn at random
# ``scale`` factors: about one 8-channel grid step at 64 channels, both ways (7/8 undoes 8/7 up to rounding).
SCALE_STEPS = (0.875, 1.0 / 0.875)
MAX_DRAWS = 400  # candidates drawn per trial before giving up on the filter (then: an unfiltered random sample)
MAX_PARENTS = 8  # tournaments per trial: each parent gets MAX_DRAWS / MAX_PARENTS tries at a child that fits
# Shrinking steps tried on a child over the budgets. Measured on DS-CNN-S's own budgets (the ds-cnn space,
# 400 single morphisms of the preset): 121 children fit without repair, 205 with up to 3 steps.
REPAIRS = 3

# A trial's values to minimise at each fidelity it reached (epochs trained -> vector), or None for a trial that
# cannot be a parent (never trained, over a budget, failed).
Fitness = Callable[[FrozenTrial], dict[float, tuple[float, ...]] | None]


def _contains(dist: BaseDistribution, value: Any) -> bool:
    try:
        return bool(dist._contains(dist.to_internal_repr(value)))
    except (ValueError, TypeError):
        return False


class DictTrial:
    """A trial that answers ``suggest_*`` from a dict of values and records what the space asked for.

    A value missing from the dict (or no longer legal for the distribution asked) is filled in: for an
    integer, the last integer asked with the same name suffix when legal (a block that stops being
    residual keeps its width), else a draw from ``rng``; for a choice, a draw from ``rng``.
    """

    def __init__(self, values: dict[str, Any], rng: np.random.Generator) -> None:
        self.values, self.rng = values, rng
        self.params: dict[str, Any] = {}
        self.distributions: dict[str, BaseDistribution] = {}

    def _suggest(self, name: str, dist: BaseDistribution) -> Any:
        if name in self.params:
            return self.params[name]
        value = self.values.get(name)
        if value is None or not _contains(dist, value):
            value = self._fill(name, dist)
        self.params[name], self.distributions[name] = value, dist
        return value

    def _fill(self, name: str, dist: BaseDistribution) -> Any:
        if isinstance(dist, IntDistribution):
            suffix = name.rsplit("_", 1)[-1]
            for other in reversed(self.params):
                if other.rsplit("_", 1)[-1] == suffix and _contains(dist, self.params[other]):
                    return self.params[other]
            return int(dist.low + dist.step * self.rng.integers(0, (dist.high - dist.low) // dist.step + 1))
        if isinstance(dist, CategoricalDistribution):
            return dist.choices[int(self.rng.integers(len(dist.choices)))]
        if isinstance(dist, FloatDistribution):
            return float(self.rng.uniform(dist.low, dist.high))
        raise TypeError(f"{name}: unsupported distribution {dist!r}")

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int:
        return self._suggest(name, IntDistribution(low, high, step=step, log=log))

    def suggest_float(self, name: str, low: float, high: float, *, step: float | None = None,
                      log: bool = False) -> float:
        return self._suggest(name, FloatDistribution(low, high, step=step, log=log))

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        return self._suggest(name, CategoricalDistribution(tuple(choices)))


def decode(space: SearchSpace, values: dict[str, Any], rng: np.random.Generator) -> tuple[ArchSpec, dict[str, Any],
                                                                                         dict[str, BaseDistribution]]:
    """The spec ``space`` builds from ``values`` (missing ones filled in, see `DictTrial`), with the complete
    values and distributions it asked for."""
    trial = DictTrial(values, rng)
    spec = space.sample(trial)  # type: ignore[arg-type]  # the space only calls suggest_*
    return spec, trial.params, trial.distributions


_BLOCK = re.compile(r"^([a-z])(\d+)_(\w+)$")


def _blocks(params: dict[str, Any]) -> tuple[str | None, str | None]:
    """(count parameter, block letter) of a block-structured parameter set, or (None, None)."""
    letters = {m.group(1) for m in map(_BLOCK.match, params) if m}
    counts = [k for k in params if k.startswith("n_")]
    if len(letters) == 1 and len(counts) == 1:
        return counts[0], letters.pop()
    return None, None


def _renumber(params: dict[str, Any], letter: str, shift_from: int, by: int) -> dict[str, Any]:
    out = {}
    for k, v in params.items():
        m = _BLOCK.match(k)
        if m and m.group(1) == letter and int(m.group(2)) >= shift_from:
            out[f"{letter}{int(m.group(2)) + by}_{m.group(3)}"] = v
        else:
            out[k] = v
    return out


def _scaled(params: dict[str, Any], dists: dict[str, BaseDistribution], names: list[str],
            factor: float) -> dict[str, int]:
    """The widths ``names`` times ``factor``, each snapped to its grid and range."""
    out = {}
    for k in names:
        d = dists[k]
        out[k] = int(min(max(d.low + d.step * round((params[k] * factor - d.low) / d.step), d.low), d.high))
    return out


def mutate(params: dict[str, Any], dists: dict[str, BaseDistribution],
           rng: np.random.Generator) -> tuple[dict[str, Any], str] | None:
    """One morphism of ``params`` (see the module docstring) and its description; None if none applies."""
    count, letter = _blocks(params)
    moves: list[str] = []
    ints = [k for k, d in dists.items() if isinstance(d, IntDistribution) and k != count and d.high > d.low]
    cats = [k for k, d in dists.items() if isinstance(d, CategoricalDistribution) and len(d.choices) > 1]
    if ints:
        moves += ["resize"] * 3  # widths are most of a network's cost: the most frequent move
    if len(ints) > 1:
        moves += ["scale"]  # every width at once: the whole network one step bigger or smaller
    if cats:
        moves += ["switch"] * 2
    if count is not None:
        n, dist = params[count], dists[count]
        moves += ["insert"] * (n < dist.high) + ["remove"] * (n > dist.low) + ["move"] * (n > 1)
    if not moves:
        return None
    move = moves[int(rng.integers(len(moves)))]
    child = dict(params)
    if move == "resize":
        k = ints[int(rng.integers(len(ints)))]
        d = dists[k]
        delta = int(rng.choice([-2, -1, 1, 2])) * d.step
        child[k] = int(min(max(params[k] + delta, d.low), d.high))
        return (child, f"resize {k} {params[k]}->{child[k]}") if child[k] != params[k] else None
    if move == "scale":
        factor = float(rng.choice(SCALE_STEPS))
        child.update(_scaled(params, dists, ints, factor))
        return (child, f"scale every width x{factor:g}") if child != params else None
    if move == "switch":
        k = cats[int(rng.integers(len(cats)))]
        others = [c for c in dists[k].choices if c != params[k]]
        child[k] = others[int(rng.integers(len(others)))]
        return child, f"switch {k} {params[k]}->{child[k]}"
    assert count is not None and letter is not None
    n = params[count]
    if move == "insert":
        i = int(rng.integers(n))
        child = _renumber(params, letter, i + 1, +1)
        for k, v in params.items():
            m = _BLOCK.match(k)
            if m and m.group(1) == letter and int(m.group(2)) == i:
                child[f"{letter}{i + 1}_{m.group(3)}"] = False if m.group(3) == "downsample" else v
        child[count] = n + 1
        return child, f"insert a copy of block {i}"
    if move == "remove":
        i = int(rng.integers(n))
        child = {k: v for k, v in params.items()
                 if not ((m := _BLOCK.match(k)) and m.group(1) == letter and int(m.group(2)) == i)}
        child = _renumber(child, letter, i + 1, -1)
        child[count] = n - 1
        return child, f"remove block {i}"
    i = int(rng.integers(n - 1))  # move: swap one choice between blocks i and i + 1
    names = sorted({m.group(3) for m in map(_BLOCK.match, params) if m and m.group(1) == letter
                    and isinstance(dists.get(m.group(0)), CategoricalDistribution)})
    names = [s for s in names if params.get(f"{letter}{i}_{s}") != params.get(f"{letter}{i + 1}_{s}")
             and f"{letter}{i}_{s}" in params and f"{letter}{i + 1}_{s}" in params]
    if not names:
        return None
    s = names[int(rng.integers(len(names)))]
    a, b = f"{letter}{i}_{s}", f"{letter}{i + 1}_{s}"
    child[a], child[b] = params[b], params[a]
    return child, f"move {s} between blocks {i} and {i + 1}"


def shrink(params: dict[str, Any], dists: dict[str, BaseDistribution],
           rng: np.random.Generator) -> tuple[dict[str, Any], str] | None:
    """One repairing step: a width one grid step down (3 in 4) or every width x 7/8; None if nothing shrinks."""
    count, _ = _blocks(params)
    ints = [k for k, d in dists.items() if isinstance(d, IntDistribution) and k != count and k in params
            and params[k] > d.low]
    if not ints:
        return None
    child = dict(params)
    if len(ints) > 1 and rng.random() < 0.25:
        child.update(_scaled(params, dists, ints, SCALE_STEPS[0]))
        return child, f"every width x{SCALE_STEPS[0]:g}"
    k = ints[int(rng.integers(len(ints)))]
    child[k] = params[k] - dists[k].step
    return child, f"{k} {params[k]}->{child[k]}"


def _digest_of(t: FrozenTrial) -> str | None:
    """The spec digest a trial evaluated, or the one this sampler proposed for it."""
    return t.user_attrs.get("spec_digest") or (t.system_attrs.get(CHILD_ATTR) or {}).get("digest")


def _elite(scored: list[tuple[FrozenTrial, Any]], k: int) -> list[tuple[FrozenTrial, Any]]:
    """The ``k`` best single-objective members: those successive halving took furthest, by their value there."""
    return sorted(scored, key=lambda tf: (-max(tf[1]), tf[1][max(tf[1])][0]))[:k]


def _at(f: dict[float, tuple[float, ...]], level: float) -> tuple[float, ...]:
    """A member's values at ``level``: its value at the highest fidelity not above it (none: its lowest)."""
    below = [x for x in f if x <= level]
    return f[max(below)] if below else f[min(f)]


def _tournament_winner(fits: list[dict[float, tuple[float, ...]]], rng: np.random.Generator) -> int:
    """Index of the member no other member beats, each pair met at the highest fidelity both reached.

    Pairwise, not at one level for all: a member stopped at the first rung would otherwise pull every
    comparison down to that rung, where cheap, fast-learning networks lead (run 6 of the real-speech search:
    in 44 trials DS-CNN-S, the best network at 15 and 40 epochs, fathered no child, since nearly every
    tournament held a member stopped at 5 epochs, where it was behind). Among several unbeaten members (or,
    in a cycle, those beaten least) one is drawn at random.
    """
    n = len(fits)
    losses = np.zeros(n, dtype=int)
    for i in range(n):
        for j in range(i + 1, n):
            level = min(max(fits[i]), max(fits[j]))
            a, b = np.asarray(_at(fits[i], level)), np.asarray(_at(fits[j], level))
            if np.all(a <= b) and np.any(a < b):
                losses[j] += 1
            elif np.all(b <= a) and np.any(b < a):
                losses[i] += 1
    best = np.flatnonzero(losses == losses.min()).tolist()
    return best[int(rng.integers(len(best)))]


class EvolutionSampler(optuna.samplers.BaseSampler):
    """Aging evolution over a `SearchSpace` (see the module docstring).

    ``fitness(trial)`` maps each fidelity a trial reached (epochs, under successive halving) to its values
    to minimise there, or is None for a trial that cannot be a parent. The members of a tournament are
    compared like with like, each pair at the highest fidelity both reached (a member with no value that low
    offers its lowest one), and the parent is drawn among those whose values no other member's dominate.
    ``accept(spec)`` returns a reason to refuse a child, or None. ``floor(spec)`` (`StaticCheck.below_floor`)
    returns a reason why a network is too far under the budgets to be proposed or to be a parent, or None;
    the seeds queued before the search are trained whatever it says.
    """

    def __init__(self, space: SearchSpace, fitness: Fitness, accept: Callable[[ArchSpec], str | None] | None = None,
                 *, population: int = POPULATION, tournament: int = TOURNAMENT, init: int = INIT,
                 elite: int = ELITE, seed: int = 0, floor: Callable[[ArchSpec], str | None] | None = None) -> None:
        self.space, self.fitness, self.accept, self.floor = space, fitness, accept, floor
        self.population, self.tournament, self.init, self.seed = population, tournament, init, seed
        self.elite = elite
        self._fallback = optuna.samplers.RandomSampler(seed=seed)

    # --- Optuna's sampler interface -----------------------------------------------------------------------------
    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return {}

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        return {}

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        child = trial.system_attrs.get(CHILD_ATTR)
        if child is not None and param_name in child["params"] and _contains(param_distribution,
                                                                              child["params"][param_name]):
            return child["params"][param_name]
        return self._fallback.sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if "fixed_params" in trial.system_attrs:  # an enqueued seed or a retried configuration
            return
        trials = study.get_trials(deepcopy=False)
        for _ in range(3):
            child = self.propose(trials, trial.number)
            if child is None:
                return
            study._storage.set_trial_system_attr(trial._trial_id, CHILD_ATTR, child)
            # Another worker may have proposed the same child between our read and our write: a trial that
            # already evaluates it, or an earlier one, keeps it; this one draws again (the child now tried).
            trials = study.get_trials(deepcopy=False)
            if not any(t.number != trial.number and _digest_of(t) == child["digest"]
                       and (t.number < trial.number or "spec_digest" in t.user_attrs) for t in trials):
                return

    # --- evolution ---------------------------------------------------------------------------------------------
    def _tried(self, trials: Sequence[FrozenTrial]) -> set[str]:
        seen = set()
        for t in trials:
            digest = _digest_of(t)
            if digest is None and "fixed_params" in t.system_attrs:  # a queued seed not started yet
                try:
                    digest = decode(self.space, t.system_attrs["fixed_params"], np.random.default_rng(0))[0].digest()
                except Exception:  # a seed the space no longer decodes: nothing to deduplicate against
                    digest = None
            if digest:
                seen.add(digest)
        return seen

    def _repaired(self, mutated: tuple[dict[str, Any], str], rng: np.random.Generator
                  ) -> tuple[ArchSpec, dict[str, Any], str]:
        """The decoded child, shrunk (see `shrink`) up to REPAIRS times while ``accept`` refuses it."""
        child, how = mutated
        spec, params, dists = decode(self.space, child, rng)
        if self.accept is None:
            return spec, params, how
        steps = []
        for _ in range(REPAIRS):
            if self.accept(spec) is None:
                break
            step = shrink(params, dists, rng)
            if step is None:
                break
            steps.append(step[1])
            spec, params, dists = decode(self.space, step[0], rng)
        return spec, params, how + (f", repaired: {', '.join(steps)}" if steps else "")

    def _refused(self, spec: ArchSpec, seen: set[str]) -> bool:
        return spec.digest() in seen or any(check is not None and check(spec) is not None
                                            for check in (self.accept, self.floor))

    def _at_floor(self, population: list[tuple[FrozenTrial, Any]]) -> list[tuple[FrozenTrial, Any]]:
        """The members a floor lets breed (all of them when it lets none: a line must go on)."""
        if self.floor is None:
            return population
        kept = [tf for tf in population
                if self.floor(decode(self.space, dict(tf[0].params), np.random.default_rng(0))[0]) is None]
        return kept or population

    def propose(self, trials: Sequence[FrozenTrial], number: int) -> dict[str, Any] | None:
        """The next child (``params``, ``digest``, ``parent``, ``how``) given the study's ``trials``."""
        rng = np.random.default_rng([self.seed, number])
        seen = self._tried(trials)
        scored = [(t, f) for t in sorted(trials, key=lambda t: t.number)
                  if t.state in (TrialState.COMPLETE, TrialState.PRUNED) and (f := self.fitness(t)) is not None]
        refused = 0
        if len(scored) >= self.init:
            population = scored[-self.population:]
            single = all(len(v) == 1 for _, f in scored for v in f.values())
            if single and self.elite:
                best = _elite(scored, self.elite)
                in_population = {t.number for t, _ in population}
                population += [tf for tf in best if tf[0].number not in in_population]
            population = self._at_floor(population)
            # A parent is chosen first and then given many tries at a child that fits: drawing a new tournament
            # after each refused child would favour parents far below the budget, whose children always fit.
            for _ in range(MAX_PARENTS):
                picks = rng.choice(len(population), size=min(self.tournament, len(population)), replace=False)
                contestants = [population[i] for i in picks]
                parent = contestants[_tournament_winner([f for _, f in contestants], rng)][0]
                for _ in range(MAX_DRAWS // MAX_PARENTS):
                    mutated = mutate(dict(parent.params), dict(parent.distributions), rng)
                    if mutated is None:
                        continue
                    spec, params, how = self._repaired(mutated, rng)
                    if self._refused(spec, seen):
                        refused += 1
                        continue
                    return {"params": params, "digest": spec.digest(), "parent": parent.number, "how": how,
                            "refused": refused}
        fitting = None  # uniform draws seldom land between a floor and the budgets: one within the budgets will do
        for _ in range(MAX_DRAWS):
            spec, params, _ = decode(self.space, {}, rng)
            if self._refused(spec, seen):
                refused += 1
                if fitting is None and spec.digest() not in seen and (self.accept is None or self.accept(spec) is None):
                    fitting = {"params": params, "digest": spec.digest(), "parent": None, "how": "random, below the floor"}
                continue
            return {"params": params, "digest": spec.digest(), "parent": None, "how": "random", "refused": refused}
        if fitting is not None:
            return {**fitting, "refused": refused - 1}
        log.warning("trial %d: no new candidate within the budgets in %d draws; trying an unfiltered one", number,
                    refused)
        return None
