"""Build precise allocator states by hand, for experiments and tests.

Typical use: ``exhaust`` a machine with order-0 movable pages, then ``free``
chosen pages to lay out exactly the free lists a rule needs.
"""
import numpy as np

from . import gfp as G
from .jit import njit
from .lru import lru_add
from .state import CFG, PCP_COUNT, ZS_BOOST, ZS_MANAGED, ZS_WMARK_MIN

__all__ = ["zero_watermarks", "exhaust", "free_pages_range", "lru_add_pages"]


def zero_watermarks(mach):
    """Watermarks, boost and lowmem_reserve to 0: every free page is usable."""
    m = mach.mem
    m.zstat[:, ZS_WMARK_MIN:ZS_WMARK_MIN + 4] = 0
    m.zstat[:, ZS_BOOST] = 0
    m.lowmem_reserve[:] = 0


def exhaust(mach, gfp=G.GFP_HIGHUSER_MOVABLE, order=0, cpu=0, tries=None):
    """Allocate ``order`` blocks until the allocator fails; return their pfns.

    Call ``zero_watermarks`` first to take every page; the pcp lists are
    drained and emptied too.  ``tries``: requests to make (default: one
    per managed block, and 64 more); on a machine with little free memory
    and no reclaim, the free pages and 64 save the failing rest.
    """
    managed = int(mach.mem.zstat[:, ZS_MANAGED].sum())
    n = (managed >> order) + 64 if tries is None else int(tries)
    out = mach.run_ops(np.full(n, order), gfp, cpu=cpu)
    out = out[out >= 0]
    # the pages the cpu lists still hold are taken too (a failed request
    # drains them only after reclaim made progress)
    parked = int(mach.mem.pcp[:, :, PCP_COUNT].sum()) >> order
    if parked:
        # allocating them through the pcp lists would park new refills, and
        # with no buddy page left the watermark check refuses the rest
        cfg = mach.mem.cfg
        was = int(cfg[CFG["pcp_enabled"]])
        cfg[CFG["pcp_enabled"]] = 0
        mach.drain_pcp()
        more = mach.run_ops(np.full(parked + 64, order), gfp, cpu=cpu)
        cfg[CFG["pcp_enabled"]] = was
        out = np.concatenate([out, more[more >= 0]])
    return out


@njit
def _lru_add_all(m, pfns, lru):
    for i in range(pfns.size):
        lru_add(m, pfns[i], lru)


def lru_add_pages(mach, pfns, lru):
    """lru_add() each allocated block of ``pfns`` in turn (the last ends at
    the head), in one compiled call."""
    _lru_add_all(mach.mem, np.ascontiguousarray(pfns, np.int64), np.int64(lru))


def free_pages_range(mach, start, count, order=0, cpu=0):
    """Free ``count`` blocks of ``order`` at start, start + 2^order, ..."""
    pfns = start + (np.arange(count, dtype=np.int64) << order)
    res = mach.run_ops(np.full(count, order), 0, pfns=pfns, cpu=cpu)
    if (res != 0).any():
        bad = int(pfns[np.argmax(res != 0)])
        raise ValueError(f"free_pages_range: pfn {bad:#x} was not allocated with order {order}")
