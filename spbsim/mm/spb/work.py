"""The SPB series' background work: the per-SPB defrag worker, pageblock
evacuation, S1's kevacuate work, the SPB slab shrink and the (deferred or
slowpath) targeted evacuation ``spb_evacuate_for_order``.

The kernel runs these from workqueues (per-SPB ``defrag_work`` plus an
irq_work kick, a per-pgdat slab-shrink work, the evacuate work).  Queuing is
single-flight in the kernel (``queue_work`` on a pending item is a no-op); here
the queued state lives in the SPB arrays (``defrag_state``, ``pend``) and
``spb_run_pending`` runs whatever is queued between requests, as the engine's
other background work does.
"""
from ..compaction import migrate_block, page_migratable
from ..const import (MAX_NR_ZONES, MIGRATE_ISOLATE, MIGRATE_MOVABLE, MIGRATE_RECLAIMABLE,
                     MIGRATE_UNMOVABLE, PB_all_free,
                     PB_has_movable, PG_buddy, PG_head, SUPERPAGEBLOCK_NR_PAGES,
                     pageblock_nr_pages, pageblock_order)
from ..buddy import move_freepages_block
from ..jit import njit, njit_inline
from ..const import ALLOC_KSWAPD, ALLOC_WMARK_MIN, ZONE_NORMAL
from ..freelist import get_page_from_freelist_call
from ..tracepoint import EV_SPB_EVAC_DONE, trace_event
from ..split import split_lru_block
from ..vmscan import shrink_slab
from ..state import CFG, LRU_SLAB
from .lists import (spb_defrag_begin, spb_defrag_end, spb_defrag_should_stop,
                    spb_list_is_tainted, superpageblock_clear_has_movable_call)
from .params import (NR_SB_FULLNESS, PEND_DEFRAG, PEND_EVAC_LAST_NS, PEND_EVAC_MT,
                     PEND_KEVAC_N, PEND_KEVAC_Q, ST_KEVAC_MIGRATED, ST_KEVAC_RUNS,
                     PEND_EVAC_ORDER, PEND_EVACUATE, PEND_SLAB_SHRINK, SB_TAINTED,
                     SPB_CFG_DEFRAG_BUDGET, SPB_CFG_DEFRAG_CLAIMED, SPB_DEFRAG_QUEUED, SPB_CFG_EVAC_CAP,
                     SPB_CFG_EVAC_PHASE_BLOCKS, SPB_CFG_SLAB_SHRINK_DIV, ST_DEFERRED_EVAC, ST_DEFRAG_MIGRATED,
                     ST_DEFRAG_PB, ST_EVAC_FOR_ORDER, ST_EVAC_MIGRATED, ST_SLAB_SHRINKS,
                     ST_SLAB_SHRUNK)

__all__ = ["migrate_range_out", "evacuate_pageblock", "spb_defrag_run", "spb_slab_shrink_run",
           "spb_evacuate_for_order", "kevacuate_work", "spb_run_pending"]

_CFG_SPLIT = CFG["migrate_split_large"]
_BIG = 1 << 30
#: claimed blocks sort after every MOVABLE block that can be emptied
_CLAIMED = 1 << 20
#: migration targets: the free lists at the MIN watermark, no reclaim ([SIM]: the
#: kernel's alloc_migration_target may reclaim; here a failed target ends the
#: evacuation, and the allocator is not re-entered through its slow path)
_DST_FLAGS = ALLOC_WMARK_MIN | ALLOC_KSWAPD
_DST_ZONE = ZONE_NORMAL


@njit_inline
def migrate_range_out(m, start, end, cpu):
    """migrate_pages() of every movable block of [start, end) (isolated by
    the caller) to targets from the free lists at the MIN watermark, as the
    SPB evacuation takes them; a large block without a target is split and
    its base pages migrated (``split_lru_block``); stops at the first failed
    migration.  Returns (pages migrated, whether none failed)."""
    migrated = 0
    p = start
    while p < end:
        f = m.pg_flags[p]
        if f & PG_buddy:
            p += 1 << m.pg_order[p]
            continue
        if (f & PG_head) and page_migratable(m, p):
            o = m.pg_order[p]
            dst = get_page_from_freelist_call(m, o, _DST_FLAGS, _DST_ZONE, MIGRATE_MOVABLE, cpu)
            if dst < 0:
                # migrate_pages() splits a large folio it found no target for
                if o > 0 and m.cfg[_CFG_SPLIT] != 0 and split_lru_block(m, p):
                    continue
                return migrated, False
            migrate_block(m, p, dst, cpu)
            migrated += 1 << o
            p += 1 << o
            continue
        if f & PG_head:
            p += 1 << m.pg_order[p]
        else:
            p += 1          # a tail, or inside a buddy freed blocks merged into
    return migrated, True


@njit_inline
def evacuate_pageblock(m, start, cpu):
    """evacuate_pageblock() [S1 §4, S v2 15]: migrate every movable block out
    of one pageblock.  Destinations are ordinary MOVABLE allocations (so they
    follow the SPB steering); the block is isolated meanwhile so none lands in
    it ([SIM]: the kernel relies on the allocator's choice).  A large block
    without a target is split and its base pages migrated (``split_lru_block``);
    stops at the first failed migration.  Returns pages migrated."""
    pb = start >> pageblock_order
    z = m.pb_zone[pb]
    old = m.pb_mt[pb]
    if old == MIGRATE_ISOLATE or z < 0:
        return 0
    move_freepages_block(m, z, start, old, MIGRATE_ISOLATE)
    migrated, _ok = migrate_range_out(m, start, start + pageblock_nr_pages, cpu)
    # undo the isolation: the block keeps its label (a fully free block was
    # relabelled by mark_pageblock_free only if it was UNMOV/RECL/HIGHATOMIC)
    back = old
    if (m.pb_flags[pb] & PB_all_free) and m.pb_mt[pb] == MIGRATE_ISOLATE:
        back = MIGRATE_MOVABLE if old < 3 else old
    move_freepages_block(m, z, start, MIGRATE_ISOLATE, back)
    return migrated


@njit_inline
def _movable_pages(m, start, whole):
    """Allocated migratable pages in a pageblock (the [SIM] pick key).  With
    ``whole`` (a MOVABLE block to be emptied): -1 if the block also holds a
    page that cannot move (pinned, unmovable, a pcp page, reserved), since
    evacuating it could not free the pageblock.  Without (a claimed
    UNMOVABLE/RECLAIMABLE block): the movable remnants that S1's claim-time
    evacuation moved out so that the block "becomes purely non-movable"."""
    n = 0
    p = start
    end = start + pageblock_nr_pages
    while p < end:
        f = m.pg_flags[p]
        if f & PG_buddy:
            p += 1 << m.pg_order[p]
        elif f & PG_head:
            o = m.pg_order[p]
            if page_migratable(m, p):
                n += 1 << o
            elif whole:
                return -1
            p += 1 << o
        elif whole:
            return -1
        else:
            p += 1
    return n


@njit_inline
def _spb_pb_range(m, i):
    """(first pageblock, end) of SPB slot i, clipped to its zone."""
    spb = m.spb
    z = spb.zone[i]
    lo = spb.start_pfn[i]
    hi = lo + SUPERPAGEBLOCK_NR_PAGES
    if lo < m.zone_start[z]:
        lo = m.zone_start[z]
    if hi > m.zone_end[z]:
        hi = m.zone_end[z]
    return lo >> pageblock_order, (hi + pageblock_nr_pages - 1) >> pageblock_order


@njit_inline
def spb_defrag_run(m, i, now, cpu):
    """The per-SPB defrag work [S v2 15/40, v1 24/43]: evacuate MOVABLE
    pageblocks of a tainted SPB that can be emptied (every allocated page
    migratable), fewest movable pages first ([SIM] pick and filter); then,
    with ``defrag_claimed_blocks`` [I], claimed UNMOVABLE/RECLAIMABLE blocks
    that still hold movable pages, fewest first (the job of S1's claim-time
    evacuate_pageblock, which v2 15/40 folded into this worker).  The stop
    condition is rechecked after each block, at most ``defrag_budget``
    pageblocks a run ([SIM]).  No progress (nr_free did not rise) stamps
    defrag_last_no_progress, which gates the next run for 5 s."""
    spb = m.spb
    z = spb.zone[i]
    spb_defrag_begin(spb, i, now)
    budget = spb.cfg[SPB_CFG_DEFRAG_BUDGET]
    claimed = spb.cfg[SPB_CFG_DEFRAG_CLAIMED] != 0
    b0, b1 = _spb_pb_range(m, i)
    sc = spb.scratch
    for b in range(b0, b1):
        k = b - b0
        sc[k] = _BIG
        if m.pb_zone[b] != z or (m.pb_flags[b] & PB_all_free) != 0 \
                or (m.pb_flags[b] & PB_has_movable) == 0:
            continue
        bmt = m.pb_mt[b]
        if bmt == MIGRATE_MOVABLE:
            n = _movable_pages(m, b << pageblock_order, True)
            if n > 0:
                sc[k] = n
        elif claimed and (bmt == MIGRATE_UNMOVABLE or bmt == MIGRATE_RECLAIMABLE):
            n = _movable_pages(m, b << pageblock_order, False)
            if n > 0:
                sc[k] = _CLAIMED + n
    done = 0
    if spb_list_is_tainted(spb.list_id[i]):
        while done < budget and not spb_defrag_should_stop(spb, i):
            best = -1
            for k in range(b1 - b0):
                if sc[k] < _BIG and (best < 0 or sc[k] < sc[best]):
                    best = k
            if best < 0:
                break
            sc[best] = _BIG
            moved = evacuate_pageblock(m, (b0 + best) << pageblock_order, cpu)
            spb.stat[z, ST_DEFRAG_PB] += 1
            spb.stat[z, ST_DEFRAG_MIGRATED] += moved
            done += 1
    return spb_defrag_end(spb, i, now)


@njit_inline
def spb_slab_shrink_run(m, cpu):
    """The SPB slab-shrink work [S v1 30/32]: shrink reclaimable slab by
    1/``slab_shrink_div`` of its pages ([SIM] amount, default 8)."""
    spb = m.spb
    n = m.lru_pages[LRU_SLAB] // spb.cfg[SPB_CFG_SLAB_SHRINK_DIV]
    if n < 32:
        n = 32
    _scanned, freed = shrink_slab(m, n, cpu)
    for z in range(MAX_NR_ZONES):
        if spb.zone_count[z] > 0:
            spb.stat[z, ST_SLAB_SHRINKS] += 1
            spb.stat[z, ST_SLAB_SHRUNK] += freed
            break
    return freed


@njit_inline
def spb_evacuate_for_order(m, z, order, mt, cpu):
    """spb_evacuate_for_order() [S v1 24/27/45, S2]: up to
    ``evacuate_for_order_cap`` tainted SPBs with movable pageblocks (fullness
    order) are candidates; phase 1 evacuates movable pages from pageblocks
    already labelled ``mt`` (so their buddies coalesce), phase 2 evacuates
    whole MOVABLE pageblocks (so PASS_2 can claim them); each phase at most
    ``evacuate_phase_blocks`` pageblocks ([SIM] caps, default 8 and 8).
    Returns pages migrated."""
    spb = m.spb
    spb.stat[z, ST_EVAC_FOR_ORDER] += 1
    p1 = 0
    p2 = 0
    migrated = 0
    cap = spb.cfg[SPB_CFG_EVAC_CAP]
    phase_blocks = spb.cfg[SPB_CFG_EVAC_PHASE_BLOCKS]
    for phase in range(2):
        want = mt if phase == 0 else MIGRATE_MOVABLE
        ncand = 0
        blocks = 0
        for full in range(NR_SB_FULLNESS):
            i = spb.list_head[z, SB_TAINTED * NR_SB_FULLNESS + full]
            while i >= 0 and ncand < cap and blocks < phase_blocks:
                nxt = spb.list_next[i]
                if spb.nr_movable[i] > 0:
                    ncand += 1
                    b0, b1 = _spb_pb_range(m, i)
                    for b in range(b0, b1):
                        if blocks >= phase_blocks:
                            break
                        if m.pb_zone[b] != z or m.pb_mt[b] != want or (m.pb_flags[b] & PB_all_free):
                            continue
                        if (m.pb_flags[b] & PB_has_movable) == 0:
                            continue
                        if _movable_pages(m, b << pageblock_order, True) <= 0:
                            continue
                        migrated += evacuate_pageblock(m, b << pageblock_order, cpu)
                        blocks += 1
                i = nxt
        if phase == 0:
            p1 = blocks
        else:
            p2 = blocks
    spb.stat[z, ST_EVAC_MIGRATED] += migrated
    trace_event(m, EV_SPB_EVAC_DONE, z, order, mt, p1, p2, 1 if migrated > 0 else 0)
    return migrated


@njit_inline
def kevacuate_work(m, cpu):
    """The kevacuate/%d work [S1 §4] (one per node, max_active 1): each
    queued pageblock in turn.  evacuate_pageblock() returns at once if the
    block is labelled MOVABLE again, otherwise migrates its movable pages
    out (stopping at the first failed migration), then rescans the block so
    that compaction's end-of-block rule clears PB_has_movable: only when no
    allocated block is left to isolate or skip (S1 §9.1), and not while free
    MOVABLE fragments remain.  Returns items run."""
    spb = m.spb
    k = 0
    while k < spb.pend[PEND_KEVAC_N]:     # items queued meanwhile run too
        start = spb.pend[PEND_KEVAC_Q + k]
        k += 1
        pb = start >> pageblock_order
        z = m.pb_zone[pb]
        if z < 0 or m.pb_mt[pb] == MIGRATE_MOVABLE:
            continue
        moved = evacuate_pageblock(m, start, cpu)
        spb.stat[z, ST_KEVAC_RUNS] += 1
        spb.stat[z, ST_KEVAC_MIGRATED] += moved
        p = start
        end = start + pageblock_nr_pages
        occupied = False
        while p < end:
            f = m.pg_flags[p]
            if f & PG_head:
                occupied = True
                break
            p += (1 << m.pg_order[p]) if (f & PG_buddy) else 1
        if not occupied:
            superpageblock_clear_has_movable_call(spb, m, start)
    spb.pend[PEND_KEVAC_N] = 0
    return k


@njit
def spb_run_pending(m, now, cpu):
    # (the work functions above are inlined here and into the slow path's
    # spb_evacuate_for_order call: each separately compiled function that
    # reaches the allocation path costs a full LLVM pass over it)
    """Run the queued SPB work: defrag of every QUEUED SPB (slot order), the
    slab shrink, S1's kevacuate items, the deferred evacuation.  Returns
    items run."""
    spb = m.spb
    ran = 0
    if spb.pend[PEND_DEFRAG] > 0:
        spb.pend[PEND_DEFRAG] = 0
        for i in range(spb.start_pfn.shape[0]):
            if spb.defrag_state[i] == SPB_DEFRAG_QUEUED:
                spb_defrag_run(m, i, now, cpu)
                ran += 1
    if spb.pend[PEND_SLAB_SHRINK] != 0:
        spb.pend[PEND_SLAB_SHRINK] = 0
        spb_slab_shrink_run(m, cpu)
        ran += 1
    if spb.pend[PEND_KEVAC_N] > 0:
        ran += kevacuate_work(m, cpu)
    if spb.pend[PEND_EVACUATE] != 0:
        spb.pend[PEND_EVACUATE] = 0
        spb.pend[PEND_EVAC_LAST_NS] = now
        z = MAX_NR_ZONES - 1
        while z > 0 and spb.zone_count[z] == 0:
            z -= 1
        spb.stat[z, ST_DEFERRED_EVAC] += 1
        spb_evacuate_for_order(m, z, spb.pend[PEND_EVAC_ORDER], spb.pend[PEND_EVAC_MT], cpu)
        ran += 1
    return ran
