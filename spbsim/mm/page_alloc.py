"""Allocation and free entry points (mm/page_alloc.c): watermarks,
get_page_from_freelist, rmqueue, the slow path, and the free path.

The slow path here is the part that needs no reclaim or compaction model:
MIN watermark, ALLOC_HIGHATOMIC, dropping NOFRAGMENT, highatomic unreserve
and pcp drain; direct reclaim and compaction plug in at the marked steps.
"""
from .buddy import (pageblock_set_has, pcp_allowed_order, rmqueue_smallest,
                    split_large_buddy)
from .const import (ALLOC_HIGHATOMIC, ALLOC_KSWAPD, ALLOC_MIN_RESERVE,
                    ALLOC_NO_WATERMARKS, ALLOC_NOFRAGMENT, ALLOC_NON_BLOCK,
                    ALLOC_OOM, ALLOC_RESERVES, ALLOC_WMARK_LOW,
                    ALLOC_WMARK_MASK, ALLOC_WMARK_MIN, ALLOC_CPUSET,
                    KV_6_12, MIGRATE_HIGHATOMIC, MIGRATE_ISOLATE,
                    MIGRATE_MOVABLE, MIGRATE_PCPTYPES, NR_PAGE_ORDERS,
                    MAX_NR_ZONES, PG_buddy, PG_head, PG_lru, PG_MT_SHIFT,
                    PG_pcp, PG_reserved, RMQUEUE_NORMAL, ZONE_BELOW_HIGH,
                    ZONE_BOOSTED_WATERMARK, ZONE_DMA, ZONE_DMA32, ZONE_NORMAL,
                    pageblock_order)
from .fallback import reserve_highatomic_pageblock, rmqueue, unreserve_highatomic_pageblock
from .jit import njit, njit_inline
from .pcp import drain_all_pages, free_unref_page_commit, rmqueue_pcplist
from .state import (CFG, CUR_CPU, SIMSTAT, VM_PGALLOC, VM_PGFREE, ZS_BOOST,
                    ZS_FLAGS, ZS_FREE_HIGHATOMIC, ZS_KSWAPD_WAKE, ZS_MANAGED,
                    ZS_NR_FREE, ZS_RESERVED_HIGHATOMIC, ZS_WMARK_HIGH,
                    ZS_WMARK_MIN)
from .tracepoint import EV_ALLOC, EV_FREE, trace_event
import numpy as np

_CFG_VERSION = CFG["version"]
_CFG_DEFRAG = CFG["defrag_mode"]
_CFG_PCP = CFG["pcp_enabled"]
_CFG_NOFRAG = CFG["nofragment"]
_SIM_REQ = SIMSTAT["sim_alloc_requests"]
_SIM_FAIL = SIMSTAT["sim_alloc_fail"]
_SIM_FREE = SIMSTAT["sim_free_requests"]
_SIM_SLOW = SIMSTAT["sim_slowpath"]
_SIM_NOFRAG_RETRY = SIMSTAT["sim_nofragment_retry"]

# gfp bits used here (spbsim.mm.gfp)
_GFP_DMA = 0x01
_GFP_DMA32 = 0x04
_GFP_MOVABLE = 0x08
_GFP_RECLAIMABLE = 0x10
_GFP_HIGH = 0x20
_GFP_DIRECT_RECLAIM = 0x400
_GFP_KSWAPD_RECLAIM = 0x800
_GFP_NOMEMALLOC = 0x80000

# free_pages() error codes, translated into exceptions by the Python layer
EFREE_RANGE = -1
EFREE_NOT_ALLOCATED = -2
EFREE_ORDER = -3


@njit_inline
def gfp_migratetype(gfp):
    return (gfp & (_GFP_RECLAIMABLE | _GFP_MOVABLE)) >> 3


@njit_inline
def gfp_zone(gfp):
    """gfp_zone(): highest zone index the request may use."""
    if gfp & _GFP_DMA:
        return ZONE_DMA
    if gfp & _GFP_DMA32:
        return ZONE_DMA32
    return ZONE_NORMAL


@njit_inline
def populated_zone(m, z):
    return m.zstat[z, ZS_MANAGED] > 0


@njit_inline
def preferred_zone(m, highest_zoneidx):
    """first_zones_zonelist(): the highest populated zone not above highest_zoneidx."""
    for z in range(highest_zoneidx, -1, -1):
        if populated_zone(m, z):
            return z
    return -1


# ---------------------------------------------------------------- watermarks

@njit_inline
def wmark_pages(m, z, i):
    """wmark_pages(): _watermark[i] + watermark_boost."""
    return m.zstat[z, ZS_WMARK_MIN + i] + m.zstat[z, ZS_BOOST]


@njit_inline
def zone_watermark_unusable_free(m, z, order, alloc_flags):
    """__zone_watermark_unusable_free(); v6.12 subtracts the whole reserve."""
    unusable = (1 << order) - 1
    if (alloc_flags & ALLOC_RESERVES) == 0:
        if m.cfg[_CFG_VERSION] == KV_6_12:
            unusable += m.zstat[z, ZS_RESERVED_HIGHATOMIC]
        else:
            unusable += m.zstat[z, ZS_FREE_HIGHATOMIC]
    return unusable


@njit_inline
def zone_watermark_ok(m, z, order, mark, highest_zoneidx, alloc_flags, free_pages):
    """__zone_watermark_ok(): free pages above mark + lowmem_reserve, and for
    order > 0 a free block of at least that order on any pcptype list."""
    free_pages -= zone_watermark_unusable_free(m, z, order, alloc_flags)
    mn = mark
    if alloc_flags & ALLOC_RESERVES:
        if alloc_flags & ALLOC_MIN_RESERVE:
            mn -= mn // 2
            if alloc_flags & ALLOC_NON_BLOCK:
                mn -= mn // 4
        if alloc_flags & ALLOC_OOM:
            mn -= mn // 2
    if free_pages <= mn + m.lowmem_reserve[z, highest_zoneidx]:
        return False
    if order == 0:
        return True
    for o in range(order, NR_PAGE_ORDERS):
        if m.nr_free[z, o] == 0:
            continue
        for mt in range(MIGRATE_PCPTYPES):
            if m.fa_nr[z, o, mt] > 0:
                return True
        if (alloc_flags & (ALLOC_HIGHATOMIC | ALLOC_OOM)) and m.fa_nr[z, o, MIGRATE_HIGHATOMIC] > 0:
            return True
    return False


@njit_inline
def zone_watermark_fast(m, z, order, mark, highest_zoneidx, alloc_flags):
    """zone_watermark_fast(): order-0 shortcut, and the boost-free MIN retry."""
    free_pages = m.zstat[z, ZS_NR_FREE]
    if order == 0:
        reserved = zone_watermark_unusable_free(m, z, 0, alloc_flags)
        usable = free_pages - min(free_pages, reserved)
        if usable > mark + m.lowmem_reserve[z, highest_zoneidx]:
            return True
    if zone_watermark_ok(m, z, order, mark, highest_zoneidx, alloc_flags, free_pages):
        return True
    if (order == 0 and (alloc_flags & ALLOC_MIN_RESERVE) and m.zstat[z, ZS_BOOST] > 0
            and (alloc_flags & ALLOC_WMARK_MASK) == ALLOC_WMARK_MIN):
        return zone_watermark_ok(m, z, order, m.zstat[z, ZS_WMARK_MIN], highest_zoneidx,
                                 alloc_flags, free_pages)
    return False


@njit_inline
def wakeup_kswapd(m, z, order, highest_zoneidx):
    """wakeup_kswapd(): counted here; the reclaim it starts belongs to the engine."""
    m.zstat[z, ZS_KSWAPD_WAKE] += 1


# ---------------------------------------------------------------- rmqueue

@njit
def rmqueue_buddy(m, z, order, alloc_flags, mt):
    """rmqueue_buddy(): HIGHATOMIC first for ALLOC_HIGHATOMIC, then __rmqueue, then
    HIGHATOMIC as a last resort for OOM/NON_BLOCK requests."""
    page = -1
    if alloc_flags & ALLOC_HIGHATOMIC:
        page = rmqueue_smallest(m, z, order, MIGRATE_HIGHATOMIC)
    if page < 0:
        page, _mode = rmqueue(m, z, order, mt, alloc_flags, RMQUEUE_NORMAL)
        if page < 0 and (alloc_flags & (ALLOC_OOM | ALLOC_NON_BLOCK)):
            page = rmqueue_smallest(m, z, order, MIGRATE_HIGHATOMIC)
    return page


@njit_inline
def rmqueue_zone(m, z, order, alloc_flags, mt, cpu):
    """rmqueue(): pcp for pcp orders, else (or on pcp failure) the buddy lists."""
    page = -1
    if m.cfg[_CFG_PCP] != 0 and pcp_allowed_order(order):
        page = rmqueue_pcplist(m, z, cpu, order, mt, alloc_flags)
    if page < 0:
        page = rmqueue_buddy(m, z, order, alloc_flags, mt)
    if (alloc_flags & ALLOC_KSWAPD) and (m.zstat[z, ZS_FLAGS] & ZONE_BOOSTED_WATERMARK):
        m.zstat[z, ZS_FLAGS] &= ~ZONE_BOOSTED_WATERMARK
        wakeup_kswapd(m, z, 0, z)
    return page


@njit_inline
def get_page_from_freelist(m, order, alloc_flags, highest_zoneidx, mt, cpu):
    """get_page_from_freelist(): walk the zonelist from the preferred zone down;
    if NOFRAGMENT found nothing (and not defrag_mode) rescan without it."""
    while True:
        no_fallback = alloc_flags & ALLOC_NOFRAGMENT
        for z in range(highest_zoneidx, -1, -1):
            if not populated_zone(m, z):
                continue
            ok = False
            if (m.zstat[z, ZS_FLAGS] & ZONE_BELOW_HIGH) == 0:
                if zone_watermark_fast(m, z, order, wmark_pages(m, z, 2), highest_zoneidx, alloc_flags):
                    ok = True
                else:
                    m.zstat[z, ZS_FLAGS] |= ZONE_BELOW_HIGH
            if not ok:
                mark = wmark_pages(m, z, alloc_flags & ALLOC_WMARK_MASK)
                if zone_watermark_fast(m, z, order, mark, highest_zoneidx, alloc_flags):
                    ok = True
                elif alloc_flags & ALLOC_NO_WATERMARKS:
                    ok = True
            if not ok:
                continue
            page = rmqueue_zone(m, z, order, alloc_flags, mt, cpu)
            if page >= 0:
                if alloc_flags & ALLOC_HIGHATOMIC:
                    reserve_highatomic_pageblock(m, z, page, order)
                return page
        if no_fallback and m.cfg[_CFG_DEFRAG] == 0:
            alloc_flags &= ~ALLOC_NOFRAGMENT
            m.sim[_SIM_NOFRAG_RETRY] += 1
            continue
        return -1


@njit
def get_page_from_freelist_call(m, order, alloc_flags, highest_zoneidx, mt, cpu):
    """get_page_from_freelist() as a call, for the slow path (keeps one inlined
    copy on the fast path only)."""
    return get_page_from_freelist(m, order, alloc_flags, highest_zoneidx, mt, cpu)


@njit_inline
def alloc_flags_nofragment(m, pref_zone, gfp):
    """alloc_flags_nofragment(): ALLOC_KSWAPD from the gfp, plus NOFRAGMENT in
    defrag_mode or when the preferred zone is Normal (DMA32 below it)."""
    alloc_flags = ALLOC_KSWAPD if (gfp & _GFP_KSWAPD_RECLAIM) else 0
    if m.cfg[_CFG_DEFRAG] != 0:
        return alloc_flags | ALLOC_NOFRAGMENT
    if m.cfg[_CFG_NOFRAG] != 0 and pref_zone == ZONE_NORMAL:
        alloc_flags |= ALLOC_NOFRAGMENT
    return alloc_flags


@njit
def gfp_to_alloc_flags(m, gfp, order):
    """gfp_to_alloc_flags(): the slow path's flags."""
    alloc_flags = ALLOC_WMARK_MIN | ALLOC_CPUSET
    if gfp & _GFP_HIGH:
        alloc_flags |= ALLOC_MIN_RESERVE
    if gfp & _GFP_KSWAPD_RECLAIM:
        alloc_flags |= ALLOC_KSWAPD
    if (gfp & _GFP_DIRECT_RECLAIM) == 0 and (gfp & _GFP_NOMEMALLOC) == 0:
        alloc_flags |= ALLOC_NON_BLOCK
        if order > 0 and (alloc_flags & ALLOC_MIN_RESERVE):
            alloc_flags |= ALLOC_HIGHATOMIC
    if m.cfg[_CFG_DEFRAG] != 0:
        alloc_flags |= ALLOC_NOFRAGMENT
    return alloc_flags


@njit
def wake_all_kswapds(m, order, highest_zoneidx):
    for z in range(highest_zoneidx, -1, -1):
        if populated_zone(m, z):
            wakeup_kswapd(m, z, order, highest_zoneidx)


@njit
def alloc_pages_slowpath(m, order, gfp, highest_zoneidx, mt, cpu):
    """__alloc_pages_slowpath(), without reclaim and compaction (engine hooks).

    1. MIN watermark (+ reserves for atomic) without NOFRAGMENT;
    2. [direct compaction, async]  -- engine;
    3. [direct reclaim]            -- engine; on failure unreserve highatomic
       and drain the pcp lists, retry;
    4. should_reclaim_retry gives up: force-unreserve highatomic, retry;
    5. defrag_mode: drop NOFRAGMENT, retry.
    """
    m.sim[_SIM_SLOW] += 1
    alloc_flags = gfp_to_alloc_flags(m, gfp, order)
    if alloc_flags & ALLOC_KSWAPD:
        wake_all_kswapds(m, order, highest_zoneidx)
    page = get_page_from_freelist_call(m, order, alloc_flags, highest_zoneidx, mt, cpu)
    if page >= 0 or (gfp & _GFP_DIRECT_RECLAIM) == 0:
        return page
    unreserve_highatomic_pageblock(m, highest_zoneidx, mt, False)
    drain_all_pages(m)
    page = get_page_from_freelist_call(m, order, alloc_flags, highest_zoneidx, mt, cpu)
    if page >= 0:
        return page
    if unreserve_highatomic_pageblock(m, highest_zoneidx, mt, True):
        page = get_page_from_freelist_call(m, order, alloc_flags, highest_zoneidx, mt, cpu)
        if page >= 0:
            return page
    if alloc_flags & ALLOC_NOFRAGMENT:
        page = get_page_from_freelist_call(m, order, alloc_flags & ~ALLOC_NOFRAGMENT,
                                      highest_zoneidx, mt, cpu)
    return page


@njit_inline
def prep_new_page(m, pfn, order, mt, owner):
    """Hand the block to its user: head flag, order, type, LRU for movable."""
    f = PG_head | (mt << PG_MT_SHIFT)
    if mt == MIGRATE_MOVABLE:
        f |= PG_lru
    m.pg_flags[pfn] = f
    m.pg_order[pfn] = order
    m.pg_owner[pfn] = owner
    # [SIM] also mark the request type: pcp pages can be reused by a type
    # other than the list they were taken for after their block was claimed.
    pageblock_set_has(m, pfn, order, mt)


@njit_inline
def alloc_pages(m, order, gfp, cpu, owner):
    """__alloc_pages(): fast path then slow path; returns the pfn or -1."""
    m.cur[CUR_CPU] = cpu
    m.sim[_SIM_REQ] += 1
    mt = gfp_migratetype(gfp)
    highest = gfp_zone(gfp)
    pref = preferred_zone(m, highest)
    page = -1
    if pref >= 0:
        alloc_flags = ALLOC_WMARK_LOW | alloc_flags_nofragment(m, pref, gfp)
        page = get_page_from_freelist(m, order, alloc_flags, highest, mt, cpu)
        if page < 0:
            page = alloc_pages_slowpath(m, order, gfp, highest, mt, cpu)
    if page >= 0:
        prep_new_page(m, page, order, mt, owner)
        m.vm[VM_PGALLOC + m.pb_zone[page >> pageblock_order]] += 1 << order
        trace_event(m, EV_ALLOC, page, order, gfp, mt, 0, 0)
    else:
        m.sim[_SIM_FAIL] += 1
        trace_event(m, EV_ALLOC, 0, order, gfp, mt, 1, 0)
    return page


# ---------------------------------------------------------------- freeing

@njit_inline
def free_pages_check(m, pfn, order):
    """free_pages_prepare()'s sanity checks: 0 or an EFREE_* code."""
    if pfn < 0 or pfn >= m.pg_flags.shape[0]:
        return EFREE_RANGE
    f = m.pg_flags[pfn]
    if (f & PG_head) == 0 or (f & (PG_buddy | PG_pcp | PG_reserved)) != 0:
        return EFREE_NOT_ALLOCATED
    if m.pg_order[pfn] != order:
        return EFREE_ORDER
    return 0


@njit_inline
def free_pages(m, pfn, order, cpu):
    """__free_pages() -> __free_frozen_pages(): pcp for pcp orders, else
    free_one_page() -> split_large_buddy().  Returns 0 or an EFREE_* code."""
    err = free_pages_check(m, pfn, order)
    if err != 0:
        return err
    m.cur[CUR_CPU] = cpu
    m.sim[_SIM_FREE] += 1
    trace_event(m, EV_FREE, pfn, order, 0, 0, 0, 0)
    m.vm[VM_PGFREE] += 1 << order
    m.pg_flags[pfn] = 0
    m.pg_owner[pfn] = 0
    z = m.pb_zone[pfn >> pageblock_order]
    mt = m.pb_mt[pfn >> pageblock_order]
    if m.cfg[_CFG_PCP] != 0 and pcp_allowed_order(order) and mt != MIGRATE_ISOLATE:
        if mt >= MIGRATE_PCPTYPES:
            mt = MIGRATE_MOVABLE
        if free_unref_page_commit(m, z, cpu, pfn, order, mt):
            if (m.zstat[z, ZS_FLAGS] & ZONE_BELOW_HIGH) and zone_watermark_ok(
                    m, z, 0, wmark_pages(m, z, 2), MAX_NR_ZONES - 1, 0, m.zstat[z, ZS_NR_FREE]):
                m.zstat[z, ZS_FLAGS] &= ~ZONE_BELOW_HIGH
        return 0
    m.pg_order[pfn] = -1
    split_large_buddy(m, pfn, z, order, False)
    return 0


# ---------------------------------------------------------------- boot

@njit
def free_pages_memory(m, z, start, end):
    """__free_pages_memory() -> __free_pages_core(): release [start, end) at boot
    in the largest naturally aligned chunks, to the list tails (FPI_TO_TAIL)."""
    while start < end:
        if start == 0:
            order = 10
        else:
            order = 0
            while order < 10 and ((start >> order) & 1) == 0:
                order += 1
        while start + (1 << order) > end:
            order -= 1
        split_large_buddy(m, start, z, order, True)
        start += 1 << order


@njit
def batch_alloc_free(m, ops_order, ops_gfp, ops_pfn, ops_cpu, ops_owner, out):
    """Run a batch of requests: ops_pfn < 0 allocates (result in out), else frees.

    out[i] = pfn for allocations (-1 on failure), error code for frees.
    """
    for i in range(ops_order.shape[0]):
        if ops_pfn[i] < 0:
            out[i] = alloc_pages(m, ops_order[i], ops_gfp[i], ops_cpu[i], ops_owner[i])
        else:
            out[i] = free_pages(m, ops_pfn[i], ops_order[i], ops_cpu[i])
