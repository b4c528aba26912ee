"""A bounds-checked reader for FlatBuffers tables (the subset a `.tflite` file uses).

The generated Python accessors trust every offset: on a damaged file they raise arbitrary
exceptions, return garbage, or loop over a vector "length" of billions. Here every offset, vtable
and vector is checked against the buffer before use, so a damaged file fails fast with
:class:`FlatbufferError` and the work done is bounded by the file size.
"""

from __future__ import annotations

import struct

import numpy as np

_U16, _I32, _U32 = struct.Struct("<H"), struct.Struct("<i"), struct.Struct("<I")


class FlatbufferError(ValueError):
    """The bytes do not form a well-formed flatbuffer table where one is expected."""


class Table:
    """One table at absolute position ``pos`` of ``buf``. Field slots are vtable byte offsets
    (4 + 2 * field id), as in the generated code."""

    __slots__ = ("buf", "pos", "_vt", "_vt_len", "_size", "where")

    def __init__(self, buf: bytes, pos: int, where: str = "table") -> None:
        self.buf, self.pos, self.where = buf, pos, where
        n = len(buf)
        if not 0 <= pos <= n - 4:
            raise FlatbufferError(f"{where}: table offset {pos} outside the {n}-byte file")
        vt = pos - _I32.unpack_from(buf, pos)[0]
        if not 0 <= vt <= n - 4:
            raise FlatbufferError(f"{where}: vtable offset {vt} outside the file")
        vt_len, size = _U16.unpack_from(buf, vt)[0], _U16.unpack_from(buf, vt + 2)[0]
        if vt_len < 4 or vt_len % 2 or vt + vt_len > n or size < 4 or pos + size > n:
            raise FlatbufferError(f"{where}: malformed vtable (length {vt_len}, table size {size})")
        self._vt, self._vt_len, self._size = vt, vt_len, size

    def _field(self, slot: int, width: int) -> int:
        """Absolute position of a present field, else 0."""
        if slot + 2 > self._vt_len:
            return 0
        off = _U16.unpack_from(self.buf, self._vt + slot)[0]
        if off == 0:
            return 0
        if off + width > self._size:
            raise FlatbufferError(f"{self.where}: field at slot {slot} runs past the table")
        return self.pos + off

    def scalar(self, slot: int, fmt: str, default=0):
        s = struct.Struct("<" + fmt)
        p = self._field(slot, s.size)
        return s.unpack_from(self.buf, p)[0] if p else default

    def _indirect(self, slot: int) -> int:
        p = self._field(slot, 4)
        if not p:
            return 0
        target = p + _U32.unpack_from(self.buf, p)[0]
        if target > len(self.buf) - 4:
            raise FlatbufferError(f"{self.where}: offset at slot {slot} points outside the file")
        return target

    def table(self, slot: int, where: str) -> Table | None:
        target = self._indirect(slot)
        return Table(self.buf, target, where) if target else None

    def _vector(self, slot: int, elem_size: int) -> tuple[int, int] | None:
        v = self._indirect(slot)
        if not v:
            return None
        count = _U32.unpack_from(self.buf, v)[0]
        start = v + 4
        if count * elem_size > len(self.buf) - start:
            raise FlatbufferError(f"{self.where}: vector at slot {slot} claims {count} elements, past the file end")
        return start, count

    def array(self, slot: int, dtype: str) -> np.ndarray | None:
        """A vector of scalars as a numpy array (copied), or None when absent."""
        dt = np.dtype(dtype).newbyteorder("<")
        vec = self._vector(slot, dt.itemsize)
        if vec is None:
            return None
        start, count = vec
        return np.frombuffer(self.buf, dtype=dt, count=count, offset=start).astype(dt.newbyteorder("="))

    def tables(self, slot: int, where: str) -> list[Table]:
        vec = self._vector(slot, 4)
        if vec is None:
            return []
        start, count = vec
        out = []
        for i in range(count):
            p = start + 4 * i
            out.append(Table(self.buf, p + _U32.unpack_from(self.buf, p)[0], f"{where}[{i}]"))
        return out

    def bytes_(self, slot: int) -> bytes | None:
        vec = self._vector(slot, 1)
        if vec is None:
            return None
        start, count = vec
        return self.buf[start:start + count]

    def string(self, slot: int) -> str | None:
        raw = self.bytes_(slot)
        return None if raw is None else raw.decode("utf-8", errors="surrogateescape")


def root(buf: bytes, identifier: bytes) -> Table:
    """The root table of a finished flatbuffer carrying ``identifier`` (4 bytes)."""
    if len(buf) < 12:
        raise FlatbufferError(f"{len(buf)} bytes is too short for a flatbuffer")
    if buf[4:8] != identifier:
        raise FlatbufferError(f"file identifier is {bytes(buf[4:8])!r}, expected {identifier!r}")
    return Table(buf, _U32.unpack_from(buf, 0)[0], "model")
