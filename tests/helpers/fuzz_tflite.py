"""Corrupt `.tflite` files at random and check ``read_tflite`` either loads them or raises its own error.

Run as ``python -m tests.helpers.fuzz_tflite [count] [seed]`` (the test runs it in a child process, so a
crash or a hang would show up as a failed test, not a dead test session). Prints one JSON line:
how many mutants loaded, how many raised each error type, and any unexpected exception.
"""

from __future__ import annotations

import json
import sys
import traceback

import numpy as np


def mutants(bases: list[bytes], count: int, rng: np.random.Generator):
    """(kind, bytes) pairs: byte flips, truncations, zeroed ranges, random 32-bit words (which
    hit offsets, lengths and vtable entries), all spread over the whole file."""
    kinds = ["flip", "truncate", "zero", "word", "flip_head"]
    for i in range(count):
        base = bytearray(bases[i % len(bases)])
        kind = kinds[i % len(kinds)]
        n = len(base)
        if kind == "flip":
            for pos in rng.integers(0, n, size=int(rng.integers(1, 9))):
                base[pos] ^= int(rng.integers(1, 256))
        elif kind == "flip_head":  # the tables (not the weights) sit in the first part of our files
            for pos in rng.integers(0, max(1, n // 4), size=int(rng.integers(1, 5))):
                base[pos] ^= int(rng.integers(1, 256))
        elif kind == "truncate":
            base = base[:int(rng.integers(0, n))]
        elif kind == "zero":
            start = int(rng.integers(0, n))
            base[start:start + int(rng.integers(1, 256))] = bytes(min(n - start, 255))
        else:
            pos = int(rng.integers(0, max(1, n - 4))) & ~3
            base[pos:pos + 4] = int(rng.integers(0, 2**32)).to_bytes(4, "little")
        yield kind, bytes(base)


def main(count: int = 200, seed: int = 0) -> dict:
    from hardware import reference
    from hardware.graph import DType
    from hardware.tflite_io import ModelFormatError, UnsupportedModelError, read_tflite, write_tflite
    from tests.helpers.int8_graphs import ds_cnn_s, random_graph

    rng = np.random.default_rng(seed)
    bases = [write_tflite(ds_cnn_s(np.random.default_rng(1), softmax=True, metadata={"labels": "yes,no"})),
             write_tflite(ds_cnn_s(np.random.default_rng(2), float_io=True)),
             write_tflite(random_graph(np.random.default_rng(3)))]
    counts = {"loaded": 0, "ModelFormatError": 0, "UnsupportedModelError": 0, "unexpected": 0}
    by_kind: dict[str, dict[str, int]] = {}
    unexpected = []
    for kind, data in mutants(bases, count, rng):
        try:
            g = read_tflite(data)
            # A graph that loads is a valid graph: the reference must run it.
            x = g.tensors[g.inputs[0]]
            if x.size <= 1 << 20:
                reference.run(g, np.zeros(x.shape, dtype=np.float32 if x.dtype == DType.FLOAT32 else x.dtype.numpy))
            outcome = "loaded"
        except UnsupportedModelError:
            outcome = "UnsupportedModelError"
        except ModelFormatError:
            outcome = "ModelFormatError"
        except Exception:  # noqa: BLE001 - the point is to catch anything else
            outcome = "unexpected"
            unexpected.append(f"{kind}: {traceback.format_exc(limit=3)}")
        counts[outcome] += 1
        by_kind.setdefault(kind, {}).setdefault(outcome, 0)
        by_kind[kind][outcome] += 1
    return {"counts": counts, "by_kind": by_kind, "unexpected": unexpected[:5]}


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:3]]
    print(json.dumps(main(*args)))
