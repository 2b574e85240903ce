"""Allocation and free entry points (mm/page_alloc.c): watermarks,
get_page_from_freelist, rmqueue, the slow path, and the free path.

The slow path here is the part that needs no reclaim or compaction model:
MIN watermark, ALLOC_HIGHATOMIC, dropping NOFRAGMENT, highatomic unreserve
and pcp drain; direct reclaim and compaction plug in at the marked steps.
"""
from .buddy import (pageblock_set_has, split_large_buddy)
from .const import (ALLOC_HIGHATOMIC, ALLOC_KSWAPD, ALLOC_MIN_RESERVE,
                    ALLOC_NOFRAGMENT, ALLOC_NON_BLOCK,
                    ALLOC_WMARK_LOW, ALLOC_WMARK_MIN, ALLOC_WMARK_HIGH, ALLOC_CPUSET, ALLOC_CMA,
                    MIGRATE_MOVABLE, MIGRATE_RECLAIMABLE, MIGRATE_UNMOVABLE,
                    PAGE_ALLOC_COSTLY_ORDER, PG_head,
                    PG_lru, PG_MT_SHIFT,
                    ZONE_NORMAL,
                    pageblock_order)
from .fallback import unreserve_highatomic_pageblock
from .freelist import (get_page_from_freelist, get_page_from_freelist_call,  # noqa: F401
                       rmqueue_buddy, rmqueue_zone)
from .gfp import (__GFP_HIGH as _GFP_HIGH,
                   __GFP_DIRECT_RECLAIM as _GFP_DIRECT_RECLAIM,
                   __GFP_KSWAPD_RECLAIM as _GFP_KSWAPD_RECLAIM,
                   __GFP_NOMEMALLOC as _GFP_NOMEMALLOC,
                   __GFP_IO as _GFP_IO,
                   __GFP_RETRY_MAYFAIL as _GFP_RETRY_MAYFAIL,
                   __GFP_NOFAIL as _GFP_NOFAIL,
                   __GFP_NORETRY as _GFP_NORETRY,
                   __GFP_THISNODE as _GFP_THISNODE)
from .jit import njit, njit_inline
from .pcp import drain_all_pages
from .state import (CAPC_PAGE, CFG, CUR_CPU, CUR_GFP, CUR_ORDER, CUR_OWNER, SIMSTAT, VM_ALLOCSTALL, VM_PGALLOC, VMSTAT,
                    ZSTAT, ZS_NR_FREE)
from .tracepoint import EV_ALLOC, trace_event
from .compaction import (COMPACT_DEFERRED, COMPACT_PRIO_ASYNC, COMPACT_PRIO_SYNC_FULL,
                         COMPACT_PRIO_SYNC_LIGHT, COMPACT_SKIPPED, COMPACT_SUCCESS,
                         compaction_defer_reset, try_to_compact_pages)
from .page_free import free_pages_call
from .spb.relax import spb_gfp_alloc_flags
from .spb.compact import sb_try_alloc_contig_order
from .spb.params import SPB_CFG_COMPACT_HOOK, SPB_CFG_CONTIG, SPB_CFG_EVAC_FOR_ORDER
from .spb.work import spb_evacuate_for_order
from .vmscan import try_to_free_pages, zone_reclaimable_pages
from .watermark import (MAX_RECLAIM_RETRIES, gfp_migratetype, gfp_zone, populated_zone,
                        preferred_zone, wakeup_kswapd, wmark_pages, zone_watermark_ok)

_CFG_VERSION = CFG["version"]
_CFG_DEFRAG = CFG["defrag_mode"]
_CFG_PCP = CFG["pcp_enabled"]
_CFG_NOFRAG = CFG["nofragment"]
_CFG_SPB = CFG["spb"]
_CFG_KEEPNF = CFG["keep_nofragment"]
_CFG_PREP_BIT = CFG["prep_sets_request_bit"]
_SIM_REQ = SIMSTAT["sim_alloc_requests"]
_SIM_FAIL = SIMSTAT["sim_alloc_fail"]
_SIM_FREE = SIMSTAT["sim_free_requests"]
_SIM_SLOW = SIMSTAT["sim_slowpath"]
_SIM_NOFRAG_RETRY = SIMSTAT["sim_nofragment_retry"]
_SIM_CAPTURE = SIMSTAT["sim_compact_capture"]
_CFG_COMPACTION = CFG["compaction"]
_VM_OOM = VMSTAT["oom_kill"]
_VM_COMPACT_SUCCESS = VMSTAT["compact_success"]
_VM_COMPACT_FAIL = VMSTAT["compact_fail"]
_VM_COMPACT_STALL = VMSTAT["compact_stall"]
_Z_BLOCKSKIP_FLUSH = ZSTAT["compact_blockskip_flush"]
#: MAX_COMPACT_RETRIES (mm/page_alloc.c)
MAX_COMPACT_RETRIES = 16


@njit_inline
def alloc_flags_nofragment(m, pref_zone, gfp):
    """alloc_flags_nofragment(): ALLOC_KSWAPD from the gfp, plus NOFRAGMENT in
    defrag_mode or when the preferred zone is Normal (DMA32 below it)."""
    alloc_flags = ALLOC_KSWAPD if (gfp & _GFP_KSWAPD_RECLAIM) else 0
    if m.cfg[_CFG_SPB] != 0:
        alloc_flags |= spb_gfp_alloc_flags(gfp)
    if m.cfg[_CFG_DEFRAG] != 0 or m.cfg[_CFG_KEEPNF] != 0:
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
    if m.cfg[_CFG_DEFRAG] != 0 or m.cfg[_CFG_KEEPNF] != 0:
        alloc_flags |= ALLOC_NOFRAGMENT
    if m.cfg[_CFG_SPB] != 0:
        alloc_flags |= spb_gfp_alloc_flags(gfp)
    return alloc_flags


@njit
def wake_all_kswapds(m, gfp, order, highest_zoneidx):
    """wake_all_kswapds(); in defrag_mode kswapd is woken for at least
    pageblock_order."""
    if m.cfg[_CFG_DEFRAG] != 0 and order < pageblock_order:
        order = pageblock_order
    z = preferred_zone(m, highest_zoneidx)
    if z >= 0:
        wakeup_kswapd(m, z, gfp, order, highest_zoneidx)


@njit
def should_reclaim_retry(m, order, highest_zoneidx, alloc_flags, mt, did_some_progress, loops):
    """should_reclaim_retry(): count a loop without progress (costly orders
    always count); give up after MAX_RECLAIM_RETRIES; else retry if some zone
    would pass its MIN mark at this order were every reclaimable page freed.
    Before giving up, the highatomic reserve is released (a successful
    unreserve means retry).  Returns (retry, loops)."""
    if did_some_progress and order <= PAGE_ALLOC_COSTLY_ORDER:
        loops = 0
    else:
        loops += 1
    ret = False
    if loops <= MAX_RECLAIM_RETRIES:
        reclaimable = zone_reclaimable_pages(m)
        for z in range(highest_zoneidx, -1, -1):
            if not populated_zone(m, z):
                continue
            avail = reclaimable + m.zstat[z, ZS_NR_FREE]
            if zone_watermark_ok(m, z, order, wmark_pages(m, z, 0), highest_zoneidx,
                                 alloc_flags, avail):
                ret = True
                break
    if not ret:
        ret = unreserve_highatomic_pageblock(m, highest_zoneidx, mt, True)
    return ret, loops


@njit
def compaction_zonelist_suitable(m, order, highest_zoneidx):
    """compaction_zonelist_suitable(): would compaction find order-0 targets in
    some zone, counting a 1/order share of the reclaimable pages?"""
    reclaimable = zone_reclaimable_pages(m)
    for z in range(highest_zoneidx, -1, -1):
        if not populated_zone(m, z):
            continue
        avail = reclaimable // order + m.zstat[z, ZS_NR_FREE]
        if zone_watermark_ok(m, z, 0, wmark_pages(m, z, 0) + (2 << order), highest_zoneidx,
                             ALLOC_CMA, avail):
            return True
    return False


@njit
def should_compact_retry(m, order, highest_zoneidx, result, prio, retries):
    """should_compact_retry(): after COMPACT_SKIPPED, retry if reclaim could
    give compaction its targets; after COMPACT_SUCCESS (the page went to a
    racing request) up to MAX_COMPACT_RETRIES times (a quarter for costly
    orders); otherwise raise the priority, down to MIN_COMPACT_PRIORITY
    (MIN_COMPACT_COSTLY_PRIORITY for costly orders).
    Returns (retry, prio, retries)."""
    if order == 0:
        return False, prio, retries
    if result == COMPACT_SKIPPED:
        return compaction_zonelist_suitable(m, order, highest_zoneidx), prio, retries
    if result == COMPACT_SUCCESS:
        max_retries = MAX_COMPACT_RETRIES
        if order > PAGE_ALLOC_COSTLY_ORDER:
            max_retries //= 4
        retries += 1
        if retries <= max_retries:
            return True, prio, retries
    min_prio = COMPACT_PRIO_SYNC_LIGHT if order > PAGE_ALLOC_COSTLY_ORDER \
        else COMPACT_PRIO_SYNC_FULL
    if prio > min_prio:
        return True, prio - 1, 0
    return False, prio, retries


@njit
def alloc_pages_direct_reclaim(m, order, alloc_flags, highest_zoneidx, mt, cpu):
    """__alloc_pages_direct_reclaim(): reclaim; only if that made progress, try
    the free lists, then once more after releasing the highatomic reserve and
    draining every pcp list.  Returns (pfn or -1, pages reclaimed)."""
    progress = try_to_free_pages(m, order, highest_zoneidx, cpu)
    if progress == 0:
        return -1, progress
    page = get_page_from_freelist_call(m, order, alloc_flags, highest_zoneidx, mt, cpu)
    if page < 0:
        unreserve_highatomic_pageblock(m, highest_zoneidx, mt, False)
        drain_all_pages(m)
        page = get_page_from_freelist_call(m, order, alloc_flags, highest_zoneidx, mt, cpu)
    return page, progress


@njit
def alloc_pages_may_oom(m, order, gfp, highest_zoneidx, mt, cpu):
    """__alloc_pages_may_oom(): one last try at the HIGH mark; then the OOM
    killer, except for costly orders, __GFP_RETRY_MAYFAIL / __GFP_THISNODE
    requests and requests that cannot use ZONE_NORMAL.  spbsim kills nothing:
    the kill is counted (oom_kill) and the request fails.  Returns a pfn or -1."""
    page = get_page_from_freelist_call(m, order, ALLOC_WMARK_HIGH | ALLOC_CPUSET,
                                       highest_zoneidx, mt, cpu)
    if page >= 0:
        return page
    if order > PAGE_ALLOC_COSTLY_ORDER:
        return -1
    if gfp & (_GFP_RETRY_MAYFAIL | _GFP_THISNODE):
        return -1
    if highest_zoneidx < ZONE_NORMAL:
        return -1
    m.vm[_VM_OOM] += 1
    return -1


@njit
def alloc_pages_slowpath(m, order, gfp, highest_zoneidx, mt, cpu):
    """__alloc_pages_slowpath() (v6.12), step by step: wake kswapd; the free
    lists with the slow path's alloc_flags; the initial async compaction of
    costly and non-movable high-order requests (and the __GFP_NORETRY THP
    exits); then the retry loop: free lists, direct reclaim, direct
    compaction, the NORETRY / costly exits, should_reclaim_retry,
    should_compact_retry and the OOM killer (counted; the request then
    fails, as no task is killed here).  The SPB allocator and
    vm.defrag_mode add their last resorts before giving up; __GFP_NOFAIL
    gets one ALLOC_MIN_RESERVE try where the kernel would loop."""
    m.sim[_SIM_SLOW] += 1
    alloc_flags = gfp_to_alloc_flags(m, gfp, order)
    can_direct_reclaim = (gfp & _GFP_DIRECT_RECLAIM) != 0
    costly = order > PAGE_ALLOC_COSTLY_ORDER
    can_compact = (gfp & _GFP_IO) != 0 and m.cfg[_CFG_COMPACTION] != 0
    prio = COMPACT_PRIO_SYNC_LIGHT                  # DEF_COMPACT_PRIORITY
    result = COMPACT_SKIPPED
    retries = 0
    loops = 0
    if alloc_flags & ALLOC_KSWAPD:
        wake_all_kswapds(m, gfp, order, highest_zoneidx)
    page = get_page_from_freelist_call(m, order, alloc_flags, highest_zoneidx, mt, cpu)
    if page >= 0:
        return page
    nopage = not can_direct_reclaim
    if can_direct_reclaim and can_compact and (costly or (order > 0 and mt != MIGRATE_MOVABLE)):
        result, page = direct_compact(m, order, gfp, alloc_flags, highest_zoneidx, mt,
                                      COMPACT_PRIO_ASYNC, cpu)
        if page >= 0:
            return page
        if costly and (gfp & _GFP_NORETRY):
            if result == COMPACT_SKIPPED or result == COMPACT_DEFERRED or (gfp & _GFP_THISNODE):
                nopage = True
            prio = COMPACT_PRIO_ASYNC               # INIT_COMPACT_PRIORITY
    if not nopage:
        m.vm[VM_ALLOCSTALL + preferred_zone(m, highest_zoneidx)] += 1
    while not nopage:
        if alloc_flags & ALLOC_KSWAPD:
            wake_all_kswapds(m, gfp, order, highest_zoneidx)
        page = get_page_from_freelist_call(m, order, alloc_flags, highest_zoneidx, mt, cpu)
        if page >= 0:
            return page
        page, progress = alloc_pages_direct_reclaim(m, order, alloc_flags, highest_zoneidx,
                                                    mt, cpu)
        if page >= 0:
            return page
        result = COMPACT_SKIPPED
        if can_compact:
            result, page = direct_compact(m, order, gfp, alloc_flags, highest_zoneidx, mt,
                                          prio, cpu)
            if page >= 0:
                return page
        if gfp & _GFP_NORETRY:
            break
        if costly and (not can_compact or (gfp & _GFP_RETRY_MAYFAIL) == 0):
            break
        retry, loops = should_reclaim_retry(m, order, highest_zoneidx, alloc_flags, mt,
                                            progress > 0, loops)
        if retry:
            continue
        if progress > 0 and can_compact:
            retry, prio, retries = should_compact_retry(m, order, highest_zoneidx, result,
                                                        prio, retries)
            if retry:
                continue
        # "Reclaim/compaction failed to prevent the fallback": reached only by
        # a request that direct-reclaimed and exhausted its retries, never by
        # a non-blocking, __GFP_NORETRY or costly one (those go to nopage)
        if (alloc_flags & ALLOC_NOFRAGMENT) and m.cfg[_CFG_SPB] != 0 and mt != MIGRATE_MOVABLE \
                and m.spb.cfg[SPB_CFG_COMPACT_HOOK] == 0:
            # SPB v1 24/45: two-phase targeted evacuation before the NOFRAGMENT
            # drop (v2 17 moved it into __alloc_pages_direct_compact)
            if spb_slowpath_evacuate(m, order, mt, highest_zoneidx, cpu):
                page = get_page_from_freelist_call(m, order, alloc_flags, highest_zoneidx,
                                                   mt, cpu)
                if page >= 0:
                    return page
        if alloc_flags & ALLOC_NOFRAGMENT:
            alloc_flags &= ~ALLOC_NOFRAGMENT
            page = get_page_from_freelist_call(m, order, alloc_flags, highest_zoneidx, mt, cpu)
            if page >= 0:
                return page
        page = alloc_pages_may_oom(m, order, gfp, highest_zoneidx, mt, cpu)
        if page >= 0:
            return page
        break
    if (gfp & _GFP_NOFAIL) and can_direct_reclaim:
        # __alloc_pages_cpuset_fallback(ALLOC_MIN_RESERVE); the kernel would loop
        return get_page_from_freelist_call(m, order, ALLOC_MIN_RESERVE, highest_zoneidx, mt, cpu)
    return -1


@njit
def direct_compact(m, order, gfp, alloc_flags, highest_zoneidx, mt, prio, cpu):
    """__alloc_pages_direct_compact(): nothing for order 0; compact, then take
    the page compaction captured or else retry the free lists; compact_success
    / compact_fail by whether that gave a page; a success clears the zone's
    compaction deferral and its pending skip-bit flush.  Returns
    (compact_result, pfn or -1)."""
    if order == 0:
        return COMPACT_SKIPPED, -1
    if m.cfg[_CFG_SPB] != 0 and m.spb.cfg[SPB_CFG_COMPACT_HOOK] != 0:
        page = spb_direct_compact_hook(m, order, mt, highest_zoneidx, cpu)
        if page >= 0:
            return COMPACT_SUCCESS, page
    res = try_to_compact_pages(m, order, gfp, alloc_flags, highest_zoneidx, prio, cpu)
    page = m.capc[CAPC_PAGE]
    m.capc[CAPC_PAGE] = -1
    if res == COMPACT_SKIPPED:
        return res, -1
    # "at least in one zone compaction wasn't deferred or skipped": a stall
    m.vm[_VM_COMPACT_STALL] += 1
    if page >= 0:
        # prep_new_page() of the captured page: it bypassed rmqueue, so the
        # PB_has_<type> mark rmqueue's page_del_and_expand() gives is set here
        m.sim[_SIM_CAPTURE] += 1
        pageblock_set_has(m, page, order, mt)
    else:
        page = get_page_from_freelist_call(m, order, alloc_flags, highest_zoneidx, mt, cpu)
    if page >= 0:
        z = m.pb_zone[page >> pageblock_order]
        m.zstat[z, _Z_BLOCKSKIP_FLUSH] = 0
        compaction_defer_reset(m, z, order, True)
        m.vm[_VM_COMPACT_SUCCESS] += 1
    else:
        m.vm[_VM_COMPACT_FAIL] += 1
    return res, page


@njit_inline
def prep_new_page(m, pfn, order, mt, owner):
    """Hand the block to its user: head flag, order, type, LRU for movable."""
    f = PG_head | (mt << PG_MT_SHIFT)
    if mt == MIGRATE_MOVABLE:
        f |= PG_lru
    m.pg_flags[pfn] = f
    m.pg_order[pfn] = order
    m.pg_owner[pfn] = owner
    m.owner_pages[owner] += 1 << order
    # [SIM] also mark the request type: pcp pages can be reused by a type
    # other than the list they were taken for after their block was claimed.
    # (S1 does not; the SPB presets switch it off: prep_sets_request_bit.)
    if m.cfg[_CFG_PREP_BIT] != 0:
        pageblock_set_has(m, pfn, order, mt)


@njit_inline
def alloc_pages(m, order, gfp, cpu, owner):
    """__alloc_pages(): fast path then slow path; returns the pfn or -1.
    The request (owner, gfp, order) becomes the current context, for the
    taint log; a caller that allocates inside another request (a migration
    target) restores the outer one (contig.py)."""
    cur = m.cur
    cur[CUR_CPU] = cpu
    cur[CUR_OWNER] = owner
    cur[CUR_GFP] = gfp
    cur[CUR_ORDER] = order
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


@njit
def alloc_pages_call(m, order, gfp, cpu, owner):
    """alloc_pages() as a call (for cold callers such as migration targets)."""
    return alloc_pages(m, order, gfp, cpu, owner)


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
            out[i] = alloc_pages_call(m, ops_order[i], ops_gfp[i], ops_cpu[i], ops_owner[i])
        else:
            out[i] = free_pages_call(m, ops_pfn[i], ops_order[i], ops_cpu[i])


@njit_inline
def spb_direct_compact_hook(m, order, mt, highest_zoneidx, cpu):
    """The SPB hook at the top of __alloc_pages_direct_compact() [S v2 17/40]
    (``direct_compact_hook``): a movable request of order >= pageblock_order
    tries sb_try_alloc_contig() on clean SPBs (with ``contig``), zone by
    zone from the preferred one; an
    unmovable or reclaimable one runs spb_evacuate_for_order() (with
    ``evacuate_for_order``); both then fall back to normal compaction.
    Returns the pfn taken for the request, or -1."""
    if mt == MIGRATE_MOVABLE:
        if order < pageblock_order or m.spb.cfg[SPB_CFG_CONTIG] == 0:
            return -1
        # the zonelist from the preferred zone down ([SIM]: a zone must keep
        # its MIN mark and lowmem_reserve once the block is taken)
        for k in range(highest_zoneidx + 1):
            z = highest_zoneidx - k
            if m.spb.zone_count[z] == 0 or not zone_watermark_ok(
                    m, z, 0, wmark_pages(m, z, 0) + (1 << order), highest_zoneidx, 0,
                    m.zstat[z, ZS_NR_FREE]):
                continue
            page = sb_try_alloc_contig_order(m, z, order, cpu)
            if page >= 0:
                # prep_new_page(): rmqueue's PB_has_<type> mark, as for a capture
                pageblock_set_has(m, page, order, mt)
                return page
        return -1
    if mt == MIGRATE_UNMOVABLE or mt == MIGRATE_RECLAIMABLE:
        spb_slowpath_evacuate(m, order, mt, highest_zoneidx, cpu)
    return -1


@njit
def spb_slowpath_evacuate(m, order, mt, highest_zoneidx, cpu):
    """The slowpath's spb_evacuate_for_order() (S2: synchronous, called after
    reclaim and compaction failed, before NOFRAGMENT is dropped)."""
    if m.spb.cfg[SPB_CFG_EVAC_FOR_ORDER] == 0:
        return False
    z = highest_zoneidx
    while z > 0 and m.spb.zone_count[z] == 0:
        z -= 1
    return spb_evacuate_for_order(m, z, order, mt, cpu) > 0


