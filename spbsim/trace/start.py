"""The what-if replay's start state: the machine as the kernel had it when the
recording's ``start`` snapshot was read.  Free blocks and pageblock types come
from kpageflags and pagetypeinfo (as in the placement replay); every block in
use sits at its real pfn, the traced ones under their stream ids; pages the
trace shows parked on per-cpu lists go back on them.  docs/fidelity.md says why.
"""
from __future__ import annotations

import numpy as np

from spbsim.mm.buddy import pageblock_set_has
from spbsim.mm.const import (MAX_PAGE_ORDER, MIGRATE_MOVABLE, MIGRATE_PCPTYPES,
                             MIGRATE_RECLAIMABLE, MIGRATE_UNMOVABLE, NR_PAGE_ORDERS,
                             PAGE_ALLOC_COSTLY_ORDER, PB_has_mask, PG_head, PG_lru, PG_MT_SHIFT,
                             PG_reserved, pageblock_order)
from spbsim.mm.jit import njit
from spbsim.mm.pcp import _pcp_add, pcp_order_to_pindex
from spbsim.mm.state import PCP_COUNT
from spbsim.trace.ftrace import (MM_PAGE_ALLOC, MM_PAGE_ALLOC_EXTFRAG,
                                 MM_PAGE_ALLOC_ZONE_LOCKED, MM_PAGE_FREE, MM_PAGE_PCPU_DRAIN)
from spbsim.trace.kpageflags import KPF_COMPOUND_HEAD, KPF_COMPOUND_TAIL, KPF_RESERVED

__all__ = ["fill_types", "compound_orders", "reserved_ranges", "retile", "RETILE_COUNTERS",
           "first_touch", "pcp_list_order", "FILL_RESERVED", "draw_hidden_state",
           "HIDDEN_FREE_COUNT_BATCHES", "free_factor_max"]

#: counters of :func:`retile`
RETILE_COUNTERS = ("blocks", "blocks_overlap", "pcp_pages", "pcp_overlap", "fill_blocks",
                   "fill_pages", "reserved_pages")

#: fill type of a reserved / absent page
FILL_RESERVED = -1

#: [SIM] a drawn start free_count is uniform in [0, this many batches]
#: (draw_hidden_state; the kernel's own value decays by half at every
#: allocation from the list, so large values need a long run of frees)
HIDDEN_FREE_COUNT_BATCHES = 2


def _bit(flags, b):
    return ((flags >> np.uint64(b)) & np.uint64(1)).astype(bool)


def reserved_ranges(flags, nr_pfns=None) -> list[tuple[int, int]]:
    """Runs of KPF_RESERVED pages below ``nr_pfns`` as (start, size) in bytes
    (the form Machine(reserved=...) takes)."""
    r = _bit(flags, KPF_RESERVED).astype(np.int8)
    if nr_pfns is not None:
        r = r[:nr_pfns]
    d = np.diff(np.concatenate([[0], r, [0]]))
    starts, ends = np.flatnonzero(d == 1), np.flatnonzero(d == -1)
    return [(int(s) << 12, int(e - s) << 12) for s, e in zip(starts, ends)]


def compound_orders(flags) -> np.ndarray:
    """int8 per pfn: the order of the compound page whose head is there (a
    naturally aligned power-of-two run of KPF_COMPOUND_TAIL pages after a
    KPF_COMPOUND_HEAD), 0 elsewhere."""
    n = len(flags)
    out = np.zeros(n, np.int8)
    heads = np.flatnonzero(_bit(flags, KPF_COMPOUND_HEAD))
    if not len(heads):
        return out
    nontail = np.flatnonzero(~_bit(flags, KPF_COMPOUND_TAIL))
    nxt = nontail[np.minimum(np.searchsorted(nontail, heads + 1), len(nontail) - 1)]
    nxt = np.where(nxt > heads, nxt, n)
    size = nxt - heads
    order = np.log2(np.maximum(size, 1)).astype(np.int64)
    ok = ((1 << order) == size) & ((heads & (size - 1)) == 0) & (order < NR_PAGE_ORDERS)
    out[heads[ok]] = order[ok]
    return out


def fill_types(cls, pb_mt) -> np.ndarray:
    """int8 per pfn: the allocation type a page in use and not traced gets from
    its kpageflags class (spbsim.trace.replay.page_classes): LRU/anon/mapped ->
    MOVABLE; slab -> RECLAIMABLE in a RECLAIMABLE pageblock, else UNMOVABLE
    (kpageflags cannot tell the two slab kinds apart); other kernel pages ->
    UNMOVABLE; reserved or absent pages -> FILL_RESERVED."""
    from spbsim.trace.replay import PC_MOVABLE, PC_NOPAGE, PC_RESERVED, PC_SLAB
    out = np.full(len(cls), MIGRATE_UNMOVABLE, np.int8)
    out[cls == PC_MOVABLE] = MIGRATE_MOVABLE
    blk = np.repeat(pb_mt, 1 << pageblock_order)[:len(cls)]
    if len(blk) < len(cls):
        blk = np.concatenate([blk, np.full(len(cls) - len(blk), MIGRATE_MOVABLE, blk.dtype)])
    out[(cls == PC_SLAB) & (blk == MIGRATE_RECLAIMABLE)] = MIGRATE_RECLAIMABLE
    out[(cls == PC_RESERVED) | (cls == PC_NOPAGE)] = FILL_RESERVED
    return out


@njit
def _clear_page(m, p):
    m.pg_flags[p] = 0
    m.pg_order[p] = -1
    m.pg_owner[p] = 0
    m.pg_obj[p] = -1
    m.pg_next[p] = -1
    m.pg_prev[p] = -1


@njit
def _set_block(m, p, order, mt, owner, obj):
    f = PG_head | (mt << PG_MT_SHIFT)
    if mt == MIGRATE_MOVABLE:
        f |= PG_lru
    m.pg_flags[p] = f
    m.pg_order[p] = order
    m.pg_owner[p] = owner
    m.owner_pages[owner] += 1 << order
    pageblock_set_has(m, p, order, mt)
    if obj >= 0:
        m.pg_obj[p] = obj
        m.obj_pfn[obj] = p


@njit
def retile(m, free, fill_mt, comp, b_pfn, b_order, b_mt, b_owner, b_obj,
           p_pfn, p_order, p_mt, p_cpu, fill_owner, covered, cnt):
    """Rebuild the allocated part of a state whose free lists are exact.

    ``free``: uint8 per pfn, 1 inside a free buddy (left untouched).  Every
    other page of a present pageblock becomes part of exactly one block:
    the listed blocks (b_*: head pfn, order, type, owner, object id or -1),
    then the listed per-cpu pages (p_*: appended to the tail of their cpu's
    list, in the order given), then fill blocks (``comp`` order where a whole
    compound page is left, else order 0; type ``fill_mt``, owner
    ``fill_owner``; FILL_RESERVED pages become PG_reserved).  A listed block
    or pcp page that overlaps free or already placed pages is skipped and
    counted.  PB_has_* bits are recomputed from the blocks.  ``covered``:
    zeroed uint8 scratch per pfn."""
    npfn = m.pg_flags.shape[0]
    nz = m.zone_start.shape[0]
    for z in range(nz):
        for p in range(m.zone_start[z], m.zone_end[z]):
            if m.pb_zone[p >> pageblock_order] == z and free[p] == 0:
                _clear_page(m, p)
    # PB_has_* bits of every pageblock that is not entirely free: from its blocks
    for pb in range(m.pb_flags.shape[0]):
        if m.pb_zone[pb] >= 0:
            s = pb << pageblock_order
            for q in range(s, min(s + (1 << pageblock_order), npfn)):
                if free[q] == 0:
                    m.pb_flags[pb] &= 0xFF ^ PB_has_mask
                    break
    for i in range(b_pfn.shape[0]):
        p = b_pfn[i]
        o = b_order[i]
        ok = p >= 0 and p + (1 << o) <= npfn and m.pb_zone[p >> pageblock_order] >= 0
        if ok:
            for q in range(p, p + (1 << o)):
                if free[q] != 0 or covered[q] != 0:
                    ok = False
                    break
        if not ok:
            cnt[1] += 1
            continue
        for q in range(p, p + (1 << o)):
            covered[q] = 1
        _set_block(m, p, o, b_mt[i], b_owner[i], b_obj[i])
        cnt[0] += 1
    for i in range(p_pfn.shape[0]):
        p = p_pfn[i]
        o = p_order[i]
        z = m.pb_zone[p >> pageblock_order] if 0 <= p < npfn else -1
        ok = z >= 0 and p + (1 << o) <= npfn and (p & ((1 << o) - 1)) == 0
        if ok:
            for q in range(p, p + (1 << o)):
                if free[q] != 0 or covered[q] != 0:
                    ok = False
                    break
        if not ok:
            cnt[3] += 1
            continue
        for q in range(p, p + (1 << o)):
            covered[q] = 1
        mt = p_mt[i]
        if mt >= MIGRATE_PCPTYPES or mt < 0:
            mt = MIGRATE_MOVABLE
        m.pg_order[p] = o
        m.pg_list_mt[p] = mt          # v6.1: the type a drain returns it to
        pageblock_set_has(m, p, o, mt)
        _pcp_add(m, z, p_cpu[i] % m.pcp.shape[1], pcp_order_to_pindex(m, mt, o), p, True)
        m.pcp[z, p_cpu[i] % m.pcp.shape[1], PCP_COUNT] += 1 << o
        cnt[2] += 1 << o
    for z in range(nz):
        p = m.zone_start[z]
        end = m.zone_end[z]
        while p < end:
            if m.pb_zone[p >> pageblock_order] != z or free[p] != 0 or covered[p] != 0:
                p += 1
                continue
            mt = fill_mt[p]
            if mt < 0:
                m.pg_flags[p] = PG_reserved
                cnt[6] += 1
                p += 1
                continue
            o = np.int64(comp[p])
            if o > 0:
                if p + (1 << o) > end:
                    o = 0
                else:
                    for q in range(p, p + (1 << o)):
                        if free[q] != 0 or covered[q] != 0 or fill_mt[q] < 0:
                            o = 0
                            break
            _set_block(m, p, o, mt, fill_owner, -1)
            cnt[4] += 1
            cnt[5] += 1 << o
            p += 1 << o
    # pageblocks holding only reserved pages keep their boot type's bit
    for pb in range(m.pb_flags.shape[0]):
        if m.pb_zone[pb] >= 0 and (m.pb_flags[pb] & PB_has_mask) == 0:
            s = pb << pageblock_order
            for q in range(s, min(s + (1 << pageblock_order), npfn)):
                if free[q] == 0:
                    pageblock_set_has(m, s, 0, m.pb_mt[pb])
                    break


# ---------------------------------------------------------------- pcp pages at the start

#: columns of :func:`first_touch`'s output
FT_PFN, FT_ORDER, FT_MT, FT_CPU, FT_LINE, FT_DRAIN = range(6)


@njit
def first_touch(kind, pfn, order, mt, cpu, failed, line, lo, hi, seen, start_free, out, n):
    """Scan events [lo, hi) for pages parked on a per-cpu list when the start
    snapshot was read: the first event touching a page (every kmem event that
    names a pfn marks its pages seen) is an allocation of a pcp order or a
    ``mm_page_pcpu_drain``, and the start snapshot does not show the page
    free.  Appends (pfn, order, mt, cpu, line, drain) rows to ``out`` from row
    ``n``; returns the new row count (stops when ``out`` is full)."""
    for i in range(lo, hi):
        k = kind[i]
        if k != MM_PAGE_ALLOC and k != MM_PAGE_FREE and k != MM_PAGE_ALLOC_ZONE_LOCKED \
                and k != MM_PAGE_PCPU_DRAIN and k != MM_PAGE_ALLOC_EXTFRAG:
            continue
        p = pfn[i]
        o = np.int64(order[i])
        if p < 0 or o < 0 or o > MAX_PAGE_ORDER or p + (1 << o) > seen.shape[0]:
            continue
        fresh = True
        for q in range(p, p + (1 << o)):
            if seen[q] != 0:
                fresh = False
            seen[q] = 1
        if not fresh:
            continue
        drain = k == MM_PAGE_PCPU_DRAIN
        if not (drain or (k == MM_PAGE_ALLOC and not failed[i])):
            continue
        if o > PAGE_ALLOC_COSTLY_ORDER and o != pageblock_order:
            continue
        was_free = False
        for q in range(p, p + (1 << o)):
            if q < start_free.shape[0] and start_free[q] != 0:
                was_free = True
                break
        if was_free or n >= out.shape[0]:
            continue
        out[n, FT_PFN] = p
        out[n, FT_ORDER] = o
        out[n, FT_MT] = mt[i]
        out[n, FT_CPU] = cpu[i]
        out[n, FT_LINE] = line[i]
        out[n, FT_DRAIN] = 1 if drain else 0
        n += 1
    return n


#: first_types(): per-cpu columns of ``last`` (the cpu's last zone_locked)
_LZ_PFN, _LZ_ORDER, _LZ_BLOCK = range(3)


@njit
def first_types(kind, pfn, order, mt, fb_order, fb_mt, cpu, iso_end, lo, hi, rev, last):
    """Scan events [lo, hi) for the type each pageblock had at the start: the
    first event naming a page of the block shows it, if it is an
    ``mm_page_alloc_zone_locked`` (taken off the free list of the block's
    type), an ``mm_page_pcpu_drain`` (get_pfnblock_migratetype) or an
    ``mm_page_alloc_extfrag`` (``fallback_migratetype``: the type before the
    fallback, for every block of the fallback buddy).  A claim of part of a
    block (try_to_claim_block) retypes it and takes the page through
    __rmqueue_smallest, whose zone_locked line (the new type) comes just
    before the extfrag line on that cpu: the extfrag's type wins then.
    Compaction's free scanner can retype the blocks it isolates a buddy of
    order >= pageblock_order - 1 from (__isolate_free_page): a block first
    named inside such an ``mm_compaction_isolate_freepages`` range (the
    caller passes ``iso_end`` >= 0, the range's end, for ranges that took
    that many pages; -1 on other rows) cannot tell.  Merges of differently typed
    pageblock-sized buddies (__free_one_page) and highatomic reserves retype
    without a trace; otherwise only fallbacks change a block's type.
    ``rev`` (int8 per pageblock) holds -1 for a block not yet shown, its
    type, or -2 when it cannot tell; ``last`` (int64 [cpus, 3]) carries each
    cpu's last zone_locked line between calls."""
    nb = rev.shape[0]
    for i in range(lo, hi):
        k = kind[i]
        p = pfn[i]
        c = cpu[i]
        if p < 0:
            continue
        if iso_end[i] >= 0:
            b1 = (iso_end[i] - 1) >> pageblock_order
            for b in range(p >> pageblock_order, min(b1 + 1, nb)):
                if rev[b] == -1:
                    rev[b] = -2
            continue
        if k == MM_PAGE_ALLOC_EXTFRAG:
            o = np.int64(fb_order[i])
            t = np.int64(fb_mt[i])
        elif k == MM_PAGE_ALLOC_ZONE_LOCKED or k == MM_PAGE_PCPU_DRAIN:
            o = np.int64(order[i])
            t = np.int64(mt[i])
        else:
            if 0 <= c < last.shape[0] and (k == MM_PAGE_ALLOC or k == MM_PAGE_FREE):
                last[c, _LZ_PFN] = -1
            continue
        if o < 0 or o > MAX_PAGE_ORDER:
            continue
        if t < 0 or t >= MIGRATE_PCPTYPES:
            t = -2
        if k == MM_PAGE_ALLOC_EXTFRAG:
            if 0 <= c < last.shape[0] and o < pageblock_order and last[c, _LZ_PFN] == p \
                    and last[c, _LZ_ORDER] == order[i] and last[c, _LZ_BLOCK] >= 0:
                rev[last[c, _LZ_BLOCK]] = t         # the claim's own zone_locked showed it
            p = p & ~((np.int64(1) << o) - 1)       # the fallback buddy
        new = -1
        b1 = (p + (1 << o) - 1) >> pageblock_order
        for b in range(p >> pageblock_order, min(b1 + 1, nb)):
            if rev[b] == -1:
                rev[b] = t
                if new < 0:
                    new = b
        if 0 <= c < last.shape[0]:
            if k == MM_PAGE_ALLOC_ZONE_LOCKED:
                last[c, _LZ_PFN] = pfn[i]
                last[c, _LZ_ORDER] = order[i]
                last[c, _LZ_BLOCK] = new
            else:
                last[c, _LZ_PFN] = -1


def pcp_list_order(rows) -> np.ndarray:
    """The rows of :func:`first_touch` in list order: a pcp allocation takes
    the list head, a drain (free_pcppages_bulk) the tail, so allocated pages
    come first by time, drained ones after them latest first."""
    rows = np.asarray(rows)
    if not len(rows):
        return rows
    key = np.where(rows[:, FT_DRAIN] != 0, -rows[:, FT_LINE], rows[:, FT_LINE])
    return rows[np.lexsort((key, rows[:, FT_DRAIN]))]


# ---------------------------------------------------------------- the builder

def recording_machine(manifest, flags, *, memory=None, low_memory=None, cpus=None,
                      version="6.12", obj_capacity=1, **kw):
    """A Machine with the recording's geometry and nothing placed by spbsim
    itself: memory sizes and cpus from ``manifest['machine']`` unless given,
    the KPF_RESERVED runs of ``flags`` as reserved memory (so managed pages
    and the watermarks derived from them follow the real zones), the
    manifest's min_free_kbytes; pcp lists on; compaction may move any
    movable block (``migrate_untracked``: blocks in use at the start carry no
    stream id)."""
    from spbsim.errors import SpbsimError
    from spbsim.machine import Machine
    mach = (manifest or {}).get("machine", {})
    if memory is None:
        if "ram_mb" not in mach:
            raise SpbsimError("manifest has no machine.ram_mb: pass memory=")
        memory = f"{int(mach['ram_mb'])}M"
    if low_memory is None and "ram_below_4g_mb" in mach:
        low_memory = f"{int(mach['ram_below_4g_mb'])}M"
    if cpus is None:
        cpus = int(mach.get("vcpus", 2))
    sysctl = mach.get("sysctl_vm", {})
    if "min_free_kbytes" in sysctl:
        kw.setdefault("min_free_kbytes", int(sysctl["min_free_kbytes"]))
    kw.setdefault("migrate_untracked", True)
    from spbsim.mm.geometry import build_geometry
    geom = build_geometry(memory, low_memory=low_memory, kernel_image=0,
                          memmap_bytes_per_page=0, firmware_reserved=0)
    return Machine(memory=memory, low_memory=low_memory, cpus=int(cpus), version=version,
                   early_unmovable=0, firmware_reserved=0, kernel_image=0,
                   memmap_bytes_per_page=0, reserved=reserved_ranges(flags, geom.nr_pfns),
                   obj_capacity=obj_capacity, piece_capacity=0, **kw)


def build_start_state(machine, snap, flags, blocks, pcp_rows, fill_owner, known=None):
    """Load the start snapshot ``snap`` (a read_index() entry) into ``machine``:
    exact free blocks and fitted pageblock types (the placement replay's start,
    spbsim.trace.replay), then :func:`retile` with ``blocks`` (dict of arrays
    pfn, order, mt, owner, obj) and ``pcp_rows`` (:func:`first_touch` rows),
    and each cpu's pcp ``high`` from the snapshot's zoneinfo.  ``known``: the
    pageblock types the trace reveals (:func:`first_types`), kept by the fit.
    Returns what was built (counters, free pages and blocks)."""
    from spbsim.mm.state import PCP_HIGH
    from spbsim.observe import procfs
    from spbsim.trace.replay import PlacementReplay, _start_state, page_classes
    m = machine.mem
    rep = PlacementReplay(machine)
    zone_ranges = [(z, int(m.zone_start[z]), int(m.zone_end[z]))
                   for z in machine.populated_zones()]
    fpfn, ford, flags = _start_state(rep, snap, zone_ranges, flags=flags, known=known)
    free = np.zeros(m.pg_flags.size, np.uint8)
    for o in np.unique(ford).tolist():
        heads = fpfn[ford == o]
        free[(heads[:, None] + np.arange(1 << o)).ravel()] = 1
    cls = page_classes(flags)
    fill_mt = fill_types(cls, m.pb_mt)
    comp = compound_orders(flags)
    rows = pcp_list_order(pcp_rows)
    if not len(rows):
        rows = np.zeros((0, 6), np.int64)
    cnt = np.zeros(len(RETILE_COUNTERS), np.int64)
    i64 = lambda a: np.ascontiguousarray(a, np.int64)        # noqa: E731
    retile(m, free, fill_mt, comp, i64(blocks["pfn"]), i64(blocks["order"]), i64(blocks["mt"]),
           i64(blocks["owner"]), i64(blocks["obj"]), i64(rows[:, FT_PFN]),
           i64(rows[:, FT_ORDER]), i64(rows[:, FT_MT]), i64(rows[:, FT_CPU]),
           np.int64(fill_owner), np.zeros(m.pg_flags.size, np.uint8), cnt)
    zi = procfs.read_snapshot(snap["dir"]).get("zoneinfo", {})
    names = machine.zone_names()
    for k, z in enumerate(machine.populated_zones()):
        for ps in (zi.get(names[k]) or {}).get("pagesets", []):
            c = int(ps.get("cpu", -1))
            if 0 <= c < m.pcp.shape[1] and "high" in ps:
                m.pcp[z, c, PCP_HIGH] = int(ps["high"])
    out = {n: int(v) for n, v in zip(RETILE_COUNTERS, cnt)}
    out.update(free_blocks=int(len(fpfn)), free_pages=int((1 << ford.astype(np.int64)).sum()))
    if known is not None:
        kn = np.asarray(known[:m.pb_mt.size])
        rv = kn >= 0
        out.update(types_revealed=int(rv.sum()),
                   types_revealed_kept=int((m.pb_mt[:len(kn)][rv] == kn[rv]).sum()))
    return out


def free_factor_max(batch, high) -> int:
    """The largest pcp->free_factor v6.1's nr_pcp_free() reaches: it grows
    by one per drain while batch << free_factor < high - batch, up to
    CONFIG_PCP_BATCH_SCALE_MAX."""
    from spbsim.mm.const import CONFIG_PCP_BATCH_SCALE_MAX
    f = 0
    while batch > 0 and (batch << f) < high - batch and f < CONFIG_PCP_BATCH_SCALE_MAX:
        f += 1
    return f


def draw_timer_phases(seed, kcompactd_interval_ns, vmstat_interval_ns) -> dict:
    """Draw, with ``seed``, where in their periods the two timers the trace
    does not show stand at the start marker: kcompactd()'s
    wait_event_freezable_timeout() of HPAGE_FRAG_CHECK_INTERVAL_MSEC (its
    next proactive check) and vmstat_update()'s delayed work (its next run),
    each uniform in (0, period].  Without a draw both are a whole period
    away.  The draw uses its own stream, so a seed's pcp and free-list draw
    stay what draw_hidden_state() gives.  Returns the delays in ns."""
    rng = np.random.default_rng([int(seed), 1])
    return {"kcompactd_ns": int(rng.integers(1, int(kcompactd_interval_ns) + 1)),
            "vmstat_update_ns": int(rng.integers(1, int(vmstat_interval_ns) + 1))}


def draw_hidden_state(machine, seed) -> dict:
    """Draw the start state /proc does not show, with ``seed``: each cpu's
    pcp ``free_count`` (uniform in [0, HIDDEN_FREE_COUNT_BATCHES * batch]),
    ``alloc_factor`` (uniform in [0, CONFIG_PCP_BATCH_SCALE_MAX]) and
    PCPF_PREV_FREE_HIGH_ORDER (one chance in two), and the order of every
    buddy free list (a uniform shuffle).  The v6.1 model has neither
    alloc_factor nor the flag: its free_count slot holds v6.1's
    ``free_factor``, drawn uniform in [0, free_factor_max(batch, high)].
    Without a draw these start at 0 and in the order the start state was
    built.  Returns what was drawn."""
    from spbsim.mm.const import CONFIG_PCP_BATCH_SCALE_MAX, KV_6_1
    from spbsim.mm.state import (CFG, PCP_ALLOC_FACTOR, PCP_BATCH, PCP_FLAGS, PCP_FREE_COUNT,
                                 PCP_HIGH, PCPF_PREV_FREE_HIGH_ORDER)
    m = machine.mem
    rng = np.random.default_rng(int(seed))
    pcp = {}
    v61 = int(m.cfg[CFG["version"]]) == KV_6_1
    for z in machine.populated_zones():
        for c in range(m.pcp.shape[1]):
            row = m.pcp[z, c]
            if v61:
                row[PCP_FREE_COUNT] = rng.integers(
                    0, free_factor_max(int(row[PCP_BATCH]), int(row[PCP_HIGH])) + 1)
                pcp[f"{int(z)}/{c}"] = [int(row[PCP_FREE_COUNT]), 0, 0]
                continue
            row[PCP_FREE_COUNT] = rng.integers(0, HIDDEN_FREE_COUNT_BATCHES * row[PCP_BATCH] + 1)
            row[PCP_ALLOC_FACTOR] = rng.integers(0, CONFIG_PCP_BATCH_SCALE_MAX + 1)
            prev = bool(rng.integers(0, 2))
            row[PCP_FLAGS] = (row[PCP_FLAGS] | PCPF_PREV_FREE_HIGH_ORDER) if prev else \
                (row[PCP_FLAGS] & ~PCPF_PREV_FREE_HIGH_ORDER)
            pcp[f"{int(z)}/{c}"] = [int(row[PCP_FREE_COUNT]), int(row[PCP_ALLOC_FACTOR]), int(prev)]
    shuffled = 0
    heads = m.fa_head
    for L, o, t in zip(*np.nonzero(heads >= 0)):
        pfns = []
        p = int(heads[L, o, t])
        while p >= 0:
            pfns.append(p)
            p = int(m.pg_next[p])
        if len(pfns) < 2:
            continue
        order = np.asarray(pfns, np.int64)[rng.permutation(len(pfns))]
        m.pg_prev[order[0]] = -1
        m.pg_prev[order[1:]] = order[:-1]
        m.pg_next[order[:-1]] = order[1:]
        m.pg_next[order[-1]] = -1
        heads[L, o, t] = order[0]
        m.fa_tail[L, o, t] = order[-1]
        shuffled += 1
    return {"seed": int(seed), "pcp": pcp, "free_lists_shuffled": shuffled}
