"""The rank as a search dimension (``low_rank=True``): sampled specs carry ranks, `params_of` inverts them,
and a space without the option neither samples nor accepts them."""

from __future__ import annotations

import optuna
import pytest

from nas.study.config import SearchConfig
from search_spaces import NotInSpace, get_space
from search_spaces.estimate import estimate


@pytest.mark.parametrize("name", ["ds-cnn", "dnn"])
def test_low_rank_samples_round_trip_and_use_ranks(name):
    space = get_space(name, low_rank=True)
    plain = get_space(name)
    ranked = 0
    for seed in range(40):
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
        trial = study.ask()
        spec = space.sample(trial)
        params = space.params_of(spec)
        again = space.sample(optuna.trial.FixedTrial(params))
        assert again.digest() == spec.digest()
        ranks = [layer.rank for layer in spec.layers if getattr(layer, "rank", None) is not None]
        if ranks:
            ranked += 1
            with pytest.raises(NotInSpace, match="full-rank"):
                plain.params_of(spec)
            assert estimate(spec).params > 0
    assert ranked >= 10  # the dimension is really searched


def test_low_rank_is_refused_for_spaces_without_it():
    with pytest.raises(ValueError, match="no rank dimension"):
        SearchConfig(space="micronet", low_rank=True, trials=1)
