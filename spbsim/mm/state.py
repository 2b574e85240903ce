"""The machine's state: numpy arrays indexed by pfn, pageblock and zone.

Details: docs/model.md ("Module notes", `spbsim.mm.state`).
"""
from collections import namedtuple

import numpy as np


__all__ = ["Mem", "ZSTAT", "VMSTAT", "SIMSTAT", "CFG", "EV", "TL", "bytes_per_page"]


def _enum(names):
    return {n: i for i, n in enumerate(names)}


#: per-zone scalar state (struct zone fields and zone vmstat items)
ZSTAT_NAMES = [
    "nr_free_pages",            # NR_FREE_PAGES (excludes MIGRATE_ISOLATE)
    "nr_free_pages_blocks",     # NR_FREE_PAGES_BLOCKS (buddies >= pageblock_order)
    "nr_free_highatomic",       # zone->nr_free_highatomic
    "nr_reserved_highatomic",   # zone->nr_reserved_highatomic
    "wmark_min", "wmark_low", "wmark_high", "wmark_promo",  # _watermark[]
    "watermark_boost",
    "managed", "present", "spanned",
    "flags",                    # ZONE_BOOSTED_WATERMARK | ZONE_RECLAIM_ACTIVE | ZONE_BELOW_HIGH
    "kswapd_wakeups",           # wakeup_kswapd() calls for this zone
    "compact_considered", "compact_defer_shift", "compact_order_failed",
    # compact_cached_migrate_pfn[0] (async) and [1] (sync), compact_cached_free_pfn
    "compact_cached_migrate_pfn_async", "compact_cached_migrate_pfn_sync",
    "compact_cached_free_pfn",
    "compact_blockskip_flush",  # clear the skip bits when kswapd next sleeps
    "kswapd_zone_boost",        # balance_pgdat()'s zone_boosts[]: the boost when kswapd's run began
    "compact_init_free_pfn",    # where __reset_isolation_suitable() restarted the free scanner
    "compact_init_migrate_pfn",  # ... and the migrate scanner (0 before any reset)
]
ZSTAT = _enum(ZSTAT_NAMES)
ZS_NR_FREE = ZSTAT["nr_free_pages"]
ZS_NR_FREE_BLOCKS = ZSTAT["nr_free_pages_blocks"]
ZS_FREE_HIGHATOMIC = ZSTAT["nr_free_highatomic"]
ZS_RESERVED_HIGHATOMIC = ZSTAT["nr_reserved_highatomic"]
ZS_WMARK_MIN = ZSTAT["wmark_min"]
ZS_WMARK_LOW = ZSTAT["wmark_low"]
ZS_WMARK_HIGH = ZSTAT["wmark_high"]
ZS_BOOST = ZSTAT["watermark_boost"]
ZS_MANAGED = ZSTAT["managed"]
ZS_FLAGS = ZSTAT["flags"]
ZS_KSWAPD_WAKE = ZSTAT["kswapd_wakeups"]
ZS_KSWAPD_BOOST = ZSTAT["kswapd_zone_boost"]
ZS_INIT_FREE_PFN = ZSTAT["compact_init_free_pfn"]
ZS_INIT_MIGRATE_PFN = ZSTAT["compact_init_migrate_pfn"]
ZS_MIGRATE_PFN_ASYNC = ZSTAT["compact_cached_migrate_pfn_async"]
ZS_MIGRATE_PFN_SYNC = ZSTAT["compact_cached_migrate_pfn_sync"]

#: /proc/vmstat counters that are modelled, with the kernel's names
VMSTAT_NAMES = [
    "pgalloc_dma", "pgalloc_dma32", "pgalloc_normal", "pgalloc_movable",
    "pgfree",
    "allocstall_dma", "allocstall_dma32", "allocstall_normal", "allocstall_movable",
    "pgscan_kswapd", "pgscan_direct", "pgsteal_kswapd", "pgsteal_direct",
    "pageoutrun", "slabs_scanned",
    "compact_migrate_scanned", "compact_free_scanned", "compact_isolated",
    "compact_stall", "compact_fail", "compact_success",
    "compact_daemon_wake", "compact_daemon_migrate_scanned", "compact_daemon_free_scanned",
    "pgmigrate_success", "pgmigrate_fail",
    "thp_fault_alloc", "thp_fault_fallback",
    "oom_kill",
    "thp_split_page", "thp_migration_split",
]
VMSTAT = _enum(VMSTAT_NAMES)
VM_PGALLOC = VMSTAT["pgalloc_dma"]   # + zone index
VM_PGFREE = VMSTAT["pgfree"]
VM_ALLOCSTALL = VMSTAT["allocstall_dma"]   # + zone index

#: simulator counters that have no vmstat equivalent (named sim_*)
SIMSTAT_NAMES = [
    "sim_alloc_requests", "sim_alloc_fail", "sim_free_requests",
    "sim_slowpath", "sim_pcp_refill", "sim_pcp_drain_blocks",
    "sim_claim_attempts", "sim_claim_success",
    "sim_claim_whole_block", "sim_steal",
    "sim_highatomic_reserve", "sim_highatomic_unreserve",
    "sim_boost", "sim_nofragment_retry",
    "sim_freelists_visited",   # free_list heads inspected by __rmqueue_smallest/claim/steal
    "sim_migrate_split",       # large blocks split for want of a migration target (any order)
    "sim_compact_capture",     # direct compactions that captured the page they freed
    # PCPBuddy (per-cpu owned pageblocks)
    "sim_pcpbuddy_phase0_pages",   # rmqueue_bulk phase 0: owned fragments recovered (pages)
    "sim_pcpbuddy_phase1_blocks",  # rmqueue_bulk phase 1: whole pageblocks claimed and owned
    "sim_pcpbuddy_phase3_pages",   # rmqueue_bulk phase 3: plain __rmqueue refill (pages)
    "sim_pcp_merges",              # buddy pairs merged on a pcp list (merge pass)
    "sim_pcpbuddy_disown",         # blocks whose ownership ended (clear_pcpblock_owner)
    "sim_pcpbuddy_frag_drains",    # owned blocks put on owned_blocks by a partial drain
    "sim_pcp_remote_owner_frees",  # frees sent to the owner cpu's list from another cpu
    "sim_pcpbuddy_phase2_pages",   # rmqueue_bulk phase 2: sub-pageblock chunks, no stealing (pages)
    "sim_pcpbuddy_phase2_adopted", # phase 2 under SPBs: partly free blocks newly owned (v2 21)
]
SIMSTAT = _enum(SIMSTAT_NAMES)

#: policy switches and parameters handed to compiled code (plain values)
CFG_NAMES = [
    "version",                  # KV_RECENT | KV_6_12 | KV_6_1
    "defrag_mode",              # vm.defrag_mode
    "watermark_boost_factor",   # vm.watermark_boost_factor (0 disables boosting)
    "pcp_enabled",              # 0: every order goes straight to the buddy lists
    "nr_cpus",
    "trace",                    # record kmem tracepoints into the event log
    "nofragment",               # alloc_flags_nofragment() on (stock: 1)
    "relabel_free_pageblocks",  # SPB series: fully free UNMOV/RECL/HIGHATOMIC block -> MOVABLE
    "swap",                     # anonymous pages are reclaimable (swap available)
    "slab_free_ppm",            # shrinker model: chance (ppm) a scanned slab page is freed
    "reclaim",                  # direct reclaim and kswapd enabled (0: allocations just fail)
    "compaction",               # direct compaction and kcompactd enabled
    "compaction_proactiveness", # vm.compaction_proactiveness
    "extfrag_threshold",        # vm.extfrag_threshold
    "kswapd_rate",              # [SIM] pages kswapd can reclaim per simulated second
    "migrate_untracked",        # compaction may move API-allocated movable blocks
    "spb",                      # the superpageblock allocator is on (per-SPB free lists, passes)
    "prep_sets_request_bit",    # [SIM] prep_new_page() also sets PB_has_<request type> (stock 1; S1 0)
    "keep_nofragment",          # SPB v1 21 / v2 20: NOFRAGMENT kept until reclaim+compaction failed
    "migrate_split_large",      # migrate_pages(MR_CONTIG_RANGE): split a large folio on -ENOMEM
    "reclaim_external",         # replays: reclaim is in the request stream; kswapd only balances
    "kswapd_replay_run_ns",     # [SIM] replays: how long one balance_pgdat() run of kswapd lasts
    "reclaim_active_external",  # replays: ZONE_RECLAIM_ACTIVE follows the stream's kswapd windows
    "compaction_capture",       # a direct compactor takes the page its frees make (compaction_capture)
    "pcpbuddy",                 # PCPBuddy: per-cpu owned pageblocks, merging on the pcp (30 lists)
    "compaction_migrate_ns",    # [SIM] kcompactd's (a budgeted run's) time per page it migrates
    "compaction_scan_ns",       # [SIM] the same per page its scanners look at
    "kcompactd_concurrent",     # [SIM] kcompactd's run advances with the clock (paused, resumed)
]
CFG = _enum(CFG_NAMES)

#: event log record kinds (kmem tracepoints)
EV_NAMES = ["mm_page_alloc", "mm_page_free", "mm_page_alloc_zone_locked",
            "mm_page_pcpu_drain", "mm_page_alloc_extfrag",
            # the SPB series' kmem tracepoints (S2 header)
            "spb_alloc_walk", "spb_claim_block_refused", "spb_alloc_fall_through",
            "spb_alloc_atomic_relax", "spb_evacuate_for_order_done", "spb_pb_taint",
            # vmscan / compaction kthreads
            "mm_vmscan_kswapd_wake", "mm_vmscan_kswapd_sleep", "mm_compaction_kcompactd_wake",
            "mm_compaction_begin", "mm_compaction_end"]
EV = _enum(EV_NAMES)
#: event log columns: kind, ts_ns, cpu, pfn, order, a, b, c, d
#:   mm_page_alloc: a=gfp, b=migratetype, c=failed
#:   mm_page_alloc_zone_locked: a=migratetype, b=percpu_refill
#:   mm_page_pcpu_drain: a=migratetype
#:   mm_page_alloc_extfrag: order=alloc_order, a=fallback_order,
#:       b=alloc_migratetype, c=fallback_migratetype, d=change_ownership
#:   mm_vmscan_kswapd_wake: order; mm_vmscan_kswapd_sleep: -;
#:   mm_compaction_kcompactd_wake: order, a=highest_zoneidx
#:   mm_compaction_begin/end: pfn=zone_start, order=sync, a=migrate_pfn,
#:       b=free_pfn, c=zone_end, d=status (end) and, in bit 8 up, the cc flags
EV_WIDTH = 9

#: the taint log (spbsim.mm.taint): one row per pageblock turning polluted or
#: clean and per SPB turning tainted or clean.  Columns:
TL_NAMES = ["t_ns", "event", "index", "zone", "owner", "gfp", "order",
            "migratetype", "fallback_migratetype", "cause", "spb_pass"]
TL = _enum(TL_NAMES)
TL_WIDTH = len(TL_NAMES)
#: rows the compiled code can hold before the engine drains them (then dropped);
#: 352 KiB, and the engine drains it every tick it is half full
TL_CAPACITY = 1 << 12
#: ``event`` values; ``index`` is a pageblock number or an SPB slot
TL_EVENTS = ["pageblock_polluted", "pageblock_clean", "spb_tainted", "spb_untainted"]
TL_PB_POLLUTED, TL_PB_CLEAN, TL_SPB_TAINTED, TL_SPB_UNTAINTED = range(4)
#: ``cause`` values of pageblock events (-1 for SPB events, whose cause is spb_pass)
TL_CAUSES = ["claim", "steal", "capture", "borrow", "freed"]
TL_CLAIM, TL_STEAL, TL_CAPTURE, TL_BORROW, TL_FREED = range(5)

#: per-node scalar state (pglist_data fields)
#: kswapd_order / kswapd_highest_zoneidx are pglist_data's: what wakeup_kswapd()
#: asked for since kswapd last read them (MAX_NR_ZONES: no index asked);
#: kswapd_alloc_order / kswapd_run_zoneidx are kswapd()'s alloc_order and
#: highest_zoneidx, the order and zone index of the current balance_pgdat() run
NODE_NAMES = ["kswapd_order", "kswapd_highest_zoneidx", "kswapd_wait", "kswapd_failures",
              "kcompactd_max_order", "kcompactd_highest_zoneidx", "kcompactd_wait",
              "kswapd_runs", "kcompactd_runs", "direct_reclaims", "kswapd_last_ns",
              "kswapd_reclaimed",
              "kcompactd_timeout_ns",   # when kcompactd's wait times out (proactive check or pending order)
              "kswapd_reclaim_order",   # balance_pgdat's sc.order (alloc order until compact_gap)
              "kswapd_pgfree",          # pgfree when a reclaim_external kswapd last looked
              "kswapd_run_start_ns",    # when a reclaim_external kswapd's current run began
              "direct_pgfree",          # pgfree when a reclaim_external direct reclaim last looked
              "kswapd_alloc_order", "kswapd_run_zoneidx",
              "kswapd_nr_boost_reclaim",  # balance_pgdat's nr_boost_reclaim: boost left to reclaim
              "kcompactd_clock_ns",     # how far kcompactd's current (or last) run has got in time
              "kcompactd_run_order",    # the order that run compacts for (0: a proactive run)
              "kswapd_next_wake_ns",    # replays: when the recorded kswapd next wakes (its next window)
              "kcompactd_task",         # kcompactd's run in progress: KCD_TASK_* (0: none)
              "kcompactd_task_zone",    # the zone that run compacts now (or starts next)
              "kcompactd_task_zoneidx",  # kcompactd_do_work()'s highest zone index for that run
              "kcompactd_task_score"]   # a proactive run's node score when it began
NODE = _enum(NODE_NAMES)

#: reclaim lists (our stand-in for the node's LRU lists and the slab caches)
LRU_ANON, LRU_FILE, LRU_SLAB = 0, 1, 2
NR_LRU = 3
LRU_NAMES = ["anon", "file", "slab"]

Mem = namedtuple("Mem", [
    # per pfn; pg_obj: the timed object (engine) that owns an allocated block;
    # pg_list_mt: the migratetype of the free list a free buddy head was put
    # on (v6.1 keeps free pages on lists of another type than their block),
    # and of a v6.1 pcp page the type its drain returns it to
    # (get_pcppage_migratetype())
    "pg_next", "pg_prev", "pg_order", "pg_flags", "pg_owner", "pg_obj", "pg_list_mt",
    # per pageblock
    "pb_mt", "pb_flags", "pb_zone",
    # per pageblock: the free-list owner its free pages are filed under: the
    # zone (stock) or MAX_NR_ZONES + SPB slot (per-SPB free lists, SPB allocator)
    "pb_list",
    # per zone
    # fa_head/fa_tail/fl_nr: [free-list owner, order, mt] (owners: zones, then SPB
    # slots); fa_nr/nr_free: per zone (with SPBs, the zone's shadow counts as in S1)
    "zone_start", "zone_end", "fa_head", "fa_tail", "fl_nr", "fa_nr", "nr_free",
    "zstat", "lowmem_reserve",
    # per zone per cpu: list heads/tails, and count/high/batch/high_min/high_max/
    # alloc_factor/free_count/flags
    "pcp_head", "pcp_tail", "pcp",
    # PCPBuddy: per pageblock the owning cpu + 1 (pbd->cpu, 0 = unowned) and the
    # links of pcp->owned_blocks (cpu_node); per zone per cpu that list's ends
    "pb_cpu", "pb_own_next", "pb_own_prev", "pcp_own_head", "pcp_own_tail",
    # PCPBuddy: per zone per cpu per order below pageblock_order, the pairs of
    # PagePCPBuddy buddies on the pcp lists (the merge pass's work; ours)
    "pcp_pairs",
    # per pageblock: owner + 1 of the request whose fragmenting fallback first
    # polluted the block since it was last wholly free (0: clean); the taint
    # log: int64[TL_CAPACITY, TL_WIDTH], tl_n = [records, dropped] (shared
    # with the SPB state, as is ``cur``)
    "pb_taint", "tl", "tl_n",
    # per node: kswapd/kcompactd state; reclaim lists threaded through
    # pg_next/pg_prev of allocated blocks (as page->lru); owner tables
    "node", "lru_head", "lru_tail", "lru_pages", "owner_lru", "owner_pages", "obj_pfn",
    # split pieces of timed objects (a large block split for migration becomes
    # order-0 blocks): obj_pc = an object's first piece; pc_pfn/pc_next = a
    # piece's block and the next piece (free pieces: the free chain);
    # pc_n = [free chain head, pieces in use, splits refused for want of
    # pieces]; the capacity is the pool arrays' length
    "obj_pc", "pc_pfn", "pc_next", "pc_n",
    # counters
    "vm", "sim", "fb_stat",
    # configuration, the "current" context (cpu, clock), a generator state
    "cfg", "cur", "rng",
    # compaction's private lists: isolated free pages (pfn, order), count in
    # cc_n[0]; the cpus a compaction runs on (cc_cpus rows: migrated pages so
    # far below which the row applies, cpu), count in cc_n[1] (0: the
    # caller's cpu throughout)
    "cc_pfn", "cc_order", "cc_n", "cc_cpus",
    # compactions run under a time budget (CC_BUDGET) and paused until a
    # later call resumes them, one row per CCR_SLOT_*: the CCR_* fields (all
    # 0: none paused)
    "cc_resume",
    # the capture_control a direct compactor publishes (current->capture_control):
    # [zone (-1: none published), order, migratetype, captured pfn (-1: none)]
    "capc",
    # workqueue: due time, kind, argument; wq_n = [items, dropped, next due]
    "wq_due", "wq_kind", "wq_arg", "wq_n",
    # event log: int64[cap, EV_WIDTH]; ev_n[0] = records, ev_n[1] = dropped
    "ev", "ev_n",
    # the superpageblock state (spbsim.mm.spb.state.SPB; 0 slots on stock machines)
    "spb",
])

#: capacity of compaction's isolated free page list
CC_MAX = 8192
#: capacity of a compaction's cpu schedule (cc_cpus)
CC_CPUS_MAX = 64
#: cc_resume's row: paused (1) or not (0), its zone, the scanners' pfns, the
#: free scanner's fast_search_fail and search_order, pages migrated and
#: scanned so far, the [SIM] time the caller allows it from its start (ns),
#: kcompactd's clock when it started (ns) and cc->whole_zone
CCR_ACTIVE, CCR_ZONE, CCR_MPFN, CCR_FPFN, CCR_FAST_FAIL, CCR_SEARCH_ORDER, CCR_MIGRATED, \
    CCR_SCANNED, CCR_BUDGET_NS, CCR_CLOCK0, CCR_WHOLE_ZONE = range(11)
CCR_LEN = 11
#: cc_resume's rows: a compact_memory write's compaction (the writing task's),
#: kcompactd's (kcompactd_concurrent); each can pause while the other runs
CCR_SLOT_WRITE, CCR_SLOT_KCOMPACTD = 0, 1
CCR_SLOTS = 2
#: kcompactd's run in progress (node kcompactd_task): none, kcompactd_do_work()
#: for a recorded order, a proactive compaction of the node
KCD_TASK_NONE, KCD_TASK_DO_WORK, KCD_TASK_PROACTIVE = 0, 1, 2

PCP_COUNT, PCP_HIGH, PCP_BATCH, PCP_HIGH_MIN, PCP_HIGH_MAX, PCP_ALLOC_FACTOR, \
    PCP_FREE_COUNT, PCP_FLAGS = range(8)
PCPF_PREV_FREE_HIGH_ORDER = 0x1
#: zone_pcp_update_cacheinfo(): the cpu's share of its last-level cache holds more
#: than 3 batches, so free_high waits until the list holds a batch
PCPF_FREE_HIGH_BATCH = 0x2
#: the "current" context: cpu, clock, and the allocation request in progress
#: (owner, gfp, order; owner 0 outside any request), which the taint log records
CUR_CPU, CUR_CLOCK, CUR_OWNER, CUR_GFP, CUR_ORDER = 0, 1, 2, 3, 4
NR_CUR = 6
CAPC_ZONE, CAPC_ORDER, CAPC_MT, CAPC_PAGE = range(4)


def bytes_per_page():
    """State bytes per 4 KiB page (the per-pfn arrays; the per-pageblock arrays
    add 19/512: pb_mt, pb_flags, pb_zone, pb_list, pb_cpu, pb_own_next/prev, pb_taint)."""
    return 4 + 4 + 1 + 1 + 1 + 4 + 1


def _piece_chain(n):
    """The free chain of ``n`` pieces: 0 -> 1 -> ... -> n-1 -> end."""
    nxt = np.arange(1, n + 1, dtype=np.int32)
    if n:
        nxt[-1] = -1
    return nxt


def reset_piece_pool(m):
    """Every split piece back in the pool (for code that rebuilds the state)."""
    cap = m.pc_pfn.shape[0]
    m.pc_pfn[:] = -1
    m.pc_next[:] = _piece_chain(cap)
    m.pc_n[0] = 0 if cap > 0 else -1
    m.pc_n[1] = 0
    m.obj_pc[:] = -1


def __getattr__(name):
    """``new_mem`` moved to spbsim.mm.mm_init; the old name resolves for one
    release (loaded on use, so this module imports nothing above it)."""
    if name == "new_mem":
        import importlib
        return importlib.import_module("spbsim.mm.mm_init").new_mem
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
