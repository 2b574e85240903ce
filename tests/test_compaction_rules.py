"""Compaction's choices of blocks (mm/compaction.c v6.12) on states built by
hand: suitable_migration_target (free pageblocks and non-MOVABLE blocks are
no targets except for MIN-priority direct compaction),
suitable_migration_source (async direct compaction scans blocks of the
request's type), __compact_finished's stealable fallbacks, the check_drain
of the compacting cpu's lists, kcompactd draining only the zone it
compacted, kcompactd compacting a zone only where it suits kcompactd's
index, proactive compaction yielding to a replay's recorded kswapd, kcompactd
woken only for a suitable node, else at its timeout, the vmstat
counters of compaction's scans, and proactive compaction's watermarks."""
import numpy as np
import pytest

from spbsim import Machine
from spbsim.mm import compaction as C
from spbsim.mm.const import (MAX_PAGE_ORDER, MIGRATE_MOVABLE, MIGRATE_UNMOVABLE, PG_buddy, PG_head,
                             PG_pinned, ZONE_DMA32, ZONE_NORMAL, pageblock_nr_pages,
                             pageblock_order)
from spbsim.mm.buddy import move_freepages_block
from spbsim.mm.craft import exhaust, zero_watermarks
from spbsim.mm.state import NODE, PCP_COUNT

PB = pageblock_nr_pages


def _full(pcp=False, cpus=1):
    """1.5 GB (1 GB in Normal), every page allocated movable (migratable)."""
    m = Machine("1536M", low_memory="512M", cpus=cpus, pcp=pcp, early_unmovable=0,
                migrate_untracked=True)
    zero_watermarks(m)
    pfns = np.sort(exhaust(m))
    return m, pfns


def _free(m, pfns, cpu=0):
    m.run_ops(np.zeros(len(pfns), np.int64), 0, pfns=np.asarray(pfns, np.int64), cpu=cpu)


def _block_pages(m, pb):
    s = int(pb) << pageblock_order
    return np.arange(s, s + PB)


def _allocated(m, pb):
    f = m.mem.pg_flags[_block_pages(m, pb)]
    return int((f & PG_head != 0).sum())


def _top_blocks(m, z, n):
    """The n highest pageblocks of zone z whose pages are all allocated."""
    mem = m.mem
    out = []
    for pb in range((int(mem.zone_end[z]) >> pageblock_order) - 1,
                    int(mem.zone_start[z]) >> pageblock_order, -1):
        if mem.pb_zone[pb] == z and _allocated(m, pb) == PB:
            out.append(pb)
            if len(out) == n:
                break
    return out


def test_order_minus_one_compaction_keeps_free_pageblocks_and_unmovable_blocks():
    """/proc/sys/vm/compact_memory and proactive compaction (order -1) take
    migration targets only from MOVABLE blocks and never from a free
    pageblock (suitable_migration_target: a buddy of >= pageblock_order at
    the block's start; ignore_block_suitable is for MIN-priority direct
    compaction only).  The old rule took targets from any block of a
    whole-zone compaction, splitting the free 2 MB blocks."""
    m, _ = _full()
    mem = m.mem
    z = ZONE_NORMAL
    top, unmov, target = _top_blocks(m, z, 3)
    _free(m, _block_pages(m, top))                                # a free pageblock
    move_freepages_block(mem, z, int(unmov) << pageblock_order, MIGRATE_MOVABLE,
                         MIGRATE_UNMOVABLE)
    _free(m, _block_pages(m, unmov)[::2])                         # free pages in an UNMOVABLE block
    _free(m, _block_pages(m, target)[::2])                        # targets in a MOVABLE block
    low = int(mem.zone_start[z]) >> pageblock_order
    src = _block_pages(m, low + 1)
    _free(m, src[50:])                                            # a nearly empty source
    m.compact_memory()
    assert m.vmstat_counters()["pgmigrate_success"] > 0
    assert mem.pg_flags[int(top) << pageblock_order] & PG_buddy
    assert mem.pg_order[int(top) << pageblock_order] >= pageblock_order
    assert _allocated(m, unmov) == PB // 2
    m.check()


def test_async_direct_compaction_scans_blocks_of_the_request_type():
    """suitable_migration_source: an async direct compaction for an
    unmovable order-2 request migrates from UNMOVABLE blocks (to make room
    for the request where its type lives); the old rule scanned only
    MOVABLE blocks for every async direct compaction."""
    m, _ = _full()
    mem = m.mem
    z = ZONE_NORMAL
    top, = _top_blocks(m, z, 1)
    _free(m, _block_pages(m, top)[0::2])          # targets (order-0 holes: a free
    #                                               pageblock is no target for order 2)
    low = (int(mem.zone_start[z]) >> pageblock_order) + 1
    pages = _block_pages(m, low)
    _free(m, pages[0::4])                                         # order-0 holes only
    move_freepages_block(mem, z, int(low) << pageblock_order, MIGRATE_MOVABLE,
                         MIGRATE_UNMOVABLE)
    before = _allocated(m, low)
    C.compact_zone(mem, z, 2, MIGRATE_UNMOVABLE, C.CC_DIRECT, 0, -1)
    assert _allocated(m, low) < before
    assert mem.fa_nr[z, 2:, MIGRATE_UNMOVABLE].sum() > 0
    m.check()


def test_compact_finished_counts_stealable_fallbacks():
    """__compact_finished: done when a free block of the order is on the
    request's list or on a fallback list it may steal from
    (find_suitable_fallback(only_stealable)): any order for unmovable
    requests, pageblock_order / 2 and up for movable ones.  The old rule
    looked at other lists only from pageblock_order up."""
    m, pfns = _full()
    mem = m.mem
    z = ZONE_NORMAL
    blk, = _top_blocks(m, z, 1)
    base = int(blk) << pageblock_order
    _free(m, np.arange(base, base + 8))                           # an order-3 MOVABLE buddy
    assert mem.fa_nr[z, :, :].sum() == 1
    assert C.compact_finished(mem, z, 2, MIGRATE_UNMOVABLE)
    assert C.compact_finished(mem, z, 2, MIGRATE_MOVABLE)
    m2, _ = _full()
    mem2 = m2.mem
    blk2, = _top_blocks(m2, z, 1)
    b2 = int(blk2) << pageblock_order
    move_freepages_block(mem2, z, b2, MIGRATE_MOVABLE, MIGRATE_UNMOVABLE)
    _free(m2, np.arange(b2, b2 + 8))                              # an order-3 UNMOVABLE buddy
    assert mem2.fa_nr[z, 3, MIGRATE_UNMOVABLE] == 1 and mem2.fa_nr[z, :, :].sum() == 1
    assert not C.compact_finished(mem2, z, 2, MIGRATE_MOVABLE)    # movable may not steal order 3
    assert not C.compact_finished(mem2, z, 4, MIGRATE_UNMOVABLE)  # nothing of order >= 4


def test_direct_compaction_drains_its_cpus_lists_after_migrating():
    """check_drain: after migrating out of a block, an order > 0 compaction
    drains the compacting cpu's pcp lists of the zone (lru_add_drain_cpu_zone),
    so the freed sources merge and compact_finished can see them.  Before,
    the migrated pages stayed on the pcp lists."""
    m, _ = _full(pcp=True)
    mem = m.mem
    z = ZONE_NORMAL
    top, = _top_blocks(m, z, 1)
    _free(m, _block_pages(m, top))
    m.drain_pcp()
    low = (int(mem.zone_start[z]) >> pageblock_order) + 1
    _free(m, _block_pages(m, low)[1::2])
    m.drain_pcp()
    C.compact_zone(mem, z, 2, MIGRATE_MOVABLE, C.CC_SYNC | C.CC_DIRECT, 0, -1)
    assert mem.pcp[z, 0, PCP_COUNT] == 0
    assert mem.fa_nr[z, 2:, MIGRATE_MOVABLE].sum() > 0
    m.check()


def test_kcompactd_drains_only_the_zone_it_failed_to_compact():
    """kcompactd_do_work: a zone whose compaction ended without success has
    its pcp lists drained (drain_all_pages(zone)) and its compaction
    deferred; other zones' lists stay.  The old rule drained every zone."""
    m, pfns = _full(pcp=True)
    mem = m.mem
    dma32 = pfns[(pfns >= mem.zone_start[ZONE_DMA32]) & (pfns < mem.zone_end[ZONE_DMA32])]
    _free(m, dma32[:200], cpu=0)              # DMA32 pcp pages (and free memory there)
    normal = pfns[pfns >= mem.zone_start[ZONE_NORMAL]]
    _free(m, normal[1::2][:40000], cpu=0)     # Normal: scattered holes, some on the pcp
    mem.pg_flags[normal[0::2]] |= PG_pinned   # nothing there can move: compaction fails
    d_before = int(mem.pcp[ZONE_DMA32, 0, PCP_COUNT])
    assert d_before > 0 and mem.pcp[ZONE_NORMAL, 0, PCP_COUNT] > 0
    mem.node[NODE["kcompactd_max_order"]] = pageblock_order
    mem.node[NODE["kcompactd_highest_zoneidx"]] = ZONE_NORMAL
    mem.node[NODE["kcompactd_wait"]] = 1
    C.kcompactd_do_work(mem, 0)
    assert mem.pcp[ZONE_NORMAL, 0, PCP_COUNT] == 0
    assert int(mem.pcp[ZONE_DMA32, 0, PCP_COUNT]) == d_before


def test_kcompactd_compacts_a_zone_only_where_it_suits_kcompactds_index():
    """kcompactd_do_work asks whether a zone needs compaction with the zone's
    own index (v6.12 compaction_suit_allocation_order(zone, cc.order,
    zoneid, ...)), but compact_zone() asks again with cc.highest_zoneidx,
    kcompactd's recorded index, and returns COMPACT_SKIPPED (no scan, no
    drain, no deferral) where the zone lacks the free pages above its
    lowmem_reserve against that index.  DMA32 here has 1,600 scattered free
    pages: enough for order 9's compact_gap on its own, not with the 1,024
    it reserves against Normal requests.  The old code asked only with the
    zone's own index and compacted DMA32."""
    m, pfns = _full()
    mem = m.mem
    z = ZONE_DMA32
    dma32 = pfns[(pfns >= mem.zone_start[z]) & (pfns < mem.zone_end[z])]
    _free(m, dma32[:3200:2])                 # every other page of 3,200: no order >= 1
    mem.lowmem_reserve[z, ZONE_NORMAL] = 1024
    assert int(mem.zstat[z, C.ZS_NR_FREE]) == 1600
    assert C.compaction_suitable(mem, z, pageblock_order, z)
    assert not C.compaction_suitable(mem, z, pageblock_order, ZONE_NORMAL)

    def kcompactd(idx):
        mem.node[NODE["kcompactd_max_order"]] = pageblock_order
        mem.node[NODE["kcompactd_highest_zoneidx"]] = idx
        scanned = int(mem.vm[C._VM_DMSCAN])
        assert C.kcompactd_do_work(mem, 0) == 1
        return int(mem.vm[C._VM_DMSCAN]) - scanned

    assert kcompactd(ZONE_NORMAL) == 0                  # compact_zone(): COMPACT_SKIPPED
    assert mem.zstat[z, C._Z_SHIFT] == 0                # not deferred
    assert kcompactd(ZONE_DMA32) > 0                    # kcompactd woken for a DMA32 request
    m.check()


def test_proactive_compaction_yields_to_the_recorded_kswapd_in_replays():
    """__compact_finished / should_proactive_compact_node: proactive
    compaction stops (COMPACT_PARTIAL_SKIPPED) while kswapd_is_running().  A
    replay that follows the recorded kswapd (reclaim_active_external) marks
    that kswapd's reclaim windows with ZONE_RECLAIM_ACTIVE, and the model's
    own kswapd stays asleep there; the old test read only the model's
    kswapd, so the replay compacted through the recorded kswapd's runs."""
    from spbsim.mm.const import ZONE_RECLAIM_ACTIVE
    from spbsim.mm.state import CFG, ZS_FLAGS
    m, pfns = _full()
    mem = m.mem
    z = ZONE_NORMAL
    # every other page free, at even pfns: the free scanner's stride (which
    # reaches COMPACT_CLUSTER_MAX over the full blocks above) samples them
    _free(m, pfns[pfns >= mem.zone_start[z]][0::2][:20000])
    mem.cfg[CFG["reclaim_active_external"]] = 1
    mem.zstat[z, ZS_FLAGS] |= ZONE_RECLAIM_ACTIVE
    mem.node[NODE["kswapd_wait"]] = 0        # the model's own kswapd asleep
    flags = C.CC_SYNC | C.CC_WHOLE_ZONE | C.CC_IGNORE_SKIP | C.CC_KCOMPACTD | C.CC_PROACTIVE
    migrated = int(mem.vm[C._VM_MIGRATE_OK])
    assert C.compact_zone(mem, z, -1, MIGRATE_UNMOVABLE, flags, 0, 0) == C.COMPACT_PARTIAL_SKIPPED
    assert int(mem.vm[C._VM_MIGRATE_OK]) == migrated
    assert C.kswapd_is_running(mem)
    mem.zstat[z, ZS_FLAGS] &= ~ZONE_RECLAIM_ACTIVE        # the recorded kswapd sleeps
    assert not C.kswapd_is_running(mem)
    assert C.compact_zone(mem, z, -1, MIGRATE_UNMOVABLE, flags, 0, 0) != C.COMPACT_PARTIAL_SKIPPED
    assert int(mem.vm[C._VM_MIGRATE_OK]) > migrated
    m.check()


def test_kcompactd_wakes_only_for_a_suitable_node_and_else_at_its_timeout():
    """wakeup_kcompactd() wakes kcompactd only if kcompactd_node_suitable();
    otherwise the order stays pending (kcompactd_work_requested()) and
    kcompactd_do_work() runs when kcompactd's wait times out
    (HPAGE_FRAG_CHECK_INTERVAL_MSEC after its last run), not before.  A run
    moves that timeout, and with it the next proactive check, 500 ms past the
    run's end.
    The old code ran kcompactd_do_work() at every wake-up: here it finds no
    zone suitable, drops the order, and never compacts for it."""
    from spbsim.mm.background import background
    from spbsim.mm.watermark import wakeup_kcompactd
    m, pfns = _full()
    mem = m.mem
    z = ZONE_NORMAL
    holes = pfns[pfns >= mem.zone_start[z]][1::2]
    _free(m, holes[:600])                    # 600 scattered free pages < compact_gap(9)
    mem.node[NODE["kswapd_wait"]] = 0        # (exhausting memory woke it)
    t0 = 10_000_000_000
    mem.node[NODE["kcompactd_timeout_ns"]] = t0 + C.HPAGE_FRAG_CHECK_INTERVAL_NS
    wakeup_kcompactd(mem, pageblock_order, z)
    assert not C.kcompactd_node_suitable(mem)
    v0 = m.vmstat_counters()
    background(mem, t0, 0)
    assert m.vmstat_counters()["compact_daemon_wake"] == v0["compact_daemon_wake"]
    assert mem.node[NODE["kcompactd_max_order"]] == pageblock_order
    _free(m, holes[600:20000])               # the stream frees memory: now suitable
    assert C.kcompactd_node_suitable(mem)
    background(mem, t0 + 400_000_000, 0)     # no wake-up: the wait goes on
    assert m.vmstat_counters()["compact_daemon_wake"] == v0["compact_daemon_wake"]
    background(mem, t0 + C.HPAGE_FRAG_CHECK_INTERVAL_NS, 0)   # timed out
    v = m.vmstat_counters()
    assert v["compact_daemon_wake"] == v0["compact_daemon_wake"] + 1
    assert v["compact_daemon_migrate_scanned"] > v0["compact_daemon_migrate_scanned"]
    assert mem.node[NODE["kcompactd_max_order"]] == 0
    # the next wait starts when that run ended (kcompactd_cost_ns)
    end = int(mem.node[NODE["kcompactd_clock_ns"]])
    assert end >= t0 + C.HPAGE_FRAG_CHECK_INTERVAL_NS
    assert mem.node[NODE["kcompactd_timeout_ns"]] == end + C.HPAGE_FRAG_CHECK_INTERVAL_NS
    # a wake-up the node suits (order 10: none free yet) runs at once and
    # moves the timeout
    wakeup_kcompactd(mem, MAX_PAGE_ORDER, z)
    assert C.kcompactd_node_suitable(mem)
    t1 = max(t0 + 700_000_000, end)
    background(mem, t1, 0)
    assert m.vmstat_counters()["compact_daemon_wake"] == v0["compact_daemon_wake"] + 2
    end = int(mem.node[NODE["kcompactd_clock_ns"]])
    assert end >= t1
    assert mem.node[NODE["kcompactd_timeout_ns"]] == end + C.HPAGE_FRAG_CHECK_INTERVAL_NS
    m.check()


@pytest.mark.parametrize("version", ["recent", "6.1"])
def test_compaction_scans_count_in_the_totals_and_kcompactds_in_the_daemon_counters(version):
    """vmstat: compact_zone() counts every compaction's scans in
    compact_migrate_scanned and compact_free_scanned; kcompactd_do_work() adds kcompactd's to
    compact_daemon_*, and so does proactive compaction in v6.12
    (compact_node(pgdat, true)) but not in v6.1 (proactive_compact_node()).
    The old code counted kcompactd's scans in the daemon counters only, and
    v6.1's proactive ones there as well."""
    m = Machine("1536M", low_memory="512M", cpus=1, pcp=False, early_unmovable=0,
                migrate_untracked=True, version=version)
    zero_watermarks(m)
    pfns = np.sort(exhaust(m))
    mem = m.mem
    z = ZONE_NORMAL
    _free(m, pfns[pfns >= mem.zone_start[z]][1::2][:20000])   # every other page free
    names = ("compact_migrate_scanned", "compact_free_scanned",
             "compact_daemon_migrate_scanned", "compact_daemon_free_scanned")

    def delta(v0):
        v = m.vmstat_counters()
        return [v[k] - v0[k] for k in names]

    v0 = m.vmstat_counters()
    mem.node[NODE["kcompactd_max_order"]] = pageblock_order
    mem.node[NODE["kcompactd_highest_zoneidx"]] = z
    assert C.kcompactd_do_work(mem, 0) == 1
    mig, free, dmig, dfree = delta(v0)
    assert mig > 0 and free > 0
    assert (dmig, dfree) == (mig, free)
    v0 = m.vmstat_counters()
    mem.node[NODE["kswapd_wait"]] = 0        # (exhausting memory woke it)
    flags = C.CC_SYNC | C.CC_WHOLE_ZONE | C.CC_IGNORE_SKIP | C.CC_KCOMPACTD | C.CC_PROACTIVE
    assert C.compact_zone(mem, z, -1, MIGRATE_UNMOVABLE, flags, 0, 0) != C.COMPACT_PARTIAL_SKIPPED
    mig, free, dmig, dfree = delta(v0)
    assert mig > 0 and free > 0
    assert (dmig, dfree) == ((0, 0) if version == "6.1" else (mig, free))
    m.check()


def test_proactive_compaction_starts_above_fragmentation_score_wmark_high():
    """should_proactive_compact_node(): the node is compacted proactively
    only above fragmentation_score_wmark(false) = min(low + 10, 100), with
    low = max(100 - compaction_proactiveness, 5) (both kernels).  At
    proactiveness 95 that is 15; the old high mark, low + min(10, low // 2),
    was 7, so a node scored 8 to 15 was compacted where the kernel leaves it."""
    from spbsim.mm.state import CFG
    m, pfns = _full()
    mem = m.mem
    z = ZONE_NORMAL
    normal = pfns[pfns >= mem.zone_start[z]]
    _free(m, normal[:9 * PB])                       # nine whole pageblocks
    _free(m, normal[20 * PB:][1::2][:900])          # 900 single pages
    mem.cfg[CFG["compaction_proactiveness"]] = 95
    assert C.proactive_wmarks(mem) == (5, 15)
    score = C.fragmentation_score_node(mem)
    assert 7 < score <= 15
    migrated = int(mem.vm[C._VM_MIGRATE_OK])
    assert not C.proactive_compact_node(mem, 0)
    assert int(mem.vm[C._VM_MIGRATE_OK]) == migrated
    for proactiveness, marks in ((20, (80, 90)), (85, (15, 25)), (100, (5, 15))):
        mem.cfg[CFG["compaction_proactiveness"]] = proactiveness
        assert C.proactive_wmarks(mem) == marks
    m.check()


def test_compaction_end_prints_where_the_scanners_met_not_the_reset_cached_pfn():
    """compact_zone(): __compact_finished() runs reset_cached_positions() when
    the scanners meet, which resets the zone's cached pfns but not
    cc->migrate_pfn; mm_compaction_end prints cc->migrate_pfn (run1's kcompactd:
    "zone_start=0x1000 migrate_pfn=0x1600 free_pfn=0x1600 ... status=complete"),
    while the next compaction starts again from the zone's start."""
    from spbsim.mm.state import EV_NAMES
    m = Machine("1536M", low_memory="512M", cpus=1, pcp=False, early_unmovable=0,
                migrate_untracked=True, trace=True, trace_capacity=1 << 16)
    zero_watermarks(m)
    pfns = np.sort(exhaust(m))
    zs, ze = int(m.mem.zone_start[ZONE_NORMAL]), int(m.mem.zone_end[ZONE_NORMAL])
    normal = pfns[(pfns >= zs) & (pfns < ze)]
    _free(m, normal[::2])                 # every other page free: order-0 holes
    m.mem.ev_n[:] = 0
    m.compact_memory(zones=[ZONE_NORMAL])
    ev = m.trace_records()
    assert int(m.mem.ev_n[1]) == 0
    end = ev[ev[:, 0] == EV_NAMES.index("mm_compaction_end")]
    assert len(end) == 1
    kind, ts, cpu, pfn, order, mpfn, fpfn, zend, d = (int(x) for x in end[0])
    assert d & 0xff == C.COMPACT_COMPLETE and pfn == zs and zend == ze
    # the scanners met halfway up the zone, where the end event says
    assert mpfn >> pageblock_order >= fpfn >> pageblock_order
    assert zs + (ze - zs) // 4 < mpfn < ze
    # reset_cached_positions(): the next compaction begins at the zone's ends
    assert int(m.mem.zstat[ZONE_NORMAL, C._Z_MIGRATE_PFN_ASYNC]) == zs
    assert int(m.mem.zstat[ZONE_NORMAL, C._Z_MIGRATE_PFN_SYNC]) == zs
    assert int(m.mem.zstat[ZONE_NORMAL, C._Z_FREE_PFN]) == (ze - 1) & ~(PB - 1)
    m.check()


def test_compact_memory_frees_its_sources_on_the_cpus_its_task_runs_on():
    """migrate_folio_done() frees a migrated source to the per-cpu list of
    the cpu the compacting task runs on, and the task that wrote
    compact_memory can be moved between cpus meanwhile: with a schedule
    ``cpus`` the n-th migrated page's source is freed on the cpu the
    schedule gives for n (free_count counts each free to a list, and no
    allocation halves it here).  Without one every source goes to the
    writer's cpu, as before."""
    from spbsim.errors import ConfigError
    from spbsim.mm.pcp import drain_all_pages
    from spbsim.mm.state import PCP_FREE_COUNT
    z = ZONE_NORMAL

    def compacted(cpus):
        m, pfns = _full(pcp=True, cpus=2)
        zs, ze = int(m.mem.zone_start[z]), int(m.mem.zone_end[z])
        _free(m, pfns[(pfns >= zs) & (pfns < ze)][::2])      # every other page free
        drain_all_pages(m.mem)
        m.mem.pcp[z, :, PCP_FREE_COUNT] = 0
        before = int(m.mem.vm[C._VM_MIGRATE_OK])
        m.compact_memory(cpu=0, zones=[z], cpus=cpus)
        m.check()                   # the schedule is gone again
        return m, int(m.mem.vm[C._VM_MIGRATE_OK]) - before, m.mem.pcp[z, :, PCP_FREE_COUNT]

    m, migrated, fc = compacted([(64, 1), (128, 0), (192, 1)])
    assert migrated > 2016 + 192
    # pages 0-63 and 128.. on cpu 1 (its count stops at batch << 5), 64-127 on cpu 0
    assert fc[0] == 64 and fc[1] == 2016
    _, migrated0, fc0 = compacted(None)
    assert migrated0 == migrated and fc0[0] == 2016 and fc0[1] == 0
    with pytest.raises(ConfigError, match="cpus="):
        m.compact_memory(cpus=[(128, 0), (64, 1)])
    with pytest.raises(ConfigError, match="cpu="):
        m.compact_memory(cpus=[(64, 2)])


def test_a_compaction_with_a_time_budget_pauses_and_resumes_where_it_stopped():
    """[SIM] compact_memory's run in a replay takes time, counted as
    kcompactd's run is (compaction_migrate_ns a migrated page,
    compaction_scan_ns a scanned one): with a budget it stops at the first
    pageblock boundary past it, keeps its scanners in cc_resume (checked by
    DEBUG_VM) and goes on at the next call, one mm_compaction_begin and one
    mm_compaction_end for the whole run.  No other zone's may start
    meanwhile.  A pause gives back the free pages the run isolated and its
    free scanner resumes where it can find them again, so paused and
    resumed it ends as the unbroken run does."""
    from spbsim.errors import ConfigError
    from spbsim.machine import InvariantError
    from spbsim.mm.state import (
        CCR_ACTIVE,
        CCR_MIGRATED,
        CCR_SLOT_WRITE,
        CCR_ZONE,
        CFG,
        EV_NAMES,
    )
    z = ZONE_NORMAL

    def fragmented():
        m = Machine("1536M", low_memory="512M", cpus=1, pcp=False, early_unmovable=0,
                    migrate_untracked=True, trace=True, trace_capacity=1 << 16)
        zero_watermarks(m)
        pfns = np.sort(exhaust(m))
        zs, ze = int(m.mem.zone_start[z]), int(m.mem.zone_end[z])
        _free(m, pfns[(pfns >= zs) & (pfns < ze)][::2])      # every other page free
        m.mem.ev_n[:] = 0
        return m

    def migrated(m):
        return int(m.mem.vm[C._VM_MIGRATE_OK])

    whole = fragmented()
    assert whole.compact_memory_zone(z) is True
    total = migrated(whole)
    assert total > 4 * PB

    m = fragmented()
    budget = 1000 * int(m.mem.cfg[CFG["compaction_migrate_ns"]])
    assert m.compact_memory_zone(z, budget_ns=budget) is False
    r = m.mem.cc_resume[CCR_SLOT_WRITE]
    assert r[CCR_ACTIVE] == 1 and r[CCR_ZONE] == z
    first = migrated(m)
    assert first == r[CCR_MIGRATED] and 900 < first < 1000 + PB
    m.check()
    with pytest.raises(ConfigError, match="paused"):
        m.compact_memory_zone(ZONE_DMA32)
    assert m.compact_memory_zone(z, budget_ns=budget) is False and migrated(m) == first
    assert m.compact_memory_zone(z, budget_ns=3 * budget) is False
    assert 2900 < migrated(m) < 3000 + PB
    saved = r.copy()
    r[CCR_ZONE] = 7
    with pytest.raises(InvariantError, match="paused compaction"):
        m.check()
    r[:] = saved
    assert m.compact_memory_zone(z) is True
    assert not r.any() and migrated(m) == total
    assert (m.mem.nr_free[z] == whole.mem.nr_free[z]).all()
    m.check()
    ev = m.trace_records()
    for name in ("mm_compaction_begin", "mm_compaction_end"):
        assert (ev[:, 0] == EV_NAMES.index(name)).sum() == 1
