"""Per-CPU page lists (mm/page_alloc.c: rmqueue_pcplist, rmqueue_bulk,
free_frozen_page_commit / free_unref_page_commit, free_pcppages_bulk).

A page parked on a pcp list is allocated from the buddy's point of view: it
neither merges nor shows in /proc/buddyinfo.  Links reuse pg_next/pg_prev.
Modelled: batch/high/high_min/high_max, alloc_factor batch scaling, the
free_count drain sizing and free_high (v6.12 rule), and PCPBuddy (per-cpu
owned pageblocks, the ``pcpbuddy`` switch; docs/spb.md "PCPBuddy").
"""
from .buddy import (del_page_from_free_list, free_one_page_merge, pageblock_set_has,
                    pcpblock_owned_add, pcpblock_owned_del, set_pcpblock_owner)
from .const import (CONFIG_PCP_BATCH_SCALE_MAX, KV_6_1, KV_RECENT, MIGRATE_ISOLATE,
                    MIGRATE_MOVABLE, MIGRATE_PCPTYPES, PCPBUDDY_ADOPT, PCPBUDDY_RFC,
                    NR_LOWORDER_PCP_LISTS, NR_PCP_LISTS,
                    PAGE_ALLOC_COSTLY_ORDER, PG_buddy, PG_pcp, PG_pcpbuddy, RMQUEUE_NORMAL,
                    ZONE_BELOW_HIGH, ZONE_RECLAIM_ACTIVE, pageblock_nr_pages, pageblock_order)
from .fallback import rmqueue
from .spb.alloc import spb_adopt_partial_pageblock
from .jit import njit, njit_inline
from .list import list_add, list_add_tail, list_del
from .state import (CFG, PCP_ALLOC_FACTOR, PCP_BATCH, PCP_COUNT, PCP_FLAGS,
                    PCP_FREE_COUNT, PCP_HIGH, PCP_HIGH_MAX, PCP_HIGH_MIN,
                    PCPF_FREE_HIGH_BATCH, PCPF_PREV_FREE_HIGH_ORDER, SIMSTAT, ZS_FLAGS)
from .tracepoint import EV_PCPU_DRAIN, EV_ZONE_LOCKED, trace_event

_CFG_VERSION = CFG["version"]
_CFG_PCPBUDDY = CFG["pcpbuddy"]
_SIM_REFILL = SIMSTAT["sim_pcp_refill"]
_SIM_DRAIN = SIMSTAT["sim_pcp_drain_blocks"]
_SIM_PHASE0 = SIMSTAT["sim_pcpbuddy_phase0_pages"]
_SIM_PHASE1 = SIMSTAT["sim_pcpbuddy_phase1_blocks"]
_SIM_PHASE2 = SIMSTAT["sim_pcpbuddy_phase2_pages"]
_SIM_PHASE2_ADOPT = SIMSTAT["sim_pcpbuddy_phase2_adopted"]
_SIM_PHASE3 = SIMSTAT["sim_pcpbuddy_phase3_pages"]
_SIM_MERGES = SIMSTAT["sim_pcp_merges"]
_SIM_FRAG_DRAINS = SIMSTAT["sim_pcpbuddy_frag_drains"]


@njit_inline
def order_to_pindex(mt, order):
    """order_to_pindex(): 3 lists per order 0..3, then THP (UNMOV/RECL share 12)."""
    if order > PAGE_ALLOC_COSTLY_ORDER:
        return NR_LOWORDER_PCP_LISTS + (1 if mt == MIGRATE_MOVABLE else 0)
    return MIGRATE_PCPTYPES * order + mt


@njit_inline
def pindex_to_order(pindex):
    if pindex >= NR_LOWORDER_PCP_LISTS:
        return pageblock_order
    return pindex // 3


@njit_inline
def pcp_order_to_pindex(m, mt, order):
    """order_to_pindex() of the machine's list layout: with PCPBuddy one list
    per type for every order 0..pageblock_order (3 * order + mt)."""
    if m.cfg[_CFG_PCPBUDDY] != 0:
        return MIGRATE_PCPTYPES * order + mt
    return order_to_pindex(mt, order)


@njit_inline
def pcp_pindex_to_order(m, pindex):
    """pindex_to_order() of the machine's list layout."""
    if m.cfg[_CFG_PCPBUDDY] != 0:
        return pindex // MIGRATE_PCPTYPES
    return pindex_to_order(pindex)


@njit_inline
def _pcp_add(m, z, cpu, pindex, pfn, tail):
    if tail:
        list_add_tail(m.pg_next, m.pg_prev, m.pcp_head, m.pcp_tail, (z, cpu, pindex), pfn)
    else:
        list_add(m.pg_next, m.pg_prev, m.pcp_head, m.pcp_tail, (z, cpu, pindex), pfn)
    m.pg_flags[pfn] |= PG_pcp


@njit_inline
def pcpbuddy_pair_order(m, pfn):
    """The order of ``pfn``'s PagePCPBuddy entry if its buddy is one too, of
    the same order (a pair pcp_merge_pass() merges), else -1."""
    o = m.pg_order[pfn]
    if o < pageblock_order:
        b = pfn ^ (1 << o)
        if (m.pg_flags[b] & (PG_pcp | PG_pcpbuddy)) == (PG_pcp | PG_pcpbuddy) \
                and m.pg_order[b] == o:
            return o
    return -1


@njit_inline
def _pcpbuddy_mark(m, z, cpu, pfn):
    """SetPagePCPBuddy() on an entry just put on ``cpu``'s list, counting the
    pair it makes (pcp_pairs)."""
    o = pcpbuddy_pair_order(m, pfn)
    if o >= 0:
        m.pcp_pairs[z, cpu, o] += 1
    m.pg_flags[pfn] |= PG_pcpbuddy


@njit_inline
def _pcpbuddy_unmark(m, z, cpu, pfn):
    """Before a PagePCPBuddy entry leaves ``cpu``'s list: the pair it made is
    gone (pcp_pairs); _pcp_del() clears the flag."""
    o = pcpbuddy_pair_order(m, pfn)
    if o >= 0:
        m.pcp_pairs[z, cpu, o] -= 1


@njit_inline
def _pcp_del(m, z, cpu, pindex, pfn):
    """pcp_dequeue(): off the list; PagePCPBuddy goes with it (a PagePCPBuddy
    entry's caller runs _pcpbuddy_unmark() first)."""
    list_del(m.pg_next, m.pg_prev, m.pcp_head, m.pcp_tail, (z, cpu, pindex), pfn)
    m.pg_flags[pfn] &= 0xFF ^ (PG_pcp | PG_pcpbuddy)


@njit_inline
def _clamp_high(m, z, cpu):
    pcp = m.pcp[z, cpu]
    high = pcp[PCP_HIGH]
    if high < pcp[PCP_HIGH_MIN]:
        high = pcp[PCP_HIGH_MIN]
    if high > pcp[PCP_HIGH_MAX]:
        high = pcp[PCP_HIGH_MAX]
    pcp[PCP_HIGH] = high
    return high


@njit_inline
def nr_pcp_alloc(m, z, cpu, order):
    """nr_pcp_alloc(): how many blocks one refill takes (v6.1: the batch,
    scaled down by order, in __rmqueue_pcplist())."""
    pcp = m.pcp[z, cpu]
    base_batch = pcp[PCP_BATCH]
    if m.cfg[_CFG_VERSION] == KV_6_1:
        return max(base_batch >> order, 2) if base_batch > 1 else base_batch
    high = _clamp_high(m, z, cpu)
    if high < base_batch:
        return 1
    if order:
        batch = base_batch
    else:
        batch = base_batch << pcp[PCP_ALLOC_FACTOR]
    if pcp[PCP_HIGH_MIN] != pcp[PCP_HIGH_MAX] and (m.zstat[z, ZS_FLAGS] & ZONE_BELOW_HIGH) == 0:
        high = min(high + batch, pcp[PCP_HIGH_MAX])
        pcp[PCP_HIGH] = high
    if order == 0:
        max_nr_alloc = max(high - pcp[PCP_COUNT] - base_batch, base_batch)
        if batch <= max_nr_alloc and pcp[PCP_ALLOC_FACTOR] < CONFIG_PCP_BATCH_SCALE_MAX:
            pcp[PCP_ALLOC_FACTOR] += 1
        batch = min(batch, max_nr_alloc)
    if batch > 1:
        batch = max(batch >> order, 2)
    return batch


@njit
def rmqueue_bulk(m, z, cpu, order, count, pindex, mt, alloc_flags):
    """rmqueue_bulk(): refill a pcp list with up to ``count`` blocks, tail-appended."""
    mode = RMQUEUE_NORMAL
    got = 0
    for _ in range(count):
        pfn, mode = rmqueue(m, z, order, mt, alloc_flags, mode)
        if pfn < 0:
            break
        m.pg_order[pfn] = order
        _pcp_add(m, z, cpu, pindex, pfn, True)
        got += 1
    m.pcp[z, cpu, PCP_COUNT] += got << order
    m.sim[_SIM_REFILL] += 1
    return got


@njit
def pcpbuddy_rmqueue_chunks(m, z, cpu, order, mt, refilled, pages_needed):
    """rmqueue_bulk() phase 2: sub-pageblock buddies of ``mt`` (never another
    type's: no stealing), each whole onto the pcp list of its order, the
    largest that fits the remaining need first ([SIM] order; one of
    ``order`` when none fits), until the need is met.

    Johannes' RFC (``PCPBUDDY_RFC``): from the zone's lists, cached for
    batching only, no owner, no PagePCPBuddy.  v2 21/40 (``PCPBUDDY_ADOPT``,
    under SPBs, where the zone's lists are empty): UNMOV/RECL refills only,
    from the tainted SPBs (spb_adopt_partial_pageblock()); an unowned block
    (pbd->cpu == 0) becomes this cpu's and the entry PagePCPBuddy, and phase
    0 later recovers the rest of the block; an entry of a block another cpu
    owns is still taken, as a plain entry ([SIM]: the patch follows such
    blocks rather than skipping them).  Returns ``refilled``."""
    adopt = m.cfg[_CFG_PCPBUDDY] == PCPBUDDY_ADOPT
    if adopt and mt == MIGRATE_MOVABLE:
        return refilled
    got = 0
    while refilled < pages_needed:
        hi = pageblock_order
        while hi - 1 > order and (1 << (hi - 1)) > pages_needed - refilled:
            hi -= 1
        if adopt:
            pfn, o = spb_adopt_partial_pageblock(m, z, order, hi, mt)
        else:
            pfn = -1
            o = -1
            for c in range(hi - 1, order - 1, -1):
                h = m.fa_head[z, c, mt]
                if h >= 0:
                    pfn = h
                    o = c
                    del_page_from_free_list(m, h, z, c, mt)
                    pageblock_set_has(m, h, c, mt)
                    trace_event(m, EV_ZONE_LOCKED, h, c, mt, 1, 0, 0)
                    break
        if pfn < 0:
            break
        m.pg_order[pfn] = o
        _pcp_add(m, z, cpu, MIGRATE_PCPTYPES * o + mt, pfn, True)
        if adopt:
            pb = pfn >> pageblock_order
            if m.pb_cpu[pb] == 0:
                set_pcpblock_owner(m, pb, cpu)
                m.sim[_SIM_PHASE2_ADOPT] += 1
            if m.pb_cpu[pb] == cpu + 1:
                _pcpbuddy_mark(m, z, cpu, pfn)
        refilled += 1 << o
        got += 1 << o
    m.sim[_SIM_PHASE2] += got
    return refilled


@njit
def pcpbuddy_rmqueue_bulk(m, z, cpu, order, count, mt, alloc_flags):
    """rmqueue_bulk() of PCPBuddy: ``count`` blocks of ``order`` as pages, in
    phases.  0: recover this cpu's owned fragments (owned_blocks, newest first,
    blocks of type ``mt``, every free buddy of a block).  1: whole pageblocks,
    owned and PagePCPBuddy, while a whole block still fits the need.  2 (not
    in S1): sub-pageblock chunks of ``mt`` without stealing
    (pcpbuddy_rmqueue_chunks()).  3: plain __rmqueue() blocks of ``order``,
    no owner.  One rmqueue mode across phases 1 and 3; a refill of one block
    (count <= 1) runs phase 3 only.  Returns the pages added."""
    pages_needed = count << order
    refilled = 0
    mode = RMQUEUE_NORMAL
    if count > 1:
        pb = m.pcp_own_head[z, cpu]
        while pb >= 0 and refilled < pages_needed:
            nxt = m.pb_own_next[pb]
            if m.pb_mt[pb] == mt:
                p = pb << pageblock_order
                end = p + pageblock_nr_pages
                while p < end:
                    if m.pg_flags[p] & PG_buddy:
                        o = m.pg_order[p]
                        del_page_from_free_list(m, p, z, o, mt)
                        _pcp_add(m, z, cpu, MIGRATE_PCPTYPES * o + mt, p, True)
                        _pcpbuddy_mark(m, z, cpu, p)
                        refilled += 1 << o
                        p += 1 << o
                    else:
                        p += 1
                pcpblock_owned_del(m, z, cpu, pb)
            pb = nxt
        m.sim[_SIM_PHASE0] += refilled
        while refilled + pageblock_nr_pages <= pages_needed:
            pfn, mode = rmqueue(m, z, pageblock_order, mt, alloc_flags, mode)
            if pfn < 0:
                break
            set_pcpblock_owner(m, pfn >> pageblock_order, cpu)
            m.pg_order[pfn] = pageblock_order
            _pcp_add(m, z, cpu, MIGRATE_PCPTYPES * pageblock_order + mt, pfn, True)
            _pcpbuddy_mark(m, z, cpu, pfn)
            refilled += pageblock_nr_pages
            m.sim[_SIM_PHASE1] += 1
        if m.cfg[_CFG_PCPBUDDY] >= PCPBUDDY_RFC and refilled < pages_needed:
            refilled = pcpbuddy_rmqueue_chunks(m, z, cpu, order, mt, refilled, pages_needed)
    plain = 0
    while refilled < pages_needed:
        pfn, mode = rmqueue(m, z, order, mt, alloc_flags, mode)
        if pfn < 0:
            break
        m.pg_order[pfn] = order
        _pcp_add(m, z, cpu, MIGRATE_PCPTYPES * order + mt, pfn, True)
        refilled += 1 << order
        plain += 1 << order
    m.sim[_SIM_PHASE3] += plain
    m.pcp[z, cpu, PCP_COUNT] += refilled
    m.sim[_SIM_REFILL] += 1
    return refilled


@njit_inline
def pcp_rmqueue_smallest(m, z, cpu, mt, order):
    """pcp_rmqueue_smallest() (PCPBuddy): the head of the smallest non-empty
    list of ``mt`` from ``order`` up, split down like expand() with the upper
    halves at the list heads; PagePCPBuddy passes to the halves."""
    for high in range(order, pageblock_order + 1):
        pfn = m.pcp_head[z, cpu, MIGRATE_PCPTYPES * high + mt]
        if pfn < 0:
            continue
        flag = m.pg_flags[pfn] & PG_pcpbuddy
        if flag:
            _pcpbuddy_unmark(m, z, cpu, pfn)
        _pcp_del(m, z, cpu, MIGRATE_PCPTYPES * high + mt, pfn)
        size = 1 << high
        while high > order:
            high -= 1
            size >>= 1
            m.pg_order[pfn + size] = high
            _pcp_add(m, z, cpu, MIGRATE_PCPTYPES * high + mt, pfn + size, False)
            if flag:
                _pcpbuddy_mark(m, z, cpu, pfn + size)
        m.pg_order[pfn] = order
        return pfn
    return -1


@njit
def pcpbuddy_rmqueue_pcplist(m, z, cpu, order, mt, alloc_flags):
    """__rmqueue_pcplist() of PCPBuddy: pcp_rmqueue_smallest(), else a refill
    (nr_pcp_alloc() blocks through rmqueue_bulk()) and once more."""
    pfn = pcp_rmqueue_smallest(m, z, cpu, mt, order)
    if pfn < 0:
        pcpbuddy_rmqueue_bulk(m, z, cpu, order, nr_pcp_alloc(m, z, cpu, order), mt, alloc_flags)
        pfn = pcp_rmqueue_smallest(m, z, cpu, mt, order)
        if pfn < 0:
            return -1
    m.pcp[z, cpu, PCP_COUNT] -= 1 << order
    return pfn


@njit_inline
def rmqueue_pcplist(m, z, cpu, order, mt, alloc_flags):
    """rmqueue_pcplist(): take the list head, refilling the list when empty."""
    pcp = m.pcp[z, cpu]
    pcp[PCP_FREE_COUNT] >>= 1
    if m.cfg[_CFG_PCPBUDDY] != 0:
        return pcpbuddy_rmqueue_pcplist(m, z, cpu, order, mt, alloc_flags)
    pindex = order_to_pindex(mt, order)
    if m.pcp_head[z, cpu, pindex] < 0:
        batch = nr_pcp_alloc(m, z, cpu, order)
        rmqueue_bulk(m, z, cpu, order, batch, pindex, mt, alloc_flags)
        if m.pcp_head[z, cpu, pindex] < 0:
            return -1
    pfn = m.pcp_head[z, cpu, pindex]
    _pcp_del(m, z, cpu, pindex, pfn)
    pcp[PCP_COUNT] -= 1 << order
    return pfn


@njit_inline
def _pcp_list_of(m, z, cpu, order, pfn):
    """The list (of the three types of ``order``) an entry is on, for
    list_del(): only an end of a list needs the right one."""
    for mt in range(MIGRATE_PCPTYPES):
        pi = MIGRATE_PCPTYPES * order + mt
        if m.pcp_head[z, cpu, pi] == pfn or m.pcp_tail[z, cpu, pi] == pfn:
            return pi
    return MIGRATE_PCPTYPES * order


@njit
def pcp_merge_pass(m, z, cpu):
    """PCPBuddy's bottom-up merge pass (start of free_pcppages_bulk()): orders
    0..pageblock_order-1, each type's list from the head; a PagePCPBuddy entry
    whose buddy is a PagePCPBuddy entry of the same order (on any type's list
    of this cpu: ownership keeps it here) merges with it, to the tail of the
    walked type's list one order up, where the pass meets it again.
    An order without a pair (pcp_pairs, kept exact by every list change) is
    not walked, and the walk of an order stops at its last pair: the rest
    would merge nothing (a merge makes pairs only one order up)."""
    for order in range(pageblock_order):
        for mt in range(MIGRATE_PCPTYPES):
            pi = MIGRATE_PCPTYPES * order + mt
            p = m.pcp_head[z, cpu, pi]
            while p >= 0 and m.pcp_pairs[z, cpu, order] > 0:
                nxt = m.pg_next[p]
                if (m.pg_flags[p] & PG_pcpbuddy) and pcpbuddy_pair_order(m, p) == order:
                    b = p ^ (1 << order)
                    if nxt == b:
                        nxt = m.pg_next[b]
                    m.pcp_pairs[z, cpu, order] -= 1        # the pair (p, b) goes
                    _pcp_del(m, z, cpu, pi, p)
                    # (after p's removal, which can make b an end of its list)
                    _pcp_del(m, z, cpu, _pcp_list_of(m, z, cpu, order, b), b)
                    h = p & b
                    m.pg_order[h] = order + 1
                    _pcp_add(m, z, cpu, pi + MIGRATE_PCPTYPES, h, True)
                    _pcpbuddy_mark(m, z, cpu, h)
                    m.sim[_SIM_MERGES] += 1
                p = nxt


@njit
def free_pcppages_bulk(m, z, cpu, count, pindex):
    """free_pcppages_bulk(): round-robin over lists from ``pindex``, oldest (tail)
    first, each page to its block's type's list (v6.1: to the type recorded
    when it entered the pcp, get_pcppage_migratetype(), but an isolated
    block's).  PCPBuddy: the merge pass first, the round-robin from the
    pageblock-order lists, and a PagePCPBuddy fragment (below pageblock order)
    goes to the tail of the buddy list and puts its block on owned_blocks."""
    pcp = m.pcp[z, cpu]
    if count > pcp[PCP_COUNT]:
        count = pcp[PCP_COUNT]
    pcpbuddy = m.cfg[_CFG_PCPBUDDY] != 0
    v61 = m.cfg[_CFG_VERSION] == KV_6_1
    if pcpbuddy and count > 0:
        pcp_merge_pass(m, z, cpu)
        pindex = MIGRATE_PCPTYPES * pageblock_order
    pindex = pindex - 1
    while count > 0:
        while True:
            pindex += 1
            if pindex > NR_PCP_LISTS - 1:
                pindex = 0
            if m.pcp_head[z, cpu, pindex] >= 0:
                break
        order = pcp_pindex_to_order(m, pindex)
        nr_pages = 1 << order
        while True:
            pfn = m.pcp_tail[z, cpu, pindex]
            mt = m.pb_mt[pfn >> pageblock_order]
            if v61 and mt != MIGRATE_ISOLATE:
                mt = m.pg_list_mt[pfn]      # get_pcppage_migratetype(): the type it entered with
            to_tail = False
            if pcpbuddy and order < pageblock_order and (m.pg_flags[pfn] & PG_pcpbuddy):
                _pcpbuddy_unmark(m, z, cpu, pfn)
                pcpblock_owned_add(m, z, cpu, pfn >> pageblock_order)
                m.sim[_SIM_FRAG_DRAINS] += 1
                to_tail = True
            _pcp_del(m, z, cpu, pindex, pfn)
            count -= nr_pages
            pcp[PCP_COUNT] -= nr_pages
            free_one_page_merge(m, pfn, z, order, mt, to_tail)
            trace_event(m, EV_PCPU_DRAIN, pfn, order, mt, 0, 0, 0)
            m.sim[_SIM_DRAIN] += 1
            if count <= 0 or m.pcp_head[z, cpu, pindex] < 0:
                break


@njit_inline
def nr_pcp_high(m, z, cpu, batch, free_high):
    """nr_pcp_high(): the drain threshold, with high autotuning."""
    pcp = m.pcp[z, cpu]
    high = _clamp_high(m, z, cpu)
    hmin = pcp[PCP_HIGH_MIN]
    hmax = pcp[PCP_HIGH_MAX]
    if high == 0:
        return 0
    if free_high:
        pcp[PCP_HIGH] = max(high - (batch << CONFIG_PCP_BATCH_SCALE_MAX), hmin)
        return 0
    zflags = m.zstat[z, ZS_FLAGS]
    if zflags & ZONE_RECLAIM_ACTIVE:
        fc = max(pcp[PCP_FREE_COUNT], batch)
        pcp[PCP_HIGH] = max(high - fc, hmin)
        return min(batch << 2, pcp[PCP_HIGH])
    if hmin == hmax:
        return high
    if zflags & ZONE_BELOW_HIGH:
        fc = max(pcp[PCP_FREE_COUNT], batch)
        pcp[PCP_HIGH] = max(high - fc, hmin)
        high = max(pcp[PCP_COUNT], hmin)
    elif pcp[PCP_COUNT] >= high:
        need_high = pcp[PCP_FREE_COUNT] + batch
        if pcp[PCP_HIGH] < need_high:
            pcp[PCP_HIGH] = min(max(need_high, hmin), hmax)
    return high


@njit_inline
def nr_pcp_free(m, z, cpu, batch, high, free_high):
    """nr_pcp_free(): how many pages one drain frees."""
    pcp = m.pcp[z, cpu]
    if free_high:
        return min(pcp[PCP_COUNT], batch << CONFIG_PCP_BATCH_SCALE_MAX)
    lo = batch
    hi = high - batch
    fc = pcp[PCP_FREE_COUNT]
    if fc < lo:
        fc = lo
    if fc > hi:
        fc = hi
    return fc


@njit_inline
def nr_pcp_high_v61(m, z, cpu, batch, free_high):
    """nr_pcp_high() of v6.1: the static high, 0 for free_high, at most
    4 * batch while the zone is under reclaim (ZONE_RECLAIM_ACTIVE)."""
    high = m.pcp[z, cpu, PCP_HIGH]
    if high == 0 or free_high:
        return 0
    if (m.zstat[z, ZS_FLAGS] & ZONE_RECLAIM_ACTIVE) == 0:
        return high
    return min(batch << 2, high)


@njit_inline
def nr_pcp_free_v61(m, z, cpu, batch, high, free_high):
    """nr_pcp_free() of v6.1.y: everything for free_high; else the batch
    doubled per drain without an allocation in between (pcp->free_factor,
    kept in the free_count slot, at most CONFIG_PCP_BATCH_SCALE_MAX: "mm:
    restrict the pcp batch scale factor to avoid too long latency", in
    6.1.y since 6.1.93), between batch and high - batch."""
    pcp = m.pcp[z, cpu]
    if free_high:
        return pcp[PCP_COUNT]
    if high < batch:
        return 1
    lo = batch
    hi = high - batch
    n = batch << pcp[PCP_FREE_COUNT]
    if n < hi and pcp[PCP_FREE_COUNT] < CONFIG_PCP_BATCH_SCALE_MAX:
        pcp[PCP_FREE_COUNT] += 1
    return min(max(n, lo), hi)


@njit_inline
def free_unref_page_commit_v61(m, z, cpu, pindex, order):
    """free_unref_page_commit() of v6.1, after the page is on its list: a
    high-order page (1..PAGE_ALLOC_COSTLY_ORDER) freed while pcp->free_factor
    is set drains the whole pcp (free_high)."""
    pcp = m.pcp[z, cpu]
    batch = pcp[PCP_BATCH]
    free_high = pcp[PCP_FREE_COUNT] != 0 and order != 0 and order <= PAGE_ALLOC_COSTLY_ORDER
    high = nr_pcp_high_v61(m, z, cpu, batch, free_high)
    if pcp[PCP_COUNT] >= high:
        free_pcppages_bulk(m, z, cpu, nr_pcp_free_v61(m, z, cpu, batch, high, free_high), pindex)
        return True
    return False


@njit_inline
def free_unref_page_commit(m, z, cpu, pfn, order, mt, owned):
    """free_unref_page_commit() / free_frozen_page_commit(): park the page at the
    list head (``owned``: a PCPBuddy owner's page, PagePCPBuddy); drain from
    the tails once the list count reaches high.

    Returns True if a drain happened (the caller re-checks ZONE_BELOW_HIGH).
    """
    pcp = m.pcp[z, cpu]
    pcp[PCP_ALLOC_FACTOR] >>= 1
    pindex = pcp_order_to_pindex(m, mt, order)
    m.pg_order[pfn] = order
    _pcp_add(m, z, cpu, pindex, pfn, False)
    if owned:
        _pcpbuddy_mark(m, z, cpu, pfn)
    pcp[PCP_COUNT] += 1 << order
    if m.cfg[_CFG_VERSION] == KV_6_1:
        return free_unref_page_commit_v61(m, z, cpu, pindex, order)
    batch = pcp[PCP_BATCH]
    free_high = False
    if order and order <= PAGE_ALLOC_COSTLY_ORDER:
        if m.cfg[_CFG_VERSION] != KV_RECENT:
            thresh = batch
        else:
            thresh = batch + pcp[PCP_HIGH_MIN] // 2
        free_high = pcp[PCP_FREE_COUNT] >= thresh and (pcp[PCP_FLAGS] & PCPF_PREV_FREE_HIGH_ORDER) != 0 \
            and ((pcp[PCP_FLAGS] & PCPF_FREE_HIGH_BATCH) == 0 or pcp[PCP_COUNT] >= batch)
        pcp[PCP_FLAGS] |= PCPF_PREV_FREE_HIGH_ORDER
    elif pcp[PCP_FLAGS] & PCPF_PREV_FREE_HIGH_ORDER:
        pcp[PCP_FLAGS] &= ~PCPF_PREV_FREE_HIGH_ORDER
    if pcp[PCP_FREE_COUNT] < (batch << CONFIG_PCP_BATCH_SCALE_MAX):
        pcp[PCP_FREE_COUNT] += 1 << order
    high = nr_pcp_high(m, z, cpu, batch, free_high)
    if pcp[PCP_COUNT] >= high:
        free_pcppages_bulk(m, z, cpu, nr_pcp_free(m, z, cpu, batch, high, free_high), pindex)
        return True
    return False


@njit
def drain_zone_pages(m, z, cpu):
    """drain_pages_zone(): empty one cpu's lists of one zone, in chunks of
    batch << CONFIG_PCP_BATCH_SCALE_MAX (the order they go in is the same as
    in one chunk; with PCPBuddy each chunk starts with a merge pass)."""
    chunk = m.pcp[z, cpu, PCP_COUNT]
    if m.cfg[_CFG_PCPBUDDY] != 0:
        chunk = max(m.pcp[z, cpu, PCP_BATCH] << CONFIG_PCP_BATCH_SCALE_MAX, 1)
    while m.pcp[z, cpu, PCP_COUNT] > 0:
        free_pcppages_bulk(m, z, cpu, min(m.pcp[z, cpu, PCP_COUNT], chunk), 0)


@njit
def drain_all_pages(m):
    """drain_all_pages(NULL): every cpu, every zone."""
    for z in range(m.pcp.shape[0]):
        for cpu in range(m.pcp.shape[1]):
            drain_zone_pages(m, z, cpu)


@njit
def decay_pcp_high(m, z, cpu):
    """decay_pcp_high() (vmstat_update, every second): lower an autotuned high
    by 1/8 towards high_min and drain what the list holds above it."""
    pcp = m.pcp[z, cpu]
    high_min = pcp[PCP_HIGH_MIN]
    batch = pcp[PCP_BATCH]
    if pcp[PCP_HIGH] > high_min:
        pcp[PCP_HIGH] = max(pcp[PCP_COUNT] - (batch << CONFIG_PCP_BATCH_SCALE_MAX),
                            pcp[PCP_HIGH] - (pcp[PCP_HIGH] >> 3), high_min)
    to_drain = pcp[PCP_COUNT] - pcp[PCP_HIGH]
    if to_drain > 0:
        free_pcppages_bulk(m, z, cpu, to_drain, 0)
