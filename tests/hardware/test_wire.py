"""The host side of the measurement protocol: framing, the client's retries and timeouts, the
fault-injecting port. Everything here runs against the Python fake board on pyserial's loop://
(the same dialogue against the real firmware in QEMU is in test_firmware.py)."""

from __future__ import annotations

import struct
import time

import numpy as np
import pytest
import serial
from hypothesis import given, settings
from hypothesis import strategies as st

from hardware.link import FaultyPort, Link
from hardware.wire import (
    BoardFault,
    Client,
    Cmd,
    CommandError,
    LinkTimeout,
    cobs_decode,
    cobs_encode,
    decode_frame,
    encode_frame,
)
from tests.helpers.standins import FakeBoard, fc_graph


@pytest.fixture(scope="module")
def graph():
    return fc_graph(np.random.default_rng(3), sizes=(300, 16, 5))


@given(st.binary(max_size=1200))
@settings(max_examples=300, deadline=None)
def test_cobs_round_trip_has_no_zero(data):
    enc = cobs_encode(data)
    assert b"\0" not in enc
    assert cobs_decode(enc) == data


@pytest.mark.parametrize("data", [b"", b"\0", b"\0\0", bytes(range(1, 255)), bytes(range(1, 256)) * 3,
                                  b"\x01" * 254 + b"\0", b"\x01" * 508])
def test_cobs_edge_cases(data):
    assert cobs_decode(cobs_encode(data)) == data


def test_frame_round_trip_and_every_single_byte_fault_is_caught():
    frame = encode_frame(Cmd.SET_INPUT, 200, bytes(range(256)) * 1)
    assert frame.endswith(b"\0") and frame.count(0) == 1
    f = decode_frame(frame[:-1])
    assert (f.cmd, f.seq, f.payload) == (Cmd.SET_INPUT, 200, bytes(range(256)))
    body = frame[:-1]
    for i in range(len(body)):
        for bit in (0, 3, 7):
            damaged = bytearray(body)
            damaged[i] ^= 1 << bit
            if 0 in damaged:
                continue  # a flip to 0x00 splits the frame: both halves fail on their own
            assert decode_frame(bytes(damaged)) is None
        assert decode_frame(body[:i] + body[i + 1:]) is None           # dropped byte
        assert decode_frame(body[:i] + body[i:i + 1] + body[i:]) is None  # doubled byte


def _client(graph, rate=0.0, kinds=FaultyPort.KINDS, seed=0, **kw):
    fake = FakeBoard(graph)
    port = FaultyPort(fake, rate, seed=seed, kinds=kinds) if rate else fake
    return Client(Link(port), **kw), fake, port


def test_commands_against_the_fake_board(graph):
    from hardware.reference import run

    client, fake, _ = _client(graph)
    info = client.info()
    assert (info.board, info.counter, info.num_ops, info.model_digest) == ("fake", "cycles", 2, graph.digest()[:16])
    assert client.echo(b"\0\1\2" * 80) == b"\0\1\2" * 80
    x = np.random.default_rng(0).integers(-128, 128, size=(1, 300), dtype=np.int8)
    client.set_input(x.tobytes())  # 300 bytes: two chunks
    counts = client.run(3, per_op=True)
    assert counts == [sum(fake.op_cycles)] * 3
    assert client.op_counts(info.num_ops) == fake.op_cycles
    assert np.array_equal(np.frombuffer(client.read_output(5), np.int8), run(graph, x)[0].ravel())
    assert client.stack() == (200, 4096)
    with pytest.raises(CommandError, match="BAD_RANGE"):
        client.request(Cmd.SET_INPUT, struct.pack("<I", 299) + b"ab")
    with pytest.raises(CommandError, match="UNKNOWN_CMD"):
        client.request(0x42)


def test_retried_request_is_answered_from_the_cache_not_run_again(graph):
    fake = FakeBoard(graph)
    link = Link(fake)
    frame = encode_frame(Cmd.ECHO, 9, b"hello")
    link.write(frame)
    link.write(frame)  # the host did not hear the first answer and asks again
    replies = [decode_frame(link.read_until(b"\0", 1.0)) for _ in range(2)]
    assert [r.payload for r in replies] == [b"\0hello"] * 2
    assert fake.executed == 1


@pytest.mark.parametrize("kinds", [("drop",), ("dup",), ("flip",), FaultyPort.KINDS])
def test_retries_survive_a_noisy_link(graph, kinds):
    client, _, port = _client(graph, rate=0.0005, kinds=kinds, seed=len(kinds), timeout_s=0.1, retries=8)
    rng = np.random.default_rng(1)
    for _ in range(60):
        data = rng.integers(0, 256, size=int(rng.integers(0, 250)), dtype=np.uint8).tobytes()
        assert client.echo(data) == data
    assert sum(port.counts.values()) > 0 and client.stats["retries"] > 0


def test_silent_board_times_out_within_the_bound():
    client = Client(Link(serial.serial_for_url("loop://", timeout=0.05)), timeout_s=0.1, retries=2)
    t0 = time.monotonic()
    with pytest.raises(LinkTimeout):
        client.request(Cmd.INFO)  # loop:// echoes our own request back: never a valid answer
    assert time.monotonic() - t0 < 1.0
    assert client.stats["retries"] == 2


def test_stale_and_fault_frames(graph):
    client, fake, _ = _client(graph)
    client.info()
    # a stale answer (old seq) waiting in the pipe is skipped
    fake.up.write(encode_frame(Cmd.ECHO | 0x80, (client._seq - 5) & 0xFF, b"\0old"))
    assert client.echo(b"new") == b"new"
    assert client.stats["stale_frames"] == 1
    fake.up.write(encode_frame(Cmd.FAULT | 0x80, 0, b"\0" + struct.pack("<IIII", 0x1234, 0x5678, 0x400, 1 << 30)))
    with pytest.raises(BoardFault, match="pc=0x00001234"):
        client.info()


def test_faulty_port_is_reproducible():
    def run(seed):
        port = FaultyPort(serial.serial_for_url("loop://", timeout=0.01), 0.1, seed=seed, kinds=("drop", "dup", "flip"))
        port.write(bytes(range(200)))
        return port.read(400), dict(port.counts)

    assert run(5) == run(5)
    assert run(5) != run(6)
