"""The taint log ("who polluted it"): a fragmenting fallback pollutes a
pageblock in the name of the request that made it, a whole block in the
buddy is clean again, SPB list moves to and from the tainted lists are
logged, and a run writes taints.parquet and its summary."""
import numpy as np
import pytest

from spbsim import Machine
from spbsim.mm import gfp as G
from spbsim.mm.const import (MIGRATE_MOVABLE, MIGRATE_UNMOVABLE, pageblock_nr_pages,
                             pageblock_order)
from spbsim.mm.spb.lists import spb_list_is_tainted
from spbsim.mm.state import (CUR_GFP, CUR_ORDER, CUR_OWNER, ZS_MANAGED, TL, TL_PB_CLEAN, TL_PB_POLLUTED, TL_SPB_TAINTED,
                             TL_SPB_UNTAINTED, TL_STEAL)
from spbsim.observe.taints import TaintLog
from spbsim.policy import Policy

MOVABLE = "GFP_HIGHUSER_MOVABLE"


def fragmented_stock_machine():
    """A 1 GB stock machine whose free memory is order-0 holes in MOVABLE
    blocks: every movable page allocated, then every fourth one freed (a
    block keeps 384 of its 512 pages, so it cannot be claimed)."""
    m = Machine(memory="1G", cpus=1, pcp=False, compaction=False, reclaim=False,
                early_unmovable="0")
    n = int(m.mem.zstat[:, ZS_MANAGED].sum())
    pfns = m.run_ops(np.zeros(n, np.int64), G.GFP_HIGHUSER_MOVABLE, owner=5)
    pfns = np.sort(pfns[pfns >= 0])
    movable = m.mem.pb_mt[pfns >> pageblock_order] == MIGRATE_MOVABLE
    holes = pfns[movable & (pfns % 4 == 0)]
    res = m.run_ops(np.zeros(holes.size, np.int64), 0, pfns=holes)
    assert (res == 0).all()
    return m, pfns


def test_a_steal_pollutes_the_block_in_the_requests_name_and_a_whole_block_cleans_it():
    m, live = fragmented_stock_machine()
    log = TaintLog(m.mem, {7: "kmalloc"})
    log.drain()
    log.chunks.clear()
    # unmovable requests use up the unmovable free pages, then steal
    kernel = []
    while True:
        pfn = m.alloc(0, "GFP_KERNEL", owner=7)
        assert pfn is not None and len(kernel) < 100_000
        if m.mem.pb_mt[pfn >> pageblock_order] == MIGRATE_MOVABLE:
            break                                            # stolen, not claimed
        kernel.append(pfn)
    pb = pfn >> pageblock_order
    r = log.rows()
    pol = r[r[:, TL["event"]] == TL_PB_POLLUTED]
    # every pollution so far is this source's, out of a MOVABLE block (a
    # block with enough free pages may have been claimed on the way)
    assert (pol[:, TL["owner"]] == 7).all()
    assert (pol[:, TL["fallback_migratetype"]] == MIGRATE_MOVABLE).all()
    row = pol[-1]
    assert row[TL["index"]] == pb and row[TL["owner"]] == 7
    assert row[TL["cause"]] == TL_STEAL and row[TL["order"]] == 0
    assert row[TL["migratetype"]] == MIGRATE_UNMOVABLE
    assert row[TL["fallback_migratetype"]] == MIGRATE_MOVABLE
    assert m.mem.pb_taint[pb] == 8
    # a second steal from the same block is not a new pollution
    again = m.alloc(0, "GFP_KERNEL", owner=9)
    if again is not None and again >> pageblock_order == pb:
        assert (log.rows()[:, TL["event"]] == TL_PB_POLLUTED).sum() == len(pol)
        m.free(again)
    m.check()
    # free every allocated page of the block: it merges whole, clean again
    start = pb * pageblock_nr_pages
    mine = [p for p in live if start <= p < start + pageblock_nr_pages and p % 4 != 0]
    m.free(pfn)
    for p in mine:
        m.free(int(p))
    assert m.mem.pb_taint[pb] == 0
    r = log.rows()
    clean = r[(r[:, TL["event"]] == TL_PB_CLEAN) & (r[:, TL["index"]] == pb)]
    assert len(clean) == 1 and clean[0][TL["owner"]] == -1
    m.check()
    s = log.summary()
    assert s["pageblocks_polluted_by_source"] == {"kmalloc": len(pol)}
    assert s["pageblocks_polluted_by_cause"]["steal"] >= 1
    assert s["polluted_now_by_source"] == ({"kmalloc": len(pol) - 1} if len(pol) > 1 else {})


def test_a_migration_target_does_not_take_over_the_request_it_serves():
    """alloc_contig_range() allocates migration targets inside the caller's
    request (each in the migrated page's owner's name) and then restores the
    caller's context, so what the caller does next is still the caller's."""
    m = Machine(memory="4G", cpus=1, reclaim=False, migrate_untracked=True)
    n = int(m.mem.zstat[:, ZS_MANAGED].sum())
    pfns = m.run_ops(np.zeros(n, np.int64), G.GFP_HIGHUSER_MOVABLE, owner=21)
    pfns = pfns[pfns >= 0]
    drop = pfns[np.random.default_rng(1).random(pfns.size) < 0.8]
    assert (m.run_ops(np.zeros(drop.size, np.int64), 0, pfns=drop) == 0).all()
    m.mem.cur[CUR_OWNER], m.mem.cur[CUR_GFP], m.mem.cur[CUR_ORDER] = 13, 0x40, 3
    got = m.alloc_contig_1g(owner=13)
    assert got is not None and got[1] > 0           # pages of owner 21 migrated
    assert list(m.mem.cur[[CUR_OWNER, CUR_GFP, CUR_ORDER]]) == [13, 0x40, 3]
    m.check()


@pytest.mark.parametrize("policy", ["spb:v1", "spb:s1"])
def test_spb_taints_and_untaints_alternate_and_match_the_lists(policy):
    """Random streams: per SPB slot the logged moves alternate (tainted,
    untainted, tainted, ...) and the last one says whether the slot is on a
    tainted list now; DEBUG_VM (pageblock taint marks included) holds."""
    kw = Policy.parse(policy).machine_kwargs()
    m = Machine(memory="4G", cpus=2, **kw)
    spb = m.mem.spb
    boot = [spb_list_is_tainted(int(spb.list_id[i])) for i in range(spb.start_pfn.size)]
    log = TaintLog(m.mem, {})
    boot_rows = log.rows()           # the boot-time kernel allocations' moves
    assert set(boot_rows[:, TL["owner"]]) <= {0, 1}     # boot frees, early kernel
    log.chunks.clear()
    rng = np.random.default_rng(3)
    gfps = ["GFP_KERNEL", MOVABLE, "GFP_KERNEL_ACCOUNT", MOVABLE, "GFP_NOFS", MOVABLE]
    # unmovable memory beyond one SPB's worth: new SPBs must be tainted
    live = []
    for _ in range(1200):
        pfn = m.alloc(pageblock_order, "GFP_KERNEL", owner=30)
        if pfn is not None:
            live.append((pfn, pageblock_order))
    for i in range(15_000):
        if live and (rng.random() < 0.4 or len(live) > 40_000):
            pfn, order = live.pop(int(rng.integers(len(live))))
            m.free(pfn, order, cpu=int(rng.integers(2)))
        else:
            order = int(rng.choice([0, 0, 0, 1, 2, 3, 9]))
            pfn = m.alloc(order, gfps[int(rng.integers(len(gfps)))], cpu=int(rng.integers(2)),
                          owner=20 + order)
            if pfn is not None:
                live.append((pfn, order))
        if i % 5000 == 4999:
            m.check()
    for pfn, order in live:
        m.free(pfn, order)
    m.check()
    r = log.rows()
    ev = r[:, TL["event"]]
    moves = r[(ev == TL_SPB_TAINTED) | (ev == TL_SPB_UNTAINTED)]
    assert len(moves) > 0
    for i in range(spb.start_pfn.size):
        mine = moves[moves[:, TL["index"]] == i][:, TL["event"]]
        state = boot[i]
        for e in mine:
            assert e == (TL_SPB_UNTAINTED if state else TL_SPB_TAINTED)
            state = not state
        assert state == spb_list_is_tainted(int(spb.list_id[i]))
    tainted = moves[moves[:, TL["event"]] == TL_SPB_TAINTED]
    assert set(tainted[:, TL["owner"]]) <= {0, 30} | {20 + o for o in (0, 1, 2, 3, 9)}
    assert 30 in set(tainted[:, TL["owner"]])
    # every pageblock marked polluted now has its pollution row, and no more
    pol = r[ev == TL_PB_POLLUTED]
    cln = r[ev == TL_PB_CLEAN]
    marked = np.flatnonzero(m.mem.pb_taint)
    net = np.bincount(pol[:, TL["index"]], minlength=m.mem.pb_taint.size) \
        - np.bincount(cln[:, TL["index"]], minlength=m.mem.pb_taint.size)
    assert set(np.flatnonzero(net)) == set(marked) and set(net[marked]) <= {1}


def test_a_run_writes_taints_parquet_that_adds_up_to_its_summary(tmp_path):
    import pyarrow.parquet as pq
    from spbsim.engine.rundir import run_into
    from spbsim.engine.run import Simulation
    from spbsim.scenario import load_scenario
    sc = load_scenario("small-vm", overrides={"scenario.duration": "70s"})
    sim = Simulation(sc, policy="stock")      # memory is full from about 50 s
    summary = run_into(sim, tmp_path, {"scenario": "small-vm"})
    t = pq.read_table(tmp_path / "taints.parquet").to_pandas()
    tz = summary["taints"]
    assert len(t) == sum(tz["events"].values()) and tz["dropped"] == 0
    pol = t[t.event == "pageblock_polluted"]
    assert len(pol) == tz["events"]["pageblock_polluted"] > 0
    assert pol.source.astype(str).value_counts().to_dict() == tz["pageblocks_polluted_by_source"]
    sources = {s.name for s in sc.sources}
    assert set(pol.source) <= sources | {"(early kernel)", "(no request)"}
    assert (t.t_s.diff().dropna() >= 0).all()
    assert set(t.spb_pass) == {"-"} and set(pol.cause) <= {"claim", "steal", "capture"}
    assert set(pol.fallback_migratetype) <= {"Unmovable", "Movable", "Reclaimable"}
    assert (pol.migratetype != pol.fallback_migratetype).all()
    with np.load(tmp_path / "pageblocks.npz") as z:
        now = z["pb_taint"]
    assert int((now > 0).sum()) == sum(tz["polluted_now_by_source"].values())
