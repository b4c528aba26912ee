"""The activation arena: buffers from tensor lifetimes, placed by a greedy best-fit planner that
knows which outputs may overlap their inputs.

Buffers are alias groups of activation tensors (a RESHAPE output shares its input's bytes) plus
one scratch buffer per op that needs one (live during that op only). Two buffers whose lifetimes
meet must not overlap, except an op's output over an input whose life ends at that op, within
the :class:`~hardware.codegen._inplace.Shifts` the op's kernel allows (for an ``exact`` kernel,
also exactly on the input: shift 0).

Placement (largest first, ties by first use): each buffer takes the offset that keeps the arena
smallest, then the tightest gap, then the lowest offset. Offsets may go negative while planning
(an in-place output often starts just before its input); the arena is shifted to start at 0 at
the end. Every offset is a multiple of :data:`ALIGN`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hardware.codegen._inplace import Shifts

ALIGN = 4  # word loads/stores and LDRD in the DSP kernels need 4-byte alignment on v7-M


@dataclass(frozen=True)
class Buffer:
    size: int
    first: int                    # execution positions, inclusive
    last: int
    tensors: tuple[int, ...] = ()  # activation tensors sharing it (empty for scratch)
    scratch_of: int | None = None  # position of the op using it as scratch

    def meets(self, other: Buffer) -> bool:
        return self.first <= other.last and other.first <= self.last


@dataclass(frozen=True)
class Plan:
    buffers: tuple[Buffer, ...]
    offsets: tuple[int, ...]
    arena_bytes: int
    # (output buffer, input buffer) -> (position, allowed shifts) for in-place candidates
    pairs: dict[tuple[int, int], tuple[int, Shifts]] = field(default_factory=dict)

    def buffer_of(self, tensor: int) -> int:
        for i, b in enumerate(self.buffers):
            if tensor in b.tensors:
                return i
        raise KeyError(tensor)

    def offset(self, tensor: int) -> int:
        return self.offsets[self.buffer_of(tensor)]

    def scratch_offset(self, position: int) -> int | None:
        for i, b in enumerate(self.buffers):
            if b.scratch_of == position:
                return self.offsets[i]
        return None

    def overlaps(self, a: int, b: int) -> bool:
        """Whether buffers a and b share bytes (lifetimes aside)."""
        oa, ob = self.offsets[a], self.offsets[b]
        return oa < ob + self.buffers[b].size and ob < oa + self.buffers[a].size

    def in_place(self, position: int) -> bool:
        """Whether the op at ``position`` writes over one of its inputs."""
        return any(pos == position and self.overlaps(o, i) for (o, i), (pos, _) in self.pairs.items())

    def direction(self, position: int) -> str:
        """'rev' when the op at ``position`` overlaps an input that needs reverse order, else 'fwd'."""
        for (o, i), (pos, sh) in self.pairs.items():
            if pos == position and self.overlaps(o, i):
                if sh.allows(self.offsets[o] - self.offsets[i]) == "rev":
                    return "rev"
        return "fwd"


def _align_down(x: int) -> int:
    return x - x % ALIGN


def _align_up(x: int) -> int:
    return -_align_down(-x)


def _forbidden(new: int, placed: int, buffers, offsets, pairs) -> list[tuple[int, int]]:
    """Open intervals (lo, hi) of offsets the new buffer may not take because of one placed
    buffer (two when the pair may alias exactly: the offset of the placed buffer is allowed)."""
    b, p, po = buffers[new], buffers[placed], offsets[placed]
    lo, hi = po - b.size, po + p.size           # any offset strictly inside overlaps
    sh = None
    if (new, placed) in pairs:                  # new is the output, placed its input
        sh = pairs[(new, placed)][1]
        lo, hi = max(lo, po + sh.fwd), min(hi, po + sh.rev)
    elif (placed, new) in pairs:                # new is the input, placed the output
        sh = pairs[(placed, new)][1]
        lo, hi = max(lo, po - sh.rev), min(hi, po - sh.fwd)
    spans = [(lo, po), (po, hi)] if sh is not None and sh.exact and lo < po < hi else [(lo, hi)]
    return [(a, z) for a, z in spans if a + 1 < z]


def place(buffers: list[Buffer], pairs: dict[tuple[int, int], tuple[int, Shifts]]) -> Plan:
    order = sorted(range(len(buffers)), key=lambda i: (-buffers[i].size, buffers[i].first, i))
    offsets: list[int | None] = [None] * len(buffers)
    lo_all = hi_all = 0
    for k, i in enumerate(order):
        b = buffers[i]
        if b.size == 0:
            offsets[i] = 0
            continue
        bans = [f for j in order[:k] if buffers[j].meets(b) and buffers[j].size
                for f in _forbidden(i, j, buffers, offsets, pairs)]
        if k == 0:
            offsets[i] = 0
            lo_all, hi_all = 0, b.size
            continue
        cands = {_align_down(lo_all), _align_up(hi_all - b.size)}
        for lo, hi in bans:
            cands.update((_align_down(lo), _align_up(hi)))
        best = None
        for o in cands:
            if any(lo < o < hi for lo, hi in bans):
                continue
            extent = max(hi_all, o + b.size) - min(lo_all, o)
            gap_lo = max([hi for lo, hi in bans if hi <= o], default=-(1 << 60))
            gap_hi = min([lo for lo, hi in bans if lo >= o], default=1 << 60)
            key = (extent, gap_hi - gap_lo, abs(o), o)
            if best is None or key < best[0]:
                best = (key, o)
        o = best[1]
        offsets[i] = o
        lo_all, hi_all = min(lo_all, o), max(hi_all, o + b.size)
    base = min((o for o, b in zip(offsets, buffers, strict=True) if b.size), default=0)
    final = tuple(o - base for o in offsets)
    arena = max((o + b.size for o, b in zip(final, buffers, strict=True)), default=0)
    return Plan(tuple(buffers), final, _align_up(arena), dict(pairs))


def _check(ok: bool, msg: str) -> None:
    if not ok:
        raise AssertionError(msg)


def verify(plan: Plan) -> None:
    """Raise AssertionError unless no two buffers alive together overlap, other than in-place
    pairs within their kernel's shifts, with one consistent visiting order per op."""
    n = len(plan.buffers)
    for a in range(n):
        ba, oa = plan.buffers[a], plan.offsets[a]
        _check(oa % ALIGN == 0 and oa >= 0 and oa + ba.size <= plan.arena_bytes, f"buffer {a} outside the arena")
        for b in range(a + 1, n):
            bb = plan.buffers[b]
            if not (ba.size and bb.size and ba.meets(bb) and plan.overlaps(a, b)):
                continue
            pair = (a, b) if (a, b) in plan.pairs else (b, a) if (b, a) in plan.pairs else None
            _check(pair is not None, f"buffers {a} {ba} and {b} {bb} overlap while both alive")
            pos, sh = plan.pairs[pair]
            shift = plan.offsets[pair[0]] - plan.offsets[pair[1]]
            if sh.exact and shift == 0:
                continue
            if plan.direction(pos) == "rev":  # one visiting order per op serves all its overlaps
                _check(shift >= sh.rev, f"op {pos}: buffers {pair} overlap unsafely in reverse order")
            else:
                _check(shift <= sh.fwd, f"op {pos}: buffers {pair} overlap unsafely in forward order")
