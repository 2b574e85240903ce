"""The buddy allocator proper: free lists, expand, merge (mm/page_alloc.c).

Free lists are intrusive doubly linked lists threaded through ``pg_next`` /
``pg_prev`` (as ``page->buddy_list``), one per zone, order and migratetype,
with head and tail, so LIFO allocation from the head, tail insertion for
likely merges, and ``list_first_entry`` victim choice are all as in the kernel.
"""
import numpy as np

from .const import (KV_6_1, KV_RECENT, MAX_NR_ZONES, MAX_PAGE_ORDER, MIGRATE_HIGHATOMIC,
                    MIGRATE_ISOLATE, MIGRATE_MOVABLE, MIGRATE_PCPTYPES, MIGRATE_RECLAIMABLE,
                    MIGRATE_UNMOVABLE, NR_PAGE_ORDERS, PAGE_ALLOC_COSTLY_ORDER,
                    PB_all_free, PB_has_mask, PB_has_movable,
                    PB_has_reclaimable, PB_has_unmovable, PG_buddy, PG_head, PG_lru,
                    HPAGE_PMD_ORDER, pageblock_nr_pages, pageblock_order)
from .jit import njit, njit_inline
from .list import list_add, list_add_tail, list_del
from .pbits import migratetype_to_has_bit
from .state import (CAPC_MT, CAPC_ORDER, CAPC_PAGE, CAPC_ZONE, CFG, SIMSTAT, TL_CAPTURE,
                    ZS_FREE_HIGHATOMIC, ZS_NR_FREE, ZS_NR_FREE_BLOCKS)
from .taint import pageblock_taint, pageblock_untaint
from .tracepoint import EV_EXTFRAG, EV_ZONE_LOCKED, trace_event
from .spb.lists import spb_mark_pageblock_free_call, spb_pageblock_set_has_call
from .spb.params import SPB_CFG_UPDATE, SPB_UPDATE_S1, ST_UPDATE_CALLS

_CFG_RELABEL = CFG["relabel_free_pageblocks"]
_CFG_VERSION = CFG["version"]
_CFG_SPB = CFG["spb"]
_CFG_PCPBUDDY = CFG["pcpbuddy"]
_SIM_VISITED = SIMSTAT["sim_freelists_visited"]
_SIM_DISOWN = SIMSTAT["sim_pcpbuddy_disown"]


# ---------------------------------------------------------------- pageblocks

@njit_inline
def get_pfnblock_migratetype(m, pfn):
    """get_pfnblock_migratetype(): the pageblock's migratetype."""
    return m.pb_mt[pfn >> pageblock_order]


@njit_inline
def set_pageblock_migratetype(m, pfn, mt):
    m.pb_mt[pfn >> pageblock_order] = mt


@njit
def change_pageblock_range(m, pfn, order, mt):
    """change_pageblock_range(): retype every pageblock of a >= pageblock_order block."""
    nr = 1
    if order > pageblock_order:
        nr = 1 << (order - pageblock_order)
    pb = pfn >> pageblock_order
    for i in range(nr):
        m.pb_mt[pb + i] = mt


@njit_inline
def migratetype_is_mergeable(mt):
    return mt < MIGRATE_PCPTYPES


@njit_inline
def pageblock_set_has(m, pfn, order, mt):
    """Mark the pageblock(s) under an allocated range as holding ``mt`` content.

    Our reading of ``page_del_and_expand`` in the SPB series (S1): the bit of
    the list type is set and PB_all_free cleared for every pageblock the
    allocated chunk covers (hook point for the SPB counters).
    """
    bit = migratetype_to_has_bit(mt)
    if m.cfg[_CFG_SPB] != 0:
        if order <= pageblock_order and m.spb.cfg[SPB_CFG_UPDATE] != SPB_UPDATE_S1:
            # the common case, inline: the block already has the bit and is not
            # all-free, so no counter moves and the transition-only
            # spb_update_list() would find nothing to do (it is still counted)
            pb = pfn >> pageblock_order
            f = m.pb_flags[pb]
            if (bit == 0 or (f & bit) != 0) and (f & PB_all_free) == 0:
                m.spb.stat[m.pb_zone[pb], ST_UPDATE_CALLS] += 1
                return
        spb_pageblock_set_has_call(m.spb, m, pfn, order, mt)
        return
    pb = pfn >> pageblock_order
    nr = 1
    if order > pageblock_order:
        nr = 1 << (order - pageblock_order)
    for i in range(nr):
        f = m.pb_flags[pb + i]
        m.pb_flags[pb + i] = (f | bit) & (0xFF ^ PB_all_free)


@njit_inline
def mark_pageblock_free(m, pb):
    """mark_pageblock_free() (SPB series S1): the block became entirely free.

    Clears the PB_has_* bits and sets PB_all_free.  With the
    ``relabel_free_pageblocks`` switch (SPB allocator) an UNMOVABLE,
    RECLAIMABLE or HIGHATOMIC block is relabelled MOVABLE; stock keeps labels.
    Returns the block's (possibly new) migratetype.
    """
    if m.cfg[_CFG_SPB] != 0:
        spb_mark_pageblock_free_call(m.spb, m, pb << pageblock_order)
    else:
        f = m.pb_flags[pb]
        m.pb_flags[pb] = (f & (0xFF ^ PB_has_mask)) | PB_all_free
    mt = m.pb_mt[pb]
    if m.cfg[_CFG_RELABEL] != 0:
        mt = free_block_label(mt)
        m.pb_mt[pb] = mt
    return mt


@njit_inline
def free_block_label(mt):
    """The relabel rule (SPB series): an entirely free UNMOVABLE, RECLAIMABLE
    or HIGHATOMIC block becomes MOVABLE; other types keep their label."""
    if mt == MIGRATE_UNMOVABLE or mt == MIGRATE_RECLAIMABLE or mt == MIGRATE_HIGHATOMIC:
        return MIGRATE_MOVABLE
    return mt


# ---------------------------------------------------------------- PCPBuddy ownership

@njit_inline
def pcpblock_on_owned_list(m, z, cpu, pb):
    """Is the block on ``pcp->owned_blocks`` of (z, cpu)?"""
    return m.pb_own_prev[pb] >= 0 or m.pcp_own_head[z, cpu] == pb


@njit_inline
def pcpblock_owned_add(m, z, cpu, pb):
    """list_add(&pbd->cpu_node, &pcp->owned_blocks) unless already listed."""
    if not pcpblock_on_owned_list(m, z, cpu, pb):
        list_add(m.pb_own_next, m.pb_own_prev, m.pcp_own_head, m.pcp_own_tail, (z, cpu), pb)


@njit_inline
def pcpblock_owned_del(m, z, cpu, pb):
    """list_del_init(&pbd->cpu_node) if listed."""
    if pcpblock_on_owned_list(m, z, cpu, pb):
        list_del(m.pb_own_next, m.pb_own_prev, m.pcp_own_head, m.pcp_own_tail, (z, cpu), pb)


@njit_inline
def set_pcpblock_owner(m, pb, cpu):
    """set_pcpblock_owner() (PCPBuddy): pbd->cpu = cpu + 1."""
    m.pb_cpu[pb] = cpu + 1


@njit
def clear_pcpblock_owner(m, pb):
    """clear_pcpblock_owner() (PCPBuddy, from mark_pageblock_free()): the block
    is whole in the buddy again; it leaves its owner and the owner's list."""
    c = m.pb_cpu[pb]
    if c == 0:
        return
    pcpblock_owned_del(m, m.pb_zone[pb], c - 1, pb)
    m.pb_cpu[pb] = 0
    m.sim[_SIM_DISOWN] += 1


@njit_inline
def page_zone(m, pfn):
    return m.pb_zone[pfn >> pageblock_order]


# ---------------------------------------------------------------- free lists

@njit_inline
def account_freepages(m, z, nr, mt, order):
    """account_freepages(): NR_FREE_PAGES, nr_free_highatomic, NR_FREE_PAGES_BLOCKS."""
    if mt == MIGRATE_ISOLATE:
        return
    m.zstat[z, ZS_NR_FREE] += nr
    if mt == MIGRATE_HIGHATOMIC:
        m.zstat[z, ZS_FREE_HIGHATOMIC] += nr
    if order >= pageblock_order:
        m.zstat[z, ZS_NR_FREE_BLOCKS] += nr


@njit_inline
def _link(m, pfn, z, order, mt, tail):
    """list_add / list_add_tail onto the free list of pfn's owner (its zone, or
    with per-SPB free lists its SPB: ``pb_list``), keeping both counts."""
    L = m.pb_list[pfn >> pageblock_order]
    if tail:
        list_add_tail(m.pg_next, m.pg_prev, m.fa_head, m.fa_tail, (L, order, mt), pfn)
    else:
        list_add(m.pg_next, m.pg_prev, m.fa_head, m.fa_tail, (L, order, mt), pfn)
    m.pg_list_mt[pfn] = mt
    m.fl_nr[L, order, mt] += 1
    m.fa_nr[z, order, mt] += 1
    return L


@njit_inline
def _unlink(m, pfn, z, order, mt):
    L = m.pb_list[pfn >> pageblock_order]
    list_del(m.pg_next, m.pg_prev, m.fa_head, m.fa_tail, (L, order, mt), pfn)
    m.fl_nr[L, order, mt] -= 1
    m.fa_nr[z, order, mt] -= 1
    return L


@njit_inline
def add_to_free_list(m, pfn, z, order, mt, tail):
    """__add_to_free_list() + set_buddy_order() + account_freepages(); with
    per-SPB free lists also sb->nr_free_pages [S1 §10]."""
    L = _link(m, pfn, z, order, mt, tail)
    if L >= MAX_NR_ZONES:
        m.spb.nr_free_pages[L - MAX_NR_ZONES] += 1 << order
    m.pg_flags[pfn] |= PG_buddy
    m.pg_order[pfn] = order
    m.nr_free[z, order] += 1
    account_freepages(m, z, 1 << order, mt, order)


@njit_inline
def del_page_from_free_list(m, pfn, z, order, mt):
    """__del_page_from_free_list() + account_freepages() (+ sb->nr_free_pages)."""
    L = _unlink(m, pfn, z, order, mt)
    if L >= MAX_NR_ZONES:
        m.spb.nr_free_pages[L - MAX_NR_ZONES] -= 1 << order
    m.pg_flags[pfn] &= 0xFF ^ PG_buddy
    m.nr_free[z, order] -= 1
    account_freepages(m, z, -(1 << order), mt, order)


@njit_inline
def move_to_free_list(m, pfn, z, order, old_mt, new_mt):
    """move_to_free_list(): to the tail of another type's list."""
    _unlink(m, pfn, z, order, old_mt)
    _link(m, pfn, z, order, new_mt, True)
    account_freepages(m, z, -(1 << order), old_mt, order)
    account_freepages(m, z, 1 << order, new_mt, order)


@njit_inline
def expand(m, z, pfn, low, high, mt):
    """expand(): put the upper halves back at the list head, keep the low 1<<low pages."""
    size = 1 << high
    while high > low:
        high -= 1
        size >>= 1
        add_to_free_list(m, pfn + size, z, high, mt, False)


@njit_inline
def page_del_and_expand(m, z, pfn, order, high, mt):
    """page_del_and_expand(): take a buddy off its list and split it down to order."""
    del_page_from_free_list(m, pfn, z, high, mt)
    expand(m, z, pfn, order, high, mt)
    pageblock_set_has(m, pfn, order, mt)


@njit_inline
def stock_pcp_allowed_order(order):
    """pcp_allowed_order() of the stock kernel: orders 0..PAGE_ALLOC_COSTLY_ORDER
    and the THP order (also the rule a what-if replay reads a kernel's frees by)."""
    return order <= PAGE_ALLOC_COSTLY_ORDER or order == HPAGE_PMD_ORDER


@njit_inline
def pcp_allowed_order(m, order):
    """pcp_allowed_order(): the stock rule; with PCPBuddy every order up to
    pageblock_order."""
    if m.cfg[_CFG_PCPBUDDY] != 0:
        return order <= pageblock_order
    return stock_pcp_allowed_order(order)


@njit_inline
def rmqueue_smallest(m, z, order, mt):
    """__rmqueue_smallest(): the smallest block on ``mt``'s lists, split down to order."""
    for current_order in range(order, NR_PAGE_ORDERS):
        m.sim[_SIM_VISITED] += 1
        pfn = m.fa_head[z, current_order, mt]
        if pfn < 0:
            continue
        page_del_and_expand(m, z, pfn, order, current_order, mt)
        refill = 1 if (pcp_allowed_order(m, order) and mt < MIGRATE_PCPTYPES) else 0
        trace_event(m, EV_ZONE_LOCKED, pfn, order, mt, refill, 0, 0)
        return pfn
    return -1


@njit
def first_free_pfn(m, z, order, mt):
    """The head of zone z's (order, mt) free list; with per-SPB free lists the
    first non-empty SPB list of the zone in slot order (rare callers only:
    highatomic unreserve, tests).  -1 if none."""
    h = m.fa_head[z, order, mt]
    if h >= 0 or m.cfg[_CFG_SPB] == 0:
        return h
    if m.fa_nr[z, order, mt] == 0:
        return -1
    first = m.spb.zone_first[z]
    for k in range(m.spb.zone_count[z]):
        h = m.fa_head[MAX_NR_ZONES + first + k, order, mt]
        if h >= 0:
            return h
    return -1


# ---------------------------------------------------------------- freeing

@njit_inline
def page_is_buddy(m, buddy, order, z):
    """page_is_buddy(): a free buddy head of exactly this order in the same zone."""
    if buddy < 0 or buddy >= m.pg_flags.shape[0]:
        return False
    if m.pb_zone[buddy >> pageblock_order] != z:
        return False
    return (m.pg_flags[buddy] & PG_buddy) != 0 and m.pg_order[buddy] == order


@njit_inline
def buddy_merge_likely(m, pfn, buddy_pfn, order, z):
    """buddy_merge_likely(): is the next-higher buddy free too? Then queue at the tail."""
    if order >= MAX_PAGE_ORDER - 1:
        return False
    higher = buddy_pfn & pfn
    return page_is_buddy(m, higher ^ (1 << (order + 1)), order + 1, z)


@njit_inline
def compaction_capture(m, pfn, order, mt):
    """compaction_capture(): the direct compactor that published ``m.capc``
    for this zone takes the page when it has exactly the compaction's order:
    never an isolated block, and a MOVABLE block's page below pageblock order
    only for a MOVABLE request (6.1: never).  A type mismatch is traced as
    mm_page_alloc_extfrag, as kernels from 6.15 do."""
    want = m.capc[CAPC_MT]
    if order != m.capc[CAPC_ORDER] or mt == MIGRATE_ISOLATE:
        return False
    version = m.cfg[_CFG_VERSION]
    if order < pageblock_order and mt == MIGRATE_MOVABLE and (
            want != MIGRATE_MOVABLE or version == KV_6_1):
        return False            # 6.1: never below pageblock order from a MOVABLE block
    if mt != want and version == KV_RECENT:
        # the tracepoint came with v6.15 ("trace type pollution from compaction capturing")
        own = 1 if m.pb_mt[pfn >> pageblock_order] == want else 0
        trace_event(m, EV_EXTFRAG, pfn, order, order, want, mt, own)
    if mt != want and order < pageblock_order:
        pageblock_taint(m, pfn, want, mt, TL_CAPTURE)
    m.capc[CAPC_PAGE] = pfn
    return True


@njit_inline
def free_one_page_merge(m, pfn, z, order, mt, to_tail):
    """__free_one_page(): merge with free buddies, then queue on ``mt``'s list.

    Merging two >= pageblock_order buddies of different types is allowed only
    if both are mergeable (not HIGHATOMIC/ISOLATE); the buddy's block is then
    retyped to ``mt``.  Reaching pageblock order marks the block(s) fully free.
    A direct compactor's capture (task_capc) takes the block at its order
    instead: it then goes on no list and the pfn is returned as freed.
    """
    capc = m.capc[CAPC_ZONE] == z and m.capc[CAPC_PAGE] < 0      # task_capc()
    buddy_pfn = pfn ^ (1 << order)
    while order < MAX_PAGE_ORDER:
        if capc and compaction_capture(m, pfn, order, mt):
            return pfn
        buddy_pfn = pfn ^ (1 << order)
        if not page_is_buddy(m, buddy_pfn, order, z):
            break
        buddy_mt = mt
        if order >= pageblock_order:
            buddy_mt = m.pb_mt[buddy_pfn >> pageblock_order]
            if buddy_mt != mt and (not migratetype_is_mergeable(mt)
                                   or not migratetype_is_mergeable(buddy_mt)):
                break
        del_page_from_free_list(m, buddy_pfn, z, order, m.pg_list_mt[buddy_pfn])
        if buddy_mt != mt and m.cfg[_CFG_VERSION] != KV_6_1:
            # "Match buddy type" (v6.10 on); v6.1 leaves the buddy's block alone
            m.pb_mt[buddy_pfn >> pageblock_order] = mt
        pfn = buddy_pfn & pfn
        order += 1
    if order >= pageblock_order:
        # mark_pageblock_free() for each block not yet marked
        pb = pfn >> pageblock_order
        nr = 1 << (order - pageblock_order)
        for i in range(nr):
            if (m.pb_flags[pb + i] & PB_all_free) == 0:
                mark_pageblock_free(m, pb + i)
            if m.cfg[_CFG_PCPBUDDY] != 0 and m.pb_cpu[pb + i] != 0:
                clear_pcpblock_owner(m, pb + i)     # unconditional in S1's mark_pageblock_free()
            if m.pb_taint[pb + i] != 0:
                pageblock_untaint(m, pb + i)        # the taint log: clean again
        if m.cfg[_CFG_RELABEL] != 0:
            mt = m.pb_mt[pb]
            if nr > 1:
                # one free buddy sits on one list, so every pageblock it covers
                # takes the list's type (__free_one_page: "match buddy type").
                # A block whose PB_all_free was already set skipped the relabel
                # above and could keep UNMOVABLE/RECLAIMABLE under a MOVABLE
                # chunk; expand() later put it on the wrong list.
                mt = free_block_label(mt)
                for i in range(nr):
                    m.pb_mt[pb + i] = mt
    if not to_tail:
        to_tail = buddy_merge_likely(m, pfn, buddy_pfn, order, z)
    add_to_free_list(m, pfn, z, order, mt, to_tail)
    return pfn


@njit
def split_large_buddy(m, pfn, z, order, to_tail):
    """split_large_buddy(): free a > pageblock_order chunk block by block, each
    with its own pageblock type."""
    end = pfn + (1 << order)
    if order > pageblock_order:
        order = pageblock_order
    while pfn < end:
        mt = m.pb_mt[pfn >> pageblock_order]
        free_one_page_merge(m, pfn, z, order, mt, to_tail)
        pfn += 1 << order


# ---------------------------------------------------------------- pageblock scans

@njit
def prep_move_freepages_block(m, z, pfn):
    """prep_move_freepages_block(): count free and movable pages of pfn's block.

    Returns (start_pfn, free_pages, movable_pages), start_pfn = -1 if the block
    straddles the zone boundary.  Movable pages: every page of the block that
    belongs to an allocated LRU folio, as the kernel's per-page PageLRU()
    answers for the folio's head (PF_HEAD), also where the folio began in an
    earlier pageblock.
    """
    start = pfn & ~(pageblock_nr_pages - 1)
    end = start + pageblock_nr_pages
    if start < m.zone_start[z] or end > m.zone_end[z]:
        return -1, 0, 0
    free_pages = 0
    movable = 0
    p = start
    for o in range(pageblock_order + 1, MAX_PAGE_ORDER + 1):
        h = start & ~((np.int64(1) << o) - 1)
        if h != start and (m.pg_flags[h] & PG_head) != 0 and (m.pg_flags[h] & PG_buddy) == 0 \
                and np.int64(m.pg_order[h]) >= o:
            e = min(h + (np.int64(1) << np.int64(m.pg_order[h])), end)
            if m.pg_flags[h] & PG_lru:
                movable += e - start
            p = e
            break
    while p < end:
        f = m.pg_flags[p]
        if f & PG_buddy:
            n = 1 << m.pg_order[p]
            free_pages += n
            p += n
            continue
        if f & PG_lru:
            o = np.int64(m.pg_order[p])
            n = (np.int64(1) << o) if o > 0 else np.int64(1)
            if n > end - p:
                n = end - p
            movable += n
            p += n
            continue
        p += 1
    return start, free_pages, movable


@njit_inline
def move_freepages(m, z, start, new_mt):
    """move_freepages(): every free buddy of the block at ``start`` to the
    tail of ``new_mt``'s lists, each from the list it is on (``old_mt`` of
    __move_freepages_block() is every page's list type since v6.10; v6.1
    also holds a block's free pages on other types' lists).  Returns the
    pages moved; the block keeps its type."""
    end = start + pageblock_nr_pages
    p = start
    moved = 0
    while p < end:
        if m.pg_flags[p] & PG_buddy:
            o = m.pg_order[p]
            move_to_free_list(m, p, z, o, m.pg_list_mt[p], new_mt)
            moved += 1 << o
            p += 1 << o
        else:
            p += 1
    return moved


@njit
def move_freepages_block(m, z, start, old_mt, new_mt):
    """__move_freepages_block(): move every free buddy of a block to new_mt and
    retype it (``old_mt``, the block's type, is what the caller read)."""
    moved = move_freepages(m, z, start, new_mt)
    m.pb_mt[start >> pageblock_order] = new_mt
    return moved
