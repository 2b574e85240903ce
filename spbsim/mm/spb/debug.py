"""spb_debug_check() and the debugfs ``superpageblocks`` dump (S1), plus an op driver for fuzzing.

``spb_debug_check(spb, mem)`` recounts every SPB from the machine state and
walks every zone list, and returns the first violation as
``(code, slot, a, b)``; code 0 means consistent.  ``SPB_VIOLATIONS`` turns
codes into messages (``format_spb_violation``).
"""
import numpy as np

from ..const import SUPERPAGEBLOCK_ORDER, ZONE_NAMES, pageblock_nr_pages
from ..state import CUR_CLOCK
from ._jit import njit
from .lists import (__spb_clear_has_type, __spb_set_has_type,
                    spb_compute_list, spb_list_is_tainted,
                    spb_mark_pageblock_free, spb_pageblock_set_has,
                    spb_set_contig_allocated, spb_update_list,
                    superpageblock_clear_has_movable,
                    superpageblock_range_now_used,
                    superpageblock_set_has_movable, page_superpageblock)
from .params import (NR_EVACUATE_ITEMS, NR_SB_FULLNESS, NR_SPB_LISTS, PEND_KEVAC_N,
                     PEND_KEVAC_Q, SB_CATEGORY_NAMES,
                     SB_FULLNESS_NAMES, SPB_LIST_EMPTY, SPB_LIST_ISOLATED,
                     spb_list_name)
from .recount import spb_recount

__all__ = ["spb_debug_check", "SPB_VIOLATIONS", "format_spb_violation",
           "assert_spb_consistent", "spb_dump", "spb_apply_ops", "SPB_OPS"]

SPB_VIOLATIONS = {
    1: "zone SPB table is inconsistent (zone {a}: first/count {b})",
    2: "SPB identity is wrong (zone {a}, start pfn {b:#x})",
    3: "a counter is negative (field {a}, value {b})",
    4: "a counter exceeds total_pageblocks (field {a}, value {b})",
    5: "total_pageblocks differs from the zone-clipped size (counted {a}, recorded {b})",
    6: "nr_free differs from the PB_all_free pageblocks (counted {a}, recorded {b})",
    7: "nr_unmovable differs from the PB_has_unmovable pageblocks (counted {a}, recorded {b})",
    8: "nr_reclaimable differs from the PB_has_reclaimable pageblocks (counted {a}, recorded {b})",
    9: "nr_movable differs from the PB_has_movable pageblocks (counted {a}, recorded {b})",
    10: "nr_reserved differs from the absent pageblocks (counted {a}, recorded {b})",
    11: "nr_free_pages differs from the pages in free buddies (counted {a}, recorded {b})",
    12: "zone SPB list links are broken (zone {a}, list {b})",
    13: "zone SPB list entry belongs to another zone (list zone {a}, SPB zone {b})",
    14: "zone SPB list entry's list_id differs from the list (list {a}, list_id {b})",
    15: "zone SPB list length differs from list_nr (counted {a}, recorded {b})",
    16: "SPB has a list_id but is not on that list (list_id {a}, slots on lists {b})",
    17: "SPB is on the wrong list (expected {a}, on {b})",
    18: "cached category/fullness is stale (expected cat*8+full {a}, cached {b})",
    19: "nr_tainted_spbs differs from the SPBs on tainted lists (counted {a}, recorded {b})",
    20: "debugfs invariant 1 fails: unmov + recl + mov + free < total - rsv ({a} < {b})",
    21: "kevacuate items in flight out of the pool (in flight {a}, pool {b})",
    22: "a kevacuate item is not a pageblock of a zone (pfn {a:#x}, item {b})",
}

_FIELDS = ("nr_free", "nr_unmovable", "nr_reclaimable", "nr_movable", "nr_reserved",
           "nr_free_pages")


@njit
def _check_slots(spb, m, with_free_pages, invariant1):
    nz = spb.zone_base.shape[0]
    n = spb.start_pfn.shape[0]
    nxt = 0
    for z in range(nz):
        if spb.zone_first[z] != nxt:
            return 1, -1, z, spb.zone_first[z]
        nxt += spb.zone_count[z]
    if nxt != n:
        return 1, -1, -1, nxt
    for z in range(nz):
        for k in range(spb.zone_count[z]):
            i = spb.zone_first[z] + k
            if spb.zone[i] != z:
                return 2, i, spb.zone[i], spb.start_pfn[i]
            if spb.start_pfn[i] != (spb.zone_base[z] + k) << SUPERPAGEBLOCK_ORDER:
                return 2, i, z, spb.start_pfn[i]
    for i in range(n):
        total = spb.total_pageblocks[i]
        vals = (spb.nr_free[i], spb.nr_unmovable[i], spb.nr_reclaimable[i],
                spb.nr_movable[i], spb.nr_reserved[i])
        for f in range(5):
            if vals[f] < 0:
                return 3, i, f, vals[f]
        if spb.nr_free_pages[i] < 0:
            return 3, i, 5, spb.nr_free_pages[i]
        for f in range(5):
            if vals[f] > total:
                return 4, i, f, vals[f]
        ctotal, cfree, cun, crec, cmov, crsv, cfp = spb_recount(spb, m, i, with_free_pages)
        if ctotal != total:
            return 5, i, ctotal, total
        if cfree != spb.nr_free[i]:
            return 6, i, cfree, spb.nr_free[i]
        if cun != spb.nr_unmovable[i]:
            return 7, i, cun, spb.nr_unmovable[i]
        if crec != spb.nr_reclaimable[i]:
            return 8, i, crec, spb.nr_reclaimable[i]
        if cmov != spb.nr_movable[i]:
            return 9, i, cmov, spb.nr_movable[i]
        if crsv != spb.nr_reserved[i]:
            return 10, i, crsv, spb.nr_reserved[i]
        if with_free_pages and cfp != spb.nr_free_pages[i]:
            return 11, i, cfp, spb.nr_free_pages[i]
        if invariant1:
            lhs = cun + crec + cmov + cfree
            if lhs < total - crsv:
                return 20, i, lhs, total - crsv
    return 0, -1, 0, 0


@njit
def _check_lists(spb):
    nz = spb.zone_base.shape[0]
    n = spb.start_pfn.shape[0]
    for z in range(nz):
        on_lists = 0
        tainted = 0
        for lid in range(NR_SPB_LISTS):
            cnt = 0
            prev = -1
            p = spb.list_head[z, lid]
            while p >= 0:
                if cnt > n or p >= n:
                    return 12, p, z, lid
                if spb.zone[p] != z:
                    return 13, p, z, spb.zone[p]
                if spb.list_id[p] != lid:
                    return 14, p, lid, spb.list_id[p]
                if spb.list_prev[p] != prev:
                    return 12, p, z, lid
                prev = p
                p = spb.list_next[p]
                cnt += 1
            if spb.list_tail[z, lid] != prev:
                return 12, prev, z, lid
            if cnt != spb.list_nr[z, lid]:
                return 15, -1, cnt, spb.list_nr[z, lid]
            on_lists += cnt
            if spb_list_is_tainted(lid):
                tainted += cnt
        with_id = 0
        for k in range(spb.zone_count[z]):
            if spb.list_id[spb.zone_first[z] + k] >= 0:
                with_id += 1
        if with_id != on_lists:
            return 16, -1, with_id, on_lists
        if tainted != spb.nr_tainted_spbs[z]:
            return 19, -1, tainted, spb.nr_tainted_spbs[z]
    for i in range(n):
        cat, full, lid = spb_compute_list(spb, i)
        if lid != spb.list_id[i]:
            return 17, i, lid, spb.list_id[i]
        if cat != spb.cat[i] or full != spb.full[i]:
            return 18, i, cat * 8 + full, spb.cat[i] * 8 + spb.full[i]
    return 0, -1, 0, 0


def spb_debug_check(spb, mem, check_free_pages=True, invariant1=False):
    """spb_debug_check() (S1, CONFIG_DEBUG_VM): first violation as (code, slot, a, b), or (0, -1, 0, 0).

    Recounts every counter from ``pb_flags``/``pb_zone`` (and, with
    ``check_free_pages``, ``nr_free_pages`` from the free buddies), checks
    each counter against ``total_pageblocks`` (spec §4), then the zone lists:
    links, list_nr, list_id, that each SPB is on the list spb_update_list()
    would file it under, the cached (category, fullness) and nr_tainted_spbs.
    ``invariant1``: also the later "debugfs invariant 1" (not checked at S1,
    and broken transiently by compaction's PB_all_free clear).
    """
    r = _check_slots(spb, mem, bool(check_free_pages), bool(invariant1))
    if r[0] == 0:
        r = _check_lists(spb)
    if r[0] == 0:
        r = _check_kevacuate(spb, mem)
    return tuple(int(x) for x in r)


def _check_kevacuate(spb, mem):
    """S1 §4's evacuate_item pool: at most NR_EVACUATE_ITEMS in flight, each
    the first pfn of a pageblock some zone owns."""
    n = int(spb.pend[PEND_KEVAC_N])
    if not 0 <= n <= NR_EVACUATE_ITEMS:
        return 21, -1, n, NR_EVACUATE_ITEMS
    for k in range(n):
        pfn = int(spb.pend[PEND_KEVAC_Q + k])
        if pfn < 0 or pfn % pageblock_nr_pages or pfn >= mem.pg_flags.shape[0] \
                or mem.pb_zone[pfn // pageblock_nr_pages] < 0:
            return 22, -1, pfn, k
    return 0, -1, 0, 0


def format_spb_violation(result):
    """Message for a spb_debug_check() result ('' when consistent)."""
    code, slot, a, b = result
    if code == 0:
        return ""
    if code in (3, 4):
        a = ("nr_free", "nr_unmovable", "nr_reclaimable", "nr_movable", "nr_reserved",
             "nr_free_pages")[a]
        msg = SPB_VIOLATIONS[code].replace("{b:#x}", "{b}").format(a=a, b=b)
    else:
        msg = SPB_VIOLATIONS.get(code, "unknown violation {a} {b}").format(a=a, b=b)
    where = f" at SPB slot {slot}" if slot >= 0 else ""
    return f"spb_debug_check: {msg}{where}"


def assert_spb_consistent(spb, mem, **kw):
    """Raise AssertionError with the message of the first violation."""
    r = spb_debug_check(spb, mem, **kw)
    if r[0] != 0:
        raise AssertionError(format_spb_violation(r))


# ---------------------------------------------------------------- debugfs

def _dump_zone(spb, z, lines, extended):
    first, count = int(spb.zone_first[z]), int(spb.zone_count[z])
    base_pfn = int(spb.zone_base[z]) << SUPERPAGEBLOCK_ORDER
    lines.append(f"Node 0, zone {ZONE_NAMES[z]:>8}: {count} superpageblocks, "
                 f"base_pfn=0x{base_pfn:x}")
    lines.append(f"  empty: {int(spb.list_nr[z, SPB_LIST_EMPTY])}")
    for c in range(len(SB_CATEGORY_NAMES)):
        for f in range(NR_SB_FULLNESS):
            nr = int(spb.list_nr[z, c * NR_SB_FULLNESS + f])
            if nr:
                lines.append(f"  {SB_CATEGORY_NAMES[c]}/{SB_FULLNESS_NAMES[f]}: {nr}")
    if extended and spb.list_nr[z, SPB_LIST_ISOLATED]:
        lines.append(f"  isolated: {int(spb.list_nr[z, SPB_LIST_ISOLATED])}")
    for k in range(count):
        i = first + k
        line = (f"  sb[{k}] pfn=0x{int(spb.start_pfn[i]):x}: unmov={int(spb.nr_unmovable[i])} "
                f"recl={int(spb.nr_reclaimable[i])} mov={int(spb.nr_movable[i])} "
                f"rsv={int(spb.nr_reserved[i])} free={int(spb.nr_free[i])} "
                f"total={int(spb.total_pageblocks[i])}")
        if extended:
            line += (f" free_pages={int(spb.nr_free_pages[i])}"
                     f" list={spb_list_name(int(spb.list_id[i]))}")
        lines.append(line)


def spb_dump(spb, mem=None, zone=None, extended=False):
    """The debugfs ``superpageblocks`` file [S1 §7.2] for one zone or (zone=None) every zone with SPBs.

    Per zone: "Node %d, zone %8s: %lu superpageblocks, base_pfn=0x%lx", the
    number of empty SPBs, one "category/fullness: count" line per non-empty
    list, and one "sb[%lu] pfn=0x%lx: unmov=%u recl=%u mov=%u rsv=%u free=%u
    total=%u" line per SPB (index within the zone).  The header and per-SPB
    formats are S1's; the wording and indentation of the two count lines are
    [I].  ``extended`` appends nr_free_pages and the list name (not in S1).
    ``mem`` is accepted for symmetry with spb_debug_check and not needed.
    """
    zones = range(spb.zone_base.shape[0]) if zone is None else [zone]
    lines = []
    for z in zones:
        if spb.zone_count[z] > 0:
            _dump_zone(spb, z, lines, extended)
    return "\n".join(lines) + ("\n" if lines else "")


# ---------------------------------------------------------------- op driver (fuzzing, tests)

#: op codes for spb_apply_ops(): each row is (op, pfn, arg)
SPB_OPS = {
    "set_has": 0,          # spb_pageblock_set_has(pfn, order=arg >> 3, mt=arg & 7)
    "mark_free": 1,        # spb_mark_pageblock_free(pfn)
    "range_used": 2,       # superpageblock_range_now_used(pfn, order=arg)
    "set_movable": 3,      # superpageblock_set_has_movable(pfn)
    "clear_movable": 4,    # superpageblock_clear_has_movable(pfn)
    "raw_set": 5,          # __spb_set_has_type(pfn, mt=arg), then spb_update_list
    "raw_clear": 6,        # __spb_clear_has_type(pfn, mt=arg), then spb_update_list
    "update": 7,           # spb_update_list(slot of pfn)
    "contig": 8,           # spb_set_contig_allocated(slot of pfn, arg)
}


@njit
def _apply_ops(spb, m, ops, check_every):
    for r in range(ops.shape[0]):
        op = ops[r, 0]
        pfn = ops[r, 1]
        arg = ops[r, 2]
        now = m.cur[CUR_CLOCK]
        if op == 0:
            spb_pageblock_set_has(spb, m, pfn, arg >> 3, arg & 7)
        elif op == 1:
            spb_mark_pageblock_free(spb, m, pfn)
        elif op == 2:
            superpageblock_range_now_used(spb, m, pfn, arg)
        elif op == 3:
            superpageblock_set_has_movable(spb, m, pfn)
        elif op == 4:
            superpageblock_clear_has_movable(spb, m, pfn)
        elif op == 5 or op == 6:
            if op == 5:
                __spb_set_has_type(spb, m, pfn, arg)
            else:
                __spb_clear_has_type(spb, m, pfn, arg)
            i = page_superpageblock(spb, m, pfn)
            if i >= 0:
                spb_update_list(spb, i, now)
        elif op == 7:
            i = page_superpageblock(spb, m, pfn)
            if i >= 0:
                spb_update_list(spb, i, now)
        elif op == 8:
            i = page_superpageblock(spb, m, pfn)
            if i >= 0:
                spb_set_contig_allocated(spb, i, arg != 0, now)
        if check_every:
            c = _check_slots(spb, m, False, False)
            if c[0] != 0:
                return r, c[0], c[1], c[2], c[3]
            c = _check_lists(spb)
            if c[0] != 0:
                return r, c[0], c[1], c[2], c[3]
    return ops.shape[0], 0, -1, 0, 0


def spb_apply_ops(spb, mem, ops, check_every=False):
    """Run rows (op, pfn, arg) of SPB_OPS through the hook functions (compiled).

    Returns (ops done, first violation as (code, slot, a, b)); with
    ``check_every`` the pageblock and list checks (not nr_free_pages) run
    after every op and the run stops at the first violation.
    """
    ops = np.ascontiguousarray(ops, dtype=np.int64).reshape(-1, 3)
    done, code, slot, a, b = _apply_ops(spb, mem, ops, bool(check_every))
    return int(done), (int(code), int(slot), int(a), int(b))
