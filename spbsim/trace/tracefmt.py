"""Render kmem events as tracefs text, byte for byte as a 6.12 kernel prints them.

The line context follows kernel/trace/trace_output.c ``trace_print_context``,
then the TP_printk text of include/trace/events/kmem.h.  ``page=%p`` is a
deterministic fake hash (:func:`fake_page_hash`) unless a ``page`` string is
passed.  Inputs: records of :mod:`spbsim.trace.ftrace` (:func:`format_event`),
its batches (:func:`format_batch`) or the engine's int64 event log
(:func:`format_ev_log`, columns of ``spbsim.mm.state``).
"""
from __future__ import annotations

from typing import Iterator

import numpy as np

from spbsim.mm.gfp import format_gfp
from spbsim.trace.ftrace import (
    MM_PAGE_ALLOC, MM_PAGE_ALLOC_EXTFRAG, MM_PAGE_ALLOC_ZONE_LOCKED, MM_PAGE_FREE,
    MM_PAGE_FREE_BATCHED, MM_PAGE_PCPU_DRAIN, LostEvents,
    MmPageAlloc, MmPageAllocExtfrag, MmPageAllocZoneLocked, MmPageFree, MmPageFreeBatched,
    MmPagePcpuDrain, OtherEvent, TraceBatch, TraceEvent, TracingMarkWrite,
)

__all__ = [
    "NULL_PAGE", "fake_page_hash", "format_header", "format_line",
    "format_mm_page_alloc", "format_mm_page_free", "format_mm_page_free_batched",
    "format_mm_page_alloc_zone_locked", "format_mm_page_pcpu_drain",
    "format_mm_page_alloc_extfrag", "format_event", "format_batch", "format_ev_log",
]

NULL_PAGE = "0000000000000000"


def fake_page_hash(pfn: int) -> str:
    """A stable stand-in for the hashed ``struct page *`` of ``pfn`` (never all zero)."""
    h = (int(pfn) * 0x9E3779B1 + 0x7F4A7C15) & 0xFFFFFFFF
    h ^= h >> 15
    h = (h * 0x2C1B3C6D) & 0xFFFFFFFF
    h ^= h >> 12
    return f"{h or 1:016x}"


def _page(pfn, page):
    return fake_page_hash(pfn) if page is None else page


def format_header(comm: str, pid: int, cpu: int, flags: str, ts: float) -> str:
    """``<comm>-<pid> [cpu] flags  secs.usecs`` (no trailing ': ')."""
    usecs = int(float(ts) * 1e6 + 0.5)         # ns2usecs rounds half up
    secs, usec = divmod(usecs, 1_000_000)
    return f"{comm:>16}-{pid:<7} [{cpu:03d}] {flags} {secs:5d}.{usec:06d}" if flags \
        else f"{comm:>16}-{pid:<7} [{cpu:03d}]  {secs:5d}.{usec:06d}"


def format_line(comm: str, pid: int, cpu: int, flags: str, ts: float, event: str,
                text: str) -> str:
    """A whole line without the newline."""
    return f"{format_header(comm, pid, cpu, flags, ts)}: {event}: {text}"


def format_mm_page_alloc(pfn, order, migratetype, gfp_flags, failed=False, page=None) -> str:
    """``page=%p pfn=0x%lx order=%d migratetype=%d gfp_flags=%s``."""
    if failed:
        page, pfn = NULL_PAGE, 0
    return (f"page={_page(pfn, page)} pfn={int(pfn):#x} order={int(order)} "
            f"migratetype={int(migratetype)} gfp_flags={format_gfp(int(gfp_flags))}")


def format_mm_page_free(pfn, order, page=None) -> str:
    """``page=%p pfn=0x%lx order=%d``."""
    return f"page={_page(pfn, page)} pfn={int(pfn):#x} order={int(order)}"


def format_mm_page_free_batched(pfn, page=None) -> str:
    """``page=%p pfn=0x%lx order=0`` (the order is a constant in the format)."""
    return f"page={_page(pfn, page)} pfn={int(pfn):#x} order=0"


def format_mm_page_alloc_zone_locked(pfn, order, migratetype, percpu_refill, page=None) -> str:
    """``page=%p pfn=0x%lx order=%u migratetype=%d percpu_refill=%d``."""
    return (f"page={_page(pfn, page)} pfn={int(pfn):#x} order={int(order)} "
            f"migratetype={int(migratetype)} percpu_refill={int(percpu_refill)}")


def format_mm_page_pcpu_drain(pfn, order, migratetype, page=None) -> str:
    """``page=%p pfn=0x%lx order=%d migratetype=%d``."""
    return (f"page={_page(pfn, page)} pfn={int(pfn):#x} order={int(order)} "
            f"migratetype={int(migratetype)}")


def format_mm_page_alloc_extfrag(pfn, alloc_order, fallback_order, pageblock_order,
                                 alloc_migratetype, fallback_migratetype, fragmenting=None,
                                 change_ownership=0, page=None) -> str:
    """The extfrag text; ``fragmenting`` defaults to ``fallback_order < pageblock_order``."""
    if fragmenting is None or fragmenting < 0:
        fragmenting = int(fallback_order < pageblock_order)
    return (f"page={_page(pfn, page)} pfn={int(pfn):#x} alloc_order={int(alloc_order)} "
            f"fallback_order={int(fallback_order)} pageblock_order={int(pageblock_order)} "
            f"alloc_migratetype={int(alloc_migratetype)} "
            f"fallback_migratetype={int(fallback_migratetype)} "
            f"fragmenting={int(fragmenting)} change_ownership={int(change_ownership)}")


def _event_text(ev: TraceEvent, page) -> tuple[str, str]:
    if isinstance(ev, MmPageAlloc):
        return ev.name, format_mm_page_alloc(ev.pfn, ev.order, ev.migratetype, ev.gfp_flags,
                                             ev.failed, page)
    if isinstance(ev, MmPageFree):
        return ev.name, format_mm_page_free(ev.pfn, ev.order, page)
    if isinstance(ev, MmPageFreeBatched):
        return ev.name, format_mm_page_free_batched(ev.pfn, page)
    if isinstance(ev, MmPageAllocZoneLocked):
        return ev.name, format_mm_page_alloc_zone_locked(ev.pfn, ev.order, ev.migratetype,
                                                         ev.percpu_refill, page)
    if isinstance(ev, MmPagePcpuDrain):
        return ev.name, format_mm_page_pcpu_drain(ev.pfn, ev.order, ev.migratetype, page)
    if isinstance(ev, MmPageAllocExtfrag):
        return ev.name, format_mm_page_alloc_extfrag(
            ev.pfn, ev.alloc_order, ev.fallback_order, ev.pageblock_order,
            ev.alloc_migratetype, ev.fallback_migratetype, ev.fragmenting,
            ev.change_ownership, page)
    if isinstance(ev, TracingMarkWrite):
        return ev.name, ev.text
    if isinstance(ev, OtherEvent):
        return ev.event, ev.text
    raise TypeError(f"cannot format {type(ev).__name__}")


def format_event(ev: TraceEvent, *, page: str | None = None, comm: str | None = None,
                 pid: int | None = None, cpu: int | None = None, flags: str | None = None,
                 ts: float | None = None) -> str:
    """One tracefs line for a record; header fields default to the record's own."""
    if isinstance(ev, LostEvents):
        return f"CPU:{ev.cpu} [LOST {ev.count} EVENTS]"
    name, text = _event_text(ev, page)
    return format_line(ev.comm if comm is None else comm, ev.pid if pid is None else pid,
                       ev.cpu if cpu is None else cpu, ev.flags if flags is None else flags,
                       ev.ts if ts is None else ts, name, text)


def _row_text(kind, pfn, order, a, b, c, d, pageblock_order, fragmenting):
    """Text of one kmem row (batch or log columns, already unpacked to ints)."""
    if kind == MM_PAGE_ALLOC:          # a=gfp b=migratetype c=failed
        return format_mm_page_alloc(pfn, order, b, a, bool(c))
    if kind == MM_PAGE_FREE:
        return format_mm_page_free(pfn, order)
    if kind == MM_PAGE_FREE_BATCHED:
        return format_mm_page_free_batched(pfn)
    if kind == MM_PAGE_ALLOC_ZONE_LOCKED:  # a=migratetype b=percpu_refill
        return format_mm_page_alloc_zone_locked(pfn, order, a, b)
    if kind == MM_PAGE_PCPU_DRAIN:     # a=migratetype
        return format_mm_page_pcpu_drain(pfn, order, a)
    if kind == MM_PAGE_ALLOC_EXTFRAG:  # a=fallback_order b=alloc_mt c=fallback_mt d=change_own
        return format_mm_page_alloc_extfrag(pfn, order, a, pageblock_order, b, c,
                                            fragmenting, d)
    raise ValueError(f"not a kmem kind: {kind}")


_NAMES = {MM_PAGE_ALLOC: "mm_page_alloc", MM_PAGE_FREE: "mm_page_free",
          MM_PAGE_FREE_BATCHED: "mm_page_free_batched",
          MM_PAGE_ALLOC_ZONE_LOCKED: "mm_page_alloc_zone_locked",
          MM_PAGE_PCPU_DRAIN: "mm_page_pcpu_drain",
          MM_PAGE_ALLOC_EXTFRAG: "mm_page_alloc_extfrag"}


def format_batch(batch: TraceBatch, *, flags: str = ".....") -> Iterator[str]:
    """Lines for every row of a reader batch (batches carry no flags: one for all)."""
    ev = batch.events
    for i in range(len(ev)):
        r = ev[i]
        kind = int(r["kind"])
        if kind in _NAMES:
            if kind == MM_PAGE_ALLOC:
                args = (r["gfp"], r["migratetype"], r["failed"], 0)
            elif kind == MM_PAGE_ALLOC_ZONE_LOCKED:
                args = (r["migratetype"], r["percpu_refill"], 0, 0)
            elif kind == MM_PAGE_ALLOC_EXTFRAG:
                args = (r["fallback_order"], r["migratetype"], r["fallback_migratetype"],
                        r["change_ownership"])
            else:
                args = (r["migratetype"], 0, 0, 0)
            text = _row_text(kind, int(r["pfn"]), int(r["order"]), *map(int, args),
                             int(r["pageblock_order"]), int(r["fragmenting"]))
            yield format_line(batch.comms[r["comm"]], int(r["pid"]), int(r["cpu"]), flags,
                              float(r["ts"]), _NAMES[kind], text)
        else:
            yield format_event(batch.records[int(r["aux"])], flags=flags)


def format_ev_log(ev: np.ndarray, n: int | None = None, *, comm: str = "spbsim",
                  pid: int = 1, flags: str = ".....", pageblock_order: int = 9
                  ) -> Iterator[str]:
    """Lines for the engine's event log (rows: kind, ts_ns, cpu, pfn, order, a, b, c, d).

    Kinds are ``spbsim.mm.state.EV`` codes (equal to this reader's 0..4); ns are
    rounded to microseconds like ``ns2usecs``.
    """
    rows = ev if n is None else ev[:n]
    for kind, ts, cpu, pfn, order, a, b, c, d in rows.tolist():
        if kind in _SPB_NAMES:
            name, text = _SPB_NAMES[kind], _spb_text(kind, pfn, order, a, b, c, d)
        elif kind in _KTHREAD_NAMES:
            name, text = _KTHREAD_NAMES[kind], _kthread_text(kind, pfn, order, a, b, c, d)
        else:
            name, text = _NAMES[kind], _row_text(kind, pfn, order, a, b, c, d, pageblock_order, None)
        yield format_line(comm, pid, cpu, flags, (ts + 500) // 1000 / 1e6, name, text)


# ---- kswapd and kcompactd (include/trace/events/vmscan.h, compaction.h) ----
_KTHREAD_NAMES = {11: "mm_vmscan_kswapd_wake", 12: "mm_vmscan_kswapd_sleep",
                  13: "mm_compaction_kcompactd_wake", 14: "mm_compaction_begin",
                  15: "mm_compaction_end"}
#: include/trace/events/mmflags.h COMPACTION_STATUS, by spbsim.mm.compaction's codes
_COMPACT_STATUS = ("not_suitable_zone", "skipped", "deferred", "no_suitable_page", "continue",
                   "complete", "partial_skipped", "contended", "success")


def _kthread_text(kind, pfn, order, a, b, c, d):
    if kind == 11:
        return f"nid=0 order={order}"
    if kind == 12:
        return "nid=0"
    if kind == 13:
        return f"nid=0 order={order} highest_zoneidx={_zname(a):<8}"
    text = (f"zone_start=0x{pfn:x} migrate_pfn=0x{a:x} free_pfn=0x{b:x} zone_end=0x{c:x}, "
            f"mode={'sync' if order else 'async'}")
    if kind == 15:
        text += f" status={_pick(_COMPACT_STATUS, d & 0xff)}"
    return text


# ---- the SPB series' tracepoints (S2 header: names, fields and formats) ----
_SPB_NAMES = {5: "spb_alloc_walk", 6: "spb_claim_block_refused", 7: "spb_alloc_fall_through",
              8: "spb_alloc_atomic_relax", 9: "spb_evacuate_for_order_done", 10: "spb_pb_taint"}
_ZONES = ("DMA", "DMA32", "Normal", "Movable", "Device")
_OUTCOMES = ("NO_PAGE", "PASS_1", "PASS_2", "PASS_2B", "PASS_2C", "PASS_3", "PASS_4",
             "ZONE_FALLBACK", "PASS_2D")
_REFUSED = ("ISOLATE", "CMA", "ZONE_BOUNDARY", "CROSS_TYPE_NOT_FREE", "INSUFFICIENT_COMPAT")
_RELAX = ("NORETRY_SKIP", "ADD_TAINTED_OK", "DROP_NOFRAGMENT", "NOWARN_LOWER_ORDER")


def _zname(z):
    return _ZONES[z] if 0 <= z < len(_ZONES) else str(z)


def _pick(names, v):
    return names[v] if 0 <= v < len(names) else str(v)


def _spb_text(kind, pfn, order, a, b, c, d):
    """Text of an SPB tracepoint record (columns as in spbsim.mm.tracepoint)."""
    if kind == 5:
        return (f"zone={_zname(pfn)} order={order} mt={a} alloc_flags=0x{b:x} "
                f"outcome=SPB_ALLOC_OUTCOME_{_pick(_OUTCOMES, c)} n_spbs_visited={d}")
    if kind == 6:
        return (f"pfn=0x{pfn:x} start_type={order} block_type={a} "
                f"reason=SPB_CLAIM_REFUSED_{_pick(_REFUSED, b)}")
    if kind == 7:
        return (f"zone={_zname(pfn)} order={order} mt={a} n_tainted={b} "
                f"n_tainted_with_buddy={c} saw_free_pages={d & 1} saw_free_pb={(d >> 1) & 1} "
                f"saw_below_reserve={(d >> 2) & 1}")
    if kind == 8:
        return (f"zone={_zname(pfn)} order={order} mt={a} gfp_mask=0x{b:x} "
                f"step=SPB_ATOMIC_RELAX_{_pick(_RELAX, c)}")
    if kind == 9:
        return f"zone={_zname(pfn)} order={order} mt={a} p1={b} p2={c} did_evac={d}"
    return f"pfn=0x{pfn:x} mt={order} action={'SET' if a == 0 else 'CLEAR'} first_or_last={b}"
