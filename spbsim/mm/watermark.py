"""Watermarks and zone selection (mm/page_alloc.c, mm/vmscan.c): the checks
that decide whether a zone may serve a request, and the wakeups of kswapd
and kcompactd they lead to."""
from .const import (ALLOC_HIGHATOMIC, ALLOC_MIN_RESERVE, ALLOC_OOM,
                    ALLOC_NON_BLOCK, ALLOC_RESERVES, ALLOC_WMARK_MASK,
                    ALLOC_WMARK_MIN, KV_6_1, MAX_NR_ZONES, MIGRATE_HIGHATOMIC,
                    MIGRATE_PCPTYPES, NR_PAGE_ORDERS, ZONE_DMA, ZONE_DMA32,
                    ZONE_NORMAL)
from .gfp import (__GFP_DMA as _GFP_DMA,
                   __GFP_DMA32 as _GFP_DMA32,
                   __GFP_MOVABLE as _GFP_MOVABLE,
                   __GFP_RECLAIMABLE as _GFP_RECLAIMABLE,
                   __GFP_DIRECT_RECLAIM as _GFP_DIRECT_RECLAIM)
from .jit import njit, njit_inline
from .tracepoint import EV_KSWAPD_WAKE, trace_event
from .state import (CFG, CUR_CLOCK, NODE, VMSTAT, ZS_BOOST, ZS_FREE_HIGHATOMIC, ZS_KSWAPD_BOOST,
                    ZS_KSWAPD_WAKE, ZS_MANAGED, ZS_NR_FREE, ZS_RESERVED_HIGHATOMIC,
                    ZS_WMARK_MIN)

_CFG_VERSION = CFG["version"]
_N_KSWAPD_ORDER = NODE["kswapd_order"]
_N_KSWAPD_IDX = NODE["kswapd_highest_zoneidx"]
_N_KSWAPD_WAIT = NODE["kswapd_wait"]
_N_KSWAPD_FAILURES = NODE["kswapd_failures"]
_N_KSWAPD_RECLAIM_ORDER = NODE["kswapd_reclaim_order"]
_N_KSWAPD_RECLAIMED = NODE["kswapd_reclaimed"]
_N_KSWAPD_PGFREE = NODE["kswapd_pgfree"]
_N_KSWAPD_RUN_START = NODE["kswapd_run_start_ns"]
_N_KSWAPD_ALLOC_ORDER = NODE["kswapd_alloc_order"]
_N_KSWAPD_RUN_IDX = NODE["kswapd_run_zoneidx"]
_N_KSWAPD_NR_BOOST = NODE["kswapd_nr_boost_reclaim"]
_VM_PGFREE = VMSTAT["pgfree"]
_N_KCD_ORDER = NODE["kcompactd_max_order"]
_N_KCD_IDX = NODE["kcompactd_highest_zoneidx"]
_N_KCD_WAIT = NODE["kcompactd_wait"]
MAX_RECLAIM_RETRIES = 16



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
    """__zone_watermark_unusable_free(); v6.1 subtracts the whole reserve,
    later kernels (6.12 LTS too) its free pages."""
    unusable = (1 << order) - 1
    if (alloc_flags & ALLOC_RESERVES) == 0:
        if m.cfg[_CFG_VERSION] == KV_6_1:
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


@njit
def pgdat_balanced(m, order, highest_zoneidx):
    """pgdat_balanced(): any populated zone <= idx meets its HIGH mark (incl.
    boost) at this order."""
    for z in range(highest_zoneidx + 1):
        if not populated_zone(m, z):
            continue
        if zone_watermark_ok(m, z, order, wmark_pages(m, z, 2), highest_zoneidx, 0,
                             m.zstat[z, ZS_NR_FREE]):
            return True
    return False


@njit
def wakeup_kcompactd(m, order, highest_zoneidx):
    """wakeup_kcompactd(): no-op for order 0; raises kcompactd's pending
    order, lowers its zone index (reset once kcompactd_do_work took them) and
    asks for a wake-up, which background() grants only if
    kcompactd_node_suitable()."""
    if order <= 0:
        return
    if m.node[_N_KCD_ORDER] == 0 or highest_zoneidx < m.node[_N_KCD_IDX]:
        m.node[_N_KCD_IDX] = highest_zoneidx
    if order > m.node[_N_KCD_ORDER]:
        m.node[_N_KCD_ORDER] = order
    m.node[_N_KCD_WAIT] = 1


@njit_inline
def kswapd_highest_zoneidx(m, prev):
    """kswapd_highest_zoneidx(): the zone index wakeups asked for since
    kswapd last read it, else ``prev`` (kswapd's own)."""
    curr = m.node[_N_KSWAPD_IDX]
    return prev if curr == MAX_NR_ZONES else curr


@njit_inline
def balance_pgdat_boosts(m, idx):
    """The start of balance_pgdat(): nr_boost_reclaim and zone_boosts[] take
    the watermark boosts of the zones <= ``idx``; the boosts stay in place
    (allocations near the marks still stall until the run ends), and the
    run's end subtracts what they were now, not what they have become."""
    total = 0
    for z in range(m.zstat.shape[0]):
        b = m.zstat[z, ZS_BOOST] if z <= idx and populated_zone(m, z) else 0
        m.zstat[z, ZS_KSWAPD_BOOST] = b
        total += b
    m.node[_N_KSWAPD_NR_BOOST] = total


@njit_inline
def kswapd_balance_begin(m):
    """kswapd() after kswapd_try_to_sleep() returns: read the node's
    kswapd_order and zone index, reset them, and begin balance_pgdat() for
    them (mm_vmscan_kswapd_wake).  Orders asked while it runs gather again
    in the node's fields."""
    order = m.node[_N_KSWAPD_ORDER]
    idx = kswapd_highest_zoneidx(m, m.node[_N_KSWAPD_RUN_IDX])
    m.node[_N_KSWAPD_ORDER] = 0
    m.node[_N_KSWAPD_IDX] = MAX_NR_ZONES
    m.node[_N_KSWAPD_WAIT] = 1
    m.node[_N_KSWAPD_ALLOC_ORDER] = order
    m.node[_N_KSWAPD_RECLAIM_ORDER] = order
    m.node[_N_KSWAPD_RUN_IDX] = idx
    trace_event(m, EV_KSWAPD_WAKE, 0, order, 0, 0, 0, 0)
    m.node[_N_KSWAPD_RECLAIMED] = 0
    m.node[_N_KSWAPD_PGFREE] = m.vm[_VM_PGFREE]
    m.node[_N_KSWAPD_RUN_START] = m.cur[CUR_CLOCK]
    balance_pgdat_boosts(m, idx)


@njit
def wakeup_kswapd(m, z, gfp, order, highest_zoneidx):
    """wakeup_kswapd(): raise the node's kswapd_order and zone index (on
    every call, also while kswapd runs or when it is not woken: kswapd takes
    the largest order asked since it last read them); if kswapd sleeps and
    the node is hopeless or balanced at ``order`` without boost, wake
    kcompactd instead (for requests that cannot direct-reclaim) and leave
    kswapd asleep."""
    m.zstat[z, ZS_KSWAPD_WAKE] += 1
    curr_idx = m.node[_N_KSWAPD_IDX]
    if curr_idx == MAX_NR_ZONES or curr_idx < highest_zoneidx:
        m.node[_N_KSWAPD_IDX] = highest_zoneidx
    if m.node[_N_KSWAPD_ORDER] < order:
        m.node[_N_KSWAPD_ORDER] = order
    if m.node[_N_KSWAPD_WAIT]:
        return
    boosted = False
    for zz in range(highest_zoneidx + 1):
        if m.zstat[zz, ZS_BOOST] > 0:
            boosted = True
    if m.node[_N_KSWAPD_FAILURES] >= MAX_RECLAIM_RETRIES or (
            pgdat_balanced(m, order, highest_zoneidx) and not boosted):
        if (gfp & _GFP_DIRECT_RECLAIM) == 0:
            wakeup_kcompactd(m, order, highest_zoneidx)
        return
    kswapd_balance_begin(m)
