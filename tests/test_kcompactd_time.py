"""kcompactd's runs take [SIM] simulated time (kcompactd_cost_ns: the pages
its scanners look at and the pages it migrates): proactive compaction stops
once a replay's recorded kswapd wakes during it (__compact_finished's
kswapd_is_running(), asked batch by batch while the requests go on), and
kcompactd's next wait starts when a run ends, so a wake-up during a run
waits for its end (kcompactd_work_requested()), or is dropped there if no
higher than the order the run compacted for (kcompactd_do_work())."""
import numpy as np

from spbsim import Machine
from spbsim.mm import compaction as C
from spbsim.mm.background import background
from spbsim.mm.const import (MAX_PAGE_ORDER, MIGRATE_UNMOVABLE, NEVER_NS, ZONE_DMA32,
                             ZONE_NORMAL, pageblock_order)
from spbsim.mm.craft import exhaust, zero_watermarks
from spbsim.mm.state import CFG, NODE
from spbsim.mm.watermark import wakeup_kcompactd

PROACTIVE = C.CC_SYNC | C.CC_WHOLE_ZONE | C.CC_IGNORE_SKIP | C.CC_KCOMPACTD | C.CC_PROACTIVE
T0 = 10_000_000_000


def _holey(nfree=20000, concurrent=True):
    """1.5 GB (1 GB in Normal), every page allocated movable, then every
    other page of Normal freed: compaction has much to migrate."""
    m = Machine("1536M", low_memory="512M", cpus=1, pcp=False, early_unmovable=0,
                migrate_untracked=True, kcompactd_concurrent=concurrent)
    zero_watermarks(m)
    pfns = np.sort(exhaust(m))
    normal = pfns[pfns >= m.mem.zone_start[ZONE_NORMAL]]
    holes = normal[0::2][:nfree]
    m.run_ops(np.zeros(len(holes), np.int64), 0, pfns=np.asarray(holes, np.int64), cpu=0)
    m.mem.node[NODE["kswapd_wait"]] = 0      # (exhausting memory woke it)
    return m


def _cost(mem, scanned, migrated):
    return scanned * int(mem.cfg[CFG["compaction_scan_ns"]]) + \
        migrated * int(mem.cfg[CFG["compaction_migrate_ns"]])


def _proactive_run(next_wake):
    m = _holey()
    mem = m.mem
    mem.cfg[CFG["reclaim_active_external"]] = 1      # a replay following its kswapd
    mem.node[NODE["kswapd_next_wake_ns"]] = next_wake
    mem.node[NODE["kcompactd_clock_ns"]] = T0
    v0 = m.vmstat_counters()
    rc = C.compact_zone(mem, ZONE_NORMAL, -1, MIGRATE_UNMOVABLE, PROACTIVE, 0, 0)
    v = m.vmstat_counters()
    migrated = v["pgmigrate_success"] - v0["pgmigrate_success"]
    scanned = sum(v[k] - v0[k] for k in ("compact_migrate_scanned", "compact_free_scanned"))
    return m, rc, migrated, scanned


def test_proactive_compaction_stops_when_the_recorded_kswapd_wakes_during_it():
    """The recorded kswapd wakes 2 ms into the run: at 50 us a page the run
    has migrated about 40 pages by then, and stops (PARTIAL_SKIPPED) at the
    next check, within the pageblock it was in.  Without that wake the same
    run migrates thousands of pages.  The old code ran compaction in no time
    and asked only whether kswapd ran when it began."""
    m, rc, migrated, scanned = _proactive_run(NEVER_NS)
    assert rc != C.COMPACT_PARTIAL_SKIPPED and migrated > 5000
    assert m.mem.node[NODE["kcompactd_clock_ns"]] == T0 + _cost(m.mem, scanned, migrated)
    m.check()
    m, rc, migrated, scanned = _proactive_run(T0 + 2_000_000)
    assert rc == C.COMPACT_PARTIAL_SKIPPED
    per_page = int(m.mem.cfg[CFG["compaction_migrate_ns"]])
    assert 2_000_000 // per_page // 2 <= migrated <= 2_000_000 // per_page + (1 << pageblock_order)
    clock = int(m.mem.node[NODE["kcompactd_clock_ns"]])
    assert clock == T0 + _cost(m.mem, scanned, migrated) and clock >= T0 + 2_000_000
    m.check()


def test_kcompactd_waits_from_the_end_of_its_run_and_a_wake_during_it_waits_for_that_end():
    """kcompactd(): the 500 ms wait starts when kcompactd_do_work() returns,
    not when it began; wakeup_kcompactd() during a run finds no sleeper, so
    the order stays recorded and runs when the run ends, unless the run's
    end drops it as no higher than the run's own order.  (The run done at
    once: kcompactd_concurrent off.)"""
    m = _holey(concurrent=False)
    mem = m.mem
    mem.node[NODE["kcompactd_timeout_ns"]] = T0 + C.HPAGE_FRAG_CHECK_INTERVAL_NS
    wakeup_kcompactd(mem, pageblock_order, ZONE_NORMAL)
    assert C.kcompactd_node_suitable(mem)
    v0 = m.vmstat_counters()
    background(mem, T0, 0)
    v = m.vmstat_counters()
    assert v["compact_daemon_wake"] == v0["compact_daemon_wake"] + 1
    migrated = v["pgmigrate_success"] - v0["pgmigrate_success"]
    scanned = sum(v[k] - v0[k] for k in ("compact_daemon_migrate_scanned",
                                         "compact_daemon_free_scanned"))
    assert migrated > 0
    end = T0 + _cost(mem, scanned, migrated)
    assert mem.node[NODE["kcompactd_clock_ns"]] == end
    assert mem.node[NODE["kcompactd_timeout_ns"]] == end + C.HPAGE_FRAG_CHECK_INTERVAL_NS
    m.check()
    assert mem.node[NODE["kcompactd_run_order"]] == pageblock_order
    # woken again before the run's end for the same order: kcompactd_do_work()
    # drops it at its end (kcompactd_max_order <= cc.order), nothing runs
    wakeup_kcompactd(mem, pageblock_order, ZONE_NORMAL)
    background(mem, (T0 + end) // 2, 0)
    assert mem.node[NODE["kcompactd_max_order"]] == 0
    assert mem.node[NODE["kcompactd_timeout_ns"]] == end + C.HPAGE_FRAG_CHECK_INTERVAL_NS
    # for a higher order: it stays recorded and runs when the run ends
    wakeup_kcompactd(mem, MAX_PAGE_ORDER, ZONE_NORMAL)
    background(mem, (T0 + end) // 2 + 1, 0)
    assert m.vmstat_counters()["compact_daemon_wake"] == v["compact_daemon_wake"]
    assert mem.node[NODE["kcompactd_max_order"]] == MAX_PAGE_ORDER
    assert mem.node[NODE["kcompactd_timeout_ns"]] == end
    m.check()
    background(mem, end, 0)
    assert m.vmstat_counters()["compact_daemon_wake"] == v["compact_daemon_wake"] + 1
    assert mem.node[NODE["kcompactd_max_order"]] == 0
    assert mem.node[NODE["kcompactd_run_order"]] == MAX_PAGE_ORDER
    m.check()


def test_debug_vm_checks_kcompactds_clock_and_the_recorded_kswapds_next_wake():
    import pytest

    from spbsim.machine import InvariantError
    m = Machine("1G", cpus=1)
    assert m.mem.node[NODE["kswapd_next_wake_ns"]] == NEVER_NS    # no recording followed
    m.check()
    for field in ("kcompactd_clock_ns", "kswapd_next_wake_ns"):
        keep = int(m.mem.node[NODE[field]])
        m.mem.node[NODE[field]] = -1
        with pytest.raises(InvariantError, match="kcompactd's clock"):
            m.check()
        m.mem.node[NODE[field]] = keep
    m.check()


def test_the_replay_follows_the_recorded_kswapds_next_wake():
    """_follow_kswapd (each chunk's first op, the start) and the window cuts
    keep ZONE_RECLAIM_ACTIVE and kswapd_next_wake_ns in step with the
    recorded kswapd: a resync after a window that began and ended between
    two chunks' ops turns the flag off and moves the next wake on."""
    from spbsim.mm.const import ZONE_RECLAIM_ACTIVE
    from spbsim.mm.state import ZS_FLAGS
    from spbsim.trace.whatif import _follow_kswapd, _kswapd_cut
    m = Machine("1G", cpus=1)
    mem = m.mem
    w = np.array([[100, 200], [300, 450], [600, 700]], np.int64)

    def state():
        return (bool(mem.zstat[ZONE_DMA32, ZS_FLAGS] & ZONE_RECLAIM_ACTIVE),
                int(mem.node[NODE["kswapd_next_wake_ns"]]))

    _follow_kswapd(m, w, 150)
    assert mem.cfg[CFG["reclaim_active_external"]] == 1
    assert state() == (True, 100)
    _kswapd_cut(m, {"reclaim_active": False, "next_wake": 300})
    assert state() == (False, 300)
    _kswapd_cut(m, {"reclaim_active": True, "next_wake": 300})
    assert state() == (True, 300)
    _follow_kswapd(m, w, 500)            # the window ended in a gap: no off cut
    assert state() == (False, 600)
    _follow_kswapd(m, w, 800)
    assert state() == (False, NEVER_NS)
    m.check()


def test_proactive_compaction_does_not_start_once_the_recorded_kswapd_woke():
    """should_proactive_compact_node(): no proactive run while kswapd runs.
    A daemon tick can come after the recorded kswapd woke but before the
    window's cut set ZONE_RECLAIM_ACTIVE: the run must not start (and then
    stop at once, be deferred 32 s for a score it had no time to lower)."""
    m = _holey()
    mem = m.mem
    mem.cfg[CFG["compaction_proactiveness"]] = 95     # marks 5 and 15
    assert C.fragmentation_score_node(mem) > C.proactive_wmarks(mem)[1]
    mem.cfg[CFG["reclaim_active_external"]] = 1
    mem.node[NODE["kswapd_next_wake_ns"]] = T0 - 1
    mem.node[NODE["kcompactd_timeout_ns"]] = T0
    mem.node[NODE["kcompactd_max_order"]] = 0          # no order pending
    mem.node[NODE["kcompactd_wait"]] = 0
    v0 = m.vmstat_counters()
    background(mem, T0, 0)
    assert m.vmstat_counters()["pgmigrate_success"] == v0["pgmigrate_success"]
    assert mem.node[NODE["kcompactd_timeout_ns"]] == T0 + C.HPAGE_FRAG_CHECK_INTERVAL_NS
    # once the recorded kswapd's next wake is ahead, it runs
    mem.node[NODE["kswapd_next_wake_ns"]] = NEVER_NS
    background(mem, T0 + C.HPAGE_FRAG_CHECK_INTERVAL_NS, 0)
    assert m.vmstat_counters()["pgmigrate_success"] > v0["pgmigrate_success"]
    m.check()


def test_without_proactiveness_kcompactd_sleeps_until_woken():
    """kcompactd() with compaction_proactiveness 0 waits with
    MAX_SCHEDULE_TIMEOUT: an order a wake-up left pending (the node did
    not suit it) waits for the next wake-up, also after a run; an order
    asked during a run still runs when the run ends.  (The run done at
    once: kcompactd_concurrent off.)"""
    m = _holey(concurrent=False)
    mem = m.mem
    mem.cfg[CFG["compaction_proactiveness"]] = 0
    mem.node[NODE["kcompactd_timeout_ns"]] = NEVER_NS
    assert Machine("1G", cpus=1, compaction_proactiveness=0).mem.node[
        NODE["kcompactd_timeout_ns"]] == NEVER_NS
    wakeup_kcompactd(mem, pageblock_order, ZONE_NORMAL)
    v0 = m.vmstat_counters()
    background(mem, T0, 0)                  # suitable: runs at once
    assert m.vmstat_counters()["compact_daemon_wake"] == v0["compact_daemon_wake"] + 1
    end = int(mem.node[NODE["kcompactd_clock_ns"]])
    assert end > T0 and mem.node[NODE["kcompactd_timeout_ns"]] == end + NEVER_NS
    # asked for more during the run: runs at its end, then sleeps again
    wakeup_kcompactd(mem, MAX_PAGE_ORDER, ZONE_NORMAL)
    background(mem, (T0 + end) // 2, 0)
    assert mem.node[NODE["kcompactd_timeout_ns"]] == end
    background(mem, end, 0)
    assert m.vmstat_counters()["compact_daemon_wake"] == v0["compact_daemon_wake"] + 2
    end2 = int(mem.node[NODE["kcompactd_clock_ns"]])
    assert mem.node[NODE["kcompactd_timeout_ns"]] == end2 + NEVER_NS
    # a pending order the node does not suit is not run at any later time
    mem.node[NODE["kcompactd_max_order"]] = pageblock_order
    background(mem, end2 + 100 * C.HPAGE_FRAG_CHECK_INTERVAL_NS, 0)
    assert m.vmstat_counters()["compact_daemon_wake"] == v0["compact_daemon_wake"] + 2
    m.check()


def _migrated(m):
    return int(m.vmstat_counters()["pgmigrate_success"])


def _proactive_due(m):
    """kcompactd's wait times out at T0 with no order pending, and the
    node's score is above the high mark (compaction_proactiveness 95: marks
    5 and 15), so a proactive run of the whole node begins."""
    mem = m.mem
    mem.cfg[CFG["compaction_proactiveness"]] = 95
    assert C.fragmentation_score_node(mem) > C.proactive_wmarks(mem)[1]
    mem.node[NODE["kcompactd_timeout_ns"]] = T0
    mem.node[NODE["kcompactd_max_order"]] = 0
    mem.node[NODE["kcompactd_wait"]] = 0
    return m


def test_kcompactd_runs_beside_the_requests_and_ends_as_the_run_done_at_once():
    """kcompactd is a thread of its own: while its run takes its [SIM] time,
    the requests go on.  With kcompactd_concurrent a proactive run begun at
    T0 has migrated, at each later call, no more than its clock allows (one
    pageblock past it, where compact_zone() looks at its clock), DEBUG_VM
    holds while it is paused (its cc_resume row and kcompactd_task), and it
    ends as the run done at once does: the same pages migrated, the same
    free lists, its next wait from its end.  A request in between meets a
    zone still being compacted.  The old code did the whole run between two
    requests."""
    at_once = _proactive_due(_holey(concurrent=False))
    v0 = _migrated(at_once)
    score0 = C.fragmentation_score_node(at_once.mem)
    background(at_once.mem, T0, 0)
    total = _migrated(at_once) - v0
    assert total > 5000
    end_at_once = int(at_once.mem.node[NODE["kcompactd_clock_ns"]])
    # the run lowered the node's score: kcompactd waits 500 ms, not 32 s
    assert C.fragmentation_score_node(at_once.mem) < score0
    assert at_once.mem.node[NODE["kcompactd_timeout_ns"]] == \
        end_at_once + C.HPAGE_FRAG_CHECK_INTERVAL_NS

    m = _proactive_due(_holey())
    mem = m.mem
    assert Machine("1G", cpus=1).mem.cfg[CFG["kcompactd_concurrent"]] == 1   # the default
    per_page = int(mem.cfg[CFG["compaction_migrate_ns"]])
    step = 10_000_000                                        # a call every 10 ms
    now, calls = T0, 0
    while True:
        background(mem, now, 0)
        calls += 1
        done = _migrated(m) - v0
        assert done <= (now - T0) // per_page + (1 << pageblock_order)
        if mem.node[NODE["kcompactd_task"]] == 0:
            break
        clock = int(mem.node[NODE["kcompactd_clock_ns"]])
        assert clock > now and mem.node[NODE["kcompactd_timeout_ns"]] == clock
        if calls == 2:
            # a request here finds fewer free 2 MB blocks than the run leaves
            assert mem.nr_free[ZONE_NORMAL, pageblock_order:].sum() < \
                at_once.mem.nr_free[ZONE_NORMAL, pageblock_order:].sum()
            m.check()
        now += step
    assert calls > 10
    assert _migrated(m) - v0 == total
    assert (mem.nr_free == at_once.mem.nr_free).all()
    end = int(mem.node[NODE["kcompactd_clock_ns"]])
    assert end >= end_at_once
    assert mem.node[NODE["kcompactd_timeout_ns"]] == \
        end + int(at_once.mem.node[NODE["kcompactd_timeout_ns"]]) - end_at_once
    m.check()


def test_a_wake_during_a_concurrent_run_waits_for_its_end():
    """wakeup_kcompactd() while kcompactd's run is paused finds no sleeper:
    a higher order stays recorded (kcompactd_work_requested()) and runs as
    soon as the run ends, with no 500 ms wait between."""
    m = _holey()
    mem = m.mem
    wakeup_kcompactd(mem, pageblock_order, ZONE_NORMAL)
    background(mem, T0, 0)
    assert mem.node[NODE["kcompactd_task"]] != 0
    wakes = m.vmstat_counters()["compact_daemon_wake"]
    wakeup_kcompactd(mem, MAX_PAGE_ORDER, ZONE_NORMAL)
    now = T0 + 1
    while mem.node[NODE["kcompactd_task"]] != 0:
        background(mem, now, 0)
        if mem.node[NODE["kcompactd_task"]] != 0:
            assert m.vmstat_counters()["compact_daemon_wake"] == wakes
            assert mem.node[NODE["kcompactd_max_order"]] == MAX_PAGE_ORDER
        now = int(mem.node[NODE["kcompactd_clock_ns"]])
    end = int(mem.node[NODE["kcompactd_clock_ns"]])
    assert mem.node[NODE["kcompactd_timeout_ns"]] == end
    background(mem, end, 0)
    assert m.vmstat_counters()["compact_daemon_wake"] == wakes + 1
    assert mem.node[NODE["kcompactd_run_order"]] == MAX_PAGE_ORDER
    m.check()


def test_a_concurrent_proactive_run_stops_when_kswapd_wakes_in_the_stream():
    """A proactive run that advances with the requests stops
    (PARTIAL_SKIPPED) at its first check after the recorded kswapd woke, as
    the kernel's __compact_finished() does while the workload runs: here
    5 ms into the run, while it is paused."""
    m = _proactive_due(_holey())
    mem = m.mem
    mem.cfg[CFG["reclaim_active_external"]] = 1
    mem.node[NODE["kswapd_next_wake_ns"]] = NEVER_NS
    v0 = _migrated(m)
    background(mem, T0, 0)
    assert mem.node[NODE["kcompactd_task"]] == 2      # KCD_TASK_PROACTIVE
    first = _migrated(m) - v0
    assert 0 < first <= 1 << pageblock_order
    mem.node[NODE["kswapd_next_wake_ns"]] = T0 + 5_000_000
    now = T0 + 20_000_000
    while mem.node[NODE["kcompactd_task"]] != 0:
        background(mem, now, 0)
        now += 20_000_000
    per_page = int(mem.cfg[CFG["compaction_migrate_ns"]])
    assert _migrated(m) - v0 <= 5_000_000 // per_page + 2 * (1 << pageblock_order)
    m.check()


def test_debug_vm_checks_kcompactds_run_and_its_paused_compaction():
    """DEBUG_VM covers kcompactd_task and kcompactd's cc_resume row: an
    unknown run kind, a run's zone out of range, a paused compaction with
    no run, a run left between requests with kcompactd_concurrent off."""
    import pytest

    from spbsim.machine import InvariantError
    from spbsim.mm.state import CCR_ACTIVE, CCR_SLOT_KCOMPACTD, CCR_ZONE
    m = _holey()
    mem = m.mem
    wakeup_kcompactd(mem, pageblock_order, ZONE_NORMAL)
    background(mem, T0, 0)
    m.check()
    r = mem.cc_resume[CCR_SLOT_KCOMPACTD]
    assert r[CCR_ACTIVE] == 1 and r[CCR_ZONE] == ZONE_NORMAL
    for field, bad, match in (("kcompactd_task", 7, "kcompactd's run"),
                              ("kcompactd_task_zone", 9, "kcompactd's run"),
                              ("kcompactd_task_score", -1, "kcompactd's run"),
                              ("kcompactd_task_zone", ZONE_DMA32, "kcompactd's run")):
        keep = int(mem.node[NODE[field]])
        mem.node[NODE[field]] = bad
        with pytest.raises(InvariantError, match=match):
            m.check()
        mem.node[NODE[field]] = keep
    mem.cfg[CFG["kcompactd_concurrent"]] = 0
    with pytest.raises(InvariantError, match="kcompactd's run"):
        m.check()
    mem.cfg[CFG["kcompactd_concurrent"]] = 1
    keep = int(mem.node[NODE["kcompactd_task"]])
    mem.node[NODE["kcompactd_task"]] = 0
    mem.node[NODE["kcompactd_task_zone"]] = 0
    mem.node[NODE["kcompactd_task_zoneidx"]] = 0
    with pytest.raises(InvariantError, match="kcompactd's run"):
        m.check()
    mem.node[NODE["kcompactd_task"]] = keep


def test_a_run_done_at_once_first_ends_the_paused_one():
    """kcompactd_do_work() done at once (as a caller outside the loop, or
    after kcompactd_concurrent was turned off) while a concurrent run is
    paused: the paused zone is finished at once first, so no run is left
    paused with its compaction begun twice; then the new run runs."""
    m = _proactive_due(_holey())
    mem = m.mem
    background(mem, T0, 0)
    assert mem.node[NODE["kcompactd_task"]] == 2
    wakes = m.vmstat_counters()["compact_daemon_wake"]
    mem.node[NODE["kcompactd_max_order"]] = pageblock_order
    mem.node[NODE["kcompactd_highest_zoneidx"]] = ZONE_NORMAL
    assert C.kcompactd_do_work(mem, 0) == 1
    assert mem.node[NODE["kcompactd_task"]] == 0 and not mem.cc_resume.any()
    assert m.vmstat_counters()["compact_daemon_wake"] == wakes + 1
    m.check()
