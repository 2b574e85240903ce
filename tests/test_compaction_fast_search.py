"""Compaction's free-list search and skip-bit reset (mm/compaction.c of v6.12
and v6.1): fast_isolate_freepages() takes a free page off a MOVABLE free
list of an order below the target before the linear scan, from the top
quarter of the scanners' distance, rotates the list (move_freelist_head) and
for sync compaction isolates around it (fast_isolate_around); a search from
the scan start that finds nothing moves the free scanner.
__reset_isolation_suitable() runs only after a direct compaction's scanners
met and clears only the skip bits a sample of the block's pages allows."""
import numpy as np
import pytest
from test_compaction_free_scanner import NB, _free, _full, _source

from spbsim.machine import InvariantError
from spbsim.mm import compaction as C
from spbsim.mm.const import MIGRATE_MOVABLE, PB_compact_skip, PG_buddy, PG_lru
from spbsim.mm.state import ZSTAT

FREE_PFN = ZSTAT["compact_cached_free_pfn"]
MIGRATE_PFN = ZSTAT["compact_cached_migrate_pfn_sync"]
MIGRATE_PFN_ASYNC = ZSTAT["compact_cached_migrate_pfn_async"]
INIT_FREE_PFN = ZSTAT["compact_init_free_pfn"]
FLUSH = ZSTAT["compact_blockskip_flush"]
KCOMPACTD = C.CC_SYNC | C.CC_KCOMPACTD
ASYNC_DIRECT = C.CC_DIRECT


def _count(m, name):
    return m.vmstat_counters()[name]


def _allocated(m, pfns):
    """The pages are no longer free (isolated and migrated into)."""
    return not (m.mem.pg_flags[np.asarray(pfns)] & PG_buddy).any()


def _free_odd(m, block):
    """Free the pages at odd offsets of ``block`` (order-0 buddies, freed
    in pfn order: the first is the list's tail); returns their pfns."""
    odd = np.arange(block * NB + 1, (block + 1) * NB, 2)
    _free(m, odd)
    return odd


def _compact(m, z, src, top, flags):
    mem = m.mem
    mem.zstat[z, MIGRATE_PFN] = src * NB
    mem.zstat[z, MIGRATE_PFN_ASYNC] = src * NB
    mem.zstat[z, FREE_PFN] = top * NB
    f0 = _count(m, "compact_free_scanned")
    res = C.compact_zone(mem, z, 9, MIGRATE_MOVABLE, flags, 0, -1)
    return res, _count(m, "compact_free_scanned") - f0


@pytest.mark.parametrize("version", ["6.12", "6.1"])
def test_fast_search_takes_a_top_quarter_page_from_the_list_tail(version):
    """Eight pages to migrate.  The order-0 MOVABLE list holds, from its
    tail, one page low in the zone and then the free pages of a block near
    the top: the search passes the low page, takes the first high one, moves
    the list head to it (the low page, looked at, goes behind the tail), and
    kcompactd (sync) isolates the rest of the batch from that block at
    stride 1.  The linear scanner never runs: the top block is untouched."""
    m, z, src, top = _full(version)
    _source(m, src)
    low = (src + 10) * NB + 5
    _free(m, [low])                                       # first freed: the tail
    odd = _free_odd(m, top - 2)
    res, fscanned = _compact(m, z, src, top, KCOMPACTD)
    assert res == C.COMPACT_SUCCESS
    assert _count(m, "pgmigrate_success") == 8
    assert _allocated(m, odd[:8]) and not _allocated(m, odd[8:9])
    # the low page was looked at and is now first on its list
    assert m.mem.fa_head[z, 0, MIGRATE_MOVABLE] == low
    assert m.mem.pg_flags[low] & PG_buddy
    # one entry on each list of orders 8..3 (the source block's free
    # buddies), the low page and the page taken, then pages 0..15 of the
    # target block (the 8th free page is at 15)
    assert fscanned == 6 + 2 + 16
    assert not m.mem.pb_flags[top] & PB_compact_skip
    m.check()


def test_async_direct_compaction_does_not_isolate_around_the_page():
    """Async direct compaction takes the one page the search found and does
    not scan its block (fast_isolate_around); the isolated list holding a
    page, isolate_freepages() returns without the linear scan, so the batch
    migrates one page per search."""
    m, z, src, top = _full()
    _source(m, src, keep=2)
    target = top - 2
    odd = _free_odd(m, target)
    res, _ = _compact(m, z, src, top, ASYNC_DIRECT)
    assert res == C.COMPACT_SUCCESS
    assert _count(m, "pgmigrate_success") == 2
    # the list's tail first (the first page freed), then the next one
    assert _allocated(m, odd[:2]) and not _allocated(m, odd[2:3])
    assert not m.mem.pb_flags[target] & PB_compact_skip
    assert not m.mem.pb_flags[top] & PB_compact_skip
    m.check()


def _distance_blocks(m, z, src, top):
    """The pageblocks of low_pfn (top quarter) and min_pfn (top half) for a
    free scanner at ``top`` and a migrate scanner that took ``src``'s few
    pages (fewer than COMPACT_CLUSTER_MAX: it scanned to the block's end)."""
    free_pfn, migrate_pfn = top * NB, (src + 1) * NB
    distance = free_pfn - migrate_pfn
    return (free_pfn - (distance >> 2)) // NB, (free_pfn - (distance >> 1)) // NB


def test_a_top_half_page_is_taken_when_the_top_quarter_has_none():
    """No free page in the top quarter but one in the top half: the search
    takes that candidate (the highest seen above min_pfn), and kcompactd
    scans its block at stride 1 (fast_isolate_around), marking it skipped
    when it found nothing more; that one page is all it migrates."""
    m, z, src, top = _full()
    _source(m, src)
    low_b, min_b = _distance_blocks(m, z, src, top)
    cand_b = (low_b + min_b) // 2
    cand = cand_b * NB + 7
    _free(m, [cand])
    _compact(m, z, src, top, KCOMPACTD)
    assert _allocated(m, [cand])
    assert _count(m, "pgmigrate_success") == 1
    assert m.mem.pb_flags[cand_b] & PB_compact_skip
    m.check()


def test_a_free_page_above_the_cached_free_pfn_moves_it_below_its_block():
    """The search's highest block at or above the zone's cached free pfn
    puts the cached pfn one block below it (v6.12 and v6.1 alike)."""
    m, z, src, top = _full()
    _source(m, src, keep=1)
    _free(m, [top * NB + 100])
    res, _ = _compact(m, z, src, top, KCOMPACTD)
    assert res == C.COMPACT_SUCCESS
    assert _allocated(m, [top * NB + 100])
    assert m.mem.zstat[z, FREE_PFN] == (top - 1) * NB
    m.check()


def test_direct_compaction_from_the_scan_start_jumps_to_the_half_way_block():
    """A search from the scan start that finds no free page above the
    half-way block: async direct compaction starts its linear scan at that
    block (cc->free_pfn = min_pfn), so the blocks above it are never scanned
    (no skip bit); kcompactd, not direct, scans down from the top."""
    for flags, top_scanned in ((ASYNC_DIRECT, False), (KCOMPACTD, True)):
        m, z, src, top = _full()
        _source(m, src)
        _, min_b = _distance_blocks(m, z, src, top)
        below = min_b - 1
        pages = np.arange(below * NB, (below + 1) * NB, 32)   # what the async stride samples
        _free(m, pages)
        res, _ = _compact(m, z, src, top, flags)
        assert res == C.COMPACT_SUCCESS
        assert _allocated(m, pages[:8])
        assert bool(m.mem.pb_flags[top] & PB_compact_skip) == top_scanned
        assert bool(m.mem.pb_flags[min_b + 1] & PB_compact_skip) == top_scanned
        m.check()


def test_no_search_once_the_free_scanner_is_below_the_migrate_scanner():
    """Within a batch the free scanner can end below the migrate scanner's
    position; the kernel's distance (unsigned) then wraps, both bounds lie
    above every pfn, and the search takes nothing and leaves cc->free_pfn,
    though free MOVABLE pages lie above it."""
    m, z, src, _ = _full()
    _source(m, src)
    odd = _free_odd(m, src + 2)
    mem = m.mem
    free_pfn = src * NB
    got, _, fail, _ = C.isolate_freepages(mem, z, free_pfn, (src + 1) * NB, (src + 1) * NB,
                                          9, 8, C.CC_SYNC | C.CC_DIRECT, 0, 9)
    assert mem.cc_n[0] == 0 and got <= free_pfn and fail == 1
    assert not _allocated(m, odd[:1])
    m.check()


def _block_sets(m, z):
    zs, ze = int(m.mem.zone_start[z]), int(m.mem.zone_end[z])
    return range(-(-zs // NB), ze // NB)


@pytest.mark.parametrize("version", ["6.12", "6.1"])
def test_reset_needs_the_flush_flag_and_a_sample(version):
    """compaction_restarting() calls __reset_isolation_suitable(), which
    clears nothing unless compact_blockskip_flush is set.  With it, the
    migrate side (the lower half) clears a block whose sampled pages include
    an LRU page and keeps the skip bit of a block of non-LRU pages; the free
    side (the upper half, down from the zone's last page) first clears the
    highest MOVABLE block with a free buddy at a sampled page, restarts the
    free scanner there (compact_init_free_pfn too), and keeps the skip bits
    of the blocks above it."""
    m, z, src, top = _full(version)
    mem = m.mem
    zs, ze = int(mem.zone_start[z]), int(mem.zone_end[z])
    blocks = list(_block_sets(m, z))
    kern = blocks[len(blocks) // 4]
    lru = mem.pg_flags[kern * NB:(kern + 1) * NB] & PG_lru
    mem.pg_flags[kern * NB:(kern + 1) * NB] &= 0xFF ^ PG_lru
    hole = top - 3                     # the blocks above top are reserved
    assert hole > blocks[len(blocks) // 2]
    _free(m, np.arange(hole * NB + 64, hole * NB + 72))       # an order-3 buddy at +64
    for b in blocks:
        mem.pb_flags[b] |= PB_compact_skip
    mem.zstat[z, FLUSH] = 0
    C.reset_isolation_suitable_zone(mem, z)
    assert all(mem.pb_flags[b] & PB_compact_skip for b in blocks)
    mem.zstat[z, FLUSH] = 1
    C.reset_isolation_suitable_zone(mem, z)
    assert mem.zstat[z, FLUSH] == 0
    assert mem.pb_flags[kern] & PB_compact_skip
    assert not mem.pb_flags[kern - 1] & PB_compact_skip
    assert not mem.pb_flags[src] & PB_compact_skip
    assert not mem.pb_flags[hole] & PB_compact_skip
    assert not mem.pb_flags[hole - 1] & PB_compact_skip
    assert all(mem.pb_flags[b] & PB_compact_skip for b in range(hole + 1, ze // NB))
    assert mem.zstat[z, INIT_FREE_PFN] == (hole + 1) * NB - 1
    assert mem.zstat[z, FREE_PFN] == (hole + 1) * NB - 1
    assert zs <= mem.zstat[z, MIGRATE_PFN] <= src * NB
    assert mem.zstat[z, MIGRATE_PFN_ASYNC] == mem.zstat[z, MIGRATE_PFN]
    assert mem.zstat[z, ZSTAT["compact_init_migrate_pfn"]] == mem.zstat[z, MIGRATE_PFN]
    mem.pg_flags[kern * NB:(kern + 1) * NB] |= lru
    m.check()


def test_checker_covers_the_compaction_state():
    """The DEBUG_VM-style checker: isolated free pages left on the
    compaction's list outside a compaction, or a compact_init_free_pfn
    outside its zone, is a violation."""
    m, z, _, _ = _full()
    mem = m.mem
    mem.zstat[z, INIT_FREE_PFN] = int(mem.zone_end[z]) - 1
    m.check()
    mem.zstat[z, INIT_FREE_PFN] = int(mem.zone_end[z])
    with pytest.raises(InvariantError, match="compact_init_free_pfn"):
        m.check()
    mem.zstat[z, INIT_FREE_PFN] = 0
    m.check()
    mem.cc_n[0] = 1
    with pytest.raises(InvariantError, match="isolated free pages"):
        m.check()
    mem.cc_n[0] = 0
