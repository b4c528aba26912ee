"""One contract suite run against every registered search space (as optuna/testing/pytest_samplers.py
does for samplers), and the spec validation errors the spaces rely on."""

from __future__ import annotations

import dataclasses
import warnings

import optuna
import pytest

from nas.features.filterbanks import frontend_constants
from search_spaces import (
    SPACES,
    ArchSpec,
    NotInSpace,
    SearchSpace,
    SpecError,
    estimate,
    get_frontend,
    get_preset,
    get_space,
)
from search_spaces.spec import Conv, DSConv, GlobalAvgPool

optuna.logging.set_verbosity(optuna.logging.WARNING)

N_SPECS = 200  # per space and sampler


def _sampler(kind: str, seed: int) -> optuna.samplers.BaseSampler:
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=20)


@pytest.fixture(scope="module")
def sampled() -> dict[tuple[str, str], list[tuple[dict, ArchSpec]]]:
    """For every space and sampler: (trial params, spec) of N_SPECS trials of a real study.

    The front end is searched too (``tune_frontend=True``); TPE is told (MACs, peak activation bytes) so
    that it actually models the space rather than sampling at random.
    """
    out = {}
    for name in SPACES:
        space = get_space(name, num_classes=12, tune_frontend=True)
        for kind in ("random", "tpe"):
            study = optuna.create_study(sampler=_sampler(kind, seed=1), directions=["minimize", "minimize"])
            rows = []
            for _ in range(N_SPECS):
                trial = study.ask()
                spec = space.sample(trial)
                est = estimate(spec)
                study.tell(trial, [est.macs, est.peak_activation_bytes])
                rows.append((dict(trial.params), spec))
            out[(name, kind)] = rows
    return out


@pytest.mark.parametrize("space_name", list(SPACES))
class TestSearchSpaceContract:
    """The `SearchSpace` contract, for each registered space."""

    @pytest.fixture()
    def space(self, space_name: str) -> SearchSpace:
        return get_space(space_name, num_classes=12, tune_frontend=True)

    def test_is_a_search_space(self, space: SearchSpace, space_name: str) -> None:
        assert isinstance(space, SearchSpace)
        assert space.name == space_name and space.num_classes == 12 and space.tune_frontend

    @pytest.mark.parametrize("kind", ["random", "tpe"])
    def test_samples_are_valid_and_round_trip(self, sampled, space_name: str, kind: str) -> None:
        rows = sampled[(space_name, kind)]
        assert len(rows) >= N_SPECS
        for _, spec in rows:
            assert spec.family == space_name and spec.num_classes == 12
            assert len(spec.shapes()) == len(spec.all_layers())  # validates every layer again
            back = ArchSpec.from_json(spec.to_json())
            assert back == spec and back.name == spec.name
            assert back.digest() == spec.digest()
            assert spec.name == f"{space_name}-{spec.digest()[:10]}"

    @pytest.mark.parametrize("kind", ["random", "tpe"])
    def test_estimates_are_positive_and_consistent(self, sampled, space_name: str, kind: str) -> None:
        for _, spec in sampled[(space_name, kind)]:
            est = estimate(spec)
            assert est.params > 0 and est.macs > 0 and est.weight_bytes >= est.params
            assert est.params == sum(layer.params for layer in est.layers)
            assert est.macs == sum(layer.macs for layer in est.layers)
            input_bytes = spec.input_shape[0] * spec.input_shape[1]
            assert est.peak_activation_bytes >= input_bytes
            assert est.peak_activation_bytes >= max(layer.output_bytes for layer in est.layers)
            assert est.input_shape == spec.input_shape
            assert est.layers[-1].output_shape == (12,)

    @pytest.mark.parametrize("kind", ["random", "tpe"])
    def test_same_params_give_the_same_spec(self, sampled, space: SearchSpace, space_name: str, kind: str) -> None:
        for params, spec in sampled[(space_name, kind)][:: 4]:
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # FixedTrial warns if a value were off the space's grid
                again = space.sample(optuna.trial.FixedTrial(params))
            assert again == spec and again.name == spec.name and again.digest() == spec.digest()

    @pytest.mark.parametrize("kind", ["random", "tpe"])
    def test_params_of_inverts_sample(self, sampled, space: SearchSpace, space_name: str, kind: str) -> None:
        """Warm starts and the evolution sampler write specs back into the space's parameters."""
        for params, spec in sampled[(space_name, kind)]:
            assert space.params_of(spec) == params
            assert space.params_of(spec, snap=True) == params

    def test_params_of_presets_exact_snapped_or_refused(self, space_name: str) -> None:
        space = get_space(space_name)
        for name, spec in space.presets().items():
            try:
                params = space.params_of(spec)
            except NotInSpace:
                try:
                    params = space.params_of(spec, snap=True)  # a published width off the grid: the nearest
                except NotInSpace as e:
                    assert name in str(e)  # another front end, a dropout: named, never silently changed
                    continue
                member = space.sample(optuna.trial.FixedTrial(params))
                assert member.digest() != spec.digest() and len(member.layers) == len(spec.layers)
                continue
            assert space.sample(optuna.trial.FixedTrial(params)).digest() == spec.digest()
        foreign = "micronet-kws-s" if space_name != "micronet" else "ds-cnn-s"
        with pytest.raises(NotInSpace):
            space.params_of(get_preset(foreign), snap=True)

    def test_samples_vary(self, sampled, space_name: str) -> None:
        digests = {spec.digest() for kind in ("random", "tpe") for _, spec in sampled[(space_name, kind)]}
        assert len(digests) > N_SPECS  # far from collapsing onto a few architectures
        frontends = {spec.frontend for kind in ("random", "tpe") for _, spec in sampled[(space_name, kind)]}
        assert len(frontends) > 4

    def test_sampled_frontends_build(self, sampled, space_name: str) -> None:
        frontends = {spec.frontend for kind in ("random", "tpe") for _, spec in sampled[(space_name, kind)]}
        for fe in frontends:
            frontend_constants(fe)  # every mel channel receives an FFT bin, n_mels >= n_coeffs
            assert fe.n_mels >= fe.n_coeffs

    def test_fixed_frontend_without_tuning(self, space_name: str) -> None:
        space = get_space(space_name, num_classes=10, frontend="mlperf-tiny")
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
        for _ in range(50):
            trial = study.ask()
            spec = space.sample(trial)
            assert spec.frontend == get_frontend("mlperf-tiny") and spec.num_classes == 10
            assert not any(p.startswith("fe_") for p in trial.params)

    def test_presets(self, space: SearchSpace, space_name: str) -> None:
        presets = space.presets()
        assert presets, "every family has published configurations"
        for name, spec in presets.items():
            assert spec.name == name and spec.family == space_name and spec.num_classes == 12
            assert estimate(spec).params > 0
        assert all(s.num_classes == 35 for s in get_space(space_name, num_classes=35).presets().values())

    def test_build_and_one_training_step(self, space_name: str) -> None:
        """sample -> build -> one jitted training step (augmentation + MFCC + forward/backward) -> estimate.

        The estimate and the model are two interpreters of one spec: the deployed parameter count of the
        built model (batch norm folded) must equal `estimate(spec).params`.
        """
        from tests.helpers.one_step import check_build_and_one_step

        space = get_space(space_name, tune_frontend=True)
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=7))
        # One sampled spec per space here (the compile dominates); every preset gets its step in test_presets.
        check_build_and_one_step(space.sample(study.ask()))


def test_unknown_space() -> None:
    with pytest.raises(ValueError, match="unknown search space 'resnet'.*ds-cnn"):
        get_space("resnet")


def test_bad_num_classes() -> None:
    with pytest.raises(ValueError, match="num_classes"):
        get_space("dnn", num_classes=1)


def test_cnn_space_refuses_a_frontend_too_small_for_its_kernels() -> None:
    tiny = get_frontend("hello-edge", clip_samples=640 + 8 * 320)  # 9 frames: a 10-frame VALID kernel empties it
    with pytest.raises(ValueError, match="cnn space: front end 'hello-edge' .*too small"):
        get_space("cnn", frontend=tiny)


def test_micronet_presets_lie_in_the_micronet_space() -> None:
    space = get_space("micronet")
    for spec in space.presets().values():
        stem, *blocks, _ = spec.layers
        params = {"stem_width": stem.filters, "n_blocks": len(blocks)}
        params.update({f"b{i}_width": b.filters for i, b in enumerate(blocks)})
        sampled = space.sample(optuna.trial.FixedTrial(params))
        assert sampled.layers == spec.layers and sampled.frontend == spec.frontend


def test_published_presets_in_their_spaces() -> None:
    """DS-CNN-S and the three MicroNets lie on their spaces' grids; DS-CNN-M's 172 channels snap to 168."""
    for name, space in (("ds-cnn-s", "ds-cnn"), ("micronet-kws-s", "micronet"), ("micronet-kws-m", "micronet"),
                        ("micronet-kws-l", "micronet"), ("dnn-s", "dnn"), ("cnn-m", "cnn")):
        s = get_space(space)
        assert s.sample(optuna.trial.FixedTrial(s.params_of(get_preset(name)))).digest() == get_preset(name).digest()
    ds = get_space("ds-cnn")
    with pytest.raises(NotInSpace, match="172 is not in 16..320 in steps of 8"):
        ds.params_of(get_preset("ds-cnn-m"))
    snapped = ds.params_of(get_preset("ds-cnn-m"), snap=True)
    assert snapped["stem_width"] == 168 and snapped["b0_width"] == 168  # a tie goes down: seeds sit at budgets
    with pytest.raises(NotInSpace, match="front end 'mlperf-tiny'"):
        ds.params_of(get_preset("mlperf-tiny-ds-cnn"), snap=True)
    with pytest.raises(NotInSpace, match="10 classes"):
        ds.params_of(get_preset("ds-cnn-s").with_classes(10))


def test_ds_cnn_residual_and_downsample_only_where_legal() -> None:
    space = get_space("ds-cnn")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=5))
    saw_residual = saw_downsample_stop = False
    for _ in range(300):
        trial = study.ask()
        spec = space.sample(trial)
        for i, layer in enumerate(spec.layers[1:-1]):
            if f"b{i}_residual" in trial.params:
                assert layer.stride == (1, 1)
            saw_residual |= layer.residual
        saw_downsample_stop |= any(f"b{i}_downsample" not in trial.params for i in range(trial.params["n_blocks"]))
    assert saw_residual and saw_downsample_stop


# --- validation errors name the layer --------------------------------------------------------------------------------
def _spec_dict(*layers: dict) -> dict:
    return {"name": "bad", "family": "test", "frontend": get_frontend("hello-edge").to_dict(), "layers": list(layers)}


def test_error_names_the_layer_a_stride_empties() -> None:
    with pytest.raises(SpecError, match=r"bad: layer 2 \(conv\): kernel 3x3 stride 2x2 \(valid\) empties the 11x1"):
        ArchSpec(name="bad", family="test", frontend=get_frontend("hello-edge"), layers=(
            Conv(8, (3, 3), (2, 2), padding="valid"),  # 49x10 -> 24x4
            Conv(8, (3, 3), (2, 2), padding="valid"),  # -> 11x1
            Conv(8, (3, 3), (2, 2), padding="valid"),  # a 3-wide kernel on a 1-wide map
            GlobalAvgPool(),
        ))


def test_error_names_a_zero_width() -> None:
    with pytest.raises(SpecError, match=r"layer 1: ds: filters must be positive integers, got 0"):
        ArchSpec.from_dict(_spec_dict({"kind": "conv", "filters": 8, "kernel": [3, 3]},
                                      {"kind": "ds", "filters": 0}, {"kind": "gap"}))


def test_error_names_an_unknown_kind() -> None:
    with pytest.raises(SpecError, match=r"layer 2: unknown layer kind 'mbconv'"):
        ArchSpec.from_dict(_spec_dict({"kind": "conv", "filters": 8, "kernel": [3, 3]}, {"kind": "gap"},
                                      {"kind": "mbconv", "filters": 8}))


@pytest.mark.parametrize("block, cause", [
    (DSConv(16, residual=True), r"equal widths \(input 8, output 16"),
    (DSConv(8, stride=(2, 2), residual=True), r"stride 1x1"),
])
def test_error_names_an_illegal_residual(block: DSConv, cause: str) -> None:
    with pytest.raises(SpecError, match=rf"bad: layer 1 \(ds\): a residual connection needs .*{cause}"):
        ArchSpec(name="bad", family="test", frontend=get_frontend("hello-edge"),
                 layers=(Conv(8, (3, 3)), block, GlobalAvgPool()))


def test_error_names_a_body_that_does_not_end_flat() -> None:
    spec = ArchSpec(name="ok", family="test", frontend=get_frontend("hello-edge"), layers=(Conv(8, (3, 3)),
                                                                                           GlobalAvgPool()))
    with pytest.raises(SpecError, match="classifier"):
        dataclasses.replace(spec, layers=(Conv(8, (3, 3)),))
