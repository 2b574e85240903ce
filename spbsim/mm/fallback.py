"""Fallbacks to other migratetypes and the highatomic reserve (mm/page_alloc.c).

Recent kernels (v6.15+): ``__rmqueue`` tries ``__rmqueue_smallest``, then
``__rmqueue_claim`` (largest fallback buddy first, claim the whole pageblock
if at least half of it is free or compatible), then ``__rmqueue_steal``
(smallest fallback buddy, block keeps its type).  ``version=6.12`` selects the
older ``__rmqueue_fallback`` + ``steal_suitable_fallback``.
"""
from .spb.alloc import spb_rmqueue_after_hint, spb_rmqueue_hint
from .buddy import (change_pageblock_range, del_page_from_free_list, expand, first_free_pfn,
                    move_freepages, move_freepages_block, move_to_free_list,
                    page_del_and_expand, pageblock_set_has,
                    prep_move_freepages_block, rmqueue_smallest)
from .const import (ALLOC_NOFRAGMENT, KV_6_1, MAX_PAGE_ORDER,
                    MIGRATE_HIGHATOMIC, MIGRATE_MOVABLE, MIGRATE_RECLAIMABLE,
                    MIGRATE_UNMOVABLE, NR_PAGE_ORDERS, RMQUEUE_CLAIM,
                    RMQUEUE_NORMAL, RMQUEUE_STEAL, ZONE_BOOSTED_WATERMARK,
                    ALLOC_KSWAPD, pageblock_nr_pages, pageblock_order)
from .jit import njit, njit_inline
from .pbits import fallback_type
from .state import (CFG, SIMSTAT, ZS_BOOST, ZS_FLAGS, ZS_MANAGED,
                    ZS_RESERVED_HIGHATOMIC, ZS_WMARK_HIGH)
from .tracepoint import trace_mm_page_alloc_extfrag

_CFG_VERSION = CFG["version"]
_CFG_SPB = CFG["spb"]
_CFG_BOOST_FACTOR = CFG["watermark_boost_factor"]
_SIM_CLAIM_ATTEMPTS = SIMSTAT["sim_claim_attempts"]
_SIM_CLAIM_SUCCESS = SIMSTAT["sim_claim_success"]
_SIM_CLAIM_WHOLE = SIMSTAT["sim_claim_whole_block"]
_SIM_STEAL = SIMSTAT["sim_steal"]
_SIM_BOOST = SIMSTAT["sim_boost"]
_SIM_HA_RES = SIMSTAT["sim_highatomic_reserve"]
_SIM_HA_UNRES = SIMSTAT["sim_highatomic_unreserve"]
_SIM_VISITED = SIMSTAT["sim_freelists_visited"]

FB_CLAIM, FB_STEAL, FB_CLAIM_WHOLE = 0, 1, 2


@njit_inline
def should_try_claim_block(order, start_mt):
    """should_try_claim_block() (can_steal_fallback() in v6.12)."""
    if order >= pageblock_order:
        return True
    if order >= pageblock_order // 2:
        return True
    if start_mt == MIGRATE_RECLAIMABLE or start_mt == MIGRATE_UNMOVABLE:
        return True
    return False


@njit
def find_suitable_fallback(m, z, order, start_mt, claimable):
    """find_suitable_fallback(): first fallback type with a block at this order.

    -2: not claimable at this order (and so not at any lower one); -1: none.
    """
    if claimable and not should_try_claim_block(order, start_mt):
        return -2
    if m.nr_free[z, order] == 0:
        return -1
    for i in range(2):
        fb = fallback_type(start_mt, i)
        m.sim[_SIM_VISITED] += 1
        if m.fa_head[z, order, fb] >= 0:
            return fb
    return -1


@njit
def boost_watermark(m, z):
    """boost_watermark(): raise the zone's watermark boost by a pageblock."""
    factor = m.cfg[_CFG_BOOST_FACTOR]
    if factor == 0:
        return False
    if pageblock_nr_pages * 4 > m.zstat[z, ZS_MANAGED]:
        return False
    max_boost = m.zstat[z, ZS_WMARK_HIGH] * factor // 10000
    if max_boost == 0:
        return False
    if max_boost < pageblock_nr_pages:
        max_boost = pageblock_nr_pages
    b = m.zstat[z, ZS_BOOST] + pageblock_nr_pages
    m.zstat[z, ZS_BOOST] = b if b < max_boost else max_boost
    m.sim[_SIM_BOOST] += 1
    return True


@njit
def claim_whole_buddy(m, z, pfn, current_order, order, start_type, block_type):
    """The >= pageblock_order branch of try_to_claim_block(): retype and split."""
    del_page_from_free_list(m, pfn, z, current_order, block_type)
    change_pageblock_range(m, pfn, current_order, start_type)
    expand(m, z, pfn, order, current_order, start_type)
    pageblock_set_has(m, pfn, order, start_type)
    m.sim[_SIM_CLAIM_WHOLE] += 1
    m.fb_stat[FB_CLAIM_WHOLE, start_type, block_type] += 1
    return pfn


@njit
def _alike_pages(start_type, block_type, free_pages, movable_pages):
    if start_type == MIGRATE_MOVABLE:
        return movable_pages
    if block_type == MIGRATE_MOVABLE:
        return pageblock_nr_pages - (free_pages + movable_pages)
    return 0


@njit
def try_to_claim_block(m, z, pfn, current_order, order, start_type, block_type, alloc_flags):
    """try_to_claim_block(): take over a pageblock at least half free-or-alike."""
    if current_order >= pageblock_order:
        return claim_whole_buddy(m, z, pfn, current_order, order, start_type, block_type)
    if boost_watermark(m, z) and (alloc_flags & ALLOC_KSWAPD):
        m.zstat[z, ZS_FLAGS] |= ZONE_BOOSTED_WATERMARK
    start, free_pages, movable_pages = prep_move_freepages_block(m, z, pfn)
    if start < 0:
        return -1
    alike = _alike_pages(start_type, block_type, free_pages, movable_pages)
    if free_pages + alike >= (1 << (pageblock_order - 1)):
        move_freepages_block(m, z, start, block_type, start_type)
        # claim relabel: the old content stays (SPB S1 sets both bits)
        pageblock_set_has(m, start, 0, block_type)
        return rmqueue_smallest(m, z, order, start_type)
    return -1


@njit
def rmqueue_claim(m, z, order, start_mt, alloc_flags):
    """__rmqueue_claim(): largest fallback buddy first; one candidate per order."""
    min_order = order
    if order < pageblock_order and (alloc_flags & ALLOC_NOFRAGMENT):
        min_order = pageblock_order
    for current_order in range(MAX_PAGE_ORDER, min_order - 1, -1):
        fb = find_suitable_fallback(m, z, current_order, start_mt, True)
        if fb == -1:
            continue
        if fb == -2:
            break
        pfn = m.fa_head[z, current_order, fb]
        m.sim[_SIM_CLAIM_ATTEMPTS] += 1
        page = try_to_claim_block(m, z, pfn, current_order, order, start_mt, fb, alloc_flags)
        if page >= 0:
            m.sim[_SIM_CLAIM_SUCCESS] += 1
            m.fb_stat[FB_CLAIM, start_mt, fb] += 1
            trace_mm_page_alloc_extfrag(m, page, pfn, order, current_order, start_mt, fb)
            return page
    return -1


@njit
def rmqueue_steal(m, z, order, start_mt):
    """__rmqueue_steal(): smallest fallback buddy; the block keeps its type."""
    for current_order in range(order, NR_PAGE_ORDERS):
        fb = find_suitable_fallback(m, z, current_order, start_mt, False)
        if fb < 0:
            continue
        pfn = m.fa_head[z, current_order, fb]
        page_del_and_expand(m, z, pfn, order, current_order, fb)
        pageblock_set_has(m, pfn, order, start_mt)
        m.sim[_SIM_STEAL] += 1
        m.fb_stat[FB_STEAL, start_mt, fb] += 1
        trace_mm_page_alloc_extfrag(m, pfn, pfn, order, current_order, start_mt, fb)
        return pfn
    return -1


# ---------------------------------------------------------------- v6.1

@njit
def steal_suitable_fallback(m, z, pfn, current_order, start_type, alloc_flags, whole_block):
    """steal_suitable_fallback() of v6.1 (before "mm: page_alloc: fix freelist
    movement during block conversion", v6.10): a >= pageblock_order buddy takes
    the request's type; else, allowed to steal the whole block, move every free
    page of the block to ``start_type``'s lists and retype the block if at
    least half of it is free or alike; otherwise move this buddy alone.  The
    moved pages stay on ``start_type``'s lists whatever their block's type;
    the caller's retry (__rmqueue_smallest()) takes the request from them."""
    block_type = m.pb_mt[pfn >> pageblock_order]
    if block_type != MIGRATE_HIGHATOMIC:
        if current_order >= pageblock_order:
            change_pageblock_range(m, pfn, current_order, start_type)
            move_to_free_list(m, pfn, z, current_order, m.pg_list_mt[pfn], start_type)
            m.sim[_SIM_CLAIM_WHOLE] += 1
            m.sim[_SIM_CLAIM_SUCCESS] += 1
            m.fb_stat[FB_CLAIM_WHOLE, start_type, block_type] += 1
            m.fb_stat[FB_CLAIM, start_type, block_type] += 1
            return
        if boost_watermark(m, z) and (alloc_flags & ALLOC_KSWAPD):
            m.zstat[z, ZS_FLAGS] |= ZONE_BOOSTED_WATERMARK
        if whole_block:
            m.sim[_SIM_CLAIM_ATTEMPTS] += 1
            start, free_pages, movable_pages = prep_move_freepages_block(m, z, pfn)
            if start >= 0:
                move_freepages(m, z, start, start_type)
                alike = _alike_pages(start_type, block_type, free_pages, movable_pages)
                if free_pages + alike >= (1 << (pageblock_order - 1)):
                    m.pb_mt[start >> pageblock_order] = start_type
                    pageblock_set_has(m, start, 0, block_type)
                    m.sim[_SIM_CLAIM_SUCCESS] += 1
                    m.fb_stat[FB_CLAIM, start_type, block_type] += 1
                else:
                    m.sim[_SIM_STEAL] += 1
                    m.fb_stat[FB_STEAL, start_type, block_type] += 1
                return
    move_to_free_list(m, pfn, z, current_order, m.pg_list_mt[pfn], start_type)
    m.sim[_SIM_STEAL] += 1
    m.fb_stat[FB_STEAL, start_type, block_type] += 1


@njit
def rmqueue_fallback_v61(m, z, order, start_mt, alloc_flags):
    """__rmqueue_fallback() before the v6.15 rework: the first (largest) order
    with any fallback; steal_suitable_fallback(), then __rmqueue()'s retry of
    __rmqueue_smallest() takes the request from ``start_mt``'s lists."""
    min_order = order
    if order < pageblock_order and (alloc_flags & ALLOC_NOFRAGMENT):
        min_order = pageblock_order
    found = -1
    fb = -1
    for current_order in range(MAX_PAGE_ORDER, min_order - 1, -1):
        fb = find_suitable_fallback(m, z, current_order, start_mt, False)
        if fb == -1:
            continue
        found = current_order
        break
    if found < 0:
        return -1
    can_steal = should_try_claim_block(found, start_mt)
    if not can_steal and start_mt == MIGRATE_MOVABLE and found > order:
        # find_smallest
        for current_order in range(order, NR_PAGE_ORDERS):
            fb = find_suitable_fallback(m, z, current_order, start_mt, False)
            if fb >= 0:
                found = current_order
                break
        can_steal = should_try_claim_block(found, start_mt)
    pfn = m.fa_head[z, found, fb]
    steal_suitable_fallback(m, z, pfn, found, start_mt, alloc_flags, can_steal)
    trace_mm_page_alloc_extfrag(m, pfn, pfn, order, found, start_mt, fb)
    return rmqueue_smallest(m, z, order, start_mt)


# ---------------------------------------------------------------- __rmqueue

@njit
def rmqueue_fallback(m, z, order, mt, alloc_flags, mode):
    """The part of __rmqueue() after __rmqueue_smallest() failed: claim, then
    steal (recent and 6.12 LTS), or __rmqueue_fallback() (v6.1).  Returns (pfn, mode)."""
    if m.cfg[_CFG_VERSION] == KV_6_1:
        return rmqueue_fallback_v61(m, z, order, mt, alloc_flags), RMQUEUE_NORMAL
    if mode <= RMQUEUE_CLAIM:
        page = rmqueue_claim(m, z, order, mt, alloc_flags)
        if page >= 0:
            return page, RMQUEUE_NORMAL
    if (alloc_flags & ALLOC_NOFRAGMENT) == 0:
        page = rmqueue_steal(m, z, order, mt)
        if page >= 0:
            return page, RMQUEUE_STEAL
    return -1, mode


@njit_inline
def rmqueue(m, z, order, mt, alloc_flags, mode):
    """__rmqueue(): returns (pfn or -1, new rmqueue_mode).

    ``mode`` persists across an rmqueue_bulk() refill so stages that already
    failed are skipped (recent kernels and 6.12 LTS; v6.1 always starts from
    smallest).
    CMA is not modelled.
    """
    if m.cfg[_CFG_SPB] != 0:
        # the hint step inline (a hit costs no call), the rest one call
        page = spb_rmqueue_hint(m, z, order, mt, alloc_flags)
        if page >= 0:
            return page, mode
        return spb_rmqueue_after_hint(m, z, order, mt, alloc_flags, mode)
    if mode == RMQUEUE_NORMAL or m.cfg[_CFG_VERSION] == KV_6_1:
        page = rmqueue_smallest(m, z, order, mt)
        if page >= 0:
            return page, mode
    return rmqueue_fallback(m, z, order, mt, alloc_flags, mode)


# ---------------------------------------------------------------- highatomic

@njit
def reserve_highatomic_pageblock(m, z, pfn, order):
    """reserve_highatomic_pageblock(): up to ~1% of the zone as HIGHATOMIC
    blocks (v6.8 on: none where 1% is under a block, else 1% rounded up to
    a block; v6.1: 1% plus a block, so small zones too)."""
    managed = m.zstat[z, ZS_MANAGED]
    if m.cfg[_CFG_VERSION] == KV_6_1:
        max_managed = managed // 100 + pageblock_nr_pages
    elif managed // 100 < pageblock_nr_pages:
        return
    else:
        max_managed = ((managed // 100) + pageblock_nr_pages - 1) & ~(pageblock_nr_pages - 1)
    if m.zstat[z, ZS_RESERVED_HIGHATOMIC] >= max_managed:
        return
    mt = m.pb_mt[pfn >> pageblock_order]
    if mt >= MIGRATE_HIGHATOMIC:
        return
    if order < pageblock_order:
        start = pfn & ~(pageblock_nr_pages - 1)
        if start < m.zone_start[z] or start + pageblock_nr_pages > m.zone_end[z]:
            return
        move_freepages_block(m, z, start, mt, MIGRATE_HIGHATOMIC)
        m.zstat[z, ZS_RESERVED_HIGHATOMIC] += pageblock_nr_pages
    else:
        change_pageblock_range(m, pfn, order, MIGRATE_HIGHATOMIC)
        m.zstat[z, ZS_RESERVED_HIGHATOMIC] += 1 << order
    m.sim[_SIM_HA_RES] += 1


@njit
def unreserve_highatomic_pageblock(m, highest_zoneidx, mt, force):
    """unreserve_highatomic_pageblock(): give one reserved block back to ``mt``,
    walking the zonelist from ``highest_zoneidx`` down."""
    for z in range(highest_zoneidx, -1, -1):
        if m.zstat[z, ZS_MANAGED] == 0:
            continue
        if not force and m.zstat[z, ZS_RESERVED_HIGHATOMIC] <= pageblock_nr_pages:
            continue
        for order in range(NR_PAGE_ORDERS):
            pfn = first_free_pfn(m, z, order, MIGRATE_HIGHATOMIC)
            if pfn < 0:
                continue
            size = pageblock_nr_pages if order < pageblock_order else 1 << order
            if size > m.zstat[z, ZS_RESERVED_HIGHATOMIC]:
                size = m.zstat[z, ZS_RESERVED_HIGHATOMIC]
            m.zstat[z, ZS_RESERVED_HIGHATOMIC] -= size
            if order < pageblock_order:
                start = pfn & ~(pageblock_nr_pages - 1)
                moved = move_freepages_block(m, z, start, MIGRATE_HIGHATOMIC, mt)
            else:
                move_to_free_list(m, pfn, z, order, MIGRATE_HIGHATOMIC, mt)
                change_pageblock_range(m, pfn, order, mt)
                moved = 1
            if moved > 0:
                m.sim[_SIM_HA_UNRES] += 1
                return True
    return False
