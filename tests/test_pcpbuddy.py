"""PCPBuddy (per-cpu owned pageblocks, Johannes Weiner's RFC and the SPB
series' S1 and v2 21 forms): owner routing of frees, the merge pass, phases
0-3 of rmqueue_bulk, ownership ending when a block is whole again, and the
DEBUG_VM checker over random streams with the switch on."""
import numpy as np
import pytest

from spbsim import Machine
from spbsim.errors import ConfigError
from spbsim.mm.const import (MIGRATE_MOVABLE, MIGRATE_PCPTYPES, MIGRATE_UNMOVABLE,
                             PCPBUDDY_ADOPT, PCPBUDDY_RFC, PCPBUDDY_S1, PG_pcp, PG_pcpbuddy,
                             pageblock_nr_pages, pageblock_order)
from spbsim.mm.state import CFG
from spbsim.policy import Policy

MOVABLE = "GFP_HIGHUSER_MOVABLE"


def machine(**kw):
    kw.setdefault("memory", "1G")
    kw.setdefault("cpus", 2)
    kw.setdefault("pcpbuddy", True)
    kw.setdefault("compaction", False)
    return Machine(**kw)


def pcp_entries(m, cpu, pindex, zone=None):
    """(zone, pfn) of every entry on one pcp list of ``cpu``."""
    out = []
    zones = range(m.mem.pcp_head.shape[0]) if zone is None else [zone]
    for z in zones:
        p = m.mem.pcp_head[z, cpu, pindex]
        while p >= 0:
            out.append((z, int(p)))
            p = m.mem.pg_next[p]
    return out


def owned_list(m, z, cpu):
    out = []
    b = m.mem.pcp_own_head[z, cpu]
    while b >= 0:
        out.append(int(b))
        b = m.mem.pb_own_next[b]
    return out


def test_a_thp_refill_claims_two_whole_blocks_owned_by_the_cpu():
    """nr_pcp_alloc(order 9) = 2 blocks: pages_needed 1024, phase 1 claims two
    whole pageblocks, both owned by cpu 1 and PagePCPBuddy."""
    m = machine()
    before = m.sim_counters()["sim_pcpbuddy_phase1_blocks"]
    pfn = m.alloc(pageblock_order, MOVABLE, cpu=1)
    assert pfn is not None
    assert m.sim_counters()["sim_pcpbuddy_phase1_blocks"] - before == 2
    assert m.mem.pb_cpu[pfn >> pageblock_order] == 2          # cpu 1 + 1
    left = pcp_entries(m, 1, MIGRATE_PCPTYPES * pageblock_order + MIGRATE_MOVABLE)
    assert len(left) == 1
    z, other = left[0]
    assert m.mem.pb_cpu[other >> pageblock_order] == 2
    assert m.mem.pg_flags[other] & PG_pcpbuddy
    m.check()


def test_without_the_switch_nothing_is_owned():
    m = machine(pcpbuddy=False)
    m.alloc(pageblock_order, MOVABLE, cpu=1)
    for _ in range(2000):
        m.alloc(0, MOVABLE, cpu=0)
    assert not m.mem.pb_cpu.any()
    assert m.sim_counters()["sim_pcpbuddy_phase1_blocks"] == 0
    m.check()


def test_a_remote_free_goes_to_the_owner_and_the_drain_merges_the_block_back():
    """An order-0 page split on cpu 0's list from an owned block, freed on
    cpu 1, lands on cpu 0's list (PagePCPBuddy); draining cpu 0 merges the
    pieces on the pcp up to the whole block, which goes back to the buddy
    whole and so loses its owner."""
    m = machine()
    m.alloc(pageblock_order, MOVABLE, cpu=0)            # leaves one owned block on cpu 0
    z, block = pcp_entries(m, 0, MIGRATE_PCPTYPES * pageblock_order + MIGRATE_MOVABLE)[0]
    page = m.alloc(0, MOVABLE, cpu=0)
    assert page == block                                  # split from that block's head
    assert m.mem.pg_flags[block + 1] & PG_pcpbuddy       # the order-0 buddy half, on the list
    c0 = m.sim_counters()
    m.free(page, 0, cpu=1)
    assert m.sim_counters()["sim_pcp_remote_owner_frees"] - c0["sim_pcp_remote_owner_frees"] == 1
    assert (z, page) in pcp_entries(m, 0, MIGRATE_MOVABLE)          # cpu 0's order-0 list
    assert m.mem.pg_flags[page] & (PG_pcp | PG_pcpbuddy) == PG_pcp | PG_pcpbuddy
    # the merge pass's work, counted: the freed page and its order-0 buddy;
    # the split's upper halves have no buddy on the list
    assert m.mem.pcp_pairs[z, 0].tolist() == [1] + [0] * (pageblock_order - 1)
    m.check()
    m.drain_pcp()
    assert not m.mem.pcp_pairs.any()
    c1 = m.sim_counters()
    assert c1["sim_pcp_merges"] - c0["sim_pcp_merges"] >= pageblock_order
    assert m.mem.pb_cpu[block >> pageblock_order] == 0
    assert c1["sim_pcpbuddy_disown"] > c0["sim_pcpbuddy_disown"]
    assert m.mem.pcp[:, :, 0].sum() == 0
    m.check()


def test_a_partial_drain_lists_the_block_and_phase_0_recovers_its_fragments():
    """With one page of the owned block still in use, the drain sends the
    other 511 pages to the buddy as fragments (at the list tails) and puts the
    block on cpu 0's owned_blocks; the block keeps its owner.  The next
    multi-block refill of that type on cpu 0 takes every fragment back
    (phase 0) and the block leaves the list."""
    m = machine()
    m.alloc(pageblock_order, MOVABLE, cpu=0)
    z, block = pcp_entries(m, 0, MIGRATE_PCPTYPES * pageblock_order + MIGRATE_MOVABLE)[0]
    page = m.alloc(0, MOVABLE, cpu=0)
    assert page == block
    m.drain_pcp()
    pb = block >> pageblock_order
    assert m.mem.pb_cpu[pb] == 1
    assert pb in owned_list(m, z, 0)      # (with the boot's unmovable blocks of cpu 0)
    assert all(m.mem.pb_mt[b] != MIGRATE_MOVABLE for b in owned_list(m, z, 0) if b != pb)
    assert m.sim_counters()["sim_pcpbuddy_frag_drains"] >= 1
    m.check()
    c0 = m.sim_counters()["sim_pcpbuddy_phase0_pages"]
    m.alloc(0, MOVABLE, cpu=0)
    assert m.sim_counters()["sim_pcpbuddy_phase0_pages"] - c0 == pageblock_nr_pages - 1
    assert pb not in owned_list(m, z, 0)
    assert m.mem.pb_cpu[pb] == 1
    m.check()


def test_a_free_of_an_owned_page_after_the_owner_drained_still_goes_to_the_owner():
    m = machine()
    blk = m.alloc(pageblock_order, MOVABLE, cpu=0)
    m.free(blk, pageblock_order, cpu=1)                   # owned: back to cpu 0's list
    assert m.mem.pg_flags[blk] & PG_pcpbuddy
    assert any(p == blk for _, p in pcp_entries(
        m, 0, MIGRATE_PCPTYPES * pageblock_order + MIGRATE_MOVABLE))
    m.check()


def _fragments_then_pcpbuddy(mode, **kw):
    """One order-0 GFP_KERNEL allocation with the pcp lists off claims a
    pageblock for UNMOVABLE and leaves its other 511 pages in the buddy as
    one free chunk of each order 0-8, unowned; then PCPBuddy ``mode`` and the
    pcp lists go on."""
    m = machine(pcpbuddy=False, pcp=False, **kw)
    first = m.alloc(0, "GFP_KERNEL", cpu=0)
    m.mem.cfg[CFG["pcp_enabled"]] = 1
    m.mem.cfg[CFG["pcpbuddy"]] = mode
    return m, first


def _cpu_entries(m, cpu):
    """(pindex, pfn) of every entry on ``cpu``'s lists, every zone."""
    return [(pi, p) for pi in range(m.mem.pcp_head.shape[2]) for _, p in pcp_entries(m, cpu, pi)]


def test_rfc_phase_2_takes_chunks_of_the_type_whole_without_owning_them():
    """Johannes' RFC: an order-0 unmovable refill smaller than a pageblock
    takes the largest chunks of the UNMOVABLE lists that fit the need, whole
    (lists of their own order), with no owner and no PagePCPBuddy; no steal;
    phase 3 fills what no free chunk fits.
    S1's form (no phase 2) fills the same refill with order-0 pages."""
    m, first = _fragments_then_pcpbuddy(PCPBUDDY_RFC)
    c0 = m.sim_counters()
    page = m.alloc(0, "GFP_KERNEL", cpu=1)
    c1 = m.sim_counters()
    got = c1["sim_pcpbuddy_phase2_pages"] - c0["sim_pcpbuddy_phase2_pages"]
    entries = _cpu_entries(m, 1)
    plain = c1["sim_pcpbuddy_phase3_pages"] - c0["sim_pcpbuddy_phase3_pages"]
    assert got > plain      # phase 3 splits a larger chunk for what no chunk fits
    assert sum(1 << (pi // MIGRATE_PCPTYPES) for pi, _ in entries) == got + plain - 1
    assert max(pi // MIGRATE_PCPTYPES for pi, _ in entries) > 0     # chunks, not pages
    assert all(pi % MIGRATE_PCPTYPES == MIGRATE_UNMOVABLE for pi, _ in entries)
    assert all(not m.mem.pg_flags[p] & PG_pcpbuddy for _, p in entries)
    assert not m.mem.pb_cpu.any()
    assert page >> pageblock_order == first >> pageblock_order
    assert c1["sim_steal"] == c0["sim_steal"]
    m.check()
    s1, _ = _fragments_then_pcpbuddy(PCPBUDDY_S1)
    s1.alloc(0, "GFP_KERNEL", cpu=1)
    assert s1.sim_counters()["sim_pcpbuddy_phase2_pages"] == 0
    assert {pi // MIGRATE_PCPTYPES for pi, _ in _cpu_entries(s1, 1)} == {0}


def test_v2_21_phase_2_adopts_the_partly_free_block_of_a_tainted_spb():
    """v2 21/40 under SPBs: the unmovable refill on cpu 1 takes the chunks of
    the partly free UNMOVABLE block in the tainted SPB, takes the block into
    cpu 1's ownership and marks the chunks PagePCPBuddy; a movable refill
    does not run phase 2."""
    m, first = _fragments_then_pcpbuddy(PCPBUDDY_ADOPT, memory="4G", spb="v1")
    pb = first >> pageblock_order
    assert m.mem.pb_cpu[pb] == 0
    c0 = m.sim_counters()
    m.alloc(0, "GFP_KERNEL", cpu=1)
    c1 = m.sim_counters()
    assert c1["sim_pcpbuddy_phase2_pages"] - c0["sim_pcpbuddy_phase2_pages"] > 1
    assert c1["sim_pcpbuddy_phase2_adopted"] - c0["sim_pcpbuddy_phase2_adopted"] >= 1
    assert m.mem.pb_cpu[pb] == 2                          # cpu 1 + 1
    entries = _cpu_entries(m, 1)
    assert any(p >> pageblock_order == pb for _, p in entries)
    chunks = [p for pi, p in entries if pi // MIGRATE_PCPTYPES > 0]     # phase 3 adds order 0
    assert chunks
    for p in chunks:
        assert m.mem.pg_flags[p] & PG_pcpbuddy
        assert m.mem.pb_cpu[p >> pageblock_order] == 2
    m.check()
    c2 = m.sim_counters()
    m.alloc(0, MOVABLE, cpu=0)
    assert m.sim_counters()["sim_pcpbuddy_phase2_pages"] == c2["sim_pcpbuddy_phase2_pages"]
    m.check()


@pytest.mark.parametrize("policy", ["stock:pcpbuddy", "spb:v1,pcpbuddy=s1", "spb:s1,pcpbuddy=s1",
                                    "spb:v2,pcpbuddy=v2_21"])
def test_random_streams_keep_every_invariant(policy):
    """Random allocations (orders 0-9, three types) and frees from 4 cpus,
    with frees on other cpus than the allocation; DEBUG_VM every 2,000
    operations and at the end, after a full drain."""
    kw = Policy.parse(policy).machine_kwargs()
    m = machine(memory="2G", cpus=4, **kw)
    assert m.mem.cfg[CFG["pcpbuddy"]] != 0
    rng = np.random.default_rng(7)
    gfps = ["GFP_KERNEL", MOVABLE, "GFP_KERNEL_ACCOUNT", MOVABLE, "GFP_NOFS"]
    live = []
    for i in range(12_000):
        if live and (rng.random() < 0.45 or len(live) > 30_000):
            pfn, order = live.pop(int(rng.integers(len(live))))
            m.free(pfn, order, cpu=int(rng.integers(4)))
        else:
            order = int(rng.choice([0, 0, 0, 0, 1, 2, 3, 4, 6, 9]))
            pfn = m.alloc(order, gfps[int(rng.integers(len(gfps)))], cpu=int(rng.integers(4)))
            if pfn is not None:
                live.append((pfn, order))
        if i % 2000 == 1999:
            m.check()
    c = m.sim_counters()
    assert c["sim_pcpbuddy_phase1_blocks"] > 0 and c["sim_pcp_merges"] > 0
    assert c["sim_pcp_remote_owner_frees"] > 0
    if m.mem.cfg[CFG["pcpbuddy"]] != PCPBUDDY_S1:
        assert c["sim_pcpbuddy_phase2_pages"] > 0
    m.check()
    m.drain_pcp()
    m.check()


def test_policies_and_switch_values():
    assert Policy.parse("stock:pcpbuddy").machine_kwargs() == {"pcpbuddy": True}
    assert Machine(memory="1G", cpus=2, pcpbuddy=True).mem.cfg[CFG["pcpbuddy"]] == PCPBUDDY_RFC
    m = Machine(memory="1G", cpus=2, spb="v1", spb_set={"pcpbuddy": "s1"})
    assert m.mem.cfg[CFG["pcpbuddy"]] == PCPBUDDY_S1
    m = Machine(memory="1G", cpus=2, spb="v1", spb_set={"pcpbuddy": "v2_21"})
    assert m.mem.cfg[CFG["pcpbuddy"]] == PCPBUDDY_ADOPT
    # every SPB preset runs PCPBuddy: S1's form, v2 with v2 21's phase 2; off ablates it
    for preset, mode in (("s1", PCPBUDDY_S1), ("v1", PCPBUDDY_S1), ("v1-pre43", PCPBUDDY_S1),
                         ("v2", PCPBUDDY_ADOPT)):
        assert Machine(memory="1G", cpus=2, spb=preset).mem.cfg[CFG["pcpbuddy"]] == mode
    m = Machine(memory="1G", cpus=2, spb="v2", spb_set={"pcpbuddy": "off"})
    assert m.mem.cfg[CFG["pcpbuddy"]] == 0
    assert Machine(memory="1G", cpus=2).mem.cfg[CFG["pcpbuddy"]] == 0       # stock
    with pytest.raises(ConfigError, match="pcpbuddy"):
        Policy.parse("spb:v1,pcpbuddy=v9")
