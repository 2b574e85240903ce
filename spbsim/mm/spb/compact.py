"""sb_try_alloc_contig() for THP/mTHP-sized movable requests, called by the
SPB hook in __alloc_pages_direct_compact() [S v2 17/40] (mm/page_alloc.py
``direct_compact``): empty a range of a clean SPB by migration and take it.

Details: docs/spb.md ("The direct-compaction hook").
"""
from ..buddy import del_page_from_free_list, move_freepages_block
from ..compaction import page_migratable
from ..const import (MAX_NR_ZONES, MIGRATE_ISOLATE, MIGRATE_MOVABLE, NR_PAGE_ORDERS,
                     PG_buddy, PG_head,
                     SUPERPAGEBLOCK_NR_PAGES, pageblock_nr_pages, pageblock_order)
from ._jit import njit_inline
from .params import (NR_SB_FULLNESS, SB_CLEAN, SPB_CFG_CONTIG_CAP, ST_THP_CONTIG_FAIL,
                     ST_THP_CONTIG_MIGRATED, ST_THP_CONTIG_SUCCESS)
from .work import migrate_range_out

__all__ = ["sb_try_alloc_contig_order"]

_B = MAX_NR_ZONES           # free-list owner of SPB slot i is _B + i


@njit_inline
def _range_candidate(m, i, nr):
    """The nr-aligned range of SPB slot i around its largest free MOVABLE
    buddy below the request ([SIM]: the fewest pages to migrate without a
    scan of the SPB), or -1.  Every page of it free or an unpinned movable
    block; no pcp page (alloc_contig_range would drain every cpu for it)."""
    o = NR_PAGE_ORDERS - 1
    while o >= 0:
        p = m.fa_head[_B + i, o, MIGRATE_MOVABLE]
        if p >= 0 and (1 << o) < nr:
            break
        o -= 1
    if o < 0:
        return -1
    start = p & ~(nr - 1)
    z = m.pb_zone[start >> pageblock_order]
    q = start
    end = start + nr
    while q < end:
        if m.pb_zone[q >> pageblock_order] != z or m.pb_mt[q >> pageblock_order] != MIGRATE_MOVABLE:
            return -1
        f = m.pg_flags[q]
        if f & PG_buddy:
            q += 1 << m.pg_order[q]
        elif (f & PG_head) and page_migratable(m, q):
            q += 1 << m.pg_order[q]
        else:
            return -1
    return start


@njit_inline
def _empty_range(m, z, start, order, cpu):
    """alloc_contig_range() of one THP-sized range, its targets taken from the
    free lists as the SPB evacuation takes them (no reentry into the slow
    path): isolate the blocks, migrate every movable block out (a large one
    without a target is split), and if the range is then one free buddy,
    take it.  Returns (pfn or -1, pages migrated)."""
    npb = (1 << order) >> pageblock_order
    for k in range(npb):
        move_freepages_block(m, z, start + k * pageblock_nr_pages, MIGRATE_MOVABLE, MIGRATE_ISOLATE)
    migrated, ok = migrate_range_out(m, start, start + (1 << order), cpu)
    if ok and (m.pg_flags[start] & PG_buddy) and m.pg_order[start] == order:
        del_page_from_free_list(m, start, z, order, MIGRATE_ISOLATE)
        for k in range(npb):
            m.pb_mt[(start >> pageblock_order) + k] = MIGRATE_MOVABLE
        return start, migrated
    for k in range(npb):
        move_freepages_block(m, z, start + k * pageblock_nr_pages, MIGRATE_ISOLATE, MIGRATE_MOVABLE)
    return -1, migrated


@njit_inline
def sb_try_alloc_contig_order(m, z, order, cpu):
    """sb_try_alloc_contig() for a THP/mTHP-sized movable request [S v2 17/40]:
    ranges of clean SPBs only (movable content, no taint to spread).  The
    candidates are the zone's clean SPBs with the most free pages, at most
    ``contig_cap`` of them ([U] -> [SIM] 4; the series' cap is smaller than
    spb_evacuate_for_order's); in each, the range around its largest free
    buddy.  Returns the pfn of a free block of ``order`` taken off the free
    lists (the caller preps it), or -1."""
    spb = m.spb
    nr = 1 << order
    if nr > SUPERPAGEBLOCK_NR_PAGES:
        return -1
    cap = spb.cfg[SPB_CFG_CONTIG_CAP]
    last_free = 1 << 62
    last_i = -1
    for _c in range(cap):
        # the next candidate: most free pages after (last_free, last_i)
        best = -1
        best_free = -1
        for full in range(NR_SB_FULLNESS):
            i = spb.list_head[z, SB_CLEAN * NR_SB_FULLNESS + full]
            while i >= 0:
                f = spb.nr_free_pages[i]
                if (f < last_free or (f == last_free and i > last_i)) and \
                        (f > best_free or (f == best_free and i < best)):
                    best = i
                    best_free = f
                i = spb.list_next[i]
        if best < 0 or best_free <= 0:
            break
        last_free = best_free
        last_i = best
        start = _range_candidate(m, best, nr)
        if start < 0:
            continue
        pfn, moved = _empty_range(m, z, start, order, cpu)
        spb.stat[z, ST_THP_CONTIG_MIGRATED] += moved
        if pfn >= 0:
            spb.stat[z, ST_THP_CONTIG_SUCCESS] += 1
            return pfn
    spb.stat[z, ST_THP_CONTIG_FAIL] += 1
    return -1
