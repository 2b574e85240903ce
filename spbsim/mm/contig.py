"""Contiguous range allocation (mm/page_alloc.c alloc_contig_range, as used for
1 GB hugetlb pages): isolate, migrate the movable blocks out, take the range."""
from .buddy import del_page_from_free_list, move_freepages_block, pageblock_set_has
from .compaction import migrate_block, page_migratable
from .const import (MAX_PAGE_ORDER, MIGRATE_ISOLATE, MIGRATE_MOVABLE, PG_buddy, PG_head,
                    PG_lru, PG_MT_SHIFT, PG_pcp, SUPERPAGEBLOCK_NR_PAGES,
                    pageblock_order)
from .jit import njit, njit_inline
from .lru import lru_add, lru_del
from .page_alloc import alloc_pages_call
from .page_free import free_pages_call
from .gfp import GFP_TRANSHUGE, __GFP_RECLAIM
from .pcp import drain_all_pages
from .split import split_isolated_block
from .state import CFG, CUR_GFP, CUR_ORDER, CUR_OWNER

_CFG_SPLIT = CFG["migrate_split_large"]

__all__ = ["contig_range_movable", "alloc_contig_range", "find_contig_1g", "free_contig_range"]


@njit
def contig_range_movable(m, start, nr):
    """Can [start, start+nr) be made free by migration?  Every page free, on a
    pcp list, or in an unpinned movable (LRU) block; one zone, no holes."""
    z = m.pb_zone[start >> pageblock_order]
    if z < 0:
        return False
    p = start
    end = start + nr
    while p < end:
        if m.pb_zone[p >> pageblock_order] != z:
            return False
        f = m.pg_flags[p]
        if f & (PG_buddy | PG_pcp):
            p += 1 << m.pg_order[p]
        elif f & PG_head:
            if not page_migratable(m, p):
                return False
            p += 1 << m.pg_order[p]
        else:
            return False          # reserved page, or the tail of a larger block
    return True


@njit_inline
def isolate_lru_block(m, p):
    """isolate_lru_page(): the block leaves its LRU list and loses PG_lru, so
    reclaim, compaction and SPB evacuation (page_migratable) leave it alone."""
    lru = m.owner_lru[m.pg_owner[p]]
    if lru >= 0:
        lru_del(m, p, lru)
    m.pg_flags[p] &= 0xFF ^ PG_lru


@njit_inline
def putback_lru_block(m, p):
    """putback_lru_page(): PG_lru again, at the head of its LRU."""
    m.pg_flags[p] |= PG_lru
    lru = m.owner_lru[m.pg_owner[p]]
    if lru >= 0:
        lru_add(m, p, lru)


@njit
def isolate_range_blocks(m, start, end):
    """isolate_migratepages_range() over the whole range: every movable block
    is isolated from its LRU, so the direct reclaim or compaction that
    allocating migration targets may run can neither free nor move it.
    Returns the pfn where a block that cannot be isolated stops the walk, or
    ``end``."""
    p = start
    while p < end:
        f = m.pg_flags[p]
        if f & PG_buddy:
            p += 1 << m.pg_order[p]
        elif f & PG_head:
            if not page_migratable(m, p):
                return p
            isolate_lru_block(m, p)
            p += 1 << m.pg_order[p]
        else:
            return p
    return end


@njit
def putback_range_blocks(m, start, end):
    """putback_movable_pages(): blocks of [start, end) still isolated (a head
    without PG_lru: nothing else allocates inside an isolated range without
    PG_lru) go back to their LRU."""
    p = start
    while p < end:
        f = m.pg_flags[p]
        if f & (PG_head | PG_buddy):
            if (f & PG_head) and (f & PG_lru) == 0:
                putback_lru_block(m, p)
            p += 1 << m.pg_order[p]
        else:
            p += 1


@njit
def test_pages_isolated(m, start, end):
    """test_pages_isolated(): every page of the range free on the ISOLATE
    lists (compaction at MIN priority may have used free pages of an isolated
    block as migration targets: then the range is busy)."""
    p = start
    while p < end:
        if (m.pg_flags[p] & PG_buddy) == 0 or m.pb_mt[p >> pageblock_order] != MIGRATE_ISOLATE:
            return False
        p += 1 << m.pg_order[p]
    return True


@njit_inline
def migration_target_gfp(gfp, order):
    """alloc_migration_target(): a large folio's target drops __GFP_RECLAIM and
    takes GFP_TRANSHUGE (direct reclaim, no kswapd wake, __GFP_NOMEMALLOC)."""
    if order > 0:
        return (gfp & ~__GFP_RECLAIM) | GFP_TRANSHUGE
    return gfp


@njit
def alloc_contig_range(m, start, nr, owner, cpu, migrate_gfp):
    """alloc_contig_range(): isolate the range's pageblocks, take its movable
    blocks off the LRU, migrate each out (new blocks come from outside:
    isolated lists are never allocated from), then, if test_pages_isolated()
    holds, take the whole range as allocated order-10 blocks.

    A target that cannot be allocated ends the attempt (migrate_pages()
    returns -ENOMEM, __alloc_contig_migrate_range() breaks), except for a
    large block: migrate_pages_batch() splits it (MR_CONTIG_RANGE is not
    MR_NUMA_MISPLACED) and the base pages are migrated one by one
    (``migrate_split_large``; mm/split.py).
    Returns pages migrated, or -1 (range restored) on failure."""
    z = m.pb_zone[start >> pageblock_order]
    drain_all_pages(m)
    pb0 = start >> pageblock_order
    npb = nr >> pageblock_order
    for i in range(npb):
        move_freepages_block(m, z, (pb0 + i) << pageblock_order, m.pb_mt[pb0 + i], MIGRATE_ISOLATE)
    migrated = 0
    end = start + nr
    stop = isolate_range_blocks(m, start, end)
    ok = stop == end
    p = start
    while ok and p < end:
        f = m.pg_flags[p]
        if f & PG_buddy:
            p += 1 << m.pg_order[p]
            continue
        if (f & PG_head) and (f & PG_lru) == 0:
            o = m.pg_order[p]
            # the target is allocated inside the caller's request: keep its context
            cur = m.cur
            outer_owner, outer_gfp, outer_order = cur[CUR_OWNER], cur[CUR_GFP], cur[CUR_ORDER]
            dst = alloc_pages_call(m, o, migration_target_gfp(migrate_gfp, o), cpu, m.pg_owner[p])
            cur[CUR_OWNER] = outer_owner
            cur[CUR_GFP] = outer_gfp
            cur[CUR_ORDER] = outer_order
            if dst < 0:
                if o > 0 and m.cfg[_CFG_SPLIT] != 0 and split_isolated_block(m, p):
                    continue        # the base pages, from p on
                ok = False
                break
            # alloc_pages_call accounted a new block for the owner: undo.  The
            # block goes back on the LRU head so that migrate_block() hands its
            # place to the new block (putback after migration), then moves.
            m.owner_pages[m.pg_owner[p]] -= 1 << o
            putback_lru_block(m, p)
            migrate_block(m, p, dst, cpu)
            migrated += 1 << o
            p += 1 << o
            continue
        if f & PG_head:             # a compaction target placed in the range
            p += 1 << m.pg_order[p]
            continue
        p += 1
    drain_all_pages(m)
    if ok:
        ok = test_pages_isolated(m, start, end)
    if not ok:
        putback_range_blocks(m, start, stop)
        for i in range(npb):
            move_freepages_block(m, z, (pb0 + i) << pageblock_order, MIGRATE_ISOLATE, MIGRATE_MOVABLE)
        return -1
    # the range is now free on the ISOLATE lists: take it
    p = start
    while p < end:
        o = m.pg_order[p]
        del_page_from_free_list(m, p, z, o, MIGRATE_ISOLATE)
        p += 1 << o
    for i in range(npb):
        m.pb_mt[pb0 + i] = MIGRATE_MOVABLE
    p = start
    while p < end:
        m.pg_flags[p] = PG_head | (MIGRATE_MOVABLE << PG_MT_SHIFT)
        m.pg_order[p] = MAX_PAGE_ORDER
        m.pg_owner[p] = owner
        m.pg_obj[p] = -1
        pageblock_set_has(m, p, MAX_PAGE_ORDER, MIGRATE_MOVABLE)
        p += 1 << MAX_PAGE_ORDER
    m.owner_pages[owner] += nr
    return migrated


@njit
def find_contig_1g(m, first_spb, last_spb):
    """First SPB-aligned 1 GB range, from the lowest pfn, that can be emptied."""
    for s in range(first_spb, last_spb):
        start = s * SUPERPAGEBLOCK_NR_PAGES
        if start + SUPERPAGEBLOCK_NR_PAGES > m.pg_flags.shape[0]:
            break
        if contig_range_movable(m, start, SUPERPAGEBLOCK_NR_PAGES):
            return start
    return -1


@njit
def free_contig_range(m, start, nr, cpu):
    """free_contig_range(): free the order-10 blocks of a taken range."""
    from_owner = m.pg_owner[start]
    p = start
    while p < start + nr:
        free_pages_call(m, p, MAX_PAGE_ORDER, cpu)
        p += 1 << MAX_PAGE_ORDER
    return from_owner
