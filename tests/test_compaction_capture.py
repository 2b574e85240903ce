"""Compaction capture (mm/page_alloc.c compaction_capture(), mm/compaction.c
compact_zone_order() v6.12): a direct compactor publishes a capture_control
for the zone it compacts, and the free that makes a block of exactly its
order hands that block to it instead of the free lists; compaction stops
there.  States are built by hand (spbsim.mm.craft)."""
import numpy as np
import pytest

from spbsim import Machine
from spbsim.machine import InvariantError
from spbsim.mm import compaction as C
from spbsim.mm.const import (MIGRATE_MOVABLE, MIGRATE_UNMOVABLE, PG_buddy, ZONE_NORMAL,
                             pageblock_nr_pages, pageblock_order)
from spbsim.mm.craft import exhaust, zero_watermarks
from test_compaction_rules import _allocated, _block_pages, _free, _top_blocks
from spbsim.mm.state import CAPC_PAGE, CAPC_ZONE, EV, ZSTAT

PB = pageblock_nr_pages


def _fragmented(capture, trace=False, version="recent"):
    """1.5 GB, all pages allocated movable, then: the two highest fully used
    Normal pageblocks get 256 order-0 holes each (migration targets, at even
    pfns: the free scanner's stride, COMPACT_CLUSTER_MAX by the first, finds
    16 there and every one in the second) and a low one every odd page free
    (each hole is alone: no order-1 buddy).  The migrate scanner is pointed
    at the low block."""
    m = Machine("1536M", low_memory="512M", cpus=1, pcp=False, early_unmovable=0,
                migrate_untracked=True, reclaim=False, compaction_capture=capture,
                trace=trace, version=version)
    zero_watermarks(m)
    exhaust(m)
    mem = m.mem
    z = ZONE_NORMAL
    tops = _top_blocks(m, z, 2)
    low = (int(mem.zone_start[z]) >> pageblock_order) + 1
    assert _allocated(m, low) == PB
    _free(m, np.concatenate([_block_pages(m, t)[0::2] for t in tops]
                            + [_block_pages(m, low)[1::2]]))
    assert mem.fa_nr[z, 1:, :].sum() == 0
    mem.zstat[z, ZSTAT["compact_cached_migrate_pfn_async"]] = low << pageblock_order
    mem.zstat[z, ZSTAT["compact_cached_migrate_pfn_sync"]] = low << pageblock_order
    return m, low


def test_direct_compaction_takes_the_block_its_migration_frees():
    """An order-2 movable request that finds no order-2 block compacts
    Normal: the second page migrated out of the low block completes the
    order-2 buddy at the block's start and compaction captures it; the
    batch it was in (COMPACT_CLUSTER_MAX pages) is migrated whole, then
    compaction stops, and the request gets that block with compact_success
    counted.  Without capture (the switch off, as before) compaction
    migrates the whole block before compact_finished() sees a free order-2
    block, and the request takes it from the free lists."""
    m, low = _fragmented(capture=True, trace=True)
    n0 = int(m.mem.ev_n[0])
    pfn = m.alloc(2, "GFP_HIGHUSER_MOVABLE")
    vm = m.vmstat_counters()
    assert pfn == low << pageblock_order
    assert vm["pgmigrate_success"] == C.COMPACT_CLUSTER_MAX
    # stopped inside the block: the next compaction scans it again
    for key in ("compact_cached_migrate_pfn_async", "compact_cached_migrate_pfn_sync"):
        assert m.mem.zstat[ZONE_NORMAL, ZSTAT[key]] == low << pageblock_order
    assert vm["compact_stall"] == 1 and vm["compact_success"] == 1
    assert m.sim_counters()["sim_compact_capture"] == 1
    # the captured block never went through rmqueue: no zone_locked event for it
    ev = m.trace_records()[n0:]
    assert np.any((ev[:, 0] == EV["mm_page_alloc"]) & (ev[:, 3] == pfn))
    locked = ev[ev[:, 0] == EV["mm_page_alloc_zone_locked"]]
    assert not np.any(locked[:, 3] == pfn)
    assert m.mem.capc[CAPC_ZONE] == -1 and m.mem.capc[CAPC_PAGE] == -1
    m.check()

    off, low2 = _fragmented(capture=False)
    pfn2 = off.alloc(2, "GFP_HIGHUSER_MOVABLE")
    vm2 = off.vmstat_counters()
    assert pfn2 >= 0
    assert vm2["pgmigrate_success"] == PB // 2
    assert vm2["compact_success"] == 1
    assert off.sim_counters()["sim_compact_capture"] == 0
    off.check()


def test_kernel_6_1_never_captures_below_pageblock_order_from_movable_blocks():
    """v6.1's compaction_capture() refuses a MOVABLE block's page below
    pageblock order whatever the request's type (the exception for movable
    requests came later): the order-2 request takes the block from the free
    lists after compaction instead."""
    m, low = _fragmented(capture=True, version="6.1")
    pfn = m.alloc(2, "GFP_HIGHUSER_MOVABLE")
    assert pfn >= 0
    assert m.sim_counters()["sim_compact_capture"] == 0
    assert m.vmstat_counters()["compact_success"] == 1
    m.check()


def test_capture_leaves_movable_blocks_to_movable_requests():
    """compaction_capture(): below pageblock order a MOVABLE block's page is
    not captured for an unmovable compaction ("do not let lower order
    allocations pollute a movable pageblock"): the order-2 buddy stays on the
    free list, where compact_finished() sees it as a stealable fallback."""
    m, low = _fragmented(capture=True)
    mem = m.mem
    z = ZONE_NORMAL
    status = C.compact_zone_order(mem, z, 2, MIGRATE_UNMOVABLE, C.CC_SYNC | C.CC_DIRECT, 0)
    assert status == C.COMPACT_SUCCESS
    assert mem.capc[CAPC_PAGE] == -1 and mem.capc[CAPC_ZONE] == -1
    head = low << pageblock_order
    assert mem.pg_flags[head] & PG_buddy and mem.pg_order[head] >= 2
    assert mem.fa_nr[z, 2:, MIGRATE_MOVABLE].sum() > 0
    m.check()


def test_checker_reports_a_capture_left_behind():
    """The DEBUG_VM-style checker covers the capture_control: one left
    published (or a captured page nobody took) outside direct compaction is
    a violation."""
    m, _ = _fragmented(capture=True)
    m.mem.capc[CAPC_ZONE] = ZONE_NORMAL
    with pytest.raises(InvariantError, match="compaction capture"):
        m.check()
    m.mem.capc[CAPC_ZONE] = -1
    m.check()
