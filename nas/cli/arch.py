"""``nas arch list``, ``nas arch show`` and ``nas arch sample``: architectures and their static cost.

Compute, then render: `search_spaces.estimate` returns data; the functions here only format it.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from search_spaces import PRESET_NAMES, SPACES, ArchSpec, Estimate, estimate, get_preset, get_space, load_spec


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("arch", help="published architectures, sampled ones, and their static cost")
    verbs = p.add_subparsers(dest="arch_verb", metavar="ACTION", required=True)

    ls = verbs.add_parser("list", help="the published presets with parameters, MACs and peak activation memory")
    ls.add_argument("--json", action="store_true", help="machine-readable output")
    ls.set_defaults(handler=_list)

    show = verbs.add_parser("show", help="one architecture layer by layer")
    show.add_argument("spec", metavar="NAME|spec.json", help="a preset name or a spec JSON file")
    show.add_argument("--classes", type=int, help="number of classes (default: the spec's own)")
    show.add_argument("--json", action="store_true", help="the spec and its estimate as JSON")
    show.set_defaults(handler=_show)

    sample = verbs.add_parser("sample", help="sample architectures from a search space (random sampler)")
    sample.add_argument("space", choices=sorted(SPACES), help="the search space")
    sample.add_argument("--seed", type=int, default=0, help="sampler seed (default 0)")
    sample.add_argument("--n", type=int, default=5, help="how many (default 5)")
    sample.add_argument("--classes", type=int, default=12, help="number of classes (default 12)")
    sample.add_argument("--frontend", help="base front-end preset (default: the space's)")
    sample.add_argument("--tune-frontend", action="store_true", help="also sample MFCC count, window, stride")
    sample.add_argument("--json", action="store_true", help="the specs as a JSON list")
    sample.set_defaults(handler=_sample)


def _list(args: argparse.Namespace) -> int:
    rows = [(get_preset(name), estimate(get_preset(name))) for name in PRESET_NAMES]
    if args.json:
        print(json.dumps([_summary(spec, est) for spec, est in rows], indent=2))
    else:
        print(render_table(rows))
    return 0


def _show(args: argparse.Namespace) -> int:
    spec = load_spec(args.spec)
    if args.classes is not None:
        spec = spec.with_classes(args.classes)
    est = estimate(spec)
    if args.json:
        print(json.dumps({"spec": spec.to_dict(), "digest": spec.digest(), "estimate": est.to_dict()}, indent=2))
    else:
        print(render_layers(spec, est))
    return 0


def _sample(args: argparse.Namespace) -> int:
    import optuna

    if args.n < 1:
        raise ValueError(f"--n must be at least 1, got {args.n}")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = get_space(args.space, num_classes=args.classes, frontend=args.frontend,
                      tune_frontend=args.tune_frontend)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=args.seed))
    specs = [space.sample(study.ask()) for _ in range(args.n)]
    if args.json:
        print(json.dumps([spec.to_dict() for spec in specs], indent=2))
    else:
        print(render_table([(spec, estimate(spec)) for spec in specs]))
    return 0


# --- rendering -------------------------------------------------------------------------------------------------------
def _summary(spec: ArchSpec, est: Estimate) -> dict[str, Any]:
    return {"name": spec.name, "family": spec.family, "frontend": spec.frontend.name, "digest": spec.digest(),
            "input_shape": list(est.input_shape), "params": est.params, "macs": est.macs,
            "peak_activation_bytes": est.peak_activation_bytes, "weight_bytes": est.weight_bytes}


def _shape(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape))


def render_table(rows: list[tuple[ArchSpec, Estimate]]) -> str:
    """One line per spec: name, family, front end, input, parameters, MACs, peak activations, weights."""
    head = (f"{'name':<22}{'family':<10}{'frontend':<16}{'input':>9}{'params':>10}{'MACs':>13}"
            f"{'peak act KB':>13}{'weights KB':>12}")
    lines = [head, "-" * len(head)]
    for spec, est in rows:
        lines.append(f"{spec.name:<22}{spec.family:<10}{spec.frontend.name:<16}{_shape(est.input_shape):>9}"
                     f"{est.params:>10,}{est.macs:>13,}{est.peak_activation_bytes / 1024:>13.1f}"
                     f"{est.weight_bytes / 1024:>12.1f}")
    return "\n".join(lines)


def render_layers(spec: ArchSpec, est: Estimate) -> str:
    """The deployed op sequence of ``spec`` with shapes, parameters, MACs and live activation bytes."""
    fe = spec.frontend
    lines = [
        f"{spec.name}   family {spec.family}   digest {spec.digest()}   classes {spec.num_classes}",
        f"front end {fe.name}: window {fe.window_samples} / stride {fe.stride_samples} samples, "
        f"{fe.n_features} {'MFCC' if fe.n_coeffs is not None else 'log-mel'} -> input {_shape(est.input_shape)} int8",
        "",
        f"{'#':>3}  {'op':<24}{'output':>12}{'params':>10}{'MACs':>13}{'out bytes':>11}{'live bytes':>12}",
    ]
    for layer in est.layers:
        mark = " *" if layer.live_bytes == est.peak_activation_bytes else ""
        out_bytes = f"({layer.output_bytes})" if layer.alias else str(layer.output_bytes)
        lines.append(f"{layer.index:>3}  {layer.op:<24}{_shape(layer.output_shape):>12}{layer.params:>10,}"
                     f"{layer.macs:>13,}{out_bytes:>11}{layer.live_bytes:>12,}{mark}")
    lines += [
        "",
        f"parameters {est.params:,}   MACs {est.macs:,}   weights {est.weight_bytes:,} B (int8 + int32 biases)",
        f"peak activations {est.peak_activation_bytes:,} B ({est.peak_activation_bytes / 1024:.1f} KiB, * = at peak; "
        "tensor liveness, no kernel scratch)",
    ]
    return "\n".join(lines)
