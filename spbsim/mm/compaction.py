"""Compaction (mm/compaction.c) and contiguous range allocation.

Details: docs/model.md ("Module notes", `spbsim.mm.compaction`).
"""
from .buddy import (del_page_from_free_list, free_one_page_merge,
                    move_freepages_block, pageblock_set_has)
from .const import KV_6_1, ZONE_RECLAIM_ACTIVE
from .const import (SUPERPAGEBLOCK_ORDER, ALLOC_CMA, MIGRATE_ISOLATE, MIGRATE_MOVABLE,
                    MIGRATE_PCPTYPES, MIGRATE_UNMOVABLE,
                    NR_PAGE_ORDERS, PAGE_ALLOC_COSTLY_ORDER, PB_all_free, PB_compact_skip,
                    PG_buddy, PG_head, PG_lru, PG_MT_SHIFT, PG_pcp, PG_pinned,
                    pageblock_nr_pages, pageblock_order)
from .gfp import __GFP_IO as _GFP_IO
from .jit import njit, njit_inline
from .list import list_rotate_to_front
from .lru import lru_replace
from .page_free import free_pages_call
from .fallback import fallback_type, should_try_claim_block
from .pcp import drain_zone_pages
from .split import piece_index, split_lru_block
from .tracepoint import EV_COMPACTION_BEGIN, EV_COMPACTION_END, EV_KCOMPACTD_WAKE, trace_event
from .state import (CAPC_MT, CAPC_ORDER, CAPC_PAGE, CAPC_ZONE, CC_MAX, CCR_ACTIVE, CCR_BUDGET_NS,
                    CCR_CLOCK0, CCR_FAST_FAIL, CCR_FPFN, CCR_MIGRATED, CCR_MPFN, CCR_SCANNED,
                    CCR_SEARCH_ORDER, CCR_SLOT_KCOMPACTD, CCR_SLOT_WRITE, CCR_WHOLE_ZONE,
                    CCR_ZONE, CFG, KCD_TASK_DO_WORK, KCD_TASK_NONE, KCD_TASK_PROACTIVE, NODE,
                    VMSTAT, ZS_INIT_FREE_PFN, ZS_NR_FREE, ZS_WMARK_MIN, ZSTAT)
from .watermark import gfp_migratetype, populated_zone, wmark_pages, zone_watermark_ok

# enum compact_result (ordered)
COMPACT_NOT_SUITABLE_ZONE = 0
COMPACT_SKIPPED = 1
COMPACT_DEFERRED = 2
COMPACT_NO_SUITABLE_PAGE = 3
COMPACT_CONTINUE = 4
COMPACT_COMPLETE = 5
COMPACT_PARTIAL_SKIPPED = 6
COMPACT_CONTENDED = 7
COMPACT_SUCCESS = 8

# enum compact_priority
COMPACT_PRIO_SYNC_FULL = 0
COMPACT_PRIO_SYNC_LIGHT = 1
COMPACT_PRIO_ASYNC = 2

COMPACT_MAX_DEFER_SHIFT = 6
#: kcompactd's wait between runs (HPAGE_FRAG_CHECK_INTERVAL_MSEC)
HPAGE_FRAG_CHECK_INTERVAL_NS = 500_000_000
COMPACT_CLUSTER_MAX = 32

#: struct compact_control's switches, as a bit mask for compact_zone()
CC_SYNC = 0x1            # cc->mode != MIGRATE_ASYNC
CC_WHOLE_ZONE = 0x2      # cc->whole_zone
CC_DIRECT = 0x4          # cc->direct_compaction
CC_IGNORE_SKIP = 0x8     # cc->ignore_skip_hint
CC_IGNORE_BLOCK = 0x10   # cc->ignore_block_suitable
CC_KCOMPACTD = 0x20      # run by kcompactd (its vmstat counters)
CC_PROACTIVE = 0x40      # cc->proactive_compaction
# [SIM] a compaction that stops once its time (kcompactd_cost_ns) reaches its
# cc_resume row's CCR_BUDGET_NS and resumes, paused in that row, at the next
# call with the flag: a replayed compact_memory write's run takes it (row
# CCR_SLOT_WRITE), and kcompactd's with kcompactd_concurrent (CCR_SLOT_KCOMPACTD)
CC_BUDGET = 0x80

_CFG_COMPACTION = CFG["compaction"]
_CFG_CAPTURE = CFG["compaction_capture"]
_CFG_EXTFRAG = CFG["extfrag_threshold"]
_CFG_PROACTIVE = CFG["compaction_proactiveness"]
_CFG_MIGRATE_UNTRACKED = CFG["migrate_untracked"]
_CFG_SPB = CFG["spb"]
_CFG_SPLIT = CFG["migrate_split_large"]
_CFG_RA_EXTERNAL = CFG["reclaim_active_external"]
_CFG_VERSION = CFG["version"]
_CFG_MIGRATE_NS = CFG["compaction_migrate_ns"]
_CFG_SCAN_NS = CFG["compaction_scan_ns"]
_Z_FLAGS = ZSTAT["flags"]
_Z_PRESENT = ZSTAT["present"]
_Z_CONSIDERED = ZSTAT["compact_considered"]
_Z_SHIFT = ZSTAT["compact_defer_shift"]
_Z_FAILED = ZSTAT["compact_order_failed"]
_Z_MIGRATE_PFN_ASYNC = ZSTAT["compact_cached_migrate_pfn_async"]
_Z_MIGRATE_PFN_SYNC = ZSTAT["compact_cached_migrate_pfn_sync"]
_Z_INIT_MIGRATE_PFN = ZSTAT["compact_init_migrate_pfn"]
_Z_FREE_PFN = ZSTAT["compact_cached_free_pfn"]
_Z_INIT_FREE_PFN = ZS_INIT_FREE_PFN
_Z_BLOCKSKIP_FLUSH = ZSTAT["compact_blockskip_flush"]
_VM_MSCAN = VMSTAT["compact_migrate_scanned"]
_VM_FSCAN = VMSTAT["compact_free_scanned"]
_VM_ISOLATED = VMSTAT["compact_isolated"]
_VM_DWAKE = VMSTAT["compact_daemon_wake"]
_VM_DMSCAN = VMSTAT["compact_daemon_migrate_scanned"]
_VM_DFSCAN = VMSTAT["compact_daemon_free_scanned"]
_VM_MIGRATE_OK = VMSTAT["pgmigrate_success"]
_VM_MIGRATE_FAIL = VMSTAT["pgmigrate_fail"]
_N_KCD_ORDER = NODE["kcompactd_max_order"]
_N_KCD_IDX = NODE["kcompactd_highest_zoneidx"]
_N_KCD_WAIT = NODE["kcompactd_wait"]
_N_KCD_RUNS = NODE["kcompactd_runs"]
_N_KSWAPD_WAIT = NODE["kswapd_wait"]
_N_KCD_CLOCK = NODE["kcompactd_clock_ns"]
_N_KCD_RUN_ORDER = NODE["kcompactd_run_order"]
_N_KSWAPD_NEXT_WAKE = NODE["kswapd_next_wake_ns"]
_N_KCD_TASK = NODE["kcompactd_task"]
_N_KCD_TASK_ZONE = NODE["kcompactd_task_zone"]
_N_KCD_TASK_IDX = NODE["kcompactd_task_zoneidx"]
_N_KCD_TASK_SCORE = NODE["kcompactd_task_score"]


# ---------------------------------------------------------------- deferral

@njit
def defer_compaction(m, z, order):
    """defer_compaction(): back off exponentially for this order and above."""
    m.zstat[z, _Z_CONSIDERED] = 0
    if m.zstat[z, _Z_SHIFT] < COMPACT_MAX_DEFER_SHIFT:
        m.zstat[z, _Z_SHIFT] += 1
    if order < m.zstat[z, _Z_FAILED]:
        m.zstat[z, _Z_FAILED] = order


@njit
def compaction_deferred(m, z, order):
    """compaction_deferred(): skip up to 1 << defer_shift attempts."""
    if order < m.zstat[z, _Z_FAILED]:
        return False
    m.zstat[z, _Z_CONSIDERED] += 1
    limit = 1 << m.zstat[z, _Z_SHIFT]
    if m.zstat[z, _Z_CONSIDERED] >= limit:
        m.zstat[z, _Z_CONSIDERED] = limit
        return False
    return True


@njit
def compaction_defer_reset(m, z, order, alloc_success):
    if alloc_success:
        m.zstat[z, _Z_CONSIDERED] = 0
        m.zstat[z, _Z_SHIFT] = 0
    if order >= m.zstat[z, _Z_FAILED]:
        m.zstat[z, _Z_FAILED] = order + 1


# ---------------------------------------------------------------- suitability

@njit
def fragmentation_index(m, z, order):
    """fragmentation_index() x1000 (mm/vmstat.c)."""
    total = 0
    free_pages = 0
    suitable = 0
    for o in range(NR_PAGE_ORDERS):
        b = m.nr_free[z, o]
        total += b
        free_pages += b << o
        if o >= order:
            suitable += b << (o - order)
    if total == 0:
        return 0
    if suitable > 0:
        return -1000
    return 1000 - (1000 + free_pages * 1000 // (1 << order)) // total


@njit
def compaction_suitable(m, z, order, highest_zoneidx):
    """__compaction_suitable() + the fragindex test for costly orders: enough
    free base pages to act as targets, and the failure due to fragmentation."""
    mark = wmark_pages(m, z, 0) + (2 << order)
    if order > PAGE_ALLOC_COSTLY_ORDER:
        mark += wmark_pages(m, z, 1) - wmark_pages(m, z, 0)
    if not zone_watermark_ok(m, z, 0, mark, highest_zoneidx, ALLOC_CMA, m.zstat[z, ZS_NR_FREE]):
        return False
    if order > PAGE_ALLOC_COSTLY_ORDER:
        fi = fragmentation_index(m, z, order)
        if fi >= 0 and fi <= m.cfg[_CFG_EXTFRAG]:
            return False
    return True


@njit
def compact_finished(m, z, order, mt):
    """__compact_finished()'s page test: a free block of at least the order on
    the requester's list, or on a fallback list the request may steal from
    (find_suitable_fallback(only_stealable): any order for unmovable and
    reclaimable requests, pageblock_order / 2 and up for movable ones).
    Under the SPB allocator these are the zone's shadow counts (S1's own
    __compact_finished() reads the zone lists, which SPBs leave empty); the
    [SIM] what-if compaction_order_check=usable asks spb_movable_usable_block()."""
    if order < 0:
        return False
    if spb_compact_check_usable(m, order, mt):
        return spb_movable_usable_block(m, z)
    for o in range(order, NR_PAGE_ORDERS):
        if m.fa_nr[z, o, mt] > 0:
            return True
        if m.nr_free[z, o] > 0 and should_try_claim_block(o, mt):
            for i in range(2):
                if m.fa_nr[z, o, fallback_type(mt, i)] > 0:
                    return True
    return False


# ---------------------------------------------------------------- isolation

@njit_inline
def _release_page(m, pfn, order, cpu):
    """post_alloc_hook() then __free_pages(): an isolated free page goes back
    through the free path, so pcp orders land on ``cpu``'s per-cpu lists.
    The head is made allocated as prep_new_page() does, without its
    PB_has mark (the page holds nothing)."""
    m.pg_flags[pfn] = PG_head
    m.pg_order[pfn] = order
    m.pg_owner[pfn] = 0
    m.owner_pages[0] += 1 << order      # free_pages() takes it off again
    free_pages_call(m, pfn, order, cpu)


@njit
def cc_release(m, z, cpu):
    """release_free_list() (v6.1 release_freepages()): give back the isolated
    free pages through __free_pages() on the compacting ``cpu``: v6.12 order
    by order from 0, each cc->freepages[order] list from its head; v6.1 every
    order-0 page of the list split_map_pages() made, from its head: the last
    page of the last isolated buddy first.  The cached free pfn moves up to
    the block of the highest page given back ("only go back, not forward"),
    which is returned (-1: none)."""
    high = -1
    n = m.cc_n[0]
    m.cc_n[0] = 0
    if m.cfg[_CFG_VERSION] == KV_6_1:
        for i in range(n - 1, -1, -1):
            pfn = m.cc_pfn[i]
            last = pfn + (1 << m.cc_order[i]) - 1
            high = max(high, last)
            for p in range(last, pfn - 1, -1):
                _release_page(m, p, 0, cpu)
    else:
        for o in range(NR_PAGE_ORDERS):
            for i in range(n):
                if m.cc_order[i] == o:
                    pfn = m.cc_pfn[i]
                    high = max(high, pfn)
                    _release_page(m, pfn, o, cpu)
    if high >= 0:
        high &= ~(pageblock_nr_pages - 1)
        if high > m.zstat[z, _Z_FREE_PFN]:
            m.zstat[z, _Z_FREE_PFN] = high
    return high


@njit_inline
def cc_nr_freepages(m):
    """cc->nr_freepages: pages on the isolated free list."""
    n = 0
    for i in range(m.cc_n[0]):
        n += 1 << m.cc_order[i]
    return n


@njit
def isolate_free_page(m, z, pfn, order):
    """__isolate_free_page(): take a free buddy off its list for compaction,
    if the zone stays above MIN + 1<<order; >= pageblock_order-1 buddies turn
    their blocks MOVABLE."""
    mark = m.zstat[z, ZS_WMARK_MIN] + (1 << order)
    if not zone_watermark_ok(m, z, 0, mark, 0, ALLOC_CMA, m.zstat[z, ZS_NR_FREE]):
        return False
    if m.cc_n[0] >= CC_MAX:
        return False
    del_page_from_free_list(m, pfn, z, order, m.pg_list_mt[pfn])
    if order >= pageblock_order:
        if m.cfg[_CFG_SPB] != 0:
            # S1 §9.5: superpageblock_range_now_used() (PB_all_free off, nr_free--)
            superpageblock_range_now_used_call(m.spb, m, pfn, order)
        else:
            nr = 1 << (order - pageblock_order)
            for i in range(nr):
                m.pb_flags[(pfn >> pageblock_order) + i] &= 0xFF ^ PB_all_free
    if order >= pageblock_order - 1:
        # each covered mergeable pageblock becomes MOVABLE, with its other free
        # pages (move_freepages_block keeps free lists == block types); v6.1
        # retypes the block alone (set_pageblock_migratetype())
        nr = max(1, 1 << (order - pageblock_order)) if order >= pageblock_order else 1
        for i in range(nr):
            b = (pfn >> pageblock_order) + i
            bmt = m.pb_mt[b]
            if bmt < MIGRATE_PCPTYPES and bmt != MIGRATE_MOVABLE:
                if m.cfg[_CFG_VERSION] == KV_6_1:
                    m.pb_mt[b] = MIGRATE_MOVABLE
                else:
                    move_freepages_block(m, z, b << pageblock_order, bmt, MIGRATE_MOVABLE)
    m.cc_pfn[m.cc_n[0]] = pfn
    m.cc_order[m.cc_n[0]] = order
    m.cc_n[0] += 1
    return True


@njit
def suitable_migration_target(m, start, cc_order, ignore_block):
    """suitable_migration_target(): not a block whose first page is a free
    buddy of at least the target order (pageblock_order for order <= 0: a
    free pageblock is never broken up for targets); then MOVABLE blocks only,
    unless ignore_block_suitable (direct compaction at MIN priority)."""
    if m.pg_flags[start] & PG_buddy:
        o = cc_order if cc_order > 0 else pageblock_order
        if m.pg_order[start] >= o:
            return False
    if ignore_block:
        return True
    return m.pb_mt[start >> pageblock_order] == MIGRATE_MOVABLE


@njit_inline
def isolate_freepages_block(m, z, start, end, stride, need, nr_free):
    """isolate_freepages_block() from ``start`` to the block's ``end``, one
    page in ``stride``: a compound head is stepped over whole, a free buddy
    is isolated whole, and the scan stops after the isolation that makes the
    isolated pages (``nr_free`` before) cover the migrate batch (``need``,
    cc->nr_migratepages), or at a buddy the watermark keeps.  Returns (pfn
    reached, pages scanned, pages isolated)."""
    p = start
    scanned = 0
    isolated = 0
    while p < end:
        scanned += 1
        f = m.pg_flags[p]
        if f & PG_head:
            n = 1 << m.pg_order[p] if m.pg_order[p] > 0 else 1
            if p + n <= end:
                p += n - 1
                scanned += n - 1
        elif f & PG_buddy:
            o = m.pg_order[p]
            if not isolate_free_page(m, z, p, o):
                break
            n = 1 << o
            scanned += n - 1
            isolated += n
            if need <= nr_free + isolated:
                p += n
                break
            p += n - 1
        p += stride
    if p > end:
        p = end
    if isolated:
        m.vm[_VM_ISOLATED] += isolated          # COMPACTISOLATED
    return p, scanned, isolated


@njit_inline
def freelist_scan_limit(fast_search_fail):
    """freelist_scan_limit(): list entries a fast search may look at."""
    return (COMPACT_CLUSTER_MAX >> min(63, fast_search_fail)) + 1


@njit_inline
def next_search_order(cc_order, order, search_order):
    """next_search_order(): the orders below cc->order round-robin; -1 (and
    cc->search_order one lower) once the search wrapped.  Returns (order,
    search_order)."""
    order -= 1
    if order < 0:
        order = cc_order - 1
    if order == search_order:
        search_order -= 1
        if search_order < 0:
            search_order = cc_order - 1
        return -1, search_order
    return order, search_order


@njit_inline
def fast_isolate_around(m, z, pfn, need, flags):
    """fast_isolate_around(): unless the isolated pages already cover the
    batch or this is async direct compaction, isolate from ``pfn``'s whole
    block at stride 1 and set its skip bit (v6.12: if scanned to its end;
    v6.1: if the batch is still not covered).  Returns pages scanned."""
    nr_free = cc_nr_freepages(m)
    if nr_free >= need:
        return 0
    if (flags & CC_DIRECT) != 0 and (flags & CC_SYNC) == 0:
        return 0
    start = max(pfn & ~(pageblock_nr_pages - 1), m.zone_start[z])
    end = min((pfn | (pageblock_nr_pages - 1)) + 1, m.zone_end[z])
    pb = start >> pageblock_order
    if m.pb_zone[pb] != z:
        return 0
    pos, sc, iso = isolate_freepages_block(m, z, start, end, 1, need, nr_free)
    if m.cfg[_CFG_VERSION] == KV_6_1:
        if nr_free + iso < need:
            m.pb_flags[pb] |= PB_compact_skip
    elif pos == end:
        m.pb_flags[pb] |= PB_compact_skip
    return sc


@njit_inline
def fast_isolate_freepages(m, z, free_pfn, migrate_pfn, cc_order, need, flags,
                           fast_search_fail, search_order):
    """fast_isolate_freepages(): for cc->order > 0, look at the MOVABLE free
    lists of the orders below it (from cc->search_order, round-robin), each
    from its tail and at most a limit of entries, for a page in the top
    quarter of the scanners' distance (else the highest in the top half),
    rotate the list so that the page (or the last looked at) is first
    (move_freelist_head), isolate it, then its block (fast_isolate_around).
    When a search from the scan start (cc->free_pfn at or above
    compact_init_free_pfn) finds nothing, the free scanner jumps to the
    highest free block seen, or for direct compaction to the half-way
    block.  Returns (cc->free_pfn, pages scanned, cc->fast_search_fail,
    cc->search_order)."""
    if cc_order <= 0:
        return free_pfn, 0, fast_search_fail, search_order
    v61 = m.cfg[_CFG_VERSION] == KV_6_1
    limit = max(1, freelist_scan_limit(fast_search_fail) >> 1)
    scan_start = free_pfn >= m.zstat[z, _Z_INIT_FREE_PFN]
    if scan_start:
        limit = pageblock_nr_pages >> 1
    distance = free_pfn - migrate_pfn
    if distance < 0:
        # the free scanner went below the migrate scanner in this batch: the
        # kernel's unsigned distance wraps, both bounds lie above every pfn,
        # so no page qualifies and cc->free_pfn stays
        low_pfn = min_pfn = 1 << 62
    else:
        low_pfn = (free_pfn - (distance >> 2)) & ~(pageblock_nr_pages - 1)
        min_pfn = (free_pfn - (distance >> 1)) & ~(pageblock_nr_pages - 1)
        low_pfn = max(low_pfn, min_pfn)
    search_order = min(cc_order - 1, search_order)
    page = -1
    highest = 0
    nr_scanned = 0
    order = search_order
    while page < 0 and order >= 0:
        if m.nr_free[z, order] != 0:
            order_scanned = 0
            high_pfn = 0
            h = (z, order, MIGRATE_MOVABLE)
            freepage = m.fa_tail[h]
            last = -1                       # the entry the walk stopped at
            while freepage >= 0:
                order_scanned += 1
                nr_scanned += 1
                pfn = freepage
                if pfn >= highest:
                    highest = max(pfn & ~(pageblock_nr_pages - 1), m.zone_start[z])
                if pfn >= low_pfn:
                    fast_search_fail = 0
                    search_order = order
                    page = pfn
                    last = pfn
                    break
                if pfn >= min_pfn and pfn > high_pfn:
                    high_pfn = pfn
                    limit >>= 1             # shorten the scan once a candidate is found
                if order_scanned >= limit:
                    last = pfn
                    break
                freepage = m.pg_prev[freepage]
            if page < 0 and high_pfn:
                page = high_pfn
                last = high_pfn
            if last >= 0:
                # move_freelist_head(): a future search skips the recent pages
                list_rotate_to_front(m.pg_next, m.pg_prev, m.fa_head, m.fa_tail, h, last)
            if page >= 0:
                if isolate_free_page(m, z, page, order):
                    nr_scanned += (1 << order) - 1
                    m.vm[_VM_ISOLATED] += 1 << order        # COMPACTISOLATED
                else:
                    order = search_order + 1                # abort the search
                    page = -1
            if not v61 and cc_nr_freepages(m) >= need:
                break
            if order_scanned >= limit:
                limit = max(1, limit >> 1)
        order, search_order = next_search_order(cc_order, order, search_order)
    if page < 0:
        fast_search_fail += 1
        if scan_start:
            if highest >= min_pfn:
                page = highest
                free_pfn = highest
            elif (flags & CC_DIRECT) != 0 and m.zone_start[z] <= min_pfn < m.zone_end[z]:
                page = min_pfn
                if m.pb_zone[min_pfn >> pageblock_order] != z:
                    page = -1                       # pageblock_pfn_to_page()
                elif not v61 and not suitable_migration_target(
                        m, min_pfn, cc_order, (flags & CC_IGNORE_BLOCK) != 0):
                    page = -1
                free_pfn = min_pfn
    if highest and highest >= m.zstat[z, _Z_FREE_PFN]:
        m.zstat[z, _Z_FREE_PFN] = highest - pageblock_nr_pages
    if page >= 0:
        nr_scanned += fast_isolate_around(m, z, page, need, flags)
    return free_pfn, nr_scanned, fast_search_fail, search_order


@njit
def isolate_freepages(m, z, free_pfn, low_pfn, migrate_pfn, cc_order, need, flags,
                      fast_search_fail, search_order):
    """isolate_freepages(): fast_isolate_freepages() first; if the isolated
    list then holds any page, that is all.  Else from ``free_pfn``
    (cc->free_pfn, possibly inside a block) down to the block at ``low_pfn``,
    each suitable_migration_target block that isolation_suitable allows is
    scanned until the isolated pages cover ``need`` (cc->nr_migratepages).
    The stride starts at 1 for sync compaction and COMPACT_CLUSTER_MAX for
    async, is 1 again after a block that gave pages and doubles (up to
    COMPACT_CLUSTER_MAX) after one that gave none.  A block scanned to its
    end gets the skip bit and pulls the zone's cached free pfn below it
    (update_pageblock_skip).  ``migrate_pfn`` is cc->migrate_pfn; the fast
    search's cc->fast_search_fail and cc->search_order are passed in and
    returned.  Returns (new cc->free_pfn, pages scanned, fast_search_fail,
    search_order)."""
    free_pfn, scanned, fast_search_fail, search_order = fast_isolate_freepages(
        m, z, free_pfn, migrate_pfn, cc_order, need, flags, fast_search_fail, search_order)
    if cc_nr_freepages(m) > 0:
        return free_pfn, scanned, fast_search_fail, search_order
    ignore_skip = (flags & CC_IGNORE_SKIP) != 0
    ignore_block = (flags & CC_IGNORE_BLOCK) != 0
    stride = 1 if (flags & CC_SYNC) != 0 else COMPACT_CLUSTER_MAX
    v61 = m.cfg[_CFG_VERSION] == KV_6_1
    nr_free = 0
    isolate_start = free_pfn
    block_start = free_pfn & ~(pageblock_nr_pages - 1)
    block_end = min(block_start + pageblock_nr_pages, m.zone_end[z])
    while block_start >= low_pfn:
        pb = block_start >> pageblock_order
        if m.pb_zone[pb] == z and suitable_migration_target(m, block_start, cc_order, ignore_block) \
                and (ignore_skip or (m.pb_flags[pb] & PB_compact_skip) == 0):
            pos, sc, iso = isolate_freepages_block(m, z, isolate_start, block_end, stride,
                                                   need, nr_free)
            scanned += sc
            nr_free += iso
            isolate_start = pos
            if pos == block_end:
                # update_pageblock_skip(): the cached free pfn goes below the
                # block (v6.1: to the block itself, skipped next time)
                m.pb_flags[pb] |= PB_compact_skip
                cached = block_start if v61 else block_start - pageblock_nr_pages
                if cached < m.zstat[z, _Z_FREE_PFN]:
                    m.zstat[z, _Z_FREE_PFN] = cached
            if nr_free >= need:
                if pos >= block_end:
                    # restart at the next block down if more can be had
                    isolate_start = block_start - pageblock_nr_pages
                break
            elif pos < block_end:
                break                           # isolation failed early
            if iso:
                stride = 1
            else:
                stride = min(COMPACT_CLUSTER_MAX, stride << 1)
        block_end = block_start
        block_start -= pageblock_nr_pages
        isolate_start = block_start
    return isolate_start, scanned, fast_search_fail, search_order


@njit_inline
def pageblock_skip_persistent(m, pfn):
    """pageblock_skip_persistent(): ``pfn`` lies in an allocated compound page
    of pageblock order or more (neither a source nor a target)."""
    for o in range(pageblock_order, SUPERPAGEBLOCK_ORDER + 1):
        h = pfn & ~((1 << o) - 1)
        if (m.pg_flags[h] & PG_head) != 0 and m.pg_order[h] >= pageblock_order \
                and h + (1 << m.pg_order[h]) > pfn:
            return True
    return False


@njit_inline
def reset_isolation_pfn(m, z, pfn, check_source, check_target):
    """__reset_isolation_pfn(): clear the skip bit of ``pfn``'s block if one of
    its pages sampled every 1 << PAGE_ALLOC_COSTLY_ORDER is an LRU page
    (``check_source``; any page of the folio) or a free buddy's first page
    (``check_target``).  A block already clear counts once both are asked;
    for the target side alone only a MOVABLE block can count.  True if the
    block can be a scanner's starting point."""
    pb = pfn >> pageblock_order
    if m.pb_zone[pb] != z or pageblock_skip_persistent(m, pfn):
        return False
    if check_source and check_target and (m.pb_flags[pb] & PB_compact_skip) == 0:
        return True
    if not check_source and check_target and m.pb_mt[pb] != MIGRATE_MOVABLE:
        return False
    start = max(pb << pageblock_order, m.zone_start[z])
    end = min(((pb + 1) << pageblock_order) - 1, m.zone_end[z] - 1)
    step = 1 << PAGE_ALLOC_COSTLY_ORDER
    q = start
    while q <= end:
        f = m.pg_flags[q]
        n = 1
        if (f & (PG_head | PG_buddy | PG_pcp)) != 0 and m.pg_order[q] > 0:
            n = 1 << m.pg_order[q]
        sample = start + (q - start + step - 1) // step * step   # first sample in [q, q+n)
        if sample < q + n and sample <= end and (
                (check_source and (f & PG_head) != 0 and (f & PG_lru) != 0)
                or (check_target and (f & PG_buddy) != 0 and sample == q)):
            m.pb_flags[pb] &= 0xFF ^ PB_compact_skip
            return True
        q += n
    return False


@njit
def reset_isolation_suitable_zone(m, z):
    """__reset_isolation_suitable(): only after a direct compaction's scanners
    met (compact_blockskip_flush).  The migrate side walks up from the zone
    start and the free side down from its end until they meet, clearing the
    skip bits reset_isolation_pfn() allows; each scanner restarts at the
    first block that qualified (and sets compact_init_migrate_pfn /
    compact_init_free_pfn), or both where the walks met if none did."""
    if m.zstat[z, _Z_BLOCKSKIP_FLUSH] == 0:
        return
    m.zstat[z, _Z_BLOCKSKIP_FLUSH] = 0
    migrate_pfn = m.zone_start[z]
    free_pfn = m.zone_end[z] - 1
    reset_migrate = free_pfn
    reset_free = migrate_pfn
    source_set = False
    free_set = False
    while migrate_pfn < free_pfn:
        if reset_isolation_pfn(m, z, migrate_pfn, True, source_set) and migrate_pfn < reset_migrate:
            source_set = True
            reset_migrate = migrate_pfn
            m.zstat[z, _Z_INIT_MIGRATE_PFN] = reset_migrate
            set_cached_migrate(m, z, reset_migrate)
        if reset_isolation_pfn(m, z, free_pfn, free_set, True) and free_pfn > reset_free:
            free_set = True
            reset_free = free_pfn
            m.zstat[z, _Z_INIT_FREE_PFN] = reset_free
            m.zstat[z, _Z_FREE_PFN] = reset_free
        migrate_pfn += pageblock_nr_pages
        free_pfn -= pageblock_nr_pages
    if reset_migrate >= reset_free:
        # "Leave no distance if no suitable block was reset"
        set_cached_migrate(m, z, migrate_pfn)
        m.zstat[z, _Z_FREE_PFN] = free_pfn


@njit
def reset_isolation_suitable(m):
    """reset_isolation_suitable(pgdat), called as kswapd goes to sleep: the
    zones whose direct compaction saw its scanners meet (compact_blockskip_flush)."""
    for z in range(m.zstat.shape[0]):
        if m.zstat[z, _Z_BLOCKSKIP_FLUSH] != 0:
            reset_isolation_suitable_zone(m, z)


@njit
def compaction_restarting(m, z, order):
    """compaction_restarting(): deferred to the maximum and due again."""
    if order < m.zstat[z, _Z_FAILED]:
        return False
    return m.zstat[z, _Z_SHIFT] == COMPACT_MAX_DEFER_SHIFT and \
        m.zstat[z, _Z_CONSIDERED] >= (1 << m.zstat[z, _Z_SHIFT])


@njit
def compaction_alloc(m, z, order):
    """compaction_alloc(): v6.12, the first isolated free page on the list of
    the smallest order >= ``order``, split, the upper halves put at the heads
    of their lists (list_add); the list keeps isolation order
    (list_add_tail).  v6.1: the head of the order-0 list split_map_pages()
    built with list_add(), i.e. the last page of the last isolated buddy (the
    rest of that buddy stays as smaller buddies, lowest first).  Returns a
    pfn or -1."""
    n = m.cc_n[0]
    if m.cfg[_CFG_VERSION] == KV_6_1:
        if n == 0:
            return -1
        pfn = m.cc_pfn[n - 1]
        o = m.cc_order[n - 1]
        m.cc_n[0] = n - 1
        # [pfn, pfn + 2^o - 1) as buddies of orders o-1 .. 0, in pfn order
        start = pfn
        while o > 0:
            o -= 1
            if m.cc_n[0] < CC_MAX:
                m.cc_pfn[m.cc_n[0]] = start
                m.cc_order[m.cc_n[0]] = o
                m.cc_n[0] += 1
            else:
                free_one_page_merge(m, start, z, o, m.pb_mt[start >> pageblock_order], False)
            start += 1 << o
        return start
    best = -1
    for i in range(n):
        if m.cc_order[i] >= order and (best < 0 or m.cc_order[i] < m.cc_order[best]):
            best = i
    if best < 0:
        return -1
    pfn = m.cc_pfn[best]
    o = m.cc_order[best]
    n -= 1
    for i in range(best, n):
        m.cc_pfn[i] = m.cc_pfn[i + 1]
        m.cc_order[i] = m.cc_order[i + 1]
    m.cc_n[0] = n
    while o > order:             # split, the upper halves stay isolated
        o -= 1
        if m.cc_n[0] < CC_MAX:
            for i in range(m.cc_n[0], 0, -1):
                m.cc_pfn[i] = m.cc_pfn[i - 1]
                m.cc_order[i] = m.cc_order[i - 1]
            m.cc_pfn[0] = pfn + (1 << o)
            m.cc_order[0] = o
            m.cc_n[0] += 1
        else:
            free_one_page_merge(m, pfn + (1 << o), z, o, m.pb_mt[pfn >> pageblock_order], False)
    return pfn


@njit
def migrate_block(m, src, dst, cpu):
    """migrate_pages() of one movable block: the new block takes the old one's
    identity (owner, object, LRU position), the old one is freed."""
    order = m.pg_order[src]
    flags = m.pg_flags[src]
    owner = m.pg_owner[src]
    obj = m.pg_obj[src]
    m.pg_flags[dst] = flags
    m.pg_order[dst] = order
    m.pg_owner[dst] = owner
    m.pg_obj[dst] = obj
    if obj >= 0:
        m.obj_pfn[obj] = dst
    elif obj < -1:                  # a piece of a split object (mm/split.py)
        m.pc_pfn[piece_index(obj)] = dst
    lru = m.owner_lru[owner]
    if lru >= 0:
        lru_replace(m, src, dst, lru)
    pageblock_set_has(m, dst, order, (flags >> PG_MT_SHIFT) & 3)
    m.owner_pages[owner] += 1 << order      # free_pages() of src takes it off again
    m.pg_obj[src] = -1
    free_pages_call(m, src, order, cpu)
    m.vm[_VM_MIGRATE_OK] += 1 << order


@njit_inline
def cc_end_cpu(m, cpu):
    """The cpu a compaction ends on: its schedule's last row's, ``cpu``
    without one.  release_free_list() runs there, however many pages this
    compaction migrated."""
    n = m.cc_n[1]
    return cpu if n == 0 else m.cc_cpus[n - 1, 1]


@njit_inline
def cc_source_cpu(m, cpu, migrated):
    """The cpu a compaction runs on once it has migrated ``migrated`` pages:
    the first row of its schedule (cc_cpus, cc_n[1] rows) whose page count
    is above that, the last row's past them all, ``cpu`` without one.  The
    task that writes compact_memory runs compact_node() where the scheduler
    puts it, and migrate_folio_done() frees each source to that cpu's
    per-cpu list."""
    for i in range(m.cc_n[1]):
        if migrated < m.cc_cpus[i, 0]:
            return m.cc_cpus[i, 1]
    return cc_end_cpu(m, cpu)


@njit
def page_migratable(m, pfn):
    """An allocated movable (LRU), unpinned block whose owner can follow a move:
    a timed object or a reclaim-list member of the engine (their pfn is looked
    up, not kept), or any LRU block when ``migrate_untracked`` is set.  Blocks
    handed out through the API keep their pfn as their identity, so they stay."""
    f = m.pg_flags[pfn]
    if (f & PG_head) == 0 or (f & PG_lru) == 0 or (f & PG_pinned) != 0:
        return False
    return m.pg_obj[pfn] != -1 or m.owner_lru[m.pg_owner[pfn]] >= 0 \
        or m.cfg[_CFG_MIGRATE_UNTRACKED] != 0


@njit
def migratable(m, pfn, cc_order):
    """isolate_migratepages_block()'s compound-page test: v6.12
    (skip_isolation_on_order()) takes a large folio below the target order
    and pageblock_order; v6.1 skips every compound page (outside
    alloc_contig)."""
    if not page_migratable(m, pfn):
        return False
    o = m.pg_order[pfn]
    if m.cfg[_CFG_VERSION] == KV_6_1:
        return o == 0
    return o < pageblock_order and (cc_order < 0 or o < cc_order)


# ---------------------------------------------------------------- compact_zone

@njit
def zone_frag_score(m, z):
    """extfrag_for_order(zone, COMPACTION_HPAGE_ORDER): 0..100."""
    free_pages = 0
    suitable = 0
    for o in range(NR_PAGE_ORDERS):
        b = m.nr_free[z, o]
        free_pages += b << o
        if o >= pageblock_order:
            suitable += b << (o - pageblock_order)
    if free_pages == 0:
        return 0
    return (free_pages - (suitable << pageblock_order)) * 100 // free_pages


@njit
def fragmentation_score_node(m):
    """fragmentation_score_node(): zone scores weighted by present pages."""
    total = 0
    for z in range(m.zstat.shape[0]):
        total += m.zstat[z, _Z_PRESENT]
    score = 0
    for z in range(m.zstat.shape[0]):
        if populated_zone(m, z):
            score += m.zstat[z, _Z_PRESENT] * zone_frag_score(m, z) // (total + 1)
    return score


@njit_inline
def kswapd_is_running(m):
    """kswapd_is_running(): the node's kswapd is awake.  A replay that
    follows the recorded kswapd (reclaim_active_external) asks the recorded
    one: awake while a zone is in ZONE_RECLAIM_ACTIVE, which the replay sets
    over that kswapd's reclaim windows."""
    if m.node[_N_KSWAPD_WAIT] != 0:
        return True
    if m.cfg[_CFG_RA_EXTERNAL] != 0:
        for z in range(m.zstat.shape[0]):
            if m.zstat[z, _Z_FLAGS] & ZONE_RECLAIM_ACTIVE:
                return True
    return False


@njit_inline
def kswapd_woke_by(m, t):
    """A replay that follows the recorded kswapd: has it woken, since the
    compaction began, by time ``t`` (the start of its next reclaim window)?
    kcompactd runs beside the requests, so a wake inside its run is one
    __compact_finished() sees at its next check."""
    return m.cfg[_CFG_RA_EXTERNAL] != 0 and t >= m.node[_N_KSWAPD_NEXT_WAKE]


@njit_inline
def kcompactd_cost_ns(m, scanned, migrated):
    """[SIM] the time kcompactd takes to scan ``scanned`` pages (both
    scanners) and migrate ``migrated`` (compaction_scan_ns, compaction_migrate_ns)."""
    return scanned * m.cfg[_CFG_SCAN_NS] + migrated * m.cfg[_CFG_MIGRATE_NS]


@njit
def proactive_wmarks(m):
    """fragmentation_score_wmark(): (low, high) from compaction_proactiveness;
    the low mark is at least 5, the high one 10 above it, at most 100."""
    low = max(100 - m.cfg[_CFG_PROACTIVE], 5)
    high = min(low + 10, 100)
    return low, high


@njit
def proactive_compact_node(m, cpu):
    """kcompactd's proactive compaction (every 500 ms): if the node score is
    above the high mark, compact_node(order -1) compacts every populated
    zone until its score is at most the low mark (a zone already there ends
    at once, COMPACT_SUCCESS, as its begin/end tracepoints show), at once
    (kcompactd_run without a clock; a run left paused ends first).
    Returns whether it ran."""
    if m.node[_N_KCD_TASK] != KCD_TASK_NONE:
        kcompactd_run(m, -1, cpu)
    if not proactive_compact_begin(m):
        return False
    kcompactd_run(m, -1, cpu)
    return True


@njit_inline
def proactive_compact_begin(m):
    """should_proactive_compact_node()'s score test, then compact_node(pgdat,
    true) begins: kcompactd's run (kcompactd_task) becomes a
    proactive one from the first zone, and the node's score is kept for
    kcompactd()'s "prev_score <= score" test at its end.  Returns whether
    it begins (not while another run is in progress)."""
    if m.node[_N_KCD_TASK] != KCD_TASK_NONE:
        return False
    if m.cfg[_CFG_PROACTIVE] == 0 or m.cfg[_CFG_COMPACTION] == 0:
        return False
    score = fragmentation_score_node(m)
    if score <= proactive_wmarks(m)[1]:
        return False
    m.node[_N_KCD_RUN_ORDER] = 0
    m.node[_N_KCD_TASK] = KCD_TASK_PROACTIVE
    m.node[_N_KCD_TASK_ZONE] = 0
    m.node[_N_KCD_TASK_SCORE] = score
    return True


@njit
def suitable_migration_source(m, pb, mt, flags):
    """suitable_migration_source(): any block, except that async direct
    compaction takes only MOVABLE blocks for movable requests and blocks of
    the request's own type for the others."""
    if (flags & CC_SYNC) != 0 or (flags & CC_DIRECT) == 0:
        return True
    if mt == MIGRATE_MOVABLE:
        return m.pb_mt[pb] == MIGRATE_MOVABLE
    return m.pb_mt[pb] == mt


@njit_inline
def migrate_batch_left(m, p, end, cc_order, in_batch):
    """cc->nr_migratepages while the folio at ``p`` waits for a target: the
    pages of the batch isolate_migratepages_block() took, from ``p`` on (a
    batch closes at COMPACT_CLUSTER_MAX pages or at the block's ``end``;
    ``in_batch`` of it are migrated).  Returns (pages, pfn the batch ends at)."""
    need = 0
    q = p
    while q < end:
        f = m.pg_flags[q]
        n = 1
        if f & PG_head:
            if m.pg_order[q] > 0:
                n = 1 << m.pg_order[q]
            if migratable(m, q, cc_order):
                need += n
                if in_batch + need >= COMPACT_CLUSTER_MAX:
                    q += n
                    break
        elif (f & PG_buddy) and m.pg_order[q] > 0:
            n = 1 << m.pg_order[q]
        q += n
    return need, min(q, end)


@njit_inline
def set_cached_migrate(m, z, pfn):
    """Both cached migrate pfns (zone->compact_cached_migrate_pfn[0] and
    [1]) at ``pfn``, as reset_cached_positions() and
    __reset_isolation_suitable() set them."""
    m.zstat[z, _Z_MIGRATE_PFN_ASYNC] = pfn
    m.zstat[z, _Z_MIGRATE_PFN_SYNC] = pfn


@njit_inline
def update_cached_migrate(m, z, pfn, sync):
    """update_cached_migrate(): where async (and, for a sync compaction,
    sync) compactions restart, moved forward only, to pageblock_end_pfn(pfn)
    (for the end of a block: the end of the next one, as the kernel's)."""
    pfn = ((pfn >> pageblock_order) + 1) << pageblock_order
    if pfn > m.zstat[z, _Z_MIGRATE_PFN_ASYNC]:
        m.zstat[z, _Z_MIGRATE_PFN_ASYNC] = pfn
    if sync and pfn > m.zstat[z, _Z_MIGRATE_PFN_SYNC]:
        m.zstat[z, _Z_MIGRATE_PFN_SYNC] = pfn


@njit
def compact_zone(m, z, order, mt, flags, cpu, proactive_low):
    """compact_zone() with the compact_control switches ``flags`` (CC_*):
    returns a compact_result.  ``proactive_low`` >= 0 with CC_PROACTIVE: done
    once the zone's fragmentation score is at most that, given up
    (PARTIAL_SKIPPED) while kswapd runs.  Migration frees go to the
    compacting cpu's pcp lists; for order > 0 those lists are drained into
    the zone once the migrate scanner leaves the block it migrated from
    (lru_add_drain_cpu_zone), so the freed pages can merge."""
    # a CC_BUDGET compaction's row of cc_resume: kcompactd's or a write's
    slot = CCR_SLOT_KCOMPACTD if (flags & CC_KCOMPACTD) != 0 else CCR_SLOT_WRITE
    resumed = (flags & CC_BUDGET) != 0 and m.cc_resume[slot, CCR_ACTIVE] != 0
    if not resumed and compaction_restarting(m, z, order):
        reset_isolation_suitable_zone(m, z)
    whole_zone = (flags & CC_WHOLE_ZONE) != 0
    ignore_skip = (flags & CC_IGNORE_SKIP) != 0
    kcompactd = (flags & CC_KCOMPACTD) != 0
    # kcompactd compacts for the order of a failed request as GFP_KERNEL; the
    # [SIM] what-if compaction_order_check=usable reads that order as the
    # THP-sized movable request it was woken for, in its stop test too
    fin_mt = mt
    if kcompactd and spb_compact_check_usable(m, order, MIGRATE_MOVABLE):
        fin_mt = MIGRATE_MOVABLE
    zs = m.zone_start[z]
    ze = m.zone_end[z]
    sync = 1 if (flags & CC_SYNC) != 0 else 0
    # (a resumed compaction takes its scanners from its cc_resume row below)
    mpfn = zs & ~(pageblock_nr_pages - 1)
    fpfn = (ze - 1) & ~(pageblock_nr_pages - 1)
    if not whole_zone and not resumed:
        # compact_cached_migrate_pfn[sync]; out of the zone: both restart
        # at its start.  A migrate scanner that restarts at or below where
        # __reset_isolation_suitable() put it scans the whole zone
        # (compact_init_migrate_pfn: scanners that meet then COMPLETE)
        mpfn = m.zstat[z, _Z_MIGRATE_PFN_SYNC if sync else _Z_MIGRATE_PFN_ASYNC]
        fpfn = m.zstat[z, _Z_FREE_PFN]
        if fpfn < zs or fpfn >= ze:
            fpfn = (ze - 1) & ~(pageblock_nr_pages - 1)
            m.zstat[z, _Z_FREE_PFN] = fpfn
        if mpfn < zs or mpfn >= ze:
            mpfn = zs
            set_cached_migrate(m, z, mpfn)
        init = m.zstat[z, _Z_INIT_MIGRATE_PFN]
        if init != 0 and mpfn <= init:          # 0: never reset
            whole_zone = True
    # an async compaction keeps the sync cached pfn with its own while the
    # blocks it scans isolate nothing, if the two were equal (update_cached)
    update_cached = sync == 0 and \
        m.zstat[z, _Z_MIGRATE_PFN_ASYNC] == m.zstat[z, _Z_MIGRATE_PFN_SYNC]
    m.cc_n[0] = 0
    fast_fail = 0           # cc->fast_search_fail
    search_order = order    # cc->search_order
    result = COMPACT_CONTINUE
    mscanned = 0
    fscanned = 0
    # kcompactd's run takes [SIM] time (kcompactd_cost_ns): its clock moves
    # on with the pages scanned and migrated
    kclock0 = m.node[_N_KCD_CLOCK]
    migrated0 = m.vm[_VM_MIGRATE_OK]
    budget = -1
    scanned0 = 0
    if flags & CC_BUDGET:
        r = m.cc_resume[slot]
        budget = r[CCR_BUDGET_NS]
        if resumed:
            # the paused compaction of this zone goes on where it stopped
            # (kcompactd's clock from where it began: the cost counts from there)
            mpfn = r[CCR_MPFN]
            fpfn = r[CCR_FPFN]
            fast_fail = r[CCR_FAST_FAIL]
            search_order = r[CCR_SEARCH_ORDER]
            migrated0 -= r[CCR_MIGRATED]
            scanned0 = r[CCR_SCANNED]
            kclock0 = r[CCR_CLOCK0]
            whole_zone = r[CCR_WHOLE_ZONE] != 0
    paused = False
    if not resumed:
        trace_event(m, EV_COMPACTION_BEGIN, zs, sync, mpfn, fpfn, ze, flags << 8)
    while True:
        if (fpfn >> pageblock_order) <= (mpfn >> pageblock_order):
            result = COMPACT_COMPLETE if whole_zone else COMPACT_PARTIAL_SKIPPED
            # reset_cached_positions(): restart from the zone ends next time
            # (cc->migrate_pfn, which mm_compaction_end prints, stays where
            # the scanners met); a direct compaction asks kswapd to clear the
            # skip bits when it next sleeps (compact_blockskip_flush)
            set_cached_migrate(m, z, zs)
            m.zstat[z, _Z_FREE_PFN] = (ze - 1) & ~(pageblock_nr_pages - 1)
            if flags & CC_DIRECT:
                m.zstat[z, _Z_BLOCKSKIP_FLUSH] = 1
            break
        if kcompactd:
            m.node[_N_KCD_CLOCK] = kclock0 + kcompactd_cost_ns(
                m, scanned0 + mscanned + fscanned, m.vm[_VM_MIGRATE_OK] - migrated0)
        if budget >= 0 and kcompactd_cost_ns(m, scanned0 + mscanned + fscanned,
                                             m.vm[_VM_MIGRATE_OK] - migrated0) > budget:
            # out of time: pause at this block (its cc_resume row keeps the
            # scanners; CC_BUDGET runs are sync, so update_cached is False)
            r = m.cc_resume[slot]
            r[CCR_ACTIVE] = 1
            r[CCR_ZONE] = z
            r[CCR_MPFN] = mpfn
            r[CCR_FPFN] = fpfn
            r[CCR_FAST_FAIL] = fast_fail
            r[CCR_SEARCH_ORDER] = search_order
            r[CCR_MIGRATED] = m.vm[_VM_MIGRATE_OK] - migrated0
            r[CCR_SCANNED] = scanned0 + mscanned + fscanned
            r[CCR_CLOCK0] = kclock0
            r[CCR_WHOLE_ZONE] = 1 if whole_zone else 0
            paused = True
            break
        if flags & CC_PROACTIVE:
            if kswapd_is_running(m) or kswapd_woke_by(m, m.node[_N_KCD_CLOCK]):
                result = COMPACT_PARTIAL_SKIPPED
                break
            if zone_frag_score(m, z) <= proactive_low:
                result = COMPACT_SUCCESS
                break
        elif compact_finished(m, z, order, fin_mt):
            result = COMPACT_SUCCESS
            break
        pb = mpfn >> pageblock_order
        start = mpfn
        mpfn = (pb + 1) << pageblock_order
        if m.pb_zone[pb] != z:
            continue
        if m.cfg[_CFG_SPB] != 0 and spb_compaction_skip(m, start):
            # v2 38/40: a tainted SPB without movable pages is skipped whole
            mpfn = ((start >> SUPERPAGEBLOCK_ORDER) + 1) << SUPERPAGEBLOCK_ORDER
            continue
        if not ignore_skip and (m.pb_flags[pb] & PB_compact_skip):
            continue                    # isolation_suitable(): the cached pfn stays
        if m.pb_mt[pb] == MIGRATE_ISOLATE:
            continue
        if not suitable_migration_source(m, pb, mt, flags):
            update_cached_migrate(m, z, mpfn, sync)
            continue
        # isolate_migratepages_block + migrate_pages, COMPACT_CLUSTER_MAX at a time
        p = start
        end = mpfn
        isolated_any = False
        skipped_any = False
        enomem = False
        bend = end
        in_batch = 0
        # compact_zone()'s finish_pageblock: a batch closed inside the block
        # and migrated, so the next isolate_migratepages_block() call
        # finishes the block; last_isolated: that last call isolated pages
        finish_pageblock = False
        last_isolated = False
        while p < end:
            mscanned += 1
            f = m.pg_flags[p]
            if f & (PG_buddy | PG_head) and m.pg_order[p] >= 0:
                o = m.pg_order[p]
            else:
                o = 0
            if (f & PG_head) and not migratable(m, p, order):
                skipped_any = True
            if f & PG_head and migratable(m, p, order):
                dst = compaction_alloc(m, z, o)
                if dst < 0:
                    # the list holds no page this large: one isolate_freepages()
                    # for what is left of the batch, down to the block after
                    # the migrate scanner's (pageblock_end_pfn(cc->migrate_pfn))
                    need, bend = migrate_batch_left(m, p, end, order, in_batch)
                    low = end if bend < end else end + pageblock_nr_pages
                    fpfn, sc, fast_fail, search_order = isolate_freepages(
                        m, z, fpfn, low, bend, order, need, flags, fast_fail, search_order)
                    fscanned += sc
                    dst = compaction_alloc(m, z, o)
                if dst < 0:
                    # migrate_pages_batch(): -ENOMEM splits a large folio and
                    # migrates its base pages (MR_COMPACTION may split)
                    if o > 0 and m.cfg[_CFG_SPLIT] != 0 and split_lru_block(m, p):
                        continue
                    m.vm[_VM_MIGRATE_FAIL] += 1 << o
                    enomem = True
                    break
                migrate_block(m, p, dst, cc_source_cpu(m, cpu, m.vm[_VM_MIGRATE_OK] - migrated0))
                m.vm[_VM_ISOLATED] += 1 << o
                isolated_any = True
                last_isolated = True
                in_batch += 1 << o
                if in_batch >= COMPACT_CLUSTER_MAX:
                    in_batch = 0
                    if p + (1 << o) < end:
                        finish_pageblock = True
                        last_isolated = False
                    if m.capc[CAPC_PAGE] >= 0:
                        # a free in this batch was captured: migrate_pages()
                        # finished the batch, and compaction stops after it
                        p += 1 << o
                        break
            p += 1 << o
        if enomem and (fpfn >> pageblock_order) > (bend >> pageblock_order):
            # migrate_pages() -ENOMEM before the scanners met: compact_zone()
            # gives up (the batch's block is rescanned next time)
            mpfn = start
            result = COMPACT_CONTENDED
            break
        if p >= end and (not last_isolated or finish_pageblock):
            # isolate_migratepages_block() scanned to the block's end with
            # nothing isolated in its last call, or finishing the block:
            # set_pageblock_skip() and update_cached_migrate(); a block whose
            # one call isolated pages keeps neither
            m.pb_flags[pb] |= PB_compact_skip
            update_cached_migrate(m, z, end, sync)
        if not isolated_any:
            if update_cached:           # ISOLATE_NONE
                m.zstat[z, _Z_MIGRATE_PFN_SYNC] = m.zstat[z, _Z_MIGRATE_PFN_ASYNC]
            if p >= end and not skipped_any and m.cfg[_CFG_SPB] != 0:
                # S1 §9.1: nothing movable left in the block: PB_has_movable off
                # (kept while free MOVABLE fragments remain)
                superpageblock_clear_has_movable_call(m.spb, m, start)
        else:
            update_cached = False       # ISOLATE_SUCCESS
            if order > 0:                       # check_drain
                drain_zone_pages(m, z, cc_source_cpu(m, cpu, m.vm[_VM_MIGRATE_OK] - migrated0))
        if m.capc[CAPC_PAGE] >= 0:              # "Stop if a page has been captured"
            result = COMPACT_SUCCESS
            if p < end:
                # the block was not scanned to its end: the cached migrate pfn
                # stays at its start (update_cached_migrate() rounds a finished
                # block up), so the next compaction scans it again
                mpfn = start
            break
    if paused:
        # a paused compaction gives its isolated free pages back, on the cpu
        # its task is on: another compaction may run before it resumes, and
        # the model has one compact_control (the kernel keeps them in
        # cc->freepages).  Its free scanner resumes at or above the highest,
        # so they can be its targets again
        high = cc_release(m, z, cc_source_cpu(m, cpu, m.vm[_VM_MIGRATE_OK] - migrated0))
        m.cc_resume[slot, CCR_FPFN] = max(m.cc_resume[slot, CCR_FPFN], high)
    else:
        cc_release(m, z, cc_end_cpu(m, cpu))
    if kcompactd:
        m.node[_N_KCD_CLOCK] = kclock0 + kcompactd_cost_ns(
            m, scanned0 + mscanned + fscanned, m.vm[_VM_MIGRATE_OK] - migrated0)
    if not paused:
        if flags & CC_BUDGET:
            m.cc_resume[slot, :] = 0
        trace_event(m, EV_COMPACTION_END, zs, sync, mpfn, fpfn, ze, result | (flags << 8))
    # compact_zone() counts every compaction's scans (cc->total_*_scanned);
    # kcompactd_do_work() adds kcompactd's to the daemon counters, and so
    # does v6.12's proactive compact_node() (v6.1's proactive_compact_node()
    # does not)
    m.vm[_VM_MSCAN] += mscanned
    m.vm[_VM_FSCAN] += fscanned
    if kcompactd and not ((flags & CC_PROACTIVE) != 0 and m.cfg[_CFG_VERSION] == KV_6_1):
        m.vm[_VM_DMSCAN] += mscanned
        m.vm[_VM_DFSCAN] += fscanned
    return result


@njit_inline
def compact_zone_order(m, z, order, mt, flags, cpu):
    """compact_zone_order(): compact_zone() with a capture_control published
    for the zone (unless the compaction_capture switch is off), withdrawn
    before returning; a captured page makes the result COMPACT_SUCCESS and
    stays in m.capc[CAPC_PAGE] for __alloc_pages_direct_compact()."""
    if m.cfg[_CFG_CAPTURE] != 0:
        m.capc[CAPC_ZONE] = z
        m.capc[CAPC_ORDER] = order
        m.capc[CAPC_MT] = mt
    status = compact_zone(m, z, order, mt, flags, cpu, -1)
    m.capc[CAPC_ZONE] = -1
    if m.capc[CAPC_PAGE] >= 0:
        status = COMPACT_SUCCESS
    return status


@njit
def try_to_compact_pages(m, order, gfp, alloc_flags, highest_zoneidx, prio, cpu):
    """try_to_compact_pages(): each zone of the zonelist, skipping deferred ones
    (unless SYNC_FULL); stop at the first success (a captured page among them).  (compact_stall is counted
    by the caller, __alloc_pages_direct_compact, as in the kernel.)"""
    if (gfp & _GFP_IO) == 0 or m.cfg[_CFG_COMPACTION] == 0:     # gfp_compaction_allowed()
        return COMPACT_SKIPPED
    mt = gfp_migratetype(gfp)
    rc = COMPACT_SKIPPED
    for z in range(highest_zoneidx, -1, -1):
        if not populated_zone(m, z):
            continue
        if prio > COMPACT_PRIO_SYNC_FULL and compaction_deferred(m, z, order):
            rc = max(rc, COMPACT_DEFERRED)
            continue
        if compaction_wmark_ok(m, z, order, mt, wmark_pages(m, z, alloc_flags & 3),
                               highest_zoneidx, alloc_flags):
            rc = max(rc, COMPACT_SUCCESS)
            break
        if not compaction_suitable(m, z, order, highest_zoneidx):
            rc = max(rc, COMPACT_SKIPPED)
            continue
        flags = CC_DIRECT
        if prio != COMPACT_PRIO_ASYNC:
            flags |= CC_SYNC
        if prio == COMPACT_PRIO_SYNC_FULL:          # MIN_COMPACT_PRIORITY
            flags |= CC_WHOLE_ZONE | CC_IGNORE_SKIP | CC_IGNORE_BLOCK
        status = compact_zone_order(m, z, order, mt, flags, cpu)
        rc = max(rc, status)
        if status == COMPACT_SUCCESS:
            compaction_defer_reset(m, z, order, False)
            break
        if prio != COMPACT_PRIO_ASYNC and (status == COMPACT_COMPLETE
                                           or status == COMPACT_PARTIAL_SKIPPED):
            defer_compaction(m, z, order)
    return rc


@njit
def drain_zone_all_cpus(m, z):
    """drain_all_pages(zone): every cpu's lists of one zone."""
    for cpu in range(m.pcp.shape[1]):
        drain_zone_pages(m, z, cpu)


@njit
def kcompactd_node_suitable(m):
    """kcompactd_node_suitable(), wakeup_kcompactd()'s test: a zone up to
    kcompactd's index needs compaction for its pending order (the MIN mark
    not met for it) and suits it, both asked with kcompactd's index (v6.12
    compaction_suit_allocation_order(zone, order, highest_zoneidx,
    ALLOC_WMARK_MIN); v6.1 compaction_suitable(zone, order, 0,
    highest_zoneidx) == COMPACT_CONTINUE)."""
    order = m.node[_N_KCD_ORDER]
    idx = m.node[_N_KCD_IDX]
    if order <= 0:
        return False
    for z in range(idx + 1):
        if not populated_zone(m, z):
            continue
        if compaction_wmark_ok(m, z, order, MIGRATE_MOVABLE, wmark_pages(m, z, 0), idx, 0):
            continue
        if compaction_suitable(m, z, order, idx):
            return True
    return False


@njit
def kcompactd_do_work(m, cpu):
    """kcompactd_do_work() at once: kcompactd_do_work_begin(), then
    kcompactd_run() without a clock (a run left paused ends first).
    Returns 1 if it ran."""
    if m.node[_N_KCD_TASK] != KCD_TASK_NONE:
        kcompactd_run(m, -1, cpu)
    if kcompactd_do_work_begin(m) == 0:
        return 0
    kcompactd_run(m, -1, cpu)
    return 1


@njit_inline
def kcompactd_do_work_begin(m):
    """kcompactd_do_work() begins for the recorded order and zone
    index (taken, and reset, here): its counters and tracepoint, and
    kcompactd's run (kcompactd_task) from the first zone.  Returns 1 if it
    runs (never while another run is in progress)."""
    if m.node[_N_KCD_TASK] != KCD_TASK_NONE:
        return 0
    order = m.node[_N_KCD_ORDER]
    idx = m.node[_N_KCD_IDX]
    m.node[_N_KCD_WAIT] = 0
    m.node[_N_KCD_ORDER] = 0
    if m.cfg[_CFG_COMPACTION] == 0 or order <= 0:
        return 0
    m.node[_N_KCD_RUNS] += 1
    m.node[_N_KCD_RUN_ORDER] = order
    m.vm[_VM_DWAKE] += 1
    trace_event(m, EV_KCOMPACTD_WAKE, 0, order, idx, 0, 0, 0)
    m.node[_N_KCD_TASK] = KCD_TASK_DO_WORK
    m.node[_N_KCD_TASK_ZONE] = 0
    m.node[_N_KCD_TASK_IDX] = idx
    return 1


@njit_inline
def kcompactd_zone_wanted(m, z, order, idx):
    """kcompactd_do_work()'s tests before it compacts zone ``z``: populated,
    not deferred, below the order's MIN mark and suitable.  Whether a zone
    needs it is asked with the zone's own index
    (compaction_suit_allocation_order(zone, cc.order, zoneid,
    ALLOC_WMARK_MIN); v6.1 zone_watermark_ok with zoneid); whether it suits
    it, with kcompactd's recorded index: compact_zone() asks again with
    cc->highest_zoneidx and returns COMPACT_SKIPPED, without scanning,
    draining or deferring, for a zone that lacks the free pages above the
    lowmem_reserve against that index (v6.12 compaction_suit_allocation_order,
    v6.1 compaction_suitable in compact_zone)."""
    if not populated_zone(m, z):
        return False
    if compaction_deferred(m, z, order):
        return False
    # (kcompactd is woken for the order of a failed request; the [SIM]
    # what-if below reads it as a THP-sized movable one)
    if compaction_wmark_ok(m, z, order, MIGRATE_MOVABLE, wmark_pages(m, z, 0), z, 0):
        return False
    return compaction_suitable(m, z, order, idx)     # compact_zone()'s test


@njit
def kcompactd_run(m, now, cpu):
    """kcompactd's run (kcompactd_task) from zone kcompactd_task_zone on, on
    ``cpu``: [SIM] the cpu of the request before which this part of the run
    goes on (the kernel's kthread is scheduled on whichever cpu is free and
    moves between them within a run).  kcompactd_do_work(): SYNC_LIGHT
    compaction for the recorded order in each zone up to the recorded index
    that kcompactd_zone_wanted(), as a GFP_KERNEL request (cc->migratetype
    UNMOVABLE); a zone it could not finish has its pcp lists drained and
    its compaction deferred.  compact_node(pgdat, true): every populated
    zone, proactively.  ``now`` < 0: the run goes to its end at once.
    Otherwise (kcompactd_concurrent) kcompactd runs beside the requests: a
    zone's compaction pauses once kcompactd's clock (kcompactd_cost_ns)
    passes ``now`` (CC_BUDGET, cc_resume row CCR_SLOT_KCOMPACTD), and the
    run stops before the next zone while its clock is past ``now``, whose
    tests it asks when its clock gets there; the next call resumes it.
    Returns whether the run ended."""
    task = m.node[_N_KCD_TASK]
    order = m.node[_N_KCD_RUN_ORDER]
    idx = m.node[_N_KCD_TASK_IDX]
    r = m.cc_resume[CCR_SLOT_KCOMPACTD]
    if task == KCD_TASK_PROACTIVE:
        order = -1
        idx = m.zstat.shape[0] - 1
        flags = CC_SYNC | CC_WHOLE_ZONE | CC_IGNORE_SKIP | CC_KCOMPACTD | CC_PROACTIVE
        low = proactive_wmarks(m)[0]
    else:
        flags = CC_SYNC | CC_KCOMPACTD
        low = -1
    z = m.node[_N_KCD_TASK_ZONE]
    while z <= idx:
        resuming = r[CCR_ACTIVE] != 0
        if not resuming:
            if now >= 0 and m.node[_N_KCD_CLOCK] > now:
                m.node[_N_KCD_TASK_ZONE] = z
                return False
            if task == KCD_TASK_PROACTIVE:
                if not populated_zone(m, z):
                    z += 1
                    continue
            elif not kcompactd_zone_wanted(m, z, order, idx):
                z += 1
                continue
        f = flags
        if now >= 0:
            f |= CC_BUDGET
            r[CCR_BUDGET_NS] = now - (r[CCR_CLOCK0] if resuming else m.node[_N_KCD_CLOCK])
        elif resuming:
            f |= CC_BUDGET              # a paused zone finished at once
            r[CCR_BUDGET_NS] = -1
        status = compact_zone(m, z, order, MIGRATE_UNMOVABLE, f, cpu, low)
        if r[CCR_ACTIVE] != 0:
            m.node[_N_KCD_TASK_ZONE] = z
            return False
        if task == KCD_TASK_DO_WORK:
            if status == COMPACT_SUCCESS:
                compaction_defer_reset(m, z, order, False)
            elif status == COMPACT_COMPLETE or status == COMPACT_PARTIAL_SKIPPED:
                drain_zone_all_cpus(m, z)
                defer_compaction(m, z, order)
        z += 1
    m.node[_N_KCD_TASK] = KCD_TASK_NONE
    m.node[_N_KCD_TASK_ZONE] = 0
    m.node[_N_KCD_TASK_IDX] = 0
    m.node[_N_KCD_TASK_SCORE] = 0
    return True


@njit_inline
def spb_compact_check_usable(m, order, mt):
    """The [SIM] what-if compaction_order_check=usable applies: SPB allocator,
    a movable request of pageblock order."""
    return (m.cfg[_CFG_SPB] != 0 and order == pageblock_order and mt == MIGRATE_MOVABLE
            and m.spb.cfg[SPB_CFG_COMPACT_ORDER_CHECK] == COMPACT_CHECK_USABLE)


@njit
def spb_movable_usable_block(m, z):
    """[SIM] what-if: a free pageblock (PB_all_free) of zone z in an SPB that a
    movable request may take: clean or empty, or tainted above its tainted
    reserve (PASS_4 and __rmqueue_sb_find_fallback() skip the others when
    movable_reserve_skip is on), and not isolated whole by alloc_contig_range()
    (its first pageblock MIGRATE_ISOLATE)."""
    spb = m.spb
    first = spb.zone_first[z]
    for i in range(first, first + spb.zone_count[z]):
        if spb.nr_free[i] == 0:
            continue
        pb = spb.start_pfn[i] >> pageblock_order
        if 0 <= pb < m.pb_mt.shape[0] and m.pb_mt[pb] == MIGRATE_ISOLATE:
            continue
        if spb_list_is_tainted(spb.list_id[i]) and spb_movable_skips(spb, i):
            continue
        return True
    return False


@njit_inline
def compaction_wmark_ok(m, z, order, mt, mark, highest_zoneidx, alloc_flags):
    """compaction_suit_allocation_order()'s first test (and kcompactd's): the
    order's watermark is already met, so compaction returns COMPACT_SUCCESS
    without scanning.  Under the SPB allocator __zone_watermark_ok() reads the
    zone's shadow counts, which include free blocks a movable request may not
    take (a tainted SPB's reserve), as S1 does; the [SIM] what-if
    compaction_order_check=usable also asks spb_movable_usable_block()."""
    ok = zone_watermark_ok(m, z, order, mark, highest_zoneidx, alloc_flags,
                           m.zstat[z, ZS_NR_FREE])
    if ok and spb_compact_check_usable(m, order, mt):
        return spb_movable_usable_block(m, z)
    return ok


@njit
def spb_compaction_skip(m, pfn):
    """v2 38/40: isolate_migratepages_block() bails out for pageblocks inside
    tainted SPBs with nr_movable == 0 (switch compaction_skip_tainted)."""
    spb = m.spb
    if spb.cfg[SPB_CFG_COMPACT_SKIP] == 0:
        return False
    i = page_superpageblock(spb, m, pfn)
    if i < 0 or spb.nr_movable[i] != 0 or not spb_list_is_tainted(spb.list_id[i]):
        return False
    spb.stat[spb.zone[i], ST_COMPACT_SKIPS] += 1
    return True


from .spb.lists import (page_superpageblock, spb_list_is_tainted, spb_movable_skips,  # noqa: E402
                        superpageblock_clear_has_movable_call,
                        superpageblock_range_now_used_call)
from .spb.params import (COMPACT_CHECK_USABLE, SPB_CFG_COMPACT_ORDER_CHECK,  # noqa: E402
                         SPB_CFG_COMPACT_SKIP, ST_COMPACT_SKIPS)
