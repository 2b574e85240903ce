"""v6.1 keeps free pages on the lists of another type than their pageblock
(until "mm: page_alloc: fix freelist movement during block conversion" and
its series, v6.10): a steal that does not claim moves the block's free pages
to the request's lists, a drained pcp page goes back to the type it entered
the pcp with, a merge does not retype the buddy's block, and compaction's
isolation retypes a block alone.  Each case against the 6.12 variant, which
keeps free lists == block types."""
import numpy as np
import pytest
from test_mm_fallback import block, full_machine, machine

from spbsim.machine import InvariantError
from spbsim.mm import gfp as G
from spbsim.mm.buddy import move_freepages_block
from spbsim.mm.compaction import cc_release, isolate_free_page
from spbsim.mm.const import (
    MIGRATE_MOVABLE,
    MIGRATE_UNMOVABLE,
    ZONE_DMA32,
    PG_buddy,
    pageblock_nr_pages,
)
from spbsim.mm.craft import free_pages_range
from spbsim.mm.state import EV

Z = ZONE_DMA32
KERNEL = G.GFP_KERNEL
MOVABLE = G.GFP_HIGHUSER_MOVABLE


def extfrag_events(m):
    ev = m.trace_records()
    return int((ev[:, 0] == EV["mm_page_alloc_extfrag"]).sum())


def free_buddies(m, start, end):
    """(pfn, order, list type) of every free buddy head in [start, end)."""
    out = []
    p = start
    while p < end:
        if m.mem.pg_flags[p] & PG_buddy:
            o = int(m.mem.pg_order[p])
            out.append((p, o, int(m.mem.pg_list_mt[p])))
            p += 1 << o
        else:
            p += 1
    return out


def buddy_holding(m, pfn):
    """(head, order) of the free buddy that holds ``pfn``."""
    for o in range(11):
        h = pfn & ~((1 << o) - 1)
        if (m.mem.pg_flags[h] & PG_buddy) and m.mem.pg_order[h] == o:
            return h, o
    raise AssertionError(f"pfn {pfn:#x} is in no free buddy")


@pytest.mark.parametrize("version", ["6.1", "6.12"])
def test_a_steal_that_does_not_claim(version):
    """255 free pages in a MOVABLE block (orders 0..7 at b+1, b+2, .., b+128)
    and an UNMOVABLE request.  v6.1 (steal_suitable_fallback(), may steal the
    whole block): every free page moves to the UNMOVABLE lists, the block is
    not claimed (255 < 256) and keeps MOVABLE, and the retried
    __rmqueue_smallest() takes the smallest (b+1); the next UNMOVABLE request
    finds b+2's buddy on its own list, with no fallback.  6.12 steals the
    smallest buddy (b+1) alone; the rest stays MOVABLE and the next request
    falls back again."""
    m = full_machine(version=version)
    b = block(m)
    free_pages_range(m, b + 1, 255)
    assert m.alloc(0, KERNEL) == b + 1
    assert m.mem.pb_mt[b >> 9] == MIGRATE_MOVABLE
    types = {t for _, _, t in free_buddies(m, b, b + pageblock_nr_pages)}
    fallbacks = extfrag_events(m)
    assert m.alloc(0, KERNEL) == b + 2
    if version == "6.1":
        assert types == {MIGRATE_UNMOVABLE}
        assert extfrag_events(m) == fallbacks, "v6.1 took it from its own list"
        assert m.mem.pg_list_mt[b + 3] == MIGRATE_UNMOVABLE     # expand()'s other half
    else:
        assert types == {MIGRATE_MOVABLE}
        assert extfrag_events(m) == fallbacks + 1
    m.check()


@pytest.mark.parametrize("version,back", [("6.1", MIGRATE_MOVABLE),
                                          ("6.12", MIGRATE_UNMOVABLE)])
def test_a_drained_pcp_page_goes_to_the_type_it_entered_with(version, back):
    """A movable page sits on the pcp when its (otherwise free) block turns
    UNMOVABLE.  v6.1's free_pcppages_bulk() returns it to the list of the type
    recorded when it entered the pcp (get_pcppage_migratetype()), so the
    merged block is free on a MOVABLE list inside an UNMOVABLE block; 6.12
    reads the block's type at the drain."""
    m = machine(version=version, pcp=True)
    pfn = m.alloc(0, MOVABLE)
    m.free(pfn, 0)
    assert m.mem.pg_flags[pfn] & 0x04, "the page is on the pcp"
    pb = pfn >> 9
    z = int(m.mem.pb_zone[pb])
    move_freepages_block(m.mem, z, pb << 9, MIGRATE_MOVABLE, MIGRATE_UNMOVABLE)
    m.drain_pcp()
    head, _ = buddy_holding(m, pfn)
    assert m.mem.pg_list_mt[head] == back
    assert m.mem.pb_mt[pb] == MIGRATE_UNMOVABLE
    m.check()


@pytest.mark.parametrize("version", ["6.1", "6.12"])
def test_a_merge_above_pageblock_order_retypes_the_buddy_only_on_6_12(version):
    """Two free pageblock-order buddies of two types merge into one order-10
    buddy on the freed page's type's list; since v6.10 __free_one_page() also
    retypes the buddy's block ("Match buddy type"), v6.1 leaves it."""
    m = full_machine(version=version)
    b = block(m)
    free_pages_range(m, b + 512, 512)                     # upper block: one free order-9 buddy
    move_freepages_block(m.mem, Z, b + 512, MIGRATE_MOVABLE, MIGRATE_UNMOVABLE)
    free_pages_range(m, b, 512)                           # lower block (MOVABLE) merges up
    head, order = buddy_holding(m, b)
    assert (head, order) == (b, 10)
    assert m.mem.pg_list_mt[b] == MIGRATE_MOVABLE
    upper = m.mem.pb_mt[(b + 512) >> 9]
    assert upper == (MIGRATE_UNMOVABLE if version == "6.1" else MIGRATE_MOVABLE)
    m.check()


@pytest.mark.parametrize("version,rest", [("6.1", MIGRATE_UNMOVABLE), ("6.12", MIGRATE_MOVABLE)])
def test_isolating_half_a_block_for_compaction_retypes_the_block(version, rest):
    """__isolate_free_page() of an order-8 buddy turns its UNMOVABLE block
    MOVABLE; 6.12 moves the block's other free pages with it
    (move_freepages_block()), v6.1 leaves them on the UNMOVABLE lists."""
    m = full_machine(version=version)
    b = block(m)
    free_pages_range(m, b, 512)
    move_freepages_block(m.mem, Z, b, MIGRATE_MOVABLE, MIGRATE_UNMOVABLE)
    assert m.alloc(0, KERNEL) == b              # b+1 .. b+128 and b+256 (order 8) stay free
    assert isolate_free_page(m.mem, Z, b + 256, 8)
    assert m.mem.pb_mt[b >> 9] == MIGRATE_MOVABLE
    assert {t for _, _, t in free_buddies(m, b, b + 256)} == {rest}
    cc_release(m.mem, Z, 0)
    m.check()


def test_the_checker_sees_a_wrong_recorded_list_type():
    """DEBUG_VM: a free list entry's pg_list_mt must be its list's type."""
    m = machine(version="6.1")
    mt = MIGRATE_MOVABLE
    head = int(m.mem.fa_head[Z, 10, mt])
    m.mem.pg_list_mt[head] = MIGRATE_UNMOVABLE
    with pytest.raises(InvariantError, match="pg_list_mt"):
        m.check()
    m.mem.pg_list_mt[head] = mt
    m.check()
    assert np.all(m.mem.pg_list_mt[m.mem.fa_head[Z, :, mt][m.mem.fa_head[Z, :, mt] >= 0]] == mt)


@pytest.mark.parametrize("version", ["6.1", "6.12"])
def test_a_whole_buddy_fallback_counts_as_a_claim_and_a_whole_one(version):
    """Machine.fallback_pairs(): ``claim`` counts every claim, ``claim_whole``
    those of a >= pageblock_order buddy, on both fallback rules."""
    m = machine(version=version)
    m.alloc(0, KERNEL)                  # an UNMOVABLE request takes a MOVABLE order-10 buddy
    assert m.fallback_pairs()["Unmovable->Movable"] == {"claim": 1, "steal": 0, "claim_whole": 1}
