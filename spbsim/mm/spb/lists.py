"""SPB categories, fullness buckets, zone lists and counter upkeep (numba).

Details: docs/spb.md ("Module notes", `spbsim.mm.spb.lists`).
"""
from ..pbits import migratetype_to_has_bit
from ..list import list_add_tail, list_del
from ..const import (MIGRATE_MOVABLE, MIGRATE_RECLAIMABLE, MIGRATE_UNMOVABLE,
                     PB_all_free, PB_has_reclaimable,
                     PB_has_unmovable, PG_buddy, SUPERPAGEBLOCK_ORDER,
                     pageblock_nr_pages, pageblock_order)
from ..state import (CUR_CLOCK, CUR_GFP, CUR_ORDER, CUR_OWNER, TL_SPB_TAINTED,
                     TL_SPB_UNTAINTED)
from ..taint import taint_log
from ..tracepoint import EV_SPB_PB_TAINT, trace_event
from ._jit import njit, njit_inline
from .params import (PEND_DEFRAG, NR_SB_FULLNESS, SB_ALMOST_EMPTY, SB_CLEAN,
                     SB_FULL, SB_FULL_25, SB_FULL_25_USED, SB_FULL_50,
                     SB_FULL_50_USED, SB_FULL_75, SB_FULL_75_USED, SB_TAINTED,
                     SPB_CFG_DEFRAG, SPB_CFG_RESERVE, SPB_CFG_UNTAINT,
                     SPB_CFG_UPDATE, SPB_DEFRAG_IDLE, SPB_DEFRAG_NOOP_COOLDOWN_NS,
                     SPB_DEFRAG_OFF, SPB_CFG_PROGRESS_COOLDOWN_MS,
                     SPB_CFG_PROGRESS_MIN_FREE, SPB_DEFRAG_QUEUED,
                     SPB_DEFRAG_RUNNING, SPB_CFG_STOP_EXTRA_PB,
                     SPB_DEFRAG_V2_15, SPB_DEFRAG_V2_START_FREE_PB,
                     SPB_DEFRAG_V2_START_NR_FREE, SPB_DEFRAG_V2_STOP_FREE_PB,
                     SPB_DEFRAG_V2_STOP_NR_FREE, SPB_LIST_EMPTY,
                     SPB_LIST_ISOLATED, SPB_LIST_NONE, SPB_NEVER_NS,
                     SPB_RESERVE_DYNAMIC, SPB_TAINTED_RESERVE,
                     SPB_TAINTED_RESERVE_MIN, SPB_TAINTED_RESERVE_SHIFT,
                     SPB_UNTAINT_WHEN_EMPTY, SPB_UPDATE_S1, ST_DEFRAG_KICKS,
                     ST_DEFRAG_NO_PROGRESS, ST_DEFRAG_RUNS, ST_LIST_MOVES,
                     ST_REQUEUES, ST_TAINT, ST_UNDERFLOW, ST_UNTAINT,
                     ST_UPDATE_CALLS,
                     SPB_CFG_MOVABLE_RESERVE)

__all__ = [
    "pfn_to_superpageblock", "page_superpageblock",
    "spb_get_category", "sb_get_fullness", "spb_is_empty", "spb_untaint_allowed",
    "spb_list_is_tainted", "spb_compute_list",
    "spb_list_del", "spb_list_add_tail", "spb_update_list", "spb_rebuild_lists",
    "spb_adjust_has_counter", "__spb_set_has_type", "__spb_clear_has_type",
    "spb_set_has_type", "spb_clear_has_type",
    "spb_pb_now_used_counter", "spb_pb_now_free_counter",
    "superpageblock_pb_now_used", "superpageblock_pb_now_free",
    "superpageblock_range_now_used", "spb_pageblock_set_has",
    "spb_mark_pageblock_free", "superpageblock_set_has_movable",
    "spb_pageblock_has_free_movable_fragments", "superpageblock_clear_has_movable",
    "spb_account_free_pages", "spb_set_contig_allocated",
    "spb_movable_skips", "spb_tainted_reserve", "spb_below_shrink_high_water", "spb_defrag_start_cond",
    "spb_defrag_should_stop", "spb_needs_defrag", "spb_maybe_start_defrag",
    "spb_defrag_begin", "spb_defrag_end",
    "spb_pageblock_set_has_call", "spb_mark_pageblock_free_call",
    "superpageblock_range_now_used_call",
]


# ================================================================ lookup

@njit_inline
def pfn_to_superpageblock(spb, z, pfn):
    """pfn_to_superpageblock() [S1 §2.2]: zone z's SPB slot holding pfn, or -1."""
    if z < 0:
        return -1
    idx = (pfn >> SUPERPAGEBLOCK_ORDER) - spb.zone_base[z]
    if idx < 0 or idx >= spb.zone_count[z]:
        return -1
    return spb.zone_first[z] + idx


@njit_inline
def page_superpageblock(spb, m, pfn):
    """The SPB slot of pfn's zone (pb_zone) holding pfn, or -1 (hole, no SPB)."""
    return pfn_to_superpageblock(spb, m.pb_zone[pfn >> pageblock_order], pfn)


# ================================================================ classification

@njit_inline
def spb_get_category(spb, i):
    """spb_get_category() [S1 §1.3]: TAINTED if any unmovable, reclaimable or reserved pageblock."""
    if spb.nr_unmovable[i] != 0 or spb.nr_reclaimable[i] != 0 or spb.nr_reserved[i] != 0:
        return SB_TAINTED
    return SB_CLEAN


@njit_inline
def sb_get_fullness(spb, i, cat):
    """sb_get_fullness() [S1 §1.4]: bucket by used pageblocks, >= 384/256/128 of a fixed 512."""
    total = spb.total_pageblocks[i]
    if total == 0:
        return SB_FULL
    if cat == SB_TAINTED:
        used = spb.nr_unmovable[i] + spb.nr_reclaimable[i]
    else:
        used = total - spb.nr_free[i]
    if used >= total:
        return SB_FULL
    if used >= SB_FULL_75_USED:
        return SB_FULL_75
    if used >= SB_FULL_50_USED:
        return SB_FULL_50
    if used >= SB_FULL_25_USED:
        return SB_FULL_25
    return SB_ALMOST_EMPTY


@njit_inline
def spb_is_empty(spb, i):
    """The spb_empty test of spb_update_list() [S1 §1.5]: nr_free == total_pageblocks."""
    return spb.nr_free[i] == spb.total_pageblocks[i]


@njit_inline
def spb_untaint_allowed(spb, i):
    """Un-taint rule [S1 §6.5; spec App. B SIM switch]: may a tainted-filed SPB be filed clean now?"""
    if spb.cfg[SPB_CFG_UNTAINT] == SPB_UNTAINT_WHEN_EMPTY:
        return spb_is_empty(spb, i)
    return True


@njit_inline
def spb_list_is_tainted(list_id):
    """Is list_id one of spb_lists[SB_TAINTED][*]?"""
    return list_id >= SB_TAINTED * NR_SB_FULLNESS and list_id < (SB_TAINTED + 1) * NR_SB_FULLNESS


@njit_inline
def spb_compute_list(spb, i):
    """(category, fullness, list id) spb_update_list() files slot i under [S1 §1.5-1.6, S §3.9]."""
    cat = spb_get_category(spb, i)
    if cat == SB_CLEAN and spb.cat[i] == SB_TAINTED and not spb_untaint_allowed(spb, i):
        cat = SB_TAINTED
    full = sb_get_fullness(spb, i, cat)
    if spb.contig_allocated[i] != 0:
        return cat, full, SPB_LIST_ISOLATED
    if spb.total_pageblocks[i] == 0:
        return cat, full, SPB_LIST_NONE
    if spb_is_empty(spb, i):
        return cat, full, SPB_LIST_EMPTY
    return cat, full, cat * NR_SB_FULLNESS + full


# ================================================================ list primitives

@njit_inline
def spb_list_del(spb, i):
    """list_del(&sb->list) from whatever zone list slot i is on."""
    lid = spb.list_id[i]
    if lid < 0:
        return
    z = spb.zone[i]
    list_del(spb.list_next, spb.list_prev, spb.list_head, spb.list_tail, (z, lid), i)
    spb.list_nr[z, lid] -= 1
    spb.list_id[i] = SPB_LIST_NONE


@njit_inline
def spb_list_add_tail(spb, lid, i):
    """list_add_tail(&sb->list, list lid of the SPB's zone)."""
    z = spb.zone[i]
    list_add_tail(spb.list_next, spb.list_prev, spb.list_head, spb.list_tail, (z, lid), i)
    spb.list_nr[z, lid] += 1
    spb.list_id[i] = lid


# ================================================================ list update

@njit_inline
def _log_spb_move(spb, i, z, now_ns, event):
    """The taint log's row for SPB slot i moving to or from the tainted lists,
    with the request in progress (spb.req is the machine's ``cur``)."""
    req = spb.req
    taint_log(spb.tl, spb.tl_n, now_ns, event, i, z, req[CUR_OWNER], req[CUR_GFP],
              req[CUR_ORDER], -1, -1, -1, spb.cur_pass[0])


# Not inlined: every hook ends in one call, and each inlined copy costs about
# a second of compile time (measured); a call passes the SPB arrays (~30).
@njit
def spb_update_list(spb, i, now_ns):
    """spb_update_list() [S1 §1.6 / S §4]: refile slot i; 1 if its list changed.

    cfg SPB_UPDATE_S1: re-append to the tail of the right list on every call.
    cfg SPB_UPDATE_TRANSITION: act only when the list (category, bucket,
    empty, isolated) changes.  The defrag kick follows the form: every call
    at S1, transitions only in the later form (the v1 43/45 bug: an SPB whose
    bucket does not change is never re-evaluated).
    """
    z = spb.zone[i]
    old = spb.list_id[i]
    cat, full, new = spb_compute_list(spb, i)
    spb.cat[i] = cat
    spb.full[i] = full
    s1 = spb.cfg[SPB_CFG_UPDATE] == SPB_UPDATE_S1
    spb.stat[z, ST_UPDATE_CALLS] += 1
    moved = 1 if new != old else 0
    if moved or s1:
        spb_list_del(spb, i)
        if new >= 0:
            spb_list_add_tail(spb, new, i)
    if moved:
        spb.stat[z, ST_LIST_MOVES] += 1
        was_t = spb_list_is_tainted(old)
        is_t = spb_list_is_tainted(new)
        if is_t and not was_t:
            spb.nr_tainted_spbs[z] += 1
            spb.stat[z, ST_TAINT] += 1
            spb.taint_by[spb.cur_pass[0]] += 1
            _log_spb_move(spb, i, z, now_ns, TL_SPB_TAINTED)
        elif was_t and not is_t:
            spb.nr_tainted_spbs[z] -= 1
            spb.stat[z, ST_UNTAINT] += 1
            _log_spb_move(spb, i, z, now_ns, TL_SPB_UNTAINTED)
    elif s1:
        spb.stat[z, ST_REQUEUES] += 1
    if (moved or s1) and spb.cfg[SPB_CFG_DEFRAG] != SPB_DEFRAG_OFF:
        spb_maybe_start_defrag(spb, i, now_ns)
    return moved


@njit
def spb_rebuild_lists(spb):
    """init_zone_spb_lists() + file every slot in slot order (boot/recount; no stats)."""
    spb.list_head[:, :] = -1
    spb.list_tail[:, :] = -1
    spb.list_nr[:, :] = 0
    spb.nr_tainted_spbs[:] = 0
    for i in range(spb.start_pfn.shape[0]):
        spb.list_next[i] = -1
        spb.list_prev[i] = -1
        spb.list_id[i] = SPB_LIST_NONE
        spb.cat[i] = SB_CLEAN
        cat, full, lid = spb_compute_list(spb, i)
        spb.cat[i] = cat
        spb.full[i] = full
        if lid >= 0:
            spb_list_add_tail(spb, lid, i)
            if spb_list_is_tainted(lid):
                spb.nr_tainted_spbs[spb.zone[i]] += 1


# ================================================================ counters

@njit_inline
def spb_adjust_has_counter(spb, i, bit, delta):
    """The nr_<type> counter of a PB_has_* bit += delta, never below 0; 1 if refused."""
    if bit == PB_has_unmovable:
        arr = spb.nr_unmovable
    elif bit == PB_has_reclaimable:
        arr = spb.nr_reclaimable
    else:
        arr = spb.nr_movable
    v = arr[i] + delta
    if v < 0:
        spb.stat[spb.zone[i], ST_UNDERFLOW] += 1
        return 1
    arr[i] = v
    return 0


@njit_inline
def _has_count(spb, i, bit):
    if bit == PB_has_unmovable:
        return spb.nr_unmovable[i]
    if bit == PB_has_reclaimable:
        return spb.nr_reclaimable[i]
    return spb.nr_movable[i]


@njit_inline
def __spb_set_has_type(spb, m, pfn, mt):
    """__spb_set_has_type() [S1 §6.2]: set PB_has_<mt>; on 0->1 count it; 1 if the bit was new."""
    bit = migratetype_to_has_bit(mt)
    if bit == 0:
        return 0
    pb = pfn >> pageblock_order
    f = m.pb_flags[pb]
    if f & bit:
        return 0
    m.pb_flags[pb] = f | bit
    i = page_superpageblock(spb, m, pfn)
    first = 0
    if i >= 0:
        spb_adjust_has_counter(spb, i, bit, 1)
        first = 1 if _has_count(spb, i, bit) == 1 else 0
    trace_event(m, EV_SPB_PB_TAINT, pfn, mt, 0, first, 0, 0)
    return 1


@njit_inline
def __spb_clear_has_type(spb, m, pfn, mt):
    """__spb_clear_has_type() [S1 §6.2]: clear PB_has_<mt>; on 1->0 uncount it (never below 0)."""
    bit = migratetype_to_has_bit(mt)
    if bit == 0:
        return 0
    pb = pfn >> pageblock_order
    f = m.pb_flags[pb]
    if (f & bit) == 0:
        return 0
    m.pb_flags[pb] = f & (0xFF ^ bit)
    i = page_superpageblock(spb, m, pfn)
    last = 0
    if i >= 0:
        spb_adjust_has_counter(spb, i, bit, -1)
        last = 1 if _has_count(spb, i, bit) == 0 else 0
    trace_event(m, EV_SPB_PB_TAINT, pfn, mt, 1, last, 0, 0)
    return 1


#: the same functions under names usable inside class bodies
spb_set_has_type = __spb_set_has_type
spb_clear_has_type = __spb_clear_has_type


@njit_inline
def spb_pb_now_used_counter(spb, m, pfn):
    """PB_all_free 1->0 and nr_free-- (never below 0), no refiling; the slot, or -1 if nothing changed."""
    pb = pfn >> pageblock_order
    f = m.pb_flags[pb]
    if (f & PB_all_free) == 0:
        return -1
    m.pb_flags[pb] = f & (0xFF ^ PB_all_free)
    i = page_superpageblock(spb, m, pfn)
    if i < 0:
        return -1
    if spb.nr_free[i] > 0:
        spb.nr_free[i] -= 1
    else:
        spb.stat[spb.zone[i], ST_UNDERFLOW] += 1
    return i


@njit_inline
def spb_pb_now_free_counter(spb, m, pfn):
    """PB_all_free 0->1 and nr_free++, no refiling; the slot, or -1 if nothing changed."""
    pb = pfn >> pageblock_order
    f = m.pb_flags[pb]
    if f & PB_all_free:
        return -1
    m.pb_flags[pb] = f | PB_all_free
    i = page_superpageblock(spb, m, pfn)
    if i >= 0:
        spb.nr_free[i] += 1
    return i


@njit_inline
def superpageblock_pb_now_used(spb, m, pfn):
    """superpageblock_pb_now_used() [S §2.2, S1 §3.2]: PB_all_free 1->0, nr_free--, refile; 1 if moved."""
    i = spb_pb_now_used_counter(spb, m, pfn)
    if i < 0:
        return 0
    return spb_update_list(spb, i, m.cur[CUR_CLOCK])


@njit_inline
def superpageblock_pb_now_free(spb, m, pfn):
    """superpageblock_pb_now_free() [S1 §6.4]: PB_all_free 0->1, nr_free++, refile; 1 if moved."""
    i = spb_pb_now_free_counter(spb, m, pfn)
    if i < 0:
        return 0
    return spb_update_list(spb, i, m.cur[CUR_CLOCK])


@njit_inline
def superpageblock_range_now_used(spb, m, pfn, order):
    """superpageblock_range_now_used() [S1 §9.5]: now_used for each pageblock of a >= pageblock_order chunk, one refile."""
    nr = 1
    if order > pageblock_order:
        nr = 1 << (order - pageblock_order)
    changed = -1
    for k in range(nr):
        i = spb_pb_now_used_counter(spb, m, pfn + k * pageblock_nr_pages)
        if i >= 0:
            changed = i
    if changed < 0:
        return 0
    return spb_update_list(spb, changed, m.cur[CUR_CLOCK])


@njit_inline
def spb_pageblock_set_has(spb, m, pfn, order, mt):
    """The SPB part of page_del_and_expand()/claim_whole_block() [S1 §6.3]: per pageblock set PB_has_<mt> and clear PB_all_free, then one refile."""
    nr = 1
    if order > pageblock_order:
        nr = 1 << (order - pageblock_order)
    base = pfn & ~(pageblock_nr_pages - 1)
    for k in range(nr):
        p = base + k * pageblock_nr_pages
        __spb_set_has_type(spb, m, p, mt)
        spb_pb_now_used_counter(spb, m, p)
    i = page_superpageblock(spb, m, pfn)
    if i < 0:
        return 0
    return spb_update_list(spb, i, m.cur[CUR_CLOCK])


@njit_inline
def spb_mark_pageblock_free(spb, m, pfn):
    """The SPB part of mark_pageblock_free() [S1 §6.4(a)]: clear all PB_has_* (with decrements), set PB_all_free (nr_free++), one refile."""
    cleared = __spb_clear_has_type(spb, m, pfn, MIGRATE_UNMOVABLE)
    cleared += __spb_clear_has_type(spb, m, pfn, MIGRATE_RECLAIMABLE)
    cleared += __spb_clear_has_type(spb, m, pfn, MIGRATE_MOVABLE)
    freed = spb_pb_now_free_counter(spb, m, pfn)
    if freed < 0 and cleared == 0:
        return 0
    i = page_superpageblock(spb, m, pfn)
    if i < 0:
        return 0
    return spb_update_list(spb, i, m.cur[CUR_CLOCK])


@njit_inline
def superpageblock_set_has_movable(spb, m, pfn):
    """superpageblock_set_has_movable() [S1 §9.2]: compaction_alloc's destination gets PB_has_movable."""
    return __spb_set_has_type(spb, m, pfn, MIGRATE_MOVABLE)


@njit_inline
def spb_pageblock_has_free_movable_fragments(spb, m, pfn):
    """spb_pageblock_has_free_movable_fragments() [S1 §9.1]: a sub-pageblock free buddy on the MOVABLE list in pfn's block?

    A free buddy sits on the list of its block's label (buddy.py), so: the
    block is labelled MOVABLE and holds a PG_buddy head below pageblock_order.
    """
    start = pfn & ~(pageblock_nr_pages - 1)
    if m.pb_mt[start >> pageblock_order] != MIGRATE_MOVABLE:
        return False
    p = start
    end = start + pageblock_nr_pages
    while p < end:
        if m.pg_flags[p] & PG_buddy:
            o = m.pg_order[p]
            if o < pageblock_order:
                return True
            p += 1 << o
        else:
            p += 1
    return False


@njit_inline
def superpageblock_clear_has_movable(spb, m, pfn):
    """superpageblock_clear_has_movable() [S1 §9.1]: compaction found no movable page; clear PB_has_movable unless free fragments remain."""
    if spb_pageblock_has_free_movable_fragments(spb, m, pfn):
        return 0
    return __spb_clear_has_type(spb, m, pfn, MIGRATE_MOVABLE)


@njit_inline
def spb_account_free_pages(spb, m, pfn, nr):
    """sb->nr_free_pages += nr, done with every SPB free-list add/del [S1 §10]."""
    i = page_superpageblock(spb, m, pfn)
    if i >= 0:
        spb.nr_free_pages[i] += nr


@njit_inline
def spb_set_contig_allocated(spb, i, on, now_ns):
    """contig_allocated on/off [S v2 17/40 §3.9]: to or from spb_isolated; 1 if moved."""
    spb.contig_allocated[i] = 1 if on else 0
    return spb_update_list(spb, i, now_ns)


# ================================================================ reserve and defrag gates

@njit_inline
def spb_movable_skips(spb, i):
    """A movable request skips tainted SPB i at or below its tainted reserve
    (PASS_4 and the claim/steal search) [S1 §3.1-3.2]; switch movable_reserve_skip."""
    return spb.cfg[SPB_CFG_MOVABLE_RESERVE] != 0 and spb.nr_free[i] <= spb_tainted_reserve(spb, i)


@njit_inline
def spb_tainted_reserve(spb, i):
    """SPB_TAINTED_RESERVE (S1: 4) or spb_tainted_reserve(sb) = max(4, total/32) [S §3.5, formula I]."""
    if spb.cfg[SPB_CFG_RESERVE] == SPB_RESERVE_DYNAMIC:
        r = spb.total_pageblocks[i] >> SPB_TAINTED_RESERVE_SHIFT
        if r < SPB_TAINTED_RESERVE_MIN:
            r = SPB_TAINTED_RESERVE_MIN
        return r
    return SPB_TAINTED_RESERVE


@njit_inline
def spb_below_shrink_high_water(spb, i):
    """spb_below_shrink_high_water() [S §3.2]: nr_free_pages < reserve * pageblock_nr_pages."""
    return spb.nr_free_pages[i] < spb_tainted_reserve(spb, i) * pageblock_nr_pages


@njit_inline
def spb_defrag_start_cond(spb, i):
    """Defrag start threshold [S v2 15/40 preset; spec §5.1 SIM reserve preset]."""
    if spb.cfg[SPB_CFG_DEFRAG] == SPB_DEFRAG_V2_15:
        return (spb.nr_free[i] <= SPB_DEFRAG_V2_START_NR_FREE
                or spb.nr_free_pages[i] < SPB_DEFRAG_V2_START_FREE_PB * pageblock_nr_pages)
    r = spb_tainted_reserve(spb, i)
    return spb.nr_free[i] < r or spb.nr_free_pages[i] < r * pageblock_nr_pages


@njit_inline
def spb_defrag_should_stop(spb, i):
    """Defrag stop threshold [S v2 15/40 preset; spec §5.1 SIM reserve preset]; also when nr_movable == 0."""
    if spb.nr_movable[i] == 0:
        return True
    if spb.cfg[SPB_CFG_DEFRAG] == SPB_DEFRAG_V2_15:
        return (spb.nr_free[i] >= SPB_DEFRAG_V2_STOP_NR_FREE
                or spb.nr_free_pages[i] >= SPB_DEFRAG_V2_STOP_FREE_PB * pageblock_nr_pages)
    r = spb_tainted_reserve(spb, i)
    return (spb.nr_free[i] >= r
            and spb.nr_free_pages[i] >= (r + spb.cfg[SPB_CFG_STOP_EXTRA_PB]) * pageblock_nr_pages)


@njit_inline
def spb_needs_defrag(spb, i, now_ns):
    """spb_needs_defrag() [S §5.1]: tainted, has movable pages, past the no-progress cooldown, below start and not at stop."""
    if spb.cfg[SPB_CFG_DEFRAG] == SPB_DEFRAG_OFF:
        return False
    if not spb_list_is_tainted(spb.list_id[i]):
        return False
    if spb.nr_movable[i] == 0:
        return False
    last = spb.defrag_last_no_progress_ns[i]
    if last != SPB_NEVER_NS and now_ns - last < SPB_DEFRAG_NOOP_COOLDOWN_NS:
        return False
    last = spb.defrag_last_run_ns[i]
    cool = spb.cfg[SPB_CFG_PROGRESS_COOLDOWN_MS] * 1_000_000
    if cool > 0 and last != SPB_NEVER_NS and now_ns - last < cool:
        return False
    return spb_defrag_start_cond(spb, i) and not spb_defrag_should_stop(spb, i)


@njit   # not inlined: called from spb_update_list only when defrag is on
def spb_maybe_start_defrag(spb, i, now_ns):
    """spb_maybe_start_defrag() [S §5.1]: queue the SPB's defrag work if needed (single-flight); 1 if queued."""
    if spb.defrag_state[i] != SPB_DEFRAG_IDLE:
        return 0
    if not spb_needs_defrag(spb, i, now_ns):
        return 0
    spb.defrag_state[i] = SPB_DEFRAG_QUEUED
    spb.defrag_queued_ns[i] = now_ns
    spb.pend[PEND_DEFRAG] += 1
    spb.stat[spb.zone[i], ST_DEFRAG_KICKS] += 1
    return 1


@njit_inline
def spb_defrag_begin(spb, i, now_ns):
    """The defrag work starts running: remember nr_free to judge progress."""
    spb.defrag_state[i] = SPB_DEFRAG_RUNNING
    spb.defrag_start_nr_free[i] = spb.nr_free[i]


@njit_inline
def spb_defrag_end(spb, i, now_ns):
    """The defrag work ends: stamp defrag_last_no_progress_ns unless nr_free rose [S v1 43/45; progress rule SIM]; 1 if progress."""
    z = spb.zone[i]
    spb.defrag_state[i] = SPB_DEFRAG_IDLE
    spb.defrag_last_run_ns[i] = now_ns
    spb.stat[z, ST_DEFRAG_RUNS] += 1
    if spb.nr_free[i] - spb.defrag_start_nr_free[i] >= spb.cfg[SPB_CFG_PROGRESS_MIN_FREE]:
        return 1
    spb.defrag_last_no_progress_ns[i] = now_ns
    spb.stat[z, ST_DEFRAG_NO_PROGRESS] += 1
    return 0


# ================================================================ called (not inlined) from buddy.py

@njit
def spb_pageblock_set_has_call(spb, m, pfn, order, mt):
    """spb_pageblock_set_has() as a call (buddy.py's pageblock_set_has under SPBs)."""
    return spb_pageblock_set_has(spb, m, pfn, order, mt)


@njit
def spb_mark_pageblock_free_call(spb, m, pfn):
    """spb_mark_pageblock_free() as a call (buddy.py's mark_pageblock_free under SPBs)."""
    return spb_mark_pageblock_free(spb, m, pfn)


@njit
def superpageblock_range_now_used_call(spb, m, pfn, order):
    return superpageblock_range_now_used(spb, m, pfn, order)


@njit
def spb_set_contig_allocated_call(spb, i, on, now_ns):
    return spb_set_contig_allocated(spb, i, on, now_ns)


@njit
def superpageblock_clear_has_movable_call(spb, m, pfn):
    """superpageblock_clear_has_movable() with its refile (compaction, S1 §9.1)."""
    if superpageblock_clear_has_movable(spb, m, pfn):
        i = page_superpageblock(spb, m, pfn)
        if i >= 0:
            spb_update_list(spb, i, m.cur[CUR_CLOCK])
        return 1
    return 0
