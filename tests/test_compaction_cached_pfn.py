"""Where the migrate scanner restarts (mm/compaction.c v6.12): the zone's
compact_cached_migrate_pfn[] (async and sync), moved forward only by
update_cached_migrate() after a block isolate_migratepages_block() finished
with nothing isolated in its last call (or finishing the block after a
batch), which also sets the block's skip bit; compact_init_migrate_pfn,
below which a compaction counts as whole-zone; reset_cached_positions()
where the scanners meet."""
import numpy as np

from spbsim import Machine
from spbsim.mm import compaction as C
from spbsim.mm.const import MIGRATE_MOVABLE, PB_compact_skip, ZONE_NORMAL, pageblock_nr_pages
from spbsim.mm.craft import exhaust, zero_watermarks
from spbsim.mm.state import ZSTAT

PB = pageblock_nr_pages
ASYNC = ZSTAT["compact_cached_migrate_pfn_async"]
SYNC = ZSTAT["compact_cached_migrate_pfn_sync"]
INIT = ZSTAT["compact_init_migrate_pfn"]
FREE = ZSTAT["compact_cached_free_pfn"]
KCOMPACTD = C.CC_SYNC | C.CC_KCOMPACTD
Z = ZONE_NORMAL


def _zone(left):
    """Normal full of movable order-0 pages, except: the first wholly
    allocated MOVABLE block keeps ``left`` of them (the rest free), and the
    last such block is half free (targets).  Returns the machine and the
    first block's number."""
    m = Machine("1536M", low_memory="512M", cpus=1, pcp=False, early_unmovable=0,
                migrate_untracked=True)
    zero_watermarks(m)
    taken = np.zeros(m.mem.pg_flags.size, bool)
    taken[exhaust(m)] = True
    mem = m.mem
    zs, ze = int(mem.zone_start[Z]), int(mem.zone_end[Z])
    whole = [b for b in range(zs // PB, ze // PB)
             if taken[b * PB:(b + 1) * PB].all() and mem.pb_mt[b] == MIGRATE_MOVABLE]
    s0, top = whole[0], whole[-1]
    free = np.concatenate([np.arange(s0 * PB + left, (s0 + 1) * PB),
                           np.arange(top * PB, (top + 1) * PB, 2)])
    assert (m.run_ops(np.zeros(len(free), np.int64), 0, pfns=free.astype(np.int64), cpu=0)
            == 0).all()
    mem.zstat[Z, FREE] = top * PB
    return m, s0


def _compact(m, flags, start):
    mem = m.mem
    mem.zstat[Z, ASYNC] = start
    mem.zstat[Z, SYNC] = start
    return C.compact_zone(mem, Z, 9, MIGRATE_MOVABLE, flags, 0, -1)


def test_a_block_whose_one_call_isolated_pages_keeps_the_cached_pfn_and_no_skip_bit():
    """Eight movable pages left in the first block: one
    isolate_migratepages_block() call takes them all (fewer than
    COMPACT_CLUSTER_MAX) and ends the block with pages isolated, so neither
    update_cached_migrate() nor set_pageblock_skip() runs; the block comes
    free and compaction succeeds, and the next compaction restarts at that
    block.  The old model restarted past it."""
    m, s0 = _zone(8)
    assert _compact(m, KCOMPACTD, s0 * PB) == C.COMPACT_SUCCESS
    assert m.vmstat_counters()["pgmigrate_success"] == 8
    assert m.mem.zstat[Z, SYNC] == s0 * PB and m.mem.zstat[Z, ASYNC] == s0 * PB
    assert not m.mem.pb_flags[s0] & PB_compact_skip
    m.check()


def test_a_block_finished_after_a_batch_is_marked_skip_and_passed():
    """100 movable pages: the first call stops at COMPACT_CLUSTER_MAX, the
    next starts in the same block (finish_pageblock) and scans it to its
    end, so the block is marked skip and the cached pfns move to
    pageblock_end_pfn() of its end (the end of the next block, as the
    kernel rounds).  The old model left no skip bit on a block it isolated
    from and restarted at the next block."""
    m, s0 = _zone(100)
    assert _compact(m, KCOMPACTD, s0 * PB) == C.COMPACT_SUCCESS
    assert m.vmstat_counters()["pgmigrate_success"] == 100
    assert m.mem.pb_flags[s0] & PB_compact_skip
    assert m.mem.zstat[Z, SYNC] == (s0 + 2) * PB and m.mem.zstat[Z, ASYNC] == (s0 + 2) * PB
    m.check()


def test_async_compaction_moves_only_the_async_cached_pfn():
    """compact_cached_migrate_pfn[0] is where async compaction restarts, [1]
    sync: an async direct compaction finishing a block moves [0] only."""
    m, s0 = _zone(100)
    m.mem.zstat[Z, ASYNC] = s0 * PB
    m.mem.zstat[Z, SYNC] = (s0 + 50) * PB            # unequal: no update_cached
    assert C.compact_zone(m.mem, Z, 9, MIGRATE_MOVABLE, C.CC_DIRECT, 0, -1) == C.COMPACT_SUCCESS
    assert m.mem.zstat[Z, ASYNC] == (s0 + 2) * PB
    assert m.mem.zstat[Z, SYNC] == (s0 + 50) * PB
    m.check()


def test_a_compaction_restarting_at_the_reset_point_is_whole_zone():
    """compact_zone(): a migrate scanner starting at or below
    compact_init_migrate_pfn (where __reset_isolation_suitable() put it)
    makes the run whole-zone, so scanners that meet end it COMPLETE, not
    PARTIAL_SKIPPED (run1's kcompactd at 73.99 s: starting at the zone's
    start with no reset done, PARTIAL_SKIPPED).  The old model read
    whole-zone from the caller only."""
    for init, want in ((0, C.COMPACT_PARTIAL_SKIPPED), (1, C.COMPACT_COMPLETE)):
        m, s0 = _zone(512)
        m.mem.zstat[Z, INIT] = init * s0 * PB
        m.mem.zstat[Z, FREE] = s0 * PB                   # the scanners meet at once
        assert _compact(m, KCOMPACTD, s0 * PB) == want
        # reset_cached_positions()
        assert m.mem.zstat[Z, SYNC] == m.mem.zone_start[Z] == m.mem.zstat[Z, ASYNC]
        m.check()


def test_a_whole_zone_compaction_leaves_the_cached_pfns_it_did_not_pass():
    """A whole-zone compaction (compact_memory, proactive) starts at the
    zone's start whatever the cached pfns say and moves them forward only
    where it finished blocks: one that succeeds in the first block leaves
    them where they were.  The old model wrote where it stopped, moving
    the next direct compaction's start back."""
    m, s0 = _zone(8)
    far = (s0 + 100) * PB
    assert _compact(m, KCOMPACTD | C.CC_WHOLE_ZONE, far) == C.COMPACT_SUCCESS
    assert m.vmstat_counters()["pgmigrate_success"] == 8
    assert m.mem.zstat[Z, SYNC] == far and m.mem.zstat[Z, ASYNC] == far
    m.check()


def test_proactive_compaction_traces_every_populated_zone():
    """compact_node(pgdat, true) calls compact_zone() for every populated
    zone: one already at or below the low mark ends at once with
    COMPACT_SUCCESS, a begin/end pair in the trace and its cached pfns
    untouched.  The old model skipped such zones (no tracepoints)."""
    from spbsim.mm.const import ZONE_DMA32
    from spbsim.mm.state import CFG, EV_NAMES, NODE
    m = Machine("1536M", low_memory="512M", cpus=1, pcp=False, early_unmovable=0,
                migrate_untracked=True, trace=True, trace_capacity=1 << 16)
    zero_watermarks(m)
    pfns = np.sort(exhaust(m))
    mem = m.mem
    zs = int(mem.zone_start[Z])
    d32 = pfns[(pfns >= mem.zone_start[ZONE_DMA32]) & (pfns < mem.zone_end[ZONE_DMA32])]
    free = np.concatenate([pfns[pfns >= zs][1::2][:20 * PB], d32[:4 * PB]])
    m.run_ops(np.zeros(len(free), np.int64), 0, pfns=free.astype(np.int64), cpu=0)
    mem.cfg[CFG["compaction_proactiveness"]] = 95
    mem.node[NODE["kswapd_wait"]] = 0               # kswapd asleep: proactive runs go on
    low, _ = C.proactive_wmarks(mem)
    assert C.zone_frag_score(mem, ZONE_DMA32) <= low < C.zone_frag_score(mem, Z)
    mem.zstat[ZONE_DMA32, SYNC] = mem.zstat[ZONE_DMA32, ASYNC] = int(d32[PB * 8])
    mem.ev_n[:] = 0
    assert C.proactive_compact_node(mem, 0)
    ev = m.trace_records()
    begin = ev[ev[:, 0] == EV_NAMES.index("mm_compaction_begin")]
    end = ev[ev[:, 0] == EV_NAMES.index("mm_compaction_end")]
    zones = [int(mem.zone_start[z]) for z in range(mem.zstat.shape[0])
             if mem.zone_end[z] > mem.zone_start[z]]
    assert begin[:, 3].tolist() == zones and end[:, 3].tolist() == zones
    d = end[end[:, 3] == mem.zone_start[ZONE_DMA32]][0]
    assert d[8] & 0xff == C.COMPACT_SUCCESS and d[5] == mem.zone_start[ZONE_DMA32]
    assert mem.zstat[ZONE_DMA32, SYNC] == d32[PB * 8] == mem.zstat[ZONE_DMA32, ASYNC]
    m.check()
