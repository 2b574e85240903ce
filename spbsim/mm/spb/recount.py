"""Recount an SPB's counters from the machine state (boot init and the debug check).

``pb_mt`` is not needed: at S1 the counters count ``PB_has_*`` bits, not
labels, whatever the header comment says ("Pageblock counts by current
migratetype") [S1 §2.1, §6].
"""
from ..const import (PB_all_free, PB_has_movable, PB_has_reclaimable,
                     PB_has_unmovable, PG_buddy, SUPERPAGEBLOCK_NR_PAGES,
                     pageblock_nr_pages, pageblock_order)
from ._jit import njit

__all__ = ["spb_zone_span", "spb_recount", "spb_count_free_pages", "spb_recount_all"]


@njit
def spb_zone_span(spb, m, i):
    """The SPB's pfn range clipped to its zone: (lo, hi), hi <= lo if none."""
    z = spb.zone[i]
    s = spb.start_pfn[i]
    lo = s if s > m.zone_start[z] else m.zone_start[z]
    e = s + SUPERPAGEBLOCK_NR_PAGES
    hi = e if e < m.zone_end[z] else m.zone_end[z]
    return lo, hi


@njit
def spb_count_free_pages(m, lo, hi):
    """Pages in free buddies (PG_buddy heads) inside [lo, hi)."""
    n = 0
    p = lo
    while p < hi:
        if m.pg_flags[p] & PG_buddy:
            k = 1 << m.pg_order[p]
            n += k
            p += k
        else:
            p += 1
    return n


@njit
def spb_recount(spb, m, i, with_free_pages):
    """(total, nr_free, nr_unmovable, nr_reclaimable, nr_movable, nr_reserved,
    nr_free_pages) of slot i as the machine state says; nr_free_pages is -1
    unless with_free_pages."""
    z = spb.zone[i]
    lo, hi = spb_zone_span(spb, m, i)
    if hi <= lo:
        return 0, 0, 0, 0, 0, 0, 0
    total = (hi - lo + pageblock_nr_pages - 1) >> pageblock_order
    pb0 = lo >> pageblock_order
    pb1 = (hi + pageblock_nr_pages - 1) >> pageblock_order
    present = 0
    nfree = 0
    unmov = 0
    recl = 0
    mov = 0
    for pb in range(pb0, pb1):
        if m.pb_zone[pb] != z:
            continue
        present += 1
        f = m.pb_flags[pb]
        if f & PB_all_free:
            nfree += 1
        if f & PB_has_unmovable:
            unmov += 1
        if f & PB_has_reclaimable:
            recl += 1
        if f & PB_has_movable:
            mov += 1
    rsv = total - present
    if rsv < 0:
        rsv = 0
    fp = -1
    if with_free_pages:
        fp = spb_count_free_pages(m, lo, hi)
    return total, nfree, unmov, recl, mov, rsv, fp


@njit
def spb_recount_all(spb, m):
    """Overwrite every slot's counters with spb_recount()."""
    for i in range(spb.start_pfn.shape[0]):
        total, nfree, unmov, recl, mov, rsv, fp = spb_recount(spb, m, i, True)
        spb.total_pageblocks[i] = total
        spb.nr_free[i] = nfree
        spb.nr_unmovable[i] = unmov
        spb.nr_reclaimable[i] = recl
        spb.nr_movable[i] = mov
        spb.nr_reserved[i] = rsv
        spb.nr_free_pages[i] = fp
