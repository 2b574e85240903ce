"""SPB metadata: ``struct superpageblock`` and the zone's SPB fields as arrays.

Details: docs/spb.md ("Module notes", `spbsim.mm.spb.state`).
"""
from collections import namedtuple

import numpy as np

from ..const import (MAX_NR_ZONES, SUPERPAGEBLOCK_NR_PAGES,
                     SUPERPAGEBLOCK_ORDER, pageblock_nr_pages, pageblock_order)
from ..const import MIGRATE_PCPTYPES, NR_PAGE_ORDERS
from ..list import list_add_tail
from ..state import NR_CUR, TL_CAPACITY, TL_WIDTH
from .params import (NR_PEND, NR_SPB_OUTCOMES, SPB_HINT_CPUS, SPB_VISIT_HIST, NR_SPB_CFG, NR_SPB_LISTS, NR_SPB_STATS, SB_FULL,
                     SB_TAINTED, NR_SB_FULLNESS, SPB_CFG_DEFRAG,
                     SPB_CFG_RESERVE, SPB_CFG_UNTAINT, SPB_CFG_UPDATE,
                     SPB_DEFRAG_OFF, SPB_NEVER_NS, SPB_RESERVE_STATIC,
                     SPB_UNTAINT_S1, SPB_UPDATE_S1)

__all__ = ["SPB", "new_spb", "dummy_spb", "init_spb_from_mem", "spb_slots", "spb_bytes"]

SPB = namedtuple("SPB", [
    # ---- per slot: struct superpageblock [S1 §2.1] ----
    "start_pfn",           # int64: 1 GiB-aligned first pfn (may lie outside the zone)
    "zone",                # int8: owning zone
    "total_pageblocks",    # int32: zone-clipped pageblock count (pages rounded up)
    "nr_free",             # int32: pageblocks with PB_all_free
    "nr_unmovable",        # int32: pageblocks with PB_has_unmovable
    "nr_reclaimable",      # int32: pageblocks with PB_has_reclaimable
    "nr_movable",          # int32: pageblocks with PB_has_movable
    "nr_reserved",         # int32: holes (pageblocks never initialised)
    "nr_free_pages",       # int64: free pages in buddies of this SPB
    "contig_allocated",    # uint8: taken whole by a contiguous allocation [S v2 17/40]
    # list links and the cached (category, fullness)
    "list_next", "list_prev",   # int32 slots, -1 = end
    "list_id",             # int8: list the slot is on, SPB_LIST_NONE if none
    "cat", "full",         # int8: category and bucket it was filed under
    # per-SPB defrag worker [S v2 15/40, v1 43/45]
    "defrag_state",        # int8: SPB_DEFRAG_IDLE / QUEUED / RUNNING
    "defrag_queued_ns",    # int64: when spb_maybe_start_defrag() queued it
    "defrag_last_run_ns",  # int64: end of the last run
    "defrag_last_no_progress_ns",  # int64: defrag_last_no_progress_jiffies
    "defrag_start_nr_free",        # int32: nr_free when the running pass began
    # ---- per zone: struct zone fields [S1 §2.3, S §2.4] ----
    "zone_base",           # int64: superpageblock_base_pfn >> SUPERPAGEBLOCK_ORDER
    "zone_first",          # int64: first slot of the zone
    "zone_count",          # int64: nr_superpageblocks
    "list_head", "list_tail", "list_nr",   # int32/int32/int64 [zone, list]
    "nr_tainted_spbs",     # int64: SPBs on spb_lists[SB_TAINTED][*]
    "stat",                # int64 [zone, NR_SPB_STATS]
    # ---- switches: int64[NR_SPB_CFG] (params.SPB_CFG_*) ----
    "cfg",
    # ---- allocator state and statistics ----
    "outcome",             # int64[NR_SPB_OUTCOMES]: spb_alloc_walk outcomes (+ claim/steal/hint)
    "taint_by",            # int64[NR_SPB_OUTCOMES]: clean/empty -> tainted moves, by pass in progress
    "visit_hist",          # int64[SPB_VISIT_HIST]: SPBs visited per __rmqueue_smallest
    "cur_pass",            # int64[2]: [0] the pass running now (attributes taint moves)
    "hint_zone",           # int32[zone, order, PCPTYPES]: PASS_1 hint slot, -1 none
    "hint_cpu",            # int32[cpu, zone, order, PCPTYPES]: per-CPU hint slot, -1 none
    "pend",                # int64[NR_PEND]: pending background work (params.PEND_*)
    "scratch",             # int32[max(512, slots)]: work space of the defrag pick
    # ---- shared with the machine state (mm_init.new_mem) ----
    "tl", "tl_n",          # the taint log and its [records, dropped] (mm.state.TL_*)
    "req",                 # the machine's "current" context (mm.state.CUR_*)
])


def spb_slots(geometry):
    """Per zone (base, first slot, count) from Geometry.spb_base/spb_count."""
    base, first, count = [], [], []
    nxt = 0
    for z in range(MAX_NR_ZONES):
        n = int(geometry.spb_count[z]) if geometry.spb_count else 0
        base.append(int(geometry.spb_base[z]) if n else 0)
        first.append(nxt)
        count.append(n)
        nxt += n
    return base, first, count


def _clip_pageblocks(start, zs, ze):
    lo, hi = max(start, zs), min(start + SUPERPAGEBLOCK_NR_PAGES, ze)
    if hi <= lo:
        return 0
    return (hi - lo + pageblock_nr_pages - 1) >> pageblock_order


def new_spb(geometry, update=SPB_UPDATE_S1, untaint=SPB_UNTAINT_S1,
            reserve=SPB_RESERVE_STATIC, defrag=SPB_DEFRAG_OFF, hint_cpus=1):
    """setup_superpageblocks() + init_one_superpageblock() [S1 §11].

    Each SPB gets ``total_pageblocks = nr_reserved`` = its zone overlap in
    pageblocks (pages rounded up), other counters 0, and an SPB with at least
    one pageblock is put on ``spb_lists[SB_TAINTED][SB_FULL]`` in slot order,
    as S1 boots.  (That list is not what sb_get_fullness() would compute; the
    state is consistent only after init_spb_from_mem(), which plays the part of
    init_pageblock_migratetype() and the boot frees.)
    """
    base, first, count = spb_slots(geometry)
    n = sum(count)
    Z = MAX_NR_ZONES
    start = np.zeros(n, np.int64)
    zone = np.full(n, -1, np.int8)
    total = np.zeros(n, np.int32)
    for z in range(Z):
        for k in range(count[z]):
            i = first[z] + k
            start[i] = (base[z] + k) << SUPERPAGEBLOCK_ORDER
            zone[i] = z
            total[i] = _clip_pageblocks(int(start[i]), int(geometry.zone_start[z]),
                                        int(geometry.zone_end[z]))
    cfg = np.zeros(NR_SPB_CFG, np.int64)
    cfg[SPB_CFG_UPDATE] = update
    cfg[SPB_CFG_UNTAINT] = untaint
    cfg[SPB_CFG_RESERVE] = reserve
    cfg[SPB_CFG_DEFRAG] = defrag
    # the [U] amounts start at their [SIM] defaults (a preset sets them again)
    from .params import SPB_PRESETS, SPB_SWITCHES
    for name, (idx, kind) in SPB_SWITCHES.items():
        if isinstance(kind, tuple):
            cfg[idx] = SPB_PRESETS["v1"][name]
    s = SPB(
        start_pfn=start, zone=zone, total_pageblocks=total,
        nr_free=np.zeros(n, np.int32), nr_unmovable=np.zeros(n, np.int32),
        nr_reclaimable=np.zeros(n, np.int32), nr_movable=np.zeros(n, np.int32),
        nr_reserved=total.copy(), nr_free_pages=np.zeros(n, np.int64),
        contig_allocated=np.zeros(n, np.uint8),
        list_next=np.full(n, -1, np.int32), list_prev=np.full(n, -1, np.int32),
        list_id=np.full(n, -1, np.int8),
        cat=np.full(n, SB_TAINTED, np.int8), full=np.full(n, SB_FULL, np.int8),
        defrag_state=np.zeros(n, np.int8),
        defrag_queued_ns=np.full(n, SPB_NEVER_NS, np.int64),
        defrag_last_run_ns=np.full(n, SPB_NEVER_NS, np.int64),
        defrag_last_no_progress_ns=np.full(n, SPB_NEVER_NS, np.int64),
        defrag_start_nr_free=np.zeros(n, np.int32),
        zone_base=np.array(base, np.int64), zone_first=np.array(first, np.int64),
        zone_count=np.array(count, np.int64),
        list_head=np.full((Z, NR_SPB_LISTS), -1, np.int32),
        list_tail=np.full((Z, NR_SPB_LISTS), -1, np.int32),
        list_nr=np.zeros((Z, NR_SPB_LISTS), np.int64),
        nr_tainted_spbs=np.zeros(Z, np.int64),
        stat=np.zeros((Z, NR_SPB_STATS), np.int64),
        cfg=cfg,
        outcome=np.zeros(NR_SPB_OUTCOMES, np.int64),
        taint_by=np.zeros(NR_SPB_OUTCOMES, np.int64),
        visit_hist=np.zeros(SPB_VISIT_HIST, np.int64),
        cur_pass=np.zeros(2, np.int64),
        hint_zone=np.full((Z, NR_PAGE_ORDERS, MIGRATE_PCPTYPES), -1, np.int32),
        hint_cpu=np.full((hint_cpus, Z, NR_PAGE_ORDERS, MIGRATE_PCPTYPES), -1, np.int32),
        pend=np.zeros(NR_PEND, np.int64),
        scratch=np.zeros(max(SUPERPAGEBLOCK_NR_PAGES >> pageblock_order, n), np.int32),
        tl=np.zeros((TL_CAPACITY, TL_WIDTH), np.int64),
        tl_n=np.zeros(2, np.int64),
        req=np.zeros(NR_CUR, np.int64),
    )
    tainted_full = SB_TAINTED * NR_SB_FULLNESS + SB_FULL
    for i in range(n):
        if total[i] > 0:
            _py_add_tail(s, int(zone[i]), tainted_full, i)
            s.nr_tainted_spbs[zone[i]] += 1
    return s


def _py_add_tail(s, z, lid, i):
    list_add_tail.py_func(s.list_next, s.list_prev, s.list_head, s.list_tail, (z, lid), i)
    s.list_nr[z, lid] += 1
    s.list_id[i] = lid


def init_spb_from_mem(spb, mem):
    """Counters and lists from the booted machine's pageblock state.

    The net effect of init_pageblock_migratetype() (``nr_reserved--`` and
    ``PB_has_<mt>`` per initialised pageblock) and of the boot frees
    (mark_pageblock_free(): fully free blocks lose their PB_has_* bits and
    count in ``nr_free``) [S1 §11]: every counter is recounted from
    ``pb_flags``; pageblocks of the zone span that are not present (holes,
    ``pb_zone != z``) count in ``nr_reserved``; ``nr_free_pages`` sums the
    free buddies.  Then every slot is filed in slot order ([SIM]: the kernel's
    order after boot depends on the order of boot-time updates).  Defrag state
    and statistics are reset.
    """
    from .recount import spb_recount_all
    from .lists import spb_rebuild_lists
    spb_recount_all(spb, mem)
    spb.defrag_state[:] = 0
    spb.defrag_queued_ns[:] = SPB_NEVER_NS
    spb.defrag_last_run_ns[:] = SPB_NEVER_NS
    spb.defrag_last_no_progress_ns[:] = SPB_NEVER_NS
    spb.defrag_start_nr_free[:] = 0
    spb.contig_allocated[:] = 0
    spb_rebuild_lists(spb)
    spb.stat[:] = 0
    spb.outcome[:] = 0
    spb.taint_by[:] = 0
    spb.visit_hist[:] = 0
    spb.hint_zone[:] = -1
    spb.hint_cpu[:] = -1
    spb.pend[:] = 0
    return spb


def spb_bytes(spb):
    """Bytes of SPB metadata (all arrays)."""
    return int(sum(a.nbytes for a in spb))


class _NoGeometry:
    """A geometry with no SPBs (stock machines carry a 0-slot SPB)."""
    spb_count = None
    spb_base = None
    zone_start = [0] * MAX_NR_ZONES
    zone_end = [0] * MAX_NR_ZONES


def dummy_spb():
    """An SPB state with no slots: stock machines carry it so that compiled code
    has one machine type; nothing reads it while the SPB allocator is off."""
    return new_spb(_NoGeometry())
