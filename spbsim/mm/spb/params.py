"""Enums, constants and tunables of the superpageblock (SPB) layer.

Provenance tags as in the specs: [S1] read in source snapshot S1
(spb-source-facts.md), [S] a source of spb-series.md, [I] inference, and
[SIM] a simulator default standing in for an item the spec marks [U].
Every [U] item of spb-series.md Appendix B (and of §5.1) that this layer or
the next ones need is a named constant here, with the spec's [SIM] value.
"""
from ..const import SUPERPAGEBLOCK_NR_PAGEBLOCKS

# ------------------------------------------------------------ enums [S1 mmzone.h]
#: enum sb_category
SB_CLEAN = 0
SB_TAINTED = 1
NR_SB_CATEGORIES = 2
SB_CATEGORY_NAMES = ("clean", "tainted")          # debugfs names [S1]

#: enum sb_fullness: 5 buckets in pageblocks, fullest first [S1 §1.1]
SB_FULL = 0              # 100% full, 0 free pageblocks
SB_FULL_75 = 1           # 75-99%
SB_FULL_50 = 2           # 50-74%
SB_FULL_25 = 3           # 25-49%
SB_ALMOST_EMPTY = 4      # 1-24%
NR_SB_FULLNESS = 5       # __NR_SB_FULLNESS
SB_FULLNESS_NAMES = ("full", "75pct", "50pct", "25pct", "almost_empty")   # [S1]

#: sb_get_fullness() divides by the fixed SPB size, not by total_pageblocks
#: ("prefer partial SPBs at zone edges") [S1 §1.4]: 128 on x86-64
SB_QUARTER = SUPERPAGEBLOCK_NR_PAGEBLOCKS // 4
SB_FULL_75_USED = 3 * SB_QUARTER     # used >= 384 -> SB_FULL_75
SB_FULL_50_USED = 2 * SB_QUARTER     # used >= 256 -> SB_FULL_50
SB_FULL_25_USED = SB_QUARTER         # used >= 128 -> SB_FULL_25

# ------------------------------------------------------------ zone lists
#: list ids: spb_lists[cat][full] is cat * NR_SB_FULLNESS + full, then the two
#: extra lists (spb_empty [S1], spb_isolated [S v2 17/40, absent at S1])
SPB_LIST_EMPTY = NR_SB_CATEGORIES * NR_SB_FULLNESS       # 10
SPB_LIST_ISOLATED = SPB_LIST_EMPTY + 1                    # 11
NR_SPB_LISTS = SPB_LIST_ISOLATED + 1                      # 12
SPB_LIST_NONE = -1                                        # on no list (0 pageblocks)


def spb_list_name(list_id):
    """'clean/75pct', 'empty', 'isolated' or 'none' (Python side only)."""
    if list_id == SPB_LIST_EMPTY:
        return "empty"
    if list_id == SPB_LIST_ISOLATED:
        return "isolated"
    if list_id < 0:
        return "none"
    return (SB_CATEGORY_NAMES[list_id // NR_SB_FULLNESS] + "/"
            + SB_FULLNESS_NAMES[list_id % NR_SB_FULLNESS])


# ------------------------------------------------------------ switches (spb.cfg)
SPB_CFG_UPDATE = 0        # which spb_update_list()
SPB_UPDATE_S1 = 0         #   S1: re-append to the list tail on every call [S1 §1.6]
SPB_UPDATE_TRANSITION = 1 #   later (v1 43/45): act only on category/bucket transitions [S §4]
SPB_CFG_UNTAINT = 1       # un-taint rule (spec Appendix B "un-taint rule": U -> SIM configurable)
SPB_UNTAINT_S1 = 0        #   clean again once unmov = recl = rsv = 0 [S1 §6.5] (default)
SPB_UNTAINT_WHEN_EMPTY = 1  # [SIM alternative] "written off": tainted until the SPB is empty
SPB_CFG_RESERVE = 2       # tainted reserve
SPB_RESERVE_STATIC = 0    #   SPB_TAINTED_RESERVE = 4 [S1 §5] (default)
SPB_RESERVE_DYNAMIC = 1   #   spb_tainted_reserve(sb) = max(4, total/32) [S v1 24/45, formula I]
SPB_CFG_DEFRAG = 3        # per-SPB defrag worker (absent at S1; v2 15/40)
SPB_DEFRAG_OFF = 0        #   S1: no defrag worker (default)
SPB_DEFRAG_V2_15 = 1      #   thresholds quoted in v2 15/40 [S]
SPB_DEFRAG_RESERVE = 2    #   thresholds tied to the reserve (spec §5.1 [SIM])
NR_SPB_CFG = 4

# ------------------------------------------------------------ constants read in sources
#: "fewer than this many free pageblocks": movable requests skip a tainted SPB
#: with nr_free <= this [S1 §5]
SPB_TAINTED_RESERVE = 4
#: floor of the dynamic reserve [S spec §3.5]
SPB_TAINTED_RESERVE_MIN = 4
#: dynamic reserve = total_pageblocks >> 5 (~3%, 16 of 512) [I spec §3.5]
SPB_TAINTED_RESERVE_SHIFT = 5
#: steal-steering scan limit; defined but unused at S1 [S1 §3.3]
SPB_SCAN_LIMIT = 8
#: SPB_AGGRESSIVE_THRESHOLD: more than this many SPBs -> drop the claim
#: min_order floor in tainted SPBs [S v2 19/40]
SPB_AGGRESSIVE_THRESHOLD = 8
#: async pageblock evacuation pool [S1 §4]
NR_EVACUATE_ITEMS = 64
#: SPB_DEFRAG_NOOP_COOLDOWN: no new defrag run for 5 s after a run without
#: progress [S v1 43/45]
SPB_DEFRAG_NOOP_COOLDOWN_NS = 5_000_000_000

#: v2 15/40 defrag thresholds [S]: start when nr_free <= 1 or nr_free_pages
#: < 2 pageblocks; stop when nr_free >= 2 or nr_free_pages >= 3 pageblocks
#: (or no movable pages remain)
SPB_DEFRAG_V2_START_NR_FREE = 1
SPB_DEFRAG_V2_START_FREE_PB = 2
SPB_DEFRAG_V2_STOP_NR_FREE = 2
SPB_DEFRAG_V2_STOP_FREE_PB = 3

# ------------------------------------------------------------ [U] -> [SIM] defaults
#: [U] what counts as defrag progress.  [SIM] nr_free rose by >= 1 during the run
SPB_DEFRAG_PROGRESS_MIN_FREE = 1
#: [U] later defrag start/stop.  [SIM] start when nr_free < reserve or
#: nr_free_pages < reserve pageblocks; stop when nr_free >= reserve and
#: nr_free_pages >= (reserve + SPB_DEFRAG_STOP_EXTRA_PB) pageblocks, or nr_movable == 0
SPB_DEFRAG_STOP_EXTRA_PB = 1
#: [U] pageblock pick order of the defrag worker.  [SIM] fewest movable pages first
SPB_DEFRAG_PICK_FEWEST_MOVABLE = 0
SPB_DEFRAG_PICK = SPB_DEFRAG_PICK_FEWEST_MOVABLE
#: [U] other defrag cooldowns (after progress).  [SIM] none
SPB_DEFRAG_PROGRESS_COOLDOWN_NS = 0
#: [U] spb_evacuate_for_order() candidate cap.  [SIM] 8 tainted SPBs a call
SPB_EVACUATE_FOR_ORDER_CAP = 8
#: [U] deferred-evacuation throttle.  [SIM] 100 ms
SPB_DEFERRED_EVAC_THROTTLE_NS = 100_000_000
#: [U] slab shrunk per SPB slab-shrink run.  [SIM] 1/8 of reclaimable slab
SPB_SLAB_SHRINK_DIV = 8

# ------------------------------------------------------------ per-zone statistics (spb.stat)
SPB_STAT_NAMES = [
    "spb_update_calls",     # spb_update_list() calls
    "spb_list_moves",       # calls that changed the SPB's list (category/bucket/empty/isolated)
    "spb_requeues",         # S1 form: re-appended to the same list
    "spb_taint",            # clean or empty -> tainted
    "spb_untaint",          # tainted -> clean or empty
    "spb_counter_underflow",  # a decrement of a counter already at 0, refused
    "spb_defrag_kicks",     # spb_maybe_start_defrag() queued the worker
    "spb_defrag_runs",      # spb_defrag_end() calls
    "spb_defrag_no_progress",  # runs that stamped defrag_last_no_progress_ns
]
SPB_STAT = {n: i for i, n in enumerate(SPB_STAT_NAMES)}
ST_UPDATE_CALLS = 0
ST_LIST_MOVES = 1
ST_REQUEUES = 2
ST_TAINT = 3
ST_UNTAINT = 4
ST_UNDERFLOW = 5
ST_DEFRAG_KICKS = 6
ST_DEFRAG_RUNS = 7
ST_DEFRAG_NO_PROGRESS = 8
NR_SPB_STATS = len(SPB_STAT_NAMES)

# ------------------------------------------------------------ defrag state per SPB
SPB_DEFRAG_IDLE = 0
SPB_DEFRAG_QUEUED = 1     # defrag_work queued (single-flight: queue_work on pending work is a no-op)
SPB_DEFRAG_RUNNING = 2
#: "never" for the defrag time stamps
SPB_NEVER_NS = -(1 << 62)
