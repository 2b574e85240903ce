"""The compaction free scanner (isolate_freepages, isolate_freepages_block of
mm/compaction.c, v6.12 and v6.1 alike): it isolates only as many free pages
as the migrate batch needs and remembers where it stopped inside the block;
it samples a block with a stride that starts at 1 for sync compaction and at
COMPACT_CLUSTER_MAX for async, doubles after a block that gave nothing and
is 1 again after one that gave pages; a buddy the watermark keeps stops it,
and compact_zone() then gives up with COMPACT_CONTENDED.  The free-list
search that runs before it is kept out of the way here."""
import numpy as np
import pytest

from spbsim import Machine
from spbsim.mm import compaction as C
from spbsim.mm.const import MIGRATE_MOVABLE, PB_compact_skip, pageblock_nr_pages
from spbsim.mm.craft import exhaust, zero_watermarks
from spbsim.mm.state import ZS_WMARK_MIN, ZSTAT

FREE_PFN = ZSTAT["compact_cached_free_pfn"]
INIT_FREE_PFN = ZSTAT["compact_init_free_pfn"]
MIGRATE_PFN = ZSTAT["compact_cached_migrate_pfn_sync"]
MIGRATE_PFN_ASYNC = ZSTAT["compact_cached_migrate_pfn_async"]
KCOMPACTD = C.CC_SYNC | C.CC_KCOMPACTD
ASYNC_DIRECT = C.CC_DIRECT
NB = pageblock_nr_pages


def _full(version="recent"):
    """1 GB, every page allocated as a movable order-0 page.  Returns the
    machine, the zone, the zone's first pageblock (the migrate source) and
    the highest pageblock the allocation filled (the free scanner's start)."""
    m = Machine("1G", cpus=1, pcp=False, early_unmovable=0, seed=1, migrate_untracked=True,
                version=version)
    zero_watermarks(m)
    taken = np.zeros(m.mem.pg_flags.size, bool)
    taken[exhaust(m)] = True
    z = int(np.argmax(m.mem.zstat[:, ZSTAT["managed"]]))
    zs, ze = int(m.mem.zone_start[z]), int(m.mem.zone_end[z])
    whole = [b for b in range(-(-zs // NB), ze // NB)
             if taken[b * NB:(b + 1) * NB].all() and m.mem.pb_mt[b] == MIGRATE_MOVABLE]
    return m, z, whole[0], whole[-1]


@pytest.fixture
def full():
    return _full()


def _free(m, pfns):
    pfns = np.asarray(pfns, np.int64)
    assert (m.run_ops(np.zeros(pfns.size, np.int64), 0, pfns=pfns) == 0).all()


def _source(m, b, keep=8):
    """Block ``b`` keeps ``keep`` allocated pages (its first ones): one
    migrate batch, after which the block is free (an order-9 page)."""
    _free(m, np.arange(b * NB + keep, (b + 1) * NB))


def _search_sees_low_pages_only(m, z, src):
    """Keep fast_isolate_freepages() (the free-list search before the linear
    scan; tests/test_compaction_fast_search.py) away from the linear
    scanner's pages: the scan does not start at compact_init_free_pfn, so
    the search looks at 16 entries of each list ((COMPACT_CLUSTER_MAX + 1)
    >> 1), and the order-0 list's last 16 are free pages of a low block,
    freed before the test's own.  The search then costs SEARCH pages
    scanned: one entry on each list of orders 8..3 (the source block's free
    buddies) and the 16 low pages."""
    m.mem.zstat[z, INIT_FREE_PFN] = m.mem.zone_end[z] - 1     # as a reset leaves it
    _free(m, np.arange((src + 4) * NB + 1, (src + 4) * NB + 33, 2))


SEARCH = 6 + 16


def _count(m, name):
    return m.vmstat_counters()[name]


def _compact(m, z, src, top, flags):
    mem = m.mem
    mem.zstat[z, MIGRATE_PFN] = src * NB
    mem.zstat[z, MIGRATE_PFN_ASYNC] = src * NB
    mem.zstat[z, FREE_PFN] = top * NB
    f0 = _count(m, "compact_free_scanned")
    i0 = _count(m, "compact_isolated")
    res = C.compact_zone(mem, z, 9, MIGRATE_MOVABLE, flags, 0, -1)
    return res, _count(m, "compact_free_scanned") - f0, _count(m, "compact_isolated") - i0


def test_free_scanner_stops_at_the_migrate_batch(full):
    """Eight pages to migrate: the free scanner isolates eight free pages of
    the target block and stops there, without marking the block."""
    m, z, src, top = full
    _source(m, src)
    _search_sees_low_pages_only(m, z, src)
    _free(m, np.arange(top * NB + 1, (top + 1) * NB, 2))     # every other page free
    res, fscanned, isolated = _compact(m, z, src, top, KCOMPACTD)
    assert res == C.COMPACT_SUCCESS
    assert _count(m, "pgmigrate_success") == 8
    assert fscanned == SEARCH + 16         # offsets 0..15: the 8th free page is at 15
    assert isolated == 8 + 8               # COMPACTISOLATED counts both scanners' pages
    assert not m.mem.pb_flags[top] & PB_compact_skip
    # nothing was given back: the cached free pfn stays in the block
    assert m.mem.zstat[z, FREE_PFN] == top * NB
    m.check()


def _linear(m, z, src, top, flags, need=8):
    """One isolate_freepages() from ``top`` down to the migrate scanner's
    block ``src``, for ``need`` pages, with a full compaction's order (-1:
    no free-list search before the linear scan; the targets are the same,
    as no free block at a block start is of order 9).  Returns (pages
    scanned, pages isolated); the isolated pages are then given back."""
    mem = m.mem
    mem.zstat[z, FREE_PFN] = top * NB
    i0 = _count(m, "compact_isolated")
    _, scanned, _, _ = C.isolate_freepages(mem, z, top * NB, (src + 1) * NB, (src + 1) * NB,
                                           -1, need, flags, 0, 0)
    isolated = _count(m, "compact_isolated") - i0
    C.cc_release(mem, z, 0)
    return scanned, isolated


def test_sync_free_scanner_stride_doubles_over_blocks_without_free_pages(full):
    """kcompactd (sync): 512 pages scanned in the first full block, then 256,
    128, 64, 32 and 16 (stride COMPACT_CLUSTER_MAX) per block; the block
    with free pages is sampled one page in 32."""
    m, z, src, top = full
    _source(m, src)
    target = top - 8
    _free(m, np.arange(target * NB + 1, (target + 1) * NB))   # free but page 0
    fscanned, isolated = _linear(m, z, src, top, KCOMPACTD)
    # 512 + 256 + 128 + 64 + 32 + 3 * 16, then page 0 and the order-5 buddy at 32
    assert fscanned == 512 + 256 + 128 + 64 + 32 + 3 * 16 + 1 + 32
    assert isolated == 32
    assert all(m.mem.pb_flags[b] & PB_compact_skip for b in range(target + 1, top + 1))
    # the 32 pages went back: the cached free pfn is their block
    assert m.mem.zstat[z, FREE_PFN] == target * NB
    m.check()


def test_async_free_scanner_samples_one_page_in_cluster_max(full):
    """Async direct compaction starts at stride COMPACT_CLUSTER_MAX: the free
    pages at odd offsets of the first block are never looked at."""
    m, z, src, top = full
    _source(m, src)
    _free(m, np.arange(top * NB + 1, (top + 1) * NB, 2))
    _free(m, np.arange((top - 1) * NB + 1, top * NB))
    fscanned, isolated = _linear(m, z, src, top, ASYNC_DIRECT)
    assert fscanned == 16 + 1 + 32
    assert isolated == 32
    assert m.mem.pb_flags[top] & PB_compact_skip
    m.check()


def test_free_page_kept_by_the_watermark_ends_compaction_contended(full):
    """__isolate_free_page() refuses a page below MIN + 1 << order: the free
    scanner stops early, migrate_pages() gets -ENOMEM before the scanners
    meet, and compact_zone() returns COMPACT_CONTENDED, keeping both cached
    positions for the next attempt."""
    m, z, src, top = full
    _source(m, src)
    _search_sees_low_pages_only(m, z, src)
    _free(m, np.arange(top * NB + 1, (top + 1) * NB, 2))
    m.mem.zstat[z, ZS_WMARK_MIN] = 1 << 20
    res, fscanned, isolated = _compact(m, z, src, top, KCOMPACTD)
    assert res == C.COMPACT_CONTENDED
    # (the kernel's COMPACTISOLATED also counts the batch's 8 pages,
    # isolated before migration; the model counts migrated pages)
    assert fscanned == SEARCH + 2 and isolated == 0
    assert _count(m, "pgmigrate_success") == 0
    assert m.mem.zstat[z, FREE_PFN] == top * NB
    assert m.mem.zstat[z, MIGRATE_PFN] == src * NB
    m.check()


@pytest.mark.parametrize("version,below", [("6.12", 1), ("6.1", 0)])
def test_a_fully_scanned_block_moves_the_cached_free_pfn(version, below):
    """update_pageblock_skip() for the free scanner: v6.12 moves the zone's
    cached free pfn to the block below the one scanned to its end, v6.1 to
    that block itself (its skip bit turns the next scan away)."""
    m, z, src, top = _full(version)
    mem = m.mem
    mem.zstat[z, FREE_PFN] = (top + 1) * NB
    # no free page anywhere: the free-list search finds nothing
    free_pfn, scanned, _, _ = C.isolate_freepages(mem, z, top * NB, top * NB, 0, 9, 8,
                                                  KCOMPACTD, 0, 9)
    assert scanned == NB and mem.cc_n[0] == 0
    assert mem.pb_flags[top] & PB_compact_skip
    assert mem.zstat[z, FREE_PFN] == (top - below) * NB
    assert free_pfn == (top - 1) * NB           # below low_pfn: the scanners met
    m.check()


def _alloc_order0(version, entries, n):
    """compaction_alloc() for ``n`` order-0 migrations from the isolated
    list ``entries`` [(pfn, order)], in list order."""
    m = Machine("1G", cpus=1, pcp=False, early_unmovable=0, seed=1, version=version)
    mem = m.mem
    z = int(np.argmax(mem.zstat[:, ZSTAT["managed"]]))
    for i, (pfn, order) in enumerate(entries):
        mem.cc_pfn[i] = pfn
        mem.cc_order[i] = order
    mem.cc_n[0] = len(entries)
    got = [int(C.compaction_alloc(mem, z, 0)) for _ in range(n)]
    mem.cc_n[0] = 0
    return got


def test_compaction_alloc_keeps_isolation_order_within_an_order():
    """v6.12: freepages[order] are FIFO lists (list_add_tail when isolated,
    list_first_entry when taken)."""
    assert _alloc_order0("6.12", [(100, 0), (200, 0), (300, 0)], 3) == [100, 200, 300]


def test_compaction_alloc_smallest_order_first_in_6_12_isolation_order_in_6_1():
    """v6.12 takes the smallest order first and puts a split's upper halves
    at the heads of their lists.  v6.1's split_map_pages() list_add()s every
    order-0 page of every isolated buddy to the list's head, so the last
    isolated buddy's highest page comes first."""
    base = 1 << 12
    entries = [(base, 2), (3, 0)]
    assert _alloc_order0("6.12", entries, 5) == [3, base, base + 1, base + 2, base + 3]
    assert _alloc_order0("6.1", entries, 5) == [3, base + 3, base + 2, base + 1, base]
    assert _alloc_order0("6.1", [(base, 1), (base + 8, 1)], 4) == [base + 9, base + 8,
                                                                    base + 1, base]
