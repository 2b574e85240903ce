"""DEBUG_VM over long random streams: one million allocations and frees
(orders 0-10, five gfp classes, four cpus, frees on any cpu) under every
allocator preset, the checker (pcp lists and PCPBuddy owners, SPB lists
and counters, the kevacuate pool, taint marks) run every 100,000
operations and after a full drain; the SPB presets run their queued
background work between batches.  Long: behind --runslow."""
import numpy as np
import pytest

from spbsim import Machine
from spbsim.mm import gfp as G
from spbsim.mm.spb.work import spb_run_pending
from spbsim.policy import Policy

PRESETS = ["stock", "stock:6.12", "stock:6.1", "stock:defrag", "stock:pcpbuddy", "spb:s1",
           "spb:v1", "spb:v1-pre43", "spb:v2", "spb:v1,pcpbuddy=off", "spb:v2,pcpbuddy=off",
           "spb:v2,pcpbuddy=s1", "spb:v1,pcpbuddy=v2_21"]
GFPS = np.array([G.GFP_KERNEL, G.GFP_HIGHUSER_MOVABLE, G.GFP_KERNEL_ACCOUNT,
                 G.GFP_HIGHUSER_MOVABLE, G.GFP_NOFS, G.GFP_ATOMIC | G.__GFP_NOWARN,
                 G.GFP_KERNEL | G.__GFP_RECLAIMABLE], np.int64)
ORDERS = np.array([0, 0, 0, 0, 0, 1, 2, 3, 4, 6, 9, 10], np.int64)


@pytest.mark.slow
@pytest.mark.parametrize("policy", PRESETS)
def test_a_million_random_operations_keep_every_invariant(policy):
    m = Machine(memory="2G", cpus=4, seed=5, **Policy.parse(policy).machine_kwargs())
    spb = policy.startswith("spb")
    rng = np.random.default_rng(11)
    live_pfn = np.zeros(0, np.int64)
    live_order = np.zeros(0, np.int64)
    done = 0
    allocs = frees = 0
    while done < 1_000_000:
        # a batch of allocations, then frees of a random part of what is live
        n = 5_000
        orders = ORDERS[rng.integers(ORDERS.size, size=n)]
        gfps = GFPS[rng.integers(GFPS.size, size=n)]
        got = m.run_ops(orders, gfps, cpu=rng.integers(4, size=n), owner=rng.integers(3, 40, size=n))
        ok = got >= 0
        allocs += int(ok.sum())
        live_pfn = np.concatenate([live_pfn, got[ok]])
        live_order = np.concatenate([live_order, orders[ok]])
        k = int(live_pfn.size * rng.uniform(0.3, 0.6))
        pick = rng.permutation(live_pfn.size)
        out, keep = pick[:k], pick[k:]
        res = m.run_ops(live_order[out], 0, pfns=live_pfn[out], cpu=rng.integers(4, size=k))
        assert (res == 0).all()
        frees += k
        live_pfn, live_order = live_pfn[keep], live_order[keep]
        if spb:
            # the queued SPB work (defrag, slab shrink, kevacuate, deferred
            # evacuation) between batches, as the engine runs it between requests
            spb_run_pending(m.mem, done * 1_000_000, 0)
        done += n + k
        if done // 100_000 != (done - n - k) // 100_000:
            m.check()
    assert allocs > 200_000 and frees > 200_000
    m.run_ops(live_order, 0, pfns=live_pfn)
    m.drain_pcp()
    m.check()
