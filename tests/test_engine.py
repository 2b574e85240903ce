"""Simulated time: sources' statistical shape, pairing of request streams,
reclaim and compaction behaviour under pressure, 1 GB contiguous allocation."""
import numpy as np
import pytest

from spbsim import Machine
from spbsim.engine.run import Simulation
from spbsim.engine.sources import RequestStream
from spbsim.mm import gfp as G
from spbsim.mm.const import PG_head, PG_MT_SHIFT, SUPERPAGEBLOCK_NR_PAGES
from spbsim.mm.state import PCP_COUNT, ZSTAT
from spbsim.scenario import scenario_from_text

BASE = """
[scenario]
name = "t"
memory = "{memory}"
cpus = 4
duration = "{duration}"
seed = {seed}
sample_interval = "1s"
"""


def scenario(body, memory="2G", duration="10s", seed=1, **kw):
    return scenario_from_text(BASE.format(memory=memory, duration=duration, seed=seed) + body,
                              "t.toml")


from workloads import PRESSURE_SOURCES as PRESSURE  # noqa: E402


def test_source_shape_counts_orders_lifetimes():
    sc = scenario("""
[[source]]
name = "a"
kind = "unmovable"
rate = 50000
orders = {0 = 0.6, 1 = 0.3, 3 = 0.1}
lifetime = {dist = "exp", mean = "2s"}
""", duration="4s")
    rs = RequestStream(sc)
    reqs = [rs.tick(k * 0.01, (k + 1) * 0.01) for k in range(400)]
    order = np.concatenate([r["order"] for r in reqs])
    life = np.concatenate([r["life_ns"] for r in reqs]) / 1e9
    t = np.concatenate([r["t_ns"] for r in reqs])
    n = order.size
    assert abs(n - 200_000) < 5 * np.sqrt(200_000)
    for o, p in ((0, 0.6), (1, 0.3), (3, 0.1)):
        assert abs((order == o).mean() - p) < 0.01
    assert abs(life.mean() - 2.0) < 0.05
    assert (np.diff(t) >= 0).all() and t.min() >= 0 and t.max() < 4e9
    cpu = np.concatenate([r["cpu"] for r in reqs])
    assert set(np.unique(cpu)) == {0, 1, 2, 3}


def test_phases_and_limits_shape_the_stream():
    sc = scenario("""
[[source]]
name = "a"
kind = "anon"
rate = 1000
lifetime = "inf"
[[phase]]
name = "x"
start = "2s"
stop = "3s"
scale = {a = 5.0}
""", duration="4s")
    rs = RequestStream(sc)
    per_s = [sum(rs.tick(s + k * 0.01, s + (k + 1) * 0.01)["t_ns"].size for k in range(100))
             for s in range(4)]
    assert 4000 < per_s[2] < 6000 and all(700 < per_s[i] < 1300 for i in (0, 1, 3))


def test_identical_requests_whatever_the_allocator_does():
    """Pairing: the request checksum does not depend on the machine's behaviour."""
    sc = scenario(PRESSURE)
    a = Simulation(sc).run()
    b = Simulation(sc, machine_overrides=dict(defrag_mode=True, version="6.12",
                                              compaction=False)).run()
    assert a["request_checksum"] == b["request_checksum"]
    assert a["requests"] == b["requests"]
    c = Simulation(scenario(PRESSURE, seed=2)).run()
    assert c["request_checksum"] != a["request_checksum"]


def test_same_seed_same_run():
    sc = scenario(PRESSURE, duration="5s")
    s1, s2 = Simulation(sc), Simulation(sc)
    s1.run()
    s2.run()
    assert s1.machine.checksum() == s2.machine.checksum()


class Recorder:
    def __init__(self):
        self.rows = []

    def append_sample(self, row):
        self.rows.append(row)


def test_reclaim_keeps_free_memory_above_min_under_pressure():
    """kswapd (and direct reclaim) keep every zone above its MIN watermark while
    page cache fills memory; the file LRU is reclaimed, memory stays full."""
    sc = scenario(PRESSURE, duration="15s")
    sim = Simulation(sc, writer=Recorder())
    sim.run()
    m = sim.machine.mem
    mins = int(m.zstat[:, ZSTAT["wmark_min"]].sum())
    rows = sim.writer.rows
    assert all(r["free_pages"] >= mins for r in rows)
    last = rows[-1]
    assert last["pgsteal_kswapd"] > 0
    assert last["free_pages"] < 0.1 * int(m.zstat[:, ZSTAT["managed"]].sum())
    assert last["oom_kill"] == 0
    sim.machine.check()


def test_compaction_moves_only_movable_pages():
    """compact_memory: every unmovable block stays where it is; movable ones move
    and high-order free blocks appear."""
    m = Machine("2G", cpus=2, pcp=False, early_unmovable=0, seed=3, migrate_untracked=True)
    rng = np.random.default_rng(3)
    n = 200_000
    gfp = np.where(rng.random(n) < 0.97, G.GFP_HIGHUSER_MOVABLE, G.GFP_KERNEL)
    pfns = m.run_ops(np.zeros(n, np.int64), gfp)
    keep = rng.random(n) < 0.3
    m.run_ops(np.zeros((~keep).sum(), np.int64), 0, pfns=pfns[~keep])
    heads = np.flatnonzero(m.mem.pg_flags & PG_head)
    unmov_before = heads[((m.mem.pg_flags[heads] >> PG_MT_SHIFT) & 3) == 0]
    high_before = int(m.mem.nr_free[:, 9:].sum())
    m.compact_memory()
    m.check()
    heads = np.flatnonzero(m.mem.pg_flags & PG_head)
    unmov_after = heads[((m.mem.pg_flags[heads] >> PG_MT_SHIFT) & 3) == 0]
    np.testing.assert_array_equal(unmov_before, unmov_after)
    assert m.vmstat_counters()["pgmigrate_success"] > 0
    assert int(m.mem.nr_free[:, 9:].sum()) > high_before


def test_alloc_contig_1g_migrates_movable_pages_and_frees_back():
    """alloc_contig_range: isolate, migrate the movable blocks out, take the
    range; freeing it gives the memory back."""
    from spbsim.mm.craft import exhaust
    m = Machine("4G", cpus=2, early_unmovable=0, pcp=False, migrate_untracked=True)
    pfns = exhaust(m)
    m.run_ops(np.zeros(pfns.size // 2, np.int64), 0, pfns=pfns[::2])
    free_before = m.vmstat_counters()["nr_free_pages"]
    got = m.alloc_contig_1g()
    assert got is not None
    start, migrated = got
    assert start % SUPERPAGEBLOCK_NR_PAGES == 0
    assert migrated > 0.3 * SUPERPAGEBLOCK_NR_PAGES       # about half the range was in use
    assert m.vmstat_counters()["pgmigrate_success"] == migrated
    m.check()
    m.free_contig_1g(start)
    m.check()
    assert m.vmstat_counters()["nr_free_pages"] == free_before


def _lru_pfns(mem, lru):
    out, p = [], int(mem.lru_head[lru])
    while p >= 0:
        out.append(p)
        p = int(mem.pg_next[p])
    return out


def _relink_lru(mem, lru, pfns):
    """Rewrite one LRU list in the given order (head first)."""
    prev = -1
    for p in pfns:
        mem.pg_prev[p] = prev
        if prev >= 0:
            mem.pg_next[prev] = p
        prev = p
    mem.pg_next[prev] = -1
    mem.lru_head[lru], mem.lru_tail[lru] = pfns[0], prev


def test_alloc_contig_range_isolates_its_blocks_from_reclaim():
    """isolate_migratepages_range(): the range's blocks leave the LRU before
    migration targets are allocated.  Memory is full of page cache, the
    range's blocks are made the oldest on the LRU (reclaim's first choice) and
    every other free page is taken, so the first target allocation needs
    direct reclaim.  Before the fix that reclaim freed the very block being
    moved, which was then migrated anyway: a double free, caught by the
    checker's struct-page-flags vs. list counts."""
    from spbsim.mm.craft import exhaust
    from spbsim.mm.state import CFG, LRU_FILE
    sc = scenario("""
[[source]]
name = "pagecache"
kind = "pagecache"
rate = "1500MB/s"
lifetime = "inf"
""", memory="4G", duration="6s")
    sim = Simulation(sc)
    sim.run()
    mach, mem = sim.machine, sim.machine.mem
    start, end = SUPERPAGEBLOCK_NR_PAGES, 2 * SUPERPAGEBLOCK_NR_PAGES
    for lru in range(mem.lru_head.shape[0]):
        pfns = _lru_pfns(mem, lru)
        if pfns:
            inside = sorted((p for p in pfns if start <= p < end), reverse=True)
            _relink_lru(mem, lru, [p for p in pfns if not start <= p < end] + inside)
    assert mem.lru_tail[LRU_FILE] == start             # the file LRU's oldest block
    mem.cfg[CFG["reclaim"]] = 0                       # take the free pages without reclaim
    free = int(mem.zstat[:, ZSTAT["nr_free_pages"]].sum() + mem.pcp[:, :, PCP_COUNT].sum())
    exhaust(mach, tries=free + 64)
    mem.cfg[CFG["reclaim"]] = 1
    mach.check()
    heads = np.flatnonzero(mem.pg_flags[start:end] & PG_head) + start
    in_use = int((1 << mem.pg_order[heads].astype(np.int64)).sum())
    assert in_use == SUPERPAGEBLOCK_NR_PAGES
    got = mach.alloc_contig_1g(owner=1)
    assert got == (start, in_use)
    v = mach.vmstat_counters()
    assert v["pgsteal_direct"] > 0                  # targets needed direct reclaim
    assert v["pgmigrate_success"] == in_use
    mach.check()


def test_api_blocks_are_not_migrated_by_default():
    """Blocks handed out through the API keep their pfn: compaction leaves them."""
    m = Machine("1G", cpus=1, pcp=False, early_unmovable=0)
    r = m.run_ops(np.zeros(50_000, np.int64), G.GFP_HIGHUSER_MOVABLE)
    m.run_ops(np.zeros(25_000, np.int64), 0, pfns=r[::2])
    m.compact_memory()
    assert (m.mem.pg_flags[r[1::2]] & PG_head).all()
    assert m.vmstat_counters()["pgmigrate_success"] == 0


def test_alloc_contig_1g_refuses_ranges_with_unmovable_pages():
    m = Machine("4G", cpus=1, early_unmovable=0, pcp=False, migrate_untracked=True)
    r = m.run_ops(np.zeros(3000, np.int64), G.GFP_KERNEL)
    tainted = set((r >> 18).tolist())
    got = m.alloc_contig_1g()
    assert got is None or (got[0] >> 18) not in tainted
    heads = m.mem.pg_flags[r] & PG_head
    assert heads.all(), "the unmovable pages were not moved"


def order0_free_memory(sim):
    """Fill the simulation's machine with unmovable pages and free every other
    one: its free memory is order-0 pages only (watermarks zeroed)."""
    from spbsim.mm.craft import exhaust, zero_watermarks
    m = sim.machine
    zero_watermarks(m)
    r = exhaust(m, G.GFP_KERNEL)
    m.drain_pcp()
    m.run_ops(np.zeros(r.size // 2, np.int64), 0, pfns=np.sort(r)[::2])
    assert m.mem.nr_free[:, 1:].sum() == 0
    return m


def test_thp_faults_fall_back_to_base_pages():
    """A failed order-9 THP fault maps 512 base pages instead (counted): memory
    made of free pages no larger than order 0, no compaction."""
    sc = scenario("""
[[source]]
name = "thp"
kind = "thp"
rate = 20
lifetime = "inf"
""", memory="1G", duration="2s")
    sim = Simulation(sc, machine_overrides=dict(compaction=False, swap=False))
    m = order0_free_memory(sim)
    s = sim.run()
    src = s["sources"]["thp"]
    assert s["vmstat"]["thp_fault_fallback"] == src["fails"] == src["requests"] > 0
    assert src["fallback_pages"] == 512 * src["fallbacks"]
    m.check()


def test_page_cache_large_folios_ask_with_noretry_and_fall_back_to_small_folios():
    """A large page-cache folio is asked for with __GFP_NORETRY | __GFP_NOWARN
    (readahead_gfp_mask(), __filemap_get_folio() above the minimum order);
    when it fails, readahead reads the range as order-0 folios
    (do_page_cache_ra()) with the source's own gfp.  Memory made of free
    order-0 pages, no compaction: every order-4 folio falls back."""
    sc = scenario("""
[[source]]
name = "files"
kind = "pagecache"
rate = 20
orders = 4
lifetime = "inf"
""", memory="1G", duration="2s")
    from spbsim.mm.state import EV
    sim = Simulation(sc, machine_overrides=dict(compaction=False, swap=False, trace=True))
    m = order0_free_memory(sim)
    start = int(m.mem.ev_n[0])
    s = sim.run()
    src = s["sources"]["files"]
    assert src["fails"] == src["requests"] == src["fallbacks"] > 0
    assert src["fallback_pages"] == 16 * src["fallbacks"] and src["pages_allocated"] == 0
    ev = m.mem.ev[start:int(m.mem.ev_n[0])]
    allocs = ev[ev[:, 0] == EV["mm_page_alloc"]]
    large, small = allocs[allocs[:, 4] == 4], allocs[allocs[:, 4] == 0]
    assert len(large) == src["requests"] and len(small) == src["fallback_pages"]
    noretry = G.__GFP_NORETRY | G.__GFP_NOWARN
    assert ((large[:, 5] & noretry) == noretry).all()
    assert (small[:, 5] == G.GFP_HIGHUSER_MOVABLE).all()
    m.check()


def test_interrupt_leaves_a_loadable_results_directory(tmp_path):
    from spbsim.results import ResultsWriter, load
    sc = scenario(PRESSURE, duration="5s")
    out = tmp_path / "r"
    with pytest.raises(KeyboardInterrupt):
        with ResultsWriter(out, {"x": 1}) as w:
            sim = Simulation(sc, writer=w)

            def boom(t, total, n):
                if t > 2:
                    raise KeyboardInterrupt
            sim.progress = boom
            s = sim.run()          # stops early, returns a summary
            assert s["interrupted"]
            raise KeyboardInterrupt
    res = load(out)
    assert not res.complete and len(res.timeseries) >= 3


def test_movable_order_census_is_consistent():
    from spbsim.observe.census import hugepage_availability, movable_order_census
    m = Machine("4G", cpus=1)
    c = movable_order_census(m.mem)
    h = hugepage_availability(m.mem)
    assert c[9]["free"] == h["2m_free"] and c[18]["obtainable"] == h["1g_obtainable"]
    for o in range(9, 18):     # a free range of order o+1 is two free ranges of order o
        assert c[o]["free"] >= 2 * c[o + 1]["free"]
        assert c[o]["obtainable"] >= c[o]["free"]


@pytest.mark.parametrize("name", ["devvm-256g", "kbuild", "webserver", "fragment-then-1g",
                                  "oracle-mixed", "small-vm"])
def test_every_builtin_scenario_runs(name):
    """Each built-in, shortened to 3 simulated seconds on a 4 GB machine (the
    full runs are measured in docs/findings.md), runs and leaves a consistent machine."""
    from spbsim.scenario import load_scenario
    sc = load_scenario(name, {"scenario.duration": "3s", "scenario.memory": "4G"})
    sim = Simulation(sc)
    s = sim.run()
    assert s["requests"] > 0 and s["simulated_s"] == 3.0
    sim.machine.check()
