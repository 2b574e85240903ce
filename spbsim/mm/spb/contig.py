"""sb_try_alloc_contig() [S v1 18 / v2 17/40]: a 1 GB range for hugetlb's
gigantic pages chosen from the SPB metadata instead of a scan of all memory.

Plain Python around the compiled alloc_contig_range(); called by
Machine.alloc_contig_1g() when the ``contig`` switch is on."""
from ..const import MAX_NR_ZONES, SUPERPAGEBLOCK_NR_PAGES, pageblock_order
from ..contig import alloc_contig_range, contig_range_movable
from ..gfp import GFP_HIGHUSER_MOVABLE
from ..state import CUR_CLOCK, ZS_MANAGED
from .lists import spb_set_contig_allocated_call
from .params import NR_SB_FULLNESS, SB_CLEAN, SPB_CFG_CLEAN_COMPACT, SPB_LIST_EMPTY, SPB_STAT

__all__ = ["sb_try_alloc_contig"]

_WHOLE = SUPERPAGEBLOCK_NR_PAGES >> pageblock_order


def _candidates(s, z):
    """The SPBs of zone z to try, in order: the empty ones (nothing to
    migrate), then, with ``clean_compact`` ([SIM] within-SPB compaction of a
    clean SPB, v1 17), the clean ones with the fewest movable pageblocks
    first.  Only SPBs the zone spans whole."""
    whole = [i for i in range(s.start_pfn.size) if s.zone[i] == z and s.total_pageblocks[i] == _WHOLE]
    empty = [i for i in whole if s.list_id[i] == SPB_LIST_EMPTY]
    clean = []
    if s.cfg[SPB_CFG_CLEAN_COMPACT]:
        clean = sorted((i for i in whole if 0 <= s.list_id[i] < NR_SB_FULLNESS
                        and s.list_id[i] // NR_SB_FULLNESS == SB_CLEAN),
                       key=lambda i: (int(s.nr_movable[i]), i))
    return empty + clean


def sb_try_alloc_contig(m, owner, cpu):
    """Zones from the highest; in each, the candidates whose range holds only
    free or movable pages, whose movable pages then migrate into other clean
    SPBs (fullest first, by the normal steering).  The SPB taken is marked
    contig_allocated and moves to spb_isolated.  Returns (pfn, pages
    migrated) or None."""
    s = m.spb
    now = int(m.cur[CUR_CLOCK])
    for z in reversed(range(MAX_NR_ZONES)):
        if m.zstat[z, ZS_MANAGED] <= 0:
            continue
        for i in _candidates(s, z):
            start = int(s.start_pfn[i])
            if not contig_range_movable(m, start, SUPERPAGEBLOCK_NR_PAGES):
                continue
            moved = int(alloc_contig_range(m, start, SUPERPAGEBLOCK_NR_PAGES, int(owner), int(cpu),
                                           GFP_HIGHUSER_MOVABLE))
            if moved >= 0:
                spb_set_contig_allocated_call(s, i, True, now)
                s.stat[z, SPB_STAT["spb_contig_success"]] += 1
                s.stat[z, SPB_STAT["spb_contig_migrated"]] += moved
                return start, moved
        s.stat[z, SPB_STAT["spb_contig_fail"]] += 1
    return None
