"""Zone setup (watermarks, lowmem_reserve, pcp batch/high) against the 6.12
oracle's numbers, and the per-cpu list behaviour of §2.5."""
import json
from pathlib import Path

import numpy as np
import pytest

from spbsim import Machine
from spbsim.mm import gfp as G
from spbsim.mm.const import (CONFIG_PCP_BATCH_SCALE_MAX, MIGRATE_MOVABLE, NR_STOCK_PCP_LISTS,
                             ZONE_DMA32)
from spbsim.mm.pcp import order_to_pindex
from spbsim.mm.mm_init import new_mem
from spbsim.mm.state import (PCP_BATCH, PCP_COUNT, PCP_FLAGS, PCP_FREE_COUNT, PCP_HIGH,
                             PCP_HIGH_MAX, PCP_HIGH_MIN, PCPF_FREE_HIGH_BATCH,
                             PCPF_PREV_FREE_HIGH_ORDER, ZSTAT)
from spbsim.mm.zone_setup import (setup_pcp, setup_per_zone_lowmem_reserve,
                                  setup_per_zone_wmarks, zone_batchsize)


def oracle_dir():
    from oracle import oracle_root
    d = oracle_root()
    run = Path(d) / "run1-mixed-s1"
    if not (run / "manifest.json").exists():
        pytest.skip(f"oracle recordings not found at {d}")
    return run


def oracle_zones():
    return json.loads((oracle_dir() / "manifest.json").read_text())["machine"]["zones"]


def mem_with_managed(managed):
    m = new_mem(1 << 20, 2)
    for z, v in enumerate(managed):
        m.zstat[z, ZSTAT["managed"]] = v
    return m


def test_watermarks_and_lowmem_reserve_match_the_oracle_kernel():
    """__setup_per_zone_wmarks and setup_per_zone_lowmem_reserve with the oracle's
    managed pages and min_free_kbytes reproduce its zoneinfo.  The Normal zone
    matches exactly; DMA/DMA32 min within 1 page (their managed count moved after
    the watermarks were computed at boot: DMA32 min is 5199 for 5200 here)."""
    zones = oracle_zones()
    m = mem_with_managed([z["managed"] for z in zones])
    setup_per_zone_wmarks(m, 67584, 10)
    setup_per_zone_lowmem_reserve(m)
    for i, z in enumerate(zones):
        got_min = int(m.zstat[i, ZSTAT["wmark_min"]])
        assert abs(got_min - z["min"]) <= (0 if z["zone"] == "Normal" else 1), z["zone"]
        # the gap rule, applied to the kernel's own min, gives its low and high exactly
        gap = max(z["min"] >> 2, z["managed"] * 10 // 10000)
        assert (z["low"], z["high"]) == (z["min"] + gap, z["min"] + 2 * gap)
        if z["zone"] == "Normal":
            assert (int(m.zstat[i, ZSTAT["wmark_low"]]), int(m.zstat[i, ZSTAT["wmark_high"]])) \
                == (z["low"], z["high"])
        assert list(m.lowmem_reserve[i]) == z["lowmem_reserve"][:3]


def test_pcp_batch_and_high_min_match_the_oracle_kernel():
    """zone_batchsize(): DMA32 31, Normal 63; high_min = low watermark split over
    the 2 cpus (the oracle's DMA32 cpu0 high 3249 is exactly high_min)."""
    zones = oracle_zones()
    assert zone_batchsize(zones[1]["managed"]) == zones[1]["pcp"][0]["batch"] == 31
    assert zone_batchsize(zones[2]["managed"]) == zones[2]["pcp"][0]["batch"] == 63
    m = mem_with_managed([z["managed"] for z in zones])
    setup_per_zone_wmarks(m, 67584, 10)
    setup_pcp(m, 2)
    assert m.pcp[1, 0, PCP_HIGH] == m.zstat[1, ZSTAT["wmark_low"]] // 2
    assert abs(int(m.pcp[1, 0, PCP_HIGH]) - zones[1]["pcp"][0]["high"]) <= 1   # 3249


def test_default_min_free_kbytes_includes_the_thp_recommendation():
    """khugepaged: 11 pageblocks per populated zone (3 zones -> 67584 kB), as the
    oracle's 1.5 GiB guest shows."""
    m = Machine("1536M", low_memory="512M", cpus=1, early_unmovable=0)
    assert m.min_free_kbytes == 67584


def pcp_machine():
    return Machine("1G", cpus=2, early_unmovable=0, watermark_boost_factor=0)


def test_pcp_refill_takes_a_batch_and_serves_from_the_head():
    """rmqueue_pcplist(): an empty list is refilled with nr_pcp_alloc() blocks
    appended in physical order; allocations take the head."""
    m = pcp_machine()
    z = ZONE_DMA32
    pi = order_to_pindex(MIGRATE_MOVABLE, 0)
    p1 = m.alloc(0, G.GFP_HIGHUSER_MOVABLE, cpu=0)
    batch = int(m.mem.pcp[z, 0, PCP_BATCH])
    cnt = int(m.mem.pcp[z, 0, PCP_COUNT])
    assert cnt == batch - 1          # first refill: batch << alloc_factor(0) = batch
    p2 = m.alloc(0, G.GFP_HIGHUSER_MOVABLE, cpu=0)
    assert p2 == p1 + 1              # the refilled list is in physical order
    assert m.mem.pcp_head[z, 0, pi] == p1 + 2
    # pcp pages are not free in buddyinfo / NR_FREE_PAGES
    free = int(m.mem.zstat[z, ZSTAT["nr_free_pages"]])
    assert free == int(m.mem.zstat[z, ZSTAT["managed"]]) - batch
    m.check()


def test_pcp_free_goes_to_the_head_and_drains_at_high():
    """free_unref_page_commit(): frees are parked at the list head; when count
    reaches high, free_pcppages_bulk() returns the oldest (tail) pages."""
    m = pcp_machine()
    z = ZONE_DMA32
    n = 20000
    pfns = m.run_ops(np.zeros(n, np.int64), G.GFP_HIGHUSER_MOVABLE, cpu=0)
    high = int(m.mem.pcp[z, 1, PCP_HIGH])
    assert n > high
    m.free(int(pfns[0]), 0, cpu=1)
    assert m.mem.pcp_head[z, 1, order_to_pindex(MIGRATE_MOVABLE, 0)] == pfns[0]
    m.run_ops(np.zeros(n - 1, np.int64), 0, pfns=pfns[1:], cpu=1)
    assert m.sim_counters()["sim_pcp_drain_blocks"] > 0
    assert m.mem.pcp[z, 1, PCP_COUNT] <= m.mem.pcp[z, 1, PCP_HIGH]
    # the oldest frees were drained first: pfns[0] (freed first) is back in the buddy
    assert m.mem.pg_flags[pfns[0]] & 0x04 == 0
    m.check()
    m.drain_pcp()
    assert m.mem.pcp[:, :, PCP_COUNT].sum() == 0
    m.check()


def test_thp_order_uses_its_own_pcp_list():
    m = pcp_machine()
    p = m.alloc(9, G.GFP_TRANSHUGE_LIGHT, cpu=0)
    assert p is not None and p % 512 == 0
    m.free(p, 9, cpu=0)
    assert m.mem.pcp_head[ZONE_DMA32, 0, NR_STOCK_PCP_LISTS - 1] == p
    m.check()


def test_no_pcp_means_direct_buddy():
    m = Machine("1G", cpus=1, pcp=False, early_unmovable=0)
    p = m.alloc(0, G.GFP_KERNEL)
    assert m.mem.pcp[:, :, PCP_COUNT].sum() == 0
    m.free(p)
    m.check()


def test_v61_pcp_high_is_static_and_free_high_drains_everything():
    """v6.1 (zone_highsize, nr_pcp_high, nr_pcp_free): high is the LOW mark
    split across cpus with no autotuning, and an order-1..3 free while
    pcp->free_factor is set (a drain since the last allocation) empties the
    whole pcp; the 6.12 rules keep the list."""
    def fill_then_free(version):
        m = Machine("1G", cpus=2, early_unmovable=0, watermark_boost_factor=0,
                    version=version)
        z = ZONE_DMA32
        high = int(m.mem.pcp[z, 1, PCP_HIGH])
        pfns = m.run_ops(np.zeros(3 * high, np.int64), G.GFP_HIGHUSER_MOVABLE, cpu=0)
        two = m.alloc(1, G.GFP_KERNEL, cpu=0)
        m.run_ops(np.zeros(len(pfns), np.int64), 0, pfns=pfns, cpu=1)   # drains at high
        before = int(m.mem.pcp[z, 1, PCP_COUNT])
        m.free(two, 1, cpu=1)
        m.check()
        return m, before, int(m.mem.pcp[z, 1, PCP_COUNT])

    m61, before, after = fill_then_free("6.1")
    pcp = m61.mem.pcp[ZONE_DMA32, 1]
    assert pcp[PCP_HIGH_MIN] == pcp[PCP_HIGH_MAX] == pcp[PCP_HIGH]
    assert before > 0 and after == 0
    m612, before, after = fill_then_free("6.12")
    assert before > 0 and after > 0


def test_v61_drains_grow_to_batch_times_32_and_no_further():
    """v6.1.y nr_pcp_free(): each drain without an allocation in between
    doubles the batch, while pcp->free_factor < CONFIG_PCP_BATCH_SCALE_MAX,
    so a run of order-0 frees drains batch, 2 batch, ... 32 batch and then
    32 batch again: the list never falls under high - 32 batch.  (Without
    the cap the drains go on doubling to high - batch.)"""
    m = Machine("1G", cpus=2, early_unmovable=0, watermark_boost_factor=0, version="6.1")
    z = ZONE_DMA32
    pcp = m.mem.pcp[z, 1]
    batch = int(pcp[PCP_BATCH])
    high = 80 * batch
    pcp[PCP_HIGH] = pcp[PCP_HIGH_MIN] = pcp[PCP_HIGH_MAX] = high
    pfns = m.run_ops(np.zeros(high + 200 * batch, np.int64), G.GFP_HIGHUSER_MOVABLE, cpu=0)
    drains, prev = [], 0
    for pfn in pfns:
        m.free(int(pfn), 0, cpu=1)
        now = int(pcp[PCP_COUNT])
        if now < prev:
            drains.append(prev + 1 - now)
        prev = now
    m.check()
    scale = [batch << f for f in range(CONFIG_PCP_BATCH_SCALE_MAX + 1)]
    assert drains[:len(scale)] == scale
    assert len(drains) > len(scale) + 1
    assert set(drains[len(scale):]) == {batch << CONFIG_PCP_BATCH_SCALE_MAX}


def test_v61_vmstat_update_leaves_the_local_lists_alone():
    """v6.1's refresh_cpu_vm_stats() never drains a zone local to the cpu
    (decay_pcp_high() arrived in v6.7): a list above its high after a THP
    refill keeps its pages through vmstat_update; 6.12 trims it."""
    from spbsim.mm.workqueue import WQ_VMSTAT_UPDATE, queue_work, run_due_work

    def refill_then_tick(version):
        m = Machine("1G", cpus=2, early_unmovable=0, watermark_boost_factor=0, version=version)
        z = ZONE_DMA32
        m.alloc(9, G.GFP_TRANSHUGE, cpu=1)
        pcp = m.mem.pcp[z, 1]
        before = int(pcp[PCP_COUNT])
        assert before >= 512
        pcp[PCP_HIGH] = pcp[PCP_HIGH_MIN] = pcp[PCP_HIGH_MAX] = 4 * int(pcp[PCP_BATCH])
        queue_work(m.mem, WQ_VMSTAT_UPDATE, 0, 1)
        run_due_work(m.mem, 2)
        m.check()
        return before, int(pcp[PCP_COUNT])

    before, after = refill_then_tick("6.1")
    assert after == before
    before, after = refill_then_tick("6.12")
    assert after < before


@pytest.mark.parametrize("version", ["6.12", "recent"])
def test_free_high_waits_for_a_batch_where_the_cache_slice_is_large(version):
    """free_unref_page_commit() since v6.9: with PCPF_FREE_HIGH_BATCH (set by
    zone_pcp_update_cacheinfo() where the cpu's per_cpu_data_slice_size
    exceeds 3 batches) an order-1..3 free that would be free_high keeps the
    list while it holds less than a batch; without the flag it drains it."""
    def run(slice_size):
        # a low LOW mark keeps high_min at 4 batches, so recent kernels'
        # threshold (batch + high_min / 2) lies under free_count's cap
        m = Machine("1G", cpus=2, early_unmovable=0, watermark_boost_factor=0,
                    min_free_kbytes=1024, version=version, per_cpu_data_slice_size=slice_size)
        z = ZONE_DMA32
        pcp = m.mem.pcp[z, 1]
        assert pcp[PCP_HIGH_MIN] == 4 * pcp[PCP_BATCH]
        pfns = m.run_ops(np.zeros(8, np.int64), G.GFP_HIGHUSER_MOVABLE, cpu=0)
        two = m.alloc(1, G.GFP_KERNEL, cpu=0)
        m.run_ops(np.zeros(len(pfns), np.int64), 0, pfns=pfns, cpu=1)
        # the state of a run of high-order frees: free_count at its cap,
        # the previous free of high order
        pcp[PCP_FREE_COUNT] = pcp[PCP_BATCH] << CONFIG_PCP_BATCH_SCALE_MAX
        pcp[PCP_FLAGS] |= PCPF_PREV_FREE_HIGH_ORDER
        before = int(pcp[PCP_COUNT])
        assert 0 < before < pcp[PCP_BATCH]
        m.free(two, 1, cpu=1)
        m.check()
        return bool(pcp[PCP_FLAGS] & PCPF_FREE_HIGH_BATCH), before, int(pcp[PCP_COUNT])

    flag, before, after = run("1M")
    assert flag and after == before + 2
    flag, before, after = run(0)
    assert not flag and after == 0


def test_free_high_batch_flag_follows_the_cache_slice():
    """zone_pcp_update_cacheinfo(): PCPF_FREE_HIGH_BATCH where the slice in
    pages is more than 3 * batch, per zone."""
    m = mem_with_managed([4000, 200_000])
    setup_pcp(m, 2)
    batch = int(m.pcp[1, 0, PCP_BATCH])
    setup_pcp(m, 2, data_slice_pages=3 * batch)
    assert not m.pcp[1, :, PCP_FLAGS].any()
    setup_pcp(m, 2, data_slice_pages=3 * batch + 1)
    assert (m.pcp[1, :, PCP_FLAGS] & PCPF_FREE_HIGH_BATCH).all()
