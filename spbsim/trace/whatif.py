"""What-if replay: a real machine's request stream (every successful
``mm_page_alloc`` and its ``mm_page_free``) through a simulated allocator,
which makes every placement decision itself.  ``replay_whatif(trace,
machine_kwargs)``, ``request_stream(trace)``, ``python -m spbsim.trace.whatif
TRACE``.  Pairing, pre-fill, migrations and snapshots: docs/replay.md
("What-if replay").
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import time
from pathlib import Path

import numpy as np

from spbsim.errors import SpbsimError
from spbsim.mm.buddy import stock_pcp_allowed_order
from spbsim.mm.const import MAX_PAGE_ORDER, NR_PAGE_ORDERS, pageblock_order
from spbsim.mm.gfp import GFP_HIGHUSER_MOVABLE, GFP_KERNEL, __GFP_RECLAIMABLE, format_gfp
from spbsim.mm.jit import njit
from spbsim.mm.page_alloc import alloc_pages_call
from spbsim.mm.page_free import free_pages
from spbsim.mm.background import background, background_due
from spbsim.mm.compaction import HPAGE_FRAG_CHECK_INTERVAL_NS, reset_isolation_suitable
from spbsim.mm.const import KERNEL_VERSIONS, KV_6_1, MAX_NR_ZONES
from spbsim.mm.state import CFG, CUR_CLOCK, NODE, PCP_COUNT, SIMSTAT
from spbsim.mm.vmscan import update_reclaim_active
from spbsim.mm.watermark import wakeup_kcompactd
from spbsim.mm.workqueue import VMSTAT_INTERVAL_NS, WQ_VMSTAT_UPDATE, queue_work
from spbsim.trace.ftrace import (MM_PAGE_ALLOC, MM_PAGE_ALLOC_ZONE_LOCKED, MM_PAGE_FREE,
                                   MM_PAGE_PCPU_DRAIN, OTHER_EVENT, TRACING_MARK_WRITE,
                                   TraceReader, TracingMarkWrite)
from spbsim.trace.placement import MAX_CPUS
from spbsim.trace.kswapd_windows import (KSWAPD_GAP_MS, KswapdScan, NapCursor, active_at,
                                         next_wake, window_cuts)

__all__ = ["replay_whatif", "request_stream", "compare_snapshots", "format_table", "main",
           "OP_DTYPE", "OP_ALLOC", "OP_FREE", "OP_SPLIT", "OP_UNPAIRED",
           "PAIR_COUNTERS", "OWNER_TRACE", "OWNER_PREFILL", "OWNER_FILL", "free_pages_blocks_ge",
           "UF_PRETRACE", "UF_MIGRATED", "OP_MIGRATED", "OP_ADOPT", "zone_pfn_ranges",
           "refuse_bad_events", "FAIL_DTYPE"]

#: the zones a replay marks ZONE_RECLAIM_ACTIVE while the recorded kswapd
#: reclaims: up to the top zone (kswapd balances the node for the highest
#: zone its wakers asked for)
_TOP_ZONE = MAX_NR_ZONES - 1

#: op kinds of the request stream
OP_ALLOC, OP_FREE, OP_SPLIT, OP_UNPAIRED, OP_MIGRATED, OP_ADOPT = 0, 1, 2, 3, 4, 5
#: one op: ALLOC (order, gfp, cpu, id); FREE (order, cpu, id); SPLIT one piece
#: (order = new order, gfp = the parent's order, cpu = piece index, id = the
#: piece's id, aux = the parent id); UNPAIRED (order, cpu, aux = traced pfn,
#: gfp = UF_* flags); MIGRATED (order, id: a migration source, kept);
#: ADOPT (order, id = new id, aux = index of the UNPAIRED op whose pre-filled
#: block the new id takes over)
OP_DTYPE = np.dtype([("kind", "i1"), ("order", "i1"), ("cpu", "<i4"), ("id", "<i4"),
                     ("aux", "<i4"), ("gfp", "<i8"), ("ts", "<i8")])
#: a failed allocation: the kernel's (mm_page_alloc with page=0) or the
#: simulator's (a traced request it could not serve); ts in ns; ``line``:
#: the kernel's trace line (to cut at the start snapshot's marker)
FAIL_DTYPE = np.dtype([("ts", "<i8"), ("order", "i1"), ("cpu", "<i4"), ("line", "<i8")])
#: the simulator's failed requests a replay logs with their time (the
#: counts by order go on past it)
FAIL_LOG_CAP = 1 << 14
#: UNPAIRED flags: the page may have been in use before tracing (pre-fill it);
#: the free was a migration source (keep the block: an ADOPT follows)
UF_PRETRACE, UF_MIGRATED = 1, 2

#: owners of simulated blocks (pg_owner; Machine uses 1 and 2)
OWNER_TRACE = 3
OWNER_PREFILL = 4

#: counters of the pairing pass
PAIR_COUNTERS = ("alloc_events", "alloc_failed_in_trace", "free_events", "paired",
                 "paired_after_split", "splits", "split_pieces", "unpaired",
                 "unpaired_covering", "covered_ended", "superseded", "bad_events",
                 "migrated", "unpaired_pretrace", "migrated_pretrace", "unpaired_compaction",
                 "migration_target_frees", "unpaired_untraced", "isolated_free_pages",
                 "migration_targets_placed")
_C_ALLOC_EV, _C_ALLOC_FAILED, _C_FREE_EV, _C_PAIRED, _C_PAIRED_SPLIT, _C_SPLITS, \
    _C_PIECES, _C_UNPAIRED, _C_COVERING, _C_COVERED_ENDED, _C_SUPERSEDED, _C_BAD, \
    _C_MIGRATED, _C_UN_PRETRACE, _C_MIG_PRETRACE, _C_UN_COMPACTION, _C_MIG_TARGET, \
    _C_UN_UNTRACED, _C_ISOLATED, _C_MIG_PLACED = range(20)

#: pseudo event kinds the pairing pass reads besides mm_page_alloc/free:
#: mm_compaction_isolate_freepages (pfn = start, gfp = stop pfn | nr_taken << 32)
#: and mm_compaction_end (the task's isolated free list is released)
K_ISOLATE_FREE, K_COMPACTION_END = 20, 21
_COMPACTION_ISOLATE_FREE = "mm_compaction_isolate_freepages"
_RANGE_RE = re.compile(r"\(\s*(0x[0-9a-fA-F]+|\d+)\s*~\s*(0x[0-9a-fA-F]+|\d+)\s*\)")

#: pairing scalar state: next id, recycled ids, after the start snapshot,
#: UNPAIRED ops so far, then per order the head and tail of the queue of
#: migrated ids waiting for the free of their (untraced) target page
_ST_NEXT, _ST_NFREE, _ST_AFTER_START, _ST_NUNPAIRED = 0, 1, 2, 3
_ST_QHEAD = 4
_ST_QTAIL = _ST_QHEAD + NR_PAGE_ORDERS
_ST_LEN = _ST_QTAIL + NR_PAGE_ORDERS

#: ops / new ids one event can need at most (superseding or covering 1024
#: order-0 blocks; splitting an order-10 block into 1024 pieces)
_OPS_PER_EVENT = 2 * (1 << MAX_PAGE_ORDER) + 8
_IDS_PER_EVENT = (1 << MAX_PAGE_ORDER) + 8

_CFG_DEFRAG = CFG["defrag_mode"]
_SIM_FAIL = SIMSTAT["sim_alloc_fail"]

#: traced pfns at or above this are not paired (counted bad): 8 TiB of 4 KiB pages,
#: the simulator's own limit
_MAX_PFN = 1 << 31

_MARK_END_RE = re.compile(r"oracle_snap_end seq=(\d+) tag=(\S+)")
_MARK_BEGIN_RE = re.compile(r"oracle_snap_begin seq=(\d+) tag=(\S+)")
_COMPACTION_BEGIN, _COMPACTION_END = "mm_compaction_begin", "mm_compaction_end"
_TRY_TO_COMPACT = "mm_compaction_try_to_compact_pages"
#: tasks that never write /proc/sys/vm/compact_memory
_KTHREADS = ("kcompactd", "kswapd", "khugepaged")

PREFILL_MODES = ("auto", "movable", "kpageflags")
#: how the replay starts: "snapshot" (the start snapshot's exact state,
#: spbsim.trace.start), "prefill" (pre-trace blocks allocated by the simulator
#: itself, then filled to the start's free memory), "auto" (snapshot when the
#: start snapshot has kpageflags)
START_MODES = ("auto", "snapshot", "prefill")
MIGRATION_MODES = ("keep", "free")


# ---------------------------------------------------------------- pairing (compiled)

@njit
def _new_id(ids_free, st):
    """Pop a recycled id, else the next never-used one."""
    if st[_ST_NFREE] > 0:
        st[_ST_NFREE] -= 1
        return np.int64(ids_free[st[_ST_NFREE]])
    st[_ST_NEXT] += 1
    return st[_ST_NEXT] - 1


@njit
def _recycle_id(d, id_order, ids_free, st):
    id_order[d] = -1
    ids_free[st[_ST_NFREE]] = d
    st[_ST_NFREE] += 1


@njit
def _end_id(d, cover, id_rpfn, id_order, ids_free, st):
    """Forget a live id: clear the pages it covers, recycle it."""
    p = id_rpfn[d]
    for q in range(p, p + (1 << id_order[d])):
        cover[q] = -1
    _recycle_id(d, id_order, ids_free, st)


@njit
def _enqueue(d, o, mig_next, st):
    mig_next[d] = -1
    t = st[_ST_QTAIL + o]
    if t >= 0:
        mig_next[t] = d
    else:
        st[_ST_QHEAD + o] = d
    st[_ST_QTAIL + o] = d


@njit
def _dequeue(o, mig_next, st):
    d = st[_ST_QHEAD + o]
    n = mig_next[d]
    st[_ST_QHEAD + o] = n
    if n < 0:
        st[_ST_QTAIL + o] = -1
    return d


@njit
def _emit(o_kind, o_order, o_cpu, o_id, o_aux, o_gfp, o_ev, nops, kind, order, cpu, oid,
          aux, gfp, ev):
    o_kind[nops] = kind
    o_order[nops] = order
    o_cpu[nops] = cpu
    o_id[nops] = oid
    o_aux[nops] = aux
    o_gfp[nops] = gfp
    o_ev[nops] = ev
    return nops + 1


@njit
def _take_target(s, qhead, qtail, iso_next, cover):
    """compaction_alloc() for an order-0 migration of the task in slot ``s``:
    the first page of its lowest-order non-empty isolated free list
    (cc->freepages[order]; a chunk's pages are linked in ascending order, as
    splitting it leaves them at the heads of the lower lists), or -1."""
    if s < 0:
        return -1
    for k in range(qhead.shape[1]):
        while qhead[s, k] >= 0:
            t = qhead[s, k]
            qhead[s, k] = iso_next[t]
            if qhead[s, k] < 0:
                qtail[s, k] = -1
            if cover[t] < 0:
                return t
    return -1


@njit
def _isolated_chunk(q, freek, cover):
    """The order of the free buddy chunk headed at ``q``: the largest aligned
    run of pages free in the buddy as far as the trace tells (the buddy
    merges free pages as far as it can)."""
    k = 0
    n = freek.shape[0]
    while k < MAX_PAGE_ORDER and (q & ((2 << k) - 1)) == 0 and q + (2 << k) <= n:
        for r in range(q + (1 << k), q + (2 << k)):
            if freek[r] == 0 or cover[r] >= 0:
                return k
        k += 1
    return k


@njit
def _isolate_page(r, s, li, lifo, qhead, qtail, iso_next):
    """Put isolated page ``r`` on task slot ``s``'s list ``li``: at its head
    (``lifo``, v6.1's list_add()) or its tail (v6.12's list_add_tail())."""
    if lifo:
        iso_next[r] = qhead[s, li]
        if qhead[s, li] < 0:
            qtail[s, li] = r
        qhead[s, li] = r
        return
    iso_next[r] = -1
    if qtail[s, li] >= 0:
        iso_next[qtail[s, li]] = r
    else:
        qhead[s, li] = r
    qtail[s, li] = r


@njit
def _place_migrated(d, o, s, qhead, qtail, iso_next, cover, touched, id_rpfn, mig_next, st,
                    cnt):
    """A migrated block ``d`` of order ``o`` (task slot ``s``): its data now
    lives at the task's next isolated free page, whose later free pairs with
    it; without one (order > 0, or nothing isolated) it waits in the FIFO."""
    t = _take_target(s, qhead, qtail, iso_next, cover) if o == 0 else -1
    if t >= 0:
        cnt[_C_MIG_PLACED] += 1
        id_rpfn[d] = t
        cover[t] = d
        touched[t] = 1
    else:
        id_rpfn[d] = -1
        _enqueue(d, o, mig_next, st)


@njit
def _pair_events(kind, pfn, order, gfp, cpu, failed, ctx, slot, i0, i_end, cover, touched,
                 start_free, freek, iso_next, qhead, qtail, id_rpfn, id_order, ids_free,
                 mig_next, st, cnt, lifo, o_kind, o_order, o_cpu, o_id, o_aux, o_gfp, o_ev,
                 nops):
    """Turn events [i0, i_end) into ops (see the module docstring).

    ``ctx[i]``: the event ran in compaction (a migration source if paired).
    ``touched``: pages some earlier traced event allocated, freed, took from
    the buddy or drained to it;
    ``start_free``: pages free in the start snapshot (used once
    st[_ST_AFTER_START] is set).  Stops early, returning (next event, ops,
    1), when the op buffer or the id tables might not hold one more event's
    worth; the caller grows them and calls again.  Returns (i_end, ops, 0).
    """
    cap_ops = o_kind.shape[0]
    cap_ids = id_order.shape[0]
    ncover = cover.shape[0]
    nsf = start_free.shape[0]
    i = i0
    while i < i_end:
        if nops + _OPS_PER_EVENT > cap_ops or (st[_ST_NEXT] + _IDS_PER_EVENT > cap_ids
                                                 and st[_ST_NFREE] < _IDS_PER_EVENT):
            return i, nops, 1
        k = kind[i]
        o = np.int64(order[i])
        p = np.int64(pfn[i])
        c = np.int64(cpu[i])
        if k == MM_PAGE_ALLOC:
            cnt[_C_ALLOC_EV] += 1
            if failed[i]:
                cnt[_C_ALLOC_FAILED] += 1
                i += 1
                continue
        elif k == MM_PAGE_FREE:
            cnt[_C_FREE_EV] += 1
        elif k == K_ISOLATE_FREE:
            # isolate_freepages_block(): the first nr_taken pages of the range
            # that are in the buddy as far as the trace tells join the task's
            # lists, chunk by chunk: v6.12 (cc->freepages[order]) appends each
            # chunk to its order's list; v6.1 (``lifo``: split_map_pages()
            # list_add()s every page to the head, compaction_alloc() takes
            # the head) uses the last isolated page first
            s = slot[i]
            stop = min(np.int64(gfp[i]) & 0xFFFFFFFF, ncover)
            want = np.int64(gfp[i]) >> 32
            q = max(p, np.int64(0))
            while q < stop and want > 0 and s >= 0:
                if freek[q] != 0 and cover[q] < 0:
                    ck = _isolated_chunk(q, freek, cover)
                    li = 0 if lifo else ck
                    for r in range(q, q + (1 << ck)):
                        freek[r] = 0
                        _isolate_page(r, s, li, lifo, qhead, qtail, iso_next)
                        cnt[_C_ISOLATED] += 1
                    want -= 1 << ck
                    q += 1 << ck
                else:
                    q += 1
            i += 1
            continue
        elif k == K_COMPACTION_END:
            s = slot[i]
            if s >= 0:
                qhead[s, :] = -1
                qtail[s, :] = -1
            i += 1
            continue
        elif k == MM_PAGE_PCPU_DRAIN or k == MM_PAGE_ALLOC_ZONE_LOCKED:
            # the buddy as far as the trace tells, which is what the free
            # scanner isolates from (PageBuddy): free_pcppages_bulk() puts a
            # drained page in it, rmqueue() takes a page out of it.  Either
            # shows the page in the allocator after the trace began, so a
            # later free with no mm_page_alloc (alloc_pages_bulk() takes
            # pages off a per-cpu list without one) is no pre-trace memory
            if 0 <= o <= MAX_PAGE_ORDER and 0 <= p and p + (1 << o) <= ncover:
                v = 1 if k == MM_PAGE_PCPU_DRAIN else 0
                for q in range(p, p + (1 << o)):
                    freek[q] = v
                    touched[q] = 1
            i += 1
            continue
        else:
            i += 1
            continue
        if o < 0 or o > MAX_PAGE_ORDER or p < 0 or p + (1 << o) > ncover:
            cnt[_C_BAD] += 1
            i += 1
            continue
        end = p + (1 << o)
        if k == MM_PAGE_ALLOC:
            if (p & ((1 << o) - 1)) != 0:
                cnt[_C_BAD] += 1
                i += 1
                continue
            # pages still covered by a live traced allocation: its free was not traced
            for q in range(p, end):
                d = cover[q]
                if d >= 0:
                    cnt[_C_SUPERSEDED] += 1
                    nops = _emit(o_kind, o_order, o_cpu, o_id, o_aux, o_gfp, o_ev, nops,
                                 OP_FREE, id_order[d], c, d, -1, 0, i)
                    _end_id(d, cover, id_rpfn, id_order, ids_free, st)
            nid = _new_id(ids_free, st)
            id_rpfn[nid] = p
            id_order[nid] = o
            for q in range(p, end):
                cover[q] = nid
                touched[q] = 1
                freek[q] = 0
            nops = _emit(o_kind, o_order, o_cpu, o_id, o_aux, o_gfp, o_ev, nops,
                         OP_ALLOC, o, c, nid, -1, gfp[i], i)
            i += 1
            continue
        # a free: to the buddy at once where the order has no per-cpu list
        # (pcp_allowed_order()), else on a per-cpu list until drained
        if not stock_pcp_allowed_order(o):
            for q in range(p, end):
                freek[q] = 1
        d = cover[p]
        if d >= 0 and id_order[d] > o and (p & ((1 << o) - 1)) == 0:
            # split d into blocks of order o, then free the piece at p
            kk = np.int64(id_order[d])
            base = id_rpfn[d]
            npieces = 1 << (kk - o)
            cnt[_C_SPLITS] += 1
            cnt[_C_PIECES] += npieces
            for j in range(npieces):
                nid = _new_id(ids_free, st)
                s = base + (j << o)
                id_rpfn[nid] = s
                id_order[nid] = o
                for q in range(s, s + (1 << o)):
                    cover[q] = nid
                nops = _emit(o_kind, o_order, o_cpu, o_id, o_aux, o_gfp, o_ev, nops,
                             OP_SPLIT, o, j, nid, d, kk, i)
            _recycle_id(d, id_order, ids_free, st)
            d = cover[p]
            cnt[_C_PAIRED_SPLIT] += 1
        if d >= 0 and id_rpfn[d] == p and id_order[d] == o:
            cnt[_C_PAIRED] += 1
            if ctx[i]:
                # a migration source: the data lives on in a page compaction
                # took without an mm_page_alloc event; keep the block
                cnt[_C_MIGRATED] += 1
                nops = _emit(o_kind, o_order, o_cpu, o_id, o_aux, o_gfp, o_ev, nops,
                             OP_MIGRATED, o, c, d, -1, 0, i)
                for q in range(p, end):
                    cover[q] = -1
                _place_migrated(d, o, slot[i], qhead, qtail, iso_next, cover, touched, id_rpfn,
                                mig_next, st, cnt)
            else:
                nops = _emit(o_kind, o_order, o_cpu, o_id, o_aux, o_gfp, o_ev, nops,
                             OP_FREE, o, c, d, -1, 0, i)
                _end_id(d, cover, id_rpfn, id_order, ids_free, st)
            i += 1
            continue
        covering = False
        for q in range(p, end):
            if cover[q] >= 0:
                covering = True
                break
        if covering:
            cnt[_C_COVERING] += 1
            for q in range(p, end):
                d = cover[q]
                if d >= 0:
                    cnt[_C_COVERED_ENDED] += 1
                    nops = _emit(o_kind, o_order, o_cpu, o_id, o_aux, o_gfp, o_ev, nops,
                                 OP_FREE, id_order[d], c, d, -1, 0, i)
                    _end_id(d, cover, id_rpfn, id_order, ids_free, st)
            for q in range(p, end):
                touched[q] = 1
            i += 1
            continue
        # unpaired: in use before tracing, unless a traced event touched the
        # pages before or they were free in the start snapshot
        cnt[_C_UNPAIRED] += 1
        pretrace = True
        for q in range(p, end):
            if touched[q] != 0 or (st[_ST_AFTER_START] != 0 and q < nsf
                                   and start_free[q] != 0):
                pretrace = False
            touched[q] = 1
        if ctx[i]:
            if pretrace:
                # a pre-trace page migrated: pre-fill it, keep it under a new id
                cnt[_C_MIG_PRETRACE] += 1
                nops = _emit(o_kind, o_order, o_cpu, o_id, o_aux, o_gfp, o_ev, nops,
                             OP_UNPAIRED, o, c, -1, p, UF_PRETRACE | UF_MIGRATED, i)
                nid = _new_id(ids_free, st)
                id_rpfn[nid] = -1
                id_order[nid] = o
                nops = _emit(o_kind, o_order, o_cpu, o_id, o_aux, o_gfp, o_ev, nops,
                             OP_ADOPT, o, c, nid, st[_ST_NUNPAIRED], 0, i)
                _place_migrated(nid, o, slot[i], qhead, qtail, iso_next, cover, touched,
                                id_rpfn, mig_next, st, cnt)
            else:
                # compaction handing back isolated free pages, or migrating an
                # untraced page: nothing to do
                cnt[_C_UN_COMPACTION] += 1
                nops = _emit(o_kind, o_order, o_cpu, o_id, o_aux, o_gfp, o_ev, nops,
                             OP_UNPAIRED, o, c, -1, p, 0, i)
            st[_ST_NUNPAIRED] += 1
        elif not pretrace and st[_ST_QHEAD + o] >= 0:
            # the free of a migration target: frees the oldest migrated block
            cnt[_C_MIG_TARGET] += 1
            d = _dequeue(o, mig_next, st)
            nops = _emit(o_kind, o_order, o_cpu, o_id, o_aux, o_gfp, o_ev, nops,
                         OP_FREE, o, c, d, p, 0, i)
            _recycle_id(d, id_order, ids_free, st)
        else:
            if pretrace:
                cnt[_C_UN_PRETRACE] += 1
            else:
                cnt[_C_UN_UNTRACED] += 1
            nops = _emit(o_kind, o_order, o_cpu, o_id, o_aux, o_gfp, o_ev, nops,
                         OP_UNPAIRED, o, c, -1, p, UF_PRETRACE if pretrace else 0, i)
            st[_ST_NUNPAIRED] += 1
        i += 1
    return i_end, nops, 0


class _Pairer:
    """Pairing state across batches: traced pfn -> live id (``cover``, every
    page of a live traced allocation), pages touched by a traced event, id ->
    traced head pfn and order, recycled ids, queues of migrated ids; pages
    in the buddy as far as the trace tells (``freek``: what a free scanner
    can isolate) and each compacting task's isolated free pages (a list
    linked through ``iso_next``, per slot)."""

    def __init__(self, start_free=None, lifo=False):
        #: v6.1's isolated free pages are used last-isolated first (else
        #: v6.12's per-order lists)
        self.lifo = bool(lifo)
        self.cover = np.full(1 << 16, -1, np.int32)
        self.touched = np.zeros(1 << 16, np.uint8)
        self.freek = np.zeros(1 << 16, np.uint8)
        self.iso_next = np.full(1 << 16, -1, np.int64)
        self.qhead = np.full((64, NR_PAGE_ORDERS), -1, np.int64)
        self.qtail = np.full((64, NR_PAGE_ORDERS), -1, np.int64)
        self.slots = {}
        self.start_free = (np.zeros(0, np.uint8) if start_free is None
                           else np.ascontiguousarray(start_free, np.uint8))
        self.id_rpfn = np.full(1 << 16, -1, np.int64)
        self.id_order = np.full(1 << 16, -1, np.int8)
        self.ids_free = np.zeros(1 << 16, np.int32)
        self.mig_next = np.full(1 << 16, -1, np.int32)
        self.st = np.zeros(_ST_LEN, np.int64)
        self.st[_ST_QHEAD:] = -1
        self.cnt = np.zeros(len(PAIR_COUNTERS), np.int64)
        self._buf = None
        #: (id -> traced head pfn, id -> order) when the start snapshot ended
        self.at_start = None

    @property
    def ids_used(self) -> int:
        """Ids ever handed out (the id table's high-water mark)."""
        return int(self.st[_ST_NEXT])

    def set_after_start(self):
        self.st[_ST_AFTER_START] = 1
        sf = self.start_free
        if len(sf):
            self._grow_pfns(len(sf))
            self.freek[:len(sf)] = sf

    def _grow_pfns(self, top):
        if top <= len(self.cover):
            return
        size = max(top, 2 * len(self.cover))
        n = size - len(self.cover)
        self.cover = np.concatenate([self.cover, np.full(n, -1, np.int32)])
        self.touched = np.concatenate([self.touched, np.zeros(n, np.uint8)])
        self.freek = np.concatenate([self.freek, np.zeros(n, np.uint8)])
        self.iso_next = np.concatenate([self.iso_next, np.full(n, -1, np.int64)])

    def slot_of(self, pids: np.ndarray) -> np.ndarray:
        """Small per-task slot numbers for the isolated-free-page lists."""
        if not len(pids):
            return np.zeros(0, np.int64)
        u, inv = np.unique(pids, return_inverse=True)
        sl = np.array([self.slots.setdefault(int(x), len(self.slots)) for x in u], np.int64)
        if len(self.slots) > len(self.qhead):
            n = 2 * len(self.slots)
            self.qhead = np.concatenate([self.qhead, np.full((n, NR_PAGE_ORDERS), -1, np.int64)])
            self.qtail = np.concatenate([self.qtail, np.full((n, NR_PAGE_ORDERS), -1, np.int64)])
        return sl[inv]

    def _grow_ids(self):
        def grow(a, fill):
            return np.concatenate([a, np.full(len(a), fill, a.dtype)])
        self.id_rpfn = grow(self.id_rpfn, -1)
        self.id_order = grow(self.id_order, -1)
        self.ids_free = grow(self.ids_free, 0)
        self.mig_next = grow(self.mig_next, -1)

    def _bufs(self, n):
        if self._buf is None or len(self._buf[0]) < n:
            self._buf = (np.empty(n, np.int8), np.empty(n, np.int8), np.empty(n, np.int32),
                         np.empty(n, np.int32), np.empty(n, np.int32), np.empty(n, np.int64),
                         np.empty(n, np.int64))
        return self._buf

    def pair(self, ev: np.ndarray, ctx: np.ndarray, start_at=None):
        """ops (OP_DTYPE) for a batch's mm_page_alloc / mm_page_free rows ``ev``
        (``ctx``: compaction context per row; K_ISOLATE_FREE and
        K_COMPACTION_END rows may be mixed in), and the row each op came from.
        ``start_at``: the row before which the start snapshot ended."""
        n = len(ev)
        if n == 0:
            if start_at is not None:
                self.set_after_start()
                nxt = int(self.st[_ST_NEXT])
                self.at_start = (self.id_rpfn[:nxt].copy(), self.id_order[:nxt].copy())
            return np.empty(0, OP_DTYPE), np.empty(0, np.int64)
        pf = ev["pfn"]
        pf = pf[pf < _MAX_PFN]          # larger ones are counted as bad events
        top = (int(pf.max()) if len(pf) else 0) + (1 << MAX_PAGE_ORDER) + 1
        self._grow_pfns(top)
        slot = self.slot_of(ev["pid"])
        kind = np.ascontiguousarray(ev["kind"])
        pfn = np.ascontiguousarray(ev["pfn"])
        order = np.ascontiguousarray(ev["order"])
        gfp = ev["gfp"].astype(np.int64)
        cpu = np.ascontiguousarray(ev["cpu"])
        failed = np.ascontiguousarray(ev["failed"])
        ctx = np.ascontiguousarray(ctx, np.uint8)
        cap = n + 2 * _OPS_PER_EVENT
        bufs = self._bufs(cap)
        i, nops = 0, 0
        stops = [n] if start_at is None else [int(start_at), n]
        for k, i_end in enumerate(stops):
            if k == 1:
                self.set_after_start()
                nxt = int(self.st[_ST_NEXT])
                self.at_start = (self.id_rpfn[:nxt].copy(), self.id_order[:nxt].copy())
            while True:
                i, nops, status = _pair_events(
                    kind, pfn, order, gfp, cpu, failed, ctx, slot, i, i_end, self.cover,
                    self.touched, self.start_free, self.freek, self.iso_next, self.qhead,
                    self.qtail, self.id_rpfn, self.id_order, self.ids_free,
                    self.mig_next, self.st, self.cnt, self.lifo, *bufs, nops)
                if status == 0:
                    break
                if nops + _OPS_PER_EVENT > len(bufs[0]):
                    old = bufs
                    self._buf = None
                    bufs = self._bufs(2 * len(old[0]))
                    for a, b in zip(bufs, old):
                        a[:nops] = b[:nops]
                else:
                    self._grow_ids()
        ops = np.empty(nops, OP_DTYPE)
        for name, b in zip(("kind", "order", "cpu", "id", "aux", "gfp"), bufs):
            ops[name] = b[:nops]
        return ops, bufs[6][:nops].copy()


# ---------------------------------------------------------------- replay (compiled)

#: replay result counters
RES_NAMES = ("allocs", "alloc_ok", "frees", "frees_done", "frees_skipped", "splits_done",
             "splits_skipped", "unpaired_seen", "prefill_frees", "prefill_frees_skipped",
             "order_mismatch", "migrated_kept", "adopted", "adopt_skipped")
_R = {n: i for i, n in enumerate(RES_NAMES)}
_R_ALLOCS, _R_ALLOC_OK, _R_FREES, _R_FREES_DONE, _R_FREES_SKIPPED, _R_SPLITS_DONE, \
    _R_SPLITS_SKIPPED, _R_UNPAIRED, _R_PREFILL_FREES, _R_PREFILL_SKIPPED, _R_ORDER_MISMATCH, \
    _R_MIGRATED, _R_ADOPTED, _R_ADOPT_SKIPPED = range(14)


def _failure_log(fail_log, fail_by_order, kernel_failed) -> dict:
    """The failed requests with their time: ``sim`` the simulator's (the
    first FAIL_LOG_CAP; ``complete`` False past that), ``kernel`` the
    allocations the kernel failed in the replayed stream (which the
    simulator is not asked), each as [t_s, order, cpu]."""
    n = int(fail_by_order.sum())
    sim = fail_log[:min(n, len(fail_log))]
    k = np.concatenate(kernel_failed) if kernel_failed else np.empty(0, FAIL_DTYPE)
    return {"sim": [[int(t) / 1e9, int(o), int(c)] for t, o, c in sim.tolist()],
            "complete": n <= len(fail_log),
            "kernel": [[int(t) / 1e9, int(o), int(c)] for t, o, c in
                       zip(k["ts"].tolist(), k["order"].tolist(), k["cpu"].tolist())]}


@njit
def _free_obj(m, oid, cpu):
    """Free the simulated block of id ``oid``; False if it has none (its
    allocation failed).  The only caller of the inlined free path."""
    p = np.int64(m.obj_pfn[oid])
    if p < 0:
        return False, np.int64(0)
    m.obj_pfn[oid] = -1
    o = np.int64(m.pg_order[p])
    free_pages(m, p, o, cpu)
    return True, o


@njit
def _replay_ops(m, kind, order, gfp, cpu, oid, aux, ts, lo, hi, id_off, nprefill, owner, res,
                fail_by_order, fail_log, daemons):
    """Run ops [lo, hi) on machine state ``m``.  Stream ids are offset by
    ``id_off`` (pre-filled blocks take ids 0..nprefill-1); the k-th UNPAIRED
    op frees pre-filled id k when k < nprefill (unless it is a migration).
    A failed allocation counts in ``fail_by_order`` and, while there is room,
    takes row ``fail_by_order.sum()`` of ``fail_log`` (ts, order, cpu).
    ``daemons``: the clock follows the ops' trace times and the node's
    background threads run whenever due (spbsim.mm.background)."""
    ncpu = m.pcp.shape[1]
    for i in range(lo, hi):
        k = kind[i]
        c = np.int64(cpu[i]) % ncpu
        if daemons:
            now = ts[i]
            if now > m.cur[CUR_CLOCK]:
                m.cur[CUR_CLOCK] = now
            now = m.cur[CUR_CLOCK]
            if background_due(m, now):
                background(m, now, c)
        if k == OP_ALLOC:
            d = np.int64(oid[i]) + id_off
            o = np.int64(order[i])
            res[_R_ALLOCS] += 1
            p = alloc_pages_call(m, o, np.int64(gfp[i]), c, np.int64(owner))
            if p >= 0:
                m.obj_pfn[d] = p
                m.pg_obj[p] = d
                res[_R_ALLOC_OK] += 1
            else:
                m.obj_pfn[d] = -1
                n = fail_by_order.sum()
                if n < fail_log.shape[0]:
                    fail_log[n, 0] = ts[i]
                    fail_log[n, 1] = o
                    fail_log[n, 2] = c
                fail_by_order[o] += 1
        elif k == OP_FREE:
            res[_R_FREES] += 1
            ok, o = _free_obj(m, np.int64(oid[i]) + id_off, c)
            if ok:
                res[_R_FREES_DONE] += 1
                if o != order[i]:
                    res[_R_ORDER_MISMATCH] += 1
            else:
                res[_R_FREES_SKIPPED] += 1
        elif k == OP_SPLIT:
            parent = np.int64(aux[i]) + id_off
            d = np.int64(oid[i]) + id_off
            o = np.int64(order[i])
            j = np.int64(cpu[i])
            last = j == (1 << (np.int64(gfp[i]) - o)) - 1
            p = np.int64(m.obj_pfn[parent])
            if p < 0:
                m.obj_pfn[d] = -1
                if last:
                    res[_R_SPLITS_SKIPPED] += 1
                continue
            # split_page(): every piece becomes a block of its own with the
            # parent's flags (head, type, movability) and owner
            q = p + (j << o)
            m.pg_flags[q] = m.pg_flags[p]
            m.pg_owner[q] = m.pg_owner[p]
            m.pg_order[q] = o
            m.pg_obj[q] = d
            m.obj_pfn[d] = q
            if last:
                m.obj_pfn[parent] = -1
                res[_R_SPLITS_DONE] += 1
        elif k == OP_MIGRATED:
            res[_R_MIGRATED] += 1
        elif k == OP_ADOPT:
            d = np.int64(oid[i]) + id_off
            u = np.int64(aux[i])
            p = np.int64(m.obj_pfn[u]) if u < nprefill else np.int64(-1)
            if p >= 0:
                m.obj_pfn[u] = -1
                m.obj_pfn[d] = p
                m.pg_obj[p] = d
                res[_R_ADOPTED] += 1
            else:
                m.obj_pfn[d] = -1
                res[_R_ADOPT_SKIPPED] += 1
        else:       # OP_UNPAIRED
            u = res[_R_UNPAIRED]
            res[_R_UNPAIRED] += 1
            f = gfp[i]
            if u < nprefill and (f & UF_PRETRACE) != 0 and (f & UF_MIGRATED) == 0:
                ok, o = _free_obj(m, np.int64(u), c)
                if ok:
                    res[_R_PREFILL_FREES] += 1
                else:
                    res[_R_PREFILL_SKIPPED] += 1


# ---------------------------------------------------------------- the stream

def _isolate_range(rec):
    """(start pfn, end pfn, nr_taken or None) of an
    ``mm_compaction_isolate_freepages`` record; None for any other record."""
    if getattr(rec, "event", "") != _COMPACTION_ISOLATE_FREE:
        return None
    m = _RANGE_RE.search(rec.text)
    if m is None:
        return None
    taken = rec.args.get("nr_taken") if isinstance(rec.args, dict) else None
    a, b = (int(x, 0) for x in m.groups())
    return a, b, taken if isinstance(taken, int) else None


class _Chunk:
    """Ops of one trace batch and where snapshots cut them: ``cuts`` is a list
    of (op index, snapshot info dict) in stream order; ``kernel_failed``: the
    batch's allocations the kernel failed (page=0), as FAIL_DTYPE rows."""
    __slots__ = ("ops", "cuts", "kernel_failed", "nbytes")

    def __init__(self, ops, cuts, kernel_failed):
        self.ops, self.cuts, self.kernel_failed = ops, cuts, kernel_failed
        self.nbytes = ops.nbytes + kernel_failed.nbytes


class _Stream:
    """Reads a trace and yields :class:`_Chunk` s (pairing included).

    ``start_free``: per traced pfn, free in the start snapshot (or None).
    ``migrations``: "keep" (frees in compaction context are migration
    sources) or "free" (every free is a free)."""

    def __init__(self, trace_path, *, lenient, progress, max_lines, snapshot_every_s,
                 start_free=None, migrations="keep", daemons_every_s=None,
                 batch_size=1 << 16, pfn_ranges=None, trace_cpus=None, touch=None,
                 kswapd_scan=None, user_compactions=True, isolation_lifo=False):
        self.trace_path = trace_path
        self.isolation_lifo = isolation_lifo
        self.user_compactions = user_compactions
        #: the trace has mm_compaction_try_to_compact_pages events (else a
        #: direct compaction cannot be told from a compact_memory write)
        self.direct_traced = False
        #: pid -> batch row (-1: an earlier batch) of its direct compaction
        #: (mm_compaction_try_to_compact_pages) not yet ended by an mm_page_alloc
        self._direct = {}
        #: per user compaction (its cut's (ts, zone_start)): where its task
        #: freed the pages it migrated, as [[pages so far, cpu], ...] runs;
        #: pid -> the key of the one that task has under way
        self.user_cpus = {}
        self._user_open = {}
        self.kswapd_scan = kswapd_scan
        self.pfn_ranges = pfn_ranges
        self.trace_cpus = trace_cpus
        self.kw = dict(lenient=lenient, progress=progress, max_lines=max_lines,
                       batch_size=batch_size, keep_other=True)
        self.every = snapshot_every_s
        self.daemons_every = daemons_every_s
        self.start_free = start_free
        self.migrations = migrations
        self.pairer = None
        self.reader = None
        #: pass 1 of a start-state replay: first_touch() scan state
        #: {"seen", "start_free", "out", "n"} (spbsim.trace.start)
        self.touch = touch

    def _compaction_context(self, batch, sel, active, kc_cache):
        """Per selected row: did it run in compaction?  kcompactd, or a task
        between its mm_compaction_begin and mm_compaction_end."""
        ev = batch.events
        comm = ev["comm"][sel]
        for cid in range(len(kc_cache), len(batch.comms)):
            kc_cache.append(batch.comms[cid].startswith("kcompactd"))
        ctx = np.asarray(kc_cache, bool)[comm] if len(comm) else np.zeros(0, bool)
        pid = ev["pid"][sel]
        other = np.flatnonzero(ev["kind"] == OTHER_EVENT)
        bounds = []
        for j in other.tolist():
            rec = batch.records[int(ev["aux"][j])]
            name = getattr(rec, "event", "")
            if name == _COMPACTION_BEGIN or name == _COMPACTION_END:
                bounds.append((j, name == _COMPACTION_BEGIN, int(rec.pid)))
        lo = 0
        for j, begin, p in bounds + [(len(ev), None, None)]:
            hi = int(np.searchsorted(sel, j, "left"))
            if active and hi > lo:
                ctx[lo:hi] |= np.isin(pid[lo:hi], list(active))
            lo = hi
            if begin is True:
                active.add(p)
            elif begin is False:
                active.discard(p)
        return ctx

    def _user_compaction_cpus(self, batch, begins):
        """Where each user compaction's task ran: the cpu of each page it
        freed (migrate_folio_done() frees a migrated source on the cpu the
        task runs on) from its mm_compaction_begin to its mm_compaction_end,
        as runs in self.user_cpus.  ``begins``: this batch's user
        compaction cuts.  Returns a cut at each one's mm_compaction_end
        ({"user_compaction_end": zone start}): the write went on to the
        next zone, or returned, there."""
        ev = batch.events
        ends = []
        marks = []
        for j, info in begins:
            key = (info["ts"], info["user_compaction"])
            self.user_cpus[key] = []
            marks.append((j, 0, info["pid"], key))
        pids = set(self._user_open) | {m[2] for m in marks}
        if not pids:
            return ends
        for j in np.flatnonzero((ev["kind"] == OTHER_EVENT)
                                & np.isin(ev["pid"], list(pids))).tolist():
            if getattr(batch.records[int(ev["aux"][j])], "event", "") == _COMPACTION_END:
                marks.append((j, 1, int(ev["pid"][j]), None))
        marks.sort(key=lambda mk: (mk[0], mk[1]))
        frees = np.flatnonzero((ev["kind"] == MM_PAGE_FREE) & np.isin(ev["pid"], list(pids)))
        lo = 0
        for j, kind, pid, key in marks + [(len(ev), None, None, None)]:
            if self._user_open:
                for i in frees[np.searchsorted(frees, lo):np.searchsorted(frees, j)].tolist():
                    k = self._user_open.get(int(ev["pid"][i]))
                    if k is not None:
                        runs = self.user_cpus[k]
                        cpu, n = int(ev["cpu"][i]), 1 << max(int(ev["order"][i]), 0)
                        if runs and runs[-1][1] == cpu:
                            runs[-1][0] += n
                        else:
                            runs.append([(runs[-1][0] if runs else 0) + n, cpu])
            lo = j
            if kind == 0:
                self._user_open[pid] = key
            elif kind == 1:
                key = self._user_open.pop(pid, None)
                if key is not None:
                    ends.append((j, {"user_compaction_end": key[1], "begin_ts": key[0],
                                     "ts": float(ev["ts"][j])}))
        return ends

    def _user_compactions(self, batch):
        """Cuts where the workload asked for compaction: a write to
        /proc/sys/vm/compact_memory (or a node's ``compact``) runs
        compact_node() in the writer's context, one whole-zone sync
        compaction per zone; its mm_compaction_begin has migrate_pfn ==
        zone_start and mode=sync, in a task that is no kernel thread and has
        no direct compaction under way (a try_to_compact_pages not yet
        ended by the task's mm_page_alloc)."""
        ev = batch.events
        pend = self._direct
        allocs = None
        out = []
        for j in np.flatnonzero(ev["kind"] == OTHER_EVENT).tolist():
            rec = batch.records[int(ev["aux"][j])]
            name = getattr(rec, "event", "")
            if name == _TRY_TO_COMPACT:
                self.direct_traced = True
                order = rec.args.get("order") if isinstance(rec.args, dict) else None
                pend[rec.pid] = (j, order if isinstance(order, int) else -1)
                continue
            if name != _COMPACTION_BEGIN:
                continue
            if rec.pid in pend:
                if allocs is None:
                    allocs = np.flatnonzero(ev["kind"] == MM_PAGE_ALLOC)
                r0, o = pend[rec.pid]
                if not self._request_ended(ev, allocs[(allocs > r0) & (allocs < j)], rec.pid, o):
                    continue                    # a direct compaction's zone
                del pend[rec.pid]
            args = rec.args
            if rec.comm.startswith(_KTHREADS) or args.get("mode") != "sync":
                continue
            for key in ("zone_start", "migrate_pfn"):
                v = args.get(key)
                if not isinstance(v, int) and not self.kw["lenient"]:
                    from spbsim.trace.ftrace import TraceFormatError
                    raise TraceFormatError(os.fspath(self.trace_path), int(rec.line),
                                           _COMPACTION_BEGIN, key, "missing" if v is None
                                           else f"expected integer, got {v!r}")
            zs = args.get("zone_start")
            if not isinstance(zs, int) or args.get("migrate_pfn") != zs:
                continue
            out.append((j, {"user_compaction": zs, "cpu": int(rec.cpu), "ts": float(rec.ts),
                            "pid": int(rec.pid)}))
        if pend:
            if allocs is None:
                allocs = np.flatnonzero(ev["kind"] == MM_PAGE_ALLOC)
            for p, (r0, o) in list(pend.items()):
                if self._request_ended(ev, allocs[allocs > r0], p, o):
                    del pend[p]
                else:
                    pend[p] = (-1, o)
        return out

    @staticmethod
    def _request_ended(ev, rows, pid, order):
        """Did the task's allocation that ran the direct compaction end among
        ``rows`` (mm_page_alloc rows): one by ``pid`` of the compaction's
        ``order`` (an allocation of another order under that pid, e.g. from
        an interrupt, does not end it; -1: any order)."""
        hit = ev["pid"][rows] == pid
        if order >= 0:
            hit &= ev["order"][rows] == order
        return bool(np.any(hit))

    @staticmethod
    def _buddy_rows(batch):
        """Rows of mm_page_pcpu_drain and mm_page_alloc_zone_locked: where
        pages enter and leave the buddy, which the pairing needs to know
        which free pages a compaction could isolate, and which pages the
        allocator held during the trace (their frees are no pre-trace
        memory)."""
        kinds = batch.events["kind"]
        return np.flatnonzero((kinds == MM_PAGE_PCPU_DRAIN) | (kinds == MM_PAGE_ALLOC_ZONE_LOCKED))

    @staticmethod
    def _compaction_rows(batch):
        """Rows of mm_compaction_isolate_freepages and mm_compaction_end."""
        ev = batch.events
        other = np.flatnonzero(ev["kind"] == OTHER_EVENT)
        keep = [j for j in other.tolist()
                if getattr(batch.records[int(ev["aux"][j])], "event", "")
                in (_COMPACTION_ISOLATE_FREE, _COMPACTION_END)]
        return np.asarray(keep, np.int64)

    @staticmethod
    def _compaction_events(batch, sel):
        """ev[sel] with the compaction rows turned into K_ISOLATE_FREE
        (pfn = range start, gfp = range end | nr_taken << 32; the range's end
        is where isolate_freepages_block() stopped) and K_COMPACTION_END rows."""
        ev = batch.events
        rows = ev[sel].copy()
        for r in np.flatnonzero(ev["kind"][sel] == OTHER_EVENT).tolist():
            rec = batch.records[int(ev["aux"][sel[r]])]
            if rec.event == _COMPACTION_END:
                rows["kind"][r] = K_COMPACTION_END
                continue
            rng = _isolate_range(rec)
            if rng is None or rng[2] is None or rng[2] < 0:
                continue                # stays OTHER_EVENT: ignored by the pairing
            a, b, taken = rng
            rows["kind"][r] = K_ISOLATE_FREE
            rows["pfn"][r] = a
            rows["order"][r] = 0
            rows["gfp"][r] = (min(b, 0xFFFFFFFF)) | (min(taken, 1 << 30) << 32)
        return rows

    def _first_touch(self, ev, lo, records=()):
        """spbsim.trace.start.first_touch (and first_types) over rows [lo,
        len(ev)) of a batch; ``records``: the batch's records."""
        from spbsim.trace.start import first_touch
        t = self.touch
        top = int(ev["pfn"][ev["pfn"] < _MAX_PFN].max(initial=0)) + (1 << MAX_PAGE_ORDER) + 1
        if top > len(t["seen"]):
            t["seen"] = np.concatenate([t["seen"], np.zeros(top - len(t["seen"]), np.uint8)])
        if t["n"] + len(ev) > len(t["out"]):
            t["out"] = np.concatenate([t["out"], np.zeros((len(ev) + len(t["out"]), 6),
                                                          np.int64)])
        t["n"] = first_touch(np.ascontiguousarray(ev["kind"]), np.ascontiguousarray(ev["pfn"]),
                             np.ascontiguousarray(ev["order"]),
                             np.ascontiguousarray(ev["migratetype"]),
                             np.ascontiguousarray(ev["cpu"]), np.ascontiguousarray(ev["failed"]),
                             np.ascontiguousarray(ev["line"]), lo, len(ev), t["seen"],
                             t["start_free"], t["out"], t["n"])
        if t.get("rev") is not None:
            from spbsim.trace.start import first_types
            pfn = np.array(ev["pfn"], np.int64)
            iso_end = np.full(len(ev), -1, np.int64)
            for j in np.flatnonzero(ev["kind"] == OTHER_EVENT).tolist():
                rng = _isolate_range(records[int(ev["aux"][j])])
                # __isolate_free_page() retypes only for a buddy of
                # order >= pageblock_order - 1: fewer pages taken, none was
                if rng is not None and (rng[2] is None or rng[2] >= 1 << (pageblock_order - 1)):
                    pfn[j], iso_end[j] = rng[0], rng[1]
            first_types(np.ascontiguousarray(ev["kind"]), pfn,
                        np.ascontiguousarray(ev["order"]), np.ascontiguousarray(ev["migratetype"]),
                        np.ascontiguousarray(ev["fallback_order"]),
                        np.ascontiguousarray(ev["fallback_migratetype"]),
                        np.ascontiguousarray(ev["cpu"]), iso_end, lo, len(ev), t["rev"],
                        t["rev_last"])

    def chunks(self):
        self.pairer = pairer = _Pairer(self.start_free, self.isolation_lifo)
        self.reader = reader = TraceReader(self.trace_path, **self.kw)
        every = self.every
        next_tick = next_daemon = None
        active, kc_cache = set(), []
        begins = {}
        start_seen = False
        for batch in reader.batches():
            ev = batch.events
            if not len(ev):
                continue
            kinds = ev["kind"]
            refuse_bad_events(ev, self.trace_path, self.pfn_ranges, self.trace_cpus)
            if self.kswapd_scan is not None:
                self.kswapd_scan.add(batch)
            sel = np.flatnonzero((kinds == MM_PAGE_ALLOC) | (kinds == MM_PAGE_FREE))
            cuts = []          # (event index in batch, info)
            start_at = None
            start_row = 0 if start_seen else None
            for j in np.flatnonzero(kinds == TRACING_MARK_WRITE).tolist():
                rec = batch.records[int(ev["aux"][j])]
                if not isinstance(rec, TracingMarkWrite):
                    continue
                mb = _MARK_BEGIN_RE.search(rec.text)
                if mb:
                    begins[int(mb.group(1))] = float(rec.ts)
                mk = _MARK_END_RE.search(rec.text)
                if mk:
                    info = {"seq": int(mk.group(1)), "tag": mk.group(2),
                            "ts": float(rec.ts), "line": int(rec.line),
                            "ts_begin": begins.get(int(mk.group(1)))}
                    cuts.append((j, info))
                    if info["tag"] == "start" and not start_seen:
                        start_seen = True
                        start_at = int(np.searchsorted(sel, j, "left"))
                        start_row = j
            if self.user_compactions:
                uc = self._user_compactions(batch)
                cuts.extend(uc + self._user_compaction_cpus(batch, uc))
            rows = ev[sel]
            # refill and drain lines, in either mode: they tell which pages
            # the allocator held during the trace (never pre-trace memory)
            extra = self._buddy_rows(batch)
            if self.migrations == "keep":
                extra = np.concatenate([self._compaction_rows(batch), extra])
            if len(extra):
                sel = np.sort(np.concatenate([sel, extra]))
                if start_at is not None:
                    start_at = int(np.searchsorted(sel, start_row, "left"))
                rows = self._compaction_events(batch, sel)
            if self.migrations == "keep":
                ctx = self._compaction_context(batch, sel, active, kc_cache)
            else:
                ctx = np.zeros(len(sel), bool)
            ops, op_ev = pairer.pair(rows, ctx, start_at)
            tsm = np.maximum.accumulate(np.nan_to_num(ev["ts"], nan=-np.inf))
            kf = sel[(rows["kind"] == MM_PAGE_ALLOC) & rows["failed"]]
            kernel_failed = np.empty(len(kf), FAIL_DTYPE)
            kernel_failed["line"] = ev["line"][kf]
            kernel_failed["ts"] = (np.maximum(tsm[kf], 0) * 1e9).astype(np.int64)
            kernel_failed["order"] = ev["order"][kf]
            kernel_failed["cpu"] = ev["cpu"][kf]
            ops["ts"] = (np.maximum(tsm[sel[op_ev]], 0) * 1e9).astype(np.int64)
            if self.touch is not None and start_row is not None:
                self._first_touch(ev, start_row, batch.records)
            if every or self.daemons_every:
                if every:
                    if next_tick is None:
                        next_tick = (np.floor(tsm[0] / every) + 1) * every
                    while tsm[-1] >= next_tick:
                        j = int(np.searchsorted(tsm, next_tick, "left"))
                        cuts.append((j, {"seq": None, "tag": f"t={next_tick:g}s",
                                         "ts": float(next_tick), "line": int(ev["line"][j])}))
                        next_tick += every
                de = self.daemons_every
                if de:
                    if next_daemon is None:
                        next_daemon = (np.floor(tsm[0] / de) + 1) * de
                    while tsm[-1] >= next_daemon:
                        j = int(np.searchsorted(tsm, next_daemon, "left"))
                        cuts.append((j, {"daemons": float(next_daemon)}))
                        next_daemon += de
            # a cut means "before row j"; a user compaction begins at row j,
            # after any snapshot or daemon cut of the same row
            cuts.sort(key=lambda c: (c[0], "user_compaction" in c[1]))
            op_cuts = []
            for j, info in cuts:
                # ops of the events before row j: the events selected before j
                nsel = int(np.searchsorted(sel, j, "left"))
                op_cuts.append((int(np.searchsorted(op_ev, nsel, "left")), info))
            yield _Chunk(ops, op_cuts, kernel_failed)


def _follow_kswapd(machine, windows, now):
    """From ``now`` on, ZONE_RECLAIM_ACTIVE follows the recorded kswapd's
    reclaim windows (the model's kswapd leaves the flag alone)."""
    machine.mem.cfg[CFG["reclaim_active_external"]] = 1
    update_reclaim_active(machine.mem, _TOP_ZONE, active_at(windows, int(now)))
    machine.mem.node[NODE["kswapd_next_wake_ns"]] = next_wake(windows, int(now))


def _kswapd_cut(machine, info):
    """A window cut: ZONE_RECLAIM_ACTIVE on or off, and when the recorded
    kswapd wakes next (proactive compaction stops there: kswapd_woke_by)."""
    update_reclaim_active(machine.mem, _TOP_ZONE, info["reclaim_active"])
    machine.mem.node[NODE["kswapd_next_wake_ns"]] = info["next_wake"]


class _UserCompaction:
    """A workload's write to compact_memory, replayed as the user request it
    is: the simulator compacts the zone that began at ``info["user_compaction"]``
    its own way (compact_node(): order -1, sync, whole zone, skip hints
    ignored); the kernel's migrations stay the kernel's.  The run takes the
    [SIM] time of its scans and migrations, as kcompactd's does
    (compaction_scan_ns, compaction_migrate_ns): at each later cut of the
    stream it goes on up to the cut's time, so a snapshot read meanwhile sees
    it part done.  It ends no later than the recorded one (the write goes
    on to the next zone, or returns, and the stream's later events by its
    task presuppose that): that zone's recorded mm_compaction_end, the
    next zone's begin and the end of the stream finish it.  ``user_cpus``
    (_Stream.user_cpus): the cpus its task ran on, as the recording shows
    them: the simulator frees its n-th migrated source where the task
    freed its n-th (the first CC_CPUS_MAX runs; the last cpu after them)."""

    def __init__(self, machine, stats):
        self.machine = machine
        self.stats = stats
        self.zone = None
        self.args = None
        self.t0 = 0
        self.key = None

    def begin(self, info, user_cpus=None):
        """A zone's compaction begins: the run under way (moved on to this
        cut already) ends first."""
        from spbsim.mm.state import CC_CPUS_MAX
        ts = round(info["ts"] * 1e9)
        self.finish()
        machine = self.machine
        m = machine.mem
        zs = int(info["user_compaction"])
        runs = (user_cpus or {}).get((info["ts"], zs)) or []
        cpus = [(n, c % machine.cpus) for n, c in runs[:CC_CPUS_MAX]] or None
        for z in machine.populated_zones():
            if m.zone_start[z] <= zs < m.zone_end[z]:
                self.stats["zones"] += 1
                self.zone, self.args = z, (info["cpu"] % machine.cpus, cpus)
                self.key = (info["ts"], zs)
                self.t0 = ts
                self.advance(ts)
                return
        self.stats["unmatched"] += 1

    def advance(self, now_ns):
        """Go on up to ``now_ns`` (ns of the trace's clock)."""
        if self.zone is not None and now_ns is not None:
            if self.machine.compact_memory_zone(self.zone, *self.args,
                                                budget_ns=max(0, int(now_ns) - self.t0)):
                self.zone = None

    def end(self, info):
        """The recorded compaction of this zone ended: the write went on to
        the next zone, or returned, and the stream's later events by its
        task presuppose it, so the simulator's run ends there too [SIM]."""
        if self.key == (info["begin_ts"], info["user_compaction_end"]):
            self.finish()

    def finish(self):
        if self.zone is not None:
            self.machine.compact_memory_zone(self.zone, *self.args)
            self.stats["cut_short"] += 1
            self.zone = None


def _cut_ns(info, ops, cut):
    """The trace time of a cut: its own (a daemon tick's), or its last op's."""
    t = info.get("ts", info.get("daemons")) if info is not None else None
    if t is not None:
        return round(t * 1e9)
    return int(ops["ts"][cut - 1]) if cut > 0 else None


def _kswapd_nap(machine, info, naps):
    """The recorded kswapd's nap (kswapd_try_to_sleep()): the skip bits a
    direct compaction asked kswapd to clear (reset_isolation_suitable()),
    and wakeup_kcompactd() for the order kswapd asked kcompactd for
    (KswapdScan.naps); a kcompactd wake-up kswapd traced outside a nap only
    wakes kcompactd.  Whether kcompactd runs, where and what it migrates
    stay the simulator's (kcompactd_node_suitable(), kcompactd_do_work())."""
    if info["nap"]:
        reset_isolation_suitable(machine.mem)
    order = info["kcompactd_wake"]
    wakeup_kcompactd(machine.mem, np.int64(order), np.int64(_TOP_ZONE))
    naps.kcompactd_wakes += order > 0


def _with_window_cuts(cuts, windows, ts, naps=None):
    """A chunk's cuts plus its kswapd-window cuts ({"reclaim_active": bool})
    and, from the NapCursor ``naps``, the recorded kswapd's naps
    ({"kcompactd_wake": order})."""
    if windows is None:
        return cuts
    extra = window_cuts(windows, ts) + (naps.cuts(ts) if naps is not None else [])
    return sorted(cuts + extra, key=lambda c: c[0])


def _windows_summary(windows, naps=None):
    """How many kswapd reclaim windows a replay followed, their total ms, and
    how many of the recorded kswapd's naps woke kcompactd for an order."""
    if windows is None:
        return None
    out = {"n": int(len(windows)),
           "ms": round(float((windows[:, 1] - windows[:, 0]).sum()) / 1e6, 1)}
    if naps is not None:
        out["naps"] = int(len(naps.naps))
        out["kcompactd_wakes"] = naps.kcompactd_wakes
    return out


def _isolation_lifo(machine_kwargs) -> bool:
    """Does the kernel modelled use its isolated free pages last-isolated
    first (v6.1's single cc->freepages list, split_map_pages())?"""
    from spbsim.machine import Machine
    if isinstance(machine_kwargs, Machine):
        return int(machine_kwargs.mem.cfg[CFG["version"]]) == KV_6_1
    return KERNEL_VERSIONS.get(str((machine_kwargs or {}).get("version", "recent"))) == KV_6_1


def _checksum_update(h, ops):
    h.update(np.ascontiguousarray(ops).tobytes())


def request_stream(trace_path, *, lenient=False, max_lines=None, start_free=None,
                   migrations="keep", version="recent"):
    """The request stream of a trace as one OP_DTYPE array (for inspection and
    tests; holds the whole stream in memory), plus the pairing counters.
    ``version``: the kernel whose compaction used the isolated free pages
    (Machine's ``version``)."""
    s = _Stream(trace_path, lenient=lenient, progress=False, max_lines=max_lines,
                snapshot_every_s=None, start_free=start_free, migrations=migrations,
                isolation_lifo=_isolation_lifo({"version": version}))
    parts = [c.ops for c in s.chunks()]
    ops = np.concatenate(parts) if parts else np.empty(0, OP_DTYPE)
    return ops, {n: int(v) for n, v in zip(PAIR_COUNTERS, s.pairer.cnt)}


# ---------------------------------------------------------------- prefill

def _find_snapshots(trace_path, snapshots_dir):
    if snapshots_dir is not None:
        d = Path(snapshots_dir)
        return d if d.is_dir() else None
    d = Path(trace_path).resolve().parent / "snapshots"
    return d if d.is_dir() else None


def _start_kpageflags(trace_path, snapshots_dir):
    """The start snapshot's kpageflags dump beside the trace, or None."""
    from spbsim.trace.replay import read_index
    d = _find_snapshots(trace_path, snapshots_dir)
    if d is None:
        return None
    for s in read_index(d):
        if s["tag"] == "start":
            for name in ("kpageflags.bin.xz", "kpageflags.bin.zst", "kpageflags.bin.gz",
                         "kpageflags.bin", "kpageflags"):
                if (s["dir"] / name).exists():
                    return s["dir"] / name
    return None


def _start_classes(mode, trace_path, snapshots_dir):
    """(page classes of the start snapshot or None, description)."""
    if mode == "movable":
        return None, "movable"
    path = _start_kpageflags(trace_path, snapshots_dir)
    if path is None:
        if mode == "kpageflags":
            raise SpbsimError(f"prefill='kpageflags': no start snapshot with kpageflags "
                              f"beside {trace_path} (pass snapshots_dir=)")
        return None, "movable (no start kpageflags)"
    from spbsim.trace.kpageflags import load_kpageflags
    from spbsim.trace.replay import page_classes
    return page_classes(load_kpageflags(path)), f"kpageflags ({path})"


def _prefill_gfps(cls, rpfn):
    """gfp per pre-filled block from the start snapshot's page classes."""
    from spbsim.trace.replay import PC_FREE, PC_MOVABLE, PC_NOPAGE, PC_RESERVED, PC_SLAB
    n = len(rpfn)
    gfps = np.full(n, GFP_HIGHUSER_MOVABLE, np.int64)
    if cls is None or n == 0:
        return gfps
    inside = rpfn < len(cls)
    c = np.full(n, PC_FREE, np.int8)
    c[inside] = cls[rpfn[inside]]
    kernel = ~np.isin(c, [PC_FREE, PC_MOVABLE, PC_RESERVED, PC_NOPAGE])
    gfps[kernel] = GFP_KERNEL
    gfps[c == PC_SLAB] = GFP_KERNEL | __GFP_RECLAIMABLE
    return gfps


#: owner of the blocks that stand for memory in use at the start and never freed
OWNER_FILL = 5


def _fill_pages(machine, gfps, owner, chunk=4096):
    """Allocate one order-0 page per gfp through Machine.run_ops (stops after
    a chunk with a failure); returns how many were allocated.  Never freed."""
    got = 0
    for lo in range(0, len(gfps), chunk):
        g = gfps[lo:lo + chunk]
        out = machine.run_ops(np.zeros(len(g), np.int64), g,
                              cpu=np.arange(lo, lo + len(g)) % machine.cpus, owner=owner)
        got += int((out >= 0).sum())
        if (out < 0).any():
            break
    return got


def _real_start(trace_path, snapshots_dir):
    """The start snapshot's {zone: free pages + pcp pages}, or None."""
    from spbsim.observe import procfs
    from spbsim.trace.replay import read_index
    d = _find_snapshots(trace_path, snapshots_dir)
    if d is None:
        return None
    for snap in read_index(d):
        if snap["tag"] != "start":
            continue
        files = procfs.read_snapshot(snap["dir"])
        if "buddyinfo" not in files:
            return None
        names, nr = files["buddyinfo"]
        pages, _ = free_pages_blocks_ge(nr)
        out = {n: int(pages[i]) for i, n in enumerate(names)}
        for n, zi in files.get("zoneinfo", {}).items():
            if n in out and zi.get("pagesets"):
                out[n] += sum(int(p["count"]) for p in zi["pagesets"])
        return out
    return None


def _interleave(counts):
    """Indices 0..len(counts)-1, each repeated counts[k] times, spread evenly."""
    keys, pos = [], []
    for k, n in enumerate(counts):
        if n > 0:
            keys.append(np.full(n, k, np.int64))
            pos.append((np.arange(n) + 0.5) / n)
    if not keys:
        return np.empty(0, np.int64)
    keys, pos = np.concatenate(keys), np.concatenate(pos)
    return keys[np.argsort(pos, kind="stable")]


def _zone_pages(m, z, s, e):
    """Per pfn in [s, e): the simulated zone ``z`` has a page there (not a
    hole).  Real pages the simulated zone lacks (memory a kernel with
    deferred struct page init had not initialised, kpageflags 0) must not
    weigh in the fill's gfp mix."""
    if e <= s:
        return np.zeros(0, bool)
    pb = np.arange(s >> pageblock_order, ((e - 1) >> pageblock_order) + 1)
    ok = np.asarray(m.pb_zone)[pb] == z
    return np.repeat(ok, 1 << pageblock_order)[s - (pb[0] << pageblock_order):][:e - s]


def _fill_to_start(machine, real, cls, touched):
    """Allocate never-freed order-0 pages zone by zone (highest first) until
    the simulated free + per-cpu pages match the real start snapshot's.  The
    gfp mix of each zone follows the classes of the real pages of that pfn
    range that were in use at the start and that no traced event touched
    (movable -> GFP_HIGHUSER_MOVABLE, slab -> GFP_KERNEL|__GFP_RECLAIMABLE,
    others -> GFP_KERNEL), restricted to the zone (__GFP_DMA32 / __GFP_DMA)."""
    from spbsim.mm.const import ZONE_DMA, ZONE_DMA32
    from spbsim.mm.gfp import __GFP_DMA, __GFP_DMA32
    from spbsim.trace.replay import PC_FREE, PC_MOVABLE, PC_NOPAGE, PC_RESERVED, PC_SLAB
    m = machine.mem
    out = {}
    for z in reversed(machine.populated_zones()):
        name = machine.zone_names()[machine.populated_zones().index(z)]
        if name not in real:
            continue
        sim = int((m.nr_free[z] << np.arange(NR_PAGE_ORDERS)).sum()) \
            + int(m.pcp[z, :, PCP_COUNT].sum())
        need = sim - real[name]
        entry = {"sim_before": sim, "real": real[name], "pages": 0, "by_gfp": {}}
        out[name] = entry
        if need <= 0:
            continue
        zmod = __GFP_DMA if z == ZONE_DMA else __GFP_DMA32 if z == ZONE_DMA32 else 0
        gfp_of = [GFP_HIGHUSER_MOVABLE, GFP_KERNEL | __GFP_RECLAIMABLE, GFP_KERNEL]
        share = np.array([0, 0, 1], np.int64)
        if cls is not None:
            s, e = int(m.zone_start[z]), max(min(int(m.zone_end[z]), len(cls)), 0)
            c = cls[s:e]
            t = np.zeros(len(c), np.uint8)
            k = max(min(len(touched), e) - s, 0)
            t[:k] = touched[s:s + k]
            perm = c[(t == 0) & _zone_pages(m, z, s, e)
                     & ~np.isin(c, [PC_FREE, PC_NOPAGE, PC_RESERVED])]
            mov = int((perm == PC_MOVABLE).sum())
            slab = int((perm == PC_SLAB).sum())
            share = np.array([mov, slab, len(perm) - mov - slab], np.int64)
        if share.sum() <= 0:
            share = np.array([0, 0, 1], np.int64)
        counts = share * need // share.sum()
        counts[np.argmax(share)] += need - counts.sum()
        gfps = np.array(gfp_of, np.int64)[_interleave(counts)] | zmod
        got = _fill_pages(machine, gfps, OWNER_FILL)
        entry["pages"] = got
        for g, n in zip(gfp_of, counts.tolist()):
            if n:
                entry["by_gfp"][format_gfp(g | zmod)] = n
    return out


# ---------------------------------------------------------------- helpers

def zone_pfn_ranges(machine_kwargs):
    """[(zone name, first pfn, end pfn)] of the populated zones of the machine
    that ``machine_kwargs`` (a dict of Machine parameters, or a Machine)
    describes: the pfns a trace replayed on it may name."""
    from spbsim.machine import Machine
    from spbsim.mm.const import MAX_NR_ZONES, ZONE_NAMES
    from spbsim.mm.geometry import build_geometry
    if isinstance(machine_kwargs, Machine):
        g = machine_kwargs.geometry
    else:
        kw = dict(machine_kwargs or {})
        g = build_geometry(**{k: kw[k] for k in ("memory", "low_memory", "kernel_image",
                                                  "memmap_bytes_per_page", "firmware_reserved",
                                                  "holes", "reserved") if k in kw})
    return [(ZONE_NAMES[z], int(g.zone_start[z]), int(g.zone_end[z]))
            for z in range(MAX_NR_ZONES) if g.zone_end[z] > g.zone_start[z]]


def refuse_bad_events(ev, trace_path, pfn_ranges=None, cpus=None):
    """Raise TraceFormatError (file:line: event: field) for the first kmem row
    of a batch whose order is above MAX_PAGE_ORDER or, with ``pfn_ranges``
    [(zone, first pfn, end pfn)], whose pages lie outside every zone, or,
    with ``cpus``, that ran on a CPU >= cpus.  A failed allocation (no page)
    has no pfn to check; its order and CPU are (__alloc_pages() returns
    before its tracepoint for an order above MAX_PAGE_ORDER)."""
    from spbsim.trace.ftrace import KIND_NAMES, KMEM_KINDS, TraceFormatError
    kinds = ev["kind"]
    rows = np.flatnonzero(kinds <= max(KMEM_KINDS))
    if not len(rows):
        return
    if cpus is not None:
        over = np.flatnonzero(ev["cpu"][rows] >= cpus)
        if len(over):
            j = int(rows[over[0]])
            raise TraceFormatError(os.fspath(trace_path), int(ev["line"][j]),
                                   KIND_NAMES[int(kinds[j])], "cpu",
                                   f"CPU {int(ev['cpu'][j])}, but the machine has {cpus} "
                                   f"CPUs: a trace from another machine?")
    order = ev["order"][rows].astype(np.int64)
    bad = np.flatnonzero(order > MAX_PAGE_ORDER)
    first = int(rows[bad[0]]) if len(bad) else None
    paged = ~ev["failed"][rows]
    if pfn_ranges and paged.any():
        rows, order = rows[paged], order[paged]
        starts = np.array([r[1] for r in pfn_ranges], np.int64)
        ends = np.array([r[2] for r in pfn_ranges], np.int64)
        o = np.clip(order, 0, MAX_PAGE_ORDER)
        pfn = ev["pfn"][rows]
        k = np.argsort(starts)
        i = np.searchsorted(starts[k], pfn, "right") - 1
        ok = (i >= 0) & (pfn + (np.int64(1) << o) <= ends[k][np.maximum(i, 0)])
        out = np.flatnonzero(~ok)
        if len(out) and (first is None or rows[out[0]] < first):
            j = int(rows[out[0]])
            zones = ", ".join(f"{n} [{a:#x}, {b:#x})" for n, a, b in pfn_ranges)
            raise TraceFormatError(os.fspath(trace_path), int(ev["line"][j]),
                                   KIND_NAMES[int(kinds[j])], "pfn",
                                   f"pfn {int(ev['pfn'][j]):#x} order {int(ev['order'][j])} "
                                   f"lies outside every zone of the machine ({zones}): a trace "
                                   f"from another machine (size)?")
    if first is not None:
        raise TraceFormatError(os.fspath(trace_path), int(ev["line"][first]),
                               KIND_NAMES[int(kinds[first])], "order",
                               f"order {int(ev['order'][first])} is above MAX_PAGE_ORDER "
                               f"{MAX_PAGE_ORDER}")


def free_pages_blocks_ge(nr_free, order=pageblock_order):
    """(free pages, free 2^order units in buddies of order >= ``order``) per row
    of an nr_free [zone, order] table."""
    nr_free = np.asarray(nr_free, np.int64)
    orders = np.arange(nr_free.shape[1])
    pages = (nr_free << orders).sum(1)
    hi = orders >= order
    blocks = (nr_free[:, hi] << (orders[hi] - order)).sum(1)
    return pages, blocks


def _snapshot(machine, info, fail_by_order=None, detail=False):
    """The simulated state at a snapshot: buddyinfo text; per zone free pages,
    free 2 MiB units in buddies of order >= 9, per-cpu list pages, nr_free by
    order and pageblocks per migratetype ("Number of blocks type"); the
    traced allocations the simulator failed so far, by order; vmstat
    oom_kill.  ``detail``: also the whole vmstat and the simulated /proc
    files (buddyinfo, pagetypeinfo, zoneinfo, vmstat)."""
    from spbsim.mm.const import MIGRATETYPE_NAMES
    zs = machine.populated_zones()
    nr = machine.mem.nr_free[zs]
    pages, blocks = free_pages_blocks_ge(nr)
    out = dict(info)
    out["buddyinfo"] = machine.buddyinfo()
    pcp = machine.mem.pcp[zs, :, PCP_COUNT].sum(1)
    bc = machine.block_counts()
    out["zones"] = {name: {"free_pages": int(pages[i]), "blocks_ge9": int(blocks[i]),
                           "pcp_pages": int(pcp[i]), "nr_free": nr[i].tolist(),
                           "pageblocks": {mt: int(bc[i, t]) for t, mt in
                                          enumerate(MIGRATETYPE_NAMES)}}
                    for i, name in enumerate(machine.zone_names())}
    out["sim_alloc_failures"] = int(machine.mem.sim[_SIM_FAIL])
    if fail_by_order is not None:
        out["sim_failures_by_order"] = [int(x) for x in fail_by_order]
    vm = machine.vmstat_counters()
    out["oom_kill"] = int(vm.get("oom_kill", 0))
    if detail:
        out["vmstat"] = vm
        out["proc"] = {"buddyinfo": out["buddyinfo"], "pagetypeinfo": machine.pagetypeinfo(),
                       "zoneinfo": machine.zoneinfo(), "vmstat": machine.vmstat()}
    return out


def _ensure_obj_capacity(machine, n):
    """The machine's object table (id -> simulated pfn) must hold ``n`` ids."""
    cur = machine.mem.obj_pfn
    if len(cur) >= n:
        return
    new = np.full(max(n, 2 * len(cur)), -1, np.int32)
    new[:len(cur)] = cur
    pc = np.full(len(new), -1, np.int32)
    pc[:len(cur)] = machine.mem.obj_pc
    machine.mem = machine.mem._replace(obj_pfn=new, obj_pc=pc)


def _stream_holds_reclaim(machine):
    """The stream holds the kernel's reclaim (its frees): a direct reclaim
    counts the stream's frees since the last one as its progress and kswapd
    only balances (spbsim.mm.vmscan, ``reclaim_external``), as in the
    start-state replay."""
    machine.mem.cfg[CFG["reclaim_external"]] = 1


def _make_machine(machine_kwargs, obj_capacity):
    from spbsim.machine import Machine
    if isinstance(machine_kwargs, Machine):
        _ensure_obj_capacity(machine_kwargs, obj_capacity)
        return machine_kwargs
    kw = dict(machine_kwargs or {})
    kw["obj_capacity"] = max(int(kw.get("obj_capacity", 1)), int(obj_capacity))
    kw.setdefault("piece_capacity", 0)      # replays never split blocks
    return Machine(**kw)


# ---------------------------------------------------------------- the API

def replay_whatif(trace_path, machine_kwargs, *, prefill=True, lenient=False, progress=False,
                  max_lines=None, snapshot_every_s=None, snapshots_dir=None,
                  migrations="keep", fill="start", daemons_every_s=None,
                  cache_bytes=512 << 20, check=False, pfn_ranges="machine",
                  snapshot_detail=False, trace_cpus=None, start="auto", daemons=None,
                  manifest=None, kswapd_windows=True, kswapd_gap_ms=KSWAPD_GAP_MS,
                  start_seed=None, start_types="trace", user_compactions=True) -> dict:
    """Replay a trace's request stream through a fresh simulated machine.

    ``machine_kwargs``: Machine parameters (dict), or a Machine to use as is.
    ``prefill``: True / "auto", "kpageflags", "movable" or False (module
    docstring).  ``lenient``, ``progress``, ``max_lines``: as TraceReader.
    ``snapshot_every_s``: also record the simulated buddyinfo every that many
    seconds of trace time.  ``snapshots_dir``: where the start snapshot is
    (default: ``snapshots/`` beside the trace).  ``migrations``: "keep"
    (frees by compaction are migrations, see the module docstring) or "free".
    ``fill``: "start" (with pre-fill and a start snapshot: at its end marker,
    allocate never-freed pages until the simulated free memory matches it,
    see the module docstring) or None.  ``daemons_every_s``: run the simulated
    kswapd/kcompactd/proactive compaction (spbsim.engine.step.background)
    every that many seconds of trace time as well (default None: only as
    ``daemons`` has them).  ``daemons`` (default True): the clock follows
    the trace and the simulated kswapd (which only balances: the stream
    holds the kernel's reclaim), kcompactd and proactive compaction run
    whenever due; False: none of them.
    ``cache_bytes``: with pre-fill, keep the first pass's ops in memory up to
    this size instead of parsing the trace twice.  ``check``: run the
    DEBUG_VM checker at every snapshot and at the end (raises on a violation).
    ``pfn_ranges``: [(zone, first pfn, end pfn)] the trace's pages must lie in
    (default "machine": the simulated machine's zones; None: not checked); a
    kmem line outside them, or with an order above MAX_PAGE_ORDER, raises
    TraceFormatError naming the file, line and field; so does one on a CPU
    >= ``trace_cpus`` (default None: not checked).  ``snapshot_detail``:
    snapshots also hold the whole vmstat and the simulated /proc files.
    ``kswapd_windows``: the zones are ZONE_RECLAIM_ACTIVE exactly while the
    recorded kswapd reclaimed (spbsim.trace.kswapd_windows; ``kswapd_gap_ms``
    [SIM] ends a window), in a start-state replay with daemons and in a
    pre-fill replay (both read the trace before replaying it; without
    pre-fill the trace is read once and the windows are not known ahead);
    False, or a trace without kswapd events: the simulated kswapd (if
    daemons run) decides.
    ``start_seed``: draw the start state /proc does not show
    (spbsim.trace.start.draw_hidden_state) with this seed, once the replay's
    start state is built; None: zeros and the build order.  ``start_types``:
    in a start-state replay, "trace" keeps each pageblock at the type the
    first trace event showing it reveals (spbsim.trace.start.first_types)
    and fits the others to pagetypeinfo; "fit": all fitted.
    ``user_compactions``: where the workload wrote compact_memory (a
    whole-zone sync mm_compaction_begin outside kernel threads and direct
    compaction), the simulator compacts that zone itself; False: ignored.
    The result's ``user_compactions`` {zones, unmatched, direct_traced}:
    direct_traced False means the trace has no
    mm_compaction_try_to_compact_pages event to tell direct compaction by.

    Returns a dict: ``allocs`` (traced allocations replayed), ``alloc_ok``,
    ``sim_failures_by_order`` (traced allocations the simulator failed, per
    order 0..10), ``frees`` {paired, paired_after_split, migrated, unpaired,
    unpaired_pretrace, migrated_pretrace, unpaired_compaction,
    migration_target_frees, unpaired_untraced, unpaired_covering,
    covered_ended, superseded, done, skipped (frees whose simulated
    allocation had failed), prefill_done, prefill_skipped}, ``splits``
    {events, pieces, done, skipped}, ``prefill`` {mode, blocks, pages,
    not_prefilled, by_gfp, failed_by_order}, ``pairing`` (all pairing
    counters), ``replay`` (all replay counters), ``snapshots`` (seq, tag, ts,
    line, buddyinfo text, zones -> free_pages, blocks_ge9, pcp_pages, nr_free,
    pageblocks; sim_alloc_failures and sim_failures_by_order so far, oom_kill), ``checksum`` (SHA-256 of the request stream
    incl. pre-fill), ``trace`` (lines, event counts, lenient errors),
    ``passes`` (times the text was read), ``seconds``, ``machine`` (the final
    Machine), ``vmstat`` and ``sim`` (its counters).
    """
    t0 = time.monotonic()
    daemons = True if daemons is None else bool(daemons)
    if start not in START_MODES:
        raise SpbsimError(f"start={start!r}: allowed {', '.join(map(repr, START_MODES))}")
    if migrations not in MIGRATION_MODES:
        raise SpbsimError(f"migrations={migrations!r}: allowed "
                          f"{', '.join(map(repr, MIGRATION_MODES))}")
    if fill not in ("start", None):
        raise SpbsimError(f"fill={fill!r}: allowed 'start' or None")
    if start_seed is not None and int(start_seed) < 0:
        raise SpbsimError(f"start_seed={start_seed}: must be >= 0")
    if start_types not in ("trace", "fit"):
        raise SpbsimError(f"start_types={start_types!r}: allowed 'trace' or 'fit'")
    if not Path(trace_path).exists():
        raise SpbsimError(f"{trace_path}: no such file")
    if start != "prefill" and prefill and _start_kpageflags(trace_path, snapshots_dir) is not None:
        return _replay_from_start(trace_path, machine_kwargs, lenient=lenient, progress=progress,
                                  max_lines=max_lines, snapshot_every_s=snapshot_every_s,
                                  snapshots_dir=snapshots_dir, migrations=migrations,
                                  cache_bytes=cache_bytes, check=check,
                                  daemons=daemons,
                                  manifest=manifest, pfn_ranges=pfn_ranges,
                                  snapshot_detail=snapshot_detail, trace_cpus=trace_cpus,
                                  t0=t0, kswapd_windows=kswapd_windows,
                                  kswapd_gap_ms=kswapd_gap_ms, start_seed=start_seed,
                                  start_types=start_types, user_compactions=user_compactions)
    if start == "snapshot":
        raise SpbsimError(f"start='snapshot': no start snapshot with kpageflags beside "
                          f"{trace_path}")
    if prefill is True:
        prefill = "auto"
    elif not prefill:
        prefill = None
    elif prefill not in PREFILL_MODES:
        raise SpbsimError(f"prefill={prefill!r}: allowed True, False, "
                          f"{', '.join(map(repr, PREFILL_MODES))}")
    if migrations not in MIGRATION_MODES:
        raise SpbsimError(f"migrations={migrations!r}: allowed "
                          f"{', '.join(map(repr, MIGRATION_MODES))}")
    if fill not in ("start", None):
        raise SpbsimError(f"fill={fill!r}: allowed 'start' or None")
    if not Path(trace_path).exists():
        raise SpbsimError(f"{trace_path}: no such file")
    cls, desc = (None, None) if prefill is None else _start_classes(prefill, trace_path,
                                                                    snapshots_dir)
    start_free = None
    if cls is not None:
        from spbsim.trace.replay import PC_FREE
        start_free = (cls == PC_FREE).astype(np.uint8)
    h = hashlib.sha256()
    h.update(f"whatif-v1 migrations={migrations}".encode())
    res = np.zeros(len(RES_NAMES), np.int64)
    fail_by_order = np.zeros(NR_PAGE_ORDERS, np.int64)
    snaps = []
    fail_log = np.zeros((FAIL_LOG_CAP, 3), np.int64)
    kernel_failed = []
    passes = 1
    skw = dict(lenient=lenient, progress=progress, max_lines=max_lines,
               snapshot_every_s=snapshot_every_s, start_free=start_free, migrations=migrations,
               daemons_every_s=daemons_every_s,
               pfn_ranges=(zone_pfn_ranges(machine_kwargs) if pfn_ranges == "machine"
                           else pfn_ranges), trace_cpus=trace_cpus,
               user_compactions=user_compactions,
               isolation_lifo=_isolation_lifo(machine_kwargs))
    # kswapd's reclaim windows need the whole trace: only with pass 1 (pre-fill)
    scan = KswapdScan(trace_path, lenient) if (kswapd_windows and prefill is not None) else None
    stream = _Stream(trace_path, kswapd_scan=scan, **skw)
    _background = background
    # the recorded kswapd's windows, whether pass 2 follows them yet, the draw
    # the cpus of user compactions' tasks (_Stream.user_cpus): known once a
    # first pass has read the whole trace (not with prefill None)
    extra = {"windows": None, "naps": None, "hidden": None,
             "user": {"zones": 0, "unmatched": 0, "cut_short": 0}, "user_cpus": None,
             "compacting": None}

    fill_state = {"pending": None, "at": None, "zones": {}}

    def do_fill(machine, where):
        fill_state["zones"] = _fill_to_start(machine, fill_state["pending"], cls,
                                             stream.pairer.touched)
        fill_state["pending"] = None
        fill_state["at"] = where
        if start_seed is not None:          # the start state is complete now
            from spbsim.trace.start import draw_hidden_state
            extra["hidden"] = draw_hidden_state(machine, start_seed)

    def run_chunk(machine, chunk, id_off, nprefill):
        ops = chunk.ops
        lo = 0
        kernel_failed.append(chunk.kernel_failed)
        if extra["windows"] is not None and len(ops):
            # each chunk starts in step with the recorded kswapd: a window
            # that began and ended between two chunks' ops has no cut
            _follow_kswapd(machine, extra["windows"], ops["ts"][0])
        cuts = _with_window_cuts(chunk.cuts, extra["windows"], ops["ts"], extra["naps"])
        uc = extra["compacting"]
        if uc is None:
            uc = extra["compacting"] = _UserCompaction(machine, extra["user"])
        for cut, info in cuts + [(len(ops), None)]:
            if cut > lo:
                _replay_ops(machine.mem, ops["kind"], ops["order"], ops["gfp"], ops["cpu"],
                            ops["id"], ops["aux"], ops["ts"], lo, cut, id_off, nprefill,
                            OWNER_TRACE, res, fail_by_order, fail_log, daemons)
                lo = cut
            if info is not None:                # a compaction under way moves on
                uc.advance(_cut_ns(info, ops, cut))
            if info is not None and "reclaim_active" in info:
                _kswapd_cut(machine, info)
                continue
            if info is not None and "kcompactd_wake" in info:
                _kswapd_nap(machine, info, extra["naps"])
                continue
            if info is not None and "daemons" in info:
                _background(machine.mem, np.int64(info["daemons"] * 1e9), np.int64(0))
                continue
            if info is not None and "user_compaction" in info:
                uc.begin(info, extra["user_cpus"])
                continue
            if info is not None and "user_compaction_end" in info:
                uc.end(info)
                continue
            if info is not None:
                if fill_state["pending"] is not None and info["tag"] == "start" \
                        and info["seq"] is not None:
                    uc.finish()         # the fill lays the recorded state over it
                    do_fill(machine, f"start marker (line {info['line']})")
                snaps.append(_snapshot(machine, info, fail_by_order, snapshot_detail))
                if check:
                    machine.check()

    prefill_info = {"mode": None, "blocks": 0, "pages": 0, "not_prefilled": 0, "by_gfp": {},
                    "failed_by_order": [0] * NR_PAGE_ORDERS}
    if prefill is None:
        machine = _make_machine(machine_kwargs, 1 << 16)
        _stream_holds_reclaim(machine)
        if start_seed is not None:
            from spbsim.trace.start import draw_hidden_state
            extra["hidden"] = draw_hidden_state(machine, start_seed)
        for chunk in stream.chunks():
            _checksum_update(h, chunk.ops)
            _ensure_obj_capacity(machine, stream.pairer.ids_used)
            run_chunk(machine, chunk, 0, 0)
        pairer, reader = stream.pairer, stream.reader
    else:
        # pass 1: the stream, its unpaired frees, and (within budget) its ops
        cache, cached_bytes = [], 0
        unpaired = []
        start_marker = False
        for chunk in stream.chunks():
            _checksum_update(h, chunk.ops)
            start_marker |= any(i.get("tag") == "start" and i.get("seq") is not None
                                for _, i in chunk.cuts)
            unpaired.append(chunk.ops[chunk.ops["kind"] == OP_UNPAIRED])
            if cache is not None:
                cached_bytes += chunk.nbytes
                if cached_bytes <= cache_bytes:
                    cache.append(chunk)
                else:
                    cache = None
        pairer, reader = stream.pairer, stream.reader
        extra["user_cpus"] = stream.user_cpus
        un = np.concatenate(unpaired) if unpaired else np.empty(0, OP_DTYPE)
        nprefill = len(un)
        keep = np.flatnonzero(un["gfp"] & UF_PRETRACE)
        pre = np.zeros(len(keep), OP_DTYPE)
        pre["kind"] = OP_ALLOC
        pre["order"] = un["order"][keep]
        pre["cpu"] = un["cpu"][keep]
        pre["id"] = keep
        pre["aux"] = -1
        pre["gfp"] = _prefill_gfps(cls, un["aux"][keep].astype(np.int64))
        h.update(b"prefill")
        _checksum_update(h, pre)
        machine = _make_machine(machine_kwargs, nprefill + pairer.ids_used)
        pre_res = np.zeros(len(RES_NAMES), np.int64)
        pre_fail = np.zeros(NR_PAGE_ORDERS, np.int64)
        _replay_ops(machine.mem, pre["kind"], pre["order"], pre["gfp"], pre["cpu"], pre["id"],
                    pre["aux"], pre["ts"], 0, len(pre), 0, 0, OWNER_PREFILL, pre_res, pre_fail,
                    np.zeros((0, 3), np.int64), False)
        _stream_holds_reclaim(machine)
        prefill_info = {"mode": desc, "blocks": int(len(pre)),
                        "pages": int((1 << pre["order"].astype(np.int64)).sum()),
                        "not_prefilled": int(nprefill - len(pre)),
                        "by_gfp": {format_gfp(int(g)): int(c) for g, c in
                                   zip(*np.unique(pre["gfp"], return_counts=True))},
                        "failed_by_order": pre_fail.tolist()}
        if fill == "start":
            fill_state["pending"] = _real_start(trace_path, snapshots_dir)
            if fill_state["pending"] is not None and not start_marker:
                do_fill(machine, "before the replay (no start marker)")
        if start_seed is not None and fill_state["pending"] is None:
            from spbsim.trace.start import draw_hidden_state       # no fill at a marker
            extra["hidden"] = draw_hidden_state(machine, start_seed)
        if scan is not None:
            w = scan.windows(kswapd_gap_ms)
            if len(w):         # followed from pass 2's first op (run_chunk)
                extra["windows"] = w
                extra["naps"] = NapCursor(scan.naps())
        # pass 2: replay
        if cache is None:
            passes = 2
            for chunk in _Stream(trace_path, **skw).chunks():
                run_chunk(machine, chunk, nprefill, nprefill)
        else:
            bar = None
            if progress:
                from tqdm import tqdm
                bar = tqdm(total=sum(len(c.ops) for c in cache), unit="op", unit_scale=True,
                           desc="what-if replay", file=sys.stderr)
            for chunk in cache:
                run_chunk(machine, chunk, nprefill, nprefill)
                if bar is not None:
                    bar.update(len(chunk.ops))
            if bar is not None:
                bar.close()
    if extra["compacting"] is not None:
        extra["compacting"].finish()            # the stream ended: it runs to its end
    if check:
        machine.check()
    pc = {n: int(v) for n, v in zip(PAIR_COUNTERS, pairer.cnt)}
    rc = {n: int(v) for n, v in zip(RES_NAMES, res)}
    frees = {k: pc[k] for k in ("paired", "paired_after_split", "migrated", "unpaired",
                                "unpaired_pretrace", "migrated_pretrace",
                                "unpaired_compaction", "migration_target_frees",
                                "unpaired_untraced", "unpaired_covering", "covered_ended",
                                "superseded", "isolated_free_pages",
                                "migration_targets_placed")}
    frees.update(done=rc["frees_done"], skipped=rc["frees_skipped"],
                 prefill_done=rc["prefill_frees"], prefill_skipped=rc["prefill_frees_skipped"])
    return {
        "allocs": rc["allocs"],
        "alloc_ok": rc["alloc_ok"],
        "sim_failures_by_order": fail_by_order.tolist(),
        "failure_log": _failure_log(fail_log, fail_by_order, kernel_failed),
        "frees": frees,
        "splits": {"events": pc["splits"], "pieces": pc["split_pieces"],
                   "done": rc["splits_done"], "skipped": rc["splits_skipped"]},
        "prefill": prefill_info,
        "fill": {"at": fill_state["at"], "zones": fill_state["zones"]},
        "hidden": extra["hidden"],
        "kswapd_windows": _windows_summary(extra["windows"], extra["naps"]),
        "user_compactions": (dict(extra["user"], direct_traced=stream.direct_traced)
                             if user_compactions else None),
        "pairing": pc,
        "replay": rc,
        "snapshots": snaps,
        "checksum": h.hexdigest(),
        "trace": {"path": str(trace_path), "lines": reader.lines,
                  "events": dict(reader.event_counts), "errors": dict(reader.errors)},
        "passes": passes,
        "seconds": round(time.monotonic() - t0, 2),
        "machine": machine,
        "vmstat": machine.vmstat_counters(),
        "sim": machine.sim_counters(),
    }


def _replay_from_start(trace_path, machine_kwargs, *, lenient, progress, max_lines,
                       snapshot_every_s, snapshots_dir, migrations, cache_bytes, check,
                       daemons, manifest, pfn_ranges, snapshot_detail, trace_cpus, t0,
                       kswapd_windows=True, kswapd_gap_ms=KSWAPD_GAP_MS, start_seed=None,
                       start_types="trace", user_compactions=True):
    """replay_whatif(start="snapshot"): the stream after the start snapshot's
    end marker, from the state the kernel had then (spbsim.trace.start).
    ``machine_kwargs``: a Machine with the recording's geometry (as
    spbsim.trace.validate builds it), or Machine keywords whose sizes are
    used only when the recording's manifest has none."""
    from spbsim.machine import Machine
    from spbsim.mm.gfp import gfp_migratetype
    from spbsim.trace import start as S
    from spbsim.trace.kpageflags import load_kpageflags
    from spbsim.trace.replay import PC_FREE, page_classes, read_index
    snapdir = _find_snapshots(trace_path, snapshots_dir)
    snap = next(x for x in read_index(snapdir) if x["tag"] == "start")
    flags = load_kpageflags(_start_kpageflags(trace_path, snapshots_dir))
    cls = page_classes(flags)
    start_free = (cls == PC_FREE).astype(np.uint8)
    if manifest is None:
        mp = snapdir.parent / "manifest.json"
        manifest = json.loads(mp.read_text()) if mp.exists() else {}
    h = hashlib.sha256()
    h.update(f"whatif-v2 start=snapshot migrations={migrations}".encode())
    touch = {"seen": np.zeros(len(flags), np.uint8), "start_free": start_free,
             "out": np.zeros((1 << 16, 6), np.int64), "n": 0, "rev": None}
    if isinstance(machine_kwargs, Machine):
        machine = machine_kwargs
        machine.mem.cfg[CFG["migrate_untracked"]] = 1
    else:
        kw = {k: v for k, v in dict(machine_kwargs or {}).items()
              if k not in ("memory", "low_memory", "cpus", "obj_capacity", "piece_capacity")}
        mach = manifest.get("machine", {})
        size = {} if "ram_mb" in mach else {k: machine_kwargs[k] for k in ("memory", "low_memory")
                                             if k in (machine_kwargs or {})}
        if "vcpus" not in mach and "cpus" in (machine_kwargs or {}):
            size["cpus"] = machine_kwargs["cpus"]
        machine = S.recording_machine(manifest, flags, **size, **kw)
    if pfn_ranges == "machine":
        pfn_ranges = zone_pfn_ranges(machine)
    if start_types == "trace":
        touch["rev"] = np.full(machine.mem.pb_mt.size, -1, np.int8)
        touch["rev_last"] = np.full((MAX_CPUS, 3), -1, np.int64)
    skw = dict(lenient=lenient, progress=progress, max_lines=max_lines,
               snapshot_every_s=snapshot_every_s, start_free=start_free, migrations=migrations,
               pfn_ranges=pfn_ranges, trace_cpus=trace_cpus,
               user_compactions=user_compactions, isolation_lifo=_isolation_lifo(machine))
    user = {"zones": 0, "unmatched": 0, "cut_short": 0}
    scan = KswapdScan(trace_path, lenient) if (kswapd_windows and daemons) else None
    stream = _Stream(trace_path, touch=touch, kswapd_scan=scan, **skw)

    # pass 1: the stream, the start cut, what is live there, its unpaired frees
    cache, cached_bytes = [], 0
    unpaired, before = [], []
    start_cut = None
    for ci, chunk in enumerate(stream.chunks()):
        _checksum_update(h, chunk.ops)
        if start_cut is None:
            for cut, info in chunk.cuts:
                if info.get("tag") == "start" and info.get("seq") is not None:
                    start_cut = (ci, cut, info)
                    break
            before.append(chunk.ops if start_cut is None else chunk.ops[:start_cut[1]])
        unpaired.append(chunk.ops[chunk.ops["kind"] == OP_UNPAIRED])
        if cache is not None:
            cached_bytes += chunk.nbytes
            if cached_bytes <= cache_bytes:
                cache.append(chunk)
            else:
                cache = None
    pairer, reader = stream.pairer, stream.reader
    windows = scan.windows(kswapd_gap_ms) if scan is not None else None
    if windows is not None and not len(windows):
        windows = None          # no kswapd events recorded: the model's kswapd decides
    naps = NapCursor(scan.naps()) if windows is not None else None
    if start_cut is None:
        raise SpbsimError(f"{trace_path}: no 'oracle_snap_end ... tag=start' marker: "
                          f"the start state cannot be placed in the stream")
    before = np.concatenate(before) if before else np.empty(0, OP_DTYPE)
    un = np.concatenate(unpaired) if unpaired else np.empty(0, OP_DTYPE)
    nprefill = len(un)
    n_before = int((before["kind"] == OP_UNPAIRED).sum())
    id_off = nprefill

    # blocks at the start: live traced allocations, then pre-trace memory
    rpfn, rorder = pairer.at_start if pairer.at_start is not None else (np.zeros(0), np.zeros(0))
    live = np.flatnonzero((rorder >= 0) & (rpfn >= 0))
    al = before[before["kind"] == OP_ALLOC]
    gfp_of = np.zeros(len(rorder), np.int64)
    if len(al):
        ids, last = np.unique(al["id"][::-1], return_index=True)
        gfp_of[ids] = al["gfp"][::-1][last]
    k_after = np.arange(n_before, nprefill)
    pre = un[n_before:]
    keep = np.flatnonzero(pre["gfp"] & UF_PRETRACE)
    pre_gfp = _prefill_gfps(cls, pre["aux"][keep].astype(np.int64))
    live_mt = np.array([gfp_migratetype(int(g)) for g in gfp_of[live]], np.int64)
    pre_mt = np.array([gfp_migratetype(int(g)) for g in pre_gfp], np.int64)
    blocks = {
        "pfn": np.concatenate([rpfn[live], pre["aux"][keep]]).astype(np.int64),
        "order": np.concatenate([rorder[live], pre["order"][keep]]).astype(np.int64),
        "mt": np.concatenate([live_mt, pre_mt]).astype(np.int64),
        "owner": np.concatenate([np.full(len(live), OWNER_TRACE),
                                 np.full(len(keep), OWNER_PREFILL)]).astype(np.int64),
        "obj": np.concatenate([live + id_off, k_after[keep]]).astype(np.int64),
    }
    h.update(b"start-blocks")
    for a in blocks.values():
        h.update(np.ascontiguousarray(a).tobytes())
    pcp_rows = touch["out"][:touch["n"]]

    _ensure_obj_capacity(machine, nprefill + pairer.ids_used)
    res = np.zeros(len(RES_NAMES), np.int64)
    fail_by_order = np.zeros(NR_PAGE_ORDERS, np.int64)
    snaps = []
    fail_log = np.zeros((FAIL_LOG_CAP, 3), np.int64)
    kernel_failed = []
    state = {"built": None, "hidden": None}
    uc = _UserCompaction(machine, user)

    def build(info):
        state["built"] = S.build_start_state(machine, snap, flags, blocks, pcp_rows,
                                             OWNER_FILL, known=touch["rev"])
        state["built"]["at"] = f"start marker (line {info['line']})"
        kcd_in, vmstat_in = HPAGE_FRAG_CHECK_INTERVAL_NS, VMSTAT_INTERVAL_NS
        if start_seed is not None:
            state["hidden"] = S.draw_hidden_state(machine, start_seed)
            if daemons:
                phases = S.draw_timer_phases(start_seed, kcd_in, vmstat_in)
                state["hidden"]["timers"] = phases
                kcd_in, vmstat_in = phases["kcompactd_ns"], phases["vmstat_update_ns"]
        now = np.int64(info["ts"] * 1e9)
        machine.mem.cur[CUR_CLOCK] = now
        if daemons:
            # the stream holds the kernel's reclaim: kswapd only balances
            # (spbsim.mm.vmscan.balance_pgdat); vmstat_update decays pcp high
            _stream_holds_reclaim(machine)
            machine.mem.node[NODE["kswapd_last_ns"]] = now
            # (with compaction_proactiveness 0 the Machine's kcompactd sleeps
            # until woken: its timeout stays MAX_SCHEDULE_TIMEOUT)
            if machine.mem.cfg[CFG["compaction_proactiveness"]]:
                machine.mem.node[NODE["kcompactd_timeout_ns"]] = now + kcd_in
            queue_work(machine.mem, WQ_VMSTAT_UPDATE, 0, now + vmstat_in)
            if windows is not None:
                _follow_kswapd(machine, windows, now)
        res[_R_UNPAIRED] = n_before
        if check:
            machine.check()

    def run_chunk(ci, chunk):
        ops = chunk.ops
        lo = 0
        sc, scut = start_cut[0], start_cut[1]
        if ci < sc:
            return
        kf = chunk.kernel_failed
        kernel_failed.append(kf[kf["line"] > start_cut[2]["line"]] if ci == sc else kf)
        if ci == sc:
            lo = scut
        elif daemons and windows is not None and len(ops):
            # in step with the recorded kswapd: a window that began and
            # ended between two chunks' ops has no cut
            _follow_kswapd(machine, windows, ops["ts"][0])
        for cut, info in _with_window_cuts(chunk.cuts, windows, ops["ts"], naps) + \
                [(len(ops), None)]:
            if ci == sc and cut < scut:
                continue
            if state["built"] is None:
                build(start_cut[2])
            if cut > lo:
                _replay_ops(machine.mem, ops["kind"], ops["order"], ops["gfp"], ops["cpu"],
                            ops["id"], ops["aux"], ops["ts"], lo, cut, id_off, nprefill,
                            OWNER_TRACE, res, fail_by_order, fail_log, daemons)
                lo = cut
            if info is not None:                # a compaction under way moves on
                uc.advance(_cut_ns(info, ops, cut))
            if info is not None and "reclaim_active" in info:
                _kswapd_cut(machine, info)
            elif info is not None and "kcompactd_wake" in info:
                _kswapd_nap(machine, info, naps)
            elif info is not None and "user_compaction" in info:
                # one that began before the start snapshot is in its state
                if info["ts"] >= start_cut[2]["ts"]:
                    uc.begin(info, stream.user_cpus)
            elif info is not None and "user_compaction_end" in info:
                uc.end(info)
            elif info is not None and "daemons" not in info:
                snaps.append(_snapshot(machine, info, fail_by_order, snapshot_detail))
                if check:
                    machine.check()

    passes = 1
    if cache is None:
        passes = 2
        for ci, chunk in enumerate(_Stream(trace_path, **skw).chunks()):
            run_chunk(ci, chunk)
    else:
        bar = None
        if progress:
            from tqdm import tqdm
            bar = tqdm(total=sum(len(c.ops) for c in cache), unit="op", unit_scale=True,
                       desc="what-if replay", file=sys.stderr)
        for ci, chunk in enumerate(cache):
            run_chunk(ci, chunk)
            if bar is not None:
                bar.update(len(chunk.ops))
        if bar is not None:
            bar.close()
    uc.finish()                                 # the stream ended: it runs to its end
    if check:
        machine.check()
    pc = {n: int(v) for n, v in zip(PAIR_COUNTERS, pairer.cnt)}
    rc = {n: int(v) for n, v in zip(RES_NAMES, res)}
    frees = {k: pc[k] for k in ("paired", "paired_after_split", "migrated", "unpaired",
                                "unpaired_pretrace", "migrated_pretrace",
                                "unpaired_compaction", "migration_target_frees",
                                "unpaired_untraced", "unpaired_covering", "covered_ended",
                                "superseded", "isolated_free_pages",
                                "migration_targets_placed")}
    frees.update(done=rc["frees_done"], skipped=rc["frees_skipped"],
                 prefill_done=rc["prefill_frees"], prefill_skipped=rc["prefill_frees_skipped"])
    built = state["built"] or {}
    return {
        "allocs": rc["allocs"],
        "alloc_ok": rc["alloc_ok"],
        "sim_failures_by_order": fail_by_order.tolist(),
        "failure_log": _failure_log(fail_log, fail_by_order, kernel_failed),
        "frees": frees,
        "splits": {"events": pc["splits"], "pieces": pc["split_pieces"],
                   "done": rc["splits_done"], "skipped": rc["splits_skipped"]},
        "start": dict(built, mode="snapshot", live_blocks=int(len(live)),
                      pretrace_blocks=int(len(keep)), pcp_candidates=int(len(pcp_rows)),
                      ops_before=int(len(before))),
        "prefill": {"mode": "snapshot", "blocks": int(len(keep)),
                    "pages": int((1 << pre["order"][keep].astype(np.int64)).sum()),
                    "not_prefilled": int(len(pre) - len(keep)), "by_gfp": {},
                    "failed_by_order": [0] * NR_PAGE_ORDERS},
        "fill": {"at": built.get("at"), "zones": {}},
        "hidden": state["hidden"],
        "kswapd_windows": _windows_summary(windows, naps),
        "user_compactions": (dict(user, direct_traced=stream.direct_traced)
                             if user_compactions else None),
        "pairing": pc,
        "replay": rc,
        "snapshots": snaps,
        "checksum": h.hexdigest(),
        "trace": {"path": str(trace_path), "lines": reader.lines,
                  "events": dict(reader.event_counts), "errors": dict(reader.errors)},
        "passes": passes,
        "seconds": round(time.monotonic() - t0, 2),
        "machine": machine,
        "vmstat": machine.vmstat_counters(),
        "sim": machine.sim_counters(),
    }


# ---------------------------------------------------------------- comparison

def compare_snapshots(result: dict, snapshots_dir) -> list[dict]:
    """Pair the simulated snapshots with the real ones (same seq) from
    ``snapshots_dir`` (index.tsv + directories).  One row per simulated
    marker snapshot: seq, tag, ts, zones -> {free_sim, free_real, ge9_sim,
    ge9_real, pcp_sim, pcp_real} (real values None when the snapshot lacks
    the file: buddyinfo, zoneinfo for the per-cpu list pages)."""
    from spbsim.observe import procfs
    from spbsim.trace.replay import read_index
    real = {}
    if snapshots_dir is not None and Path(snapshots_dir).is_dir():
        for s in read_index(snapshots_dir):
            real[s["seq"]] = s
    rows = []
    for snap in result["snapshots"]:
        row = {"seq": snap["seq"], "tag": snap["tag"], "ts": snap["ts"], "zones": {},
               "fails": snap.get("sim_alloc_failures", 0)}
        rz, rpcp = {}, {}
        s = real.get(snap["seq"]) if snap["seq"] is not None else None
        if s is not None:
            files = procfs.read_snapshot(s["dir"])
            if "buddyinfo" in files:
                names, nr = files["buddyinfo"]
                pages, blocks = free_pages_blocks_ge(nr)
                rz = {n: (int(pages[i]), int(blocks[i])) for i, n in enumerate(names)}
            for n, zi in files.get("zoneinfo", {}).items():
                if zi.get("pagesets"):
                    rpcp[n] = sum(int(p["count"]) for p in zi["pagesets"])
        for name, z in snap["zones"].items():
            r = rz.get(name)
            row["zones"][name] = {"free_sim": z["free_pages"], "ge9_sim": z["blocks_ge9"],
                                  "free_real": r[0] if r else None,
                                  "ge9_real": r[1] if r else None,
                                  "pcp_sim": z.get("pcp_pages"), "pcp_real": rpcp.get(name)}
        rows.append(row)
    return rows


def format_table(result: dict, snapshots_dir=None) -> str:
    """Per snapshot: simulated vs real free pages and free 2 MiB units (in buddies of
    order >= 9) per zone, pages on per-cpu lists (all zones; real from zoneinfo)
    and the simulator's allocation failures so far; then the counts."""
    rows = compare_snapshots(result, snapshots_dir)
    out = []
    m = result["machine"]
    zones = m.zone_names()
    out.append(f"what-if replay of {result['trace']['path']} ({result['trace']['lines']} lines): "
               f"version={_version_name(m)} defrag_mode={int(m.mem.cfg[_CFG_DEFRAG])}")
    if rows:
        head = f"{'seq':>4} {'tag':<14} {'t':>8}"
        for z in zones:
            head += f" | {z + ' free sim/real':>22} {'>=9 sim/real':>12}"
        head += f" | {'pcp sim/real':>13} {'fails':>6}"
        out.append(head)
        for r in rows:
            line = f"{r['seq'] if r['seq'] is not None else '-':>4} {r['tag']:<14} {r['ts']:>8.2f}"
            for z in zones:
                v = r["zones"].get(z, {})
                fr = "-" if v.get("free_real") is None else v["free_real"]
                gr = "-" if v.get("ge9_real") is None else v["ge9_real"]
                line += f" | {str(v.get('free_sim')) + '/' + str(fr):>22} " \
                        f"{str(v.get('ge9_sim')) + '/' + str(gr):>12}"
            ps = sum(v.get("pcp_sim") or 0 for v in r["zones"].values())
            pr = [v.get("pcp_real") for v in r["zones"].values()]
            pr = "-" if all(x is None for x in pr) else sum(x or 0 for x in pr)
            line += f" | {f'{ps}/{pr}':>13} {r['fails']:>6}"
            out.append(line)
    else:
        out.append("(no snapshot markers in the trace)")
    f = result["frees"]
    out.append("")
    out.append(f"allocations replayed {result['allocs']} (ok {result['alloc_ok']}); simulator "
               f"failures by order {result['sim_failures_by_order']}")
    out.append("frees: " + ", ".join(f"{k} {v}" for k, v in f.items()))
    s = result["splits"]
    out.append(f"splits: {s['events']} ({s['pieces']} pieces), done {s['done']}, "
               f"skipped {s['skipped']}")
    p = result["prefill"]
    out.append(f"prefill: {p['mode']}: {p['blocks']} blocks, {p['pages']} pages, failed by "
               f"order {p['failed_by_order']}")
    fz = result.get("fill", {}).get("zones", {})
    if fz:
        out.append(f"fill at {result['fill']['at']}: " + ", ".join(
            f"{z} {v['pages']}" for z, v in fz.items()) + " pages")
    vm = result["vmstat"]
    out.append("vmstat: " + ", ".join(f"{k}={vm[k]}" for k in (
        "compact_stall", "compact_success", "compact_fail", "pgmigrate_success",
        "allocstall_normal", "oom_kill") if k in vm))
    out.append(f"request checksum {result['checksum'][:16]}; {result['passes']} pass(es), "
               f"{result['seconds']} s")
    return "\n".join(out) + "\n"


def _version_name(machine) -> str:
    from spbsim.mm.const import KERNEL_VERSIONS
    from spbsim.mm.state import CFG
    v = int(machine.mem.cfg[CFG["version"]])
    for name, code in KERNEL_VERSIONS.items():
        if code == v:
            return name
    return str(v)


def main(argv=None):
    import argparse
    p = argparse.ArgumentParser(
        prog="python -m spbsim.trace.whatif",
        description="What-if replay: a trace's allocation requests through a simulated "
                    "allocator; simulated vs real free memory at every snapshot.")
    p.add_argument("trace", help="ftrace text (plain, .xz, .gz, .zst)")
    p.add_argument("--memory", default=None, help="RAM (default: manifest.json beside the "
                                                  "trace, else 1536M)")
    p.add_argument("--low-memory", default=None, help="RAM below 4 GiB (default: manifest, "
                                                      "else 512M)")
    p.add_argument("--cpus", type=int, default=None, help="default: manifest, else 2")
    p.add_argument("--kernel-version", default="6.12", help="recent, 6.12 or 6.1 (default 6.12)")
    p.add_argument("--defrag-mode", action="store_true", help="vm.defrag_mode=1")
    p.add_argument("--min-free-kbytes", type=int, default=None,
                   help="default: manifest's vm.min_free_kbytes, else the kernel default")
    p.add_argument("--max-lines", type=int, default=None)
    p.add_argument("--prefill", default="auto", choices=("auto", "movable", "kpageflags", "none"),
                   help="pre-fill mode (default auto: kpageflags when the start snapshot "
                        "has them, else movable)")
    p.add_argument("--migrations", default="keep", choices=MIGRATION_MODES,
                   help="keep (default): frees by compaction are migrations; free: replay "
                        "every free")
    p.add_argument("--no-fill", action="store_true",
                   help="do not fill the machine to the start snapshot's free memory")
    p.add_argument("--daemons", type=float, default=None, metavar="S",
                   help="run the simulated kswapd/kcompactd every S seconds of trace time "
                        "(experimental)")
    p.add_argument("--every", type=float, default=None, metavar="S",
                   help="also snapshot every S seconds of trace time")
    p.add_argument("--snapshots", default=None, help="real snapshots directory (default: "
                                                     "snapshots/ beside the trace)")
    p.add_argument("--lenient", action="store_true", help="skip malformed trace lines")
    p.add_argument("--progress", action="store_true")
    p.add_argument("--json", metavar="FILE", help="also write the result (without the "
                                                  "machine) as JSON")
    a = p.parse_args(argv)
    trace = Path(a.trace)
    manifest = {}
    mp = trace.resolve().parent / "manifest.json"
    if mp.exists():
        try:
            manifest = json.loads(mp.read_text()).get("machine", {})
        except (ValueError, OSError):
            manifest = {}
    kw = {"memory": a.memory or (f"{int(manifest['ram_mb'])}M" if "ram_mb" in manifest
                                 else "1536M"),
          "low_memory": a.low_memory or (f"{int(manifest['ram_below_4g_mb'])}M"
                                         if "ram_below_4g_mb" in manifest else "512M"),
          "cpus": a.cpus or int(manifest.get("vcpus", 2)),
          "version": a.kernel_version, "defrag_mode": a.defrag_mode}
    mfk = a.min_free_kbytes
    if mfk is None and "min_free_kbytes" in manifest.get("sysctl_vm", {}):
        mfk = int(manifest["sysctl_vm"]["min_free_kbytes"])
    if mfk is not None:
        kw["min_free_kbytes"] = mfk
    snapdir = Path(a.snapshots) if a.snapshots else trace.resolve().parent / "snapshots"
    try:
        r = replay_whatif(trace, kw, prefill=None if a.prefill == "none" else a.prefill,
                          lenient=a.lenient, progress=a.progress, max_lines=a.max_lines,
                          snapshot_every_s=a.every, snapshots_dir=snapdir,
                          migrations=a.migrations, fill=None if a.no_fill else "start",
                          daemons_every_s=a.daemons)
    except SpbsimError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except Exception as e:          # a bad machine parameter, a malformed trace line
        from spbsim.trace.ftrace import TraceFormatError
        from spbsim.errors import ConfigError
        if isinstance(e, (TraceFormatError, ConfigError)):
            print(f"error: {e}", file=sys.stderr)
            return 1
        raise
    sys.stdout.write(format_table(r, snapdir if snapdir.is_dir() else None))
    if a.json:
        out = {k: v for k, v in r.items() if k != "machine"}
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
