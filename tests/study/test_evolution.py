"""The evolution sampler: morphisms on a space's parameters, children inside the static budgets, warm
starts queued first, and two workers on one storage."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.trial import FixedTrial, TrialState

from nas.study.evolution import CHILD_ATTR, EvolutionSampler, decode, mutate
from nas.study.static_check import StaticCheck, analytic_figures
from search_spaces import get_preset, get_space
from tests.helpers.evolution import fitness, objective, preset_budgets
from tests.helpers.paths import REPO

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _ds_cnn_s():
    space = get_space("ds-cnn")
    _, params, dists = decode(space, space.params_of(get_preset("ds-cnn-s")), np.random.default_rng(0))
    return space, params, dists


def test_every_morphism_gives_a_valid_neighbour() -> None:
    space, params, dists = _ds_cnn_s()
    seen = {}
    rng = np.random.default_rng(0)
    for _ in range(400):
        out = mutate(params, dists, rng)
        if out is None:
            continue
        child, how = out
        spec, full, _ = decode(space, child, rng)  # the space builds every child (it never raises)
        assert spec.digest() != get_preset("ds-cnn-s").digest(), how
        seen.setdefault(how.split()[0], (child, full, spec))
    assert set(seen) == {"resize", "scale", "switch", "insert", "remove"}  # four alike blocks: nothing to move
    child, full, spec = seen["scale"]  # every width, stem included, one grid step up (72) or down (56)
    widths = [layer.filters for layer in spec.layers[:-1]]
    assert len(set(widths)) == 1 and widths[0] in (56, 72)
    child, full, spec = seen["insert"]
    assert full["n_blocks"] == 5 and len(spec.layers) == 7 and all(not full.get(f"b{i}_downsample") for i in range(5))
    child, full, spec = seen["remove"]
    assert full["n_blocks"] == 3 and len(spec.layers) == 5 and sorted(k for k in full if k.startswith("b3")) == []


def test_insert_copies_the_block_and_renumbers_the_rest() -> None:
    space = get_space("ds-cnn")
    params = {"stem_kernel": "10x4", "stem_stride": "2x2", "stem_width": 64, "n_blocks": 2, "b0_kernel": "5x3",
              "b0_downsample": True, "b0_width": 32, "b1_kernel": "3x3", "b1_downsample": False,
              "b1_residual": False, "b1_width": 96}
    _, params, dists = decode(space, params, np.random.default_rng(0))
    rng = np.random.default_rng(1)
    for _ in range(200):
        out = mutate(params, dists, rng)
        if out and out[1] == "insert a copy of block 0":
            child = out[0]
            break
    assert child["n_blocks"] == 3 and child["b1_kernel"] == "5x3" and child["b1_downsample"] is False
    assert child["b1_width"] == 32 and child["b2_width"] == 96 and child["b2_kernel"] == "3x3"
    spec, full, _ = decode(space, child, rng)
    assert [layer.filters for layer in spec.layers[1:-1]] == [32, 32, 96]
    assert [layer.stride for layer in spec.layers[1:-1]] == [(2, 2), (1, 1), (1, 1)]
    for _ in range(200):
        out = mutate(params, dists, rng)
        if out and out[1] == "move downsample between blocks 0 and 1":
            break
    spec, _, _ = decode(space, out[0], rng)  # the downsampling now happens one block later
    assert [layer.stride for layer in spec.layers[1:-1]] == [(1, 1), (2, 2)]


def test_children_stay_within_the_static_budgets_and_improve_on_their_seed() -> None:
    space = get_space("ds-cnn")
    budgets = preset_budgets("ds-cnn-s")
    check = StaticCheck(budgets, "mps2-an386", "analytic")
    study = optuna.create_study(sampler=EvolutionSampler(space, fitness, check, seed=0, init=4))
    study.enqueue_trial(space.params_of(get_preset("ds-cnn-s")))
    study.optimize(objective(space), n_trials=24)
    trials = study.get_trials()
    digests = [t.user_attrs["spec_digest"] for t in trials]
    assert len(set(digests)) == len(digests)  # nothing trained twice
    children = [t for t in trials if CHILD_ATTR in t.system_attrs]
    assert len(children) == 23 and {c.system_attrs[CHILD_ATTR]["how"] for c in children[:3]} == {"random"}
    bred = [c for c in children if c.system_attrs[CHILD_ATTR]["parent"] is not None]
    assert len(bred) >= 19
    for t in trials:  # every child passes the check the sampler applied before it became a trial
        assert check.reason(space.sample(FixedTrial(t.params))) is None
    assert min(t.values[0] for t in trials) <= trials[0].values[0]  # at least as good as the seed it grew from


def test_a_tight_budget_burns_no_trials() -> None:
    """28 of TPE's first 30 candidates broke DS-CNN-S-sized budgets (the issue); evolution draws inside them."""
    space = get_space("ds-cnn")
    check = StaticCheck({"flash_bytes": 65536, "ram_bytes": 32768}, "mps2-an386", "analytic")
    study = optuna.create_study(sampler=EvolutionSampler(space, fitness, check, seed=1, init=30))
    study.optimize(objective(space), n_trials=10)
    assert all(check.reason(space.sample(FixedTrial(t.params))) is None for t in study.trials)
    assert sum(t.system_attrs[CHILD_ATTR]["refused"] for t in study.trials) > 10  # it did refuse on the way


_WORKER = """
import sys, optuna
sys.path.insert(0, {repo!r})
from tests.helpers.evolution import fitness, objective, preset_budgets
from nas.study.evolution import EvolutionSampler
from nas.study.static_check import StaticCheck, analytic_figures
from search_spaces import get_space
optuna.logging.set_verbosity(optuna.logging.WARNING)
space = get_space("ds-cnn")
check = StaticCheck(preset_budgets("ds-cnn-s"), "mps2-an386", "analytic")
storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend({journal!r}))
study = optuna.load_study(study_name="evo", storage=storage,
                          sampler=EvolutionSampler(space, fitness, check, seed=0, init=4))
study.optimize(objective(space), n_trials=8)
"""


def test_two_workers_share_one_population(tmp_path: Path) -> None:
    journal = str(tmp_path / "journal.log")
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(journal))
    study = optuna.create_study(study_name="evo", storage=storage)
    study.enqueue_trial(get_space("ds-cnn").params_of(get_preset("ds-cnn-s")))
    code = _WORKER.format(repo=str(REPO), journal=journal)
    procs = [subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE) for _ in range(2)]
    for p in procs:
        assert p.wait(timeout=300) == 0, p.stderr.read().decode()[-2000:]
    trials = optuna.load_study(study_name="evo", storage=storage).get_trials()
    assert len(trials) == 16 and all(t.state == TrialState.COMPLETE for t in trials)
    digests = [t.user_attrs["spec_digest"] for t in trials]
    assert len(set(digests)) == 16  # neither worker trained what the other had
    check = StaticCheck(preset_budgets("ds-cnn-s"), "mps2-an386", "analytic")
    assert all(check.reason(get_space("ds-cnn").sample(FixedTrial(t.params))) is None for t in trials)
    parents = {t.system_attrs[CHILD_ATTR]["parent"] for t in trials if CHILD_ATTR in t.system_attrs}
    assert parents - {None}  # children were bred from the shared population, not only drawn at random


def test_tournaments_compare_like_with_like() -> None:
    """A member that trained longer does not win for that alone: members meet at the highest fidelity all
    of them reached."""
    from nas.study.evolution import _tournament_winner

    rng = np.random.default_rng(0)
    weak_long = {5.0: (0.40,), 15.0: (0.30,), 40.0: (0.20,)}  # promoted early, when there was no competition
    strong_short = {5.0: (0.25,)}
    assert _tournament_winner([weak_long, strong_short], rng) == 1
    assert _tournament_winner([weak_long, {5.0: (0.25,), 15.0: (0.35,)}], rng) == 0  # met at 15 epochs
    seed_full = {40.0: (0.15,)}  # trained without halving: its only value stands for the lower ones
    assert _tournament_winner([seed_full, strong_short], rng) == 0
    # Each pair meets at its own level: a member stopped at 5 epochs does not pull the seed, the best at 15
    # and 40 epochs, down to the 5-epoch rung where smaller networks lead (the figures of run 6's first trials).
    seed = {5.0: (0.261,), 15.0: (0.135,), 40.0: (0.133,)}
    fast = [{5.0: (0.224,), 15.0: (0.187,)}, {5.0: (0.248,), 15.0: (0.169,)}, {5.0: (0.292,)}, {5.0: (0.307,)}]
    assert all(_tournament_winner([*fast, seed], np.random.default_rng(k)) == 4 for k in range(5))
    # ... and the seed stays among the elite, which never ages out, though 4 others led it at 5 epochs
    from nas.study.evolution import _elite

    members = [(f"t{i}", f) for i, f in enumerate([*fast, {5.0: (0.21,)}, seed])]
    assert [name for name, _ in _elite(members, 2)] == ["t5", "t1"]


def test_mutation_is_deterministic_for_a_seed_and_trial_number() -> None:
    space, params, dists = _ds_cnn_s()
    a = mutate(params, dists, np.random.default_rng([0, 7]))
    b = mutate(params, dists, np.random.default_rng([0, 7]))
    assert a == b
    sampler = EvolutionSampler(space, fitness, None, seed=3)
    assert sampler.propose([], 5) == sampler.propose([], 5)
    assert sampler.propose([], 5) != sampler.propose([], 6)


@pytest.mark.parametrize("space_name", ["dnn", "micronet", "cnn"])
def test_other_spaces_mutate_too(space_name: str) -> None:
    space = get_space(space_name)
    rng = np.random.default_rng(0)
    spec, params, dists = decode(space, {}, rng)
    kinds = set()
    for _ in range(100):
        out = mutate(params, dists, rng)
        if out is not None:
            kinds.add(out[1].split()[0])
            assert decode(space, out[0], rng)[0].family == space_name
    assert "resize" in kinds and (space_name == "cnn" or {"insert", "remove"} & kinds)


def test_repair_keeps_children_at_the_budget_corner() -> None:
    """Under DS-CNN-S's own budgets every widening, insert or larger kernel of the seed is refused, so without
    repair its line can only shrink; repaired children (the morphism, then width steps down) pass the check,
    and some are deeper-narrower trades within 10 % of the seed's MACs that no single morphism reaches."""
    from nas.study import evolution
    from search_spaces.estimate import estimate

    space, params, dists = _ds_cnn_s()
    check = StaticCheck(preset_budgets("ds-cnn-s"), "mps2-an386", "analytic")
    sampler = EvolutionSampler(space, fitness, check.reason, seed=0)
    seed_macs = estimate(get_preset("ds-cnn-s")).macs
    rng = np.random.default_rng(5)
    repaired = []
    for _ in range(200):
        out = mutate(params, dists, rng)
        if out is None:
            continue
        spec, _, how = sampler._repaired(out, rng)
        if "repaired" in how and check.reason(spec) is None:
            repaired.append((how, estimate(spec).macs / seed_macs))
    assert len(repaired) >= 20
    assert all(how.split(",")[0].split()[0] in {"resize", "scale", "switch", "insert", "remove"} for how, _ in repaired)
    trades = [how for how, ratio in repaired if how.startswith("insert") and ratio >= 0.9]
    assert trades, repaired
    assert all(1 <= len(how.split("repaired: ")[1].split(", ")) <= evolution.REPAIRS for how, _ in repaired)


def test_a_budget_floor_keeps_the_line_near_the_corner() -> None:
    """When the early rungs favour cheap networks (here: a fitness that prefers lower latency), the line
    drifts far under the budgets; with a latency floor every child stays at or above that share of the budget,
    while a seed below it (a user's own architecture) is still trained, though it wins every tournament."""
    space = get_space("ds-cnn")
    budgets = preset_budgets("ds-cnn-s")
    latency = {}

    def cheap_is_better(trial: optuna.Trial) -> float:
        spec = space.sample(trial)
        trial.set_user_attr("spec_digest", spec.digest())
        latency[trial.number] = analytic_figures(spec, "mps2-an386")["latency_ms"] / budgets["latency_ms"]
        return latency[trial.number]

    small_seed = dict(space.params_of(get_preset("ds-cnn-s")), n_blocks=2, stem_width=32, b0_width=32, b1_width=32)
    shares = {}
    for floor in ({}, {"latency_ms": 0.6}):
        latency.clear()
        check = StaticCheck(budgets, "mps2-an386", "analytic", floor)
        sampler = EvolutionSampler(space, fitness, check, seed=0, init=2, floor=check.below_floor if floor else None)
        study = optuna.create_study(sampler=sampler)
        study.enqueue_trial(space.params_of(get_preset("ds-cnn-s")))
        study.enqueue_trial(small_seed)
        study.optimize(cheap_is_better, n_trials=14)
        shares[bool(floor)] = [latency[t.number] for t in study.trials]
    assert shares[True][1] < 0.6  # the seeds are exempt
    assert min(shares[False][2:]) < 0.4  # without the floor the line goes cheap ...
    assert min(shares[True][2:]) >= 0.6 and max(shares[True][2:]) <= 1.05  # ... with it, it stays near the corner


def test_a_budget_floor_needs_its_budget_and_a_share() -> None:
    from nas.study.config import SearchConfig

    with pytest.raises(ValueError, match="has no budget"):
        SearchConfig(budgets={"flash_bytes": 65536}, budget_floor={"latency_ms": 0.6})
    with pytest.raises(ValueError, match="between 0 and 1"):
        SearchConfig(budgets={"latency_ms": 50}, budget_floor={"latency_ms": 60})
    cfg = SearchConfig(budget_from="ds-cnn-s", budget_floor={"latency_ms": 0.6})  # resolved when the study starts
    assert cfg.budget_floor == {"latency_ms": 0.6}
    check = StaticCheck.of(cfg.replace(budgets={"latency_ms": 200.0}))  # DS-CNN-S: ~162 ms
    assert check.floors == {"latency_ms": 0.6} and check.reason(get_preset("ds-cnn-s")) is None
    assert "floor" in check.below_floor(get_preset("dnn-s")) and check.below_floor(get_preset("ds-cnn-l")) is None


def test_a_seed_at_its_own_budgets_can_be_a_parent() -> None:
    """Budgets from a reference are its untrained probe's figures; its trained build ran 0.01 % slower (run 6:
    164.3951 ms against 164.3807), which made DS-CNN-S unfit to breed under its own budgets. Fitness judges a
    trial by the figures it was admitted on; a trial whose probe was over a budget stays out."""
    from optuna.distributions import IntDistribution

    from nas.study.config import SearchConfig
    from nas.study.runner import trial_fitness

    cfg = SearchConfig(budgets={"flash_bytes": 36376.0, "ram_bytes": 11768.0, "latency_ms": 164.3807},
                       objectives=("error",))
    probe = {"flash_bytes": 36376, "ram_bytes": 11768, "latency_ms": 164.3807}

    def trial(**attrs):
        return optuna.trial.create_trial(params={"w": 1}, distributions={"w": IntDistribution(0, 2)}, values=[0.133],
                                         user_attrs={"trained": True, "epochs_trained": 40.0, **attrs})

    fit = trial_fitness(cfg)
    trained = {**probe, "latency_ms": 164.3951}
    assert fit(trial(**trained, probe=probe)) == {40.0: (0.133,)}
    assert fit(trial(**trained)) is None  # no probe figures kept: the trained ones decide
    assert fit(trial(**probe, probe={**probe, "ram_bytes": 11772})) is None
