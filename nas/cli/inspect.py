"""``nas inspect MODEL.tflite``: ops, shapes, parameters, MACs, peak activation memory and kwsnas metadata."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from nas.cli.errors import UserError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("inspect", help="summarise a .tflite: ops, parameters, MACs, peak memory, metadata")
    p.add_argument("model", type=Path, help="a .tflite file (int8 or float32)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(handler=_inspect)


def read_model_bytes(path: Path) -> bytes:
    """The file's bytes; an unreadable path becomes a `UserError` naming it."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except OSError as e:  # a directory, no permission, ...
        raise UserError(f"{path}: cannot read ({e.strerror or e})") from None


def _inspect(args: argparse.Namespace) -> int:
    from hardware.inspect import summarize
    from hardware.tflite_io import read_tflite
    from nas.export.metadata import metadata_summary

    data = read_model_bytes(args.model)
    try:
        graph = read_tflite(data, allow_float=True)
    except ValueError as e:
        raise UserError(f"{args.model}: {e}") from None
    d = {**summarize(graph, len(data)).to_dict(), **metadata_summary(graph)}
    print(json.dumps(d, indent=2) if args.json else render(d, str(args.model)))
    return 0


def _shape(shape: list[int]) -> str:
    return "x".join(str(s) for s in shape) or "scalar"


def _tensor(t: dict[str, Any]) -> str:
    q = "" if t["scale"] is None else (
        f", scale {t['scale'][0]:.6g}, zero point {t['zero_point'][0]}" if len(t["scale"]) == 1
        else f", per-channel ({len(t['scale'])} scales)")
    return f"[{', '.join(str(s) for s in t['shape'])}] {t['dtype']}{q}"


def render(d: dict[str, Any], name: str) -> str:
    peak = d["peak_op"]
    peak_kind = next((op["kind"] for op in d["ops"] if op["index"] == peak), "")
    lines = [
        f"file             {name}, {d['file_bytes']:,} B",
        f"model            {'float32' if d['is_float'] else 'int8'}, {d['op_count']} ops, {d['tensor_count']} tensors",
        *(f"input            {_tensor(t)}" for t in d["inputs"]),
        *(f"output           {_tensor(t)}" for t in d["outputs"]),
        f"parameters       {d['param_count']:,} ({d['param_bytes']:,} B: weights {d['weight_bytes']:,} B, "
        f"biases {d['bias_bytes']:,} B)",
        f"MACs             {d['total_macs']:,}",
        f"peak activations {d['peak_activation_bytes']:,} B" + (f" at op {peak} ({peak_kind})" if peak is not None
                                                               else "") + " (tensor liveness estimate)",
    ]
    m = d["metadata"]
    if m is not None:
        spec = f"{m['spec_name']} ({m['spec_digest'][:12]})" if m["spec_name"] else "(no spec)"
        lines += [f"kwsnas metadata  {spec}, front end {m['frontend']['name']}, kwsnas {m['kwsnas_version'] or '?'}",
                  f"labels           {', '.join(m['labels'])}"]
    elif d["metadata_error"]:
        lines.append(f"kwsnas metadata  unreadable: {d['metadata_error']}")
    others = [k for k in d["metadata_keys"] if k != "kwsnas"]
    if others:
        lines.append(f"other metadata   {', '.join(others)}")
    rows = [("#", "op", "input", "output", "act", "MACs", "params B", "live B")]
    for op in d["ops"]:
        rows.append((str(op["index"]), op["kind"], " + ".join(_shape(s) for s in op["input_shapes"]) or "-",
                     _shape(op["output_shape"]), op["activation"], f"{op['macs']:,}", f"{op['param_bytes']:,}",
                     f"{op['live_bytes']:,}"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    right = {0, 5, 6, 7}  # numeric columns
    lines.append("")
    for r in rows:
        cells = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)
