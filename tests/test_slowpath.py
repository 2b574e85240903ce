"""The slow path's order of steps (mm/page_alloc.c __alloc_pages_slowpath,
__alloc_pages_direct_reclaim, __alloc_pages_may_oom of v6.12), on states
built by hand."""
import numpy as np

from spbsim.machine import Machine
from spbsim.mm import craft
from spbsim.mm import gfp as G
from spbsim.mm.const import CONFIG_PCP_BATCH_SCALE_MAX
from spbsim.mm.state import CFG, PCP_ALLOC_FACTOR, PCP_BATCH, PCP_COUNT


def _exhausted(cpus=2):
    """A 1 GB machine without reclaim or compaction, every page it will give
    allocated (the watermarks are kept), and 100 pages freed on cpu 1's lists."""
    mach = Machine(memory="1G", cpus=cpus, reclaim=False, compaction=False, early_unmovable=0)
    pfns = craft.exhaust(mach, cpu=0)
    for p in pfns[-100:]:
        mach.free(int(p), cpu=1)
    return mach


def test_no_pcp_drain_after_reclaim_without_progress():
    """The kernel drains every cpu's lists (and releases the highatomic
    reserve) only when direct reclaim made progress and the retry still
    failed; reclaim that freed nothing goes straight to compaction and the
    retry decisions.  (The old slow path drained on every loop.)"""
    mach = _exhausted()
    before = int(mach.mem.pcp[:, 1, PCP_COUNT].sum())
    assert before == 100
    assert mach.alloc(0, "GFP_KERNEL", cpu=0) is None
    assert int(mach.mem.pcp[:, 1, PCP_COUNT].sum()) == before


def test_oom_killer_only_where_the_kernel_calls_it():
    """__alloc_pages_may_oom: no OOM kill for __GFP_RETRY_MAYFAIL or
    __GFP_THISNODE requests, for requests that cannot use ZONE_NORMAL, or for
    costly orders; a GFP_KERNEL order-0 failure counts one."""
    mach = _exhausted()
    base = mach.vmstat_counters()["oom_kill"]          # the exhaustion's own failures
    oom = lambda: mach.vmstat_counters()["oom_kill"] - base     # noqa: E731
    for gfp in ("GFP_KERNEL|__GFP_RETRY_MAYFAIL", "GFP_KERNEL|__GFP_THISNODE",
                "GFP_KERNEL|GFP_DMA32"):
        assert mach.alloc(0, gfp, cpu=0) is None
        assert oom() == 0, gfp
    assert mach.alloc(4, "GFP_KERNEL", cpu=0) is None
    assert oom() == 0
    assert mach.alloc(0, "GFP_KERNEL", cpu=0) is None
    assert oom() == 1


def test_replay_direct_reclaim_counts_the_streams_frees_as_progress():
    """With reclaim_external (a replay), a traced allocation comes after its
    reclaim freed pages, so direct reclaim counts the pages the stream freed
    since the last direct reclaim as progress: the retry that still fails
    then drains every cpu's lists (__alloc_pages_direct_reclaim) and the
    request is served from the pages another cpu had parked.  Without new
    frees there is no progress and no drain.  The old rule asked the empty
    reclaim lists, never drained, and failed the request (an OOM kill)."""
    mach = Machine(memory="1G", cpus=2, reclaim=True, compaction=False, early_unmovable=0)
    m = mach.mem
    pfns = craft.exhaust(mach, gfp=G.GFP_KERNEL, cpu=0)
    assert int(m.lru_pages.sum()) == 0          # nothing reclaim could free itself
    m.cfg[CFG["reclaim_external"]] = 1
    assert mach.alloc(0, "GFP_KERNEL", cpu=0) is None      # no frees yet: no progress
    for p in pfns[-100:]:
        mach.free(int(p), cpu=1)
    assert int(m.pcp[:, 1, PCP_COUNT].sum()) == 100
    oom = mach.vmstat_counters()["oom_kill"]
    assert mach.alloc(0, "GFP_KERNEL", cpu=0) is not None
    assert int(m.pcp[:, 1, PCP_COUNT].sum()) == 0
    assert mach.vmstat_counters()["oom_kill"] == oom


def test_replay_direct_reclaim_resets_the_reclaimers_refill_scaling():
    """The kernel's direct reclaimer frees what it reclaimed on its own cpu
    (free_unref_folios), and each free halves pcp->alloc_factor, so the
    retry after reclaim refills one batch: the recorded 6.12 kernels' first
    order-0 refill after a direct reclaim on the same cpu is one batch in
    74 of 79 cases.  In a replay those frees are in the stream at the
    kernel's moment, so the simulated reclaim resets the factor itself.  The
    old rule kept a factor of CONFIG_PCP_BATCH_SCALE_MAX and refilled up to
    32 batches at the MIN mark, taking the zone under it for every other cpu."""
    mach = Machine(memory="1G", cpus=2, reclaim=True, compaction=False, early_unmovable=0,
                   version="6.12")
    m = mach.mem
    pfns = craft.exhaust(mach, gfp=G.GFP_KERNEL, cpu=0)
    m.cfg[CFG["reclaim_external"]] = 1
    for p in pfns[-100:]:
        mach.free(int(p), cpu=1)
    assert int(m.pcp[:, 1, PCP_COUNT].sum()) == 100 and int(m.pcp[:, 0, PCP_COUNT].sum()) == 0
    m.pcp[:, 0, PCP_ALLOC_FACTOR] = CONFIG_PCP_BATCH_SCALE_MAX
    assert mach.alloc(0, "GFP_KERNEL", cpu=0) is not None    # after reclaim and the drain
    z = int(np.flatnonzero(m.pcp[:, 0, PCP_COUNT])[0])
    assert int(m.pcp[z, 0, PCP_COUNT]) == int(m.pcp[z, 0, PCP_BATCH]) - 1
