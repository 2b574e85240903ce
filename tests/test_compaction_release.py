"""Compaction's leftover isolated free pages go back through __free_pages()
(v6.12 release_free_list(); v6.1 release_freepages() of the order-0 pages
split_map_pages() made): pcp orders land on the compacting cpu's per-cpu
lists, larger buddies on the free lists.  And v6.1's
isolate_migratepages_block() skips every compound page."""
import pytest
from test_mm_fallback import block, full_machine

from spbsim.mm import compaction as C
from spbsim.mm import gfp as G
from spbsim.mm.const import MIGRATE_MOVABLE, ZONE_DMA32, PG_buddy, PG_pcp
from spbsim.mm.craft import free_pages_range
from spbsim.mm.pcp import drain_all_pages, pcp_order_to_pindex
from spbsim.mm.state import PCP_COUNT

Z = ZONE_DMA32


def _released(version, order):
    """A free buddy of ``order`` isolated by compaction and given back on
    cpu 0.  Returns the machine and the buddy's pfn."""
    m = full_machine(version=version, pcp=True)
    b = block(m)
    free_pages_range(m, b, 1 << order)
    free_pages_range(m, block(m, 41), 64)       # __isolate_free_page()'s MIN + 2^order
    drain_all_pages(m.mem)
    assert m.mem.pg_flags[b] & PG_buddy and m.mem.pg_order[b] == order
    before = int(m.mem.pcp[Z, 0, PCP_COUNT])
    assert C.isolate_free_page(m.mem, Z, b, order)
    C.cc_release(m.mem, Z, 0)
    return m, b, int(m.mem.pcp[Z, 0, PCP_COUNT]) - before


def test_a_leftover_pcp_order_buddy_goes_to_the_pcp_whole_on_6_12():
    m, b, added = _released("6.12", 2)
    assert added == 4
    assert m.mem.pg_flags[b] & PG_pcp and m.mem.pg_order[b] == 2
    assert not m.mem.pg_flags[b] & PG_buddy
    m.check()


def test_a_leftover_buddy_goes_to_the_pcp_as_order_0_pages_on_6_1():
    """release_freepages() frees the list from its head, the buddy's last
    page first, each to the head of the pcp list: its first page ends on top."""
    m, b, added = _released("6.1", 2)
    assert added == 4
    for p in range(b, b + 4):
        assert m.mem.pg_flags[p] & PG_pcp and m.mem.pg_order[p] == 0
    pi = pcp_order_to_pindex(m.mem, MIGRATE_MOVABLE, 0)
    assert m.mem.pcp_head[Z, 0, pi] == b
    m.check()


def test_a_leftover_buddy_above_the_pcp_orders_goes_to_the_free_lists():
    m, b, added = _released("6.12", 5)
    assert added == 0
    assert m.mem.pg_flags[b] & PG_buddy and m.mem.pg_order[b] == 5
    m.check()


@pytest.mark.parametrize("version,expected", [("6.1", False), ("6.12", True)])
def test_v6_1_compaction_skips_compound_pages(version, expected):
    """v6.1 isolate_migratepages_block(): "compound pages such as THP and
    hugetlbfs are not to be compacted" outside alloc_contig; v6.12 takes a
    large folio below the target order (skip_isolation_on_order())."""
    m = full_machine(version=version, migrate_untracked=True)
    b = block(m)
    free_pages_range(m, b, 4)
    p = m.alloc(2, G.GFP_HIGHUSER_MOVABLE | G.__GFP_COMP)
    assert p == b
    assert C.migratable(m.mem, p, -1) == expected
    assert C.migratable(m.mem, p, 9) == expected
