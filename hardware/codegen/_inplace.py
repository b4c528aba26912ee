"""How far an op's output may overlap its input: the in-place rule the arena planner applies.

A streaming kernel visits *units* of its output (pixels, rows or elements), forward or in exactly
the reverse order, in *groups* (one unit, or the two pixels a DSP GEMM computes together). A
group reads only its own inputs; a *buffered* group has read them all (into registers or scratch)
before it writes anything. With the output at ``A_out`` and the input at ``A_in``, let
``shift = A_out - A_in``. The output may overlap the input when every byte written so far lies
below every input byte still to be read (forward) or above them (reverse):

- forward: ``shift <= fwd = min_k (first input byte read from group k on) - (output end after group k)``
- reverse: ``shift >= rev = max_k (last input byte read from group k on) - (output start after group k)``

("from group k on" excludes group k itself when groups are buffered.) Disjoint placements are
always allowed besides. The kernels in ``kws_kernels.h``/``kws_kernels_dsp.h`` follow exactly the
visiting orders modelled here; ``tests/hardware/test_codegen.py`` checks the claim by running random graphs
planned with the tightest shifts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hardware.op_params import window_geometry

BIG = 1 << 40  # "no constraint" for a shift bound


@dataclass(frozen=True)
class Shifts:
    """Allowed overlap of an output with one input: ``shift <= fwd`` (forward order) or
    ``shift >= rev`` (reverse order); ``rev = BIG`` where the kernel has no reverse order."""

    fwd: int
    rev: int
    exact: bool = False  # shift 0 (output exactly over the input) is safe besides

    def allows(self, shift: int) -> str | None:
        """'fwd' or 'rev' if ``shift`` is safe in that order, else None."""
        if self.exact and shift == 0:
            return "fwd"
        if shift <= self.fwd:
            return "fwd"
        if shift >= self.rev:
            return "rev"
        return None

    def combine(self, other: Shifts) -> Shifts:
        return Shifts(min(self.fwd, other.fwd), max(self.rev, other.rev), self.exact and other.exact)


@dataclass(frozen=True)
class Stream:
    """One streaming op: output byte range per unit and input byte range read per unit."""

    out_lo: np.ndarray
    out_hi: np.ndarray
    reads: tuple[tuple[np.ndarray, np.ndarray], ...]  # per activation input: (lo, hi); lo=BIG, hi=-BIG: none
    group: int = 1
    buffered: bool = False
    reversible: bool = True
    reads_rev: tuple[tuple[np.ndarray, np.ndarray], ...] | None = None  # when reverse order reads differently

    def shifts(self, j: int) -> Shifts:
        lo, hi = self.reads[j]
        fwd = _bound(np.arange(len(self.out_lo)), self.out_hi, lo, self.group, self.buffered, forward=True)
        if not self.reversible:
            return Shifts(fwd, BIG)
        if self.reads_rev is not None:
            hi = self.reads_rev[j][1]
        rev = _bound(np.arange(len(self.out_lo))[::-1], self.out_lo, hi, self.group, self.buffered, forward=False)
        return Shifts(fwd, rev)


def _bound(order: np.ndarray, out_edge: np.ndarray, read_edge: np.ndarray, group: int, buffered: bool,
           forward: bool) -> int:
    n = len(order)
    if n == 0:
        return BIG if forward else -BIG
    gid = np.arange(n) // group
    ng = int(gid[-1]) + 1
    red_w, red_r = (np.maximum, np.minimum) if forward else (np.minimum, np.maximum)
    init_w, init_r = (-BIG, BIG) if forward else (BIG, -BIG)
    gw = np.full(ng, init_w, dtype=np.int64)
    gr = np.full(ng, init_r, dtype=np.int64)
    red_w.at(gw, gid, out_edge[order])
    red_r.at(gr, gid, read_edge[order])
    written = red_w.accumulate(gw)                      # output edge after each group
    future = red_r.accumulate(gr[::-1])[::-1]           # reads from each group on
    if buffered:
        future = np.concatenate([future[1:], [init_r]])
    live = future != init_r
    if not live.any():
        return BIG if forward else -BIG
    d = future[live] - written[live]
    return int(d.min()) if forward else int(d.max())


# ---- unit models per op family ----

def _units(n: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    lo = np.arange(n, dtype=np.int64) * size
    return lo, lo + size


def window_stream(in_shape, out_shape, filt, stride, dilation, pad, group: int = 1, buffered: bool = False
                  ) -> Stream:
    """Conv, depthwise and pool: units are output pixels; each reads the bounding box of its
    window's in-bounds taps."""
    n, ih, iw, ic = in_shape
    _, oh, ow, oc = out_shape

    def span(o, i, k, s, d, p):
        taps = np.arange(o)[:, None] * s - p + np.arange(k)[None, :] * d
        ok = (taps >= 0) & (taps < i)
        first = np.where(ok, taps, BIG).min(axis=1)
        last = np.where(ok, taps, -BIG).max(axis=1)
        return first, last, ok.any(axis=1)

    y0, y1, yok = span(oh, ih, filt[0], stride[0], dilation[0], pad[0])
    x0, x1, xok = span(ow, iw, filt[1], stride[1], dilation[1], pad[1])
    b = np.arange(n)[:, None, None]
    lo = ((b * ih + y0[None, :, None]) * iw + x0[None, None, :]) * ic
    hi = ((b * ih + y1[None, :, None]) * iw + x1[None, None, :] + 1) * ic
    ok = np.broadcast_to(yok[None, :, None] & xok[None, None, :], lo.shape)
    lo = np.where(ok, lo, BIG).ravel()
    hi = np.where(ok, hi, -BIG).ravel()
    out_lo, out_hi = _units(n * oh * ow, oc)
    return Stream(out_lo, out_hi, ((lo, hi),), group, buffered)


class ExactStream:
    """A kernel that reads each group of channels whole before writing that group's output over
    exactly the same bytes (``kws_dwplane_dsp``): its output may lie exactly on its input
    (shift 0) and nowhere else over it."""

    def shifts(self, j: int) -> Shifts:
        return Shifts(-BIG, BIG, True)


def window_rows_stream(in_shape, out_shape, kh: int, sh: int, dh: int, pt: int) -> Stream:
    """The DSP depthwise kernel: units are output rows; before computing a row it copies into its
    window buffer the input rows it has not copied yet (top down, or bottom up in reverse)."""
    n, ih, iw, ic = in_shape
    _, oh, ow, _ = out_shape
    span = (kh - 1) * dh + 1
    top = np.arange(oh) * sh - pt                    # first input row of each output row's window
    bot = top + span - 1
    fwd_lo = np.maximum(np.maximum(top, np.concatenate([[-BIG], bot[:-1] + 1])), 0)
    fwd_hi = np.minimum(bot, ih - 1)
    rev_lo = np.maximum(top, 0)
    rev_hi = np.minimum(np.minimum(bot, np.concatenate([top[1:] - 1, [BIG]])), ih - 1)
    row = iw * ic
    reads = []
    for lo, hi in ((fwd_lo, fwd_hi), (rev_lo, rev_hi)):
        ok = lo <= hi
        b = np.arange(n)[:, None] * ih
        r_lo = np.where(ok, (b + lo) * row, BIG).ravel()
        r_hi = np.where(ok, (b + hi + 1) * row, -BIG).ravel()
        reads.append(((r_lo, r_hi),))
    out_lo, out_hi = _units(n * oh, ow * ic)
    return Stream(out_lo, out_hi, reads[0], 1, True, True, reads[1])


def rows_stream(rows: int, depth: int, out_width: int, group: int = 1, buffered: bool = False) -> Stream:
    """Fully connected: units are rows; each reads its whole input row."""
    lo, hi = _units(rows, depth)
    out_lo, out_hi = _units(rows, out_width)
    return Stream(out_lo, out_hi, ((lo, hi),), group, buffered)


def elementwise_stream(out_shape, in_shapes, reversible: bool) -> Stream:
    """ADD and SOFTMAX: units are output elements, each reading its (broadcast) input elements
    into registers before writing (so buffered)."""
    size = int(np.prod(out_shape, dtype=np.int64))
    reads = []
    for shape in in_shapes:
        shape = (1,) * (len(out_shape) - len(shape)) + tuple(shape)
        idx = np.broadcast_to(np.arange(int(np.prod(shape)), dtype=np.int64).reshape(shape), out_shape).ravel()
        reads.append((idx, idx + 1))
    out_lo, out_hi = _units(size, 1)
    return Stream(out_lo, out_hi, tuple(reads), 1, True, reversible)


def softmax_stream(shape) -> Stream:
    """SOFTMAX reads a row twice before writing it, then writes each element after reading it:
    as far as overlap goes, an element-wise stream."""
    return elementwise_stream(tuple(shape), [tuple(shape)], reversible=True)


def pad_stream(in_shape4, out_shape4, before4) -> Stream:
    """PAD: units are output pixels (innermost rows); a unit inside the input copies one input row."""
    o0, o1, o2, o3 = out_shape4
    i0, i1, i2, i3 = in_shape4
    a = np.indices((o0, o1, o2)).reshape(3, -1) - np.asarray(before4[:3])[:, None]
    inside = (a >= 0).all(axis=0) & (a[0] < i0) & (a[1] < i1) & (a[2] < i2)
    src = ((a[0] * i1 + a[1]) * i2 + a[2]).astype(np.int64)
    lo = np.where(inside, src * i3, BIG)
    hi = np.where(inside, (src + 1) * i3, -BIG)
    out_lo, out_hi = _units(o0 * o1 * o2, o3)
    return Stream(out_lo, out_hi, ((lo, hi),))


def conv_geometry(x_shape, w_hw, options):
    """(pad_top, pad_left) of a conv/depthwise/pool window (TFLite's SAME/VALID rule)."""
    dilation = getattr(options, "dilation", (1, 1))
    return window_geometry(options.padding, x_shape[1:3], w_hw, options.stride, dilation)[1]
