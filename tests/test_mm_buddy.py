"""Buddy split and merge (mm/page_alloc.c expand, __free_one_page), with the
expectations derived from the kernel's rules."""
import numpy as np

from spbsim import Machine
from spbsim.mm import gfp as G
from spbsim.mm.const import (MIGRATE_HIGHATOMIC, MIGRATE_MOVABLE, MIGRATE_UNMOVABLE,
                             PB_all_free, PB_has_movable, PB_has_unmovable, ZONE_DMA32,
                             pageblock_nr_pages)
from spbsim.mm.craft import exhaust, free_pages_range, zero_watermarks

Z = ZONE_DMA32


def fresh(**kw):
    kw.setdefault("pcp", False)
    kw.setdefault("early_unmovable", 0)
    kw.setdefault("watermark_boost_factor", 0)
    return Machine("1G", cpus=1, **kw)


def test_boot_state_is_max_order_movable_blocks():
    """Boot: free memory in MAX_PAGE_ORDER chunks, every pageblock MOVABLE (§1.1)."""
    m = fresh()
    mem = m.mem
    present = mem.pb_zone >= 0
    assert (mem.pb_mt[present] == MIGRATE_MOVABLE).all()
    # every free block of DMA32 is order 10 except around reserved ranges
    nr = mem.nr_free[Z]
    assert nr[10] > 0
    # boot frees go to the list tail in ascending pfn order: the list is sorted
    walk = []
    p = mem.fa_head[Z, 10, MIGRATE_MOVABLE]
    while p >= 0:
        walk.append(int(p))
        p = mem.pg_next[p]
    assert walk == sorted(walk)
    m.check()


def test_expand_puts_upper_halves_at_list_heads():
    """__rmqueue_smallest + expand(): an order-0 request splits the first order-10
    block; the upper halves pfn+1, +2, +4 ... +512 go to the heads of the
    order 0..9 lists of the same migratetype."""
    m = fresh()
    mem = m.mem
    head = int(mem.fa_head[Z, 10, MIGRATE_MOVABLE])
    pfn = m.alloc(0, G.GFP_HIGHUSER_MOVABLE)
    assert pfn == head
    for o in range(10):
        assert mem.fa_head[Z, o, MIGRATE_MOVABLE] == head + (1 << o)
        assert mem.pg_order[head + (1 << o)] == o
    m.check()


def test_free_merges_back_to_max_order():
    m = fresh()
    nr_before = m.mem.nr_free.copy()
    pfns = [m.alloc(0, G.GFP_HIGHUSER_MOVABLE) for _ in range(1000)]
    for p in pfns:
        m.free(p, 0)
    np.testing.assert_array_equal(m.mem.nr_free, nr_before)
    m.check()


def test_merge_stops_at_zone_edge():
    """A zone that ends on a pageblock but not a MAX_PAGE_ORDER boundary: its
    last pageblock's order-9 buddy lies outside the zone and is never merged
    with (page_is_buddy() requires the same zone)."""
    m = Machine("2G", low_memory="1022M", cpus=1, pcp=False, early_unmovable=0)
    end = int(m.geometry.zone_end[Z])
    assert end % 1024 == 512
    last = end - pageblock_nr_pages
    assert m.mem.pg_flags[last] & 1 and m.mem.pg_order[last] == 9
    assert m.mem.pg_flags[last - 2 * pageblock_nr_pages] & 1
    assert m.mem.pg_order[last - 2 * pageblock_nr_pages] == 10
    m.check()


def test_merge_across_pageblocks_retypes_buddy():
    """__free_one_page at order >= pageblock_order: two mergeable types merge and
    the buddy's pageblock takes the freeing page's type."""
    m = fresh()
    zero_watermarks(m)
    exhaust(m)
    base = int(m.mem.zone_start[Z]) + 64 * 1024          # an order-10 aligned pfn
    a, b = base, base + pageblock_nr_pages
    # free pageblock b entirely while it is MOVABLE -> order-9 free buddy
    free_pages_range(m, b, pageblock_nr_pages)
    assert m.mem.pg_order[b] == 9 and m.mem.pb_flags[b >> 9] & PB_all_free
    # retype pageblock a to UNMOVABLE (as a claim would) and free it
    m.mem.pb_mt[a >> 9] = MIGRATE_UNMOVABLE
    free_pages_range(m, a, pageblock_nr_pages)
    assert m.mem.pg_order[a] == 10, "mergeable types merge at pageblock order"
    assert m.mem.pb_mt[b >> 9] == MIGRATE_UNMOVABLE, "buddy retyped to the freeing type"
    m.check()


def test_highatomic_blocks_do_not_merge_with_others():
    m = fresh()
    zero_watermarks(m)
    exhaust(m)
    base = int(m.mem.zone_start[Z]) + 64 * 1024
    a, b = base, base + pageblock_nr_pages
    free_pages_range(m, b, pageblock_nr_pages)
    m.mem.pb_mt[a >> 9] = MIGRATE_HIGHATOMIC
    free_pages_range(m, a, pageblock_nr_pages)
    assert m.mem.pg_order[a] == 9 and m.mem.pg_order[b] == 9
    assert m.mem.fa_head[Z, 9, MIGRATE_HIGHATOMIC] == a


def test_free_of_order10_splits_by_pageblock_type():
    """split_large_buddy(): an order-10 free is freed per pageblock with each
    block's own type."""
    m = fresh()
    zero_watermarks(m)
    pfn = m.alloc(10, G.GFP_HIGHUSER_MOVABLE)
    m.mem.pb_mt[(pfn >> 9) + 1] = MIGRATE_HIGHATOMIC
    m.free(pfn, 10)
    assert m.mem.pg_order[pfn] == 9 and m.mem.pb_mt[pfn >> 9] == MIGRATE_MOVABLE
    assert m.mem.fa_nr[Z, 9, MIGRATE_HIGHATOMIC] == 1


def test_tail_placement_when_merge_likely():
    """buddy_merge_likely(): a freed block whose next-higher buddy is free goes to
    the list tail, otherwise to the head."""
    m = fresh()
    zero_watermarks(m)
    exhaust(m)
    base = int(m.mem.zone_start[Z]) + 64 * 1024
    free_pages_range(m, base + 9, 1)     # buddy base+8 allocated
    free_pages_range(m, base + 1, 1)     # buddy base+0 allocated, higher buddy base+2 not free
    assert m.mem.fa_head[Z, 0, MIGRATE_MOVABLE] == base + 1
    free_pages_range(m, base + 2, 2)     # base+2, base+3 merge: order 1 at base+2
    assert m.mem.pg_order[base + 2] == 1
    free_pages_range(m, base + 5, 1)     # head of order 0
    # base+4 merges with base+5 into order 1 at base+4; that block's order-2 parent
    # (base+4) has buddy base+0..3, not free as an order-2 block -> head
    free_pages_range(m, base + 4, 1)
    assert m.mem.fa_head[Z, 1, MIGRATE_MOVABLE] == base + 4
    # base+0 merges with base+1 -> order 1 at base, with base+2 -> order 2 at base;
    # its order-3 parent's buddy (base+4, order 2) is not free (only order 1) -> head
    free_pages_range(m, base + 0, 1)
    assert m.mem.pg_order[base] == 2 and m.mem.fa_head[Z, 2, MIGRATE_MOVABLE] == base
    # base+8 merges with base+9 into order 1 at base+8; buddy base+10 allocated;
    # the order-2 parent base+8's buddy is base+12 (allocated) -> head
    free_pages_range(m, base + 8, 1)
    assert m.mem.fa_head[Z, 1, MIGRATE_MOVABLE] == base + 8
    # base+6: buddy base+7 allocated; its order-1 parent base+6 has buddy base+4,
    # a free order-1 block -> merge likely -> tail
    free_pages_range(m, base + 6, 1)
    assert m.mem.fa_tail[Z, 0, MIGRATE_MOVABLE] == base + 6
    m.check()


def test_pageblock_bits_follow_content():
    """PB_has_* set on allocation, cleared together with PB_all_free set when the
    block becomes entirely free again (SPB series S1 §6)."""
    m = fresh()
    zero_watermarks(m)
    pfn = m.alloc(0, G.GFP_KERNEL)
    pb = pfn >> 9
    assert m.mem.pb_flags[pb] & PB_has_unmovable
    assert not m.mem.pb_flags[pb] & PB_all_free
    m.free(pfn, 0)
    assert m.mem.pb_flags[pb] & PB_all_free
    assert not m.mem.pb_flags[pb] & (PB_has_unmovable | PB_has_movable)
    m.check()
