"""gfp-derived SPB decisions and the relax sequence for callers that cannot
reclaim (get_page_from_freelist, S2 ``spb_alloc_atomic_relax``).

Details: docs/spb.md ("Module notes", `spbsim.mm.spb.relax`).
"""
from ..const import (ALLOC_NOFRAG_TAINTED_OK, ALLOC_SPB_ATOMIC, ALLOC_SPB_BEST_EFFORT,
                     ALLOC_SPB_CHEAP, MIGRATE_MOVABLE)
from ..gfp import (__GFP_DIRECT_RECLAIM as _DR, __GFP_NOFAIL as _NOFAIL,
                   __GFP_NOMEMALLOC as _NOMEMALLOC, __GFP_NORETRY as _NORETRY,
                   __GFP_NOWARN as _NOWARN, __GFP_RETRY_MAYFAIL as _MAYFAIL)
from ..jit import njit
from ..tracepoint import EV_SPB_ATOMIC_RELAX, trace_event
from .alloc import spb_tainted_has_evacuable
from .params import (SPB_ATOMIC_RELAX_ADD_TAINTED_OK,
                     SPB_ATOMIC_RELAX_DROP_NOFRAGMENT, SPB_ATOMIC_RELAX_NORETRY_SKIP,
                     SPB_ATOMIC_RELAX_NOWARN_LOWER_ORDER, SPB_CFG_BEST_EFFORT,
                     SPB_CFG_CHEAP_REFUSE, SPB_CFG_RELAX, ST_BEST_EFFORT,
                     ST_RELAX_DROP_NOFRAG, ST_RELAX_NORETRY_SKIP, ST_RELAX_TAINTED_OK)

__all__ = ["spb_gfp_alloc_flags", "spb_atomic_relax_step", "tainted_pool_can_serve"]


@njit
def spb_gfp_alloc_flags(gfp):
    """The SPB per-allocation flags of a gfp mask (module docstring)."""
    f = 0
    if (gfp & _DR) == 0:
        f |= ALLOC_SPB_ATOMIC
        if (gfp & _NOWARN) and (gfp & _NOFAIL) == 0:
            f |= ALLOC_SPB_BEST_EFFORT
    if ((gfp & _NORETRY) and (gfp & _MAYFAIL) == 0) or \
            ((gfp & _DR) == 0 and (gfp & _NOMEMALLOC) == 0 and (gfp & _NOFAIL) == 0):
        f |= ALLOC_SPB_CHEAP
    return f


@njit
def tainted_pool_can_serve(m, z):
    """v2 35/40: could the tainted pool plausibly serve a smaller order on the
    caller's retry?  [S] some tainted SPB has nr_movable > 0 -- the same test as
    the cheap-fallback refusal's (the second, cut-off condition of the
    excerpt is [U] and not modelled)."""
    return spb_tainted_has_evacuable(m, z)


@njit
def spb_atomic_relax_step(m, order, alloc_flags, mt, highest_zoneidx):
    """The next relax step for an atomic caller whose NOFRAGMENT attempt failed
    (S2 spb_alloc_atomic_relax); -1 = give up (return NULL)."""
    spb = m.spb
    z = highest_zoneidx
    while z > 0 and spb.zone_count[z] == 0:
        z -= 1
    if spb.cfg[SPB_CFG_RELAX] == 0:
        step = SPB_ATOMIC_RELAX_DROP_NOFRAGMENT
    elif mt != MIGRATE_MOVABLE and (alloc_flags & ALLOC_NOFRAG_TAINTED_OK) == 0:
        step = SPB_ATOMIC_RELAX_ADD_TAINTED_OK
    elif spb.cfg[SPB_CFG_BEST_EFFORT] != 0 and order > 0 \
            and (alloc_flags & ALLOC_SPB_BEST_EFFORT) and tainted_pool_can_serve(m, z):
        step = SPB_ATOMIC_RELAX_NOWARN_LOWER_ORDER
    elif spb.cfg[SPB_CFG_CHEAP_REFUSE] != 0 and mt != MIGRATE_MOVABLE \
            and (alloc_flags & ALLOC_SPB_CHEAP) and spb_tainted_has_evacuable(m, z):
        step = SPB_ATOMIC_RELAX_NORETRY_SKIP
    else:
        step = SPB_ATOMIC_RELAX_DROP_NOFRAGMENT
    if step == SPB_ATOMIC_RELAX_ADD_TAINTED_OK:
        spb.stat[z, ST_RELAX_TAINTED_OK] += 1
    elif step == SPB_ATOMIC_RELAX_DROP_NOFRAGMENT:
        spb.stat[z, ST_RELAX_DROP_NOFRAG] += 1
    elif step == SPB_ATOMIC_RELAX_NOWARN_LOWER_ORDER:
        spb.stat[z, ST_BEST_EFFORT] += 1
    else:
        spb.stat[z, ST_RELAX_NORETRY_SKIP] += 1
    trace_event(m, EV_SPB_ATOMIC_RELAX, z, order, mt, alloc_flags, step, 0)
    if step == SPB_ATOMIC_RELAX_ADD_TAINTED_OK or step == SPB_ATOMIC_RELAX_DROP_NOFRAGMENT:
        return step
    return -1
