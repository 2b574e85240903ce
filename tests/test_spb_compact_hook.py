"""The SPB series' hook in __alloc_pages_direct_compact() (v2 17/40:
sb_try_alloc_contig() for THP-sized movable requests, spb_evacuate_for_order()
for high-order unmovable ones) and PASS_2 for __rmqueue_smallest(HIGHATOMIC)
(S1 §3.1: the pass runs for every non-movable, non-CMA type)."""
import numpy as np
import pytest

from spbsim import Machine
from spbsim.mm import compaction as C
from spbsim.mm.const import (ALLOC_WMARK_MIN, MIGRATE_HIGHATOMIC, MIGRATE_MOVABLE,
                             MIGRATE_UNMOVABLE, SUPERPAGEBLOCK_ORDER)
from spbsim.mm.craft import exhaust, zero_watermarks
from spbsim.mm.gfp import GFP_KERNEL
from spbsim.mm.page_alloc import direct_compact, prep_new_page
from spbsim.mm.spb.alloc import spb_rmqueue_highatomic
from spbsim.mm.spb.params import SPB_PRESETS, SPB_STAT
from spbsim.mm.state import ZS_RESERVED_HIGHATOMIC


def machine(preset, memory="3G", **kw):
    kw.setdefault("pcp", False)
    kw.setdefault("early_unmovable", 0)
    kw.setdefault("watermark_boost_factor", 0)
    kw.setdefault("reclaim", False)
    kw.setdefault("migrate_untracked", True)
    kw.setdefault("memmap_bytes_per_page", 0)
    return Machine(memory, cpus=1, spb=preset, **kw)


def stat(m, name):
    return int(m.mem.spb.stat[:, SPB_STAT[name]].sum())


def test_presets():
    assert SPB_PRESETS["v2"]["direct_compact_hook"] is True
    assert all(SPB_PRESETS[p]["direct_compact_hook"] is False for p in ("s1", "v1", "v1-pre43"))
    assert all(SPB_PRESETS[p]["highatomic_pass_2"] is True for p in ("s1", "v1", "v1-pre43", "v2"))


def _thp_needs_migration(hook):
    """Every page allocated (movable, migratable); then one pageblock of the
    top SPB free but for 8 pages, and 1,024 scattered order-0 pages in four
    other pageblocks of it: no free order-9 block anywhere, enough free
    memory for compaction_suitable()."""
    m = machine("v2", compaction=True, spb_set={"direct_compact_hook": hook})
    mem = m.mem
    zero_watermarks(m)
    pfns = np.sort(exhaust(m))
    top = int(pfns[-1]) >> SUPERPAGEBLOCK_ORDER << SUPERPAGEBLOCK_ORDER
    b = top + 5 * 512
    keep = set(range(b + 100, b + 108))
    room = np.array([q for q in range(b, b + 512) if q not in keep], np.int64)
    m.run_ops(np.zeros(room.size, np.int64), 0, pfns=room)
    c = top + 20 * 512
    targets = np.arange(c, c + 4 * 512, 2, dtype=np.int64)
    m.run_ops(np.zeros(targets.size, np.int64), 0, pfns=targets)
    assert int(mem.nr_free[:, 9:].sum()) == 0
    m.check()
    return m, b


def test_thp_direct_compaction_takes_a_clean_spb_range_through_sb_try_alloc_contig():
    m, b = _thp_needs_migration(hook=True)
    v0 = m.vmstat_counters()
    p = m.alloc(9, "GFP_TRANSHUGE")
    v = m.vmstat_counters()
    assert p == b                                   # the range with the fewest pages to move
    assert stat(m, "spb_thp_contig_success") == 1
    assert stat(m, "spb_thp_contig_migrated") == 8
    assert v["pgmigrate_success"] - v0["pgmigrate_success"] == 8
    assert v["compact_stall"] == v0["compact_stall"]     # no compaction ran
    assert int(m.mem.pb_mt[b >> 9]) == MIGRATE_MOVABLE
    m.check()
    m.free(p)
    m.check()


def test_without_the_hook_thp_direct_compaction_compacts():
    m, b = _thp_needs_migration(hook=False)
    v0 = m.vmstat_counters()
    m.alloc(9, "GFP_TRANSHUGE")
    assert stat(m, "spb_thp_contig_success") + stat(m, "spb_thp_contig_fail") == 0
    # async, then sync compaction: the free scanner's stride finds 16 of
    # the 256 free pages of each target block at first
    assert m.vmstat_counters()["compact_stall"] >= v0["compact_stall"] + 1
    m.check()


@pytest.mark.parametrize("hook", [False, True])
def test_high_order_unmovable_direct_compaction_evacuates_tainted_spbs_first(hook):
    m = machine("v2", compaction=True, spb_set={"direct_compact_hook": hook})
    z = int(m.mem.pb_zone[m.alloc(0, "GFP_KERNEL") >> 9])
    before = stat(m, "spb_evac_for_order")
    _res, page = direct_compact(m.mem, 2, GFP_KERNEL, ALLOC_WMARK_MIN, z, MIGRATE_UNMOVABLE,
                                C.COMPACT_PRIO_ASYNC, 0)
    assert stat(m, "spb_evac_for_order") - before == (1 if hook else 0)
    if page >= 0:                   # the free-list retry after compaction: hand it out
        prep_new_page(m.mem, page, 2, MIGRATE_UNMOVABLE, 0)
        m.free(int(page))
    m.check()


@pytest.mark.parametrize("on", [False, True])
def test_highatomic_runs_pass_2_and_claims_a_free_movable_block_of_a_tainted_spb(on):
    m = machine("v1", spb_set={"highatomic_pass_2": on})
    mem = m.mem
    p0 = m.alloc(0, "GFP_KERNEL")               # PASS_3 taints an empty SPB
    z = int(mem.pb_zone[p0 >> 9])
    reserved = int(mem.zstat[z, ZS_RESERVED_HIGHATOMIC])
    p = int(spb_rmqueue_highatomic(mem, z, 2))
    if not on:
        assert p == -1 and stat(m, "spb_highatomic_claims") == 0
        m.check()
        return
    assert p >= 0 and p >> SUPERPAGEBLOCK_ORDER == p0 >> SUPERPAGEBLOCK_ORDER
    assert int(mem.pb_mt[p >> 9]) == MIGRATE_HIGHATOMIC
    assert stat(m, "spb_highatomic_claims") == 1
    # claim_whole_block() does not count the block as reserved
    assert int(mem.zstat[z, ZS_RESERVED_HIGHATOMIC]) == reserved
    prep_new_page(mem, p, 2, MIGRATE_UNMOVABLE, 0)
    m.check()
    m.free(p)
    m.check()


def test_the_hook_leaves_a_zone_its_min_mark_and_lowmem_reserve():
    """[SIM] the THP-sized sb_try_alloc_contig() takes no block that would
    leave the zone under MIN + lowmem_reserve; it walks the zonelist down."""
    from spbsim.mm.page_alloc import spb_direct_compact_hook
    from spbsim.mm.state import ZS_NR_FREE, ZS_WMARK_MIN
    m, b = _thp_needs_migration(hook=True)
    mem = m.mem
    z = int(mem.pb_zone[b >> 9])
    mem.zstat[z, ZS_WMARK_MIN] = int(mem.zstat[z, ZS_NR_FREE]) - 511
    assert spb_direct_compact_hook(mem, 9, MIGRATE_MOVABLE, 2, 0) == -1
    assert stat(m, "spb_thp_contig_success") + stat(m, "spb_thp_contig_fail") == 0
    mem.zstat[z, ZS_WMARK_MIN] = 0
    p = spb_direct_compact_hook(mem, 9, MIGRATE_MOVABLE, 2, 0)
    assert p == b and stat(m, "spb_thp_contig_success") == 1
    prep_new_page(mem, p, 9, MIGRATE_MOVABLE, 0)
    m.check()
    m.free(int(p))
    m.check()
