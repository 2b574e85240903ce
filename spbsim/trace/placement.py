"""Compiled core of the placement replay (spbsim.trace.replay).

Each buddy-level event is applied to the free lists at the pfn it names:
``mm_page_alloc_zone_locked`` removals split the containing buddy as
``expand()`` does; ``mm_page_pcpu_drain`` and non-pcp ``mm_page_free`` return
pages through ``__free_one_page``; extfrag steals and compaction's
``mm_compaction_isolate_freepages`` remove pages too; events that reveal a
pageblock's type retype it as ``move_freepages_block`` does.  Events the state
cannot honour are counted per outcome (``OUTCOMES``), never fatal.  One
compiled entry point, :func:`apply_ops`, takes an int64 op table (docs/replay.md).
"""
import numpy as np

from spbsim.mm.buddy import (change_pageblock_range, del_page_from_free_list,
                             free_one_page_merge, move_freepages_block,
                             move_to_free_list, add_to_free_list,
                             pageblock_set_has, split_large_buddy)
from spbsim.mm.const import (MAX_PAGE_ORDER, MIGRATE_HIGHATOMIC, MIGRATE_MOVABLE, MIGRATE_TYPES,
                             NR_PAGE_ORDERS, PG_buddy, PG_head, PG_MT_SHIFT,
                             pageblock_nr_pages, pageblock_order)
from spbsim.mm.jit import njit, njit_inline

__all__ = ["apply_ops", "deferred_pairs", "new_counters", "NCOL", "OP", "SLOTS", "OUTCOMES", "STATS",
           "MODE_STRICT", "MODE_CONSISTENT", "SCRATCH_PAGES"]

# ---------------------------------------------------------------- op table
#: columns of the op table
C_KIND, C_PFN, C_ORDER, C_MT, C_CPU, C_FB_ORDER, C_FB_MT, C_CHOWN, C_END, C_COUNT, C_LINE, \
    C_GFP = range(12)
NCOL = 12              # C_GFP (mm_page_alloc's gfp) is not read here: see trace.agreement

#: op kinds: the trace kind codes (spbsim.trace.ftrace) plus private ones
OP = {
    "mm_page_alloc": 0, "mm_page_free": 1, "mm_page_alloc_zone_locked": 2,
    "mm_page_pcpu_drain": 3, "mm_page_alloc_extfrag": 4, "mm_page_free_batched": 5,
    "init_free": 16,        # initial state: a free block (to the list tail)
    "set_type": 17,         # initial state: pageblock of pfn gets type mt
    # mm_compaction_isolate_freepages: pfn = range start, end = range end,
    # count = nr_taken, fb_order = nr_scanned
    "isolate_freepages": 18,
}
K_FREE, K_ZL, K_DRAIN, K_EXTFRAG, K_INIT_FREE, K_SET_TYPE, K_ISOLATE = 1, 2, 3, 4, 16, 17, 18

MODE_STRICT = 0        # apply everything, count residues
MODE_CONSISTENT = 1    # apply only what agrees with the state (snapshot window)

#: residue slots (first index of the ``res`` counter)
SLOTS = ("zone_locked", "pcpu_drain", "free", "extfrag", "init_free", "isolate_freepages")
S_ZL, S_DRAIN, S_FREE, S_EXTFRAG, S_INIT, S_ISOLATE = range(6)
#: outcomes (second index):
#:   removals (zone_locked, extfrag steals): exact = the range was exactly a
#:   free buddy; expand = it was the head of a larger free buddy (expand()
#:   puts the rest back: normal); inner = it lay inside a larger free buddy
#:   but not at its head (the kernel's buddy started at pfn: our state had
#:   merged more); partial = only part of it was free; none = nothing was free.
#:   frees (pcpu_drain, free, init_free): exact = the range was entirely
#:   allocated; partial = part of it was free already; none = all of it was
#:   free already (a double free from the state's point of view).
#:   isolate_freepages (order index = order of the last buddy taken): exact =
#:   the inferred scan took nr_taken pages; over = more; partial = fewer but
#:   some; none = nothing although nr_taken > 0; fast = a stride-1 scan of the
#:   range matches nr_scanned but finds more free pages than nr_taken: the
#:   range is fast_isolate_around()'s pageblock and the excess is the page
#:   fast_isolate_freepages() took off a free list without a trace event; all
#:   of it is taken.
#:   skipped = not applied (MODE_CONSISTENT: the start snapshot's window).
OUTCOMES = ("exact", "expand", "inner", "partial", "none", "skipped", "over", "fast")
O_EXACT, O_EXPAND, O_INNER, O_PARTIAL, O_NONE, O_SKIPPED, O_OVER, O_FAST = range(8)
#: outcomes that are residues (logged)
O_FIRST_RESIDUE = O_INNER

#: scalar statistics (``stats`` counter)
STATS = (
    "pcp_order_frees_ignored",     # mm_page_free of order 0-3/9: goes to a pcp list
    "out_of_zone",                 # pfn range outside every zone / crossing a zone end
    "bad_order",
    "retype_zone_locked",          # block type changed because an event revealed it
    "retype_pcpu_drain",
    "retype_extfrag",
    "first_reveal",                # blocks whose type an event revealed for the first time
    "first_reveal_wrong",          # ... and the initial type had been different
    "extfrag_whole_block",         # fallback_order >= pageblock_order, no zone_locked line
    "extfrag_claim",               # the zone_locked line of the same cpu precedes it
    "extfrag_steal",               # sub-pageblock steal, no zone_locked line
    "retype_init",
    "log_records",                 # residue log entries written (may exceed its capacity)
    "extfrag_before_zone_locked",  # v6.1 order: the extfrag paired with the line after it
)
ST = {n: i for i, n in enumerate(STATS)}
_ST_IGN = ST["pcp_order_frees_ignored"]
_ST_ZONE = ST["out_of_zone"]
_ST_ORDER = ST["bad_order"]
_ST_RT_ZL = ST["retype_zone_locked"]
_ST_RT_EXT = ST["retype_extfrag"]
_ST_FIRST = ST["first_reveal"]
_ST_FIRST_WRONG = ST["first_reveal_wrong"]
_ST_X_WHOLE = ST["extfrag_whole_block"]
_ST_X_CLAIM = ST["extfrag_claim"]
_ST_X_STEAL = ST["extfrag_steal"]
_ST_RT_INIT = ST["retype_init"]
_ST_LOG = ST["log_records"]
_ST_X_PAIRED = ST["extfrag_before_zone_locked"]
LOG_WIDTH = 5      # line, slot, outcome, pfn, order

#: reveal state per pageblock (``revealed`` array)
REV_NONE, REV_AGREED, REV_CORRECTED, REV_CHANGED = 0, 1, 2, 3

SCRATCH_PAGES = 1 << MAX_PAGE_ORDER
MAX_CPUS = 4096
#: ``last_zl`` columns: the cpu's last zone_locked (pfn, order), then an
#: extfrag op row waiting for its zone_locked line (v6.1 order; kind -1: none),
#: then room for that row while it is applied
LZ_DEFER = 2
LZ_TAKEN = LZ_DEFER + NCOL


def new_counters(nr_pageblocks, log_capacity=1 << 16):
    """Fresh counter arrays: (res, stats, revealed, last_zl, scratch, log)."""
    res = np.zeros((len(SLOTS), len(OUTCOMES), NR_PAGE_ORDERS), np.int64)
    stats = np.zeros(len(STATS), np.int64)
    revealed = np.zeros(nr_pageblocks, np.int8)
    last_zl = np.full((MAX_CPUS, LZ_TAKEN + NCOL), -1, np.int64)
    scratch = np.zeros(SCRATCH_PAGES, np.int8)
    log = np.zeros((max(log_capacity, 1), LOG_WIDTH), np.int64)
    return res, stats, revealed, last_zl, scratch, log


# ---------------------------------------------------------------- helpers

@njit_inline
def _container(m, pfn, order):
    """The block (free buddy or allocated head) of order >= ``order`` that
    contains pfn, as (head, order); (-1, -1) if the range is not inside one."""
    for k in range(order, NR_PAGE_ORDERS):
        h = pfn & ~((1 << k) - 1)
        if (m.pg_flags[h] & (PG_buddy | PG_head)) != 0 and m.pg_order[h] == k:
            return h, k
    return -1, -1


@njit_inline
def _scan_free(m, pfn, n, scratch):
    """Mark in scratch[0:n] which pages of [pfn, pfn+n) lie in free buddies
    (all of which are inside the range); return the number of free pages."""
    free = 0
    p = pfn
    end = pfn + n
    while p < end:
        f = m.pg_flags[p]
        if (f & PG_buddy) != 0:
            sz = 1 << m.pg_order[p]
            for q in range(p - pfn, min(p - pfn + sz, n)):
                scratch[q] = 1
            free += sz
            p += sz
            continue
        scratch[p - pfn] = 0
        p += 1
    return free


@njit_inline
def _set_head(m, pfn, order, mt):
    """Mark [pfn, pfn+2^order) allocated as one block (prep_new_page's head,
    order, type bits and the pageblock's PB_has_* bit; no PG_lru: the replay
    keeps no reclaim lists)."""
    m.pg_flags[pfn] = PG_head | ((mt & 3) << PG_MT_SHIFT)
    m.pg_order[pfn] = order
    pageblock_set_has(m, pfn, order, mt)


@njit_inline
def set_block_type(m, z, pfn, mt):
    """Retype pfn's pageblock to mt, moving its free buddies along (list
    type == block type).  A block inside a free buddy of order >=
    pageblock_order retypes that whole buddy.  Returns True if it changed."""
    pb = pfn >> pageblock_order
    if m.pb_mt[pb] == mt:
        return False
    for k in range(pageblock_order, NR_PAGE_ORDERS):
        h = pfn & ~((1 << k) - 1)
        if (m.pg_flags[h] & PG_buddy) != 0 and m.pg_order[h] == k:
            move_to_free_list(m, h, z, k, m.pg_list_mt[h], mt)
            change_pageblock_range(m, h, k, mt)
            return True
    move_freepages_block(m, z, pb << pageblock_order, m.pb_mt[pb], mt)
    return True


@njit_inline
def remove_range(m, z, pfn, order, mt, mode, scratch):
    """Allocate exactly [pfn, pfn+2^order) out of the free buddy holding it."""
    n = 1 << order
    h, k = _container(m, pfn, order)
    if h >= 0 and (m.pg_flags[h] & PG_buddy) != 0:
        lmt = m.pg_list_mt[h]
        del_page_from_free_list(m, h, z, k, lmt)
        out = O_EXACT
        if k > order:
            out = O_EXPAND if h == pfn else O_INNER
        # expand() generalised: the half without pfn goes back to the list head
        while k > order:
            k -= 1
            half = 1 << k
            if pfn >= h + half:
                add_to_free_list(m, h, z, k, lmt, False)
                h += half
            else:
                add_to_free_list(m, h + half, z, k, lmt, False)
        _set_head(m, pfn, order, mt)
        return out
    if h >= 0:
        # inside an allocated block: nothing is free
        return O_SKIPPED if mode == MODE_CONSISTENT else O_NONE
    free = _scan_free(m, pfn, n, scratch)
    if mode == MODE_CONSISTENT:
        return O_SKIPPED
    p = pfn
    end = pfn + n
    while p < end:
        f = m.pg_flags[p]
        if (f & PG_buddy) != 0:
            o = m.pg_order[p]
            del_page_from_free_list(m, p, z, o, m.pg_list_mt[p])
            m.pg_flags[p] = 0
            p += 1 << o
            continue
        m.pg_flags[p] = 0
        p += 1
    _set_head(m, pfn, order, mt)
    return O_PARTIAL if free > 0 else O_NONE


@njit_inline
def free_range(m, z, pfn, order, mode, to_tail, scratch):
    """Free [pfn, pfn+2^order): every part of it that is not free already."""
    n = 1 << order
    end = pfn + n
    h, k = _container(m, pfn, order)
    out = O_EXACT
    if h >= 0 and (m.pg_flags[h] & PG_buddy) != 0:
        return O_SKIPPED if mode == MODE_CONSISTENT else O_NONE
    if h >= 0:
        # an allocated block holds the range: cut the rest of it into blocks
        f = m.pg_flags[h]
        m.pg_flags[h] = 0
        m.pg_order[h] = -1
        while k > order:
            k -= 1
            half = 1 << k
            if pfn >= h + half:
                m.pg_flags[h] = f
                m.pg_order[h] = k
                h += half
            else:
                m.pg_flags[h + half] = f
                m.pg_order[h + half] = k
        for q in range(n):
            scratch[q] = 0
    else:
        free = _scan_free(m, pfn, n, scratch)
        if free == n:
            return O_SKIPPED if mode == MODE_CONSISTENT else O_NONE
        if free > 0:
            if mode == MODE_CONSISTENT:
                return O_SKIPPED
            out = O_PARTIAL
    # free the maximal aligned runs of non-free pages
    p = pfn
    while p < end:
        if scratch[p - pfn] != 0:
            p += 1
            continue
        o = 0
        while o < order and (p & ((2 << o) - 1)) == 0 and p + (2 << o) <= end:
            ok = True
            for q in range(p - pfn + (1 << o), p - pfn + (2 << o)):
                if scratch[q] != 0:
                    ok = False
                    break
            if not ok:
                break
            o += 1
        for q in range(p, p + (1 << o)):
            m.pg_flags[q] = 0
            m.pg_order[q] = -1
        if o > pageblock_order:
            split_large_buddy(m, p, z, o, to_tail)
        else:
            free_one_page_merge(m, p, z, o, m.pb_mt[p >> pageblock_order], to_tail)
        p += 1 << o
    return out


@njit_inline
def _isolate_scan(m, z, start, end, stride, compound, apply):
    """isolate_freepages_block() over [start, end) with ``stride``: visit
    start, start+stride, ...; an allocated head of order k > 0 is skipped
    whole if ``compound``; a free buddy is taken (if ``apply``: removed, and a
    buddy of order >= pageblock_order - 1 makes its pageblock(s) MOVABLE as
    __isolate_free_page does) and the scan resumes after it.
    Returns (pages taken, pages scanned, order of the last buddy taken)."""
    taken = 0
    scanned = 0
    last = 0
    p = start
    while p < end:
        scanned += 1
        f = m.pg_flags[p]
        if (f & PG_buddy) != 0:
            o = m.pg_order[p]
            if apply:
                del_page_from_free_list(m, p, z, o, m.pg_list_mt[p])
                _set_head(m, p, o, MIGRATE_MOVABLE)
                if o >= pageblock_order - 1:
                    pb = p >> pageblock_order
                    nb = 1
                    if o > pageblock_order:
                        nb = 1 << (o - pageblock_order)
                    for j in range(nb):
                        old = m.pb_mt[pb + j]
                        if old != MIGRATE_MOVABLE and old < MIGRATE_HIGHATOMIC:
                            move_freepages_block(m, z, (pb + j) << pageblock_order, old,
                                                 MIGRATE_MOVABLE)
            taken += 1 << o
            scanned += (1 << o) - 1
            last = o
            p += (1 << o) - 1
        elif compound and (f & PG_head) != 0 and m.pg_order[p] > 0 \
                and p + (1 << m.pg_order[p]) <= end:
            k = m.pg_order[p]
            scanned += (1 << k) - 1
            p += (1 << k) - 1
        p += stride
    return taken, scanned, last


@njit_inline
def isolate_range(m, z, start, end, count, nr_scanned):
    """mm_compaction_isolate_freepages(range=(start ~ end), nr_scanned,
    nr_taken=count): the free scanner's stride (1..COMPACT_CLUSTER_MAX,
    adaptive in the kernel, not traced) is inferred by replaying the scan
    with each stride on the current state and keeping the one that takes
    ``count`` pages (ties: nr_scanned closest, then smallest stride); then
    that scan is applied.  Returns (outcome, order of the last buddy taken):
    exact = the chosen scan took ``count`` pages, split = more, partial =
    fewer but some, none = nothing although count > 0."""
    if count <= 0:
        return O_EXACT, 0
    best_s = 1
    best_c = 1
    best_dt = -1
    best_ds = 0
    fast_c = -1
    for k in range(13):
        if k < 12:
            stride = 1 << (k >> 1)          # 1, 1, 2, 2, ... 32, 32
            compound = (k & 1) == 1
            apply = False
        else:
            stride = best_s
            compound = best_c == 1
            apply = True
            if (best_dt != 0 or best_ds != 0) and fast_c >= 0:
                stride = 1
                compound = fast_c == 1
        taken, scanned, last = _isolate_scan(m, z, start, end, stride, compound, apply)
        if apply:
            if stride == 1 and taken > count and (best_dt != 0 or best_ds != 0) and fast_c >= 0:
                return O_FAST, last
            if taken == count:
                return O_EXACT, last
            if taken > count:
                return O_OVER, last
            if taken > 0:
                return O_PARTIAL, last
            return O_NONE, 0
        dt = abs(taken - count)
        ds = abs(scanned - nr_scanned)
        if stride == 1 and taken > count and ds == 0 and fast_c < 0:
            fast_c = 1 if compound else 0
        if best_dt < 0 or dt < best_dt or (dt == best_dt and ds < best_ds):
            best_dt = dt
            best_ds = ds
            best_s = stride
            best_c = 1 if compound else 0
    return O_NONE, 0


@njit_inline
def _log(log, stats, line, slot, out, pfn, order):
    k = stats[_ST_LOG]
    if k < log.shape[0]:
        log[k, 0] = line
        log[k, 1] = slot
        log[k, 2] = out
        log[k, 3] = pfn
        log[k, 4] = order
    stats[_ST_LOG] = k + 1


# ---------------------------------------------------------------- entry point

@njit
def _apply_one(m, op, cpu, matched, zl_mt, mode, res, stats, revealed, last_zl, scratch, log):
    """Apply one op row on cpu slot ``cpu``.  ``matched``: an extfrag follows
    the zone_locked line of its page (1), does not (0), or as ``last_zl``
    says (-1).  ``zl_mt`` >= 0: a zone_locked line's block keeps that type
    (a v6.1 steal's retry, which prints the requested type)."""
    npfn = m.pg_flags.shape[0]
    kind = op[C_KIND]
    pfn = op[C_PFN]
    order = op[C_ORDER]
    mt = op[C_MT]
    if kind != K_FREE and kind != K_ZL and kind != K_DRAIN and kind != K_EXTFRAG \
            and kind != K_INIT_FREE and kind != K_SET_TYPE and kind != K_ISOLATE:
        last_zl[cpu, 0] = -1
        return
    if kind == K_ISOLATE:
        last_zl[cpu, 0] = -1
        end = op[C_END]
        if pfn < 0 or end > npfn or end <= pfn:
            stats[_ST_ZONE] += 1
            return
        z = m.pb_zone[pfn >> pageblock_order]
        if z < 0 or pfn < m.zone_start[z] or end > m.zone_end[z]:
            stats[_ST_ZONE] += 1
            return
        if mode == MODE_CONSISTENT:
            res[S_ISOLATE, O_SKIPPED, 0] += 1
            return
        out, last_o = isolate_range(m, z, pfn, end, op[C_COUNT], op[C_FB_ORDER])
        res[S_ISOLATE, out, last_o] += 1
        if out != O_EXACT:
            _log(log, stats, op[C_LINE], S_ISOLATE, out, pfn, last_o)
        return
    if kind == K_FREE and (order <= 3 or order == pageblock_order):
        stats[_ST_IGN] += 1          # to a pcp list: back via mm_page_pcpu_drain
        last_zl[cpu, 0] = -1
        return
    if order < 0 or order > MAX_PAGE_ORDER:
        stats[_ST_ORDER] += 1
        return
    n = 1 << order
    if pfn < 0 or pfn + n > npfn or (pfn & (n - 1)) != 0:
        stats[_ST_ZONE] += 1
        return
    z = m.pb_zone[pfn >> pageblock_order]
    if z < 0 or m.pb_zone[(pfn + n - 1) >> pageblock_order] != z \
            or pfn + n > m.zone_end[z] or pfn < m.zone_start[z]:
        stats[_ST_ZONE] += 1
        return

    # what to do: retype blocks first (pre), then remove/free, then retype (post)
    pre_pfn = pfn
    pre_n = 0
    pre_mt = mt
    pre_slot = _ST_RT_ZL          # stats index of the retype counter
    act = 0                       # 1 remove, 2 free
    act_mt = mt
    slot = S_ZL
    to_tail = False
    post_n = 0
    post_mt = mt
    if matched < 0:
        matched = 1 if (last_zl[cpu, 0] == pfn and last_zl[cpu, 1] == order) else 0
    last_zl[cpu, 0] = -1
    if kind == K_ZL:
        pre_n = 1
        if zl_mt >= 0:
            pre_mt = zl_mt
        act = 1
        slot = S_ZL
        last_zl[cpu, 0] = pfn
        last_zl[cpu, 1] = order
    elif kind == K_DRAIN:
        pre_n = 1
        pre_slot = _ST_RT_ZL + 1
        act = 2
        slot = S_DRAIN
    elif kind == K_FREE:
        act = 2
        slot = S_FREE
    elif kind == K_INIT_FREE:
        act = 2
        slot = S_INIT
        to_tail = True
    elif kind == K_SET_TYPE:
        pre_n = 1
        pre_slot = _ST_RT_INIT
    else:   # K_EXTFRAG: order = alloc_order, mt = alloc_migratetype
        fo = op[C_FB_ORDER]
        fmt = op[C_FB_MT]
        chown = op[C_CHOWN]
        slot = S_EXTFRAG
        pre_slot = _ST_RT_EXT
        if fo >= pageblock_order and fo <= MAX_PAGE_ORDER:
            # whole-block steal: the fallback buddy's blocks become mt
            stats[_ST_X_WHOLE] += 1
            pre_pfn = pfn & ~((1 << fo) - 1)
            pre_n = 1 << (fo - pageblock_order)
            if pre_pfn < m.zone_start[z] or pre_pfn + (pre_n << pageblock_order) > m.zone_end[z]:
                pre_pfn = pfn & ~(pageblock_nr_pages - 1)
                pre_n = 1
            if not matched:
                act = 1
        elif matched and chown > 0:
            # claim: __rmqueue_smallest already took the page (its zone_locked line)
            stats[_ST_X_CLAIM] += 1
            pre_n = 1
        elif matched:
            # a v6.1 steal: its zone_locked line took the moved buddy; the
            # block keeps its type
            stats[_ST_X_STEAL] += 1
        else:
            # steal: the page comes off the fallback type's list, block unchanged
            stats[_ST_X_STEAL] += 1
            if fmt >= 0 and fmt < MIGRATE_TYPES:
                pre_n = 1
                pre_mt = fmt
            act = 1
            act_mt = fmt if (fmt >= 0 and fmt < MIGRATE_TYPES) else mt
            if chown > 0:
                post_n = 1

    for ph in range(2):
        nb = pre_n if ph == 0 else post_n
        tmt = pre_mt if ph == 0 else post_mt
        for j in range(nb):
            bp = pre_pfn + j * pageblock_nr_pages if ph == 0 else pfn
            pb = bp >> pageblock_order
            old = m.pb_mt[pb]
            changed = set_block_type(m, z, bp, tmt)
            if changed:
                stats[pre_slot] += 1
            if kind == K_SET_TYPE:
                return
            if revealed[pb] == REV_NONE:
                if kind == K_EXTFRAG:
                    revealed[pb] = REV_CHANGED
                else:
                    stats[_ST_FIRST] += 1
                    if changed:
                        stats[_ST_FIRST_WRONG] += 1
                        revealed[pb] = REV_CORRECTED
                    else:
                        revealed[pb] = REV_AGREED
            elif old != tmt and kind != K_EXTFRAG and revealed[pb] != REV_CHANGED:
                revealed[pb] = REV_CHANGED
        if ph == 0 and act != 0:
            if act == 1:
                out = remove_range(m, z, pfn, order, act_mt, mode, scratch)
            else:
                out = free_range(m, z, pfn, order, mode, to_tail, scratch)
            res[slot, out, order] += 1
            if out >= O_FIRST_RESIDUE:
                _log(log, stats, op[C_LINE], slot, out, pfn, order)


@njit_inline
def _pairs(x, op):
    """True if the deferred extfrag row ``x`` belongs to the zone_locked op
    ``op``: same order and type, a page of the fallback buddy's pageblock (or
    of the buddy, when it spans pageblocks)."""
    if x[C_KIND] != K_EXTFRAG or op[C_KIND] != K_ZL:
        return False
    if op[C_ORDER] != x[C_ORDER] or op[C_MT] != x[C_MT]:
        return False
    fo = x[C_FB_ORDER]
    sh = fo if fo > pageblock_order else pageblock_order
    if sh > MAX_PAGE_ORDER:
        return False
    return (op[C_PFN] >> sh) == (x[C_PFN] >> sh)


@njit
def deferred_pairs(last_zl, cpu, op):
    """The extfrag waiting on ``cpu`` (``apply_ops(extfrag_first=True)``)
    belongs to the zone_locked op ``op``."""
    return _pairs(last_zl[cpu, LZ_DEFER:LZ_DEFER + NCOL], op)


@njit
def apply_ops(m, ops, lo, hi, mode, res, stats, revealed, last_zl, scratch, log,
              extfrag_first=False):
    """Apply ops[lo:hi] (see the module docstring) to the machine state ``m``.

    Every residue outcome (inner and after, see OUTCOMES) is appended to
    ``log`` as (line, slot, outcome, pfn, order) while it has room;
    ``stats[log_records]`` counts them all.  ``extfrag_first``: the trace
    prints ``mm_page_alloc_extfrag`` before the zone_locked line of the page
    the fallback gave (v6.1 ``__rmqueue_fallback`` and ``__rmqueue``'s retry;
    v6.12 LTS and later print it after, or without one for a steal): the
    extfrag waits on its cpu (``last_zl[cpu, LZ_DEFER:]``) for that line."""
    d0 = LZ_DEFER
    for i in range(lo, hi):
        op = ops[i]
        cpu = op[C_CPU]
        if cpu < 0 or cpu >= last_zl.shape[0]:
            cpu = last_zl.shape[0] - 1
        if extfrag_first:
            if last_zl[cpu, d0 + C_KIND] == K_EXTFRAG:
                for j in range(NCOL):
                    last_zl[cpu, LZ_TAKEN + j] = last_zl[cpu, d0 + j]
                x = last_zl[cpu, LZ_TAKEN:LZ_TAKEN + NCOL]
                last_zl[cpu, d0 + C_KIND] = -1
                if _pairs(x, op):
                    stats[_ST_X_PAIRED] += 1
                    steal = x[C_FB_ORDER] < pageblock_order and x[C_CHOWN] <= 0
                    _apply_one(m, op, cpu, 0, x[C_FB_MT] if steal else -1, mode, res, stats,
                               revealed, last_zl, scratch, log)
                    _apply_one(m, x, cpu, 1, -1, mode, res, stats, revealed, last_zl,
                               scratch, log)
                    continue
                # no zone_locked line took its page: the extfrag alone
                _apply_one(m, x, cpu, 0, -1, mode, res, stats, revealed, last_zl, scratch, log)
            if op[C_KIND] == K_EXTFRAG:
                for j in range(NCOL):
                    last_zl[cpu, d0 + j] = op[j]
                last_zl[cpu, 0] = -1
                continue
        _apply_one(m, op, cpu, -1, -1, mode, res, stats, revealed, last_zl, scratch, log)
    return 0
