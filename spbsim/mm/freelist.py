"""get_page_from_freelist() and the rmqueue() it calls (mm/page_alloc.c):
the zonelist walk with its watermark checks, the pcp lists or the buddy
lists of one zone, the highatomic reserve.  The fast path inlines it; the
slow path, the SPB worker and compaction's callers use the called copy."""
from .buddy import pcp_allowed_order, rmqueue_smallest
from .const import (ALLOC_HIGHATOMIC, ALLOC_KSWAPD, ALLOC_NO_WATERMARKS, ALLOC_NOFRAGMENT,
                    ALLOC_NON_BLOCK, ALLOC_NOFRAG_TAINTED_OK, ALLOC_OOM, ALLOC_SPB_ATOMIC,
                    ALLOC_WMARK_MASK, MIGRATE_HIGHATOMIC, RMQUEUE_NORMAL, ZONE_BELOW_HIGH,
                    ZONE_BOOSTED_WATERMARK)
from .fallback import reserve_highatomic_pageblock, rmqueue
from .jit import njit, njit_inline
from .pcp import rmqueue_pcplist
from .spb.alloc import spb_rmqueue_highatomic
from .spb.params import SPB_ATOMIC_RELAX_ADD_TAINTED_OK, SPB_ATOMIC_RELAX_DROP_NOFRAGMENT
from .spb.relax import spb_atomic_relax_step
from .state import CFG, SIMSTAT, ZS_FLAGS
from .watermark import populated_zone, wakeup_kswapd, wmark_pages, zone_watermark_fast

__all__ = ["rmqueue_buddy", "rmqueue_zone", "get_page_from_freelist",
           "get_page_from_freelist_call"]

_CFG_SPB = CFG["spb"]
_CFG_PCP = CFG["pcp_enabled"]
_CFG_DEFRAG = CFG["defrag_mode"]
_CFG_KEEPNF = CFG["keep_nofragment"]
_SIM_NOFRAG_RETRY = SIMSTAT["sim_nofragment_retry"]


@njit
def rmqueue_buddy(m, z, order, alloc_flags, mt):
    """rmqueue_buddy(): HIGHATOMIC first for ALLOC_HIGHATOMIC, then __rmqueue, then
    HIGHATOMIC as a last resort for OOM/NON_BLOCK requests."""
    page = -1
    if alloc_flags & ALLOC_HIGHATOMIC:
        page = _rmqueue_highatomic(m, z, order)
    if page < 0:
        page, _mode = rmqueue(m, z, order, mt, alloc_flags, RMQUEUE_NORMAL)
        if page < 0 and (alloc_flags & (ALLOC_OOM | ALLOC_NON_BLOCK)):
            page = _rmqueue_highatomic(m, z, order)
    return page


@njit
def _rmqueue_highatomic(m, z, order):
    """__rmqueue_smallest(zone, order, MIGRATE_HIGHATOMIC), per-SPB lists aware."""
    if m.cfg[_CFG_SPB] != 0:
        return spb_rmqueue_highatomic(m, z, order)
    return rmqueue_smallest(m, z, order, MIGRATE_HIGHATOMIC)


@njit_inline
def rmqueue_zone(m, z, order, alloc_flags, mt, cpu):
    """rmqueue(): pcp for pcp orders, else (or on pcp failure) the buddy lists."""
    page = -1
    if m.cfg[_CFG_PCP] != 0 and pcp_allowed_order(m, order):
        page = rmqueue_pcplist(m, z, cpu, order, mt, alloc_flags)
    if page < 0:
        page = rmqueue_buddy(m, z, order, alloc_flags, mt)
    if (alloc_flags & ALLOC_KSWAPD) and (m.zstat[z, ZS_FLAGS] & ZONE_BOOSTED_WATERMARK):
        m.zstat[z, ZS_FLAGS] &= ~ZONE_BOOSTED_WATERMARK
        wakeup_kswapd(m, z, 0, 0, z)
    return page


@njit_inline
def get_page_from_freelist(m, order, alloc_flags, highest_zoneidx, mt, cpu):
    """get_page_from_freelist(): walk the zonelist from the preferred zone down;
    if NOFRAGMENT found nothing (and not defrag_mode) rescan without it."""
    while True:
        no_fallback = alloc_flags & ALLOC_NOFRAGMENT
        for z in range(highest_zoneidx, -1, -1):
            if not populated_zone(m, z):
                continue
            ok = False
            if (m.zstat[z, ZS_FLAGS] & ZONE_BELOW_HIGH) == 0:
                if zone_watermark_fast(m, z, order, wmark_pages(m, z, 2), highest_zoneidx, alloc_flags):
                    ok = True
                else:
                    m.zstat[z, ZS_FLAGS] |= ZONE_BELOW_HIGH
            if not ok:
                mark = wmark_pages(m, z, alloc_flags & ALLOC_WMARK_MASK)
                if zone_watermark_fast(m, z, order, mark, highest_zoneidx, alloc_flags):
                    ok = True
                elif alloc_flags & ALLOC_NO_WATERMARKS:
                    ok = True
            if not ok:
                continue
            page = rmqueue_zone(m, z, order, alloc_flags, mt, cpu)
            if page >= 0:
                if alloc_flags & ALLOC_HIGHATOMIC:
                    reserve_highatomic_pageblock(m, z, page, order)
                return page
        if no_fallback and m.cfg[_CFG_KEEPNF] != 0 and (alloc_flags & ALLOC_SPB_ATOMIC):
            # the SPB series' relax sequence for callers that cannot reclaim (S2)
            step = spb_atomic_relax_step(m, order, alloc_flags, mt, highest_zoneidx)
            if step == SPB_ATOMIC_RELAX_ADD_TAINTED_OK:
                alloc_flags |= ALLOC_NOFRAG_TAINTED_OK
                continue
            if step == SPB_ATOMIC_RELAX_DROP_NOFRAGMENT:
                alloc_flags &= ~ALLOC_NOFRAGMENT
                m.sim[_SIM_NOFRAG_RETRY] += 1
                continue
            return -1
        if no_fallback and m.cfg[_CFG_DEFRAG] == 0 and m.cfg[_CFG_KEEPNF] == 0:
            alloc_flags &= ~ALLOC_NOFRAGMENT
            m.sim[_SIM_NOFRAG_RETRY] += 1
            continue
        return -1


@njit
def get_page_from_freelist_call(m, order, alloc_flags, highest_zoneidx, mt, cpu):
    """get_page_from_freelist() as a call, for the slow path (keeps one inlined
    copy on the fast path only)."""
    return get_page_from_freelist(m, order, alloc_flags, highest_zoneidx, mt, cpu)
