"""The superpageblock allocator's ``__rmqueue``: passes, claim and steal.

Details: docs/spb.md ("Module notes", `spbsim.mm.spb.alloc`).
"""
from ..buddy import (change_pageblock_range, del_page_from_free_list, expand,
                     move_freepages_block, page_del_and_expand, pageblock_set_has,
                     prep_move_freepages_block)
from ..const import (ALLOC_NOFRAGMENT, MAX_NR_ZONES, MAX_PAGE_ORDER,
                     MIGRATE_HIGHATOMIC, MIGRATE_ISOLATE, MIGRATE_MOVABLE,
                     MIGRATE_PCPTYPES, MIGRATE_RECLAIMABLE, MIGRATE_UNMOVABLE,
                     NR_PAGE_ORDERS, pageblock_nr_pages, pageblock_order)
from ..jit import njit, njit_inline
from ..pbits import fallback_type
from ..state import CUR_CLOCK, CUR_CPU, SIMSTAT, TL_BORROW, TL_CLAIM
from ..taint import pageblock_taint
from ..tracepoint import (EV_SPB_ALLOC_WALK, EV_SPB_CLAIM_REFUSED,
                          EV_SPB_FALL_THROUGH, EV_ZONE_LOCKED,
                          trace_event, trace_mm_page_alloc_extfrag)
from .lists import (spb_below_shrink_high_water, spb_maybe_start_defrag,
                    spb_movable_skips, spb_tainted_reserve, spb_update_list,
                    __spb_set_has_type)
from ..const import ALLOC_NOFRAG_TAINTED_OK, ALLOC_SPB_CHEAP, PB_has_movable
from .params import (NR_EVACUATE_ITEMS, NR_SB_FULLNESS, PEND_KEVAC_N, PEND_KEVAC_Q,
                     SPB_CFG_KEVACUATE, ST_KEVAC_DROPPED, ST_KEVAC_QUEUED,
                     PEND_EVAC_LAST_NS, PEND_EVAC_MT, PEND_EVAC_ORDER,
                     PEND_EVACUATE, PEND_SLAB_SHRINK, SB_CLEAN, SB_TAINTED,
                     SB_FULL_75, SPB_AGGRESSIVE_THRESHOLD,
                     SPB_ALLOC_OUTCOME_NO_PAGE, SPB_ALLOC_OUTCOME_PASS_1,
                     SPB_ALLOC_OUTCOME_PASS_2, SPB_ALLOC_OUTCOME_PASS_2B,
                     SPB_ALLOC_OUTCOME_PASS_2C, SPB_ALLOC_OUTCOME_PASS_2D,
                     SPB_ALLOC_OUTCOME_PASS_3, SPB_ALLOC_OUTCOME_PASS_4,
                     SPB_CFG_AGGRESSIVE, SPB_CFG_CHEAP_REFUSE, SPB_CFG_DEFERRED_EVAC,
                     SPB_CFG_HIGHATOMIC_PASS_2, SPB_CFG_HINT, SPB_CFG_LAST_CHANCE, SPB_CFG_MOVABLE_STEER,
                     SPB_CFG_NO_CROSS_MIX, SPB_CFG_PASS3_CLAIM, SPB_CFG_PASS_2B,
                     SPB_CFG_PASS_2C, SPB_CFG_PASS_2D, SPB_CFG_REACT,
                     SPB_CFG_SLAB_SHRINK, SPB_CFG_TAINTED_OK_GATE,
                     SPB_CLAIM_REFUSED_CROSS_TYPE_NOT_FREE,
                     SPB_CLAIM_REFUSED_INSUFFICIENT_COMPAT, SPB_CLAIM_REFUSED_ISOLATE,
                     SPB_CLAIM_REFUSED_ZONE_BOUNDARY, SPB_CFG_DEFERRED_THROTTLE_MS,
                     SPB_LIST_EMPTY, SPB_OUTCOME_CLAIM, SPB_OUTCOME_HINT,
                     SPB_OUTCOME_STEAL, SPB_VISIT_HIST, ST_ALLOC_WALKS,
                     ST_CHEAP_REFUSALS, ST_CLAIM_ATTEMPTS, ST_CLAIM_REFUSED,
                     ST_CLAIM_SUCCESS, ST_FREELISTS_VISITED, ST_HIGHATOMIC_CLAIMS, ST_HINT_HITS,
                     ST_HINT_MISSES, ST_LAST_CHANCE_KICKS, ST_REACT_KICKS,
                     ST_SPBS_VISITED)

__all__ = ["spb_rmqueue", "spb_rmqueue_hint", "spb_rmqueue_after_hint", "spb_rmqueue_smallest",
           "spb_rmqueue_passes", "spb_rmqueue_claim", "spb_rmqueue_steal",
           "spb_pass_1", "spb_pass_2", "spb_pass_2b", "spb_pass_2c", "spb_pass_2d",
           "spb_pass_3", "spb_pass_4", "spb_last_chance", "spb_hint",
           "spb_react_to_tainted_alloc", "sb_preferred_for_movable",
           "queue_spb_slab_shrink", "queue_spb_evacuate", "queue_pageblock_evacuate",
           "spb_tainted_has_evacuable", "spb_adopt_partial_pageblock"]

B = MAX_NR_ZONES               # free-list owner of SPB slot i is B + i
_SIM_VISITED = SIMSTAT["sim_freelists_visited"]
_SIM_CLAIM_ATTEMPTS = SIMSTAT["sim_claim_attempts"]
_SIM_CLAIM_SUCCESS = SIMSTAT["sim_claim_success"]
_SIM_CLAIM_WHOLE = SIMSTAT["sim_claim_whole_block"]
_SIM_STEAL = SIMSTAT["sim_steal"]
FB_CLAIM, FB_STEAL, FB_CLAIM_WHOLE = 0, 1, 2


# ================================================================ small helpers

@njit_inline
def _probe(m, z, n):
    """Count n free-list head probes (per-SPB search cost)."""
    m.sim[_SIM_VISITED] += n
    m.spb.stat[z, ST_FREELISTS_VISITED] += n


@njit_inline
def _sb_take(m, z, i, order, mt, lo, hi):
    """Take the first ``mt`` buddy of order lo..hi-1 (>= order) from SPB i's
    free_area and split it down to ``order`` (page_del_and_expand)."""
    L = B + i
    if lo < order:
        lo = order
    for o in range(lo, hi):
        _probe(m, z, 1)
        h = m.fa_head[L, o, mt]
        if h >= 0:
            page_del_and_expand(m, z, h, order, o, mt)
            trace_event(m, EV_ZONE_LOCKED, h, order, mt, 1 if order <= 3 else 0, 0, 0)
            return h
    return -1


@njit
def sb_take(m, z, i, order, mt, lo, hi):
    """_sb_take() as a call (the passes; the hint fast path inlines it)."""
    return _sb_take(m, z, i, order, mt, lo, hi)


@njit_inline
def _is_cross_type(a, b):
    """noncompatible_cross_type() [S v2 24/40]: the UNMOV<->RECL pair."""
    return ((a == MIGRATE_UNMOVABLE and b == MIGRATE_RECLAIMABLE)
            or (a == MIGRATE_RECLAIMABLE and b == MIGRATE_UNMOVABLE))


@njit_inline
def _first_list(cat):
    return cat * NR_SB_FULLNESS


@njit
def spb_tainted_has_evacuable(m, z):
    """Does a tainted SPB of zone z hold movable pageblocks that evacuation
    could free ([SIM] reading of v2 26/40's "tainted SPB still has free
    pageblocks waiting to be evacuated": nr_movable > 0)?"""
    spb = m.spb
    for full in range(NR_SB_FULLNESS):
        i = spb.list_head[z, SB_TAINTED * NR_SB_FULLNESS + full]
        while i >= 0:
            if spb.nr_movable[i] > 0:
                return True
            i = spb.list_next[i]
    return False


# ================================================================ background triggers

@njit
def queue_spb_slab_shrink(m):
    """queue_spb_slab_shrink() [S v1 30/32]: single-flight per pgdat."""
    if m.spb.cfg[SPB_CFG_SLAB_SHRINK] != 0:
        m.spb.pend[PEND_SLAB_SHRINK] = 1


@njit
def queue_spb_evacuate(m, z, order, mt):
    """queue_spb_evacuate() [S v1 27/45]: schedule spb_evacuate_for_order();
    single-flight, throttled (``deferred_evacuation_throttle_ms`` [SIM]), and only
    if the tainted pool is worth evacuating."""
    spb = m.spb
    if spb.cfg[SPB_CFG_DEFERRED_EVAC] == 0 or spb.pend[PEND_EVACUATE] != 0:
        return
    now = m.cur[CUR_CLOCK]
    if now - spb.pend[PEND_EVAC_LAST_NS] < spb.cfg[SPB_CFG_DEFERRED_THROTTLE_MS] * 1_000_000:
        return
    if not spb_tainted_has_evacuable(m, z):
        return
    spb.pend[PEND_EVACUATE] = 1
    spb.pend[PEND_EVAC_ORDER] = order
    spb.pend[PEND_EVAC_MT] = mt


@njit_inline
def queue_pageblock_evacuate(m, z, start):
    """queue_pageblock_evacuate() [S1 §4]: take an item of the pool of
    NR_EVACUATE_ITEMS for the kevacuate work (spb_run_pending runs it:
    work.kevacuate_work); with the pool empty the request is dropped."""
    spb = m.spb
    n = spb.pend[PEND_KEVAC_N]
    if n >= NR_EVACUATE_ITEMS:
        spb.stat[z, ST_KEVAC_DROPPED] += 1
        return
    spb.pend[PEND_KEVAC_Q + n] = start
    spb.pend[PEND_KEVAC_N] = n + 1
    spb.stat[z, ST_KEVAC_QUEUED] += 1


@njit
def spb_react_to_tainted_alloc(m, i):
    """After a successful allocation from a tainted SPB (PASS_1 tainted, 2, 2B,
    2C, 2D) [S v1 32/43, v2 28]: below the high-water mark, queue the slab
    shrink and (patch 43's trigger 1) kick the SPB's defrag worker."""
    spb = m.spb
    if not spb_below_shrink_high_water(spb, i):
        return
    queue_spb_slab_shrink(m)
    if spb.cfg[SPB_CFG_REACT] != 0:
        if spb_maybe_start_defrag(spb, i, m.cur[CUR_CLOCK]):
            spb.stat[spb.zone[i], ST_REACT_KICKS] += 1


# ================================================================ claim helpers

@njit
def spb_claim_whole_block(m, z, pfn, current_order, order, new_mt, old_mt):
    """claim_whole_block() [S1 §3.2]: every pageblock of the chunk gets
    PB_has_<new> and loses PB_all_free; relabel, split, one refile."""
    del_page_from_free_list(m, pfn, z, current_order, old_mt)
    change_pageblock_range(m, pfn, current_order, new_mt)
    pageblock_set_has(m, pfn, current_order, new_mt)
    expand(m, z, pfn, order, current_order, new_mt)
    m.sim[_SIM_CLAIM_WHOLE] += 1
    m.fb_stat[FB_CLAIM_WHOLE, new_mt, old_mt] += 1
    return pfn


@njit_inline
def _refuse(m, z, pfn, start_type, block_type, reason):
    m.spb.stat[z, ST_CLAIM_REFUSED] += 1
    trace_event(m, EV_SPB_CLAIM_REFUSED, pfn, start_type, block_type, reason, 0, 0)
    return -1


@njit
def spb_try_to_claim_block(m, z, i, pfn, current_order, order, start_type, block_type,
                           from_tainted_spb):
    """try_to_claim_block() with the series' rules [S1 §3.2, S2 reasons]:
    isolate -> zone boundary -> cross-type block not fully free (v2 24) ->
    too few compatible pages (50% rule, skipped for PASS_2B).  On success the
    page comes from the claimed SPB's lists.  Returns pfn or -1."""
    spb = m.spb
    spb.stat[z, ST_CLAIM_ATTEMPTS] += 1
    if m.pb_mt[pfn >> pageblock_order] == MIGRATE_ISOLATE:
        return _refuse(m, z, pfn, start_type, block_type, SPB_CLAIM_REFUSED_ISOLATE)
    if current_order >= pageblock_order:
        spb.stat[z, ST_CLAIM_SUCCESS] += 1
        return spb_claim_whole_block(m, z, pfn, current_order, order, start_type, block_type)
    start, free_pages, movable_pages = prep_move_freepages_block(m, z, pfn)
    if start < 0:
        return _refuse(m, z, pfn, start_type, block_type, SPB_CLAIM_REFUSED_ZONE_BOUNDARY)
    if spb.cfg[SPB_CFG_NO_CROSS_MIX] != 0 and _is_cross_type(start_type, block_type) \
            and free_pages != pageblock_nr_pages:
        return _refuse(m, z, pfn, start_type, block_type, SPB_CLAIM_REFUSED_CROSS_TYPE_NOT_FREE)
    if not from_tainted_spb:
        if start_type == MIGRATE_MOVABLE:
            alike = movable_pages
        elif block_type == MIGRATE_MOVABLE:
            alike = pageblock_nr_pages - (free_pages + movable_pages)
        else:
            alike = 0
        if free_pages + alike < (pageblock_nr_pages >> 1):
            return _refuse(m, z, pfn, start_type, block_type,
                           SPB_CLAIM_REFUSED_INSUFFICIENT_COMPAT)
    move_freepages_block(m, z, start, block_type, start_type)
    # S1: PB_has_<request>, and PB_has_<block type> when it differs; one refile
    __spb_set_has_type(spb, m, start, start_type)
    if spb.cfg[SPB_CFG_NO_CROSS_MIX] != 0 and _is_cross_type(start_type, block_type):
        pass       # v2 24: the stale other-type bit is cleared by the (fully free) relabel
    else:
        __spb_set_has_type(spb, m, start, block_type)
    spb_update_list(spb, i, m.cur[CUR_CLOCK])
    spb.stat[z, ST_CLAIM_SUCCESS] += 1
    if spb.cfg[SPB_CFG_KEVACUATE] != 0 and (start_type == MIGRATE_UNMOVABLE or
                                            start_type == MIGRATE_RECLAIMABLE) \
            and (m.pb_flags[start >> pageblock_order] & PB_has_movable):
        # S1: a sub-pageblock claim for UNMOV/RECL of a block that still
        # holds movable pages queues their evacuation
        queue_pageblock_evacuate(m, z, start)
    return sb_take(m, z, i, order, start_type, order, NR_PAGE_ORDERS)


# ================================================================ the passes

@njit
def sb_preferred_for_movable(m, z):
    """sb_preferred_for_movable() [S1 §3.3]: the first clean SPB from SB_FULL_75
    down to SB_ALMOST_EMPTY (SB_FULL skipped) with a free pageblock; -1 if none."""
    spb = m.spb
    for full in range(SB_FULL_75, NR_SB_FULLNESS):
        i = spb.list_head[z, SB_CLEAN * NR_SB_FULLNESS + full]
        while i >= 0:
            if spb.nr_free[i] > 0:
                return i
            i = spb.list_next[i]
    return -1


@njit_inline
def spb_hint(m, z, order, mt, pref):
    """PASS_1 hint cache [S v2 31/40]: the per-CPU hint, then the zone hint, of
    the last SPB that served (order, mt); used if it is still filed under the
    preferred category.  Returns (pfn, slot)."""
    spb = m.spb
    if spb.cfg[SPB_CFG_HINT] == 0 or mt >= MIGRATE_PCPTYPES:
        return -1, -1
    cpu = m.cur[CUR_CPU]
    if cpu >= spb.hint_cpu.shape[0]:
        cpu = spb.hint_cpu.shape[0] - 1
    lo = pref * NR_SB_FULLNESS
    for k in range(2):
        i = spb.hint_cpu[cpu, z, order, mt] if k == 0 else spb.hint_zone[z, order, mt]
        if i < 0 or spb.list_id[i] < lo or spb.list_id[i] >= lo + NR_SB_FULLNESS:
            continue
        if spb.nr_free_pages[i] == 0:
            continue
        p = _sb_take(m, z, i, order, mt, order, NR_PAGE_ORDERS)
        if p >= 0:
            spb.stat[z, ST_HINT_HITS] += 1
            return p, i
    spb.stat[z, ST_HINT_MISSES] += 1
    return -1, -1


@njit_inline
def _set_hint(m, z, order, mt, i):
    spb = m.spb
    if spb.cfg[SPB_CFG_HINT] == 0 or mt >= MIGRATE_PCPTYPES:
        return
    cpu = m.cur[CUR_CPU]
    if cpu >= spb.hint_cpu.shape[0]:
        cpu = spb.hint_cpu.shape[0] - 1
    spb.hint_cpu[cpu, z, order, mt] = i
    spb.hint_zone[z, order, mt] = i


@njit
def spb_pass_1(m, z, order, mt, pref):
    """PASS_1: the preferred category (TAINTED for UNMOV/RECL/HIGHATOMIC, CLEAN
    for MOVABLE), fullest bucket first, each list from its head; skip SPBs
    with no free pages; each SPB searched at every order before the next
    (S1 §3.1).  MOVABLE whole-pageblock requests try sb_preferred_for_movable()
    first (v1 13; at S1 it serves rmqueue_bulk's whole-pageblock phase 1 of
    PCPBuddy; here it steers every order >= pageblock_order, phase 1 included).
    Returns (pfn, slot, SPBs visited)."""
    spb = m.spb
    visited = 0
    if mt == MIGRATE_MOVABLE and spb.cfg[SPB_CFG_MOVABLE_STEER] != 0 and order >= pageblock_order:
        i = sb_preferred_for_movable(m, z)
        if i >= 0:
            visited += 1
            p = sb_take(m, z, i, order, mt, order, NR_PAGE_ORDERS)
            if p >= 0:
                return p, i, visited
    for full in range(NR_SB_FULLNESS):
        i = spb.list_head[z, pref * NR_SB_FULLNESS + full]
        while i >= 0:
            nxt = spb.list_next[i]
            visited += 1
            if spb.nr_free_pages[i] != 0:
                p = sb_take(m, z, i, order, mt, order, NR_PAGE_ORDERS)
                if p >= 0:
                    return p, i, visited
            i = nxt
    return -1, -1, visited


@njit
def spb_adopt_partial_pageblock(m, z, lo, hi, mt):
    """rmqueue_bulk() phase 2 under SPBs (v2 21/40 "adopt partial pageblocks
    from tainted superpageblocks"), the search: tainted SPBs in PASS_1's
    order (fullest bucket first, each list from its head), in each SPB the
    largest free buddy of ``mt`` of order hi-1 down to lo ([SIM]: the
    largest that fits the refill's need, as the RFC's phase 2 pulls chunks
    larger than the request); the entry leaves the free list whole.  The
    caller takes the ownership and puts it on its pcp.  Returns (pfn, order)
    or (-1, -1)."""
    spb = m.spb
    for full in range(NR_SB_FULLNESS):
        i = spb.list_head[z, SB_TAINTED * NR_SB_FULLNESS + full]
        while i >= 0:
            if spb.nr_free_pages[i] != 0:
                L = B + i
                for o in range(hi - 1, lo - 1, -1):
                    _probe(m, z, 1)
                    h = m.fa_head[L, o, mt]
                    if h >= 0:
                        del_page_from_free_list(m, h, z, o, mt)
                        pageblock_set_has(m, h, o, mt)
                        trace_event(m, EV_ZONE_LOCKED, h, o, mt, 1, 0, 0)
                        return h, o
            i = spb.list_next[i]
    return -1, -1


@njit
def spb_pass_2(m, z, order, mt):
    """PASS_2: claim a whole free MOVABLE pageblock (order >= max(order,
    pageblock_order)) inside a tainted SPB; an isolated block moves on to the
    next order (S1 §3.1).  Returns (pfn, slot, visited)."""
    spb = m.spb
    visited = 0
    lo = order if order > pageblock_order else pageblock_order
    for full in range(NR_SB_FULLNESS):
        i = spb.list_head[z, SB_TAINTED * NR_SB_FULLNESS + full]
        while i >= 0:
            nxt = spb.list_next[i]
            visited += 1
            if spb.nr_free[i] != 0:
                for o in range(lo, NR_PAGE_ORDERS):
                    _probe(m, z, 1)
                    p = m.fa_head[B + i, o, MIGRATE_MOVABLE]
                    if p < 0 or m.pb_mt[p >> pageblock_order] == MIGRATE_ISOLATE:
                        continue
                    spb.stat[z, ST_CLAIM_ATTEMPTS] += 1
                    spb.stat[z, ST_CLAIM_SUCCESS] += 1
                    return spb_claim_whole_block(m, z, p, o, order, mt, MIGRATE_MOVABLE), i, visited
            i = nxt
    return -1, -1, visited


@njit
def spb_pass_2b(m, z, order, mt):
    """PASS_2B [S v1 25/45]: a sub-pageblock MOVABLE buddy in a tainted SPB;
    try_to_claim_block(from_tainted_spb=true) relabels its block without the
    50% rule.  Returns (pfn, slot, visited)."""
    spb = m.spb
    visited = 0
    for full in range(NR_SB_FULLNESS):
        i = spb.list_head[z, SB_TAINTED * NR_SB_FULLNESS + full]
        while i >= 0:
            nxt = spb.list_next[i]
            visited += 1
            if spb.nr_free_pages[i] != 0:
                for o in range(order, pageblock_order):
                    _probe(m, z, 1)
                    p = m.fa_head[B + i, o, MIGRATE_MOVABLE]
                    if p < 0:
                        continue
                    page = spb_try_to_claim_block(m, z, i, p, o, order, mt, MIGRATE_MOVABLE, True)
                    if page >= 0:
                        pageblock_taint(m, p, mt, MIGRATE_MOVABLE, TL_CLAIM)
                        return page, i, visited
                    break      # refused: next SPB (the block's other buddies share its verdict)
            i = nxt
    return -1, -1, visited


@njit
def _borrow(m, z, order, mt, src_mt):
    """Borrow a sub-pageblock buddy of ``src_mt`` in a tainted SPB without a
    relabel (PASS_2C/2D): the split remainders stay on the source list and the
    page returns there when freed (it is filed by its block's label); the
    block gets PB_has_<mt>.  Returns (pfn, slot, visited)."""
    spb = m.spb
    visited = 0
    for full in range(NR_SB_FULLNESS):
        i = spb.list_head[z, SB_TAINTED * NR_SB_FULLNESS + full]
        while i >= 0:
            nxt = spb.list_next[i]
            visited += 1
            if spb.nr_free_pages[i] != 0:
                for o in range(order, pageblock_order):
                    _probe(m, z, 1)
                    p = m.fa_head[B + i, o, src_mt]
                    if p < 0 or m.pb_mt[p >> pageblock_order] == MIGRATE_ISOLATE:
                        continue
                    page_del_and_expand(m, z, p, order, o, src_mt)
                    pageblock_set_has(m, p, order, mt)
                    pageblock_taint(m, p, mt, src_mt, TL_BORROW)
                    return p, i, visited
            i = nxt
    return -1, -1, visited


@njit
def spb_pass_2c(m, z, order, mt):
    """PASS_2C [S v1 31/45]: UNMOVABLE borrows from RECLAIMABLE lists and the
    reverse, in tainted SPBs.  Returns (pfn, slot, visited)."""
    if mt == MIGRATE_UNMOVABLE:
        return _borrow(m, z, order, mt, MIGRATE_RECLAIMABLE)
    if mt == MIGRATE_RECLAIMABLE:
        return _borrow(m, z, order, mt, MIGRATE_UNMOVABLE)
    return -1, -1, 0


@njit
def spb_pass_2d(m, z, order, mt):
    """PASS_2D [S v1 42/45]: borrow from the MOVABLE lists of a tainted SPB."""
    return _borrow(m, z, order, mt, MIGRATE_MOVABLE)


@njit
def spb_last_chance(m, z, order, mt, alloc_flags):
    """Before PASS_3 [S v1 43/45, v2 28]: walk the tainted lists (bounded by
    nr_tainted_spbs) and kick each SPB's defrag worker (patch 43's trigger 2),
    queue the slab shrink (v1 30), and emit spb_alloc_fall_through (S2).
    Returns SPBs visited."""
    spb = m.spb
    now = m.cur[CUR_CLOCK]
    visited = 0
    with_buddy = 0
    saw_free_pages = 0
    saw_free_pb = 0
    saw_below = 0
    kick = spb.cfg[SPB_CFG_LAST_CHANCE] != 0
    for full in range(NR_SB_FULLNESS):
        i = spb.list_head[z, SB_TAINTED * NR_SB_FULLNESS + full]
        while i >= 0 and visited < spb.nr_tainted_spbs[z]:
            visited += 1
            if spb.nr_free_pages[i] > 0:
                saw_free_pages = 1
                with_buddy += 1
            if spb.nr_free[i] > 0:
                saw_free_pb = 1
            if spb.nr_free[i] <= spb_tainted_reserve(spb, i):
                saw_below = 1
            if kick and spb_maybe_start_defrag(spb, i, now):
                spb.stat[z, ST_LAST_CHANCE_KICKS] += 1
            i = spb.list_next[i]
    queue_spb_slab_shrink(m)
    trace_event(m, EV_SPB_FALL_THROUGH, z, order, mt, spb.nr_tainted_spbs[z], with_buddy,
                saw_free_pages | (saw_free_pb << 1) | (saw_below << 2))
    return visited


@njit_inline
def _cheap_refused(m, z, alloc_flags):
    """v1 29 / v2 26 [S]: a cheap-fallback caller may not taint a clean or
    empty SPB while a tainted SPB still has pageblocks to evacuate."""
    spb = m.spb
    if spb.cfg[SPB_CFG_CHEAP_REFUSE] == 0 or (alloc_flags & ALLOC_SPB_CHEAP) == 0:
        return False
    if spb_tainted_has_evacuable(m, z):
        spb.stat[z, ST_CHEAP_REFUSALS] += 1
        return True
    return False


@njit
def spb_pass_3(m, z, order, mt, alloc_flags):
    """PASS_3: a whole pageblock from an empty SPB.  Free pageblocks of empty
    SPBs are MOVABLE (relabelled when they became free), so at S1 this serves
    MOVABLE only; with ``pass3_claim`` (S2 "PASS_3 = empty SPB, taints fresh
    SPB") a non-movable request claims the block, tainting the SPB.
    Returns (pfn, slot, visited)."""
    spb = m.spb
    visited = 0
    lo = order if order > pageblock_order else pageblock_order
    claim = mt != MIGRATE_MOVABLE and spb.cfg[SPB_CFG_PASS3_CLAIM] != 0
    i = spb.list_head[z, SPB_LIST_EMPTY]
    while i >= 0:
        nxt = spb.list_next[i]
        visited += 1
        if spb.nr_free_pages[i] != 0:
            p = sb_take(m, z, i, order, mt, lo, NR_PAGE_ORDERS)
            if p >= 0:
                return p, i, visited
            if claim:
                if _cheap_refused(m, z, alloc_flags):
                    return -1, -1, visited
                for o in range(lo, NR_PAGE_ORDERS):
                    _probe(m, z, 1)
                    p = m.fa_head[B + i, o, MIGRATE_MOVABLE]
                    if p >= 0:
                        spb.stat[z, ST_CLAIM_ATTEMPTS] += 1
                        spb.stat[z, ST_CLAIM_SUCCESS] += 1
                        return spb_claim_whole_block(m, z, p, o, order, mt, MIGRATE_MOVABLE), i, visited
        i = nxt
    return -1, -1, visited


@njit
def spb_pass_4(m, z, order, mt):
    """PASS_4 [S1]: MOVABLE falls back into tainted SPBs, skipping those at or
    below their tainted reserve (and those without free pages).  At S1
    non-movable requests never search clean SPBs here (stale labels)."""
    spb = m.spb
    visited = 0
    if mt != MIGRATE_MOVABLE:
        return -1, -1, 0
    for full in range(NR_SB_FULLNESS):
        i = spb.list_head[z, SB_TAINTED * NR_SB_FULLNESS + full]
        while i >= 0:
            nxt = spb.list_next[i]
            visited += 1
            if spb.nr_free_pages[i] != 0 and not spb_movable_skips(spb, i):
                p = sb_take(m, z, i, order, mt, order, NR_PAGE_ORDERS)
                if p >= 0:
                    return p, i, visited
            i = nxt
    return -1, -1, visited


@njit_inline
def _walk_done(m, z, order, mt, alloc_flags, outcome, visited, pfn):
    spb = m.spb
    spb.outcome[outcome] += 1
    spb.stat[z, ST_ALLOC_WALKS] += 1
    spb.stat[z, ST_SPBS_VISITED] += visited
    h = visited if visited < SPB_VISIT_HIST else SPB_VISIT_HIST - 1
    spb.visit_hist[h] += 1
    trace_event(m, EV_SPB_ALLOC_WALK, z, order, mt, alloc_flags,
                outcome if outcome < SPB_OUTCOME_CLAIM else SPB_ALLOC_OUTCOME_PASS_1, visited)
    spb.cur_pass[0] = 0
    return pfn


@njit_inline
def spb_rmqueue_hint(m, z, order, mt, alloc_flags):
    """The hint step of __rmqueue_smallest() under SPBs, inlined into rmqueue()
    so that a hint hit (most allocations) costs no call; -1 on a miss."""
    spb = m.spb
    if spb.cfg[SPB_CFG_HINT] == 0 or mt >= MIGRATE_PCPTYPES:
        return -1
    movable = mt == MIGRATE_MOVABLE
    spb.cur_pass[0] = SPB_ALLOC_OUTCOME_PASS_1
    p, i = spb_hint(m, z, order, mt, SB_CLEAN if movable else SB_TAINTED)
    if p < 0:
        spb.cur_pass[0] = 0
        return -1
    if not movable:
        spb_react_to_tainted_alloc(m, i)
    return _walk_done(m, z, order, mt, alloc_flags, SPB_OUTCOME_HINT, 0, p)


@njit
def spb_rmqueue_smallest(m, z, order, mt, alloc_flags):
    """__rmqueue_smallest() under SPBs: hint -> PASS_1 -> PASS_2 -> PASS_2B ->
    PASS_2C -> PASS_2D -> last-chance defrag walk -> PASS_3 -> PASS_4."""
    p = spb_rmqueue_hint(m, z, order, mt, alloc_flags)
    if p >= 0:
        return p
    return spb_rmqueue_passes(m, z, order, mt, alloc_flags)


#: The passes between PASS_1 and the last chance, in order, for non-movable
#: requests: (outcome, the switch that turns it on (-1: always on; a switched
#: pass serves only orders below pageblock_order), skipped by the
#: tainted-OK gate).  _tainted_pass(k) runs entry k's pass function.
_TAINTED_PASSES = (
    (SPB_ALLOC_OUTCOME_PASS_2, -1, True),
    (SPB_ALLOC_OUTCOME_PASS_2B, SPB_CFG_PASS_2B, True),
    (SPB_ALLOC_OUTCOME_PASS_2C, SPB_CFG_PASS_2C, False),
    (SPB_ALLOC_OUTCOME_PASS_2D, SPB_CFG_PASS_2D, False),
)


@njit
def _tainted_pass(m, z, order, mt, k):
    """Entry k of _TAINTED_PASSES (compiled code cannot index a tuple of
    different functions at run time): (pfn, slot, SPBs visited)."""
    if k == 0:
        return spb_pass_2(m, z, order, mt)
    if k == 1:
        return spb_pass_2b(m, z, order, mt)
    if k == 2:
        return spb_pass_2c(m, z, order, mt)
    return spb_pass_2d(m, z, order, mt)


@njit
def spb_rmqueue_passes(m, z, order, mt, alloc_flags):
    """spb_rmqueue_smallest() after a hint miss: PASS_1 to PASS_4."""
    spb = m.spb
    movable = mt == MIGRATE_MOVABLE
    pref = SB_CLEAN if movable else SB_TAINTED
    spb.cur_pass[0] = SPB_ALLOC_OUTCOME_PASS_1
    p, i, visited = spb_pass_1(m, z, order, mt, pref)
    if p >= 0:
        _set_hint(m, z, order, mt, i)
        if not movable:
            spb_react_to_tainted_alloc(m, i)
        return _walk_done(m, z, order, mt, alloc_flags, SPB_ALLOC_OUTCOME_PASS_1, visited, p)
    if not movable:
        gate = spb.cfg[SPB_CFG_TAINTED_OK_GATE] != 0 and (alloc_flags & ALLOC_NOFRAG_TAINTED_OK) == 0
        for k in range(len(_TAINTED_PASSES)):
            outcome, switch, gated = _TAINTED_PASSES[k]
            if gated and gate:
                continue
            if switch >= 0 and (spb.cfg[switch] == 0 or order >= pageblock_order):
                continue
            spb.cur_pass[0] = outcome
            p, i, v = _tainted_pass(m, z, order, mt, k)
            visited += v
            if p >= 0:
                spb_react_to_tainted_alloc(m, i)
                return _walk_done(m, z, order, mt, alloc_flags, outcome, visited, p)
        visited += spb_last_chance(m, z, order, mt, alloc_flags)
    spb.cur_pass[0] = SPB_ALLOC_OUTCOME_PASS_3
    p, i, v = spb_pass_3(m, z, order, mt, alloc_flags)
    visited += v
    if p >= 0:
        return _walk_done(m, z, order, mt, alloc_flags, SPB_ALLOC_OUTCOME_PASS_3, visited, p)
    spb.cur_pass[0] = SPB_ALLOC_OUTCOME_PASS_4
    p, i, v = spb_pass_4(m, z, order, mt)
    visited += v
    if p >= 0:
        return _walk_done(m, z, order, mt, alloc_flags, SPB_ALLOC_OUTCOME_PASS_4, visited, p)
    return _walk_done(m, z, order, mt, alloc_flags, SPB_ALLOC_OUTCOME_NO_PAGE, visited, -1)


# ================================================================ claim and steal

@njit
def _find_fallback(m, z, order, start_mt, cat_list_lo, cat_list_hi, movable_reserve):
    """__rmqueue_sb_find_fallback() for one category [S1 §3.2]: lists
    cat_list_lo..hi-1 in order, each SPB's fallback types in the stock table's
    order, free lists of exactly ``order``.  Returns (pfn, fallback mt, slot)."""
    spb = m.spb
    for lid in range(cat_list_lo, cat_list_hi):
        i = spb.list_head[z, lid]
        while i >= 0:
            if not (movable_reserve and spb_movable_skips(spb, i)):
                for k in range(2):
                    fb = fallback_type(start_mt, k)
                    _probe(m, z, 1)
                    p = m.fa_head[B + i, order, fb]
                    if p >= 0:
                        return p, fb, i
            i = spb.list_next[i]
    return -1, -1, -1


@njit_inline
def _cat_range(cat):
    """(first list id, end) of a search category: 0 clean lists, 1 tainted
    lists, 2 spb_empty."""
    if cat == 2:
        return SPB_LIST_EMPTY, SPB_LIST_EMPTY + 1
    return cat * NR_SB_FULLNESS, (cat + 1) * NR_SB_FULLNESS


@njit
def spb_rmqueue_claim(m, z, order, start_mt, alloc_flags):
    """__rmqueue_claim() with SPB steering [S1 §3.2, S v2 19/26/27]:
    categories PREFERRED -> EMPTY -> FALLBACK, each from MAX_PAGE_ORDER down
    to min_order, one candidate per order.  The write-off rule drops the
    pageblock_order floor in the preferred (tainted) category on zones with
    more than SPB_AGGRESSIVE_THRESHOLD SPBs.  Non-movable claims that would
    taint (EMPTY/FALLBACK) queue the deferred evacuation and are refused for
    cheap-fallback callers."""
    spb = m.spb
    movable = start_mt == MIGRATE_MOVABLE
    pref = SB_CLEAN if movable else SB_TAINTED
    other = SB_TAINTED if movable else SB_CLEAN
    base_min = order
    if order < pageblock_order and (alloc_flags & ALLOC_NOFRAGMENT):
        base_min = pageblock_order
    for step in range(3):
        if step == 0:
            cat = pref
        elif step == 1:
            cat = 2
        else:
            cat = other
        min_order = base_min
        if step == 0 and not movable and spb.cfg[SPB_CFG_AGGRESSIVE] != 0 \
                and spb.zone_count[z] > SPB_AGGRESSIVE_THRESHOLD:
            min_order = order
        if step > 0 and not movable:
            queue_spb_evacuate(m, z, order, start_mt)
            if _cheap_refused(m, z, alloc_flags):
                return -1
        lo, hi = _cat_range(cat)
        movable_reserve = movable and cat == SB_TAINTED
        for co in range(MAX_PAGE_ORDER, min_order - 1, -1):
            if not (co >= pageblock_order // 2 or start_mt == MIGRATE_RECLAIMABLE
                    or start_mt == MIGRATE_UNMOVABLE):
                break              # should_try_claim_block()
            p, fb, i = _find_fallback(m, z, co, start_mt, lo, hi, movable_reserve)
            if p < 0:
                continue
            m.sim[_SIM_CLAIM_ATTEMPTS] += 1
            spb.cur_pass[0] = SPB_OUTCOME_CLAIM
            page = spb_try_to_claim_block(m, z, i, p, co, order, start_mt, fb, False)
            spb.cur_pass[0] = 0
            if page >= 0:
                m.sim[_SIM_CLAIM_SUCCESS] += 1
                m.fb_stat[FB_CLAIM, start_mt, fb] += 1
                spb.outcome[SPB_OUTCOME_CLAIM] += 1
                spb.cur_pass[0] = SPB_OUTCOME_CLAIM
                trace_mm_page_alloc_extfrag(m, page, p, order, co, start_mt, fb)
                spb.cur_pass[0] = 0
                return page
    return -1


@njit
def spb_rmqueue_steal(m, z, order, start_mt, alloc_flags):
    """__rmqueue_steal() with SPB steering [S1 §3.2]: PREFERRED then FALLBACK
    categories, never empty SPBs; the block keeps its label; v2 24 refuses
    UNMOV<->RECL steals."""
    spb = m.spb
    movable = start_mt == MIGRATE_MOVABLE
    pref = SB_CLEAN if movable else SB_TAINTED
    other = SB_TAINTED if movable else SB_CLEAN
    for co in range(order, NR_PAGE_ORDERS):
        for step in range(2):
            cat = pref if step == 0 else other
            if step == 1 and not movable and _cheap_refused(m, z, alloc_flags):
                return -1
            lo, hi = _cat_range(cat)
            p, fb, i = _find_fallback(m, z, co, start_mt, lo, hi, movable and cat == SB_TAINTED)
            if p < 0:
                continue
            if spb.cfg[SPB_CFG_NO_CROSS_MIX] != 0 and _is_cross_type(start_mt, fb):
                continue
            spb.cur_pass[0] = SPB_OUTCOME_STEAL
            page_del_and_expand(m, z, p, order, co, fb)
            pageblock_set_has(m, p, order, start_mt)
            trace_mm_page_alloc_extfrag(m, p, p, order, co, start_mt, fb)
            spb.cur_pass[0] = 0
            m.sim[_SIM_STEAL] += 1
            m.fb_stat[FB_STEAL, start_mt, fb] += 1
            spb.outcome[SPB_OUTCOME_STEAL] += 1
            return p
    return -1


@njit
def spb_rmqueue(m, z, order, mt, alloc_flags, mode):
    """__rmqueue() under SPBs: the passes, then claim, then steal (only
    without ALLOC_NOFRAGMENT).  Returns (pfn, mode) like fallback.rmqueue.
    (rmqueue() itself inlines the hint step and calls spb_rmqueue_after_hint.)"""
    p = spb_rmqueue_hint(m, z, order, mt, alloc_flags)
    if p >= 0:
        return p, mode
    return spb_rmqueue_after_hint(m, z, order, mt, alloc_flags, mode)


@njit
def spb_rmqueue_after_hint(m, z, order, mt, alloc_flags, mode):
    """spb_rmqueue() after the hint step missed: PASS_1 to PASS_4, then
    claim, then steal (only without ALLOC_NOFRAGMENT)."""
    p = spb_rmqueue_passes(m, z, order, mt, alloc_flags)
    if p >= 0:
        return p, mode
    p = spb_rmqueue_claim(m, z, order, mt, alloc_flags)
    if p >= 0:
        return p, mode
    if (alloc_flags & ALLOC_NOFRAGMENT) == 0:
        p = spb_rmqueue_steal(m, z, order, mt, alloc_flags)
    return p, mode


@njit
def spb_rmqueue_highatomic(m, z, order):
    """__rmqueue_smallest(MIGRATE_HIGHATOMIC) under SPBs.  PASS_1: HIGHATOMIC
    blocks sit in tainted SPBs (the type sets PB_has_unmovable); walk every SPB
    of the zone (the reserve is small and this path is rare).  PASS_2 (with
    ``highatomic_pass_2``): the pass runs for every non-movable, non-CMA type
    (S1 §3.1), so it claims a whole free MOVABLE pageblock of a tainted SPB
    and relabels it HIGHATOMIC; like the kernel's claim_whole_block() it does
    not count the block in nr_reserved_highatomic.  A PASS_2 success reacts
    as PASS_2's other successes do (spb_react_to_tainted_alloc)."""
    spb = m.spb
    first = spb.zone_first[z]
    for k in range(spb.zone_count[z]):
        i = first + k
        p = sb_take(m, z, i, order, MIGRATE_HIGHATOMIC, order, NR_PAGE_ORDERS)
        if p >= 0:
            return p
    if spb.cfg[SPB_CFG_HIGHATOMIC_PASS_2] != 0:
        p, i, _v = spb_pass_2(m, z, order, MIGRATE_HIGHATOMIC)
        if p >= 0:
            spb.stat[z, ST_HIGHATOMIC_CLAIMS] += 1
            spb_react_to_tainted_alloc(m, i)
            return p
    return -1
