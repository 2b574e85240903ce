"""The taint log: which request polluted a pageblock or tainted a
superpageblock, by which fallback or pass, and when; and when it was clean again.

A pageblock turns polluted at its first fragmenting fallback since it was last
wholly free (the allocation ``mm_page_alloc_extfrag`` reports with
``fallback_order < pageblock_order``, and the SPB passes that borrow or relabel
part of a block) and clean when it is whole in the buddy again.  Definitions:
docs/model.md ("Who polluted it").
"""
from .const import pageblock_order
from .jit import njit, njit_inline
from .state import (CUR_CLOCK, CUR_GFP, CUR_ORDER, CUR_OWNER, TL_FREED,
                    TL_PB_CLEAN, TL_PB_POLLUTED)

__all__ = ["taint_log", "pageblock_taint", "pageblock_untaint"]


@njit_inline
def taint_log(tl, tl_n, t_ns, event, index, zone, owner, gfp, order, mt, fb, cause, spb_pass):
    """Append one row (mm.state.TL_NAMES); count it as dropped when the log is full."""
    n = tl_n[0]
    if n >= tl.shape[0]:
        tl_n[1] += 1
        return
    row = tl[n]
    row[0] = t_ns
    row[1] = event
    row[2] = index
    row[3] = zone
    row[4] = owner
    row[5] = gfp
    row[6] = order
    row[7] = mt
    row[8] = fb
    row[9] = cause
    row[10] = spb_pass
    tl_n[0] = n + 1


@njit
def pageblock_taint(m, pfn, mt, fb, cause):
    """A fragmenting fallback put ``mt`` content into pfn's pageblock (labelled
    ``fb`` before): mark and log the block polluted by the current request
    unless it already is."""
    pb = pfn >> pageblock_order
    if m.pb_taint[pb] != 0:
        return
    cur = m.cur
    m.pb_taint[pb] = cur[CUR_OWNER] + 1
    taint_log(m.tl, m.tl_n, cur[CUR_CLOCK], TL_PB_POLLUTED, pb, m.pb_zone[pb], cur[CUR_OWNER],
              cur[CUR_GFP], cur[CUR_ORDER], mt, fb, cause, m.spb.cur_pass[0])


@njit
def pageblock_untaint(m, pb):
    """Pageblock ``pb`` is whole in the buddy again: clean (owner -1 in the log)."""
    m.pb_taint[pb] = 0
    taint_log(m.tl, m.tl_n, m.cur[CUR_CLOCK], TL_PB_CLEAN, pb, m.pb_zone[pb], -1, 0, -1,
              m.pb_mt[pb], -1, TL_FREED, m.spb.cur_pass[0])
