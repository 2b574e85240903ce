"""Enums, constants and tunables of the superpageblock (SPB) layer.

Provenance tags as in the specs: [S1] read in source snapshot S1
(spb-source-facts.md), [S] a source of spb-series.md, [I] inference, and
[SIM] a simulator default standing in for an item the spec marks [U].
Every [U] item of spb-series.md Appendix B (and of §5.1) that this layer or
the next ones need is a named constant here, with the spec's [SIM] value.
"""
from ..const import PCPBUDDY_ADOPT, PCPBUDDY_S1 as _MODE_S1, SUPERPAGEBLOCK_NR_PAGEBLOCKS

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
# ---- allocator switches: each mechanism of the series can be ablated
SPB_CFG_HINT = 4          # PASS_1 hint cache, per zone and per CPU [S v1 38 / v2 31/40]
SPB_CFG_PASS_2B = 5       # sub-pageblock claim in tainted SPBs, no 50% rule [S v1 25/45]
SPB_CFG_PASS_2C = 6       # borrow across UNMOV<->RECL in tainted SPBs [S v1 31/45]
SPB_CFG_PASS_2D = 7       # borrow from MOVABLE inside tainted SPBs [S v1 42/45]
SPB_CFG_PASS3_CLAIM = 8   # PASS_3 claims a whole pageblock of an empty SPB for non-movable
                          #   requests (later versions; S1 serves only the matching type) [S2]
SPB_CFG_NO_CROSS_MIX = 9  # UNMOV<->RECL relabel needs a fully free block, no such steal [S v1 26 / v2 24]
SPB_CFG_REACT = 10        # patch 43 trigger 1: spb_react_to_tainted_alloc() [S v1 43/45]
SPB_CFG_LAST_CHANCE = 11  # patch 43 trigger 2: defrag kick walk before PASS_3 [S v1 43/45]
SPB_CFG_SLAB_SHRINK = 12  # queue_spb_slab_shrink() [S v1 30, 32]
SPB_CFG_AGGRESSIVE = 13   # SPB_AGGRESSIVE_THRESHOLD write-off rule [S v2 19/40]
SPB_CFG_CHEAP_REFUSE = 14 # refuse tainting for cheap-fallback callers [S v1 29 / v2 26]
SPB_CFG_DEFERRED_EVAC = 15  # queue_spb_evacuate() when a claim would taint [S v1 27/45]
SPB_CFG_TAINTED_OK_GATE = 16  # v2: PASS_2/2B need ALLOC_NOFRAG_TAINTED_OK [U -> SIM off]
SPB_CFG_RELAX = 17        # v2 relax sequence for atomic callers [S2 spb_alloc_atomic_relax]
SPB_CFG_BEST_EFFORT = 18  # v2 35/40: refuse best-effort high-order allocations [S]
SPB_CFG_COMPACT_SKIP = 19 # v2 38/40: compaction skips tainted SPBs with nr_movable == 0 [S]
SPB_CFG_EVAC_FOR_ORDER = 20  # slowpath spb_evacuate_for_order() two phases [S v1 24/45, S2]
SPB_CFG_CONTIG = 21       # sb_try_alloc_contig() for 1 GB / THP ranges [S v1 18 / v2 17]
SPB_CFG_CLEAN_COMPACT = 22  # within-SPB compaction of a clean SPB for contig [SIM v1 17]
SPB_CFG_MOVABLE_STEER = 23  # sb_preferred_for_movable() in PASS_1 [S v1 13 / v2 12]
SPB_CFG_DEFRAG_BUDGET = 24  # [U -> SIM] pageblocks one defrag run may evacuate (default 16)
SPB_CFG_MOVABLE_RESERVE = 25  # movable requests skip tainted SPBs with nr_free <= reserve
                              #   (PASS_4 and the claim/steal search) [S1 §3.1-3.2]; off: [SIM] ablation
SPB_CFG_DEFRAG_CLAIMED = 26  # defrag also empties claimed (UNMOV/RECL-labelled) blocks of their
                             #   movable pages [I: S1 evacuate_pageblock, v2 15 replaces v2 06]
# ---- [U] amounts of the series, named parameters with their [SIM] defaults
SPB_CFG_SLAB_SHRINK_DIV = 27     # one SPB slab-shrink run frees 1/N of reclaimable slab
SPB_CFG_EVAC_CAP = 28            # spb_evacuate_for_order(): candidate tainted SPBs per call
SPB_CFG_EVAC_PHASE_BLOCKS = 29   # spb_evacuate_for_order(): pageblocks per phase per call
SPB_CFG_DEFERRED_THROTTLE_MS = 30  # queue_spb_evacuate() throttle
SPB_CFG_PROGRESS_MIN_FREE = 31   # a defrag run "made progress" if nr_free rose by >= this
SPB_CFG_STOP_EXTRA_PB = 32       # defrag stop: nr_free_pages >= (reserve + this) pageblocks
SPB_CFG_PROGRESS_COOLDOWN_MS = 33  # no new defrag run this long after any run (0: none)
SPB_CFG_PCPBUDDY = 34            # PCPBuddy under the SPB allocator (sets the machine's
                                 #   cfg "pcpbuddy"; the mechanism is in mm/pcp.py) [S v1 02]
PCPBUDDY_OFF = 0                 #   stock per-cpu lists
PCPBUDDY_S1 = 1                  #   S1's PCPBuddy: phases 0, 1, 3 (no phase 2) [S1 code]
PCPBUDDY_V2_21 = 2               #   + phase 2: UNMOV/RECL refills adopt partly free
                                 #   pageblocks of tainted SPBs [S v2 21/40]
#: the switch value -> the machine's cfg "pcpbuddy" (mm/const.py PCPBUDDY_*)
PCPBUDDY_MODE = {PCPBUDDY_OFF: 0, PCPBUDDY_S1: _MODE_S1, PCPBUDDY_V2_21: PCPBUDDY_ADOPT}
SPB_CFG_HIGHATOMIC_PASS_2 = 35   # __rmqueue_smallest(MIGRATE_HIGHATOMIC) also runs PASS_2
                                 #   (claim a whole free MOVABLE block of a tainted SPB) [S1 §3.1]
SPB_CFG_COMPACT_HOOK = 36        # the __alloc_pages_direct_compact() hook [S v2 17/40, S2]:
                                 #   THP/mTHP try sb_try_alloc_contig(), high-order UNMOV/RECL
                                 #   spb_evacuate_for_order(), before compaction; off: v1 24's
                                 #   evacuation before the NOFRAGMENT drop
SPB_CFG_CONTIG_CAP = 37          # sb_try_alloc_contig_order(): candidate clean SPBs per call [U]
SPB_CFG_KEVACUATE = 38           # S1's claim-time pageblock evacuation: queue_pageblock_evacuate()
                                 #   and the kevacuate workqueue [S1 §4, v1 07 / v2 06; v2 15 removes it]
SPB_CFG_COMPACT_ORDER_CHECK = 39  # compaction's "order already free?" tests (the watermark
                                 #   shortcut of compaction_suit_allocation_order(), kcompactd's,
                                 #   __compact_finished()) for a movable pageblock-order request
COMPACT_CHECK_SHADOW = 0         #   the zone's counts: S1's shadow counts for the watermark
                                 #   shortcuts (spb-source-facts §10); for __compact_finished()
                                 #   the model's per-type counts (S1 reads the empty zone lists)
COMPACT_CHECK_USABLE = 1         #   [SIM] what-if: a free pageblock the movable passes may take
NR_SPB_CFG = 40

#: the switch names users write (``--set spb.NAME=value``): name -> (index, kind)
#: kind: a dict of allowed words -> value, or "bool", or "int"
SPB_SWITCHES = {
    "update_list": (SPB_CFG_UPDATE, {"s1": SPB_UPDATE_S1, "transition": SPB_UPDATE_TRANSITION}),
    "untaint": (SPB_CFG_UNTAINT, {"s1": SPB_UNTAINT_S1, "when_empty": SPB_UNTAINT_WHEN_EMPTY}),
    "reserve": (SPB_CFG_RESERVE, {"static": SPB_RESERVE_STATIC, "dynamic": SPB_RESERVE_DYNAMIC}),
    "defrag": (SPB_CFG_DEFRAG, {"off": SPB_DEFRAG_OFF, "v2_15": SPB_DEFRAG_V2_15,
                                "reserve": SPB_DEFRAG_RESERVE}),
    "hint": (SPB_CFG_HINT, "bool"),
    "pass_2b": (SPB_CFG_PASS_2B, "bool"),
    "pass_2c": (SPB_CFG_PASS_2C, "bool"),
    "pass_2d": (SPB_CFG_PASS_2D, "bool"),
    "pass3_claim": (SPB_CFG_PASS3_CLAIM, "bool"),
    "no_cross_type_mix": (SPB_CFG_NO_CROSS_MIX, "bool"),
    "react_tainted_alloc": (SPB_CFG_REACT, "bool"),
    "last_chance_defrag": (SPB_CFG_LAST_CHANCE, "bool"),
    "slab_shrink": (SPB_CFG_SLAB_SHRINK, "bool"),
    "aggressive": (SPB_CFG_AGGRESSIVE, "bool"),
    "cheap_fallback_refusal": (SPB_CFG_CHEAP_REFUSE, "bool"),
    "deferred_evacuation": (SPB_CFG_DEFERRED_EVAC, "bool"),
    "tainted_ok_gate": (SPB_CFG_TAINTED_OK_GATE, "bool"),
    "relax_sequence": (SPB_CFG_RELAX, "bool"),
    "best_effort_refusal": (SPB_CFG_BEST_EFFORT, "bool"),
    "compaction_skip_tainted": (SPB_CFG_COMPACT_SKIP, "bool"),
    "evacuate_for_order": (SPB_CFG_EVAC_FOR_ORDER, "bool"),
    "contig": (SPB_CFG_CONTIG, "bool"),
    "clean_compaction": (SPB_CFG_CLEAN_COMPACT, "bool"),
    "movable_steering": (SPB_CFG_MOVABLE_STEER, "bool"),
    "defrag_budget": (SPB_CFG_DEFRAG_BUDGET, "int"),
    "movable_reserve_skip": (SPB_CFG_MOVABLE_RESERVE, "bool"),
    "defrag_claimed_blocks": (SPB_CFG_DEFRAG_CLAIMED, "bool"),
    # [U] -> [SIM] amounts: ("int", lowest, highest)
    "slab_shrink_div": (SPB_CFG_SLAB_SHRINK_DIV, ("int", 1, 1 << 20)),
    "evacuate_for_order_cap": (SPB_CFG_EVAC_CAP, ("int", 1, 1 << 20)),
    "evacuate_phase_blocks": (SPB_CFG_EVAC_PHASE_BLOCKS, ("int", 1, 1 << 20)),
    "deferred_evacuation_throttle_ms": (SPB_CFG_DEFERRED_THROTTLE_MS, ("int", 0, 3_600_000)),
    "defrag_progress_min_free": (SPB_CFG_PROGRESS_MIN_FREE, ("int", 1, 512)),
    "defrag_stop_extra_pb": (SPB_CFG_STOP_EXTRA_PB, ("int", 0, 512)),
    "defrag_progress_cooldown_ms": (SPB_CFG_PROGRESS_COOLDOWN_MS, ("int", 0, 3_600_000)),
    "pcpbuddy": (SPB_CFG_PCPBUDDY, {"off": PCPBUDDY_OFF, "s1": PCPBUDDY_S1,
                                    "v2_21": PCPBUDDY_V2_21}),
    "highatomic_pass_2": (SPB_CFG_HIGHATOMIC_PASS_2, "bool"),
    "direct_compact_hook": (SPB_CFG_COMPACT_HOOK, "bool"),
    "contig_cap": (SPB_CFG_CONTIG_CAP, ("int", 1, 1 << 20)),
    "kevacuate": (SPB_CFG_KEVACUATE, "bool"),
    "compaction_order_check": (SPB_CFG_COMPACT_ORDER_CHECK, {"shadow": COMPACT_CHECK_SHADOW,
                                                             "usable": COMPACT_CHECK_USABLE}),
}

_V1 = dict(update_list="transition", untaint="s1", reserve="dynamic", defrag="reserve",
           hint=True, pass_2b=True, pass_2c=True, pass_2d=True, pass3_claim=True,
           no_cross_type_mix=True, react_tainted_alloc=True, last_chance_defrag=True,
           slab_shrink=True, aggressive=True, cheap_fallback_refusal=True,
           deferred_evacuation=True, tainted_ok_gate=False, relax_sequence=False,
           best_effort_refusal=False, compaction_skip_tainted=False,
           evacuate_for_order=True, contig=True, clean_compaction=True,
           movable_steering=True, defrag_budget=16, movable_reserve_skip=True,
           defrag_claimed_blocks=True,
           slab_shrink_div=8, evacuate_for_order_cap=8, evacuate_phase_blocks=8,
           deferred_evacuation_throttle_ms=100, defrag_progress_min_free=1,
           defrag_stop_extra_pb=1, defrag_progress_cooldown_ms=0, pcpbuddy="s1",
           highatomic_pass_2=True, direct_compact_hook=False, contig_cap=4, kevacuate=False,
           compaction_order_check="shadow")
#: presets: s1 = the source snapshot S1; v1 = final v1 (patch 43 on);
#: v1-pre43 = v1 without patch 43's two hot-path triggers; v2 = the v2 changes
SPB_PRESETS = {
    "s1": dict(_V1, hint=False, update_list="s1", reserve="static", defrag="off", pass_2b=False,
               pass_2c=False, pass_2d=False, pass3_claim=False, no_cross_type_mix=False,
               react_tainted_alloc=False, last_chance_defrag=False, slab_shrink=False,
               aggressive=False, cheap_fallback_refusal=False, deferred_evacuation=False,
               evacuate_for_order=False, contig=False, clean_compaction=False,
               defrag_claimed_blocks=False, kevacuate=True),
    "v1": dict(_V1),
    "v1-pre43": dict(_V1, react_tainted_alloc=False, last_chance_defrag=False),
    "v2": dict(_V1, relax_sequence=True, best_effort_refusal=True,
               compaction_skip_tainted=True, direct_compact_hook=True, pcpbuddy="v2_21"),
}
SPB_PRESETS[""] = SPB_PRESETS["v1"]

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
# The amounts the record leaves open are switches (SPB_SWITCHES, ``--set
# spb.NAME=value``); their [SIM] defaults are in _V1:
#   defrag_progress_min_free = 1: a defrag run made progress if nr_free rose
#     by >= 1 during it (what counts as progress is [U]);
#   defrag_stop_extra_pb = 1: later defrag start/stop [U]: start when
#     nr_free < reserve or nr_free_pages < reserve pageblocks; stop when
#     nr_free >= reserve and nr_free_pages >= (reserve + 1) pageblocks, or
#     nr_movable == 0;
#   defrag_progress_cooldown_ms = 0: other defrag cooldowns (after progress) [U]: none;
#   evacuate_for_order_cap = 8, evacuate_phase_blocks = 8: the "per-call
#     budget caps" of spb_evacuate_for_order() (S2, values [U]);
#   contig_cap = 4: clean SPBs the direct-compaction hook's sb_try_alloc_contig()
#     tries per call (v2 17: smaller than spb_evacuate_for_order's cap; value [U]);
#   deferred_evacuation_throttle_ms = 100: queue_spb_evacuate() throttle [U];
#   slab_shrink_div = 8: one SPB slab-shrink run frees 1/8 of reclaimable slab [U].
#: [U] pageblock pick order of the defrag worker.  [SIM] fewest movable pages
#: first (the only order built; not a switch)
SPB_DEFRAG_PICK_FEWEST_MOVABLE = 0
SPB_DEFRAG_PICK = SPB_DEFRAG_PICK_FEWEST_MOVABLE

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
    "spb_defrag_pageblocks",   # pageblocks evacuate_pageblock() worked on
    "spb_defrag_migrated",     # pages migrated by the defrag worker
    "spb_react_kicks",         # spb_react_to_tainted_alloc() queued defrag (patch 43 trigger 1)
    "spb_last_chance_kicks",   # last-chance walk queued defrag (patch 43 trigger 2)
    "spb_slab_shrinks",        # queue_spb_slab_shrink() runs
    "spb_slab_shrunk_pages",   # pages the SPB slab shrink freed
    "spb_claim_attempts",      # try_to_claim_block() calls (SPB paths)
    "spb_claim_success",
    "spb_claim_refused",       # spb_claim_block_refused
    "spb_cheap_refusals",      # cheap-fallback callers refused a clean SPB
    "spb_best_effort_refusals",  # v2 35/40 refusals
    "spb_relax_tainted_ok", "spb_relax_drop_nofrag", "spb_relax_noretry_skip",
    "spb_deferred_evac",       # queue_spb_evacuate() runs
    "spb_evac_for_order",      # spb_evacuate_for_order() calls
    "spb_evac_migrated",       # pages it migrated
    "spb_hint_hits", "spb_hint_misses",
    "spb_alloc_walks",         # __rmqueue_smallest() calls under SPBs
    "spb_spbs_visited",        # SPBs visited by them (sum)
    "spb_freelists_visited",   # per-SPB free list heads probed (sum)
    "spb_contig_success", "spb_contig_fail", "spb_contig_migrated",
    "spb_compact_skips",       # v2 38/40 skips
    "spb_thp_contig_success",  # the direct-compaction hook's sb_try_alloc_contig() gave the page
    "spb_thp_contig_fail",     # ... found no range it could empty
    "spb_thp_contig_migrated", # pages it migrated
    "spb_highatomic_claims",   # PASS_2 claims of __rmqueue_smallest(MIGRATE_HIGHATOMIC)
    "spb_kevacuate_queued",    # queue_pageblock_evacuate() items queued
    "spb_kevacuate_dropped",   # ... dropped, the pool of NR_EVACUATE_ITEMS empty
    "spb_kevacuate_runs",      # pageblocks the kevacuate work evacuated
    "spb_kevacuate_migrated",  # pages it migrated
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
ST_DEFRAG_PB, ST_DEFRAG_MIGRATED, ST_REACT_KICKS, ST_LAST_CHANCE_KICKS, ST_SLAB_SHRINKS, \
    ST_SLAB_SHRUNK, ST_CLAIM_ATTEMPTS, ST_CLAIM_SUCCESS, ST_CLAIM_REFUSED, ST_CHEAP_REFUSALS, \
    ST_BEST_EFFORT, ST_RELAX_TAINTED_OK, ST_RELAX_DROP_NOFRAG, ST_RELAX_NORETRY_SKIP, \
    ST_DEFERRED_EVAC, ST_EVAC_FOR_ORDER, ST_EVAC_MIGRATED, ST_HINT_HITS, ST_HINT_MISSES, \
    ST_ALLOC_WALKS, ST_SPBS_VISITED, ST_FREELISTS_VISITED, ST_CONTIG_SUCCESS, ST_CONTIG_FAIL, \
    ST_CONTIG_MIGRATED, ST_COMPACT_SKIPS, ST_THP_CONTIG_SUCCESS, ST_THP_CONTIG_FAIL, \
    ST_THP_CONTIG_MIGRATED, ST_HIGHATOMIC_CLAIMS, ST_KEVAC_QUEUED, ST_KEVAC_DROPPED, \
    ST_KEVAC_RUNS, ST_KEVAC_MIGRATED = range(9, 43)
NR_SPB_STATS = len(SPB_STAT_NAMES)

# ------------------------------------------------------------ defrag state per SPB
SPB_DEFRAG_IDLE = 0
SPB_DEFRAG_QUEUED = 1     # defrag_work queued (single-flight: queue_work on pending work is a no-op)
SPB_DEFRAG_RUNNING = 2
#: "never" for the defrag time stamps
SPB_NEVER_NS = -(1 << 62)

# ------------------------------------------------------------ spb_alloc_walk outcomes [S2]
SPB_ALLOC_OUTCOME_NO_PAGE = 0
SPB_ALLOC_OUTCOME_PASS_1 = 1
SPB_ALLOC_OUTCOME_PASS_2 = 2
SPB_ALLOC_OUTCOME_PASS_2B = 3
SPB_ALLOC_OUTCOME_PASS_2C = 4
SPB_ALLOC_OUTCOME_PASS_3 = 5
SPB_ALLOC_OUTCOME_PASS_4 = 6
SPB_ALLOC_OUTCOME_ZONE_FALLBACK = 7
SPB_ALLOC_OUTCOME_PASS_2D = 8
#: spbsim's own outcomes after __rmqueue_smallest (not in the S2 enum)
SPB_OUTCOME_CLAIM = 9         # SPB-aware __rmqueue_claim
SPB_OUTCOME_STEAL = 10        # SPB-aware __rmqueue_steal
SPB_OUTCOME_HINT = 11         # PASS_1 served from the hint cache (S2 shows it as PASS_1 with 0 visits)
NR_SPB_OUTCOMES = 12
SPB_OUTCOME_NAMES = ("no_page", "pass_1", "pass_2", "pass_2b", "pass_2c", "pass_3", "pass_4",
                     "zone_fallback", "pass_2d", "claim", "steal", "hint")
#: histogram of SPBs visited per __rmqueue_smallest (bucket k: k visits, last = more)
SPB_VISIT_HIST = 64

# ------------------------------------------------------------ claim refusal reasons [S2]
SPB_CLAIM_REFUSED_ISOLATE = 0
SPB_CLAIM_REFUSED_CMA = 1
SPB_CLAIM_REFUSED_ZONE_BOUNDARY = 2
SPB_CLAIM_REFUSED_CROSS_TYPE_NOT_FREE = 3
SPB_CLAIM_REFUSED_INSUFFICIENT_COMPAT = 4
SPB_CLAIM_REFUSED_NAMES = ("isolate", "cma", "zone_boundary", "cross_type_not_free",
                           "insufficient_compat")

# ------------------------------------------------------------ atomic relax steps [S2]
SPB_ATOMIC_RELAX_NORETRY_SKIP = 0
SPB_ATOMIC_RELAX_ADD_TAINTED_OK = 1
SPB_ATOMIC_RELAX_DROP_NOFRAGMENT = 2
SPB_ATOMIC_RELAX_NOWARN_LOWER_ORDER = 3

# ------------------------------------------------------------ pending background work (spb.pend)
PEND_DEFRAG = 0        # SPBs with defrag work queued
PEND_SLAB_SHRINK = 1   # queue_spb_slab_shrink() pending (single-flight)
PEND_EVACUATE = 2      # queue_spb_evacuate() pending (single-flight)
PEND_EVAC_ORDER = 3    # its order
PEND_EVAC_MT = 4       # its migratetype
PEND_EVAC_LAST_NS = 5  # last run (throttle)
PEND_KEVAC_N = 8       # kevacuate items in flight (queue_pageblock_evacuate) [S1 §4]
PEND_KEVAC_Q = 9       # their pageblock start pfns, NR_EVACUATE_ITEMS slots, in queue order
NR_PEND = PEND_KEVAC_Q + NR_EVACUATE_ITEMS
#: hint cache width: [zone or cpu, zone, order, mt < PCPTYPES]
SPB_HINT_CPUS = 256
