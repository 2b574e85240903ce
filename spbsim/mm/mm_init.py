"""Allocating the machine's state (mm/mm_init.c: the memmap and the
per-zone structures): :func:`new_mem` returns an empty :class:`Mem`."""
import numpy as np

from .const import (MAX_NR_ZONES, MIGRATE_TYPES, NEVER_NS, NR_PAGE_ORDERS, NR_PCP_LISTS,
                    pageblock_order)
from .spb.state import dummy_spb
from .state import (CC_CPUS_MAX, CC_MAX, CCR_LEN, CCR_SLOTS, CFG_NAMES, EV_WIDTH, NODE, NODE_NAMES, NR_LRU,
                    SIMSTAT_NAMES, VMSTAT_NAMES, ZSTAT_NAMES, Mem, _piece_chain)

__all__ = ["new_mem"]


def _new_node():
    """The node's scalars as kswapd() starts: no zone index asked
    (kswapd_highest_zoneidx = MAX_NR_ZONES), its own index the top zone;
    no recorded kswapd wake ahead."""
    node = np.zeros(len(NODE_NAMES), np.int64)
    node[NODE["kswapd_highest_zoneidx"]] = MAX_NR_ZONES
    node[NODE["kswapd_run_zoneidx"]] = MAX_NR_ZONES - 1
    node[NODE["kswapd_next_wake_ns"]] = NEVER_NS      # no recorded kswapd to follow
    return node


def new_mem(nr_pfns, nr_cpus, ev_capacity=0, obj_capacity=1, spb=None, piece_capacity=0):
    """Allocate an empty machine state for pfns [0, nr_pfns).  ``spb``: an SPB
    state (spbsim.mm.spb.state.new_spb) for per-SPB free lists, else none.
    ``piece_capacity``: split pieces of timed objects that can be live at once.
    The taint log and the current context are the SPB state's arrays (one
    array each, seen from both), so SPB list moves are logged too."""
    if spb is None:
        spb = dummy_spb()
    L = MAX_NR_ZONES + int(spb.start_pfn.shape[0])
    if nr_pfns >= 2 ** 31:
        raise ValueError("more than 2^31 pfns (8 TiB) is not supported")
    nr_pb = (nr_pfns + (1 << pageblock_order) - 1) >> pageblock_order
    Z, O, T = MAX_NR_ZONES, NR_PAGE_ORDERS, MIGRATE_TYPES
    return Mem(
        pg_next=np.full(nr_pfns, -1, np.int32),
        pg_prev=np.full(nr_pfns, -1, np.int32),
        pg_order=np.full(nr_pfns, -1, np.int8),
        pg_flags=np.zeros(nr_pfns, np.uint8),
        pg_owner=np.zeros(nr_pfns, np.uint8),
        pg_obj=np.full(nr_pfns, -1, np.int32),
        pg_list_mt=np.zeros(nr_pfns, np.uint8),
        pb_mt=np.zeros(nr_pb, np.uint8),
        pb_flags=np.zeros(nr_pb, np.uint8),
        pb_zone=np.full(nr_pb, -1, np.int8),
        pb_list=np.zeros(nr_pb, np.int32),
        zone_start=np.zeros(Z, np.int64),
        zone_end=np.zeros(Z, np.int64),
        fa_head=np.full((L, O, T), -1, np.int64),
        fa_tail=np.full((L, O, T), -1, np.int64),
        fl_nr=np.zeros((L, O, T), np.int64),
        fa_nr=np.zeros((Z, O, T), np.int64),
        nr_free=np.zeros((Z, O), np.int64),
        zstat=np.zeros((Z, len(ZSTAT_NAMES)), np.int64),
        lowmem_reserve=np.zeros((Z, Z), np.int64),
        pcp_head=np.full((Z, nr_cpus, NR_PCP_LISTS), -1, np.int64),
        pcp_tail=np.full((Z, nr_cpus, NR_PCP_LISTS), -1, np.int64),
        pcp=np.zeros((Z, nr_cpus, 8), np.int64),
        pb_cpu=np.zeros(nr_pb, np.int16),
        pb_own_next=np.full(nr_pb, -1, np.int32),
        pb_own_prev=np.full(nr_pb, -1, np.int32),
        pcp_own_head=np.full((Z, nr_cpus), -1, np.int64),
        pcp_own_tail=np.full((Z, nr_cpus), -1, np.int64),
        pcp_pairs=np.zeros((Z, nr_cpus, pageblock_order), np.int32),
        pb_taint=np.zeros(nr_pb, np.int16),
        tl=spb.tl,
        tl_n=spb.tl_n,
        node=_new_node(),
        lru_head=np.full(NR_LRU, -1, np.int64),
        lru_tail=np.full(NR_LRU, -1, np.int64),
        lru_pages=np.zeros(NR_LRU, np.int64),
        owner_lru=np.full(256, -1, np.int8),
        owner_pages=np.zeros(256, np.int64),
        obj_pfn=np.full(max(obj_capacity, 1), -1, np.int32),
        obj_pc=np.full(max(obj_capacity, 1), -1, np.int32),
        pc_pfn=np.full(piece_capacity, -1, np.int32),
        pc_next=_piece_chain(piece_capacity),
        pc_n=np.array([0 if piece_capacity > 0 else -1, 0, 0], np.int64),
        vm=np.zeros(len(VMSTAT_NAMES), np.int64),
        sim=np.zeros(len(SIMSTAT_NAMES), np.int64),
        fb_stat=np.zeros((3, T, T), np.int64),   # [claim|steal|claim_whole, start_mt, fallback_mt]
        cfg=np.zeros(len(CFG_NAMES), np.int64),
        cur=spb.req,
        rng=np.array([0x9E3779B97F4A7C15], np.uint64),
        cc_pfn=np.zeros(CC_MAX, np.int64),
        cc_order=np.zeros(CC_MAX, np.int64),
        cc_n=np.zeros(2, np.int64),
        cc_cpus=np.zeros((CC_CPUS_MAX, 2), np.int64),
        cc_resume=np.zeros((CCR_SLOTS, CCR_LEN), np.int64),
        capc=np.full(4, -1, np.int64),
        wq_due=np.zeros(64, np.int64),
        wq_kind=np.zeros(64, np.int64),
        wq_arg=np.zeros(64, np.int64),
        wq_n=np.array([0, 0, 1 << 62], np.int64),
        ev=np.zeros((max(ev_capacity, 1), EV_WIDTH), np.int64),
        ev_n=np.zeros(2, np.int64),
        spb=spb,
    )
