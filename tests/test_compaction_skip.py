"""Compaction skip bits (PB_compact_skip, the kernel's PB_migrate_skip):
set by the free scanner on a block it scanned to the end
(isolate_freepages -> update_pageblock_skip), honoured by the next pass, kept
after the scanners meet, and cleared only by __reset_isolation_suitable()
(kswapd going to sleep, or compaction_restarting after maximal deferral;
both only after compact_blockskip_flush), where a sample of the block's
pages allows it."""
import numpy as np
import pytest

from spbsim import Machine
from spbsim.mm import compaction as C
from spbsim.mm import vmscan
from spbsim.mm.const import (MIGRATE_MOVABLE, PB_compact_skip, PG_buddy, PG_lru, PG_pinned,
                             pageblock_order)
from spbsim.mm.craft import exhaust, zero_watermarks
from spbsim.mm.state import ZSTAT

FLUSH = ZSTAT["compact_blockskip_flush"]
SYNC_DIRECT = C.CC_SYNC | C.CC_DIRECT
MIN_PRIO_DIRECT = SYNC_DIRECT | C.CC_WHOLE_ZONE | C.CC_IGNORE_SKIP | C.CC_IGNORE_BLOCK


@pytest.fixture
def pinned_half_free():
    """1 GB, all movable order-0 pages, every other page freed, and the first
    allocated page of every pageblock pinned: no pageblock can be emptied, so
    a direct compaction for order 9 runs until its scanners meet."""
    m = Machine("1G", cpus=1, pcp=False, early_unmovable=0, seed=1, migrate_untracked=True)
    zero_watermarks(m)
    pfns = np.sort(exhaust(m))
    m.run_ops(np.zeros(pfns.size // 2, np.int64), 0, pfns=pfns[1::2])
    kept = pfns[::2]
    first = np.unique(kept >> pageblock_order, return_index=True)[1]
    m.mem.pg_flags[kept[first]] |= PG_pinned
    z = int(np.argmax(m.mem.zstat[:, ZSTAT["managed"]]))
    return m, z


def _zone_pbs(m, z):
    return np.arange(int(m.mem.zone_start[z]) >> pageblock_order,
                     (int(m.mem.zone_end[z]) - 1 >> pageblock_order) + 1)


def _skipped(m, z):
    return int(((m.mem.pb_flags[_zone_pbs(m, z)] & PB_compact_skip) != 0).sum())


def test_free_scanner_marks_a_fully_scanned_block_and_skips_it_next_time(pinned_half_free):
    m, z = pinned_half_free
    mem = m.mem
    # the highest MOVABLE pageblock with free pages (the zone's top blocks
    # are reserved), where the free scanner starts
    pb = max(b for b in _zone_pbs(m, z) if mem.pb_mt[b] == MIGRATE_MOVABLE
             and (mem.pg_flags[b << pageblock_order:(b + 1) << pageblock_order] & PG_buddy).any())
    assert not mem.pb_flags[pb] & PB_compact_skip
    start = int(pb) << pageblock_order
    free_before = int(((mem.pg_flags[start:start + (1 << pageblock_order)] & PG_buddy) != 0).sum())
    assert free_before == 256
    # this block only (low_pfn = its start), for more pages than it has; a
    # full compaction's order (-1), so no free-list search comes first
    scan = lambda flags: C.isolate_freepages(mem, z, start, start, 0, -1, 1 << 20, flags,  # noqa: E731
                                             0, 0)[1]
    scanned = scan(SYNC_DIRECT)
    assert scanned > 0 and mem.cc_n[0] == free_before
    assert mem.pb_flags[pb] & PB_compact_skip                  # update_pageblock_skip
    C.cc_release(mem, z, 0)
    assert scan(SYNC_DIRECT) == 0                              # isolation_suitable
    assert mem.cc_n[0] == 0
    assert scan(SYNC_DIRECT | C.CC_IGNORE_SKIP) > 0            # ignore_skip_hint
    C.cc_release(mem, z, 0)
    m.check()


def _halves(m, z):
    """The zone's pageblocks below and above its middle (one block left out
    on each side): where __reset_isolation_suitable()'s migrate and free
    walks go."""
    pbs = _zone_pbs(m, z)
    mid = (int(m.mem.zone_start[z]) + int(m.mem.zone_end[z])) // 2 >> pageblock_order
    return pbs[pbs < mid - 1], pbs[pbs > mid + 1]


def _skip_bits(m, pbs):
    return (m.mem.pb_flags[pbs] & PB_compact_skip) != 0


def _with_lru_pages(m, pbs):
    """The blocks that hold LRU pages (the others, the kernel image's
    reserved blocks here, are never cleared)."""
    return np.array([b for b in pbs
                     if (m.mem.pg_flags[b << pageblock_order:(b + 1) << pageblock_order]
                         & PG_lru).any()])


def test_skip_bits_outlive_the_scanners_meeting_until_kswapd_sleeps(pinned_half_free):
    """The blocks the scanners marked keep their bits after the scanners met
    and through the next compaction.  kswapd going to sleep then runs
    __reset_isolation_suitable(): the lower half's blocks whose sampled
    pages (one in eight) include LRU pages are cleared; the upper half's
    keep any they have, as no free buddy starts at a sampled page (every
    free page here is at an odd pfn)."""
    m, z = pinned_half_free
    mem = m.mem
    fscan = lambda: m.vmstat_counters()["compact_free_scanned"]   # noqa: E731
    f0 = fscan()
    res = C.compact_zone(mem, z, 9, MIGRATE_MOVABLE, SYNC_DIRECT, 0, -1)
    assert res == C.COMPACT_PARTIAL_SKIPPED                     # the scanners met
    assert fscan() - f0 > 0
    marked = _skipped(m, z)
    assert marked > 0                                           # kept, not cleared at the meeting
    assert mem.zstat[z, FLUSH] == 1                             # compact_blockskip_flush
    m.check()
    C.compact_zone(mem, z, 9, MIGRATE_MOVABLE, SYNC_DIRECT, 0, -1)
    assert _skipped(m, z) >= marked
    lower, upper = _halves(m, z)
    lower = _with_lru_pages(m, lower)
    upper_bits = _skip_bits(m, upper)
    assert _skip_bits(m, lower).any()
    # kswapd going to sleep (balanced node) runs the reset
    vmscan.balance_pgdat(mem, 0, 1 << 20)
    assert mem.zstat[z, FLUSH] == 0
    assert not _skip_bits(m, lower).any()
    assert (_skip_bits(m, upper) == upper_bits).all()
    m.check()


def test_compaction_restarting_clears_skip_bits(pinned_half_free):
    """compaction_restarting() (maximal deferral, due again) runs
    __reset_isolation_suitable() before the compaction, which clears bits
    only after a direct compaction's scanners met (compact_blockskip_flush).
    Here the free walk finds no block to restart from (no free buddy at a
    sampled page), so both scanners are left where the walks met
    ("Leave no distance"): that compaction ends at once, and the next one
    starts from the zone's ends and scans the cleared lower half again."""
    m, z = pinned_half_free
    mem = m.mem
    mscan = lambda: m.vmstat_counters()["compact_migrate_scanned"]   # noqa: E731
    done = []
    for _ in range(3):
        s0 = mscan()
        C.compact_zone(mem, z, 9, MIGRATE_MOVABLE, SYNC_DIRECT, 0, -1)
        done.append(mscan() - s0)
    assert _skipped(m, z) > 0 and done[2] < done[0]          # later passes skip marked blocks
    mem.zstat[z, ZSTAT["compact_defer_shift"]] = C.COMPACT_MAX_DEFER_SHIFT
    mem.zstat[z, ZSTAT["compact_considered"]] = 1 << C.COMPACT_MAX_DEFER_SHIFT
    mem.zstat[z, ZSTAT["compact_order_failed"]] = 9
    assert C.compaction_restarting(mem, z, 9)
    assert not C.compaction_restarting(mem, z, 8)             # below compact_order_failed
    lower = _with_lru_pages(m, _halves(m, z)[0])
    bits = _skipped(m, z)
    mem.zstat[z, FLUSH] = 0                                   # no flush asked: nothing cleared
    s0 = mscan()
    C.compact_zone(mem, z, 9, MIGRATE_MOVABLE, SYNC_DIRECT, 0, -1)
    assert _skipped(m, z) >= bits and _skip_bits(m, lower).any()
    mem.zstat[z, FLUSH] = 1
    s0 = mscan()
    C.compact_zone(mem, z, 9, MIGRATE_MOVABLE, SYNC_DIRECT, 0, -1)
    assert mscan() - s0 == 0                                  # the scanners start met
    assert not _skip_bits(m, lower).any()
    mem.zstat[z, ZSTAT["compact_defer_shift"]] = 0             # no longer restarting
    s0 = mscan()
    C.compact_zone(mem, z, 9, MIGRATE_MOVABLE, SYNC_DIRECT, 0, -1)
    assert mscan() - s0 > done[2]          # the cleared blocks are scanned again
    m.check()


def test_kcompactd_and_compact_memory_do_not_ask_for_a_flush(pinned_half_free):
    m, z = pinned_half_free
    mem = m.mem
    C.compact_zone(mem, z, 9, MIGRATE_MOVABLE, C.CC_SYNC | C.CC_KCOMPACTD, 0, -1)      # kcompactd
    assert mem.zstat[z, FLUSH] == 0
    C.compact_zone(mem, z, -1, MIGRATE_MOVABLE,
                   C.CC_SYNC | C.CC_WHOLE_ZONE | C.CC_IGNORE_SKIP, 0, -1)     # compact_memory
    assert mem.zstat[z, FLUSH] == 0
    m.check()


def test_min_priority_direct_compaction_asks_for_a_flush(pinned_half_free):
    """COMPACT_PRIO_SYNC_FULL scans the whole zone but is still a direct
    compaction (cc->direct_compaction): its meeting sets the flush."""
    m, z = pinned_half_free
    mem = m.mem
    assert C.compact_zone(mem, z, 9, MIGRATE_MOVABLE, MIN_PRIO_DIRECT, 0, -1) == C.COMPACT_COMPLETE
    assert mem.zstat[z, FLUSH] == 1
    m.check()
