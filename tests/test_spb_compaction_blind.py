"""Direct compaction under the SPB allocator reads the zone's shadow counts
(S1: `zone->free_area[o].nr_free`, kept for the watermark checks; spec
spb-source-facts §10).  A free pageblock held back in a tainted SPB's
reserve, which PASS_4 and __rmqueue_sb_find_fallback() refuse to movable
requests, makes compaction_suit_allocation_order() report COMPACT_SUCCESS
for a THP-sized movable request without scanning anything, and the
request fails.  This is the series' rule as S1 has it, not a rule fix: the
test pins the behaviour that docs/findings.md reports, and the [SIM]
what-if compaction_order_check=usable that measures what it costs."""
import numpy as np
import pytest

from spbsim import Machine
from spbsim.mm.const import MIGRATE_MOVABLE, SUPERPAGEBLOCK_ORDER
from spbsim.mm.craft import exhaust, zero_watermarks


def _state(reserve_block_free, check="shadow"):
    """Every page allocated movable; SPB 2 tainted by one unmovable page and
    (optionally) one wholly free pageblock in it: inside the tainted reserve;
    in SPB 1 four pageblocks with their first half free (order-8 buddies,
    which the free scanner's stride finds), which compaction can make into a
    free pageblock."""
    m = Machine("3G", cpus=1, spb="v1", pcp=False, early_unmovable=0,
                watermark_boost_factor=0, reclaim=False, compaction=True,
                migrate_untracked=True, memmap_bytes_per_page=0, trace=True,
                trace_capacity=1 << 16, spb_set={"compaction_order_check": check})
    mem = m.mem
    zero_watermarks(m)
    pfns = np.sort(exhaust(m))
    spb2 = 2 << SUPERPAGEBLOCK_ORDER
    # one page of a pageblock of SPB 2 becomes unmovable: SPB 2 is tainted
    blk = spb2 + 7 * 512
    m.run_ops(np.zeros(512, np.int64), 0, pfns=np.arange(blk, blk + 512, dtype=np.int64))
    u = m.alloc(0, "GFP_KERNEL")
    assert u >> SUPERPAGEBLOCK_ORDER == 2
    if reserve_block_free:
        fb = spb2 + 40 * 512
        m.run_ops(np.zeros(512, np.int64), 0, pfns=np.arange(fb, fb + 512, dtype=np.int64))
    spb1 = 1 << SUPERPAGEBLOCK_ORDER
    c = spb1 + 20 * 512
    halves = np.concatenate([np.arange(c + k * 512, c + k * 512 + 256) for k in range(4)])
    m.run_ops(np.zeros(1024, np.int64), 0, pfns=halves.astype(np.int64))
    m.check()
    mem.ev_n[:] = 0             # the log holds only what the test's request does
    return m


def _compaction_begins(m):
    from spbsim.mm.state import EV_NAMES
    assert int(m.mem.ev_n[1]) == 0                  # nothing dropped
    ev = m.trace_records()
    return int((ev[:, 0] == EV_NAMES.index("mm_compaction_begin")).sum())


def test_a_free_block_in_a_tainted_reserve_makes_thp_compaction_report_success_unscanned():
    m = _state(reserve_block_free=True)
    mem = m.mem
    assert int(mem.nr_free[:, 9:].sum()) >= 1        # the reserve's free pageblock
    v0 = m.vmstat_counters()
    p = m.alloc(9, "GFP_TRANSHUGE")
    v = m.vmstat_counters()
    assert p is None                                   # PASS_4 skips the tainted SPB
    assert v["compact_stall"] - v0["compact_stall"] >= 1
    assert v["compact_success"] == v0["compact_success"]
    assert v["compact_fail"] - v0["compact_fail"] == v["compact_stall"] - v0["compact_stall"]
    assert v["compact_migrate_scanned"] == v0["compact_migrate_scanned"]
    assert _compaction_begins(m) == 0                  # compact_zone() never ran
    m.check()


def test_without_it_the_same_request_compacts_and_succeeds():
    m = _state(reserve_block_free=False)
    assert int(m.mem.nr_free[:, 9:].sum()) == 0
    v0 = m.vmstat_counters()
    p = m.alloc(9, "GFP_TRANSHUGE")
    v = m.vmstat_counters()
    assert p is not None                               # a pageblock compaction emptied
    assert int(m.mem.pb_mt[p >> 9]) == MIGRATE_MOVABLE
    assert v["compact_success"] - v0["compact_success"] == 1
    assert v["compact_migrate_scanned"] > v0["compact_migrate_scanned"]
    assert _compaction_begins(m) >= 1
    m.check()
    m.free(p)
    m.check()


def test_the_what_if_sees_past_the_reserve_and_compacts():
    m = _state(reserve_block_free=True, check="usable")
    mem = m.mem
    reserve_free = int(mem.nr_free[:, 9:].sum())
    v0 = m.vmstat_counters()
    p = m.alloc(9, "GFP_TRANSHUGE")
    v = m.vmstat_counters()
    assert p is not None and p >> SUPERPAGEBLOCK_ORDER != 2     # not the reserve's block
    assert v["compact_success"] - v0["compact_success"] == 1
    assert _compaction_begins(m) >= 1
    assert int(mem.nr_free[:, 9:].sum()) == reserve_free       # the reserve keeps its block
    m.check()
    m.free(p)
    m.check()


def test_presets_keep_s1s_shadow_counts():
    from spbsim.mm.spb.params import SPB_PRESETS
    assert all(SPB_PRESETS[p]["compaction_order_check"] == "shadow"
               for p in ("s1", "v1", "v1-pre43", "v2"))


@pytest.mark.parametrize("check", ["shadow", "usable"])
def test_kcompactd_woken_for_a_thp_is_blind_under_shadow_counts(check):
    """kcompactd_do_work() for order 9: with the reserve's free pageblock its
    watermark test says the order is there, so it compacts nothing (S1);
    the what-if has it compact, its stop test reading the order as movable."""
    from spbsim.mm.compaction import kcompactd_do_work
    from spbsim.mm.state import NODE
    m = _state(reserve_block_free=True, check=check)
    mem = m.mem
    z = int(mem.pb_zone[(2 << SUPERPAGEBLOCK_ORDER) >> 9])
    mem.node[NODE["kcompactd_max_order"]] = 9
    mem.node[NODE["kcompactd_highest_zoneidx"]] = z
    v0 = m.vmstat_counters()
    assert kcompactd_do_work(mem, 0) == 1
    v = m.vmstat_counters()
    scanned = v["compact_daemon_migrate_scanned"] - v0["compact_daemon_migrate_scanned"]
    if check == "shadow":
        assert _compaction_begins(m) == 0 and scanned == 0
    else:
        assert _compaction_begins(m) >= 1 and scanned > 0
    m.check()
