"""Shared test helpers (plain modules, no tests and no fixtures; fixtures live in ``tests/conftest.py``).

- ``paths``: the repository root and ``tests/fixtures``.
- ``corpus``: synthetic speakers, WAV files in any format, the tiny Speech Commands-layout corpus.
- ``int8_graphs``: realistic int8 graphs with random weights (``GraphBuilder``, ``ds_cnn_s``, ``random_graph``).
- ``tflite_builder``: `.tflite` files laid out as TensorFlow's converter writes them.
- ``tflm``: every tensor compared with TFLM's own interpreter.
- ``fuzz_tflite``: corrupted `.tflite` files (``python -m tests.helpers.fuzz_tflite``).
- ``standins``: a stand-in code generator and a fake board on pyserial's ``loop://``.
- ``marks``: skip marks for tests that need the Arm toolchain or QEMU.
- ``models``: models with randomised batch norms and MFCC-like inputs for quantization tests.
- ``one_step``: one real training step of a spec.
- ``search``: ``nas search`` in a child process and the studies it writes.
- ``evolution``: the stand-in objective and fitness of the evolution sampler's tests.
- ``synth``: the tiny synthesised-corpus configuration.
- ``imports``: the modules a source file imports.
- ``cli_cases``: wrong ``nas`` command lines.
- ``postgres``: a private PostgreSQL server.
"""
