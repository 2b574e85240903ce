"""Recording of kmem tracepoints into the machine's event log.

Mirrors the ``trace_mm_page_*`` calls of mm/page_alloc.c; rendering to
ftrace text is done outside compiled code (spbsim.trace.tracefmt).
"""
from .const import pageblock_order
from .jit import njit, njit_inline
from .state import CFG, CUR_CLOCK, CUR_CPU, EV, TL_CLAIM, TL_STEAL
from .taint import pageblock_taint

_CFG_TRACE = CFG["trace"]
EV_ALLOC = EV["mm_page_alloc"]
EV_FREE = EV["mm_page_free"]
EV_ZONE_LOCKED = EV["mm_page_alloc_zone_locked"]
EV_PCPU_DRAIN = EV["mm_page_pcpu_drain"]
EV_EXTFRAG = EV["mm_page_alloc_extfrag"]
# SPB series (S2): columns pfn, order, a, b, c, d as noted at each call
EV_SPB_ALLOC_WALK = EV["spb_alloc_walk"]          # zone, order, mt, alloc_flags, outcome, n_spbs_visited
EV_SPB_CLAIM_REFUSED = EV["spb_claim_block_refused"]  # pfn, start_type, block_type, reason
EV_SPB_FALL_THROUGH = EV["spb_alloc_fall_through"]    # zone, order, mt, n_tainted, n_with_buddy, saw bits
EV_SPB_ATOMIC_RELAX = EV["spb_alloc_atomic_relax"]    # zone, order, mt, gfp/flags, step
EV_SPB_EVAC_DONE = EV["spb_evacuate_for_order_done"]  # zone, order, mt, p1, p2, did_evac
EV_SPB_PB_TAINT = EV["spb_pb_taint"]                  # pfn, mt, action, first_or_last
EV_KSWAPD_WAKE = EV["mm_vmscan_kswapd_wake"]           # order
EV_KSWAPD_SLEEP = EV["mm_vmscan_kswapd_sleep"]
EV_KCOMPACTD_WAKE = EV["mm_compaction_kcompactd_wake"]  # order, highest_zoneidx
EV_COMPACTION_BEGIN = EV["mm_compaction_begin"]        # zone_start, sync, migrate, free, end, flags
EV_COMPACTION_END = EV["mm_compaction_end"]            # ... status | flags << 8


@njit_inline
def trace_event(m, kind, pfn, order, a, b, c, d):
    """Append one record if tracing is on; count drops when the log is full."""
    if m.cfg[_CFG_TRACE] == 0:
        return
    n = m.ev_n[0]
    if n >= m.ev.shape[0]:
        m.ev_n[1] += 1
        return
    row = m.ev[n]
    row[0] = kind
    row[1] = m.cur[CUR_CLOCK]
    row[2] = m.cur[CUR_CPU]
    row[3] = pfn
    row[4] = order
    row[5] = a
    row[6] = b
    row[7] = c
    row[8] = d
    m.ev_n[0] = n + 1


@njit
def trace_mm_page_alloc_extfrag(m, pfn, block_pfn, order, current_order, start_mt, fb):
    """trace_mm_page_alloc_extfrag() at a claim or steal of __rmqueue_claim /
    __rmqueue_steal (stock and SPB forms): ``change_ownership`` is whether the
    page's block now has the request's type; a fragmenting fallback (below
    pageblock order) also pollutes ``block_pfn``'s block in the taint log,
    as a claim if the block took the request's type, else a steal."""
    own = 1 if m.pb_mt[pfn >> pageblock_order] == start_mt else 0
    trace_event(m, EV_EXTFRAG, pfn, order, current_order, start_mt, fb, own)
    if current_order < pageblock_order:
        pageblock_taint(m, block_pfn, start_mt, fb,
                        TL_CLAIM if m.pb_mt[block_pfn >> pageblock_order] == start_mt else TL_STEAL)
