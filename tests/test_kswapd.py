"""kswapd (mm/vmscan.c kswapd, balance_pgdat, kswapd_try_to_sleep,
wakeup_kswapd; v6.12 and v6.1 alike) on states built by hand: the order
kcompactd is woken for, the orders kswapd takes from wake-ups that did not
wake it or came while it ran, ZONE_RECLAIM_ACTIVE while kswapd runs, the
replays' kswapd whose reclaim is in the request stream, the reclaim of
watermark boosts, and the DEBUG_VM check of kswapd's node state."""
import numpy as np
import pytest

from spbsim.machine import InvariantError, Machine
from spbsim.mm import gfp as G
from spbsim.mm.background import background
from spbsim.mm.const import MAX_NR_ZONES, ZONE_NORMAL, ZONE_RECLAIM_ACTIVE
from spbsim.mm.craft import exhaust, lru_add_pages, zero_watermarks
from spbsim.mm.const import pageblock_nr_pages
from spbsim.mm.fallback import boost_watermark
from spbsim.mm.state import (CFG, LRU_ANON, LRU_FILE, NODE, PCP_BATCH, PCP_COUNT, VMSTAT, ZS_BOOST,
                             ZS_FLAGS, ZS_KSWAPD_BOOST, ZS_WMARK_MIN)
from spbsim.mm.vmscan import balance_pgdat
from spbsim.mm.watermark import wakeup_kswapd

OWNER = 7


def _full(reclaimable_every=2):
    """A 1.5 GB machine (1 GB of it in Normal) whose memory is all allocated; every ``reclaimable_every``
    -th page (by pfn) sits on the file LRU, the others are unmovable, so
    reclaim frees no two buddies together."""
    mach = Machine(memory="1536M", low_memory="512M", cpus=1, early_unmovable=0)
    m = mach.mem
    m.owner_lru[OWNER] = LRU_FILE
    n = int(m.zstat[:, 9].sum()) + 64
    pfns = mach.run_ops(np.zeros(n, np.int64), G.GFP_KERNEL, owner=OWNER)
    pfns = np.sort(pfns[pfns >= 0])
    lru_add_pages(mach, pfns[pfns % reclaimable_every == 0], LRU_FILE)
    return mach


def _drained():
    """``_full()`` with the pages below the MIN mark taken too (watermarks
    zeroed and direct reclaim off meanwhile, then restored), so no free
    block of pageblock order is left: kswapd is balanced at order 9 only
    once it made one."""
    mach = _full()
    m = mach.mem
    marks = m.zstat[:, ZS_WMARK_MIN:ZS_WMARK_MIN + 4].copy()
    reserve = m.lowmem_reserve.copy()
    zero_watermarks(mach)
    m.cfg[CFG["reclaim"]] = 0                  # no direct reclaim of the file pages meanwhile
    free = int((m.nr_free << np.arange(m.nr_free.shape[1])).sum()) + int(m.pcp[:, :, PCP_COUNT].sum())
    exhaust(mach, G.GFP_KERNEL, tries=free + 64)    # the machine is full but for these
    m.cfg[CFG["reclaim"]] = 1
    m.zstat[:, ZS_WMARK_MIN:ZS_WMARK_MIN + 4] = marks
    m.lowmem_reserve[:] = reserve
    assert int(m.nr_free[:, 9:].sum()) == 0
    return mach


def _asleep(m):
    """kswapd asleep with nothing asked, as at boot (the fills above leave it
    awake: their requests woke it and nothing ran it)."""
    m.node[NODE["kswapd_wait"]] = 0
    m.node[NODE["kswapd_order"]] = 0
    m.node[NODE["kswapd_highest_zoneidx"]] = MAX_NR_ZONES
    m.node[NODE["kswapd_alloc_order"]] = 0
    m.node[NODE["kswapd_reclaim_order"]] = 0
    m.node[NODE["kswapd_nr_boost_reclaim"]] = 0
    m.zstat[:, ZS_KSWAPD_BOOST] = 0


def _roomy(anon_owner=None, file_pages=100_000):
    """A 1.5 GB machine with ``file_pages`` on the file LRU (and, with
    ``anon_owner``, 20 k anonymous pages, swap on), the rest free: the node
    is balanced, even with a few pageblocks of boost on its marks; kswapd
    asleep, no boost."""
    mach = Machine(memory="1536M", low_memory="512M", cpus=1, early_unmovable=0, swap=True)
    m = mach.mem
    m.owner_lru[OWNER] = LRU_FILE
    lru_add_pages(mach, mach.run_ops(np.zeros(file_pages, np.int64), G.GFP_HIGHUSER_MOVABLE,
                                     owner=OWNER), LRU_FILE)
    if anon_owner is not None:
        m.owner_lru[anon_owner] = LRU_ANON
        lru_add_pages(mach, mach.run_ops(np.zeros(20_000, np.int64), G.GFP_HIGHUSER_MOVABLE,
                                         owner=anon_owner), LRU_ANON)
    _asleep(m)
    m.zstat[:, ZS_BOOST] = 0
    m.zstat[:, ZS_FLAGS] &= ~ZONE_RECLAIM_ACTIVE
    m.node[NODE["kcompactd_wait"]] = 0
    mach.check()
    return mach


def test_boosted_kswapd_reclaims_the_boost_on_a_balanced_node():
    """A fallback's watermark boost wakes kswapd on a balanced node
    (wakeup_kswapd: pgdat_watermark_boosted); balance_pgdat() then reclaims
    nr_boost_reclaim pages, the boost it began with, without swapping
    (sc.may_swap = !nr_boost_reclaim), drops the boost and wakes kcompactd
    for pageblock_order.  The old rule ended the run at once: balanced,
    nothing reclaimed."""
    mach = _roomy()
    m = mach.mem
    assert boost_watermark(m, ZONE_NORMAL) and boost_watermark(m, ZONE_NORMAL)
    boost = int(m.zstat[ZONE_NORMAL, ZS_BOOST])
    assert boost == 2 * pageblock_nr_pages
    wakeup_kswapd(m, ZONE_NORMAL, 0, 0, ZONE_NORMAL)
    assert m.node[NODE["kswapd_wait"]] == 1
    assert m.node[NODE["kswapd_nr_boost_reclaim"]] == boost
    mach.check()
    steal = int(m.vm[VMSTAT["pgsteal_kswapd"]])
    balance_pgdat(m, 0, 1 << 20)
    assert int(m.vm[VMSTAT["pgsteal_kswapd"]]) - steal >= boost
    assert m.zstat[ZONE_NORMAL, ZS_BOOST] == 0
    assert m.node[NODE["kswapd_wait"]] == 0
    assert m.node[NODE["kcompactd_wait"]] == 1
    assert m.node[NODE["kcompactd_max_order"]] == 9
    mach.check()


def test_a_replay_following_the_recorded_kswapd_has_one_kswapd_waking_kcompactd():
    """A replay that follows the recorded kswapd (reclaim_active_external)
    keeps the simulated kswapd only to balance: the boost accounting and
    sleep of the same boosted run as above, but neither balance_pgdat()'s
    wake-up for pageblock_order nor kswapd_try_to_sleep()'s skip-bit reset
    and wake-up, which come from the recorded kswapd's naps there
    (spbsim.trace.kswapd_windows).  Before, both kswapds woke kcompactd:
    on run1 the simulated one 17 times, the recorded one three times."""
    from spbsim.mm.compaction import _Z_BLOCKSKIP_FLUSH
    from spbsim.mm.state import CFG
    mach = _roomy()
    m = mach.mem
    m.cfg[CFG["reclaim_active_external"]] = 1
    m.zstat[ZONE_NORMAL, _Z_BLOCKSKIP_FLUSH] = 1
    assert boost_watermark(m, ZONE_NORMAL)
    wakeup_kswapd(m, ZONE_NORMAL, 0, 2, ZONE_NORMAL)
    balance_pgdat(m, 0, 1 << 20)
    assert m.zstat[ZONE_NORMAL, ZS_BOOST] == 0 and m.node[NODE["kswapd_wait"]] == 0
    assert m.node[NODE["kcompactd_wait"]] == 0 and m.node[NODE["kcompactd_max_order"]] == 0
    assert m.zstat[ZONE_NORMAL, _Z_BLOCKSKIP_FLUSH] == 1
    mach.check()


def test_boost_reclaim_does_not_swap_and_counts_no_failure_after_progress():
    """Boosted reclaim does not swap (sc.may_swap = !nr_boost_reclaim): with
    200 file pages against a boost of two pageblocks, kswapd reclaims the
    file pages, leaves the anonymous ones, stops when a round reclaims
    nothing (``nr_boost_reclaim && !nr_reclaimed``) and, having reclaimed in
    the run, counts no kswapd failure (``if (!sc.nr_reclaimed)``).  The same
    holds for a run cut into budgeted calls: a call whose first round finds
    nothing after an earlier call of the run reclaimed is not a failure.
    The old rule reclaimed nothing here, and counted a failure per call."""
    anon = OWNER + 1
    mach = _roomy(anon_owner=anon, file_pages=200)
    m = mach.mem
    boost_watermark(m, ZONE_NORMAL)
    boost_watermark(m, ZONE_NORMAL)
    wakeup_kswapd(m, ZONE_NORMAL, 0, 0, ZONE_NORMAL)
    steal = int(m.vm[VMSTAT["pgsteal_kswapd"]])
    anon_pages = int(m.lru_pages[LRU_ANON])
    balance_pgdat(m, 0, 200)                                 # the budget ends with the file pages
    assert int(m.vm[VMSTAT["pgsteal_kswapd"]]) - steal == 200
    assert m.node[NODE["kswapd_wait"]] == 1
    balance_pgdat(m, 0, 1 << 20)                             # nothing left but anon
    assert int(m.lru_pages[LRU_ANON]) == anon_pages
    assert m.node[NODE["kswapd_failures"]] == 0
    assert m.node[NODE["kswapd_wait"]] == 0 and m.zstat[ZONE_NORMAL, ZS_BOOST] == 0
    mach.check()


def test_a_boost_raised_while_kswapd_runs_outlasts_the_run():
    """balance_pgdat() subtracts at its end the boosts it saw when it began
    (zone_boosts[]); a fallback that boosts the zone again while kswapd
    reclaims leaves that boost in place after the run.  The old rule zeroed
    every boost at the run's end."""
    mach = _roomy()
    m = mach.mem
    boost_watermark(m, ZONE_NORMAL)
    wakeup_kswapd(m, ZONE_NORMAL, 0, 0, ZONE_NORMAL)
    balance_pgdat(m, 0, 64)                                  # cut short: stays awake
    assert m.node[NODE["kswapd_wait"]] == 1
    assert 0 < m.node[NODE["kswapd_nr_boost_reclaim"]] < pageblock_nr_pages
    boost_watermark(m, ZONE_NORMAL)                          # a fallback meanwhile
    mach.check()
    balance_pgdat(m, 0, 1 << 20)
    assert m.node[NODE["kswapd_wait"]] == 0                  # balanced with the boost left
    assert m.zstat[ZONE_NORMAL, ZS_BOOST] == pageblock_nr_pages
    mach.check()


def test_replay_kswapd_counts_the_streams_frees_against_the_boost():
    """With reclaim_external a boosted kswapd on a balanced node stays awake
    until the stream has freed the boost it began with (the kernel's kswapd
    was reclaiming it: nr_boost_reclaim), then drops the boost and sleeps.
    The old rule slept at once."""
    mach = _roomy()
    m = mach.mem
    m.cfg[CFG["reclaim_external"]] = 1
    pfns = mach.run_ops(np.zeros(2 * pageblock_nr_pages, np.int64), G.GFP_HIGHUSER_MOVABLE,
                        owner=OWNER + 1)
    _asleep(m)
    m.zstat[:, ZS_BOOST] = 0
    boost_watermark(m, ZONE_NORMAL)
    wakeup_kswapd(m, ZONE_NORMAL, 0, 0, ZONE_NORMAL)
    background(m, np.int64(m.cur[1]), np.int64(0))
    assert m.node[NODE["kswapd_wait"]] == 1
    for p in pfns[:pageblock_nr_pages // 2]:
        mach.free(int(p), cpu=0)
    background(m, np.int64(m.cur[1]), np.int64(0))          # within the run's 10 ms
    assert m.node[NODE["kswapd_wait"]] == 1
    assert m.zstat[ZONE_NORMAL, ZS_BOOST] == pageblock_nr_pages
    for p in pfns[pageblock_nr_pages // 2:pageblock_nr_pages]:
        mach.free(int(p), cpu=0)
    background(m, np.int64(m.cur[1]), np.int64(0))
    assert m.node[NODE["kswapd_wait"]] == 0
    assert m.zstat[ZONE_NORMAL, ZS_BOOST] == 0
    mach.check()


def test_kcompactd_woken_for_the_order_kswapd_was_woken_for():
    """kswapd woken for order 2 reclaims compact_gap(2) pages, balances at
    order 0 (kswapd_shrink_node drops sc.order) and, going to sleep, wakes
    kcompactd for order 2 (kswapd_try_to_sleep(alloc_order, reclaim_order)).
    The old rule woke kcompactd only if the node was balanced at order 2."""
    mach = _full()
    m = mach.mem
    _asleep(m)
    mach.check()
    wakeup_kswapd(m, ZONE_NORMAL, G.GFP_KERNEL, 2, ZONE_NORMAL)
    assert m.node[NODE["kswapd_wait"]] == 1 and m.node[NODE["kswapd_alloc_order"]] == 2
    steal = int(m.vm[VMSTAT["pgsteal_kswapd"]])
    balance_pgdat(m, 0, 1 << 20)
    assert m.node[NODE["kswapd_wait"]] == 0
    assert int(m.vm[VMSTAT["pgsteal_kswapd"]]) - steal >= 2 << 2
    assert m.node[NODE["kcompactd_wait"]] == 1 and m.node[NODE["kcompactd_max_order"]] == 2
    mach.check()


def test_kswapd_runs_for_the_largest_order_asked_since_it_last_ran():
    """wakeup_kswapd() raises the node's kswapd_order on every call, also on
    one that leaves kswapd asleep (here: a hopeless node); kswapd, woken
    later by an order-0 request, reads the largest order asked since it last
    read it (kswapd(): alloc_order = kswapd_order), reclaims compact_gap(9)
    and, going to sleep, wakes kcompactd for order 9.  The old rule kept the
    waking call's order only: kswapd ran for order 0 and left kcompactd
    asleep."""
    mach = _drained()
    m = mach.mem
    balance_pgdat(m, 0, 1 << 20)                      # the fill woke kswapd: it balances, sleeps
    assert m.node[NODE["kswapd_wait"]] == 0
    m.node[NODE["kswapd_failures"]] = 16              # MAX_RECLAIM_RETRIES: hopeless
    wakeup_kswapd(m, ZONE_NORMAL, G.GFP_KERNEL, 9, ZONE_NORMAL)
    assert m.node[NODE["kswapd_wait"]] == 0 and m.node[NODE["kcompactd_wait"]] == 0
    m.node[NODE["kswapd_failures"]] = 0               # direct reclaim made progress
    for _ in range(2000):                             # order-0 requests until one wakes kswapd
        mach.run_ops(np.zeros(64, np.int64), G.GFP_KERNEL, owner=OWNER)
        if m.node[NODE["kswapd_wait"]]:
            break
    assert m.node[NODE["kswapd_wait"]] == 1 and m.node[NODE["kcompactd_wait"]] == 0
    steal = int(m.vm[VMSTAT["pgsteal_kswapd"]])
    balance_pgdat(m, 0, 1 << 20)
    assert m.node[NODE["kswapd_wait"]] == 0
    assert m.node[NODE["kcompactd_wait"]] == 1 and m.node[NODE["kcompactd_max_order"]] == 9
    assert int(m.vm[VMSTAT["pgsteal_kswapd"]]) - steal >= 2 << 9
    mach.check()


def test_an_order_asked_while_kswapd_runs_gets_its_own_run():
    """An order-9 request while kswapd balances for order 0 only raises the
    node's kswapd_order (kswapd is not on its wait queue).  When the run
    ends balanced at order 0, kswapd's loop tries to sleep at the order
    gathered meanwhile (kswapd_try_to_sleep(9, 9)): the node is not
    balanced at order 9, so kswapd does not sleep and runs balance_pgdat()
    again for order 9, then sleeps and wakes kcompactd for 9.  The old rule
    merged the order into the running one and slept after the first run."""
    mach = _drained()
    m = mach.mem
    wakeup_kswapd(m, ZONE_NORMAL, G.GFP_KERNEL, 0, ZONE_NORMAL)
    balance_pgdat(m, 0, 64)                                  # cut short: stays awake
    wakeup_kswapd(m, ZONE_NORMAL, G.GFP_KERNEL, 9, ZONE_NORMAL)
    runs = int(m.node[NODE["kswapd_runs"]])
    balance_pgdat(m, 0, 1 << 20)
    assert int(m.node[NODE["kswapd_runs"]]) == runs + 1
    assert m.node[NODE["kswapd_wait"]] == 1                  # a second run, for order 9
    assert m.node[NODE["kswapd_alloc_order"]] == 9 and m.node[NODE["kswapd_order"]] == 0
    assert m.node[NODE["kcompactd_wait"]] == 0
    mach.check()
    steal = int(m.vm[VMSTAT["pgsteal_kswapd"]])
    balance_pgdat(m, 0, 1 << 20)
    assert int(m.node[NODE["kswapd_runs"]]) == runs + 2
    assert m.node[NODE["kswapd_wait"]] == 0
    assert m.node[NODE["kcompactd_wait"]] == 1 and m.node[NODE["kcompactd_max_order"]] == 9
    assert int(m.vm[VMSTAT["pgsteal_kswapd"]]) - steal >= 2 << 9
    mach.check()


def test_checker_reports_kswapd_state_out_of_range():
    """The DEBUG_VM-style checker covers kswapd's node state: a run that
    reclaims above the order it was woken for is a violation, as is a
    sleeping kswapd that keeps a run order."""
    mach = _full()
    m = mach.mem
    _asleep(m)
    wakeup_kswapd(m, ZONE_NORMAL, G.GFP_KERNEL, 2, ZONE_NORMAL)
    assert m.node[NODE["kswapd_alloc_order"]] == 2
    mach.check()
    m.node[NODE["kswapd_reclaim_order"]] = 3
    with pytest.raises(InvariantError, match="kswapd's node state"):
        mach.check()
    m.node[NODE["kswapd_reclaim_order"]] = 2
    balance_pgdat(m, 0, 1 << 20)
    assert m.node[NODE["kswapd_wait"]] == 0
    mach.check()
    m.node[NODE["kswapd_alloc_order"]] = 2
    with pytest.raises(InvariantError, match="kswapd's node state"):
        mach.check()


def test_checker_reports_kswapd_boost_accounting_out_of_range():
    """The checker covers balance_pgdat()'s boost accounting: nr_boost_reclaim
    above the boosts the run began with, or a sleeping kswapd that keeps
    them, is a violation."""
    mach = _roomy()
    m = mach.mem
    boost_watermark(m, ZONE_NORMAL)
    wakeup_kswapd(m, ZONE_NORMAL, 0, 0, ZONE_NORMAL)
    mach.check()
    m.node[NODE["kswapd_nr_boost_reclaim"]] += 1
    with pytest.raises(InvariantError, match="boost accounting"):
        mach.check()
    m.node[NODE["kswapd_nr_boost_reclaim"]] -= 1
    balance_pgdat(m, 0, 1 << 20)
    assert m.node[NODE["kswapd_wait"]] == 0
    mach.check()
    m.zstat[ZONE_NORMAL, ZS_KSWAPD_BOOST] = pageblock_nr_pages
    with pytest.raises(InvariantError, match="boost accounting"):
        mach.check()


def test_reclaim_active_caps_the_pcp_lists_while_kswapd_runs():
    """While kswapd balances a zone it is ZONE_RECLAIM_ACTIVE and a cpu's
    pcp list keeps at most 4 batches (nr_pcp_high); the flag goes with kswapd."""
    mach = _full()
    m = mach.mem
    wakeup_kswapd(m, ZONE_NORMAL, G.GFP_KERNEL, 0, ZONE_NORMAL)
    balance_pgdat(m, 0, 64)                       # cut short: stays awake
    assert m.node[NODE["kswapd_wait"]] == 1
    assert m.zstat[ZONE_NORMAL, ZS_FLAGS] & ZONE_RECLAIM_ACTIVE
    # free 300 unmovable (odd) pages of Normal on cpu 0
    normal = np.arange(int(m.zone_start[ZONE_NORMAL]), int(m.zone_end[ZONE_NORMAL]))
    odd = normal[(normal % 2 == 1) & (m.pg_owner[normal] == OWNER)][:300]
    for p in odd:
        mach.free(int(p), cpu=0)
    batch = int(m.pcp[ZONE_NORMAL, 0, PCP_BATCH])
    assert int(m.pcp[ZONE_NORMAL, 0, PCP_COUNT]) <= 4 * batch
    balance_pgdat(m, 0, 1 << 20)
    assert m.node[NODE["kswapd_wait"]] == 0
    assert not m.zstat[ZONE_NORMAL, ZS_FLAGS] & ZONE_RECLAIM_ACTIVE


def test_replay_kswapd_waits_for_the_streams_reclaim():
    """With reclaim_external (a replay), kswapd frees nothing itself and counts
    no failure while the node is unbalanced (the kernel's kswapd was
    reclaiming: its frees are in the stream); each of its balance_pgdat()
    runs (kswapd_replay_run_ms of trace time) ends by dropping the watermark
    boosts it began with and waking kcompactd for pageblock_order; once the stream's frees
    balance the node it sleeps.  The old kswapd counted a failure per pass
    and after 16 gave up for good, so later boosts were never dropped."""
    mach = _full(reclaimable_every=1 << 30)      # nothing on the LRU
    m = mach.mem
    _asleep(m)
    m.cfg[CFG["reclaim_external"]] = 1
    m.zstat[ZONE_NORMAL, ZS_BOOST] = 1000
    wakeup_kswapd(m, ZONE_NORMAL, G.GFP_KERNEL, 0, ZONE_NORMAL)
    background(m, np.int64(1_000_000), np.int64(0))            # within the first run
    assert m.zstat[ZONE_NORMAL, ZS_BOOST] == 1000
    for k in range(40):
        m.cur[1] = (k + 1) * 100_000_000
        if k == 20:
            m.zstat[ZONE_NORMAL, ZS_BOOST] = 500                # a later fallback boosts again
        background(m, np.int64(m.cur[1]), np.int64(0))
        # a boost raised during a run is dropped at the end of the next one
        assert m.zstat[ZONE_NORMAL, ZS_BOOST] == (500 if k == 20 else 0)
    assert m.node[NODE["kswapd_wait"]] == 1 and m.node[NODE["kswapd_failures"]] == 0
    # kcompactd was woken (for pageblock_order) and ran in the same pass
    assert mach.vmstat_counters()["compact_daemon_wake"] >= 2
    normal = np.arange(int(m.zone_start[ZONE_NORMAL]), int(m.zone_end[ZONE_NORMAL]))
    for p in normal[m.pg_owner[normal] == OWNER][:60000]:
        mach.free(int(p), cpu=0)
    m.cur[1] = 5_000_000_000
    background(m, np.int64(m.cur[1]), np.int64(0))
    assert m.node[NODE["kswapd_wait"]] == 0


_KS_FREE = ("         kswapd0-45      [000] .....    {ts:.6f}: mm_page_free: "
            "page=000000004a2ad7d2 pfn={pfn:#x} order=0")
_KS_WAKE = "         kswapd0-45      [000] .....    {ts:.6f}: mm_vmscan_kswapd_wake: nid=0 order=0"
_KS_SLEEP = "         kswapd0-45      [000] .....    {ts:.6f}: mm_vmscan_kswapd_sleep: nid=0"
_TASK_ALLOC = ("            init-1       [001] .....    {ts:.6f}: mm_page_alloc: "
               "page=00000000af3f5202 pfn={pfn:#x} order=0 migratetype=1 "
               "gfp_flags=GFP_HIGHUSER_MOVABLE")


def _windows_of(tmp_path, lines, gap_ms=50):
    from spbsim.trace.ftrace import TraceReader
    from spbsim.trace.kswapd_windows import KswapdScan
    p = tmp_path / "trace.txt"
    p.write_text("\n".join(lines) + "\n")
    scan = KswapdScan()
    for b in TraceReader(p, batch_size=4).batches():
        scan.add(b)
    return scan.windows(gap_ms)


def test_kswapd_windows_from_the_trace(tmp_path):
    """ZONE_RECLAIM_ACTIVE is set while balance_pgdat() runs: in a trace,
    from kswapd's wake tracepoint (or its first kmem event after a pause)
    to its last kmem event before a pause of kswapd_gap_ms; the sleep
    tracepoint, a HZ/10 nap later, is not part of the window."""
    lines = [_KS_WAKE.format(ts=0.990)]
    lines += [_KS_FREE.format(ts=1.0 + i * 0.001, pfn=0x100000 + i) for i in range(11)]
    lines += [_TASK_ALLOC.format(ts=1.05, pfn=0x100100), _KS_SLEEP.format(ts=1.11)]
    lines += [_KS_FREE.format(ts=1.2 + i * 0.002, pfn=0x100200 + i) for i in range(6)]
    lines += [_TASK_ALLOC.format(ts=1.5, pfn=0x100300)]
    w = _windows_of(tmp_path, lines)
    assert w.tolist() == [[990_000_000, 1_010_000_000], [1_200_000_000, 1_210_000_000]]
    # a pause shorter than the gap keeps one window
    assert len(_windows_of(tmp_path, lines, gap_ms=250)) == 1


def test_kswapd_run_that_freed_nothing_is_a_window(tmp_path):
    """A balance_pgdat() run that frees nothing leaves no kmem event, yet the
    zones carried ZONE_RECLAIM_ACTIVE until it ended, a HZ/10 nap
    (kswapd_try_to_sleep()) before the sleep tracepoint.  Recorded on
    r612-4cpu-2g-thp-s3 (wake 22.932 s, sleep 23.466 s; the other cpus'
    lists drained 63 pages at a time meanwhile, the 4-batch cap of
    nr_pcp_high()) and twice on r612-compact-s5.  The old windows came
    from kmem events only and had none for such a run."""
    lines = [_KS_WAKE.format(ts=0.990)]
    lines += [_KS_FREE.format(ts=1.0 + i * 0.001, pfn=0x100000 + i) for i in range(11)]
    lines += [_KS_SLEEP.format(ts=1.11), _KS_WAKE.format(ts=2.0)]
    lines += [_TASK_ALLOC.format(ts=2.0 + i * 0.05, pfn=0x100100 + i) for i in range(1, 9)]
    lines += [_KS_SLEEP.format(ts=2.5), _KS_WAKE.format(ts=3.0), _KS_SLEEP.format(ts=3.05)]
    w = _windows_of(tmp_path, lines)
    assert w.tolist() == [[990_000_000, 1_010_000_000], [2_000_000_000, 2_400_000_000]]
    # without kswapd kmem events at all, the quiet run alone
    assert _windows_of(tmp_path, lines[12:]).tolist() == [[2_000_000_000, 2_400_000_000]]


def test_kswapd_window_cuts():
    """Cuts for a chunk: on before the first op at or after the start, off
    after the last op at or before the end; windows reaching past the chunk
    leave their state for the next one."""
    from spbsim.trace.kswapd_windows import NEVER_NS, active_at, next_wake, window_cuts
    w = np.array([[100, 200], [300, 450], [600, 700]], np.int64)
    ts = np.array([50, 100, 150, 250, 350, 500], np.int64)
    assert window_cuts(w, ts) == [
        (1, {"reclaim_active": True, "next_wake": 100}),
        (3, {"reclaim_active": False, "next_wake": 300}),
        (4, {"reclaim_active": True, "next_wake": 300}),
        (5, {"reclaim_active": False, "next_wake": 600})]
    assert window_cuts(w, np.array([420, 650], np.int64)) == [
        (1, {"reclaim_active": False, "next_wake": 600}),
        (1, {"reclaim_active": True, "next_wake": 600})]
    # the last window's end: no further wake
    assert window_cuts(w, np.array([650, 800], np.int64)) == [
        (1, {"reclaim_active": False, "next_wake": NEVER_NS})]
    assert active_at(w, 650) and active_at(w, 100) and not active_at(w, 250)
    assert next_wake(w, 50) == 100 and next_wake(w, 150) == 100
    assert next_wake(w, 250) == 300 and next_wake(w, 701) == NEVER_NS


def test_stream_owned_reclaim_active_is_left_alone():
    """With reclaim_active_external (a replay that knows when the recorded
    kswapd ran) balance_pgdat() neither sets nor clears ZONE_RECLAIM_ACTIVE."""
    from spbsim.mm.vmscan import set_reclaim_active
    m = Machine(memory="4G", cpus=2).mem          # 1 GiB above 4 GiB: a Normal zone
    m.cfg[CFG["reclaim_active_external"]] = 1
    set_reclaim_active(m, ZONE_NORMAL, True)
    assert not m.zstat[ZONE_NORMAL, ZS_FLAGS] & ZONE_RECLAIM_ACTIVE
    m.zstat[ZONE_NORMAL, ZS_FLAGS] |= ZONE_RECLAIM_ACTIVE
    set_reclaim_active(m, ZONE_NORMAL, False)
    assert m.zstat[ZONE_NORMAL, ZS_FLAGS] & ZONE_RECLAIM_ACTIVE
    m.cfg[CFG["reclaim_active_external"]] = 0
    set_reclaim_active(m, ZONE_NORMAL, False)
    assert not m.zstat[ZONE_NORMAL, ZS_FLAGS] & ZONE_RECLAIM_ACTIVE


_INIT_ALLOC = ("            init-1       [000] .....    {ts:.6f}: mm_page_alloc: "
               "page=00000000af3f5202 pfn={pfn:#x} order=0 migratetype=1 "
               "gfp_flags=GFP_HIGHUSER_MOVABLE")


def test_prefill_replay_follows_the_kswapd_windows_too(tmp_path):
    """A pre-fill replay (no start snapshot) reads the whole trace before
    replaying it, so it also sets ZONE_RECLAIM_ACTIVE while the recorded
    kswapd reclaimed: kswapd's frees then meet lists capped at four batches
    (nr_pcp_high) instead of high."""
    from spbsim.machine import Machine
    from spbsim.mm.const import ZONE_NORMAL
    from spbsim.mm.state import PCP_BATCH, PCP_COUNT
    from spbsim.trace.whatif import replay_whatif
    n = 1500
    lines = [_INIT_ALLOC.format(ts=1.0 + i * 1e-5, pfn=0x100000 + i) for i in range(n)]
    lines += [_KS_WAKE.format(ts=2.0)]
    lines += [_KS_FREE.format(ts=2.001 + i * 1e-5, pfn=0x100000 + i) for i in range(n)]
    p = tmp_path / "trace.txt"
    p.write_text("\n".join(lines) + "\n")
    kw = dict(memory="1G", low_memory="512M", cpus=2, version="6.12")
    on = replay_whatif(p, Machine(**kw), prefill="movable")
    off = replay_whatif(p, Machine(**kw), prefill="movable", kswapd_windows=False)
    assert on["kswapd_windows"]["n"] == 1 and off["kswapd_windows"] is None
    assert on["checksum"] == off["checksum"]
    pcp_on = on["machine"].mem.pcp[ZONE_NORMAL, 0]
    pcp_off = off["machine"].mem.pcp[ZONE_NORMAL, 0]
    assert pcp_on[PCP_COUNT] <= 4 * pcp_on[PCP_BATCH] < pcp_off[PCP_COUNT]


_KS_WAKE_O = "         kswapd0-45      [000] .....    {ts:.6f}: mm_vmscan_kswapd_wake: nid=0 order={order}"


def _naps_of(tmp_path, lines):
    from spbsim.trace.ftrace import TraceReader
    from spbsim.trace.kswapd_windows import KswapdScan
    p = tmp_path / "trace.txt"
    p.write_text("\n".join(lines) + "\n")
    scan = KswapdScan(p)
    for b in TraceReader(p, batch_size=4).batches():
        scan.add(b)
    return scan.naps()


def test_kswapd_naps_from_the_trace(tmp_path):
    """kswapd_try_to_sleep() wakes kcompactd for the order kswapd was woken
    for (wakeup_kcompactd(pgdat, alloc_order, ...)) as it begins its HZ/10
    nap, a nap before the sleep tracepoint, also with order 0 (for which
    wakeup_kcompactd() returns at once: the nap still clears the skip bits
    a direct compaction asked for, reset_isolation_suitable())."""
    lines = [_KS_WAKE_O.format(ts=0.990, order=3)]
    lines += [_KS_FREE.format(ts=1.0 + i * 0.001, pfn=0x100000 + i) for i in range(11)]
    lines += [_KS_SLEEP.format(ts=1.11)]
    lines += [_KS_WAKE_O.format(ts=2.0, order=0), _KS_SLEEP.format(ts=2.5)]
    # woken again during a run: the last wake's order; a sleep 50 ms after it
    lines += [_KS_WAKE_O.format(ts=3.0, order=3), _KS_WAKE_O.format(ts=3.2, order=2),
              _KS_SLEEP.format(ts=3.25)]
    lines += [_KS_SLEEP.format(ts=4.0)]                 # no wake since the last sleep
    assert _naps_of(tmp_path, lines).tolist() == [[1_010_000_000, 3, 1], [2_400_000_000, 0, 1],
                                                  [3_200_000_000, 2, 1]]
    assert _naps_of(tmp_path, lines[:1]).shape == (0, 3)


_KS_KCD = ("         kswapd0-45      [000] .....    {ts:.6f}: mm_compaction_wakeup_kcompactd: "
           "nid=0 order={order} classzone_idx=Movable")
_TASK_KCD = ("            init-1       [001] .....    {ts:.6f}: mm_compaction_wakeup_kcompactd: "
             "nid=0 order={order} classzone_idx=Normal")


def test_a_nap_wakes_kcompactd_for_the_order_kswapd_traced(tmp_path):
    """kswapd_try_to_sleep() passes alloc_order, which is the wake's order
    only where balance_pgdat() dropped to order 0; else kswapd() rereads
    pgdat->kswapd_order, raised by wakeup_kswapd() while kswapd ran (no
    tracepoint then), and a run that began with boosted watermarks wakes
    kcompactd for pageblock_order as it ends.  run1: woken at order 0 at
    49.51 s after a fragmenting fallback boosted a watermark, kswapd traced
    mm_compaction_wakeup_kcompactd order=9 at 49.875 s and slept at 49.98 s;
    the nap read order 0 and the simulator's kcompactd stayed asleep.  The
    kcompactd wake-ups of other tasks (wakeup_kswapd() on a balanced node)
    are the simulator's own decisions and are not read."""
    lines = [_KS_WAKE_O.format(ts=0.5, order=0), _TASK_KCD.format(ts=0.6, order=3),
             _KS_KCD.format(ts=0.9, order=9), _KS_SLEEP.format(ts=1.0)]
    # two traced (the boost's at the run's end, the nap's): the larger
    lines += [_KS_WAKE_O.format(ts=2.0, order=2), _KS_KCD.format(ts=2.38, order=9),
              _KS_KCD.format(ts=2.4, order=2), _KS_SLEEP.format(ts=2.5)]
    # none traced: the wake's order, as before
    lines += [_KS_WAKE_O.format(ts=3.0, order=3), _KS_SLEEP.format(ts=3.25)]
    assert _naps_of(tmp_path, lines).tolist() == [[900_000_000, 9, 1], [2_400_000_000, 9, 1],
                                               [3_150_000_000, 3, 1]]


def test_a_kcompactd_wake_up_in_a_run_without_sleep_is_a_row_of_its_own(tmp_path):
    """A nap cut short by a new wake-up traces no sleep, but kcompactd was
    woken as it began: that wake-up is applied at its own time, without
    the nap's reset_isolation_suitable() (nap 0)."""
    lines = [_KS_WAKE_O.format(ts=0.5, order=0), _KS_KCD.format(ts=0.9, order=9),
             _KS_WAKE_O.format(ts=0.95, order=2), _KS_SLEEP.format(ts=1.4),
             _KS_KCD.format(ts=5.0, order=4)]               # no sleep after it at all
    assert _naps_of(tmp_path, lines).tolist() == [[900_000_000, 9, 0], [1_300_000_000, 2, 1],
                                               [5_000_000_000, 4, 0]]


def test_nap_cursor_cuts_each_nap_once_in_trace_order():
    from spbsim.trace.kswapd_windows import NapCursor
    cur = NapCursor(np.array([[100, 3, 1], [250, 2, 1], [600, 3, 0]], np.int64))
    assert cur.cuts(np.array([50, 100, 150, 200], np.int64)) == [
        (2, {"kcompactd_wake": 3, "nap": True})]
    # a nap between two chunks comes before the next chunk's first op
    assert cur.cuts(np.array([300, 400], np.int64)) == [(0, {"kcompactd_wake": 2, "nap": True})]
    assert cur.cuts(np.array([500, 700], np.int64)) == [(1, {"kcompactd_wake": 3, "nap": False})]
    assert cur.cuts(np.array([800], np.int64)) == []


def test_replay_wakes_kcompactd_where_the_recorded_kswapd_naps(tmp_path):
    """In a replay the recorded kswapd is the node's kswapd: its reclaim is
    in the stream, and as it naps (kswapd_try_to_sleep()) it asks kcompactd
    to compact for the order it was woken for.  The simulator's kcompactd
    does its own work then (kcompactd_do_work(): which zones, what to
    migrate), at once or, where no zone suits it, at its next timeout,
    which also ends a proactive compaction's deferral (kcompactd()).  The
    old replay woke kcompactd only where the simulator's own kswapd slept,
    and a stream that keeps the simulated zones above their LOW marks never
    woke that one."""
    from spbsim.machine import Machine
    from spbsim.trace.whatif import replay_whatif
    n = 1500
    lines = [_INIT_ALLOC.format(ts=1.0 + i * 1e-5, pfn=0x100000 + i) for i in range(n)]
    lines += [_KS_WAKE_O.format(ts=2.0, order=3)]
    lines += [_KS_FREE.format(ts=2.001 + i * 1e-5, pfn=0x100000 + i) for i in range(n // 2)]
    lines += [_KS_SLEEP.format(ts=2.2)]
    lines += [_INIT_ALLOC.format(ts=2.3 + i * 1e-3, pfn=0x110000 + i) for i in range(1000)]
    p = tmp_path / "trace.txt"
    p.write_text("\n".join(lines) + "\n")
    kw = dict(memory="1G", low_memory="512M", cpus=2, version="6.12")
    on = replay_whatif(p, Machine(**kw), prefill="movable")
    off = replay_whatif(p, Machine(**kw), prefill="movable", kswapd_windows=False)
    assert on["checksum"] == off["checksum"]
    assert on["kswapd_windows"]["naps"] == 1 and on["kswapd_windows"]["kcompactd_wakes"] == 1
    assert on["machine"].vmstat_counters()["compact_daemon_wake"] == 1
    assert off["machine"].vmstat_counters()["compact_daemon_wake"] == 0
    on["machine"].check()


def test_a_recorded_kswapd_nap_clears_the_skip_bits_a_direct_compaction_asked_for():
    """kswapd_try_to_sleep() calls reset_isolation_suitable(pgdat) as it
    begins its nap, whatever the order: a replay does it at the recorded
    kswapd's naps too (before, only where the simulator's own kswapd slept)."""
    from spbsim.mm import compaction as C
    from spbsim.mm.const import PB_compact_skip, PG_buddy
    from spbsim.trace.kswapd_windows import NapCursor
    from spbsim.trace.whatif import _kswapd_nap
    mach = Machine(memory="1G", low_memory="512M", cpus=1)
    m = mach.mem
    # a free-scanner block (upper half of the zone) that starts a free buddy:
    # __reset_isolation_pfn()'s sample finds PageBuddy there
    lo, hi = int(m.zone_start[ZONE_NORMAL]) >> 9, int(m.zone_end[ZONE_NORMAL]) >> 9
    pb = next(b for b in range(hi - 1, (lo + hi) // 2, -1) if m.pg_flags[b << 9] & PG_buddy)
    m.pb_flags[pb] |= PB_compact_skip
    naps = NapCursor(np.zeros((0, 3), np.int64))
    _kswapd_nap(mach, {"kcompactd_wake": 0, "nap": True}, naps)
    assert m.pb_flags[pb] & PB_compact_skip             # no flush asked: the bits stay
    m.zstat[ZONE_NORMAL, C._Z_BLOCKSKIP_FLUSH] = 1      # a direct compaction's scanners met
    _kswapd_nap(mach, {"kcompactd_wake": 0, "nap": False}, naps)
    assert m.pb_flags[pb] & PB_compact_skip             # a wake-up outside a nap: no reset
    _kswapd_nap(mach, {"kcompactd_wake": 0, "nap": True}, naps)
    assert not m.pb_flags[pb] & PB_compact_skip
    assert m.zstat[ZONE_NORMAL, C._Z_BLOCKSKIP_FLUSH] == 0
    assert naps.kcompactd_wakes == 0 and m.node[NODE["kcompactd_max_order"]] == 0
    _kswapd_nap(mach, {"kcompactd_wake": 2, "nap": True}, naps)
    assert naps.kcompactd_wakes == 1 and m.node[NODE["kcompactd_max_order"]] == 2


def test_a_wake_tracepoint_with_a_bad_order_is_one_line_naming_file_line_and_field(tmp_path):
    """The naps read kswapd's wake order: a malformed one stops the replay
    with the trace's file, line and field (lenient: read as order 0)."""
    from spbsim.trace.ftrace import TraceFormatError
    lines = [_KS_WAKE_O.format(ts=0.990, order=3), _KS_SLEEP.format(ts=1.11),
             _KS_WAKE_O.format(ts=2.0, order="zz"), _KS_SLEEP.format(ts=2.5)]
    with pytest.raises(TraceFormatError) as e:
        _naps_of(tmp_path, lines)
    msg = str(e.value)
    assert "trace.txt:3:" in msg and "mm_vmscan_kswapd_wake" in msg and "'order'" in msg
    assert "\n" not in msg
    from spbsim.trace.ftrace import TraceReader
    from spbsim.trace.kswapd_windows import KswapdScan
    scan = KswapdScan(tmp_path / "trace.txt", lenient=True)
    for b in TraceReader(tmp_path / "trace.txt", batch_size=4).batches():
        scan.add(b)
    assert scan.naps().tolist() == [[1_010_000_000, 3, 1], [2_400_000_000, 0, 1]]
    # kswapd's kcompactd wake-up tracepoint is read the same way
    with pytest.raises(TraceFormatError) as e:
        _naps_of(tmp_path, [_KS_WAKE_O.format(ts=0.5, order=0),
                            _KS_KCD.format(ts=0.9, order=12), _KS_SLEEP.format(ts=1.0)])
    msg = str(e.value)
    assert "trace.txt:2:" in msg and "mm_compaction_wakeup_kcompactd" in msg
    assert "'order'" in msg and "\n" not in msg
