"""Bad input, counted: wrong command lines, malformed spec JSON, mutated WAV headers, mutated `.tflite`
files through `nas measure`. Each input ends in a result or in one clear error line naming the cause
(exit 2) — never a traceback. Counts go to the "faults injected" summary at the end of the run.
(The `.tflite` importer and `nas inspect` fuzzers live beside their modules: test_tflite_io, test_inspect.)"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from hardware import write_tflite
from nas.cli import main as nas_main
from tests.helpers.cli_cases import cases
from tests.helpers.corpus import make_tiny_corpus
from tests.helpers.fuzz_tflite import mutants
from tests.helpers.paths import REPO
from tests.helpers.standins import fc_graph


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int | None, str, str]:
    """(exit code, stderr, what escaped) of ``nas ARGV`` in this process."""
    escaped = ""
    try:
        rc = nas_main(argv)
    except SystemExit as e:  # argparse's own usage errors
        rc = e.code if isinstance(e.code, int) else 2
    except Exception as e:  # noqa: BLE001 - counting anything that escapes is the point
        rc, escaped = None, f"{type(e).__name__}: {e}"
    return rc, capsys.readouterr().err, escaped


def _outcome(argv: list[str], path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[str, str]:
    """How ``nas ARGV`` on the input file ``path`` ended: "ok" (exit 0), "failed" (exit 1: a failed
    measurement is an answer), "named" (exit 2, one error line naming ``path``) or "bad" (anything else,
    with what was printed or escaped)."""
    rc, err, escaped = _run(argv, capsys)
    if rc in (0, 1) and not escaped:
        return ("ok" if rc == 0 else "failed"), ""
    if rc == 2 and _clean_error(err) and str(path) in err:
        return "named", ""
    return "bad", f"{rc} {escaped or err.strip()[-300:]!r}"


def _clean_error(err: str) -> bool:
    """One error line (argparse may print its usage lines above it), no traceback."""
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    return bool(lines) and "Traceback" not in err and ("error: " in lines[-1]) and (
        lines[-1].startswith("error: ") or lines[-1].startswith("nas"))


def test_wrong_command_lines_exit_2_with_one_error_line(tmp_path: Path, capsys, monkeypatch, fault_counts):
    monkeypatch.chdir(tmp_path)  # searches that were to start would write runs/ here
    model = tmp_path / "m.tflite"
    model.write_bytes(write_tflite(fc_graph(np.random.default_rng(0))))
    from search_spaces.presets import get_preset

    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(get_preset("ds-cnn-s").to_dict()))
    corpus = make_tiny_corpus(tmp_path / "corpus", ("yes", "no", "up"), speakers=(2, 1, 1), reps=1)
    bad_toml = tmp_path / "bad.toml"
    bad_toml.write_text("name = [unclosed\n")
    argvs = cases(model, spec, corpus, bad_toml, tmp_path / "missing", tmp_path / "out")
    problems = []
    for argv in argvs:
        rc, err, escaped = _run(argv, capsys)
        if rc != 2 or not _clean_error(err):
            problems.append(f"nas {' '.join(argv)} -> {rc} {escaped or err.strip()[-200:]!r}")
    fault_counts(f"fuzz: wrong nas command lines ({len(argvs)})", injected=len(argvs),
                 survived=len(argvs) - len(problems), lost=len(problems))
    assert not problems, "\n".join(problems)
    import sqlite3

    for db in tmp_path.glob("runs/*/study.db"):  # a study may be opened before its data is found missing
        with sqlite3.connect(db) as con:
            assert con.execute("select count(*) from trials").fetchone()[0] == 0, f"a trial ran: {db}"


def _spec_mutants(bases: list[dict], count: int, rng: random.Random) -> list[str]:
    """Malformed spec JSON: broken text (truncated, a character flipped or deleted) and well-formed
    JSON with a key deleted, a value of the wrong type or range, or an unknown key, anywhere in the tree."""
    odd = [None, -1, 0, 10**9, "x", [], {}, 1.5, True, "", [1, 2, 3], -(10**9), 1e308]
    out = []
    for i in range(count):
        base = json.loads(json.dumps(bases[i % len(bases)]))
        kind = i % 6
        if kind < 3:
            text = json.dumps(base)
            pos = rng.randrange(len(text))
            text = (text[:pos] if kind == 0 else text[:pos] + chr(rng.randrange(32, 127)) + text[pos + 1:]
                    if kind == 1 else text[:pos] + text[pos + 1:])
            out.append(text)
            continue
        containers = [base]  # every dict and list in the tree
        stack = [base]
        while stack:
            node = stack.pop()
            for v in node.values() if isinstance(node, dict) else node:
                if isinstance(v, dict | list) and v:
                    containers.append(v)
                    stack.append(v)
        node = rng.choice(containers)
        key = rng.choice(list(node)) if isinstance(node, dict) else rng.randrange(len(node))
        if kind == 3 and isinstance(node, dict):
            del node[key]
        elif kind == 5 and isinstance(node, dict):
            node["unexpected_" + str(i)] = 1
        else:
            node[key] = rng.choice(odd)
        out.append(json.dumps(base))
    return out


def test_malformed_spec_json_is_refused_with_its_file_named(tmp_path: Path, capsys, fault_counts):
    from search_spaces.presets import get_preset

    bases = [get_preset(n).to_dict() for n in ("ds-cnn-s", "micronet-kws-s", "cnn-s", "dnn-s", "ei-conv1d")]
    texts = _spec_mutants(bases, 240, random.Random(0))
    counts = {"ok": 0, "failed": 0, "named": 0, "bad": 0}
    problems = []
    for i, text in enumerate(texts):
        path = tmp_path / f"spec{i:03d}.json"
        path.write_text(text)
        kind, detail = _outcome(["arch", "show", str(path), "--json"], path, capsys)
        kind = "bad" if kind == "failed" else kind  # `arch show` has no exit 1
        counts[kind] += 1
        if kind == "bad":
            problems.append(f"{path.name}: {detail or 'exit 1'} <- {text[:200]}")
    fault_counts(f"fuzz: malformed spec JSON, nas arch show ({counts['ok']} still valid, "
                 f"{counts['named']} named errors)", injected=len(texts), survived=counts["ok"] + counts["named"],
                 lost=counts["bad"])
    assert not problems, "\n".join(problems[:10])
    assert counts["named"] > 150


def _wav_mutants(clean: bytes, count: int, rng: np.random.Generator):
    """Headers (the first 44 bytes) with flipped bytes, random 32-bit fields (sizes, rate, format),
    cut short, or cut mid-data."""
    for i in range(count):
        data = bytearray(clean)
        kind = i % 4
        if kind == 0:
            for pos in rng.integers(0, 44, size=int(rng.integers(1, 4))):
                data[pos] ^= int(rng.integers(1, 256))
        elif kind == 1:
            pos = int(rng.choice([4, 16, 20, 22, 24, 28, 32, 34, 40]))  # RIFF size, fmt fields, data size
            width = 2 if pos in (20, 22, 32, 34) else 4
            data[pos:pos + width] = int(rng.integers(0, 2 ** (8 * width))).to_bytes(width, "little")
        elif kind == 2:
            data = data[:int(rng.integers(0, 44))]
        else:
            data = data[:int(rng.integers(44, len(data)))]
        yield bytes(data)


def test_mutated_wav_headers_are_read_or_named_and_skipped(tmp_path: Path, fault_counts):
    from nas.data.dataset import load_split
    from nas.data.label_sets import get_protocol
    from nas.data.layout import scan_corpus
    from nas.data.wav import BadClipError, read_wav

    corpus = make_tiny_corpus(tmp_path / "corpus", ("yes", "no"), speakers=(3, 1, 1), reps=2, noise=False)
    clips = sorted(corpus.rglob("*.wav"))
    clean = clips[0].read_bytes()
    counts = {"read": 0, "named": 0, "bad": 0}
    problems = []
    for i, data in enumerate(_wav_mutants(clean, 200, np.random.default_rng(0))):
        path = tmp_path / "mutants" / f"clip{i:03d}.wav"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(data)
        try:
            x = read_wav(path)
            assert x.dtype == np.int16 and x.size > 0
            counts["read"] += 1
        except BadClipError as e:
            ok = str(path) in str(e)
            counts["named" if ok else "bad"] += 1
            if not ok:
                problems.append(f"{path.name}: {e}")
        except Exception as e:  # noqa: BLE001
            counts["bad"] += 1
            problems.append(f"{path.name}: {type(e).__name__}: {e}")
    # inside a corpus: the loader skips each bad clip, names it, and keeps the rest
    bad = set()
    for clip, data in zip(clips[:6], _wav_mutants(clean, 6, np.random.default_rng(1)), strict=False):
        clip.write_bytes(data)
        try:
            read_wav(clip)
        except BadClipError:
            bad.add(str(clip))
    scanned, protocol = scan_corpus(corpus), get_protocol("yes,no")
    splits = [load_split(scanned, protocol, split, use_cache=False) for split in ("train", "validation", "test")]
    skipped = {p for sp in splits for p, _reason in sp.skipped}
    fault_counts(f"fuzz: mutated WAV headers ({counts['read']} still readable, {counts['named']} named errors)",
                 injected=200, survived=counts["read"] + counts["named"], lost=counts["bad"])
    assert not problems, "\n".join(problems[:10])
    assert counts["named"] > 100
    assert bad and skipped == bad
    assert sum(len(sp.rel_paths) for sp in splits) == len(clips) - len(bad) + sum(int(sp.silence.sum()) for sp in splits)


def test_mutated_tflite_files_through_nas_measure(tmp_path: Path, capsys, fault_counts):
    """Analytic on 60 mutants; the emulator (generate, compile, run, compare) on those that still load."""
    from hardware.evaluators import emulation_missing
    from tests.helpers.int8_graphs import ds_cnn_s

    bases = [write_tflite(fc_graph(np.random.default_rng(1), sizes=(80, 32, 12), per_channel=True)),
             write_tflite(ds_cnn_s(np.random.default_rng(2)))]
    counts = {"ok": 0, "failed": 0, "named": 0, "bad": 0}
    problems, loaded = [], []
    for i, (mutation, data) in enumerate(mutants(bases, 60, np.random.default_rng(5))):
        path = tmp_path / f"mutant{i:02d}.tflite"
        path.write_bytes(data)
        kind, detail = _outcome(["measure", str(path), "--board", "mps2-an386", "--evaluator", "analytic", "--json"],
                                path, capsys)
        counts[kind] += 1
        if kind == "ok":
            loaded.append(path)
        if kind == "bad":
            problems.append(f"{mutation} {path.name}: {detail}")
    emulated = 0
    if not emulation_missing():
        for path in loaded[:4]:
            kind, detail = _outcome(["measure", str(path), "--board", "mps2-an386", "--evaluator", "emulator",
                                     "--no-cache", "--json"], path, capsys)
            emulated += 1
            if kind not in ("ok", "failed"):
                counts["bad"] += 1
                problems.append(f"emulator {path.name}: {kind} {detail}")
    fault_counts(f"fuzz: mutated .tflite through nas measure ({counts['ok']} measured analytically, "
                 f"{emulated} of them on the emulator, {counts['named']} named errors)", injected=60 + emulated,
                 survived=60 + emulated - counts["bad"], lost=counts["bad"])
    assert not problems, "\n".join(problems[:10])
    assert counts["named"] > 20


def test_no_shell_anywhere(fault_counts):
    """Nothing from a model, spec or dataset path can reach a shell: no ``shell=True``, ``os.system``
    or ``os.popen`` in the project's code (user-given flashing commands are split with shlex)."""
    import ast

    root = REPO
    found = []
    files = [p for d in ("nas", "hardware", "search_spaces", "experiments", "scripts") for p in (root / d).rglob("*.py")]
    for path in files:
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                f = node.func
                name = f"{getattr(f.value, 'id', '')}.{f.attr}" if isinstance(f, ast.Attribute) else getattr(f, "id", "")
                if name in ("os.system", "os.popen", "subprocess.getoutput", "subprocess.getstatusoutput"):
                    found.append(f"{path}:{node.lineno}: {name}")
                for kw in node.keywords:
                    if kw.arg == "shell" and not (isinstance(kw.value, ast.Constant) and kw.value.value is False):
                        found.append(f"{path}:{node.lineno}: shell=")
    assert len(files) > 50 and not found, found


def test_every_server_binds_to_loopback():
    """QEMU's UART socket and the dashboard listen on 127.0.0.1 unless the user says otherwise."""
    from hardware.boards import get_board
    from hardware.emulator import qemu_command
    from nas.cli import build_parser

    cmd = qemu_command("fw.elf", get_board("mps2-an386"), 0)
    chardev = cmd[cmd.index("-chardev") + 1]
    assert "host=127.0.0.1" in chardev and "-gdb" not in cmd and "-s" not in cmd
    args = build_parser().parse_args(["dashboard", "--study", "s"])
    assert args.host == "127.0.0.1"
