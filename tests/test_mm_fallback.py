"""Fallbacks to other migratetypes, each rule of linux-allocator.md §2.7-2.11
set up by hand: whole-block claim, the half-pageblock rule with its asymmetric
alike_pages, steal, should_try_claim_block, NOFRAGMENT, defrag_mode,
highatomic reserve/unreserve, watermark boost, and the v6.12 variant."""
import numpy as np
import pytest

from spbsim import Machine
from spbsim.mm import gfp as G
from spbsim.mm.buddy import move_freepages_block, prep_move_freepages_block
from spbsim.mm.const import (MIGRATE_HIGHATOMIC, MIGRATE_MOVABLE, MIGRATE_UNMOVABLE,
                             PB_has_unmovable, ZONE_DMA32, ZONE_NORMAL,
                             pageblock_nr_pages)
from spbsim.mm.craft import exhaust, free_pages_range, zero_watermarks
from spbsim.mm.state import CFG, EV, ZSTAT

Z = ZONE_DMA32
KERNEL = G.GFP_KERNEL
MOVABLE = G.GFP_HIGHUSER_MOVABLE


def machine(memory="1G", **kw):
    kw.setdefault("pcp", False)
    kw.setdefault("early_unmovable", 0)
    kw.setdefault("watermark_boost_factor", 0)
    kw.setdefault("trace", True)
    return Machine(memory, cpus=1, **kw)


def full_machine(memory="1G", **kw):
    """Every page allocated as order-0 movable (LRU) pages; watermarks zero."""
    m = machine(memory, **kw)
    zero_watermarks(m)
    exhaust(m)
    assert m.mem.zstat[:, ZSTAT["nr_free_pages"]].sum() == 0
    return m


def block(m, k=40):
    """The k-th order-10-aligned pageblock of DMA32 (clear of reservations)."""
    return int(m.mem.zone_start[Z]) + 16 * 1024 + k * 1024


def last_extfrag(m):
    ev = m.trace_records()
    ev = ev[ev[:, 0] == EV["mm_page_alloc_extfrag"]]
    assert len(ev), "no mm_page_alloc_extfrag event"
    kind, ts, cpu, pfn, order, fb_order, alloc_mt, fb_mt, own = ev[-1]
    return dict(pfn=pfn, alloc_order=order, fallback_order=fb_order, alloc_mt=alloc_mt,
                fallback_mt=fb_mt, change_ownership=own)


def test_whole_block_claim_at_pageblock_order():
    """Fallback buddy >= pageblock_order: the whole buddy changes type."""
    m = machine()
    head = int(m.mem.fa_head[Z, 10, MIGRATE_MOVABLE])
    pfn = m.alloc(0, KERNEL)
    assert pfn == head
    assert m.mem.pb_mt[head >> 9] == MIGRATE_UNMOVABLE
    assert m.mem.pb_mt[(head >> 9) + 1] == MIGRATE_UNMOVABLE
    assert m.mem.fa_head[Z, 9, MIGRATE_UNMOVABLE] == head + 512
    ef = last_extfrag(m)
    assert (ef["fallback_order"], ef["alloc_mt"], ef["fallback_mt"], ef["change_ownership"]) == \
        (10, MIGRATE_UNMOVABLE, MIGRATE_MOVABLE, 1)
    m.check()


def test_half_pageblock_rule_claims_at_exactly_half():
    """free_pages + alike_pages >= 256 claims the block.  Here 256 free pages and
    256 movable (LRU) pages: alike for an UNMOVABLE request in a MOVABLE block is
    512 - (free + movable) = 0, so free alone reaches exactly 256."""
    m = full_machine()
    b = block(m)
    free_pages_range(m, b, 256)
    pfn = m.alloc(0, KERNEL)
    assert pfn == b
    assert m.mem.pb_mt[b >> 9] == MIGRATE_UNMOVABLE
    assert m.sim_counters()["sim_steal"] == 0
    assert last_extfrag(m)["change_ownership"] == 1
    m.check()


def test_below_half_steals_the_smallest_buddy():
    """255 free pages fail the rule at every order; __rmqueue_steal then takes the
    smallest fallback buddy (order 0, pfn b+1) and the block stays MOVABLE."""
    m = full_machine()
    b = block(m)
    free_pages_range(m, b + 1, 255)
    pfn = m.alloc(0, KERNEL)
    assert pfn == b + 1
    assert m.mem.pb_mt[b >> 9] == MIGRATE_MOVABLE
    assert m.mem.pb_flags[b >> 9] & PB_has_unmovable, "block is now polluted"
    c = m.sim_counters()
    assert c["sim_steal"] == 1 and c["sim_claim_success"] == 0
    assert c["sim_claim_attempts"] == 8   # one candidate per order 7..0
    ef = last_extfrag(m)
    assert (ef["fallback_order"], ef["change_ownership"]) == (0, 0)
    m.check()


def test_v61_falls_back_from_the_largest_buddy():
    """v6.1 __rmqueue_fallback: same state, but the first (largest) order with a
    fallback is used (b+128, order 7); failing the claim, the block's free
    pages move to the UNMOVABLE lists and the retry takes the smallest, b+1
    (tests/test_v61_freelists.py)."""
    m = full_machine(version="6.1")
    b = block(m)
    free_pages_range(m, b + 1, 255)
    pfn = m.alloc(0, KERNEL)
    assert pfn == b + 1
    assert m.mem.pb_mt[b >> 9] == MIGRATE_MOVABLE
    assert last_extfrag(m)["fallback_order"] == 7
    m.check()


def test_v612_lts_claims_then_steals_the_smallest():
    """The 6.12 LTS kernel (6.12.117, as Debian ships it) has the backported
    __rmqueue_claim / __rmqueue_steal split: the same state as above steals
    the smallest fallback buddy (b+1, order 0), like recent kernels."""
    m = full_machine(version="6.12")
    b = block(m)
    free_pages_range(m, b + 1, 255)
    pfn = m.alloc(0, KERNEL)
    assert pfn == b + 1
    c = m.sim_counters()
    assert c["sim_steal"] == 1 and c["sim_claim_success"] == 0
    assert last_extfrag(m)["fallback_order"] == 0
    m.check()


def test_alike_counts_unmovable_content_as_compatible():
    """UNMOVABLE request, MOVABLE block with 200 free pages and 312 unmovable
    (non-LRU) pages: alike = 512 - (200 + 0) = 312, claim."""
    m = full_machine()
    b = block(m)
    free_pages_range(m, b, pageblock_nr_pages)
    unmov = m.run_ops(np.zeros(312, np.int64), KERNEL)
    assert (unmov >= b).all() and (unmov < b + 512).all()
    assert m.mem.pb_mt[b >> 9] == MIGRATE_UNMOVABLE          # whole-block claim
    move_freepages_block(m.mem, Z, b, MIGRATE_UNMOVABLE, MIGRATE_MOVABLE)
    assert m.mem.pb_mt[b >> 9] == MIGRATE_MOVABLE
    before = m.sim_counters()["sim_claim_success"]
    m.alloc(0, KERNEL)
    assert m.mem.pb_mt[b >> 9] == MIGRATE_UNMOVABLE
    assert m.sim_counters()["sim_claim_success"] == before + 1
    m.check()


def test_movable_request_claims_with_lru_pages_as_alike():
    """MOVABLE request, UNMOVABLE block with 200 free and 312 movable pages:
    alike = movable_pages = 312, and the fallback buddy (order 7) >= 4."""
    m = full_machine()
    b = block(m)
    free_pages_range(m, b, pageblock_nr_pages)
    mov = m.run_ops(np.zeros(312, np.int64), MOVABLE)
    assert (mov >= b).all() and (mov < b + 512).all()
    move_freepages_block(m.mem, Z, b, MIGRATE_MOVABLE, MIGRATE_UNMOVABLE)
    m.alloc(0, MOVABLE)
    assert m.mem.pb_mt[b >> 9] == MIGRATE_MOVABLE
    m.check()


def test_movable_request_counts_every_page_of_an_lru_folio_as_alike():
    """PageLRU() answers for a folio's head on each of its pages (PF_HEAD),
    so prep_move_freepages_block() counts every page of a large LRU folio:
    200 free pages and 39 movable order-3 folios (312 pages) make the whole
    block, and a MOVABLE request claims the UNMOVABLE block.  The old count
    took each folio once (200 + 39 < 256): a steal, the block kept its type."""
    m = full_machine()
    b = block(m)
    free_pages_range(m, b, pageblock_nr_pages)
    mov = m.run_ops(np.full(39, 3, np.int64), MOVABLE)
    assert (mov >= b).all() and (mov < b + 512).all()
    move_freepages_block(m.mem, Z, b, MIGRATE_MOVABLE, MIGRATE_UNMOVABLE)
    assert prep_move_freepages_block(m.mem, Z, b)[1:] == (200, 312)
    m.alloc(0, MOVABLE)
    assert m.mem.pb_mt[b >> 9] == MIGRATE_MOVABLE
    assert m.sim_counters()["sim_steal"] == 0
    m.check()


def test_an_lru_folio_from_an_earlier_pageblock_counts_in_the_next():
    """An order-10 LRU folio's second pageblock holds only tail pages; each
    still reads PageLRU() through its head."""
    m = full_machine()
    b = block(m)
    free_pages_range(m, b, 2 * pageblock_nr_pages)
    pfn = m.alloc(10, MOVABLE)
    assert pfn == b
    assert prep_move_freepages_block(m.mem, Z, b + pageblock_nr_pages) == \
        (b + pageblock_nr_pages, 0, pageblock_nr_pages)
    assert prep_move_freepages_block(m.mem, Z, b) == (b, 0, pageblock_nr_pages)


def test_movable_request_never_claims_from_small_buddies():
    """should_try_claim_block(): MOVABLE requests try claims only from fallback
    buddies of order >= pageblock_order/2 = 4; below, they steal."""
    m = full_machine()
    b = block(m)
    free_pages_range(m, b, pageblock_nr_pages)
    kern = m.run_ops(np.zeros(512 - 15, np.int64), KERNEL)   # b becomes UNMOVABLE
    assert (kern >= 0).all()                                 # 15 pages stay free
    assert m.mem.pb_mt[b >> 9] == MIGRATE_UNMOVABLE
    pfn = m.alloc(0, MOVABLE)
    assert m.mem.pb_mt[b >> 9] == MIGRATE_UNMOVABLE
    c = m.sim_counters()
    assert c["sim_steal"] == 1
    assert b <= pfn < b + 512
    m.check()


def two_zone_machine(**kw):
    """DMA32 of 1G and Normal of 1G at 4G, all pages allocated."""
    m = full_machine("2G", low_memory="1G", **kw)
    n = int(m.mem.zone_start[ZONE_NORMAL]) + 64 * 1024
    d = block(m)
    free_pages_range(m, n, 16)       # an order-4 movable buddy in Normal
    return m, n, d


def test_nofragment_prefers_a_clean_block_in_a_lower_zone():
    """alloc_flags_nofragment(): a Normal-preferring request first walks the whole
    zonelist taking only whole free pageblocks (DMA32 here) before it would
    fragment Normal."""
    m, n, d = two_zone_machine()
    free_pages_range(m, d, 1024)     # a whole order-10 block in DMA32
    pfn = m.alloc(0, KERNEL)
    assert pfn == d
    assert m.mem.pb_mt[n >> 9] == MIGRATE_MOVABLE and m.mem.pg_order[n] == 4
    m.check()


def test_without_nofragment_the_preferred_zone_is_fragmented():
    m, n, d = two_zone_machine()
    free_pages_range(m, d, 1024)
    m.mem.cfg[CFG["nofragment"]] = 0
    pfn = m.alloc(0, KERNEL)
    assert pfn == n, "steal of the order-4 buddy in Normal"
    assert m.mem.pb_mt[n >> 9] == MIGRATE_MOVABLE
    m.check()


def test_nofragment_falls_back_to_fragmenting_when_nothing_clean():
    """get_page_from_freelist(): no whole block anywhere -> rescan without
    NOFRAGMENT, starting again at Normal."""
    m, n, d = two_zone_machine()
    before = m.sim_counters()["sim_nofragment_retry"]
    pfn = m.alloc(0, KERNEL)
    assert pfn == n
    assert m.sim_counters()["sim_nofragment_retry"] == before + 1
    m.check()


def test_defrag_mode_refuses_to_fragment_for_nonblocking_requests():
    """vm.defrag_mode: NOFRAGMENT on every attempt; a request that cannot direct
    reclaim fails rather than pollute a block."""
    m, n, d = two_zone_machine(defrag_mode=True)
    assert m.alloc(0, G.GFP_NOWAIT) is None
    assert m.mem.pb_flags[n >> 9] & PB_has_unmovable == 0


def test_defrag_mode_fragments_only_as_last_resort():
    m, n, d = two_zone_machine(defrag_mode=True)
    before = m.sim_counters()["sim_slowpath"]
    pfn = m.alloc(0, KERNEL)
    assert pfn == n
    assert m.sim_counters()["sim_slowpath"] == before + 1


def atomic_machine(**kw):
    """Fast path fails (LOW/HIGH marks huge), slow path's MIN mark passes."""
    m = machine(**kw)
    m.mem.zstat[:, ZSTAT["wmark_min"]] = 0
    for k in ("wmark_low", "wmark_high", "wmark_promo"):
        m.mem.zstat[:, ZSTAT[k]] = 10 ** 9
    return m


def test_highatomic_reserve_after_high_order_atomic():
    """reserve_highatomic_pageblock(): a successful high-order GFP_ATOMIC in the
    slow path (ALLOC_HIGHATOMIC) reserves its pageblock."""
    m = atomic_machine()
    pfn = m.alloc(1, G.GFP_ATOMIC)
    assert pfn is not None
    assert m.mem.pb_mt[pfn >> 9] == MIGRATE_HIGHATOMIC
    assert m.mem.zstat[Z, ZSTAT["nr_reserved_highatomic"]] == pageblock_nr_pages
    # the next one is served from the reserve
    pfn2 = m.alloc(1, G.GFP_ATOMIC)
    assert pfn2 >> 9 == pfn >> 9
    m.check()


@pytest.mark.parametrize("version", ["recent", "6.1"])
def test_highatomic_reserve_is_capped_near_one_percent(version):
    """v6.8 on: 1% of the zone rounded up to a block; v6.1: blocks are
    reserved while fewer than 1% plus a block are."""
    m = atomic_machine(version=version)
    managed = int(m.mem.zstat[Z, ZSTAT["managed"]])
    limit = managed // 100 + (pageblock_nr_pages if version == "6.1" else 0)
    cap = -(-limit // pageblock_nr_pages) * pageblock_nr_pages
    for _ in range(2 * cap // 8):          # twice the cap in order-3 atomics
        assert m.alloc(3, G.GFP_ATOMIC) is not None
    assert m.mem.zstat[Z, ZSTAT["nr_reserved_highatomic"]] == cap
    m.check()


# movable, no reclaim and no access to reserves: exhausts all but the reserve
NORESERVE = (MOVABLE & ~G.__GFP_RECLAIM) | G.__GFP_NOMEMALLOC


def test_unreserve_highatomic_before_failing():
    """unreserve_highatomic_pageblock(force) when reclaim cannot help: the last
    reserved block goes to the requester's type."""
    m = atomic_machine()
    pfn = m.alloc(1, G.GFP_ATOMIC)
    zero_watermarks(m)
    exhaust(m, NORESERVE)
    ha_free = int(m.mem.zstat[Z, ZSTAT["nr_free_highatomic"]])
    assert ha_free > 0 and m.mem.zstat[:, ZSTAT["nr_free_pages"]].sum() == ha_free
    p = m.alloc(0, KERNEL)
    assert p is not None and p >> 9 == pfn >> 9
    assert m.mem.pb_mt[pfn >> 9] == MIGRATE_UNMOVABLE
    assert m.mem.zstat[Z, ZSTAT["nr_reserved_highatomic"]] == 0
    m.check()


def test_nonblocking_order0_may_use_the_highatomic_reserve():
    """rmqueue_buddy(): OOM/NON_BLOCK requests use HIGHATOMIC lists as a last
    resort, without unreserving."""
    m = atomic_machine()
    pfn = m.alloc(1, G.GFP_ATOMIC)
    zero_watermarks(m)
    exhaust(m, NORESERVE)
    p = m.alloc(0, G.GFP_NOWAIT)
    assert p is not None and p >> 9 == pfn >> 9
    assert m.mem.pb_mt[pfn >> 9] == MIGRATE_HIGHATOMIC


def test_failed_claim_attempts_boost_the_watermark_and_wake_kswapd():
    """boost_watermark() on every sub-pageblock claim attempt; ALLOC_KSWAPD
    requests then wake kswapd at the end of rmqueue()."""
    m = full_machine(watermark_boost_factor=15000)
    m.mem.zstat[Z, ZSTAT["wmark_high"]] = 10000
    b = block(m)
    free_pages_range(m, b + 1, 255)
    wakeups = int(m.mem.zstat[Z, ZSTAT["kswapd_wakeups"]])
    m.alloc(0, KERNEL)
    assert m.mem.zstat[Z, ZSTAT["watermark_boost"]] == 8 * pageblock_nr_pages
    assert m.mem.zstat[Z, ZSTAT["kswapd_wakeups"]] == wakeups + 1
