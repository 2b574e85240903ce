"""Where would the simulated allocator take a buddy-level allocation? A read-only peek.

Compiled re-implementations of ``rmqueue_buddy()`` / ``__rmqueue()`` and their
fallbacks (mm/page_alloc.c) that only read the machine state: each returns the
decision (kind, free list, buddy head, buddy order, fallback order) that the
model's own functions in spbsim/mm would act on, without changing a list, a
pageblock type or a counter.  Two fallback rules: ``__rmqueue_claim`` +
``__rmqueue_steal`` (v6.15+; spbsim's "6.12" and "recent") and
``__rmqueue_fallback`` + ``steal_suitable_fallback`` (v6.1).  Use:
docs/replay.md#decision-level-agreement.
"""
from __future__ import annotations

import time
from collections import namedtuple

import numpy as np

from spbsim.mm.const import (ALLOC_HIGHATOMIC, ALLOC_NOFRAGMENT, ALLOC_NON_BLOCK, ALLOC_OOM,
                             MAX_PAGE_ORDER, MIGRATE_HIGHATOMIC, MIGRATE_MOVABLE, NR_PAGE_ORDERS,
                             PG_buddy, PG_head, pageblock_nr_pages, pageblock_order)
from spbsim.mm.buddy import prep_move_freepages_block as _model_prep_move_freepages_block
from spbsim.mm.fallback import should_try_claim_block
from spbsim.mm.jit import njit, njit_inline
from spbsim.mm.page_alloc import rmqueue_buddy as model_rmqueue_buddy
from spbsim.mm.pbits import fallback_type
from spbsim.mm.state import SIMSTAT

__all__ = ["Decision", "peek_rmqueue", "rule_for_version", "KIND_NAMES", "RULES",
           "PK_NONE", "PK_SMALLEST", "PK_CLAIM", "PK_CLAIM_WHOLE", "PK_STEAL", "PK_HIGHATOMIC",
           "RULE_CLAIM_STEAL", "RULE_FALLBACK", "bench_peek", "rmqueue_buddy",
           "rmqueue_applied", "saved_arrays", "free_buddy_containing"]

#: decision kinds
PK_NONE = 0            # nothing: the request fails in this zone
PK_SMALLEST = 1        # __rmqueue_smallest() on the request's own lists
PK_CLAIM = 2           # a fallback buddy's pageblock claimed, then __rmqueue_smallest()
PK_CLAIM_WHOLE = 3     # a >= pageblock_order fallback buddy taken over whole
PK_STEAL = 4           # one fallback buddy split off, its block keeps its type
PK_HIGHATOMIC = 5      # __rmqueue_smallest(MIGRATE_HIGHATOMIC)
KIND_NAMES = ("none", "smallest", "claim", "claim_whole", "steal", "highatomic")

#: fallback rules
RULE_CLAIM_STEAL = 0   # __rmqueue_claim, then __rmqueue_steal (v6.15+; 6.12 LTS)
RULE_FALLBACK = 1      # __rmqueue_fallback + steal_suitable_fallback (v6.1 .. v6.14)
RULES = {"claim-steal": RULE_CLAIM_STEAL, "rmqueue_fallback": RULE_FALLBACK}

#: fields of a decision tuple
D_KIND, D_LIST, D_PFN, D_ORDER, D_FB_ORDER = range(5)
NONE = (PK_NONE, -1, -1, -1, -1)


def rule_for_version(version: str) -> int:
    """The fallback rule of a kernel version name: 'recent' and '6.12' (spbsim's
    6.12 LTS variant) claim then steal; '6.1' falls back through
    __rmqueue_fallback."""
    if version in ("recent", "6.19", "7.0", "6.12"):
        return RULE_CLAIM_STEAL
    if version == "6.1":
        return RULE_FALLBACK
    raise ValueError(f"kernel version {version!r}: no fallback rule known")


# ---------------------------------------------------------------- helpers

@njit_inline
def free_buddy_containing(m, pfn, order):
    """The free buddy that holds [pfn, pfn + 2^order): (head, order), or
    (-1, -1) if that range is not inside one free buddy."""
    for k in range(order, NR_PAGE_ORDERS):
        h = pfn & ~((1 << k) - 1)
        f = m.pg_flags[h]
        if (f & (PG_buddy | PG_head)) != 0 and m.pg_order[h] == k:
            if (f & PG_buddy) != 0:
                return h, k
            return -1, -1
    return -1, -1


@njit_inline
def rmqueue_smallest(m, z, order, mt):
    """__rmqueue_smallest(): the head of the first non-empty ``mt`` list from
    ``order`` up, as a decision."""
    for current_order in range(order, NR_PAGE_ORDERS):
        pfn = m.fa_head[z, current_order, mt]
        if pfn >= 0:
            kind = PK_HIGHATOMIC if mt == MIGRATE_HIGHATOMIC else PK_SMALLEST
            return kind, mt, pfn, current_order, -1
    return NONE


@njit_inline
def find_suitable_fallback(m, z, order, start_mt, claimable):
    """find_suitable_fallback(): the first fallback type with a buddy of this
    order; -2: not claimable at this order (nor any lower one); -1: none."""
    if claimable and not should_try_claim_block(order, start_mt):
        return -2
    if m.nr_free[z, order] == 0:
        return -1
    for i in range(2):
        fb = fallback_type(start_mt, i)
        if m.fa_head[z, order, fb] >= 0:
            return fb
    return -1


@njit_inline
def prep_move_freepages_block(m, z, pfn, lru):
    """prep_move_freepages_block(): (start, free pages, movable pages) of pfn's
    block; start = -1 if the block straddles the zone.  Movable pages: with an
    ``lru`` array (one flag per pfn) every flagged allocated pfn counts, as
    PageLRU() does for each page of a folio; with an empty one, the model's
    (spbsim.mm.buddy.prep_move_freepages_block): every page of a block whose
    allocated head has PG_lru."""
    if lru.shape[0] == 0:
        return _model_prep_move_freepages_block(m, z, pfn)
    start = pfn & ~(pageblock_nr_pages - 1)
    end = start + pageblock_nr_pages
    if start < m.zone_start[z] or end > m.zone_end[z]:
        return -1, 0, 0
    free_pages = 0
    movable = 0
    p = start
    while p < end:
        f = m.pg_flags[p]
        if f & PG_buddy:
            n = 1 << m.pg_order[p]
            free_pages += n
            p += n
            continue
        if lru[p] != 0:
            movable += 1
        p += 1
    return start, free_pages, movable


@njit_inline
def _alike_pages(start_type, block_type, free_pages, movable_pages):
    if start_type == MIGRATE_MOVABLE:
        return movable_pages
    if block_type == MIGRATE_MOVABLE:
        return pageblock_nr_pages - (free_pages + movable_pages)
    return 0


@njit_inline
def _smallest_in_block(m, start, order):
    """__rmqueue_smallest() right after __move_freepages_block() moved the
    block's buddies to the (empty above ``order``) start-type lists' tails:
    the lowest-pfn buddy of the smallest order >= ``order`` in the block."""
    best = -1
    best_o = NR_PAGE_ORDERS
    p = start
    end = start + pageblock_nr_pages
    while p < end:
        if m.pg_flags[p] & PG_buddy:
            o = m.pg_order[p]
            if o >= order and o < best_o:
                best = p
                best_o = o
            p += 1 << o
        else:
            p += 1
    return best, best_o


@njit_inline
def _claim_block(m, z, pfn, current_order, order, start_type, block_type, lru):
    """The sub-pageblock part of try_to_claim_block(): claim the block if at
    least half of it is free or alike; the decision, or NONE if the block is
    not claimed."""
    start, free_pages, movable_pages = prep_move_freepages_block(m, z, pfn, lru)
    if start < 0:
        return NONE
    alike = _alike_pages(start_type, block_type, free_pages, movable_pages)
    if free_pages + alike >= (1 << (pageblock_order - 1)):
        p, o = _smallest_in_block(m, start, order)
        return PK_CLAIM, block_type, p, o, current_order
    return NONE


@njit_inline
def try_to_claim_block(m, z, pfn, current_order, order, start_type, block_type, lru):
    """try_to_claim_block(): a >= pageblock_order buddy is taken whole; a smaller
    one claims its block if at least half of it is free or alike."""
    if block_type == MIGRATE_HIGHATOMIC:
        return NONE
    if current_order >= pageblock_order:
        return PK_CLAIM_WHOLE, block_type, pfn, current_order, current_order
    return _claim_block(m, z, pfn, current_order, order, start_type, block_type, lru)


@njit_inline
def rmqueue_claim(m, z, order, start_mt, alloc_flags, lru):
    """__rmqueue_claim(): largest fallback buddy first, one candidate per order."""
    min_order = order
    if order < pageblock_order and (alloc_flags & ALLOC_NOFRAGMENT):
        min_order = pageblock_order
    for current_order in range(MAX_PAGE_ORDER, min_order - 1, -1):
        fb = find_suitable_fallback(m, z, current_order, start_mt, True)
        if fb == -1:
            continue
        if fb == -2:
            break
        pfn = m.fa_head[z, current_order, fb]
        d = try_to_claim_block(m, z, pfn, current_order, order, start_mt, fb, lru)
        if d[D_KIND] != PK_NONE:
            return d
    return NONE


@njit_inline
def rmqueue_steal(m, z, order, start_mt):
    """__rmqueue_steal(): the smallest fallback buddy; its block keeps its type."""
    for current_order in range(order, NR_PAGE_ORDERS):
        fb = find_suitable_fallback(m, z, current_order, start_mt, False)
        if fb < 0:
            continue
        return PK_STEAL, fb, m.fa_head[z, current_order, fb], current_order, current_order
    return NONE


@njit_inline
def steal_suitable_fallback(m, z, pfn, fb, current_order, order, start_type, whole_block, lru):
    """steal_suitable_fallback() of v6.1 and __rmqueue()'s retry: take a >=
    pageblock_order buddy whole; else (``whole_block``) every free page of
    the block moves to the request's lists, claimed with the block if half
    of it is free or alike, and the retry takes the block's smallest buddy;
    else this one buddy moves and is taken."""
    block_type = m.pb_mt[pfn >> pageblock_order]
    if block_type != MIGRATE_HIGHATOMIC:
        if current_order >= pageblock_order:
            return PK_CLAIM_WHOLE, fb, pfn, current_order, current_order
        if whole_block:
            start, free_pages, movable_pages = prep_move_freepages_block(m, z, pfn, lru)
            if start >= 0:
                p, o = _smallest_in_block(m, start, order)
                alike = _alike_pages(start_type, block_type, free_pages, movable_pages)
                kind = PK_CLAIM if free_pages + alike >= (1 << (pageblock_order - 1)) else PK_STEAL
                return kind, fb, p, o, current_order
    return PK_STEAL, fb, pfn, current_order, current_order


@njit_inline
def rmqueue_fallback_v61(m, z, order, start_mt, alloc_flags, lru):
    """__rmqueue_fallback() (v6.1 .. v6.14): the largest order with any fallback
    buddy; a MOVABLE request that may not claim takes the smallest instead."""
    min_order = order
    if order < pageblock_order and (alloc_flags & ALLOC_NOFRAGMENT):
        min_order = pageblock_order
    found = -1
    fb = -1
    for current_order in range(MAX_PAGE_ORDER, min_order - 1, -1):
        fb = find_suitable_fallback(m, z, current_order, start_mt, False)
        if fb == -1:
            continue
        found = current_order
        break
    if found < 0:
        return NONE
    can_steal = should_try_claim_block(found, start_mt)
    if not can_steal and start_mt == MIGRATE_MOVABLE and found > order:
        for current_order in range(order, NR_PAGE_ORDERS):
            fb = find_suitable_fallback(m, z, current_order, start_mt, False)
            if fb >= 0:
                found = current_order
                break
        can_steal = should_try_claim_block(found, start_mt)
    pfn = m.fa_head[z, found, fb]
    return steal_suitable_fallback(m, z, pfn, fb, found, order, start_mt, can_steal, lru)


@njit_inline
def rmqueue(m, z, order, mt, alloc_flags, rule, lru):
    """__rmqueue(): __rmqueue_smallest(), then the fallback of ``rule`` (from
    RMQUEUE_NORMAL: a zone_locked event means smallest or claim ran)."""
    d = rmqueue_smallest(m, z, order, mt)
    if d[D_KIND] != PK_NONE:
        return d
    if rule == RULE_FALLBACK:
        return rmqueue_fallback_v61(m, z, order, mt, alloc_flags, lru)
    d = rmqueue_claim(m, z, order, mt, alloc_flags, lru)
    if d[D_KIND] != PK_NONE:
        return d
    if (alloc_flags & ALLOC_NOFRAGMENT) == 0:
        return rmqueue_steal(m, z, order, mt)
    return NONE


@njit
def rmqueue_buddy(m, z, order, mt, alloc_flags, rule, lru):
    """rmqueue_buddy(): the HIGHATOMIC list first for ALLOC_HIGHATOMIC, then
    __rmqueue(), then HIGHATOMIC as the last resort of ALLOC_OOM /
    ALLOC_NON_BLOCK requests.  Returns (kind, list type, buddy head pfn, buddy
    order, fallback order); (0, -1, -1, -1, -1) if nothing fits."""
    if alloc_flags & ALLOC_HIGHATOMIC:
        d = rmqueue_smallest(m, z, order, MIGRATE_HIGHATOMIC)
        if d[D_KIND] != PK_NONE:
            return d
    d = rmqueue(m, z, order, mt, alloc_flags, rule, lru)
    if d[D_KIND] == PK_NONE and (alloc_flags & (ALLOC_OOM | ALLOC_NON_BLOCK)):
        d = rmqueue_smallest(m, z, order, MIGRATE_HIGHATOMIC)
    return d


# ---------------------------------------------------------------- Python API

Decision = namedtuple("Decision", "kind list_mt pfn order fallback_order pageblock")
Decision.__doc__ = ("A peeked buddy-level decision: kind (KIND_NAMES), the free list's "
                    "migratetype, the taken buddy's head pfn and order (for a claim: the "
                    "buddy __rmqueue_smallest takes after the claim), the fallback buddy's "
                    "order (-1 without a fallback) and the pageblock of pfn.")

_NO_LRU = np.zeros(0, np.uint8)


def peek_rmqueue(machine, zone: int, order: int, migratetype: int, alloc_flags: int = 0,
                 rule: int = RULE_CLAIM_STEAL, lru=None) -> Decision:
    """What rmqueue_buddy() would take from ``zone`` of ``machine`` (a Machine or
    its ``mem``) for an allocation of ``order`` and ``migratetype`` with
    ``alloc_flags`` (spbsim.mm.const ALLOC_*), under the fallback ``rule``;
    nothing is changed.  ``lru``: optional uint8 per pfn, the pages that count
    as movable when a block may be claimed (default: the model's PG_lru heads)."""
    m = getattr(machine, "mem", machine)
    if m.cfg.size and int(np.max(m.pb_list)) >= 3:
        raise ValueError("peek_rmqueue: per-SPB free lists are not supported")
    lru = _NO_LRU if lru is None else np.ascontiguousarray(lru, np.uint8)
    k, lm, pfn, o, fo = rmqueue_buddy(m, int(zone), int(order), int(migratetype),
                                      int(alloc_flags), int(rule), lru)
    return Decision(KIND_NAMES[k], int(lm), int(pfn), int(o), int(fo),
                    int(pfn) >> pageblock_order if pfn >= 0 else -1)


# ---------------------------------------------------------------- the alternative

#: the Mem fields the model's rmqueue_buddy() may write (stock allocator)
SAVED_FIELDS = ("pg_next", "pg_prev", "pg_flags", "pg_order", "pb_mt", "pb_flags", "fa_head",
                "fa_tail", "fl_nr", "fa_nr", "nr_free", "zstat", "sim", "fb_stat", "ev", "ev_n",
                "pg_list_mt")
_SIM_STEAL = SIMSTAT["sim_steal"]
_SIM_CLAIM_WHOLE = SIMSTAT["sim_claim_whole_block"]
_SIM_CLAIM_SUCCESS = SIMSTAT["sim_claim_success"]


def saved_arrays(machine):
    """Arrays shaped like the fields of SAVED_FIELDS, for :func:`rmqueue_applied`."""
    m = getattr(machine, "mem", machine)
    return tuple(np.empty_like(getattr(m, f)) for f in SAVED_FIELDS)


@njit_inline
def _cp1(dst, src):
    for i in range(src.shape[0]):
        dst[i] = src[i]


@njit_inline
def _cp2(dst, src):
    for i in range(src.shape[0]):
        for j in range(src.shape[1]):
            dst[i, j] = src[i, j]


@njit_inline
def _cp3(dst, src):
    for i in range(src.shape[0]):
        for j in range(src.shape[1]):
            for k in range(src.shape[2]):
                dst[i, j, k] = src[i, j, k]


@njit
def _save_restore(m, s, save):
    """Copy the SAVED_FIELDS of ``m`` into ``s`` (save) or back (restore)."""
    if save:
        _cp1(s[0], m.pg_next)
        _cp1(s[1], m.pg_prev)
        _cp1(s[2], m.pg_flags)
        _cp1(s[3], m.pg_order)
        _cp1(s[4], m.pb_mt)
        _cp1(s[5], m.pb_flags)
        _cp3(s[6], m.fa_head)
        _cp3(s[7], m.fa_tail)
        _cp3(s[8], m.fl_nr)
        _cp3(s[9], m.fa_nr)
        _cp2(s[10], m.nr_free)
        _cp2(s[11], m.zstat)
        _cp1(s[12], m.sim)
        _cp3(s[13], m.fb_stat)
        _cp2(s[14], m.ev)
        _cp1(s[15], m.ev_n)
        _cp1(s[16], m.pg_list_mt)
    else:
        _cp1(m.pg_next, s[0])
        _cp1(m.pg_prev, s[1])
        _cp1(m.pg_flags, s[2])
        _cp1(m.pg_order, s[3])
        _cp1(m.pb_mt, s[4])
        _cp1(m.pb_flags, s[5])
        _cp3(m.fa_head, s[6])
        _cp3(m.fa_tail, s[7])
        _cp3(m.fl_nr, s[8])
        _cp3(m.fa_nr, s[9])
        _cp2(m.nr_free, s[10])
        _cp2(m.zstat, s[11])
        _cp1(m.sim, s[12])
        _cp3(m.fb_stat, s[13])
        _cp2(m.ev, s[14])
        _cp1(m.ev_n, s[15])
        _cp1(m.pg_list_mt, s[16])


@njit
def rmqueue_applied(m, z, order, mt, alloc_flags, s):
    """The other way to peek: run the model's own rmqueue_buddy() on the state,
    then restore every array it may write from the copies ``s``
    (:func:`saved_arrays`).  Returns (kind, pfn): kind from the model's
    steal/claim counters (PK_HIGHATOMIC when the buddy's block is HIGHATOMIC)."""
    _save_restore(m, s, True)
    page = model_rmqueue_buddy(m, z, order, alloc_flags, mt)
    kind = PK_NONE
    if page >= 0:
        kind = PK_SMALLEST
        if s[4][page >> pageblock_order] == MIGRATE_HIGHATOMIC:
            kind = PK_HIGHATOMIC
        if m.sim[_SIM_STEAL] != s[12][_SIM_STEAL]:
            kind = PK_STEAL
        elif m.sim[_SIM_CLAIM_WHOLE] != s[12][_SIM_CLAIM_WHOLE]:
            kind = PK_CLAIM_WHOLE
        elif m.sim[_SIM_CLAIM_SUCCESS] != s[12][_SIM_CLAIM_SUCCESS]:
            kind = PK_CLAIM
    _save_restore(m, s, False)
    return kind, page


@njit
def _bench_loop(m, zs, orders, mts, flags, rule, lru, s, applied):
    acc = 0
    for i in range(zs.shape[0]):
        if applied:
            k, p = rmqueue_applied(m, zs[i], orders[i], mts[i], flags[i], s)
        else:
            d = rmqueue_buddy(m, zs[i], orders[i], mts[i], flags[i], rule, lru)
            p = d[D_PFN]
        acc += p
    return acc


def bench_peek(machine, n=20000, seed=1, rule=RULE_CLAIM_STEAL):
    """Seconds per peek on ``machine``'s current state, read-only against
    snapshot-and-restore (:func:`rmqueue_applied`), for ``n`` random requests
    (zone among the populated ones, order 0..3 and 9, types 0..2).  Returns
    {"read_only": s, "restore": s, "n": n}; the first (compiling) call is
    excluded."""
    m = getattr(machine, "mem", machine)
    rng = np.random.default_rng(seed)
    zones = np.flatnonzero(m.zone_end > m.zone_start)
    zs = rng.choice(zones, n).astype(np.int64)
    orders = rng.choice(np.array([0, 0, 0, 0, 1, 2, 3, 9]), n).astype(np.int64)
    mts = rng.integers(0, 3, n).astype(np.int64)
    flags = np.zeros(n, np.int64)
    s = saved_arrays(m)
    out = {"n": n}
    for name, applied in (("read_only", False), ("restore", True)):
        k = n if not applied else max(n // 100, 10)
        _bench_loop(m, zs[:2], orders[:2], mts[:2], flags[:2], rule, _NO_LRU, s, applied)
        t0 = time.perf_counter()
        _bench_loop(m, zs[:k], orders[:k], mts[:k], flags[:k], rule, _NO_LRU, s, applied)
        out[name] = (time.perf_counter() - t0) / k
    return out
