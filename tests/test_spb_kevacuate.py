"""S1's claim-time pageblock evacuation (S1 §4, v1 07 / v2 06): a
sub-pageblock claim of a MOVABLE block for an unmovable or reclaimable
request queues the block (queue_pageblock_evacuate, a pool of 64 items) and
the kevacuate work migrates its movable pages out (switch ``kevacuate``)."""
import numpy as np
import pytest

from spbsim import InvariantError, Machine
from spbsim.mm.const import MIGRATE_UNMOVABLE, PB_has_movable, PG_head, PG_lru
from spbsim.mm.craft import exhaust, zero_watermarks
from spbsim.mm.spb.params import (NR_EVACUATE_ITEMS, PEND_KEVAC_N, PEND_KEVAC_Q, SPB_PRESETS,
                                  SPB_STAT)
from spbsim.mm.spb.work import spb_run_pending


def stat(m, name):
    return int(m.mem.spb.stat[:, SPB_STAT[name]].sum())


def test_presets():
    assert SPB_PRESETS["s1"]["kevacuate"] is True
    assert all(SPB_PRESETS[p]["kevacuate"] is False for p in ("v1", "v1-pre43", "v2"))


def _claimed_block(kevacuate, free_in_block=300):
    """Every page allocated (movable, migratable); pageblock b has
    ``free_in_block`` free pages at its start and 212 movable pages above
    them, a pageblock of the next SPB down 256 scattered free pages
    (targets: movable requests skip a tainted SPB at its reserve).  One
    GFP_KERNEL page then falls back and claims b (S1: no tainted or empty
    SPB to take it from)."""
    m = Machine("3G", cpus=1, spb="s1", pcp=False, early_unmovable=0, watermark_boost_factor=0,
                reclaim=False, compaction=False, migrate_untracked=True,
                memmap_bytes_per_page=0, spb_set={"kevacuate": kevacuate})
    mem = m.mem
    zero_watermarks(m)
    pfns = np.sort(exhaust(m))
    b = (int(pfns[-1]) >> 18 << 18) + 7 * 512
    room = np.arange(b, b + free_in_block, dtype=np.int64)
    m.run_ops(np.zeros(room.size, np.int64), 0, pfns=room)
    c = b - (1 << 18)               # in the SPB below: it stays clean
    targets = np.arange(c, c + 512, 2, dtype=np.int64)
    m.run_ops(np.zeros(targets.size, np.int64), 0, pfns=targets)
    p = m.alloc(0, "GFP_KERNEL")
    assert b <= p < b + 512 and int(mem.pb_mt[b >> 9]) == MIGRATE_UNMOVABLE
    assert mem.pb_flags[b >> 9] & PB_has_movable
    m.check()
    return m, b


@pytest.mark.parametrize("on", [False, True])
def test_a_sub_pageblock_claim_queues_the_block_and_kevacuate_empties_it(on):
    m, b = _claimed_block(on)
    mem = m.mem
    assert stat(m, "spb_kevacuate_queued") == (1 if on else 0)
    assert int(mem.spb.pend[PEND_KEVAC_N]) == (1 if on else 0)
    migrated0 = m.vmstat_counters()["pgmigrate_success"]
    spb_run_pending(mem, 0, 0)
    moved = m.vmstat_counters()["pgmigrate_success"] - migrated0
    if not on:
        assert moved == 0 and stat(m, "spb_kevacuate_runs") == 0
    else:
        assert moved == 512 - 300 and stat(m, "spb_kevacuate_migrated") == 212
        assert stat(m, "spb_kevacuate_runs") == 1 and int(mem.spb.pend[PEND_KEVAC_N]) == 0
        # no movable (LRU) page is left in the block, which stays UNMOVABLE
        flags = mem.pg_flags[b:b + 512]
        assert not (((flags & PG_head) != 0) & ((flags & PG_lru) != 0)).any()
        assert int(mem.pb_mt[b >> 9]) == MIGRATE_UNMOVABLE
    m.check()


def test_the_pool_drops_requests_when_all_items_are_in_flight():
    m, b = _claimed_block(True)
    mem = m.mem
    mem.spb.pend[PEND_KEVAC_N] = NR_EVACUATE_ITEMS
    mem.spb.pend[PEND_KEVAC_Q:PEND_KEVAC_Q + NR_EVACUATE_ITEMS] = b
    m.check()
    # a second claim in another block while the pool is empty is dropped
    pfns = np.arange(b + 80 * 512, b + 80 * 512 + 300, dtype=np.int64)
    m.run_ops(np.zeros(pfns.size, np.int64), 0, pfns=pfns)
    for _ in range(300):                      # use up b's free UNMOVABLE pages first
        if m.alloc(0, "GFP_KERNEL") >= b + 80 * 512:
            break
    assert stat(m, "spb_kevacuate_dropped") == 1
    assert int(mem.spb.pend[PEND_KEVAC_N]) == NR_EVACUATE_ITEMS


def test_debug_vm_checks_the_kevacuate_pool():
    m, b = _claimed_block(True)
    mem = m.mem
    mem.spb.pend[PEND_KEVAC_N] = NR_EVACUATE_ITEMS + 1
    with pytest.raises(InvariantError, match="kevacuate items in flight"):
        m.check()
    mem.spb.pend[PEND_KEVAC_N] = 1
    mem.spb.pend[PEND_KEVAC_Q] = b + 1
    with pytest.raises(InvariantError, match="kevacuate item is not a pageblock"):
        m.check()
    mem.spb.pend[PEND_KEVAC_Q] = b
    m.check()
