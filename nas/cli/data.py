"""``nas data prepare`` and ``nas data info``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from nas.data.default import ensure_default_corpus, resolve_data
from nas.data.info import corpus_info
from nas.data.layout import SPLIT_RULES, scan_corpus


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="prepare and inspect keyword-spotting corpora")
    verbs = p.add_subparsers(dest="data_verb", metavar="ACTION", required=True)

    prep = verbs.add_parser("prepare", help="synthesise the built-in default corpus (offline, espeak-ng)")
    prep.add_argument("--seed", type=int, default=0, help="corpus seed (default 0)")
    prep.add_argument("--out", type=Path, help="where to write it (default: the user cache dir)")
    prep.add_argument("--force", action="store_true", help="regenerate even if a complete corpus exists")
    prep.set_defaults(handler=_prepare)

    info = verbs.add_parser("info", help="clips per class and split, speakers, duration")
    info.add_argument("path", help="a Speech Commands-style folder, or 'default'")
    info.add_argument("--noise", type=Path, help="background-noise folder (default: PATH/_background_noise_)")
    info.add_argument("--split-rule", choices=SPLIT_RULES, help="default: official lists or hash rule; "
                      "speaker-60-20-20 for the official test-set layout")
    info.add_argument("--no-headers", action="store_true", help="skip reading WAV headers (faster)")
    info.add_argument("--json", action="store_true", help="machine-readable output")
    info.set_defaults(handler=_info)


def _prepare(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    with tqdm(total=0, unit="clip", desc="synthesising", leave=False, disable=None) as bar:
        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        path = ensure_default_corpus(seed=args.seed, out=args.out, force=args.force, progress=progress)
    print(path)
    return 0


def _info(args: argparse.Namespace) -> int:
    corpus = scan_corpus(resolve_data(args.path), noise_dir=args.noise)
    info = corpus_info(corpus, rule=args.split_rule, read_headers=not args.no_headers)
    print(json.dumps(info, indent=2) if args.json else render_info(info))
    return 0


def render_info(info: dict[str, Any]) -> str:
    splits = list(info["splits"])
    lines = [
        f"corpus   {info['root']}",
        f"layout   {info['layout']}   split rule {info['split_rule']}"
        f"{'   (official lists present)' if info['official_split_lists'] else ''}",
        f"clips    {info['clips']}   speakers {info['speakers']}"
        + (f"   duration {info['duration_s'] / 60:.1f} min (mean {info['mean_duration_s']:.2f} s)"
           if info.get("mean_duration_s") is not None else ""),
        "",
        f"{'class':<12}{'total':>8}" + "".join(f"{s:>12}" for s in splits),
    ]
    for cls, n in info["classes"].items():
        lines.append(f"{cls:<12}{n:>8}" + "".join(f"{info['splits'][s]['classes'].get(cls, 0):>12}" for s in splits))
    lines.append(f"{'all':<12}{info['clips']:>8}" + "".join(f"{info['splits'][s]['clips']:>12}" for s in splits))
    lines.append(f"{'speakers':<12}{info['speakers']:>8}" + "".join(f"{info['splits'][s]['speakers']:>12}" for s in splits))
    if info.get("converted", {}).get("clips"):
        conv = info["converted"]
        lines.append("")
        lines.append(f"converted to 16 kHz mono 16-bit on load: {conv['clips']} clip(s) ("
                     + ", ".join(f"{n} x {fmt}" for fmt, n in conv["formats"].items()) + ")")
    if info.get("padded") or info.get("cropped"):
        lines.append(f"fitted to 1 s: {info['padded']} padded, {info['cropped']} cropped")
    if info["noise_files"]:
        lines.append("")
        lines.append("background noise: " + ", ".join(
            f"{n['name']} ({n.get('duration_s', n.get('error'))}{'s' if 'duration_s' in n else ''})"
            for n in info["noise_files"]))
    if info["bad_clips"]:
        lines.append("")
        lines.append(f"{len(info['bad_clips'])} bad clip(s), skipped and left out of the counts above:")
        lines += [f"  {b['path']}: {b['reason']}" for b in info["bad_clips"][:20]]
    for warning in info.get("warnings", []):
        lines += ["", f"WARNING: {warning}"]
    return "\n".join(lines)
