"""migrate_pages() on -ENOMEM splits a large block (mm/split.py), and
alloc_contig_range() then migrates its base pages one by one; the pieces of a
split timed object follow migration and are freed with the object."""
import numpy as np
import pytest

from spbsim import Machine
from spbsim.mm.const import PG_head, PG_lru, SUPERPAGEBLOCK_NR_PAGES
from spbsim.mm.craft import exhaust, zero_watermarks
from spbsim import InvariantError
from spbsim.mm.split import free_object_pieces, split_isolated_block
from spbsim.mm.state import SIMSTAT, reset_piece_pool

OWNER_HUGE = 7


def _machine(memory="2G", **kw):
    return Machine(memory, cpus=1, early_unmovable=0, pcp=False, obj_capacity=4, **kw)


def _as_object(mem, pfn, oid):
    """Give a block to timed object ``oid`` as the engine's place() does."""
    mem.pg_obj[pfn] = oid
    mem.obj_pfn[oid] = pfn


def _free_object(mach, oid):
    mem = mach.mem
    freed = free_object_pieces(mem, oid, 0)
    head = int(mem.obj_pfn[oid])
    mem.obj_pfn[oid] = -1
    mach.free(head)
    return freed + 1


def test_split_isolated_block_makes_base_pages_and_pieces():
    m = _machine()
    mem = m.mem
    free0 = m.vmstat_counters()["nr_free_pages"]
    p = m.alloc(9, "GFP_HIGHUSER_MOVABLE")
    mem.pg_flags[p] &= 0xFF ^ PG_lru          # isolated (isolate_lru_page)
    _as_object(mem, p, 0)
    assert split_isolated_block(mem, p)
    assert (mem.pg_order[p:p + 512] == 0).all()
    assert (mem.pg_flags[p:p + 512] & PG_head).all()
    assert mem.pg_obj[p] == 0
    pieces = -2 - mem.pg_obj[p + 1:p + 512].astype(np.int64)
    assert len(set(pieces.tolist())) == 511 and (pieces >= 0).all()
    assert (mem.pc_pfn[pieces] == np.arange(p + 1, p + 512)).all()
    assert int(mem.pc_n[1]) == 511
    assert m.vmstat_counters()["thp_split_page"] == 1
    m.check()
    assert _free_object(m, 0) == 512
    assert int(mem.pc_n[1]) == 0 and int(mem.obj_pc[0]) == -1
    m.check()
    assert m.vmstat_counters()["nr_free_pages"] == free0


def test_api_block_without_reclaim_list_is_never_split():
    """Its caller frees it by (pfn, order): splitting it would leak pages."""
    m = _machine(migrate_untracked=True)
    mem = m.mem
    p = m.alloc(9, "GFP_HIGHUSER_MOVABLE")
    mem.pg_flags[p] &= 0xFF ^ PG_lru
    assert not split_isolated_block(mem, p)
    assert int(mem.pg_order[p]) == 9 and int(mem.pc_n[2]) == 0


def test_split_counts_pmd_sized_blocks_in_vmstat_and_all_in_sim():
    m = _machine()
    mem = m.mem
    for oid, order in ((0, 9), (1, 4)):
        p = m.alloc(order, "GFP_HIGHUSER_MOVABLE")
        mem.pg_flags[p] &= 0xFF ^ PG_lru
        _as_object(mem, p, oid)
        assert split_isolated_block(mem, p)
    assert m.vmstat_counters()["thp_split_page"] == 1
    assert int(mem.sim[SIMSTAT["sim_migrate_split"]]) == 2
    assert int(mem.pc_n[1]) == 511 + 15
    m.check()
    mem.pc_n[1] += 1                            # a leak the checker must see
    with pytest.raises(InvariantError, match="piece pool"):
        m.check()
    mem.pc_n[1] -= 1
    # rebuilding the state (as a placement replay's reset does) empties the pool
    for oid in (0, 1):
        free_object_pieces(mem, oid, 0)
        head = int(mem.obj_pfn[oid])
        mem.obj_pfn[oid] = -1
        m.free(head)
    reset_piece_pool(mem)
    assert int(mem.pc_n[0]) == 0 and int(mem.pc_n[1]) == 0
    m.check()


def test_split_refused_when_the_piece_pool_is_short():
    m = _machine(piece_capacity=100)
    mem = m.mem
    p = m.alloc(9, "GFP_HIGHUSER_MOVABLE")
    mem.pg_flags[p] &= 0xFF ^ PG_lru
    _as_object(mem, p, 0)
    assert not split_isolated_block(mem, p)
    assert int(mem.pg_order[p]) == 9 and int(mem.pc_n[2]) == 1 and int(mem.pc_n[1]) == 0
    assert m.vmstat_counters()["thp_split_page"] == 0


def _range_with_one_thp(split):
    """A 3 GB machine whose middle 1 GB range (the first that alloc_contig_1g
    tries) is free but for one movable order-9 object, while every other free
    page is an isolated order-0 page: no order-9 migration target exists."""
    m = _machine("3G", migrate_split_large=split)
    mem = m.mem
    zero_watermarks(m)
    pfns = exhaust(m)
    start = SUPERPAGEBLOCK_NR_PAGES
    inside = np.sort(pfns[(pfns >> 18) == 1])
    assert inside.size == SUPERPAGEBLOCK_NR_PAGES
    m.run_ops(np.zeros(inside.size, np.int64), 0, pfns=inside)
    p = m.alloc(9, "GFP_HIGHUSER_MOVABLE", owner=OWNER_HUGE)
    assert start <= p < 2 * start
    _as_object(mem, p, 0)
    outside = np.sort(pfns[(pfns >> 18) != 1])[::2]        # never two buddies
    m.run_ops(np.zeros(outside.size, np.int64), 0, pfns=outside)
    assert int(mem.nr_free[:, 1:].sum()) > 0                 # only inside the range
    m.check()
    return m, p


def test_contig_range_without_split_fails_on_the_large_target():
    m, p = _range_with_one_thp(split=False)
    assert m.alloc_contig_1g(owner=1) is None
    assert int(m.mem.pg_order[p]) == 9 and int(m.mem.obj_pfn[0]) == p
    assert m.vmstat_counters()["thp_migration_split"] == 0
    m.check()


def test_contig_range_splits_the_large_block_and_migrates_its_base_pages():
    m, p = _range_with_one_thp(split=True)
    mem = m.mem
    start = SUPERPAGEBLOCK_NR_PAGES
    got = m.alloc_contig_1g(owner=1)
    assert got == (start, 512)
    v = m.vmstat_counters()
    assert v["thp_migration_split"] == 1 and v["thp_split_page"] == 1
    assert v["pgmigrate_success"] == 512
    # the object now lives outside the range as 512 base pages
    where = [int(mem.obj_pfn[0])] + [int(mem.pc_pfn[i]) for i in range(mem.pc_pfn.shape[0])
                                     if mem.pc_pfn[i] >= 0]
    assert len(where) == 512 and all(q >> 18 != 1 for q in where)
    assert (mem.pg_order[where] == 0).all()
    assert int(mem.owner_pages[OWNER_HUGE]) == 512
    m.check()
    assert _free_object(m, 0) == 512
    assert int(mem.owner_pages[OWNER_HUGE]) == 0
    m.check()
    m.free_contig_1g(start)
    m.check()


@pytest.mark.parametrize("value", [-1, 2 ** 31])
def test_piece_capacity_is_validated(value):
    from spbsim.errors import ConfigError
    with pytest.raises(ConfigError, match="piece_capacity"):
        Machine("1G", cpus=1, piece_capacity=value)


SPLIT_SCENARIO = """
[scenario]
name = "split4g"
memory = "4G"
cpus = 2
duration = "23s"
seed = 1
early_unmovable = 0
migrate_split_large = {split}

[[source]]
name = "thp"
kind = "thp"
rate = "200MB/s"
lifetime = "inf"
limit = "1800MB"

[[source]]
name = "thp-short"
kind = "thp"
rate = "60MB/s"
lifetime = {{dist = "exp", mean = "8s"}}

[[source]]
name = "anon"
kind = "anon"
rate = "400MB/s"
lifetime = {{dist = "exp", mean = "3s"}}

[[source]]
name = "gb"
kind = "hugetlb_1g"
interval = "4s"
start = "14s"
lifetime = {{dist = "fixed", value = "3s"}}
"""


def test_engine_1g_attempts_split_thps_and_expire_their_pieces():
    """Memory full of THPs (some long-lived) and churning anon pages: a THP
    in a 1 GB range often finds no free order-9 block for its migration
    target, so without the split an attempt migrates much more of memory
    (and can fail); with it every attempt succeeds for fewer migrations,
    and split THPs that expire free all their base pages (the checker
    verifies the piece table)."""
    from spbsim.engine.run import Simulation
    from spbsim.scenario import scenario_from_text
    out = {}
    for split in (False, True):
        sc = scenario_from_text(SPLIT_SCENARIO.format(split=str(split).lower()), "split4g.toml")
        assert sc.migrate_split_large is split
        sim = Simulation(sc)
        r = sim.run()
        sim.machine.check()
        out[split] = (r, sim.machine.mem)
    (r0, _), (r1, m1) = out[False], out[True]
    assert r0["request_checksum"] == r1["request_checksum"]
    g0, g1 = r0["hugetlb_1g"], r1["hugetlb_1g"]
    assert g0["splits"] == 0 and r0["vmstat"]["thp_migration_split"] == 0
    # every split block here is a THP (order 9), so the vmstat counter agrees
    assert g1["splits"] > 0 and g1["splits"] == r1["vmstat"]["thp_migration_split"]
    assert g1["splits"] == r1["sim"]["sim_migrate_split"]
    assert g1["success"] == g1["attempts"] >= g0["success"]
    assert g1["attempt_migrated_pages"] < 0.75 * g0["attempt_migrated_pages"]
    for g in (g0, g1):
        assert g["attempt_migrated_pages"] >= g["migrated_pages"] > 0
        assert g["splits_refused"] == 0
    # some split THPs expired: their pieces went back to the pool
    assert 0 <= int(m1.pc_n[1]) < 511 * g1["splits"]


def test_scenario_key_migrate_split_large_is_validated():
    from spbsim.scenario import ScenarioError, scenario_from_text
    with pytest.raises(ScenarioError, match="scenario.migrate_split_large"):
        scenario_from_text('[scenario]\nmigrate_split_large = "maybe"\n', "s.toml")


# ---- the other migration paths: compaction and the SPB evacuation split too
# (migrate_pages_batch() splits on -ENOMEM for every reason but
# MR_NUMA_MISPLACED)

def _block_with_large_object(order, split, memory="1G", **kw):
    """Every page allocated; then a pageblock in the middle of the top zone
    holds a movable order-``order`` timed object at its start, and the zone's last
    pageblock 256 free order-0 pages (never two buddies): no free block of
    ``order`` exists anywhere.  Returns (machine, zone, object pfn)."""
    m = _machine(memory, migrate_split_large=split, **kw)
    mem = m.mem
    zero_watermarks(m)
    pfns = np.sort(exhaust(m))
    z = int(mem.pb_zone[pfns[-1] >> 9])
    zs, ze = int(mem.zone_start[z]), int(mem.zone_end[z])
    first = ((zs + ze) // 2) & ~511
    room = pfns[(pfns >= first) & (pfns < first + (1 << order))]
    assert room.size == 1 << order
    m.run_ops(np.zeros(room.size, np.int64), 0, pfns=room)
    p = m.alloc(order, "GFP_HIGHUSER_MOVABLE", owner=OWNER_HUGE)
    assert p == first
    _as_object(mem, p, 0)
    last = first + 16 * 512
    targets = pfns[(pfns >= last) & (pfns < last + 512)][::2]
    assert targets.size == 256
    m.run_ops(np.zeros(targets.size, np.int64), 0, pfns=targets)
    assert int(mem.nr_free[:, 1:].sum()) == 0
    m.check()
    return m, z, p


@pytest.mark.parametrize("split", [False, True])
def test_compaction_splits_a_large_folio_it_finds_no_target_for(split):
    """compact_memory (order -1) meets an order-4 folio with only order-0 free
    pages isolated: without the split nothing moves; with it the base pages
    move to the isolated pages above."""
    from spbsim.mm import compaction as C
    from spbsim.mm.const import MIGRATE_MOVABLE
    m, z, p = _block_with_large_object(4, split)
    mem = m.mem
    C.compact_zone(mem, z, -1, MIGRATE_MOVABLE, C.CC_SYNC | C.CC_WHOLE_ZONE | C.CC_IGNORE_SKIP,
                   0, -1)
    v = m.vmstat_counters()
    if not split:
        assert int(mem.pg_order[p]) == 4 and int(mem.obj_pfn[0]) == p
        assert v["pgmigrate_success"] == 0
        assert int(mem.sim[SIMSTAT["sim_migrate_split"]]) == 0
    else:
        assert int(mem.sim[SIMSTAT["sim_migrate_split"]]) == 1
        assert v["pgmigrate_success"] == 16
        assert v["thp_migration_split"] == 0                # not PMD-sized
        where = [int(mem.obj_pfn[0])] + [int(q) for q in mem.pc_pfn if q >= 0]
        assert len(where) == 16 and all(q >= p + 512 for q in where)
    m.check()
    assert _free_object(m, 0) == (16 if split else 1)      # blocks freed
    m.check()


@pytest.mark.parametrize("split", [False, True])
def test_spb_evacuation_splits_a_thp_it_finds_no_target_for(split):
    """evacuate_pageblock() (the SPB defrag worker, spb_evacuate_for_order):
    a THP filling the pageblock, only order-0 free pages elsewhere."""
    from spbsim.mm.spb.work import evacuate_pageblock
    m, z, p = _block_with_large_object(9, split)
    mem = m.mem
    moved = int(evacuate_pageblock(mem, p, 0))
    v = m.vmstat_counters()
    if not split:
        assert moved == 0 and int(mem.pg_order[p]) == 9 and int(mem.obj_pfn[0]) == p
        assert v["thp_migration_split"] == 0
    else:
        assert moved == 256                                 # as many as there were targets
        assert v["thp_migration_split"] == 1 and v["thp_split_page"] == 1
        assert v["pgmigrate_success"] == 256
    m.check()
    assert _free_object(m, 0) == (512 if split else 1)     # blocks freed
    m.check()
