"""Compiled core of the decision-level agreement (spbsim.trace.agreement).

:func:`agreement_ops` applies a placement-replay op table event by event and,
just before each buddy-level allocation (``mm_page_alloc_zone_locked``, or an
``mm_page_alloc_extfrag`` steal without one), records the real decision and
peeks (spbsim.trace.peek) at the simulated allocator's.  The entries of one
CPU wait until the ``mm_page_alloc`` that ends their group gives the request's
gfp; then one row per event is written (columns ``R_*``).
"""
import numpy as np

from spbsim.mm.const import (ALLOC_NOFRAGMENT, MAX_PAGE_ORDER, MIGRATE_HIGHATOMIC,
                             MIGRATE_MOVABLE, PG_buddy, ZONE_NORMAL, pageblock_order)
from spbsim.mm.gfp import (__GFP_DIRECT_RECLAIM, __GFP_DMA, __GFP_DMA32, __GFP_HIGH,
                           __GFP_NOMEMALLOC)
from spbsim.mm.jit import njit, njit_inline
from spbsim.trace import placement as pl
from spbsim.trace.peek import (D_KIND, PK_CLAIM, PK_CLAIM_WHOLE, PK_HIGHATOMIC, PK_NONE,
                               PK_SMALLEST, PK_STEAL, free_buddy_containing, rmqueue_buddy,
                               rmqueue_smallest)

__all__ = ["agreement_ops", "flush_pending", "new_state", "ROW_COLUMNS", "SKIPS", "PATHS",
           "STATS"]

#: columns of a result row
ROW_COLUMNS = ("line", "cpu", "zone", "order", "migratetype", "event", "real_kind", "real_list",
               "real_pfn", "real_order", "real_fallback_order", "gfp", "request_mt", "group",
               "skip", "path", "peek_kind", "peek_list", "peek_pfn", "peek_order",
               "peek_fallback_order", "block_mt")
(R_LINE, R_CPU, R_ZONE, R_ORDER, R_MT, R_EVENT, R_REAL_KIND, R_REAL_LIST, R_REAL_PFN,
 R_REAL_ORDER, R_REAL_FB_ORDER, R_GFP, R_REQ_MT, R_GROUP, R_SKIP, R_PATH, R_PEEK_KIND,
 R_PEEK_LIST, R_PEEK_PFN, R_PEEK_ORDER, R_PEEK_FB_ORDER, R_BLOCK_MT) = range(22)
NROW = 22
#: event column: the line the row is about
EVENT_ZONE_LOCKED, EVENT_EXTFRAG = 0, 1

#: skip reasons (0 = counted): the state around the real pfn is not the kernel's
#: phantom: the state's list of the real type held a smaller buddy than the one
#: the kernel took, which __rmqueue_smallest() would have taken first: that
#: buddy was not free in the kernel (an untraced removal); with ``heal`` it is
#: taken off the state's free lists there and then
SKIPS = ("counted", "start_window", "bad_range", "not_free", "inner", "buddy_order",
         "list_type", "request_unknown", "phantom")
(SK_NONE, SK_WINDOW, SK_RANGE, SK_NOT_FREE, SK_INNER, SK_BUDDY_ORDER, SK_LIST_TYPE,
 SK_REQUEST, SK_PHANTOM) = range(9)

#: which alloc_flags the peek assumed
PATHS = ("fast_nofragment", "fast", "slow_highatomic")
PATH_NOFRAG, PATH_PLAIN, PATH_SLOW = range(3)

#: decision variants kept while an entry waits for its gfp
V_NF, V_PLAIN, V_R0, V_HA = 0, 1, 2, 5        # V_R0 + request type 0..2
NVAR = 6
PW = NROW + 5 * NVAR

STATS = ("rows", "flushed_unmatched", "pending_overflow", "rows_overflow",
         "claim_without_entry", "phantom_buddies", "phantom_pages")
_ST_ROWS, _ST_FLUSH, _ST_POVER, _ST_ROVER, _ST_CLAIM_NOENT, _ST_PH_B, _ST_PH_P = range(7)

PENDING = 4096        # entries one CPU may have waiting for their mm_page_alloc


def new_state(nr_cpus, nr_pfns, lru=None, pending=PENDING):
    """(pend, npend, gkey, lru, scratch, stats) for :func:`agreement_ops`.  ``lru``:
    uint8 per pfn, allocated pages that count as movable (default none)."""
    ncpu = max(int(nr_cpus), 1) + 1          # the last slot takes out-of-range cpus
    pend = np.zeros((ncpu, pending, PW), np.int64)
    npend = np.zeros(ncpu, np.int64)
    gkey = np.full((ncpu, 2), -1, np.int64)
    if lru is None:
        lru = np.zeros(nr_pfns, np.uint8)
    scratch = np.zeros(2 << pageblock_order, np.uint8)
    return pend, npend, gkey, np.ascontiguousarray(lru, np.uint8), scratch, \
        np.zeros(len(STATS), np.int64)


@njit_inline
def _put(e, base, d):
    e[base] = d[0]
    e[base + 1] = d[1]
    e[base + 2] = d[2]
    e[base + 3] = d[3]
    e[base + 4] = d[4]


@njit_inline
def _var(v):
    return NROW + 5 * v


@njit
def _finish(e, gfp, group, rows, stats):
    """Write one row from a waiting entry, choosing the decision variant the
    request's gfp implies (gfp < 0: unknown)."""
    k = stats[_ST_ROWS]
    if k >= rows.shape[0]:
        stats[_ST_ROVER] += 1
        return
    stats[_ST_ROWS] = k + 1
    r = rows[k]
    for j in range(NROW):
        r[j] = e[j]
    r[R_GFP] = gfp
    r[R_GROUP] = group
    req = e[R_MT]
    if gfp >= 0:
        req = (gfp >> 3) & 3           # gfp_migratetype()
    elif req >= MIGRATE_HIGHATOMIC:
        req = -1
    r[R_REQ_MT] = req
    if r[R_SKIP] == SK_NONE and e[R_BLOCK_MT] != e[R_REAL_LIST]:
        r[R_SKIP] = SK_LIST_TYPE
    if r[R_SKIP] == SK_WINDOW or r[R_SKIP] == SK_RANGE:
        return
    v = V_PLAIN
    path = PATH_PLAIN
    if e[R_REAL_KIND] == PK_HIGHATOMIC:
        # only the slow path's ALLOC_HIGHATOMIC, or ALLOC_NON_BLOCK / ALLOC_OOM as
        # the last resort, reaches the HIGHATOMIC list
        path = PATH_SLOW
        if req < 0 or req >= MIGRATE_HIGHATOMIC:
            if r[R_SKIP] == SK_NONE:
                r[R_SKIP] = SK_REQUEST
            return
        ha_first = gfp >= 0 and e[R_ORDER] > 0 and (gfp & __GFP_HIGH) != 0 \
            and (gfp & __GFP_DIRECT_RECLAIM) == 0 and (gfp & __GFP_NOMEMALLOC) == 0
        v = V_R0 + req
        if (ha_first and e[_var(V_HA)] != PK_NONE) or e[_var(v)] == PK_NONE:
            v = V_HA
    else:
        # alloc_flags_nofragment(): the fast path of a request whose preferred
        # zone is Normal; get_page_from_freelist() drops it if nothing fits
        pref_normal = (gfp & (__GFP_DMA | __GFP_DMA32)) == 0 if gfp >= 0 \
            else e[R_ZONE] == ZONE_NORMAL
        if pref_normal and e[_var(V_NF)] != PK_NONE:
            v = V_NF
            path = PATH_NOFRAG
    r[R_PATH] = path
    b = _var(v)
    r[R_PEEK_KIND] = e[b]
    r[R_PEEK_LIST] = e[b + 1]
    r[R_PEEK_PFN] = e[b + 2]
    r[R_PEEK_ORDER] = e[b + 3]
    r[R_PEEK_FB_ORDER] = e[b + 4]


@njit
def flush_pending(pend, npend, gkey, c, gfp, group, rows, stats):
    """Write the rows of every entry waiting on cpu slot ``c``."""
    for j in range(npend[c]):
        _finish(pend[c, j], gfp, group, rows, stats)
    npend[c] = 0
    gkey[c, 0] = -1
    gkey[c, 1] = -1


@njit
def _new_entry(m, pend, npend, gkey, c, line, z, pfn, order, mt, event, rows, stats):
    """A waiting entry for a buddy-level allocation on cpu slot ``c`` (the group of
    entries waiting there is flushed unmatched first if its (order, type) differ);
    returns its index in pend[c]."""
    if npend[c] > 0 and (gkey[c, 0] != order or gkey[c, 1] != mt):
        stats[_ST_FLUSH] += npend[c]
        flush_pending(pend, npend, gkey, c, -1, 0, rows, stats)
    if npend[c] >= pend.shape[1]:
        stats[_ST_POVER] += npend[c]
        flush_pending(pend, npend, gkey, c, -1, 0, rows, stats)
    gkey[c, 0] = order
    gkey[c, 1] = mt
    k = npend[c]
    npend[c] += 1
    e = pend[c, k]
    for j in range(PW):
        e[j] = -1
    e[R_LINE] = line
    e[R_CPU] = c
    e[R_ZONE] = z
    e[R_ORDER] = order
    e[R_MT] = mt
    e[R_EVENT] = event
    e[R_REAL_PFN] = pfn
    e[R_SKIP] = SK_NONE
    for v in range(NVAR):
        e[_var(v)] = PK_NONE
    return k


@njit
def _real_state(m, e, pfn, order):
    """The free buddy holding the real pfn before the event: its order, the
    block's type; SK_NOT_FREE / SK_INNER when the state is not the kernel's."""
    h, k = free_buddy_containing(m, pfn, order)
    e[R_BLOCK_MT] = m.pb_mt[pfn >> pageblock_order]
    if h < 0:
        e[R_SKIP] = SK_NOT_FREE
    elif h != pfn:
        e[R_SKIP] = SK_INNER
    else:
        e[R_REAL_ORDER] = k


@njit
def _heal(m, e, z, order, mt, below, scratch_pl, stats):
    """Take the phantom buddies off the state's free lists: those on ``mt``'s
    lists from ``order`` up to below ``below`` (the kernel's
    __rmqueue_smallest() found none there).  Marks the entry SK_PHANTOM."""
    while True:
        d = rmqueue_smallest(m, z, order, mt)
        if d[D_KIND] == PK_NONE or d[3] >= below:
            return
        pl.remove_range(m, z, d[2], d[3], mt, pl.MODE_STRICT, scratch_pl)
        stats[_ST_PH_B] += 1
        stats[_ST_PH_P] += 1 << d[3]
        e[R_SKIP] = SK_PHANTOM


@njit
def _peek_variants(m, e, z, order, mt, rule, lru):
    """The decisions the entry may need: with and without ALLOC_NOFRAGMENT for a
    request of type ``mt``; for a HIGHATOMIC event (mt 3) plain __rmqueue for
    each request type and __rmqueue_smallest(MIGRATE_HIGHATOMIC)."""
    if mt < MIGRATE_HIGHATOMIC:
        d = rmqueue_buddy(m, z, order, mt, 0, rule, lru)
        _put(e, _var(V_PLAIN), d)
        if d[D_KIND] != PK_SMALLEST:
            d = rmqueue_buddy(m, z, order, mt, ALLOC_NOFRAGMENT, rule, lru)
        _put(e, _var(V_NF), d)
    else:
        for r in range(3):
            _put(e, _var(V_R0 + r), rmqueue_buddy(m, z, order, r, 0, rule, lru))
        _put(e, _var(V_HA), rmqueue_smallest(m, z, order, MIGRATE_HIGHATOMIC))


@njit
def agreement_ops(m, ops, lo, hi, mode, res, stats_pl, revealed, last_zl, scratch_pl, log,
                  rule, heal, pend, npend, gkey, lru, scratch, rows, stats, extfrag_first=False):
    """Apply ops[lo:hi] (spbsim.trace.placement.apply_ops, one op at a time) and
    record the real and the peeked decision of every buddy-level allocation
    (rows appended to ``rows``, count in stats[0]).  ``ops`` needs the
    ``C_GFP`` column (spbsim.trace.replay).  ``heal``: take phantom buddies
    (SK_PHANTOM) off the free lists.  ``extfrag_first``: the v6.1 trace order
    (spbsim.trace.placement.apply_ops); the fallback's decision is then
    recorded at the zone_locked line that follows its extfrag."""
    npfn = m.pg_flags.shape[0]
    ncpu = npend.shape[0]
    has_lru = lru.shape[0] >= npfn
    for i in range(lo, hi):
        kind = ops[i, pl.C_KIND]
        pfn = ops[i, pl.C_PFN]
        order = ops[i, pl.C_ORDER]
        mt = ops[i, pl.C_MT]
        c = ops[i, pl.C_CPU]
        if c < 0 or c >= ncpu - 1:
            c = ncpu - 1
        ok_range = order >= 0 and order <= MAX_PAGE_ORDER and pfn >= 0 \
            and pfn + (1 << max(order, 0)) <= npfn
        if kind == pl.K_ZL or kind == pl.K_EXTFRAG:
            lc = ops[i, pl.C_CPU]
            if lc < 0 or lc >= last_zl.shape[0]:
                lc = last_zl.shape[0] - 1
            if extfrag_first and kind == pl.K_EXTFRAG:
                # v6.1: waits (placement) for the zone_locked line of its page
                pl.apply_ops(m, ops, i, i + 1, mode, res, stats_pl, revealed, last_zl,
                             scratch_pl, log, extfrag_first)
                continue
            paired = extfrag_first and pl.deferred_pairs(last_zl, lc, ops[i])
            matched = last_zl[lc, 0] == pfn and last_zl[lc, 1] == order
            fo = ops[i, pl.C_FB_ORDER]
            fmt = ops[i, pl.C_FB_MT]
            xkind = PK_NONE
            if paired:
                # the fallback this zone_locked line is the retry of
                fo = last_zl[lc, pl.LZ_DEFER + pl.C_FB_ORDER]
                fmt = last_zl[lc, pl.LZ_DEFER + pl.C_FB_MT]
                xkind = PK_CLAIM_WHOLE if fo >= pageblock_order else \
                    (PK_CLAIM if last_zl[lc, pl.LZ_DEFER + pl.C_CHOWN] > 0 else PK_STEAL)
            if kind == pl.K_EXTFRAG and matched:
                # the claim's zone_locked line came just before: its entry
                if npend[c] > 0 and pend[c, npend[c] - 1, R_REAL_PFN] == pfn:
                    e = pend[c, npend[c] - 1]
                    e[R_REAL_KIND] = PK_CLAIM_WHOLE if fo >= pageblock_order else PK_CLAIM
                    e[R_REAL_LIST] = fmt
                    e[R_REAL_FB_ORDER] = fo
                else:
                    stats[_ST_CLAIM_NOENT] += 1
            else:
                z = -1
                if ok_range:
                    z = m.pb_zone[pfn >> pageblock_order]
                    if z >= 0 and (pfn < m.zone_start[z] or pfn + (1 << order) > m.zone_end[z]
                                   or (pfn & ((1 << order) - 1)) != 0):
                        z = -1
                ev = EVENT_ZONE_LOCKED if kind == pl.K_ZL else EVENT_EXTFRAG
                j = _new_entry(m, pend, npend, gkey, c, ops[i, pl.C_LINE], z, pfn, order, mt,
                               ev, rows, stats)
                e = pend[c, j]
                if paired:
                    e[R_REAL_KIND] = xkind
                    e[R_REAL_LIST] = fmt
                    e[R_REAL_FB_ORDER] = fo
                elif kind == pl.K_ZL:
                    e[R_REAL_KIND] = PK_HIGHATOMIC if mt == MIGRATE_HIGHATOMIC else PK_SMALLEST
                    e[R_REAL_LIST] = mt
                else:
                    e[R_REAL_KIND] = PK_CLAIM_WHOLE if fo >= pageblock_order else PK_STEAL
                    e[R_REAL_LIST] = fmt
                    e[R_REAL_FB_ORDER] = fo
                if mode == pl.MODE_CONSISTENT:
                    e[R_SKIP] = SK_WINDOW
                elif z < 0 or mt < 0 or mt > MIGRATE_HIGHATOMIC:
                    e[R_SKIP] = SK_RANGE
                else:
                    _real_state(m, e, pfn, order)
                    taken_whole = kind == pl.K_EXTFRAG or xkind == PK_STEAL \
                        or xkind == PK_CLAIM_WHOLE
                    if taken_whole and e[R_SKIP] == SK_NONE and e[R_REAL_ORDER] != fo:
                        e[R_SKIP] = SK_BUDDY_ORDER
                    if heal and e[R_SKIP] == SK_NONE and mt < MIGRATE_HIGHATOMIC:
                        # a fallback: the kernel's own lists were empty
                        below = e[R_REAL_ORDER] if (kind == pl.K_ZL and not paired) \
                            else MAX_PAGE_ORDER + 1
                        _heal(m, e, z, order, mt, below, scratch_pl, stats)
                    _peek_variants(m, e, z, order, mt, rule, lru)
        elif kind == 0:
            # mm_page_alloc: ends the group waiting on its cpu; the page's use
            if pfn > 0 and ok_range:
                if npend[c] > 0 and gkey[c, 0] == order \
                        and (gkey[c, 1] == mt or gkey[c, 1] == MIGRATE_HIGHATOMIC):
                    flush_pending(pend, npend, gkey, c, ops[i, pl.C_GFP], npend[c], rows, stats)
                v = 1 if mt == MIGRATE_MOVABLE else 0
                if has_lru:
                    for p in range(pfn, pfn + (1 << order)):
                        lru[p] = v
        elif kind == pl.K_FREE:
            if ok_range and has_lru:
                for p in range(pfn, pfn + (1 << order)):
                    lru[p] = 0
        elif kind == pl.K_ISOLATE and mode == pl.MODE_STRICT and has_lru:
            end = ops[i, pl.C_END]
            n = end - pfn
            if pfn >= 0 and end <= npfn and 0 < n <= scratch.shape[0]:
                for p in range(pfn, end):
                    h = free_buddy_containing(m, p, 0)[0]
                    scratch[p - pfn] = 1 if h >= 0 else 0
                pl.apply_ops(m, ops, i, i + 1, mode, res, stats_pl, revealed, last_zl,
                             scratch_pl, log, extfrag_first)
                # compaction's migration targets: movable pages from now on
                for p in range(pfn, end):
                    if scratch[p - pfn] != 0 and (m.pg_flags[p] & PG_buddy) == 0 \
                            and free_buddy_containing(m, p, 0)[0] < 0:
                        lru[p] = 1
                continue
        pl.apply_ops(m, ops, i, i + 1, mode, res, stats_pl, revealed, last_zl, scratch_pl, log,
                     extfrag_first)
    return stats[_ST_ROWS]
