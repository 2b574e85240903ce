"""SPB metadata and list layer (spbsim.mm.spb): categories, buckets, list
transitions, counter upkeep, boot init, debug check and debugfs dump.

Expectations come from spb-source-facts.md (S1, wins over the spec) and
spb-series.md; the section is cited at each test.  Mutations go through
``spb_apply_ops`` (one compiled entry point running the hook functions).
"""
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spbsim import Machine
from spbsim.mm.const import (MIGRATE_HIGHATOMIC, MIGRATE_ISOLATE, MIGRATE_MOVABLE,
                             MIGRATE_RECLAIMABLE, MIGRATE_UNMOVABLE, PB_all_free,
                             PB_has_mask, PB_has_movable, PB_has_reclaimable,
                             PB_has_unmovable, PG_buddy, ZONE_DMA, ZONE_DMA32,
                             ZONE_NORMAL, pageblock_nr_pages)
from spbsim.mm.geometry import build_geometry
from spbsim.mm.mm_init import new_mem
from spbsim.mm.state import CUR_CLOCK
from spbsim.mm.zone_setup import init_zones
from spbsim.observe.census import reserved_pageblocks
from spbsim.mm.spb import (NR_SB_FULLNESS, SB_ALMOST_EMPTY, SB_CLEAN, SB_FULL,
                           SB_FULL_25, SB_FULL_50, SB_FULL_75, SB_TAINTED,
                           SPB_DEFRAG_IDLE, SPB_DEFRAG_QUEUED,
                           SPB_DEFRAG_RESERVE, SPB_DEFRAG_RUNNING,
                           SPB_DEFRAG_V2_15, SPB_LIST_EMPTY, SPB_LIST_ISOLATED,
                           SPB_STAT, SPB_UNTAINT_WHEN_EMPTY, SPB_UPDATE_S1,
                           SPB_UPDATE_TRANSITION, init_spb_from_mem, new_spb)
from spbsim.mm.spb import lists
from spbsim.mm.spb.debug import (SPB_OPS, assert_spb_consistent,
                                 format_spb_violation, spb_apply_ops,
                                 spb_debug_check, spb_dump)

SET_HAS, MARK_FREE, RANGE_USED = SPB_OPS["set_has"], SPB_OPS["mark_free"], SPB_OPS["range_used"]
SET_MOV, CLEAR_MOV = SPB_OPS["set_movable"], SPB_OPS["clear_movable"]
RAW_SET, RAW_CLEAR = SPB_OPS["raw_set"], SPB_OPS["raw_clear"]
UPDATE, CONTIG = SPB_OPS["update"], SPB_OPS["contig"]
UNMOV, MOV, RECL = MIGRATE_UNMOVABLE, MIGRATE_MOVABLE, MIGRATE_RECLAIMABLE


def L(cat, full):
    """List id of spb_lists[cat][full]."""
    return cat * NR_SB_FULLNESS + full


# ------------------------------------------------------------------ fixtures

def synth(memory="4G", update=SPB_UPDATE_S1, **kw):
    """A booted-looking machine without running the allocator: present
    pageblocks without reserved pages fully free (PB_all_free), the rest
    PB_has_movable (init_pageblock_migratetype), no free buddies."""
    geom = build_geometry(memory, **kw)
    m = new_mem(geom.nr_pfns, 1)
    init_zones(m, geom)
    free = (m.pb_zone >= 0) & ~reserved_pageblocks(m)
    m.pb_flags[free] = PB_all_free
    s = new_spb(geom, update=update)
    init_spb_from_mem(s, m)
    return s, m


def slot(s, z, k):
    return int(s.zone_first[z]) + k


def pbpfn(s, i, j):
    """First pfn of pageblock j of SPB slot i."""
    return int(s.start_pfn[i]) + j * pageblock_nr_pages


def run(s, m, *rows):
    done, viol = spb_apply_ops(s, m, np.array(rows, np.int64).reshape(-1, 3), check_every=True)
    assert viol[0] == 0, format_spb_violation(viol) + f" after op {done}"
    return done


def use(s, m, i, js, mt=MOV, order=9):
    """Allocate whole pageblocks js of slot i as mt (page_del_and_expand)."""
    run(s, m, *[(SET_HAS, pbpfn(s, i, j), (order << 3) | mt) for j in js])


def list_members(s, z, lid):
    out, p = [], int(s.list_head[z, lid])
    while p >= 0:
        out.append(p)
        p = int(s.list_next[p])
    return out


def stat(s, z, name):
    return int(s.stat[z, SPB_STAT[name]])


@pytest.fixture
def s4():
    return synth("4G")


# ------------------------------------------------------------------ S1 §1.3-1.4 classification

@pytest.mark.parametrize("used,bucket", [
    (1, SB_ALMOST_EMPTY), (127, SB_ALMOST_EMPTY), (128, SB_FULL_25), (255, SB_FULL_25),
    (256, SB_FULL_50), (383, SB_FULL_50), (384, SB_FULL_75), (511, SB_FULL_75), (512, SB_FULL)])
def test_fullness_boundaries_are_inclusive_quarters(s4, used, bucket):
    """S1 §1.4: used >= 384/256/128 (of a fixed 512), used >= total -> SB_FULL."""
    s, _ = s4
    i = slot(s, ZONE_DMA32, 1)
    s.nr_free[i] = 512 - used                                       # clean: used = total - nr_free
    assert lists.spb_get_category(s, i) == SB_CLEAN
    assert lists.sb_get_fullness(s, i, SB_CLEAN) == bucket
    s.nr_free[i] = 512                                              # tainted: used = unmov + recl
    s.nr_unmovable[i] = used // 2
    s.nr_reclaimable[i] = used - used // 2
    assert lists.spb_get_category(s, i) == SB_TAINTED
    assert lists.sb_get_fullness(s, i, SB_TAINTED) == bucket


def test_fullness_special_cases(s4):
    s, _ = s4
    i = slot(s, ZONE_DMA32, 1)
    s.total_pageblocks[i] = 0
    assert lists.sb_get_fullness(s, i, SB_CLEAN) == SB_FULL        # total == 0 -> SB_FULL
    s.total_pageblocks[i] = 512
    s.nr_free[i] = 0
    s.nr_unmovable[i] = 3                                           # tainted, no free memory left,
    assert lists.sb_get_fullness(s, i, SB_TAINTED) == SB_ALMOST_EMPTY   # yet "almost empty" (S1 §1.4 [I])
    s.nr_unmovable[i] = 300
    s.nr_reclaimable[i] = 300                                       # a block with both bits counts twice
    assert lists.sb_get_fullness(s, i, SB_TAINTED) == SB_FULL


@pytest.mark.parametrize("field,cat", [("nr_unmovable", SB_TAINTED), ("nr_reclaimable", SB_TAINTED),
                                       ("nr_reserved", SB_TAINTED), ("nr_movable", SB_CLEAN)])
def test_category(s4, field, cat):
    """S1 §1.3: unmovable, reclaimable or reserved taint; movable does not."""
    s, _ = s4
    i = slot(s, ZONE_DMA32, 1)
    getattr(s, field)[i] = 1
    assert lists.spb_get_category(s, i) == cat


# ------------------------------------------------------------------ boot (S1 §11)

def test_new_spb_is_s1_boot_state():
    geom = build_geometry("4G")
    s = new_spb(geom)
    assert list(s.zone_count) == [1, 3, 1]                          # DMA and DMA32 both cover SPB 0
    assert (s.nr_reserved == s.total_pageblocks).all()
    assert list(s.total_pageblocks) == [8, 504, 512, 512, 512]
    for z in (ZONE_DMA, ZONE_DMA32, ZONE_NORMAL):
        assert list_members(s, z, L(SB_TAINTED, SB_FULL)) == list(
            range(int(s.zone_first[z]), int(s.zone_first[z] + s.zone_count[z])))


@pytest.fixture(scope="module")
def booted():
    return Machine("4G", early_unmovable=0), Machine("4G")


def test_init_from_booted_machine_without_early_unmovable(booted):
    M = booted[0]
    s = new_spb(M.geometry)
    init_spb_from_mem(s, M.mem)
    assert spb_debug_check(s, M.mem, invariant1=True) == (0, -1, 0, 0)
    lid = s.list_id
    assert ((lid == SPB_LIST_EMPTY) | ((lid >= L(SB_CLEAN, 0)) & (lid < L(SB_TAINTED, 0)))).all()
    assert s.nr_tainted_spbs.sum() == 0
    assert (s.nr_unmovable == 0).all() and (s.nr_reclaimable == 0).all()
    assert (s.nr_reserved == 0).all()
    # pageblocks with memblock-reserved pages keep the PB_has_movable of init:
    # kernel image (24) in DMA32's SPB 0, memmap (32) in Normal's
    assert int(s.nr_movable[slot(s, ZONE_DMA32, 0)]) == 24
    assert int(s.nr_movable[slot(s, ZONE_NORMAL, 0)]) == 32
    assert s.total_pageblocks.sum() == (M.mem.pb_zone >= 0).sum()
    assert int(s.list_nr[ZONE_DMA32, SPB_LIST_EMPTY]) == 2
    assert s.nr_free_pages.sum() == sum(int(M.mem.zstat[z, 0]) for z in range(3))


def test_init_from_booted_machine_with_early_unmovable(booted):
    M = booted[1]
    s = new_spb(M.geometry)
    init_spb_from_mem(s, M.mem)
    assert_spb_consistent(s, M.mem)
    tainted = (s.nr_unmovable > 0) | (s.nr_reclaimable > 0) | (s.nr_reserved > 0)
    assert s.nr_tainted_spbs.sum() == tainted.sum() > 0
    assert not s.stat.any()


def test_holes_count_as_reserved_and_taint_forever():
    """S1 §1.3, §1.5, §11: a hole keeps an SPB tainted and never empty."""
    s, m = synth("4G", holes=[("1G", "64M")])
    i = slot(s, ZONE_DMA32, 1)
    assert int(s.nr_reserved[i]) == 32 and int(s.total_pageblocks[i]) == 512
    assert int(s.list_id[i]) == L(SB_TAINTED, SB_ALMOST_EMPTY)
    use(s, m, i, [40])
    run(s, m, (MARK_FREE, pbpfn(s, i, 40), 0))
    assert int(s.nr_free[i]) == 480
    assert int(s.list_id[i]) == L(SB_TAINTED, SB_ALMOST_EMPTY)


def test_partial_spb_at_zone_edge_uses_fixed_quarters():
    """S1 §1.4, §11: clipped total_pageblocks; buckets still in 128s of 512."""
    s, m = synth("4G", low_memory="2560M")
    i = slot(s, ZONE_DMA32, 2)
    assert int(s.total_pageblocks[i]) == 256 and int(s.nr_reserved[i]) == 0
    assert int(s.list_id[i]) == SPB_LIST_EMPTY
    use(s, m, i, range(128))
    assert int(s.list_id[i]) == L(SB_CLEAN, SB_FULL_25)             # half used, still "25pct"
    use(s, m, i, range(128, 255))
    assert int(s.list_id[i]) == L(SB_CLEAN, SB_FULL_25)
    use(s, m, i, [255])
    assert int(s.list_id[i]) == L(SB_CLEAN, SB_FULL)                # used >= total


# ------------------------------------------------------------------ transitions (S1 §1.5-1.6, §6)

def test_bucket_boundaries_by_allocation(s4):
    s, m = s4
    i = slot(s, ZONE_DMA32, 1)
    expect = {1: SB_ALMOST_EMPTY, 127: SB_ALMOST_EMPTY, 128: SB_FULL_25, 255: SB_FULL_25,
              256: SB_FULL_50, 383: SB_FULL_50, 384: SB_FULL_75, 511: SB_FULL_75, 512: SB_FULL}
    moves = []
    for k in range(1, 513):
        before = int(s.list_id[i])
        use(s, m, i, [k - 1])
        if int(s.list_id[i]) != before:
            moves.append(k)
        if k in expect:
            assert int(s.list_id[i]) == L(SB_CLEAN, expect[k]), k
    assert moves == [1, 128, 256, 384, 512]                         # empty->clean, then the boundaries


def test_order10_allocation_covers_two_pageblocks(s4):
    s, m = s4
    i = slot(s, ZONE_DMA32, 1)
    run(s, m, (SET_HAS, pbpfn(s, i, 2), (10 << 3) | MOV))
    assert int(s.nr_free[i]) == 510 and int(s.nr_movable[i]) == 2
    assert m.pb_flags[(pbpfn(s, i, 3)) >> 9] == PB_has_movable


def test_clean_spb_tainted_by_first_unmovable_pageblock(s4):
    s, m = s4
    i = slot(s, ZONE_DMA32, 1)
    use(s, m, i, [0])
    assert int(s.list_id[i]) == L(SB_CLEAN, SB_ALMOST_EMPTY)
    assert i in list_members(s, ZONE_DMA32, L(SB_CLEAN, SB_ALMOST_EMPTY))
    t0 = int(s.nr_tainted_spbs[ZONE_DMA32])
    run(s, m, (SET_HAS, pbpfn(s, i, 0), UNMOV))                     # order 0 in the same block
    assert int(s.nr_unmovable[i]) == 1 and int(s.nr_movable[i]) == 1
    assert i not in list_members(s, ZONE_DMA32, L(SB_CLEAN, SB_ALMOST_EMPTY))
    assert list_members(s, ZONE_DMA32, L(SB_TAINTED, SB_ALMOST_EMPTY)) == [i]
    assert int(s.nr_tainted_spbs[ZONE_DMA32]) == t0 + 1
    assert stat(s, ZONE_DMA32, "spb_taint") == 1


def test_tainting_changes_the_bucket_measure(s4):
    """S1 §1.4: a clean SPB 300/512 used (50pct) tainted by one unmovable
    pageblock is filed by its tainted count: tainted/almost_empty."""
    s, m = s4
    i = slot(s, ZONE_DMA32, 1)
    use(s, m, i, range(300))
    assert int(s.list_id[i]) == L(SB_CLEAN, SB_FULL_50)
    run(s, m, (SET_HAS, pbpfn(s, i, 7), UNMOV))
    assert int(s.list_id[i]) == L(SB_TAINTED, SB_ALMOST_EMPTY)
    use(s, m, i, range(127), mt=RECL, order=0)                      # 127 recl + 1 unmov = 128
    assert int(s.list_id[i]) == L(SB_TAINTED, SB_FULL_25)


def test_highatomic_sets_unmovable_and_isolate_sets_nothing(s4):
    """S1 §6.1 migratetype_to_has_bit."""
    s, m = s4
    i = slot(s, ZONE_DMA32, 1)
    run(s, m, (SET_HAS, pbpfn(s, i, 0), MIGRATE_HIGHATOMIC), (SET_HAS, pbpfn(s, i, 1), MIGRATE_ISOLATE))
    assert int(s.nr_unmovable[i]) == 1 and int(s.nr_movable[i]) == 0
    assert int(s.nr_free[i]) == 510                                  # both blocks are used
    assert m.pb_flags[pbpfn(s, i, 1) >> 9] & (PB_has_mask | PB_all_free) == 0


def test_last_unmovable_block_fully_free_untaints(s4):
    """S1 §6.4-6.5: clean again when the last unmovable block coalesces to fully free."""
    s, m = s4
    i = slot(s, ZONE_DMA32, 1)
    use(s, m, i, [0, 1, 2])
    use(s, m, i, [1, 2], mt=UNMOV, order=0)
    assert int(s.list_id[i]) == L(SB_TAINTED, SB_ALMOST_EMPTY)
    run(s, m, (MARK_FREE, pbpfn(s, i, 1), 0))
    assert int(s.list_id[i]) == L(SB_TAINTED, SB_ALMOST_EMPTY)       # block 2 still unmovable
    assert int(s.nr_tainted_spbs[ZONE_DMA32]) == 1
    run(s, m, (MARK_FREE, pbpfn(s, i, 2), 0))
    assert int(s.nr_unmovable[i]) == 0 and int(s.nr_movable[i]) == 1
    assert int(s.list_id[i]) == L(SB_CLEAN, SB_ALMOST_EMPTY)
    assert int(s.nr_tainted_spbs[ZONE_DMA32]) == 0
    assert stat(s, ZONE_DMA32, "spb_untaint") == 1
    run(s, m, (MARK_FREE, pbpfn(s, i, 0), 0))
    assert int(s.list_id[i]) == SPB_LIST_EMPTY                       # nr_free == total (S1 §1.5)


def test_untaint_when_empty_switch(s4):
    """Spec App. B [SIM] alternative: tainted until the whole SPB is empty."""
    s, m = s4
    s.cfg[lists.SPB_CFG_UNTAINT] = SPB_UNTAINT_WHEN_EMPTY
    i = slot(s, ZONE_DMA32, 1)
    use(s, m, i, [0, 1])
    use(s, m, i, [1], mt=UNMOV)
    run(s, m, (MARK_FREE, pbpfn(s, i, 1), 0))
    assert int(s.list_id[i]) == L(SB_TAINTED, SB_ALMOST_EMPTY)       # counters clean, still filed tainted
    run(s, m, (MARK_FREE, pbpfn(s, i, 0), 0))
    assert int(s.list_id[i]) == SPB_LIST_EMPTY
    use(s, m, i, [5])
    assert int(s.list_id[i]) == L(SB_CLEAN, SB_ALMOST_EMPTY)


def test_mark_pageblock_free_clears_every_bit(s4):
    s, m = s4
    i = slot(s, ZONE_DMA32, 1)
    p = pbpfn(s, i, 9)
    run(s, m, (SET_HAS, p, MOV), (SET_HAS, p, UNMOV), (SET_HAS, p, RECL))
    assert (int(s.nr_unmovable[i]), int(s.nr_reclaimable[i]), int(s.nr_movable[i])) == (1, 1, 1)
    run(s, m, (MARK_FREE, p, 0))
    assert (int(s.nr_unmovable[i]), int(s.nr_reclaimable[i]), int(s.nr_movable[i])) == (0, 0, 0)
    assert m.pb_flags[p >> 9] == PB_all_free and int(s.nr_free[i]) == 512


def test_range_now_used_clears_only_all_free(s4):
    """S1 §9.5 (__isolate_free_page): nr_free-- per block, PB_has_* untouched."""
    s, m = s4
    i = slot(s, ZONE_DMA32, 1)
    run(s, m, (RANGE_USED, pbpfn(s, i, 4), 10))
    assert int(s.nr_free[i]) == 510 and int(s.nr_movable[i]) == 0
    run(s, m, (SET_MOV, pbpfn(s, i, 4), 0))                          # compaction_alloc destination
    assert int(s.nr_movable[i]) == 1


def test_compaction_clear_movable_keeps_bit_with_free_fragments(s4):
    """S1 §9.1: no clear while a sub-pageblock MOVABLE buddy lies in the block."""
    s, m = s4
    i = slot(s, ZONE_DMA32, 1)
    p = pbpfn(s, i, 3)
    use(s, m, i, [3])
    m.pg_flags[p + 64] = PG_buddy
    m.pg_order[p + 64] = 3
    run(s, m, (CLEAR_MOV, p, 0))
    assert int(s.nr_movable[i]) == 1
    m.pg_flags[p + 64] = 0
    m.pg_order[p + 64] = -1
    run(s, m, (CLEAR_MOV, p, 0))
    assert int(s.nr_movable[i]) == 0
    assert int(s.list_id[i]) == L(SB_CLEAN, SB_ALMOST_EMPTY)         # still used: not free


def test_counters_never_go_below_zero(s4):
    """S1 §6.2: only 1->0 transitions decrement, and never below 0."""
    s, m = s4
    i = slot(s, ZONE_DMA32, 1)
    run(s, m, (RAW_CLEAR, pbpfn(s, i, 0), UNMOV), (RAW_CLEAR, pbpfn(s, i, 0), MOV))
    assert int(s.nr_unmovable[i]) == 0 and int(s.nr_movable[i]) == 0
    assert stat(s, ZONE_DMA32, "spb_counter_underflow") == 0
    # an inconsistent state (bit set, counter 0): the clear is refused, not wrapped
    m.pb_flags[pbpfn(s, i, 0) >> 9] |= PB_has_reclaimable
    done, _ = spb_apply_ops(s, m, [(RAW_CLEAR, pbpfn(s, i, 0), RECL)])
    assert int(s.nr_reclaimable[i]) == 0
    assert stat(s, ZONE_DMA32, "spb_counter_underflow") == 1
    s.nr_free[i] = 0
    spb_apply_ops(s, m, [(RANGE_USED, pbpfn(s, i, 0), 9)])
    assert int(s.nr_free[i]) == 0
    assert stat(s, ZONE_DMA32, "spb_counter_underflow") == 2


# ------------------------------------------------------------------ the two spb_update_list forms

def _two_on_one_list(update):
    s, m = synth("4G", update=update)
    a, b = slot(s, ZONE_DMA32, 1), slot(s, ZONE_DMA32, 2)
    use(s, m, a, [0])
    use(s, m, b, [0])
    lid = L(SB_CLEAN, SB_ALMOST_EMPTY)
    assert list_members(s, ZONE_DMA32, lid)[-2:] == [a, b]
    return s, m, a, b, lid


def test_s1_form_requeues_to_the_tail_on_every_call():
    """S1 §1.6: every call re-appends to the tail (the least recently touched
    SPB stays at the head), even when nothing changed."""
    s, m, a, b, lid = _two_on_one_list(SPB_UPDATE_S1)
    run(s, m, (UPDATE, pbpfn(s, a, 0), 0))
    assert list_members(s, ZONE_DMA32, lid)[-2:] == [b, a]
    assert stat(s, ZONE_DMA32, "spb_requeues") >= 1
    use(s, m, b, [1])                                                # same bucket
    assert list_members(s, ZONE_DMA32, lid)[-2:] == [a, b]


def test_transition_form_moves_only_on_category_or_bucket_change():
    """Spec §4 (v1 43/45): no move when category and bucket are unchanged."""
    s, m, a, b, lid = _two_on_one_list(SPB_UPDATE_TRANSITION)
    before = list_members(s, ZONE_DMA32, lid)
    moves = stat(s, ZONE_DMA32, "spb_list_moves")
    run(s, m, (UPDATE, pbpfn(s, a, 0), 0))
    use(s, m, a, range(1, 127))                                       # 127 used: still almost_empty
    assert list_members(s, ZONE_DMA32, lid) == before
    assert stat(s, ZONE_DMA32, "spb_list_moves") == moves
    assert stat(s, ZONE_DMA32, "spb_requeues") == 0
    use(s, m, a, [127])                                               # 128: bucket transition
    assert list_members(s, ZONE_DMA32, L(SB_CLEAN, SB_FULL_25)) == [a]
    assert stat(s, ZONE_DMA32, "spb_list_moves") == moves + 1


def test_update_list_return_value():
    s, m, a, b, lid = _two_on_one_list(SPB_UPDATE_S1)
    assert lists.spb_update_list(s, a, 0) == 0
    s.nr_unmovable[a] = 1
    m.pb_flags[pbpfn(s, a, 0) >> 9] |= PB_has_unmovable
    assert lists.spb_update_list(s, a, 0) == 1
    assert int(s.list_id[a]) == L(SB_TAINTED, SB_ALMOST_EMPTY)
    assert_spb_consistent(s, m, check_free_pages=False)


def test_contig_allocated_goes_to_isolated_and_back(s4):
    """Spec §3.9 (v2 17/40): contig-allocated SPBs sit on spb_isolated."""
    s, m = s4
    i = slot(s, ZONE_DMA32, 1)
    run(s, m, (CONTIG, pbpfn(s, i, 0), 1))
    assert list_members(s, ZONE_DMA32, SPB_LIST_ISOLATED) == [i]
    run(s, m, (CONTIG, pbpfn(s, i, 0), 0))
    assert int(s.list_id[i]) == SPB_LIST_EMPTY


# ------------------------------------------------------------------ defrag gates (spec §5.1)

def _tainted_spb_for_defrag(update, preset=SPB_DEFRAG_RESERVE):
    s, m = synth("4G", update=update)
    s.cfg[lists.SPB_CFG_DEFRAG] = preset
    i = slot(s, ZONE_DMA32, 1)
    use(s, m, i, [0], mt=UNMOV)
    use(s, m, i, range(1, 500))                                        # movable, nr_free = 12
    return s, m, i


def test_defrag_cooldown_and_single_flight():
    s, m, i = _tainted_spb_for_defrag(SPB_UPDATE_TRANSITION)
    s.nr_free_pages[i] = 12 * 512
    assert not lists.spb_needs_defrag(s, i, 0)                         # nr_free 12 >= reserve 4
    use(s, m, i, range(500, 509))                                      # nr_free 3 < 4, no transition
    assert s.defrag_state[i] == SPB_DEFRAG_IDLE
    assert lists.spb_needs_defrag(s, i, 0)
    assert lists.spb_maybe_start_defrag(s, i, 0) == 1
    assert lists.spb_maybe_start_defrag(s, i, 0) == 0                 # already queued
    lists.spb_defrag_begin(s, i, 1)
    assert s.defrag_state[i] == SPB_DEFRAG_RUNNING
    assert lists.spb_defrag_end(s, i, 2_000_000_000) == 0              # no progress: stamp
    assert int(s.defrag_last_no_progress_ns[i]) == 2_000_000_000
    assert not lists.spb_needs_defrag(s, i, 6_999_999_999)             # 5 s SPB_DEFRAG_NOOP_COOLDOWN
    assert lists.spb_needs_defrag(s, i, 7_000_000_000)
    s.nr_movable[i] = 0
    assert not lists.spb_needs_defrag(s, i, 8_000_000_000)             # nothing to evacuate


def test_defrag_v2_15_preset():
    s, m, i = _tainted_spb_for_defrag(SPB_UPDATE_TRANSITION, SPB_DEFRAG_V2_15)
    s.nr_free_pages[i] = 12 * 512
    s.nr_free[i] = 2
    assert not lists.spb_needs_defrag(s, i, 0)                         # start: nr_free <= 1
    s.nr_free[i] = 1
    assert lists.spb_needs_defrag(s, i, 0) is False                    # stop already holds (pages >= 3 pb)
    s.nr_free_pages[i] = 2 * 512
    assert lists.spb_needs_defrag(s, i, 0)


@pytest.mark.parametrize("update,kicked", [(SPB_UPDATE_S1, True), (SPB_UPDATE_TRANSITION, False)])
def test_within_bucket_allocation_kicks_defrag_only_in_s1_form(update, kicked):
    """Spec §5.1 (v1 43/45): with transition-only updates, allocations inside a
    bucket never re-run the defrag gate, so an SPB past its cooldown stays idle."""
    s, m, i = _tainted_spb_for_defrag(update)
    s.defrag_last_no_progress_ns[i] = 0
    m.cur[CUR_CLOCK] = 10_000_000_000                                  # cooldown expired
    use(s, m, i, range(500, 509))                                      # tainted bucket unchanged
    assert lists.spb_needs_defrag(s, i, 10_000_000_000)
    assert (s.defrag_state[i] == SPB_DEFRAG_QUEUED) == kicked


def test_tainted_reserve_forms():
    s, _ = synth("4G")
    i = slot(s, ZONE_DMA32, 1)
    assert lists.spb_tainted_reserve(s, i) == 4
    s.cfg[lists.SPB_CFG_RESERVE] = lists.SPB_RESERVE_DYNAMIC
    assert lists.spb_tainted_reserve(s, i) == 16
    assert lists.spb_tainted_reserve(s, slot(s, ZONE_DMA, 0)) == 4
    s.nr_free_pages[i] = 16 * 512 - 1
    assert lists.spb_below_shrink_high_water(s, i)
    s.nr_free_pages[i] += 1
    assert not lists.spb_below_shrink_high_water(s, i)


# ------------------------------------------------------------------ debug check and dump

@pytest.mark.parametrize("corrupt,code", [
    (lambda s, i: s.nr_free.__setitem__(i, 511), 6),
    (lambda s, i: s.nr_movable.__setitem__(i, -1), 3),
    (lambda s, i: s.nr_unmovable.__setitem__(i, 600), 4),
    (lambda s, i: s.nr_tainted_spbs.__setitem__(ZONE_DMA32, 5), 19),
    (lambda s, i: s.list_prev.__setitem__(i, i), 12),
    (lambda s, i: s.list_nr.__setitem__((ZONE_DMA32, SPB_LIST_EMPTY), 7), 15),
    (lambda s, i: s.full.__setitem__(i, SB_FULL), 18),
    (lambda s, i: s.nr_free_pages.__setitem__(i, 1), 11),
])
def test_debug_check_reports_corruption(s4, corrupt, code):
    s, m = s4
    i = slot(s, ZONE_DMA32, 2)
    assert spb_debug_check(s, m) == (0, -1, 0, 0)
    corrupt(s, i)
    r = spb_debug_check(s, m)
    assert r[0] == code, format_spb_violation(r)
    assert format_spb_violation(r).startswith("spb_debug_check: ")


def test_debug_check_wrong_list(s4):
    s, m = s4
    i = slot(s, ZONE_DMA32, 1)
    m.pb_flags[pbpfn(s, i, 0) >> 9] = PB_has_unmovable               # bits changed behind its back
    s.nr_unmovable[i] = 1
    s.nr_free[i] = 511
    assert spb_debug_check(s, m)[0] == 17


def test_dump_matches_s1_debugfs_format(booted):
    M = booted[1]
    s = new_spb(M.geometry)
    init_spb_from_mem(s, M.mem)
    out = spb_dump(s, M.mem, ZONE_NORMAL)
    lines = out.splitlines()
    assert lines[0] == "Node 0, zone   Normal: 1 superpageblocks, base_pfn=0x100000"
    assert re.fullmatch(r"  empty: \d+", lines[1])
    assert re.fullmatch(r"  (clean|tainted)/(full|75pct|50pct|25pct|almost_empty): \d+", lines[2])
    assert re.fullmatch(r"  sb\[0\] pfn=0x100000: unmov=\d+ recl=\d+ mov=\d+ rsv=\d+ free=\d+ total=512",
                        lines[-1])
    full = spb_dump(s)
    assert full.count("superpageblocks, base_pfn=") == 3 and full.count("sb[") == 5
    assert "list=" in spb_dump(s, extended=True)


# ------------------------------------------------------------------ random sequences (hypothesis)

_BASE = {}


def _base():
    if not _BASE:
        s, m = synth("2G", holes=[("1536M", "32M")])
        _BASE["m"] = m
        _BASE["flags"] = m.pb_flags.copy()
        _BASE["geom"] = build_geometry("2G", holes=[("1536M", "32M")])
        present = np.flatnonzero(m.pb_zone >= 0)
        # a few blocks of each SPB: DMA, DMA32 SPB 0 (around the kernel image), SPB 1 (with the hole)
        pick = np.concatenate([present[:8], present[8:16], present[30:40],
                               present[present >= 512][:12], present[present >= 512][-10:]])
        _BASE["pbs"] = np.unique(pick)
    m = _BASE["m"]
    m.pb_flags[:] = _BASE["flags"]
    return m


_op = st.one_of(
    st.tuples(st.just(SET_HAS), st.integers(0, 999), st.sampled_from([0, 9, 10]),
              st.integers(0, 4)).map(lambda t: (t[0], t[1], (t[2] << 3) | t[3], t[2])),
    st.tuples(st.sampled_from([MARK_FREE, SET_MOV, CLEAR_MOV, UPDATE]), st.integers(0, 999),
              st.just(0), st.just(0)),
    st.tuples(st.just(RANGE_USED), st.integers(0, 999), st.sampled_from([9, 10]),
              st.just(0)).map(lambda t: (t[0], t[1], t[2], t[2])),
    st.tuples(st.sampled_from([RAW_SET, RAW_CLEAR]), st.integers(0, 999), st.integers(0, 4),
              st.just(0)),
    st.tuples(st.just(CONTIG), st.integers(0, 999), st.integers(0, 1), st.just(0)),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(_op, min_size=1, max_size=120),
       update=st.sampled_from([SPB_UPDATE_S1, SPB_UPDATE_TRANSITION]),
       untaint=st.sampled_from([0, SPB_UNTAINT_WHEN_EMPTY]))
def test_random_bit_operations_keep_spb_consistent(ops, update, untaint):
    m = _base()
    s = new_spb(_BASE["geom"], update=update, untaint=untaint)
    init_spb_from_mem(s, m)
    pbs = _BASE["pbs"]
    rows = []
    for op, k, arg, order in ops:
        pb = int(pbs[k % pbs.size])
        if order == 10:
            pb &= ~1
            if m.pb_zone[pb] != m.pb_zone[pb + 1] or m.pb_zone[pb] < 0:
                continue
        rows.append((op, pb << 9, arg))
    if not rows:
        return
    done, viol = spb_apply_ops(s, m, rows, check_every=True)
    assert viol[0] == 0, format_spb_violation(viol) + f" after op {done}: {rows[done]}"
    assert spb_debug_check(s, m) == (0, -1, 0, 0)
    for f in ("nr_free", "nr_unmovable", "nr_reclaimable", "nr_movable", "nr_reserved"):
        assert (getattr(s, f) >= 0).all()
    # re-initialising from the same machine state files every SPB the same way
    # (order within a list may differ)
    s2 = new_spb(_BASE["geom"], update=update, untaint=untaint)
    init_spb_from_mem(s2, m)
    s2.contig_allocated[:] = s.contig_allocated                     # not derivable from mem
    lists.spb_rebuild_lists(s2)
    for f in ("nr_free", "nr_unmovable", "nr_reclaimable", "nr_movable", "nr_reserved",
              "total_pageblocks"):
        assert (getattr(s, f) == getattr(s2, f)).all(), f
    if untaint == 0:
        assert (s.list_id == s2.list_id).all()
        assert (s.nr_tainted_spbs == s2.nr_tainted_spbs).all()
